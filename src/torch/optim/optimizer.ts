// Optimizer base: parameter groups, per-parameter state, state save/load in PyTorch's layout.
import { noGrad } from '../autograd.js';
import type { Parameter } from '../nn/module.js';
import { Tensor } from '../tensor.js';

export type StateValue = Tensor | number;
export type ParamState = Record<string, StateValue>;

export interface ParamGroup<H> {
  params: Parameter[];
  options: H;
}

/** PyTorch's optimizer.state_dict(): state by parameter index (over all groups in order) + group options. */
export interface OptimizerStateDict<H> {
  state: Map<number, ParamState>;
  paramGroups: (H & { params: number[] })[];
}

export abstract class Optimizer<H extends { lr: number }> {
  readonly paramGroups: ParamGroup<H>[];
  protected readonly state = new Map<Parameter, ParamState>();

  constructor(params: Iterable<Parameter> | Iterable<{ params: Iterable<Parameter> } & Partial<H>>, defaults: H) {
    const list = [...params] as unknown[];
    const isGroups = list.length > 0 && !(list[0] instanceof Tensor);
    const groups = isGroups
      ? (list as ({ params: Iterable<Parameter> } & Partial<H>)[])
      : [{ params: list as Parameter[] } as unknown as { params: Iterable<Parameter> } & Partial<H>];
    this.paramGroups = groups.map((g) => {
      const { params: ps, ...rest } = g;
      return { params: [...ps], options: { ...defaults, ...(rest as unknown as Partial<H>) } };
    });
    const seen = new Set<Parameter>();
    for (const g of this.paramGroups) {
      for (const p of g.params) {
        if (seen.has(p)) throw new Error('optimizer got a parameter more than once (in one or several groups)');
        seen.add(p);
      }
    }
  }

  /** Performs one update from the parameters' current gradients. */
  step(): void {
    noGrad(() => {
      for (const group of this.paramGroups) {
        for (const p of group.params) {
          const grad = p.grad;
          if (grad === null) continue;
          try {
            let st = this.state.get(p);
            if (st === undefined) {
              st = {};
              this.state.set(p, st);
            }
            this.updateParameter(p, grad, st, group.options);
          } finally {
            grad.dispose();
          }
        }
      }
    });
  }

  protected abstract updateParameter(p: Parameter, grad: Tensor, state: ParamState, options: H): void;

  /** Drops (default) or zeroes every parameter's gradient. */
  zeroGrad(setToNone = true): void {
    for (const g of this.paramGroups) {
      for (const p of g.params) {
        if (setToNone) p.grad = null;
        else {
          const grad = p.grad;
          if (grad) {
            grad.zero_();
            grad.dispose();
          }
        }
      }
    }
  }

  /** State and options, parameters referred to by index. Tensor values are the live state (do not dispose). */
  stateDict(): OptimizerStateDict<H> {
    const state = new Map<number, ParamState>();
    const paramGroups: (H & { params: number[] })[] = [];
    let index = 0;
    for (const g of this.paramGroups) {
      const ids: number[] = [];
      for (const p of g.params) {
        const st = this.state.get(p);
        if (st !== undefined) state.set(index, st);
        ids.push(index++);
      }
      paramGroups.push({ ...g.options, params: ids });
    }
    return { state, paramGroups };
  }

  /** Restores state saved by stateDict() (copies the tensors; group options such as lr are restored too). */
  loadStateDict(sd: OptimizerStateDict<H>): void {
    if (sd.paramGroups.length !== this.paramGroups.length) {
      throw new Error(
        `optimizer state has ${sd.paramGroups.length} parameter groups, the optimizer has ${this.paramGroups.length}`,
      );
    }
    const flat: Parameter[] = [];
    this.paramGroups.forEach((g, gi) => {
      const saved = sd.paramGroups[gi]!;
      if (saved.params.length !== g.params.length) {
        throw new Error(
          `optimizer group ${gi}: state has ${saved.params.length} parameters, the optimizer has ${g.params.length}`,
        );
      }
      const { params: _ids, ...options } = saved;
      void _ids;
      g.options = { ...g.options, ...(options as unknown as H) };
      flat.push(...g.params);
    });
    for (const st of this.state.values()) disposeState(st);
    this.state.clear();
    for (const [index, st] of sd.state) {
      const p = flat[index];
      if (p === undefined) throw new Error(`optimizer state refers to parameter #${index}, which does not exist`);
      const copy: ParamState = {};
      for (const [k, v] of Object.entries(st)) {
        if (typeof v === 'number') copy[k] = v;
        else {
          const c = v.to({ device: p.device, copy: true });
          copy[k] = c.keep();
        }
      }
      this.state.set(p, copy);
    }
  }

  /** Frees the optimizer state tensors. */
  dispose(): void {
    for (const st of this.state.values()) disposeState(st);
    this.state.clear();
  }
}

function disposeState(st: ParamState): void {
  for (const v of Object.values(st)) if (v instanceof Tensor) v.dispose();
}

/** Creates a state tensor that survives scopes. */
export function stateTensor(t: Tensor): Tensor {
  return t.keep();
}
