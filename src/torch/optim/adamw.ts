// AdamW (Loshchilov & Hutter), step for step the same arithmetic as torch.optim.AdamW's single-tensor path.
// With the fused kernels on, every float32 / float64 CPU parameter is updated by one native call per step
// (one pass over each parameter's arrays instead of nine elementwise ops).
import { noGrad } from '../autograd.js';
import { zerosLike } from '../creation.js';
import { fusedKernelsEnabled } from '../fused.js';
import { native } from '../native.js';
import type { Parameter } from '../nn/module.js';
import type { Tensor } from '../tensor.js';
import { Optimizer, type ParamState, stateTensor } from './optimizer.js';

export interface AdamWOptions {
  lr: number;
  betas: [number, number];
  eps: number;
  weightDecay: number;
  amsgrad: boolean;
  maximize: boolean;
}

const DEFAULTS: AdamWOptions = {
  lr: 1e-3,
  betas: [0.9, 0.999],
  eps: 1e-8,
  weightDecay: 1e-2,
  amsgrad: false,
  maximize: false,
};

export class AdamW extends Optimizer<AdamWOptions> {
  constructor(
    params: Iterable<Parameter> | Iterable<{ params: Iterable<Parameter> } & Partial<AdamWOptions>>,
    options: Partial<AdamWOptions> = {},
  ) {
    const o = { ...DEFAULTS, ...options };
    if (!(o.lr >= 0)) throw new RangeError(`Invalid learning rate: ${o.lr}`);
    if (!(o.eps >= 0)) throw new RangeError(`Invalid epsilon value: ${o.eps}`);
    if (!(o.betas[0] >= 0 && o.betas[0] < 1)) throw new RangeError(`Invalid beta parameter at index 0: ${o.betas[0]}`);
    if (!(o.betas[1] >= 0 && o.betas[1] < 1)) throw new RangeError(`Invalid beta parameter at index 1: ${o.betas[1]}`);
    if (!(o.weightDecay >= 0)) throw new RangeError(`Invalid weight_decay value: ${o.weightDecay}`);
    super(params, o);
  }

  override step(): void {
    if (!fusedKernelsEnabled()) {
      super.step();
      return;
    }
    noGrad(() => {
      for (const group of this.paramGroups) {
        const o = group.options;
        const fused: { p: Parameter; grad: Tensor; st: ParamState }[] = [];
        for (const p of group.params) {
          const grad = p.grad;
          if (grad === null) continue;
          let st = this.state.get(p);
          if (st === undefined) {
            st = {};
            this.state.set(p, st);
          }
          const eligible =
            !o.amsgrad &&
            p.device === 'cpu' &&
            (p.dtype === 'float32' || p.dtype === 'float64') &&
            grad.dtype === p.dtype &&
            p.isContiguous();
          if (!eligible) {
            try {
              this.updateParameter(p, grad, st, o);
            } finally {
              grad.dispose();
            }
            continue;
          }
          if (st.step === undefined) {
            st.step = 0;
            st.exp_avg = stateTensor(zerosLike(p));
            st.exp_avg_sq = stateTensor(zerosLike(p));
          }
          st.step = (st.step as number) + 1;
          fused.push({ p, grad, st });
        }
        if (fused.length === 0) continue;
        try {
          native.fusedAdamwStep(
            fused.map((f) => f.p.handle),
            fused.map((f) => f.grad.handle),
            fused.map((f) => (f.st.exp_avg as Tensor).handle),
            fused.map((f) => (f.st.exp_avg_sq as Tensor).handle),
            fused.map((f) => f.st.step as number),
            o.lr,
            o.betas[0],
            o.betas[1],
            o.eps,
            o.weightDecay,
            o.maximize,
          );
        } finally {
          for (const f of fused) f.grad.dispose();
        }
      }
    });
  }

  protected updateParameter(p: Parameter, gradIn: Tensor, st: ParamState, o: AdamWOptions): void {
    const grad = o.maximize ? gradIn.neg() : gradIn;
    try {
      if (st.step === undefined) {
        st.step = 0;
        st.exp_avg = stateTensor(zerosLike(p));
        st.exp_avg_sq = stateTensor(zerosLike(p));
        if (o.amsgrad) st.max_exp_avg_sq = stateTensor(zerosLike(p));
      }
      const expAvg = st.exp_avg as Tensor;
      const expAvgSq = st.exp_avg_sq as Tensor;
      const step = (st.step as number) + 1;
      st.step = step;
      const [beta1, beta2] = o.betas;

      // Decoupled weight decay.
      p.mul_(1 - o.lr * o.weightDecay);
      expAvg.mul_(beta1).add_(grad, 1 - beta1);
      expAvgSq.mul_(beta2).addcmul_(grad, grad, 1 - beta2);

      const biasCorrection1 = 1 - beta1 ** step;
      const biasCorrection2 = 1 - beta2 ** step;
      const stepSize = o.lr / biasCorrection1;
      const biasCorrection2Sqrt = Math.sqrt(biasCorrection2);

      let second = expAvgSq;
      if (o.amsgrad) {
        const maxSq = st.max_exp_avg_sq as Tensor;
        const m = maxSq.maximum(expAvgSq);
        maxSq.copy_(m);
        m.dispose();
        second = maxSq;
      }
      const denom = second.sqrt();
      denom.div_(biasCorrection2Sqrt).add_(o.eps);
      p.addcdiv_(expAvg, denom, -stepSize);
      denom.dispose();
    } finally {
      if (grad !== gradIn) grad.dispose();
    }
  }
}
