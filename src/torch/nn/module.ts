// nn.Module: parameters, buffers and children discovered from the instance's fields, with PyTorch's
// state-dict naming (`layers.0.self_attn.q_proj.weight`). Fields that must match Hugging Face checkpoint
// names are spelled as in transformers (snake_case), so that state-dict keys equal checkpoint keys.
import { noGrad } from '../autograd.js';
import type { DTypeLike } from '../dtype.js';
import { native } from '../native.js';
import { Tensor } from '../tensor.js';

/** A tensor that is a module's learnable weight: a leaf that requires grad and survives scopes. */
export class Parameter extends Tensor {
  /** Wraps `data`'s memory (shared, as `nn.Parameter(t)`); `data` itself stays owned by the caller. */
  constructor(data: Tensor, requiresGrad = true) {
    super(native.detach(data.handle));
    this.keep();
    if (requiresGrad) this.requiresGrad_(true);
  }
}

export interface LoadStateDictResult {
  missingKeys: string[];
  unexpectedKeys: string[];
}

export class StateDictError extends Error {}

interface BufferEntry {
  tensor: Tensor | null;
  persistent: boolean;
}

const INTERNAL_FIELDS = new Set(['training', 'buffers_']);

export abstract class Module {
  training = true;
  private readonly buffers_ = new Map<string, BufferEntry>();

  // ---------------------------------------------------------------------------------------------- discovery

  /** Direct children: fields holding a Module (ModuleList children are named by index). */
  namedChildren(): [string, Module][] {
    const out: [string, Module][] = [];
    for (const [name, value] of Object.entries(this)) {
      if (INTERNAL_FIELDS.has(name)) continue;
      if (value instanceof Module) out.push([name, value]);
    }
    return out;
  }

  /** Own parameters (fields holding a Parameter), not recursing. */
  protected ownParameters(): [string, Parameter][] {
    const out: [string, Parameter][] = [];
    for (const [name, value] of Object.entries(this)) {
      if (INTERNAL_FIELDS.has(name)) continue;
      if (value instanceof Parameter) out.push([name, value]);
    }
    return out;
  }

  namedModules(prefix = ''): [string, Module][] {
    const out: [string, Module][] = [[prefix, this]];
    for (const [name, child] of this.namedChildren()) {
      out.push(...child.namedModules(prefix === '' ? name : `${prefix}.${name}`));
    }
    return out;
  }

  namedParameters(prefix = ''): [string, Parameter][] {
    const out: [string, Parameter][] = [];
    const seen = new Set<Parameter>();
    for (const [modName, mod] of this.namedModules(prefix)) {
      for (const [name, p] of mod.ownParameters()) {
        if (seen.has(p)) continue; // tied weights are listed once, under their first name (as PyTorch)
        seen.add(p);
        out.push([modName === '' ? name : `${modName}.${name}`, p]);
      }
    }
    return out;
  }

  parameters(): Parameter[] {
    return this.namedParameters().map(([, p]) => p);
  }

  namedBuffers(prefix = '', options: { persistentOnly?: boolean } = {}): [string, Tensor][] {
    const out: [string, Tensor][] = [];
    for (const [modName, mod] of this.namedModules(prefix)) {
      for (const [name, entry] of mod.buffers_) {
        if (entry.tensor === null || (options.persistentOnly && !entry.persistent)) continue;
        out.push([modName === '' ? name : `${modName}.${name}`, entry.tensor]);
      }
    }
    return out;
  }

  /** Registers a buffer (state that is not a parameter). Non-persistent buffers are left out of stateDict. */
  registerBuffer(name: string, tensor: Tensor | null, persistent = true): void {
    const old = this.buffers_.get(name)?.tensor;
    if (old && old !== tensor) old.dispose();
    tensor?.keep();
    this.buffers_.set(name, { tensor, persistent });
  }

  getBuffer(name: string): Tensor {
    const t = this.buffers_.get(name)?.tensor;
    if (!t) throw new Error(`${this.constructor.name} has no buffer '${name}'`);
    return t;
  }

  numParameters(options: { trainableOnly?: boolean } = {}): number {
    return this.parameters()
      .filter((p) => !options.trainableOnly || p.requiresGrad)
      .reduce((n, p) => n + p.numel(), 0);
  }

  // ---------------------------------------------------------------------------------------------- modes

  train(mode = true): this {
    for (const [, m] of this.namedModules()) m.training = mode;
    return this;
  }

  eval(): this {
    return this.train(false);
  }

  /** Freezes (false) or unfreezes every parameter. */
  requiresGrad_(requiresGrad = true): this {
    for (const p of this.parameters()) p.requiresGrad_(requiresGrad);
    return this;
  }

  /** Clears gradients: drops them (default, as PyTorch ≥ 2.0) or zeroes them in place. */
  zeroGrad(setToNone = true): void {
    for (const p of this.parameters()) {
      if (setToNone) {
        p.grad = null;
      } else {
        const g = p.grad;
        if (g) {
          g.zero_();
          g.dispose();
        }
      }
    }
  }

