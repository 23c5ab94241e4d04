// Multimodal rotary position embedding (M-RoPE) of the Qwen2.5-VL language model.
import { arange, cat, noGrad, powScalarBase, scope, tensor, type Tensor } from '../../torch/index.js';
import { rotateHalf } from '../attention.js';
import type { GridThw } from './vision.js';

export interface RopeTokenIds {
  imageTokenId: number;
  visionStartTokenId: number;
  spatialMergeSize: number;
}

/**
 * Position ids (3 axes t/h/w) for each row, exactly as MoCa's `get_rope_index` (spec §1.5): over the tokens with
 * attention mask 1, text gets consecutive positions on all three axes; an image of merged grid (H', W') starting
 * after text ending at offset o gets t = o, h = o + row, w = o + col; text after an image resumes at the maximum
 * so far + 1. Padded positions are 1. `grids` lists the images of the batch in order (row-major over rows).
 * Returns a flat Int32Array of shape (3, B, L).
 */
export function ropePositionIds(
  inputIds: ArrayLike<number>,
  attentionMask: ArrayLike<number>,
  batch: number,
  seqLen: number,
  grids: readonly GridThw[],
  ids: RopeTokenIds,
): Int32Array {
  const out = new Int32Array(3 * batch * seqLen).fill(1);
  let imageIndex = 0;
  for (let b = 0; b < batch; b++) {
    const positions: number[] = [];
    for (let i = 0; i < seqLen; i++) if (attentionMask[b * seqLen + i] === 1) positions.push(i);
    const tokens = positions.map((i) => inputIds[b * seqLen + i]!);
    // Images in this row: a vision-start token directly followed by an image token.
    let imageCount = 0;
    for (let i = 0; i + 1 < tokens.length; i++) {
      if (tokens[i] === ids.visionStartTokenId && tokens[i + 1] === ids.imageTokenId) imageCount++;
    }
    const t: number[] = [];
    const h: number[] = [];
    const w: number[] = [];
    let next = 0; // max position so far + 1
    const pushText = (count: number) => {
      for (let i = 0; i < count; i++) {
        t.push(next + i);
        h.push(next + i);
        w.push(next + i);
      }
      next += count;
    };
    let st = 0;
    for (let img = 0; img < imageCount; img++) {
      const ed = tokens.indexOf(ids.imageTokenId, st);
      const grid = grids[imageIndex++];
      if (ed < 0 || grid === undefined) {
        throw new Error(`row ${b}: image ${img} has no image tokens or no image_grid_thw entry`);
      }
      const gt = grid[0];
      const gh = grid[1] / ids.spatialMergeSize;
      const gw = grid[2] / ids.spatialMergeSize;
      pushText(ed - st);
      const offset = next;
      let max = offset - 1;
      for (let ti = 0; ti < gt; ti++) {
        for (let y = 0; y < gh; y++) {
          for (let x = 0; x < gw; x++) {
            // Still images: second_per_grid_t = 0, so every frame has t = offset.
            t.push(offset);
            h.push(offset + y);
            w.push(offset + x);
            max = Math.max(max, offset + y, offset + x);
          }
        }
      }
      next = max + 1;
      st = ed + gt * gh * gw;
    }
    if (st < tokens.length) pushText(tokens.length - st);
    if (t.length !== tokens.length) {
      throw new Error(
        `row ${b}: image tokens do not match image_grid_thw (${t.length} positions for ${tokens.length} tokens)`,
      );
    }
    positions.forEach((pos, i) => {
      out[0 * batch * seqLen + b * seqLen + pos] = t[i]!;
      out[1 * batch * seqLen + b * seqLen + pos] = h[i]!;
      out[2 * batch * seqLen + b * seqLen + pos] = w[i]!;
    });
  }
  if (imageIndex !== grids.length) {
    throw new Error(`${grids.length} images given but the input ids contain ${imageIndex} image placeholders`);
  }
  return out;
}

/**
 * cos/sin (B, 1, L, headDim) for positions (3, B, L): per axis, angles = position · invFreq (float32), duplicated
 * to headDim, then channel chunks taken from axis t, h, w in turn by `mropeSection` (×2), as transformers'
 * Qwen2_5_VLRotaryEmbedding + apply_multimodal_rotary_pos_emb. Cast to `dtype` like the reference.
 */
export function mropeCosSin(
  positionIds: Int32Array,
  batch: number,
  seqLen: number,
  headDim: number,
  theta: number,
  mropeSection: readonly [number, number, number],
  dtype: Tensor['dtype'],
): { cos: Tensor; sin: Tensor } {
  return noGrad(() =>
    scope(() => {
      const invFreq = powScalarBase(theta, arange(0, headDim, 2, { dtype: 'int64' }).float().div(headDim)).reciprocal();
      const pos = tensor(Float32Array.from(positionIds), { shape: [3, batch, seqLen, 1] });
      const freqs = pos.mul(invFreq); // (3, B, L, headDim/2)
      const emb = cat([freqs, freqs], -1);
      const select = (full: Tensor): Tensor => {
        const sizes = [...mropeSection, ...mropeSection];
        const parts: Tensor[] = [];
        let start = 0;
        sizes.forEach((size, i) => {
          parts.push(full.select(0, i % 3).narrow(-1, start, size));
          start += size;
        });
        const out = cat(parts, -1).unsqueeze(1);
        return out.dtype === dtype ? out : out.to(dtype);
      };
      return { cos: select(emb.cos()), sin: select(emb.sin()) };
    }),
  );
}

/** q·cos + rotate_half(q)·sin for q (B, heads, L, headDim). */
export function applyRotary(x: Tensor, cos: Tensor, sin: Tensor): Tensor {
  return scope(() => x.mul(cos).add(rotateHalf(x).mul(sin)));
}
