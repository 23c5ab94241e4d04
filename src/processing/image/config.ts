// Qwen2-VL image-processor configuration: defaults, `preprocessor_config.json` reading and writing.

import { mkdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';

export interface ImageProcessorConfig {
  /** Lower bound on resized height·width (pixels). */
  minPixels: number;
  /** Upper bound on resized height·width (pixels). */
  maxPixels: number;
  /** Vision-encoder patch side (14). */
  patchSize: number;
  /** Frames per temporal patch (2): a still image is repeated this many times. */
  temporalPatchSize: number;
  /** Patches merged per side into one LLM token (2). */
  mergeSize: number;
  imageMean: [number, number, number];
  imageStd: [number, number, number];
  rescaleFactor: number;
  doResize: boolean;
  doRescale: boolean;
  doNormalize: boolean;
  /**
   * Kept for round-tripping `do_convert_rgb`. {@link decodeImage} always yields RGB (alpha composited on white, as
   * transformers' convert_to_rgb does), so the processor never sees anything else.
   */
  doConvertRgb: boolean;
}

/** OpenAI CLIP normalisation constants, as in transformers' OPENAI_CLIP_MEAN / OPENAI_CLIP_STD. */
export const OPENAI_CLIP_MEAN: readonly [number, number, number] = [0.48145466, 0.4578275, 0.40821073];
export const OPENAI_CLIP_STD: readonly [number, number, number] = [0.26862954, 0.26130258, 0.27577711];

/** What `Qwen/Qwen2.5-VL-{3B,7B}-Instruct`'s preprocessor_config.json specifies. */
export const QWEN2_5_VL_IMAGE_PROCESSOR_DEFAULTS: Readonly<ImageProcessorConfig> = Object.freeze({
  minPixels: 3136,
  maxPixels: 12845056,
  patchSize: 14,
  temporalPatchSize: 2,
  mergeSize: 2,
  imageMean: copyTriple(OPENAI_CLIP_MEAN),
  imageStd: copyTriple(OPENAI_CLIP_STD),
  rescaleFactor: 1 / 255,
  doResize: true,
  doRescale: true,
  doNormalize: true,
  doConvertRgb: true,
});

/** MoCa's limits (`min_patch_size=256`, `max_patch_size=1024` merged tokens ⇒ 256…1024 tokens per image). */
export const MOCA_PIXEL_LIMITS: Readonly<Pick<ImageProcessorConfig, 'minPixels' | 'maxPixels'>> = Object.freeze({
  minPixels: 256 * 28 * 28,
  maxPixels: 1024 * 28 * 28,
});

/**
 * transformers' Qwen2VLImageProcessor constructor defaults, used for keys a preprocessor_config.json omits (so a
 * sparse file means the same here as in transformers). They differ from Qwen2.5-VL's file only in max_pixels.
 */
const TRANSFORMERS_CLASS_DEFAULTS: Readonly<ImageProcessorConfig> = Object.freeze({
  ...QWEN2_5_VL_IMAGE_PROCESSOR_DEFAULTS,
  minPixels: 56 * 56,
  maxPixels: 28 * 28 * 1280,
});

export const PREPROCESSOR_CONFIG_FILE = 'preprocessor_config.json';

/** PIL's Resampling.BICUBIC; the only filter implemented (Qwen2-VL's default). */
const PIL_BICUBIC = 3;

const ACCEPTED_PROCESSOR_TYPES = new Set(['Qwen2VLImageProcessor', 'Qwen2VLImageProcessorFast']);

/** A fresh copy of an RGB triple (keeps the tuple type, unlike an array spread). */
export function copyTriple(t: readonly [number, number, number]): [number, number, number] {
  return [t[0], t[1], t[2]];
}

function fail(where: string, message: string): never {
  throw new Error(`${where}: ${message}`);
}

function readPositiveInt(json: Record<string, unknown>, key: string, where: string): number | undefined {
  const v = json[key];
  if (v === undefined || v === null) return undefined;
  if (typeof v !== 'number' || !Number.isSafeInteger(v) || v < 1) fail(where, `"${key}" must be a positive integer`);
  return v;
}

function readBool(json: Record<string, unknown>, key: string, where: string): boolean | undefined {
  const v = json[key];
  if (v === undefined || v === null) return undefined;
  if (typeof v !== 'boolean') fail(where, `"${key}" must be true or false`);
  return v;
}

/** A number or a 3-list (transformers accepts a scalar for all channels). */
function readTriple(json: Record<string, unknown>, key: string, where: string): [number, number, number] | undefined {
  const v = json[key];
  if (v === undefined || v === null) return undefined;
  if (typeof v === 'number' && Number.isFinite(v)) return [v, v, v];
  if (Array.isArray(v) && v.length === 3 && v.every((x) => typeof x === 'number' && Number.isFinite(x))) {
    return [v[0] as number, v[1] as number, v[2] as number];
  }
  return fail(where, `"${key}" must be a number or a list of 3 numbers`);
}

/** Checks value ranges; throws naming the offending field. */
export function validateImageProcessorConfig(
  cfg: Readonly<ImageProcessorConfig>,
  where = 'image processor config',
): void {
  for (const key of ['minPixels', 'maxPixels', 'patchSize', 'temporalPatchSize', 'mergeSize'] as const) {
    if (!Number.isSafeInteger(cfg[key]) || cfg[key] < 1) fail(where, `${key} must be a positive integer`);
  }
  if (cfg.minPixels > cfg.maxPixels) {
    fail(where, `minPixels (${cfg.minPixels}) must not exceed maxPixels (${cfg.maxPixels})`);
  }
  for (const key of ['imageMean', 'imageStd'] as const) {
    const v = cfg[key];
    if (!Array.isArray(v) || v.length !== 3 || !v.every((x) => Number.isFinite(x))) {
      fail(where, `${key} must be 3 finite numbers`);
    }
  }
  if (cfg.imageStd.some((x) => x === 0)) fail(where, 'imageStd must not contain 0');
  if (!Number.isFinite(cfg.rescaleFactor) || cfg.rescaleFactor <= 0) fail(where, 'rescaleFactor must be > 0');
  for (const key of ['doResize', 'doRescale', 'doNormalize', 'doConvertRgb'] as const) {
    if (typeof cfg[key] !== 'boolean') fail(where, `${key} must be a boolean`);
  }
}

/**
 * Builds a config from parsed preprocessor_config.json content (snake_case keys as transformers writes them),
 * applying `overrides` last. Pixel limits come from `min_pixels`/`max_pixels`, else from the newer
 * `size: {shortest_edge, longest_edge}` (which, despite the names, are pixel counts), else the older
 * `size: {min_pixels, max_pixels}`; explicit top-level keys win, as in transformers' backward-compatibility path.
 */
export function parseImageProcessorConfig(
  json: unknown,
  overrides: Partial<ImageProcessorConfig> = {},
  where = PREPROCESSOR_CONFIG_FILE,
): ImageProcessorConfig {
  if (typeof json !== 'object' || json === null || Array.isArray(json)) fail(where, 'expected a JSON object');
  const j = json as Record<string, unknown>;

  const type = j['image_processor_type'];
  if (type !== undefined && !(typeof type === 'string' && ACCEPTED_PROCESSOR_TYPES.has(type))) {
    fail(where, `image_processor_type ${JSON.stringify(type)} is not a Qwen2-VL image processor`);
  }
  const resample = j['resample'];
  if (resample !== undefined && resample !== null && resample !== PIL_BICUBIC) {
    fail(where, `resample=${JSON.stringify(resample)} is not supported (only 3 = BICUBIC, Qwen2-VL's filter)`);
  }

  let sizeMin: number | undefined;
  let sizeMax: number | undefined;
  const size = j['size'];
  if (size !== undefined && size !== null) {
    if (typeof size !== 'object' || Array.isArray(size)) fail(where, '"size" must be an object');
    const s = size as Record<string, unknown>;
    if ('shortest_edge' in s || 'longest_edge' in s) {
      if (!('shortest_edge' in s && 'longest_edge' in s)) {
        fail(where, '"size" must contain both "shortest_edge" and "longest_edge"');
      }
      sizeMin = readPositiveInt(s, 'shortest_edge', `${where} size`);
      sizeMax = readPositiveInt(s, 'longest_edge', `${where} size`);
    } else {
      sizeMin = readPositiveInt(s, 'min_pixels', `${where} size`);
      sizeMax = readPositiveInt(s, 'max_pixels', `${where} size`);
    }
  }

  const d = TRANSFORMERS_CLASS_DEFAULTS;
  const cfg: ImageProcessorConfig = {
    minPixels: readPositiveInt(j, 'min_pixels', where) ?? sizeMin ?? d.minPixels,
    maxPixels: readPositiveInt(j, 'max_pixels', where) ?? sizeMax ?? d.maxPixels,
    patchSize: readPositiveInt(j, 'patch_size', where) ?? d.patchSize,
    temporalPatchSize: readPositiveInt(j, 'temporal_patch_size', where) ?? d.temporalPatchSize,
    mergeSize: readPositiveInt(j, 'merge_size', where) ?? d.mergeSize,
    imageMean: readTriple(j, 'image_mean', where) ?? copyTriple(d.imageMean),
    imageStd: readTriple(j, 'image_std', where) ?? copyTriple(d.imageStd),
    rescaleFactor: (() => {
      const v = j['rescale_factor'];
      if (v === undefined || v === null) return d.rescaleFactor;
      if (typeof v !== 'number') fail(where, '"rescale_factor" must be a number');
      return v;
    })(),
    doResize: readBool(j, 'do_resize', where) ?? d.doResize,
    doRescale: readBool(j, 'do_rescale', where) ?? d.doRescale,
    doNormalize: readBool(j, 'do_normalize', where) ?? d.doNormalize,
    doConvertRgb: readBool(j, 'do_convert_rgb', where) ?? d.doConvertRgb,
    ...stripUndefined(overrides),
  };
  validateImageProcessorConfig(cfg, where);
  return cfg;
}

function stripUndefined<T extends object>(o: T): Partial<T> {
  return Object.fromEntries(Object.entries(o).filter(([, v]) => v !== undefined)) as Partial<T>;
}

/**
 * Reads `dir/preprocessor_config.json`. `overrides` replace file values, e.g. MoCa's
 * `{ minPixels: 256 * 28 * 28, maxPixels: 1024 * 28 * 28 }` (what `AutoProcessor.from_pretrained(…, min_pixels,
 * max_pixels)` does).
 */
export async function loadImageProcessorConfig(
  dir: string,
  overrides: Partial<ImageProcessorConfig> = {},
): Promise<ImageProcessorConfig> {
  const path = join(dir, PREPROCESSOR_CONFIG_FILE);
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code ?? (err as Error).message;
    throw new Error(`Cannot read image processor config ${path}: ${code}`, { cause: err });
  }
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch (err) {
    throw new Error(`${path}: invalid JSON (${(err as Error).message})`, { cause: err });
  }
  return parseImageProcessorConfig(json, overrides, path);
}

