// MixedCorpus: one stream of documents drawn from several sources, the next source chosen at random with
// probability ∝ its weight (a seeded, serialisable PRNG). MoCa concatenates fixed-size subsets of ten data sets and
// shuffles them globally (spec §2.1–§2.2); a streaming reader cannot shuffle globally, so it interleaves sources by
// weight instead and leaves local shuffling to the batcher's shuffle buffer.
//
// End of data: a source that reaches its end starts another pass while it has passes left (`epochs`, default 1;
// Infinity repeats forever), else it drops out and the others' probabilities renormalise; the corpus ends when every
// source has dropped out. A source whose whole pass yields no valid document drops out too (no endless loop).
//
// Resume: `state()` is plain JSON — per source the position after the last document handed out (shard, byte offset
// or row, row index, pass) and the PRNG state — and `restore(state)` on a fresh corpus over the same sources
// continues exactly there: nothing read twice, nothing skipped, the same source draws as an uninterrupted run.
import { BadRowRecorder, type BadRowCounts, type ErrorSink } from './errors.js';
import type { Document, SourceCursor } from './document.js';
import { Rng, type RngState } from './rng.js';
import { checkCursor, DataSource, START_CURSOR, type SourceItem } from './source.js';
import { checkSourceNames, parseSourceSpec, type SourceSpec } from './source-spec.js';

export interface MixedCorpusOptions {
  /** Seed of the source draws (default 0). */
  seed?: number;
  /** Passes over each source before it drops out (default 1; Infinity: repeat forever). */
  epochs?: number;
  /** Where bad rows are recorded (e.g. an ErrorLog); they are counted and skipped either way. */
  errors?: ErrorSink;
  /** Throw on the first bad row instead of skipping it. */
  strict?: boolean;
}

interface SourceRuntime {
  src: DataSource;
  /** Current pass (0-based). */
  epoch: number;
  /** Position after the last document handed out. */
  cursor: SourceCursor;
  /** No passes left (or a pass found no valid document). */
  done: boolean;
  documents: number;
  /** Documents handed out in the current pass. */
  passDocuments: number;
  gen?: AsyncGenerator<SourceItem>;
}

export interface CorpusSourceState {
  name: string;
  epoch: number;
  cursor: SourceCursor;
  done: boolean;
  documents: number;
  passDocuments: number;
}

/** The corpus position, JSON-serialisable. */
export interface CorpusState {
  kind: 'moca.data.corpus';
  version: 1;
  rng: RngState;
  documents: number;
  sources: CorpusSourceState[];
  bad: BadRowCounts;
}

export interface CorpusStats {
  /** Documents handed out. */
  documents: number;
  /** Bad rows skipped (read-time ones, plus those the batcher / sample preparation recorded here). */
  bad: BadRowCounts;
  sources: Record<string, { documents: number; epoch: number; done: boolean; row: number }>;
}

/** A document's position, enough to read it again: source name, cursor, pass. */
export interface DocumentLocator {
  source: string;
  cursor: SourceCursor;
  epoch: number;
}

export class MixedCorpus implements AsyncIterable<Document> {
  readonly sources: readonly DataSource[];
  /** Shared by everything that rejects rows of this corpus (also the batcher's image checks). */
  readonly recorder: BadRowRecorder;
  readonly epochs: number;
  private readonly rng: Rng;
  private readonly runtime: SourceRuntime[];
  private documents = 0;
  private started = false;

  /** Sources as specs, `name=path@weight` strings, or opened DataSources. */
  constructor(sources: readonly (SourceSpec | string | DataSource)[], options: MixedCorpusOptions = {}) {
    if (sources.length === 0) throw new Error('MixedCorpus needs at least one data source');
    this.sources = sources.map((s) =>
      s instanceof DataSource ? s : new DataSource(typeof s === 'string' ? parseSourceSpec(s) : s),
    );
    checkSourceNames(this.sources.map((s) => s.spec));
    for (const s of this.sources) {
      if (!(s.spec.weight > 0 && Number.isFinite(s.spec.weight))) {
        throw new RangeError(`data source "${s.name}": weight must be a positive number, got ${s.spec.weight}`);
      }
    }
    const epochs = options.epochs ?? 1;
    if (!(epochs === Infinity || (Number.isSafeInteger(epochs) && epochs >= 1))) {
      throw new RangeError(`epochs must be a positive integer or Infinity, got ${epochs}`);
    }
    this.epochs = epochs;
    this.rng = new Rng(options.seed ?? 0, 1);
    this.recorder = new BadRowRecorder(options.errors, options.strict ?? false);
    this.runtime = this.sources.map((src) => ({
      src,
      epoch: 0,
      cursor: { ...START_CURSOR },
      done: false,
      documents: 0,
      passDocuments: 0,
    }));
  }

