// Basic layers with PyTorch's parameter names and default initialisation.
import { empty, ones, zeros } from '../creation.js';
import type { DTypeLike } from '../dtype.js';
import * as F from '../functional.js';
import type { Tensor } from '../tensor.js';
import { kaimingUniform_, normal_, uniform_, calculateFans } from './init.js';
import { Module, Parameter } from './module.js';
import { shouldInitialize } from './no-init.js';

export interface FactoryOptions {
  dtype?: DTypeLike;
  device?: string;
}

function param(t: Tensor): Parameter {
  const p = new Parameter(t);
  t.dispose();
  return p;
}

/** y = x Wᵀ + b, weight (out, in). Initialised as torch.nn.Linear. */
export class Linear extends Module {
  weight: Parameter;
  bias: Parameter | null;

  constructor(
    readonly inFeatures: number,
    readonly outFeatures: number,
    options: FactoryOptions & { bias?: boolean } = {},
  ) {
    super();
    const f = { dtype: options.dtype ?? 'float32', device: options.device ?? 'cpu' };
    this.weight = param(empty([outFeatures, inFeatures], f));
    if (shouldInitialize()) kaimingUniform_(this.weight, Math.sqrt(5));
    if (options.bias ?? true) {
      this.bias = param(empty([outFeatures], f));
      const bound = inFeatures > 0 ? 1 / Math.sqrt(calculateFans(this.weight).fanIn) : 0;
      if (shouldInitialize()) uniform_(this.bias, -bound, bound);
    } else {
      this.bias = null;
    }
  }

  forward(x: Tensor): Tensor {
    return F.linear(x, this.weight, this.bias);
  }
}

/** A lookup table (num, dim), initialised N(0, 1) as torch.nn.Embedding. */
export class Embedding extends Module {
  weight: Parameter;

  constructor(
    readonly numEmbeddings: number,
    readonly embeddingDim: number,
    options: FactoryOptions & { paddingIdx?: number } = {},
  ) {
    super();
    this.weight = param(
      empty([numEmbeddings, embeddingDim], { dtype: options.dtype ?? 'float32', device: options.device ?? 'cpu' }),
    );
    if (shouldInitialize()) normal_(this.weight);
    this.paddingIdx = options.paddingIdx;
  }

  private readonly paddingIdx: number | undefined;

  forward(indices: Tensor): Tensor {
    return F.embedding(indices, this.weight, this.paddingIdx === undefined ? {} : { paddingIdx: this.paddingIdx });
  }
}

/** Root-mean-square norm over the last dim with a learned scale (Qwen2RMSNorm semantics). */
export class RMSNorm extends Module {
  weight: Parameter;

  constructor(
    readonly hiddenSize: number,
    readonly eps = 1e-6,
    options: FactoryOptions = {},
  ) {
    super();
    this.weight = param(ones([hiddenSize], { dtype: options.dtype ?? 'float32', device: options.device ?? 'cpu' }));
  }

  forward(x: Tensor): Tensor {
    return F.rmsNorm(x, this.weight, this.eps);
  }
}

export class LayerNorm extends Module {
  weight: Parameter | null;
  bias: Parameter | null;

  constructor(
    readonly normalizedShape: number | readonly number[],
    readonly eps = 1e-5,
    options: FactoryOptions & { elementwiseAffine?: boolean; bias?: boolean } = {},
  ) {
    super();
    const shape = typeof normalizedShape === 'number' ? [normalizedShape] : [...normalizedShape];
    const f = { dtype: options.dtype ?? 'float32', device: options.device ?? 'cpu' };
    const affine = options.elementwiseAffine ?? true;
    this.weight = affine ? param(ones(shape, f)) : null;
    this.bias = affine && (options.bias ?? true) ? param(zeros(shape, f)) : null;
  }

  forward(x: Tensor): Tensor {
    const shape = typeof this.normalizedShape === 'number' ? [this.normalizedShape] : [...this.normalizedShape];
    return F.layerNorm(x, shape, this.weight, this.bias, this.eps);
  }
}

export class Dropout extends Module {
  constructor(readonly p = 0.5) {
    super();
  }

  forward(x: Tensor): Tensor {
    return F.dropout(x, this.p, this.training);
  }
}
