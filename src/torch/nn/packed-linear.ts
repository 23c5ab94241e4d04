// Inference-only linear layers with low-precision packed weights (native/src/quant.cc): bfloat16 (vdpbf16ps,
// float32 accumulation) or int8 with per-output-channel scales (activations quantised per token on the fly,
// vpdpbusd with int32 accumulation). Activations stay float32 in and out.
import { noGrad } from '../autograd.js';
import { native } from '../native.js';
import { scope } from '../scope.js';
import { type Tensor, wrap } from '../tensor.js';
import { Linear } from './layers.js';
import { Module, ModuleList, Parameter } from './module.js';

export type PackedWeightFormat = 'bfloat16' | 'int8';

/** A (out, in) weight packed for the low-precision kernels. */
export class PackedLinearWeight {
  private constructor(
    readonly format: PackedWeightFormat,
    readonly outFeatures: number,
    readonly inFeatures: number,
    /** Packed bytes (uint8). */
    readonly packed: Tensor,
    /** int8: per-output-channel scales (float32); null for bfloat16. */
    readonly scales: Tensor | null,
    /** int8: 128 · Σ_k q[c][k] per channel (int32), undoing the activations' +128 offset. */
    readonly compensation: Tensor | null,
  ) {}

  static pack(weight: Tensor, format: PackedWeightFormat): PackedLinearWeight {
    if (weight.dim() !== 2) throw new RangeError(`packLinearWeight: weight must be 2-D, got [${weight.shape}]`);
    const [packed, scales, comp] = native.packLinearWeight(weight.handle, format).map((h) => wrap(h).keep()) as [
      Tensor,
      Tensor,
      Tensor,
    ];
    const int8 = format === 'int8';
    if (!int8) {
      scales.dispose();
      comp.dispose();
    }
    return new PackedLinearWeight(
      format,
      weight.size(0),
      weight.size(1),
      packed,
      int8 ? scales : null,
      int8 ? comp : null,
    );
  }

  /** The float32 (out, in) matrix the packed weight represents (bf16 values, or q · scale for int8). */
  unpack(): Tensor {
    return wrap(
      native.unpackLinearWeight(
        this.packed.handle,
        this.format,
        this.outFeatures,
        this.inFeatures,
        this.scales?.handle ?? null,
      ),
    );
  }

  /** Bytes held by the packed weight and its per-channel data. */
  get bytes(): number {
    const b = (t: Tensor | null) => (t === null ? 0 : t.numel() * t.elementSize());
    return b(this.packed) + b(this.scales) + b(this.compensation);
  }

  dispose(): void {
    this.packed.dispose();
    this.scales?.dispose();
    this.compensation?.dispose();
  }
}

/** y = x · Wᵀ + b with a packed weight; x float (…, in) → float32 (…, out). Not differentiable. */
export function packedLinear(input: Tensor, weight: PackedLinearWeight, bias: Tensor | null = null): Tensor {
  return wrap(
    native.packedLinear(
      input.handle,
      weight.packed.handle,
      weight.format,
      weight.outFeatures,
      weight.inFeatures,
      weight.scales?.handle ?? null,
      weight.compensation?.handle ?? null,
      bias?.handle ?? null,
    ),
  );
}

/** Which kernels run each packed format on this CPU, e.g. `bfloat16:avx512_bf16,int8:avx512_vnni`. */
export function packedLinearKernels(): string {
  return native.packedLinearKernels();
}

/**
 * An inference-only Linear with a packed weight (made by `packLinearLayers`). It has no parameters: a model
 * holding these can embed but not train or be saved.
 */
export class PackedLinear extends Module {
  private constructor(
    readonly weightPacked: PackedLinearWeight,
    private readonly biasF32: Tensor | null,
  ) {
    super();
    this.training = false;
  }

  static fromLinear(linear: Linear, format: PackedWeightFormat): PackedLinear {
    return noGrad(() => {
      const weight = PackedLinearWeight.pack(linear.weight, format);
      const bias = linear.bias === null ? null : scope(() => linear.bias!.float().contiguous()).keep();
      return new PackedLinear(weight, bias);
    });
  }

  get inFeatures(): number {
    return this.weightPacked.inFeatures;
  }

  get outFeatures(): number {
    return this.weightPacked.outFeatures;
  }

  /** Bytes read per forward: the packed weight, its scales and the float32 bias. */
  get bytes(): number {
    return this.weightPacked.bytes + (this.biasF32 === null ? 0 : this.biasF32.numel() * 4);
  }

  forward(x: Tensor): Tensor {
    return packedLinear(x, this.weightPacked, this.biasF32);
  }

  dispose(): void {
    this.weightPacked.dispose();
    this.biasF32?.dispose();
  }
}

/**
 * Replaces every `Linear` under `root` (fields and ModuleList items) by a PackedLinear in `format`, releasing
 * the original weights. `filter` (dotted module name → keep original when false) selects layers. Returns the
 * names of the packed layers.
 */
export function packLinearLayers(
  root: Module,
  format: PackedWeightFormat,
  options: { filter?: (name: string) => boolean } = {},
): string[] {
  const packed: string[] = [];
  // Weights also held by another module (a tied LM head) are packed but not released.
  const shared = new Set<Tensor>();
  for (const [, mod] of root.namedModules()) {
    if (mod instanceof Linear) continue;
    for (const value of Object.values(mod)) if (value instanceof Parameter) shared.add(value);
  }
  const visit = (mod: Module, prefix: string): void => {
    for (const [name, child] of mod.namedChildren()) {
      const full = prefix === '' ? name : `${prefix}.${name}`;
      if (child instanceof Linear && (options.filter?.(full) ?? true)) {
        const replacement = PackedLinear.fromLinear(child, format);
        if (mod instanceof ModuleList) mod.set(Number(name), replacement);
        else (mod as unknown as Record<string, Module>)[name] = replacement;
        if (!shared.has(child.weight)) child.weight.dispose();
        if (child.bias !== null && !shared.has(child.bias)) child.bias.dispose();
        packed.push(full);
      } else {
        visit(child, full);
      }
    }
  };
  visit(root, '');
  return packed;
}
