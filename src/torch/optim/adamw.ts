// AdamW (Loshchilov & Hutter), step for step the same arithmetic as torch.optim.AdamW's single-tensor path.
import { zerosLike } from '../creation.js';
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
