// Qwen2-VL image pipeline: decode (sharp) → smart_resize + PIL-exact bicubic → normalise → merge-window patches.
export type { RgbImage } from './types.js';
export { assertRgbImage } from './types.js';
export { decodeImage, parseDataUri, ImageDecodeError, type DecodeImageOptions, type ImageSource } from './decode.js';
export { resizeBicubic, smartResize, pythonRound, type SmartResizeOptions } from './resize.js';
export {
  MOCA_PIXEL_LIMITS,
  OPENAI_CLIP_MEAN,
  OPENAI_CLIP_STD,
  PREPROCESSOR_CONFIG_FILE,
  QWEN2_5_VL_IMAGE_PROCESSOR_DEFAULTS,
  imageProcessorConfigToJson,
  loadImageProcessorConfig,
  parseImageProcessorConfig,
  saveImageProcessorConfig,
  validateImageProcessorConfig,
  type ImageProcessorConfig,
} from './config.js';
export { Qwen2VLImageProcessor, rawImageTokenCost, type ProcessedImage, type ProcessedImages } from './processor.js';
