// Learning-rate schedules as multipliers of each group's base lr (torch LambdaLR / transformers' schedules).
import type { Optimizer } from './optimizer.js';

export type LrLambda = (step: number) => number;

/** transformers.get_linear_schedule_with_warmup: 0 → 1 over warmup, then linearly to 0 at totalSteps. */
export function linearWarmupLinearDecay(warmupSteps: number, totalSteps: number): LrLambda {
  return (step) => {
    if (step < warmupSteps) return step / Math.max(1, warmupSteps);
    return Math.max(0, (totalSteps - step) / Math.max(1, totalSteps - warmupSteps));
  };
}

/** transformers.get_cosine_schedule_with_warmup (half a cosine by default). */
export function linearWarmupCosineDecay(warmupSteps: number, totalSteps: number, numCycles = 0.5): LrLambda {
  return (step) => {
    if (step < warmupSteps) return step / Math.max(1, warmupSteps);
    const progress = (step - warmupSteps) / Math.max(1, totalSteps - warmupSteps);
    return Math.max(0, 0.5 * (1 + Math.cos(Math.PI * numCycles * 2 * progress)));
  };
}

export function constantWithWarmup(warmupSteps: number): LrLambda {
  return (step) => (step < warmupSteps ? step / Math.max(1, warmupSteps) : 1);
}

/** Sets `lr = baseLr · lambda(step)` for every group; call `step()` after each optimizer step. */
export class LambdaLR {
  private readonly baseLrs: number[];
  lastStep = 0;

  constructor(
    private readonly optimizer: Optimizer<{ lr: number }>,
    private readonly lambda: LrLambda,
  ) {
    this.baseLrs = optimizer.paramGroups.map((g) => g.options.lr);
    this.apply();
  }

  step(): void {
    this.lastStep += 1;
    this.apply();
  }

  /** The current lr of each group. */
  getLastLr(): number[] {
    return this.optimizer.paramGroups.map((g) => g.options.lr);
  }

  stateDict(): { lastStep: number; baseLrs: number[] } {
    return { lastStep: this.lastStep, baseLrs: [...this.baseLrs] };
  }

  loadStateDict(sd: { lastStep: number; baseLrs: number[] }): void {
    this.lastStep = sd.lastStep;
    sd.baseLrs.forEach((lr, i) => (this.baseLrs[i] = lr));
    this.apply();
  }

  private apply(): void {
    const f = this.lambda(this.lastStep);
    this.optimizer.paramGroups.forEach((g, i) => (g.options.lr = this.baseLrs[i]! * f));
  }
}
