// What the trainer does differently when it runs as one rank of a data-parallel job (a process group of more than
// one rank): the collectives it needs, in one place. See trainer.ts ("Data parallelism") for the semantics.
import { distributed, type Parameter } from '../torch/index.js';
import type { AveragerSnapshot } from './metrics.js';

export interface DataParallelOptions {
  /** Gradient bucket cap in MiB (default 25). */
  bucketCapMb?: number;
  /** First bucket's cap in MiB (default 1). */
  firstBucketCapMb?: number;
  /** Start bucket all-reduces from autograd hooks during the step's last backward (default true). false: all
   * gradients are reduced after backward. */
  overlap?: boolean;
}

/** One rank's account of an optimizer step, exchanged once its micro-batches are done. */
export interface RankStep {
  averager: AveragerSnapshot;
  nonFinite: boolean;
  dataEnded: boolean;
}

export class DataParallel {
  readonly rank: number;
  readonly worldSize: number;
  readonly overlap: boolean;
  private readonly reducer: distributed.GradReducer;
  private rebuilt = false;

  constructor(
    readonly group: distributed.ProcessGroup,
    params: readonly Parameter[],
    options: DataParallelOptions = {},
  ) {
    this.rank = group.rank;
    this.worldSize = group.size;
    this.overlap = options.overlap ?? true;
    this.reducer = new distributed.GradReducer(params, {
      group,
      ...(options.bucketCapMb === undefined ? {} : { bucketCapMb: options.bucketCapMb }),
      ...(options.firstBucketCapMb === undefined ? {} : { firstBucketCapMb: options.firstBucketCapMb }),
    });
  }

  get isMain(): boolean {
    return this.rank === 0;
  }

  /**
   * Checks that every rank has the same `facts` (configuration, parameter layout, resume step) as rank 0; throws
   * on every rank, naming the first difference, otherwise.
   */
  async checkSame(facts: Record<string, unknown>): Promise<void> {
    const all = await distributed.allGatherObject(facts, { group: this.group });
    const ref = all[0]!;
    for (let r = 1; r < all.length; r++) {
      for (const key of Object.keys({ ...ref, ...all[r] })) {
        const a = JSON.stringify(ref[key]);
        const b = JSON.stringify(all[r]![key]);
        if (a !== b) {
          throw new distributed.DistributedError(
            `data-parallel ranks disagree on ${key}: rank 0 has ${a}, rank ${r} has ${b} ` +
              '(start every rank with the same options, data and checkpoint)',
          );
        }
      }
    }
  }

  /** Every rank's parameters become rank 0's (identical starting weights). */
  broadcastParameters(params: readonly Parameter[]): Promise<void> {
    return distributed.broadcastCoalesced(params, 0, { group: this.group });
  }

  /**
   * Once, after the first armed step: re-forms the gradient buckets in the order rank 0's gradients became ready
   * (as DDP rebuilds its buckets after the first iteration), so that parameters used late or not at all do not
   * hold back the buckets launched during backward. Collective: call on every rank after the same step.
   */
  async rebuildBucketsOnce(): Promise<void> {
    if (this.rebuilt || !this.overlap) return;
    this.rebuilt = true;
    const order = await distributed.broadcastObject<number[]>(this.isMain ? this.reducer.observedOrder() : [], 0, {
      group: this.group,
    });
    this.reducer.rebuild(order);
  }

  /** The coming backward is the step's last: gradient hooks start the bucket all-reduces. */
  armForLastBackward(): void {
    if (this.overlap) this.reducer.arm();
  }

  /** Starts reducing whatever gradients backward did not hand over yet; returns the work to wait for. */
  startGradientReduction(): distributed.Work {
    return this.reducer.flush();
  }

  /** After that work completed: `scale · Σ_ranks grad` into every parameter's gradient. */
  applyReducedGradients(scale: number): void {
    this.reducer.apply(scale);
  }

  exchangeStep(mine: RankStep): Promise<RankStep[]> {
    return distributed.allGatherObject(mine, { group: this.group });
  }

  anyRank(flag: boolean): Promise<boolean> {
    return distributed.anyRank(flag, { group: this.group });
  }

  gather<T>(value: T): Promise<T[]> {
    return distributed.allGatherObject(value, { group: this.group });
  }

  broadcastFromMain<T>(value: T): Promise<T> {
    return distributed.broadcastObject(value, 0, { group: this.group });
  }

  /** Gradient buckets and how many of their all-reduces started inside backward (the overlap achieved). */
  reducerStats(): { buckets: number; launchedDuringBackward: number; launched: number } {
    return this.reducer.stats();
  }

  dispose(): void {
    this.reducer.dispose();
  }
}