/** The preprocessor_config.json object transformers expects for `cfg` (Qwen2VLImageProcessor, Qwen2.5-VL). */
export function imageProcessorConfigToJson(cfg: Readonly<ImageProcessorConfig>): Record<string, unknown> {
  validateImageProcessorConfig(cfg);
  return {
    do_convert_rgb: cfg.doConvertRgb,
    do_normalize: cfg.doNormalize,
    do_rescale: cfg.doRescale,
    do_resize: cfg.doResize,
    image_mean: [...cfg.imageMean],
    image_processor_type: 'Qwen2VLImageProcessor',
    image_std: [...cfg.imageStd],
    max_pixels: cfg.maxPixels,
    merge_size: cfg.mergeSize,
    min_pixels: cfg.minPixels,
    patch_size: cfg.patchSize,
    processor_class: 'Qwen2_5_VLProcessor',
    resample: PIL_BICUBIC,
    rescale_factor: cfg.rescaleFactor,
    // Newer transformers read the limits from `size`; older ones take min_pixels/max_pixels and ignore this.
    size: { longest_edge: cfg.maxPixels, shortest_edge: cfg.minPixels },
    temporal_patch_size: cfg.temporalPatchSize,
  };
}

/** Writes `dir/preprocessor_config.json` (creating `dir` if needed). */
export async function saveImageProcessorConfig(dir: string, cfg: Readonly<ImageProcessorConfig>): Promise<void> {
  const json = imageProcessorConfigToJson(cfg);
  await mkdir(dir, { recursive: true });
  await writeFile(join(dir, PREPROCESSOR_CONFIG_FILE), `${JSON.stringify(json, null, 2)}\n`, 'utf8');
}