  /** Converts every parameter and buffer in place (the Parameter objects stay the same, as `module.to()`). */
  to(target: { dtype?: DTypeLike; device?: string }): this {
    noGrad(() => {
      for (const p of this.parameters()) {
        const moved = p.to({ dtype: target.dtype ?? p.dtype, device: target.device ?? p.device });
        p.setData_(moved);
        moved.dispose();
      }
      for (const [, mod] of this.namedModules()) {
        for (const [name, entry] of mod.buffers_) {
          if (entry.tensor === null) continue;
          const t = entry.tensor;
          const floating = t.dtype.startsWith('float') || t.dtype === 'bfloat16';
          const moved = t.to({
            dtype: floating ? (target.dtype ?? t.dtype) : t.dtype,
            device: target.device ?? t.device,
          });
          mod.registerBuffer(name, moved, entry.persistent);
        }
      }
    });
    return this;
  }

  /** Calls `fn` on every module (children first is not guaranteed; order is pre-order). */
  apply(fn: (m: Module) => void): this {
    for (const [, m] of this.namedModules()) fn(m);
    return this;
  }

  // ---------------------------------------------------------------------------------------------- state

  /**
   * Parameters and persistent buffers by name. The values are the module's live tensors (not copies): do not
   * dispose them.
   */
  stateDict(): Map<string, Tensor> {
    const out = new Map<string, Tensor>();
    for (const [n, p] of this.namedParametersWithAliases()) out.set(n, p);
    for (const [n, b] of this.namedBuffers('', { persistentOnly: true })) out.set(n, b);
    return out;
  }

  /** Every name a parameter is reachable under (tied weights appear under each name, as PyTorch's state_dict). */
  private namedParametersWithAliases(): [string, Parameter][] {
    const out: [string, Parameter][] = [];
    for (const [modName, mod] of this.namedModules()) {
      for (const [name, p] of mod.ownParameters()) out.push([modName === '' ? name : `${modName}.${name}`, p]);
    }
    return out;
  }

  /**
   * Copies values into the parameters and buffers (casting dtype/device as needed). With `strict` (default),
   * missing or unexpected keys throw a StateDictError listing them; otherwise they are returned. A shape
   * mismatch always throws, naming the key and both shapes.
   */
  loadStateDict(
    stateDict: Map<string, Tensor> | Record<string, Tensor>,
    options: { strict?: boolean } = {},
  ): LoadStateDictResult {
    const strict = options.strict ?? true;
    const source = stateDict instanceof Map ? stateDict : new Map(Object.entries(stateDict));
    const own = this.stateDict();
    const missingKeys = [...own.keys()].filter((k) => !source.has(k));
    const unexpectedKeys = [...source.keys()].filter((k) => !own.has(k));
    if (strict && (missingKeys.length > 0 || unexpectedKeys.length > 0)) {
      throw new StateDictError(
        `Error(s) in loading state dict for ${this.constructor.name}:` +
          (missingKeys.length ? `\n  missing keys (${missingKeys.length}): ${preview(missingKeys)}` : '') +
          (unexpectedKeys.length ? `\n  unexpected keys (${unexpectedKeys.length}): ${preview(unexpectedKeys)}` : ''),
      );
    }
    const mismatches: string[] = [];
    for (const [key, target] of own) {
      const value = source.get(key);
      if (value === undefined) continue;
      if (!sameShape(value.shape, target.shape)) {
        mismatches.push(`${key}: checkpoint [${value.shape.join(', ')}] vs model [${target.shape.join(', ')}]`);
      }
    }
    if (mismatches.length > 0) {
      throw new StateDictError(
        `size mismatch in loading state dict for ${this.constructor.name}:\n  ${mismatches.join('\n  ')}`,
      );
    }
    noGrad(() => {
      for (const [key, target] of own) {
        const value = source.get(key);
        if (value !== undefined) target.copy_(value);
      }
    });
    return { missingKeys, unexpectedKeys };
  }
}

function sameShape(a: readonly number[], b: readonly number[]): boolean {
  return a.length === b.length && a.every((x, i) => x === b[i]);
}

function preview(keys: string[]): string {
  const shown = keys.slice(0, 20).join(', ');
  return keys.length > 20 ? `${shown}, … (${keys.length - 20} more)` : shown;
}

/** An indexable list of modules; children are named '0', '1', … (nn.ModuleList). */
export class ModuleList<M extends Module = Module> extends Module {
  private readonly items: M[];

  constructor(items: Iterable<M> = []) {
    super();
    this.items = [...items];
  }

  override namedChildren(): [string, Module][] {
    return this.items.map((m, i) => [String(i), m]);
  }

  get length(): number {
    return this.items.length;
  }

  get(i: number): M {
    const m = this.items[i < 0 ? this.items.length + i : i];
    if (m === undefined) throw new RangeError(`ModuleList index ${i} out of range (length ${this.items.length})`);
    return m;
  }

  push(m: M): void {
    this.items.push(m);
  }

  /** Replaces item i (e.g. by an inference-only variant of the same layer). */
  set(i: number, m: M): void {
    if (!Number.isInteger(i) || i < 0 || i >= this.items.length) {
      throw new RangeError(`ModuleList index ${i} out of range (length ${this.items.length})`);
    }
    this.items[i] = m;
  }

  [Symbol.iterator](): Iterator<M> {
    return this.items[Symbol.iterator]();
  }
}
