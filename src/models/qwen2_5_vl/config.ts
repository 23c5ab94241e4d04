// Qwen2.5-VL configuration, read from and written to a Hugging Face `config.json`.
//
// transformers ≤ 4.51 keeps the language-model keys at the top level; newer versions also nest them under
// `text_config`. Both are read; the flat layout (what MoCa's checkpoints use) is written, with `text_config`
// mirrored so that newer transformers read it too.
import { existsSync, readFileSync } from 'node:fs';
import path from 'node:path';

export interface VisionConfig {
  depth: number;
  hiddenSize: number;
  hiddenAct: string;
  intermediateSize: number;
  numHeads: number;
  inChannels: number;
  outHiddenSize: number;
  patchSize: number;
  spatialMergeSize: number;
  temporalPatchSize: number;
  windowSize: number;
  fullattBlockIndexes: number[];
  tokensPerSecond: number;
}

export interface Qwen25VLConfig {
  vocabSize: number;
  hiddenSize: number;
  intermediateSize: number;
  numHiddenLayers: number;
  numAttentionHeads: number;
  numKeyValueHeads: number;
  hiddenAct: string;
  rmsNormEps: number;
  ropeTheta: number;
  mropeSection: [number, number, number];
  maxPositionEmbeddings: number;
  tieWordEmbeddings: boolean;
  imageTokenId: number;
  videoTokenId: number;
  visionStartTokenId: number;
  visionEndTokenId: number;
  visionTokenId: number;
  bosTokenId: number | null;
  eosTokenId: number | null;
  torchDtype: string;
  vision: VisionConfig;
  /** Keys of the original file that this class does not interpret, written back unchanged. */
  extra: Record<string, unknown>;
}

export class ConfigError extends Error {}

export const SUPPORTED_MODEL_TYPES = ['qwen2_5_vl'];

type Json = Record<string, unknown>;

function pick(sources: Json[], key: string): unknown {
  for (const s of sources) if (s[key] !== undefined) return s[key];
  return undefined;
}

/** Parses a config.json object; `where` names the file in error messages. */
export function parseConfig(raw: Json, where = 'config.json'): Qwen25VLConfig {
  const fail = (msg: string): never => {
    throw new ConfigError(`${where}: ${msg}`);
  };
  const modelType = raw.model_type;
  if (typeof modelType !== 'string' || !SUPPORTED_MODEL_TYPES.includes(modelType)) {
    fail(`unsupported model_type '${String(modelType)}' (supported: ${SUPPORTED_MODEL_TYPES.join(', ')})`);
  }
  const text = (raw.text_config ?? {}) as Json;
  const sources = [raw, text];
  const num = (key: string, fallback?: number): number => {
    const v = pick(sources, key) ?? fallback;
    if (typeof v !== 'number' || !Number.isFinite(v)) fail(`missing or invalid numeric key '${key}'`);
    return v as number;
  };
  const vraw = raw.vision_config as Json | undefined;
  if (vraw === undefined || typeof vraw !== 'object') fail("missing 'vision_config'");
  const v = vraw as Json;
  const vnum = (key: string, fallback?: number): number => {
    const x = v[key] ?? fallback;
    if (typeof x !== 'number' || !Number.isFinite(x)) fail(`missing or invalid numeric key 'vision_config.${key}'`);
    return x as number;
  };
  const ropeScaling = (pick(sources, 'rope_scaling') ?? {}) as Json;
  const section = ropeScaling.mrope_section;
  if (!Array.isArray(section) || section.length !== 3 || !section.every((x) => Number.isInteger(x))) {
    fail('rope_scaling.mrope_section must be three integers (e.g. [16, 24, 24])');
  }
  const hiddenSize = num('hidden_size');
  const heads = num('num_attention_heads');
  if (hiddenSize % heads !== 0) fail(`hidden_size ${hiddenSize} is not divisible by num_attention_heads ${heads}`);
  const headDim = hiddenSize / heads;
  const mrope = section as [number, number, number];
  if (mrope[0] + mrope[1] + mrope[2] !== headDim / 2) {
    fail(`mrope_section ${JSON.stringify(mrope)} must sum to head_dim/2 = ${headDim / 2}`);
  }
  const kvHeads = num('num_key_value_heads', heads);
  if (heads % kvHeads !== 0) fail(`num_attention_heads ${heads} is not a multiple of num_key_value_heads ${kvHeads}`);
  const vHidden = vnum(v.hidden_size === undefined && v.embed_dim !== undefined ? 'embed_dim' : 'hidden_size');
  const vHeads = vnum('num_heads');
  if (vHidden % vHeads !== 0) fail(`vision hidden_size ${vHidden} is not divisible by num_heads ${vHeads}`);
  if ((vHidden / vHeads) % 4 !== 0) fail(`vision head dim ${vHidden / vHeads} must be a multiple of 4 (2-D rotary)`);
  const nullableId = (key: string): number | null => {
    const x = pick(sources, key);
    return typeof x === 'number' ? x : null;
  };
  const known = new Set([
    'model_type',
    'architectures',
    'vocab_size',
    'hidden_size',
    'intermediate_size',
    'num_hidden_layers',
    'num_attention_heads',
    'num_key_value_heads',
    'hidden_act',
    'rms_norm_eps',
    'rope_theta',
    'rope_scaling',
    'max_position_embeddings',
    'tie_word_embeddings',
    'image_token_id',
    'video_token_id',
    'vision_start_token_id',
    'vision_end_token_id',
    'vision_token_id',
    'bos_token_id',
    'eos_token_id',
    'torch_dtype',
    'vision_config',
    'text_config',
  ]);
  const extra: Record<string, unknown> = {};
  for (const [k, val] of Object.entries(raw)) if (!known.has(k)) extra[k] = val;
  return {
    vocabSize: num('vocab_size'),
    hiddenSize,
    intermediateSize: num('intermediate_size'),
    numHiddenLayers: num('num_hidden_layers'),
    numAttentionHeads: heads,
    numKeyValueHeads: kvHeads,
    hiddenAct: String(pick(sources, 'hidden_act') ?? 'silu'),
    rmsNormEps: num('rms_norm_eps', 1e-6),
    ropeTheta: num('rope_theta', 1e6),
    mropeSection: mrope,
    maxPositionEmbeddings: num('max_position_embeddings', 128000),
    tieWordEmbeddings: Boolean(pick(sources, 'tie_word_embeddings') ?? false),
    imageTokenId: num('image_token_id'),
    videoTokenId: num('video_token_id', -1),
    visionStartTokenId: num('vision_start_token_id'),
    visionEndTokenId: num('vision_end_token_id'),
    visionTokenId: num('vision_token_id', -1),
    bosTokenId: nullableId('bos_token_id'),
    eosTokenId: nullableId('eos_token_id'),
    torchDtype: String(pick(sources, 'torch_dtype') ?? 'bfloat16'),
    vision: {
      depth: vnum('depth'),
      hiddenSize: vHidden,
      hiddenAct: String(v.hidden_act ?? 'silu'),
      intermediateSize: vnum('intermediate_size'),
      numHeads: vHeads,
      inChannels: vnum('in_chans', vnum('in_channels', 3)),
      outHiddenSize: vnum('out_hidden_size', hiddenSize),
      patchSize: vnum('patch_size', vnum('spatial_patch_size', 14)),
      spatialMergeSize: vnum('spatial_merge_size', 2),
      temporalPatchSize: vnum('temporal_patch_size', 2),
      windowSize: vnum('window_size', 112),
      fullattBlockIndexes: Array.isArray(v.fullatt_block_indexes) ? (v.fullatt_block_indexes as number[]) : [],
      tokensPerSecond: vnum('tokens_per_second', 2),
    },
    extra,
  };
}