  /** The next document, or null when every source is exhausted. */
  async read(): Promise<Document | null> {
    this.started = true;
    for (;;) {
      const weights = this.runtime.map((r) => (r.done ? 0 : r.src.spec.weight));
      if (weights.every((w) => w === 0)) return null;
      const r = this.runtime[this.rng.weighted(weights)]!;
      for (;;) {
        r.gen ??= r.src.documents(r.cursor, r.epoch, this.recorder);
        let step: IteratorResult<SourceItem>;
        try {
          step = await r.gen.next();
        } catch (e) {
          // The generator is finished now; a later read() reopens the source at the last good position.
          r.gen = undefined;
          throw e;
        }
        if (!step.done) {
          r.cursor = step.value.next;
          r.documents++;
          r.passDocuments++;
          this.documents++;
          return step.value.doc;
        }
        r.gen = undefined;
        // End of a pass: start the next one, or drop out.
        if (r.passDocuments > 0 && r.epoch + 1 < this.epochs) {
          r.epoch++;
          r.passDocuments = 0;
          r.cursor = { ...START_CURSOR };
          continue;
        }
        r.done = true;
        break;
      }
    }
  }

  /** Iterates with {@link read}; leaving the loop early closes the files (reading can still continue later). */
  async *[Symbol.asyncIterator](): AsyncGenerator<Document> {
    try {
      for (;;) {
        const doc = await this.read();
        if (doc === null) return;
        yield doc;
      }
    } finally {
      await this.close();
    }
  }

  /** The position after the last document handed out (JSON). */
  state(): CorpusState {
    return {
      kind: 'moca.data.corpus',
      version: 1,
      rng: this.rng.state(),
      documents: this.documents,
      sources: this.runtime.map((r) => ({
        name: r.src.name,
        epoch: r.epoch,
        cursor: { ...r.cursor },
        done: r.done,
        documents: r.documents,
        passDocuments: r.passDocuments,
      })),
      bad: this.recorder.stats(),
    };
  }

  /** Continues from a saved state; the corpus must be fresh (nothing read) and over the same source names. */
  restore(state: unknown): void {
    if (this.started) throw new Error('MixedCorpus.restore: restore into a fresh corpus, before reading from it');
    const s = state as CorpusState;
    if (typeof s !== 'object' || s === null || s.kind !== 'moca.data.corpus' || s.version !== 1) {
      throw new TypeError('not a saved MixedCorpus state (kind moca.data.corpus, version 1)');
    }
    if (!Array.isArray(s.sources) || !Number.isSafeInteger(s.documents)) throw new TypeError('malformed corpus state');
    const saved = new Map(s.sources.map((x) => [x.name, x]));
    const names = this.runtime.map((r) => r.src.name);
    const missing = names.filter((n) => !saved.has(n));
    const extra = [...saved.keys()].filter((n) => !names.includes(n));
    if (missing.length || extra.length) {
      throw new Error(
        `the saved data state is for sources [${[...saved.keys()].join(', ')}] but the corpus has [${names.join(', ')}]`,
      );
    }
    this.rng.setState(s.rng);
    this.recorder.restore(s.bad);
    this.documents = s.documents;
    for (const r of this.runtime) {
      const x = saved.get(r.src.name)!;
      r.cursor = checkCursor(x.cursor, `source "${r.src.name}"`);
      r.epoch = x.epoch;
      r.done = x.done === true;
      r.documents = x.documents;
      r.passDocuments = x.passDocuments;
      r.gen = undefined;
    }
  }

  stats(): CorpusStats {
    const sources: CorpusStats['sources'] = {};
    for (const r of this.runtime) {
      sources[r.src.name] = { documents: r.documents, epoch: r.epoch, done: r.done, row: r.cursor.row };
    }
    return { documents: this.documents, bad: this.recorder.stats(), sources };
  }

  /** Where `doc` is, to read it again with {@link fetch}. */
  locate(doc: Document): DocumentLocator {
    return { source: doc.source, cursor: { ...doc.cursor }, epoch: doc.epoch };
  }

  /** Reads documents again from their locators (same order); throws if one is gone or changed. */
  async fetch(locators: readonly DocumentLocator[]): Promise<Document[]> {
    const out: Document[] = new Array(locators.length);
    const bySource = new Map<string, number[]>();
    locators.forEach((l, i) => {
      const list = bySource.get(l.source);
      if (list) list.push(i);
      else bySource.set(l.source, [i]);
    });
    for (const [name, idx] of bySource) {
      const src = this.sources.find((s) => s.name === name);
      if (!src) throw new Error(`saved data state names an unknown source "${name}"`);
      const docs = await src.fetch(
        idx.map((i) => checkCursor(locators[i]!.cursor, `source "${name}"`)),
        idx.map((i) => locators[i]!.epoch),
      );
      idx.forEach((i, k) => (out[i] = docs[k]!));
    }
    return out;
  }

  /**
   * Closes open files (also done when a source's pass ends). Not final: a later read() reopens each source at its
   * position, and state() is unaffected.
   */
  async close(): Promise<void> {
    for (const r of this.runtime) {
      const gen = r.gen;
      r.gen = undefined;
      if (gen) await gen.return(undefined);
    }
  }
}
