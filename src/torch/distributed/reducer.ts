// Bucketed gradient all-reduce for data-parallel training (the communication half of PyTorch's
// DistributedDataParallel), implemented natively in native/src/distributed.cc.
//
// Parameters are packed into flat buckets (reverse parameter order — roughly the order backward produces their
// gradients —, one dtype each, the first bucket small). Before the LAST backward of an optimizer step call
// `arm()`: autograd hooks then start each bucket's all-reduce as soon as all of its gradients are final, while
// backward goes on with the layers below (communication overlapped with computation). `synchronize(scale)` starts
// whatever backward did not (a parameter that got no gradient on this rank contributes zeros), waits, and writes
// `scale · Σ_ranks grad` into every parameter's gradient; a parameter that no rank produced a gradient for keeps
// none (as in a single process, so AdamW skips it too). Earlier backwards of the step (gradient accumulation) are
// not armed: their gradients accumulate locally, as under DDP's no_sync(). Code that back-propagates several
// times per micro-batch (GradCache) simply does not arm: everything is then reduced after backward.
// Buckets are launched in a fixed order (the same on every rank, as the backend requires); `observedOrder()` and
// `rebuild()` re-form them in the order gradients actually arrive (what DDP does after its first iteration).
import { native } from '../native.js';
import type { NativeReducer } from '../native-handles.js';
import type { Parameter } from '../nn/module.js';
import { communicationError, Work } from './collectives.js';
import { getDefaultGroup, type ProcessGroup } from './process-group.js';

export interface GradReducerOptions {
  group?: ProcessGroup;
  /** Bucket size cap in MiB (default 25, as DDP). */
  bucketCapMb?: number;
  /** Cap of the first bucket in MiB (default 1, as DDP): its all-reduce starts after the first layers' backward. */
  firstBucketCapMb?: number;
}

export class GradReducer {
  readonly group: ProcessGroup;
  private readonly handle: NativeReducer;
  private disposed = false;

  constructor(
    readonly params: readonly Parameter[],
    options: GradReducerOptions = {},
  ) {
    this.group = options.group ?? getDefaultGroup();
    const mb = 1024 * 1024;
    this.handle = native.reducerCreate(
      this.group.handle,
      params.map((p) => p.handle),
      Math.round((options.bucketCapMb ?? 25) * mb),
      Math.round((options.firstBucketCapMb ?? 1) * mb),
    );
  }

  /** The next backward starts bucket all-reduces from its gradient hooks. */
  arm(): void {
    native.reducerArm(this.handle);
  }

  /** Launches the buckets backward did not; the returned work completes when every bucket is reduced. Then
   * call apply(). */
  flush(): Work {
    try {
      return new Work(native.reducerFlush(this.handle), 'gradient all-reduce', this.group);
    } catch (e) {
      throw communicationError('gradient all-reduce', this.group, e);
    }
  }

  /** After flush()'s work completed: `scale · Σ_ranks grad` into every parameter's gradient. */
  apply(scale: number): void {
    native.reducerApply(this.handle, scale);
  }

  /** flush(), wait, apply(scale). */
  async synchronize(scale: number): Promise<void> {
    await this.flush().wait();
    this.apply(scale);
  }

  /** As synchronize(), blocking the thread. */
  synchronizeSync(scale: number): void {
    this.flush().waitSync();
    native.reducerApply(this.handle, scale);
  }

  /** Parameter indices in the order the last armed backward made their gradients ready (parameters it did not
   * reach last). */
  observedOrder(): number[] {
    return native.reducerObservedOrder(this.handle);
  }

  /** Re-forms the buckets along `order` (a permutation of parameter indices; the same on every rank). Between
   * steps only. */
  rebuild(order: readonly number[]): void {
    native.reducerRebuild(this.handle, [...order]);
  }

  /** Bucket index of every parameter. */
  bucketAssignment(): number[] {
    return native.reducerBuckets(this.handle);
  }

  /** Buckets, and bucket all-reduces started so far: inside backward (overlapped) and in total. */
  stats(): { buckets: number; launchedDuringBackward: number; launched: number } {
    const [buckets, during, total] = native.reducerStats(this.handle);
    return { buckets: buckets!, launchedDuringBackward: during!, launched: total! };
  }

  /** Removes the autograd hooks. */
  dispose(): void {
    if (this.disposed) return;
    this.disposed = true;
    native.reducerDestroy(this.handle);
  }
}
