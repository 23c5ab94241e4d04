// Exact (brute-force) cosine top-k over float32 rows: the reference the HNSW graph is checked against, the
// re-scoring step for quantised graphs, and `search(..., { exact: true })`.

/** One result of a top-k: the row's key and its cosine similarity to the query. */
export interface ScoredKey {
  key: number;
  score: number;
}

/** Cosine similarity of `query` and row `row` of the row-major matrix `rows` (d columns); 0 for a zero vector. */
export function cosineAt(query: Float32Array, queryNorm: number, rows: Float32Array, row: number): number {
  const d = query.length;
  const base = row * d;
  let dot = 0;
  let norm = 0;
  for (let j = 0; j < d; j++) {
    const x = rows[base + j]!;
    dot += query[j]! * x;
    norm += x * x;
  }
  const denom = queryNorm * Math.sqrt(norm);
  return denom > 0 ? dot / denom : 0;
}

export function l2Norm(v: Float32Array): number {
  let s = 0;
  for (let j = 0; j < v.length; j++) s += v[j]! * v[j]!;
  return Math.sqrt(s);
}

/**
 * Keeps the k best (highest score; ties broken by the lower key, so results are deterministic) of a stream of
 * scored keys. Insertion into a sorted array: k is small (tens), so this beats a heap in practice.
 */
export class TopK {
  private readonly items: ScoredKey[] = [];

  constructor(readonly k: number) {
    if (!Number.isInteger(k) || k < 1) throw new RangeError(`TopK: k must be a positive integer, got ${k}`);
  }

  push(key: number, score: number): void {
    const items = this.items;
    if (items.length === this.k) {
      const last = items[items.length - 1]!;
      if (score < last.score || (score === last.score && key > last.key)) return;
    }
    let i = items.length;
    while (i > 0) {
      const prev = items[i - 1]!;
      if (prev.score > score || (prev.score === score && prev.key < key)) break;
      i--;
    }
    items.splice(i, 0, { key, score });
    if (items.length > this.k) items.pop();
  }

  /** Best first. */
  result(): ScoredKey[] {
    return [...this.items];
  }
}

/**
 * Exact cosine top-k of `query` against the row-major block `rows` whose first row has key `firstKey`,
 * accumulated into `top` (call once per block to search a matrix in pieces).
 */
export function scanBlock(query: Float32Array, rows: Float32Array, firstKey: number, top: TopK): void {
  const d = query.length;
  if (rows.length % d !== 0) throw new RangeError(`scanBlock: ${rows.length} values is not a multiple of ${d}`);
  const qn = l2Norm(query);
  const n = rows.length / d;
  for (let r = 0; r < n; r++) top.push(firstKey + r, cosineAt(query, qn, rows, r));
}
