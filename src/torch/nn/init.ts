// Parameter initialisers (torch.nn.init), in place, without recording gradients.
import { noGrad } from '../autograd.js';
import type { Tensor } from '../tensor.js';

/** fan_in and fan_out as torch computes them (dims 0 and 1 times the receptive field). */
export function calculateFans(t: Tensor): { fanIn: number; fanOut: number } {
  if (t.ndim < 2) throw new RangeError('fan in/out cannot be computed for tensors with fewer than 2 dimensions');
  const receptive = t.shape.slice(2).reduce((a, b) => a * b, 1);
  return { fanIn: t.shape[1]! * receptive, fanOut: t.shape[0]! * receptive };
}

export function uniform_(t: Tensor, a = 0, b = 1): Tensor {
  return noGrad(() => t.uniform_(a, b));
}

export function normal_(t: Tensor, mean = 0, std = 1): Tensor {
  return noGrad(() => t.normal_(mean, std));
}

export function zeros_(t: Tensor): Tensor {
  return noGrad(() => t.zero_());
}

export function ones_(t: Tensor): Tensor {
  return noGrad(() => t.fill_(1));
}

/** torch.nn.init.kaiming_uniform_ with leaky-ReLU gain, mode fan_in. */
export function kaimingUniform_(t: Tensor, a = 0): Tensor {
  const { fanIn } = calculateFans(t);
  const gain = Math.sqrt(2 / (1 + a * a));
  const bound = Math.sqrt(3) * (gain / Math.sqrt(fanIn));
  return uniform_(t, -bound, bound);
}

export function xavierUniform_(t: Tensor, gain = 1): Tensor {
  const { fanIn, fanOut } = calculateFans(t);
  const bound = gain * Math.sqrt(6 / (fanIn + fanOut));
  return uniform_(t, -bound, bound);
}
