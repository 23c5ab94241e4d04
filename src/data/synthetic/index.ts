// The generated multimodal world of `moca demo`: scenes of coloured shapes, labels and document pages drawn with a
// bitmap font, an unlabelled interleaved corpus (stage 1), MoCa-format contrastive pairs over the four MMEB
// meta-tasks (stage 2), MMEB-style evaluation sets (in-distribution and OOD) and a BEIR document-retrieval set —
// deterministic by seed, with the ground truth an oracle needs in manifest.json.
//
//   const manifest = await generateWorld('world', { seed: 1, scale: 'quick' });
export { SCALES, type ProgressEvent, type ScaleParams } from './context.js';
export { BEIR_DIR, BEIR_NAME, MMEB_DIR, type MmebRow } from './eval-sets.js';
export { canRender, drawText, FONT_CHARACTERS, GLYPH_HEIGHT, GLYPH_WIDTH, glyph, textWidth } from './font.js';
export { encodePng, pixelHash } from './image-store.js';
export { IMAGE_MARKER, PROMPTS } from './language.js';
export type {
  CropImageTruth,
  EvalDatasetInfo,
  EvalDatasetSummary,
  EvalRowTruth,
  ImageTruth,
  MetaTask,
  PageImageTruth,
  SceneImageTruth,
  WorldManifest,
  WorldScale,
} from './manifest.js';
export { layoutPage, type Page } from './page.js';
export { PAIR_SUBSETS, type PairRow, type PairSubsetName } from './pairs.js';
export { heldOutCombos, type Combo } from './pools.js';
export { Canvas, drawShape, paintBackground, textureOffset } from './raster.js';
export { cropBox, renderPage, renderScene } from './render.js';
export { relationOf, sceneKey, type Scene, type SceneKind, type SceneObject } from './scene.js';
export { insideShape, interiorPoint } from './shapes.js';
export * from './vocabulary.js';
export { generateWorld, type GenerateWorldOptions } from './world.js';
