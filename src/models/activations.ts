// Activation functions by their Hugging Face `hidden_act` names.
import {
  F,
  fusedKernelsEnabled,
  fusedSiluMul,
  fusedSiluMul_,
  isGradEnabled,
  scope,
  type Tensor,
} from '../torch/index.js';

/** An activation; `name` is the Hugging Face name it was made from (SwiGLU fuses `silu` with its product). */
export type Activation = ((x: Tensor) => Tensor) & { readonly actName: string };

function named(actName: string, fn: (x: Tensor) => Tensor): Activation {
  return Object.assign(fn, { actName });
}

export function activation(name: string): Activation {
  switch (name) {
    case 'silu':
    case 'swish':
      return named('silu', (x) => x.silu());
    case 'gelu':
      return named(name, (x) => F.gelu(x, 'none'));
    case 'gelu_pytorch_tanh':
    case 'gelu_new':
      return named(name, (x) => F.gelu(x, 'tanh'));
    case 'quick_gelu':
      return named(name, (x) => x.mul(x.mul(1.702).sigmoid()));
    case 'relu':
      return named(name, (x) => x.relu());
    default:
      throw new Error(`unsupported activation '${name}'`);
  }
}

/**
 * `down(act(gate(x)) · up(x))`. With SiLU and the fused kernels on, `silu(g) · u` is one fused op (forward and
 * backward); otherwise each intermediate-size temporary is released as soon as the next one exists.
 */
export function swiGlu(
  x: Tensor,
  gate: { forward(x: Tensor): Tensor },
  up: { forward(x: Tensor): Tensor },
  down: { forward(x: Tensor): Tensor },
  act: Activation,
): Tensor {
  return scope(() => {
    const g = gate.forward(x);
    if (act.actName === 'silu' && fusedKernelsEnabled() && g.device === 'cpu') {
      const u = up.forward(x);
      if (!isGradEnabled() && g.isContiguous()) {
        // Inference: the product overwrites the gate output (two intermediate-size buffers instead of three).
        fusedSiluMul_(g, u);
        u.dispose();
        return down.forward(g);
      }
      const h = fusedSiluMul(g, u);
      g.dispose();
      u.dispose();
      return down.forward(h);
    }
    const a = act(g);
    g.dispose();
    const u = up.forward(x);
    const h = a.mul(u);
    a.dispose();
    u.dispose();
    return down.forward(h);
  });
}
