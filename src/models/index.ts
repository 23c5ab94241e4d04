// Models: Qwen2.5-VL as a bidirectional (MoCa) or causal embedding model.
export * from './qwen2_5_vl/config.js';
export * from './qwen2_5_vl/model.js';
export * from './qwen2_5_vl/weights.js';
export * from './qwen2_5_vl/presets.js';
export * from './qwen2_5_vl/inference-precision.js';
export { ropePositionIds, mropeCosSin } from './qwen2_5_vl/rope.js';
export {
  type GridThw,
  VisionTransformer,
  windowLayout,
  segmentAttention,
  imageTokenCount,
} from './qwen2_5_vl/vision.js';
export { type AttentionMode, type DecoderContext, DecoderLayer, TextModel } from './qwen2_5_vl/text.js';
export { attention, repeatKv, rotateHalf } from './attention.js';
