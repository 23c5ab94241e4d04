// Activation functions by their Hugging Face `hidden_act` names.
import { F, scope, type Tensor } from '../torch/index.js';

export type Activation = (x: Tensor) => Tensor;

export function activation(name: string): Activation {
  switch (name) {
    case 'silu':
    case 'swish':
      return (x) => x.silu();
    case 'gelu':
      return (x) => F.gelu(x, 'none');
    case 'gelu_pytorch_tanh':
    case 'gelu_new':
      return (x) => F.gelu(x, 'tanh');
    case 'quick_gelu':
      return (x) => x.mul(x.mul(1.702).sigmoid());
    case 'relu':
      return (x) => x.relu();
    default:
      throw new Error(`unsupported activation '${name}'`);
  }
}

/** `down(act(gate(x)) · up(x))`, releasing each intermediate-size temporary as soon as the next one exists. */
export function swiGlu(
  x: Tensor,
  gate: { forward(x: Tensor): Tensor },
  up: { forward(x: Tensor): Tensor },
  down: { forward(x: Tensor): Tensor },
  act: Activation,
): Tensor {
  return scope(() => {
    const g = gate.forward(x);
    const a = act(g);
    g.dispose();
    const u = up.forward(x);
    const h = a.mul(u);
    a.dispose();
    u.dispose();
    return down.forward(h);
  });
}
