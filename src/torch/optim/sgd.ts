// SGD with momentum / dampening / Nesterov / L2 weight decay, as torch.optim.SGD.
import type { Parameter } from '../nn/module.js';
import type { Tensor } from '../tensor.js';
import { Optimizer, type ParamState, stateTensor } from './optimizer.js';

export interface SGDOptions {
  lr: number;
  momentum: number;
  dampening: number;
  weightDecay: number;
  nesterov: boolean;
  maximize: boolean;
}

const DEFAULTS: SGDOptions = { lr: 1e-3, momentum: 0, dampening: 0, weightDecay: 0, nesterov: false, maximize: false };

export class SGD extends Optimizer<SGDOptions> {
  constructor(
    params: Iterable<Parameter> | Iterable<{ params: Iterable<Parameter> } & Partial<SGDOptions>>,
    options: Partial<SGDOptions> = {},
  ) {
    const o = { ...DEFAULTS, ...options };
    if (!(o.lr >= 0)) throw new RangeError(`Invalid learning rate: ${o.lr}`);
    if (o.nesterov && (o.momentum <= 0 || o.dampening !== 0)) {
      throw new RangeError('Nesterov momentum requires a momentum and zero dampening');
    }
    super(params, o);
  }

  protected updateParameter(p: Parameter, grad: Tensor, st: ParamState, o: SGDOptions): void {
    const owned: Tensor[] = [];
    try {
      let d = grad;
      if (o.maximize) owned.push((d = d.neg()));
      if (o.weightDecay !== 0) owned.push((d = d.add(p, o.weightDecay)));
      if (o.momentum !== 0) {
        let buf = st.momentum_buffer as Tensor | undefined;
        if (buf === undefined) {
          buf = stateTensor(d.detach().clone());
          st.momentum_buffer = buf;
        } else {
          buf.mul_(o.momentum).add_(d, 1 - o.dampening);
        }
        if (o.nesterov) owned.push((d = d.add(buf, o.momentum)));
        else d = buf;
      }
      p.add_(d, -o.lr);
    } finally {
      for (const t of owned) t.dispose();
    }
  }
}