export function loadConfig(dir: string): Qwen25VLConfig {
  const file = path.join(dir, 'config.json');
  if (!existsSync(file)) throw new ConfigError(`${dir}: no config.json (is this a Hugging Face model directory?)`);
  let raw: Json;
  try {
    raw = JSON.parse(readFileSync(file, 'utf8')) as Json;
  } catch (e) {
    throw new ConfigError(`${file}: not valid JSON (${(e as Error).message})`);
  }
  return parseConfig(raw, file);
}

/** The config.json object transformers expects for this configuration. */
export function toHfConfig(c: Qwen25VLConfig): Json {
  const textKeys: Json = {
    vocab_size: c.vocabSize,
    hidden_size: c.hiddenSize,
    intermediate_size: c.intermediateSize,
    num_hidden_layers: c.numHiddenLayers,
    num_attention_heads: c.numAttentionHeads,
    num_key_value_heads: c.numKeyValueHeads,
    hidden_act: c.hiddenAct,
    rms_norm_eps: c.rmsNormEps,
    rope_theta: c.ropeTheta,
    rope_scaling: { type: 'mrope', rope_type: 'default', mrope_section: [...c.mropeSection] },
    max_position_embeddings: c.maxPositionEmbeddings,
    tie_word_embeddings: c.tieWordEmbeddings,
    bos_token_id: c.bosTokenId,
    eos_token_id: c.eosTokenId,
  };
  return {
    ...c.extra,
    architectures: ['Qwen2_5_VLForConditionalGeneration'],
    model_type: 'qwen2_5_vl',
    ...textKeys,
    image_token_id: c.imageTokenId,
    video_token_id: c.videoTokenId,
    vision_start_token_id: c.visionStartTokenId,
    vision_end_token_id: c.visionEndTokenId,
    vision_token_id: c.visionTokenId,
    torch_dtype: c.torchDtype,
    vision_config: {
      model_type: 'qwen2_5_vl',
      depth: c.vision.depth,
      hidden_size: c.vision.hiddenSize,
      hidden_act: c.vision.hiddenAct,
      intermediate_size: c.vision.intermediateSize,
      num_heads: c.vision.numHeads,
      in_chans: c.vision.inChannels,
      out_hidden_size: c.vision.outHiddenSize,
      patch_size: c.vision.patchSize,
      spatial_patch_size: c.vision.patchSize,
      spatial_merge_size: c.vision.spatialMergeSize,
      temporal_patch_size: c.vision.temporalPatchSize,
      window_size: c.vision.windowSize,
      fullatt_block_indexes: [...c.vision.fullattBlockIndexes],
      tokens_per_second: c.vision.tokensPerSecond,
    },
    text_config: { model_type: 'qwen2_5_vl_text', ...textKeys },
  };
}

export function headDim(c: Qwen25VLConfig): number {
  return c.hiddenSize / c.numAttentionHeads;
}
