// Optimizer state on disk: tensors in a safetensors file, numbers and group options in its metadata.
import { SafetensorsFile, saveSafetensors } from '../safetensors.js';
import type { Tensor } from '../tensor.js';
import type { Optimizer, OptimizerStateDict, ParamState } from './optimizer.js';

const META_KEY = 'moca.optimizer';

interface SavedMeta {
  version: 1;
  optimizer: string;
  paramGroups: Record<string, unknown>[];
  /** Non-tensor state entries, by parameter index. */
  scalars: Record<string, Record<string, number>>;
}

/** Writes `optimizer.stateDict()` to `file` atomically (tensors as `state.<index>.<name>`). */
export function saveOptimizerState<H extends { lr: number }>(file: string, optimizer: Optimizer<H>): void {
  const sd = optimizer.stateDict();
  const tensors = new Map<string, Tensor>();
  const scalars: SavedMeta['scalars'] = {};
  for (const [index, st] of sd.state) {
    for (const [name, value] of Object.entries(st)) {
      if (typeof value === 'number') (scalars[index] ??= {})[name] = value;
      else tensors.set(`state.${index}.${name}`, value);
    }
  }
  const meta: SavedMeta = {
    version: 1,
    optimizer: optimizer.constructor.name,
    paramGroups: sd.paramGroups as unknown as Record<string, unknown>[],
    scalars,
  };
  saveSafetensors(file, tensors, { [META_KEY]: JSON.stringify(meta) });
}

/** Restores state written by saveOptimizerState into an optimizer over the same parameters. */
export function loadOptimizerState<H extends { lr: number }>(file: string, optimizer: Optimizer<H>): void {
  const f = SafetensorsFile.open(file);
  try {
    const raw = f.metadata[META_KEY];
    if (raw === undefined) throw new Error(`${file}: not an optimizer state file (no '${META_KEY}' metadata)`);
    const meta = JSON.parse(raw) as SavedMeta;
    if (meta.optimizer !== optimizer.constructor.name) {
      throw new Error(
        `${file}: state of a ${meta.optimizer} optimizer cannot be loaded into ${optimizer.constructor.name}`,
      );
    }
    const state = new Map<number, ParamState>();
    for (const [index, values] of Object.entries(meta.scalars)) state.set(Number(index), { ...values });
    const loaded: Tensor[] = [];
    for (const key of f.keys()) {
      const m = /^state\.(\d+)\.(.+)$/.exec(key);
      if (!m) throw new Error(`${file}: unexpected tensor '${key}'`);
      const index = Number(m[1]);
      const t = f.get(key);
      loaded.push(t);
      const st = state.get(index) ?? {};
      st[m[2]!] = t;
      state.set(index, st);
    }
    try {
      optimizer.loadStateDict({ state, paramGroups: meta.paramGroups } as unknown as OptimizerStateDict<H>);
    } finally {
      // loadStateDict copied the tensors; the mapped ones can go.
      for (const t of loaded) t.dispose();
    }
  } finally {
    f.close();
  }
}
