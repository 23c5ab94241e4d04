import assert from 'node:assert/strict';
import { mkdtempSync, readdirSync, readFileSync, rmSync, truncateSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, describe, test } from 'node:test';

import * as torch from '../../src/torch/index.js';

const dir = mkdtempSync(path.join(tmpdir(), 'moca-st-'));
after(() => rmSync(dir, { recursive: true, force: true }));

/** Builds a safetensors file byte by byte from the format description (independent of the writer). */
function handBuiltFile(header: object, data: Buffer, pad = 0): Buffer {
  const json = Buffer.from(JSON.stringify(header) + ' '.repeat(pad), 'utf8');
  const len = Buffer.alloc(8);
  len.writeBigUInt64LE(BigInt(json.length));
  return Buffer.concat([len, json, data]);
}

describe('safetensors', () => {
  test('round trip of every dtype keeps shape, dtype and exact bytes', () => {
    const tensors = new Map<string, torch.Tensor>([
      ['f32', torch.tensor([[1.5, -2.25, 3e-8]], { dtype: 'float32' })],
      ['f64', torch.tensor([Math.PI, -Math.E], { dtype: 'float64' })],
      ['bf16', torch.tensor([1, 0.5, -3.0078125], { dtype: 'bfloat16' })],
      [
        'f16',
        torch.tensor(
          [
            [1, 2],
            [65504, -0.0009765625],
          ],
          { dtype: 'float16' },
        ),
      ],
      ['i64', torch.tensor([9007199254740991, -5], { dtype: 'int64' })],
      ['i32', torch.tensor([2147483647, -2147483648], { dtype: 'int32' })],
      ['i16', torch.tensor([-32768, 7], { dtype: 'int16' })],
      ['i8', torch.tensor([-128, 127], { dtype: 'int8' })],
      ['u8', torch.tensor([0, 255, 17], { dtype: 'uint8' })],
      ['bool', torch.tensor([true, false, true])],
      ['scalar', torch.scalarTensor(7, { dtype: 'float32' })],
      ['empty', torch.zeros([0, 3])],
    ]);
    const file = path.join(dir, 'all.safetensors');
    torch.saveSafetensors(file, tensors, { note: 'hello' });
    const f = torch.SafetensorsFile.open(file);
    assert.deepEqual(f.metadata, { note: 'hello' });
    assert.deepEqual(new Set(f.keys()), new Set(tensors.keys()));
    for (const [name, t] of tensors) {
      const r = f.get(name);
      assert.equal(r.dtype, t.dtype, name);
      assert.deepEqual(r.shape, t.shape, name);
      assert.ok(r.toBytes().equals(t.toBytes()), `${name}: bytes differ`);
      r.dispose();
    }
    f.close();
    // Data starts 8-byte aligned, as the reference writer pads the header.
    const bytes = readFileSync(file);
    assert.equal((8 + Number(bytes.readBigUInt64LE(0))) % 8, 0);
  });

  test('reads a hand-built file (little-endian values at the declared offsets)', () => {
    const data = Buffer.alloc(4 * 4 + 2 * 8);
    [1, 2, 3, 4].forEach((v, i) => data.writeFloatLE(v, i * 4));
    data.writeBigInt64LE(-7n, 16);
    data.writeBigInt64LE(1n << 40n, 24);
    const header = {
      __metadata__: { format: 'pt' },
      w: { dtype: 'F32', shape: [2, 2], data_offsets: [0, 16] },
      ids: { dtype: 'I64', shape: [2], data_offsets: [16, 32] },
    };
    const file = path.join(dir, 'hand.safetensors');
    writeFileSync(file, handBuiltFile(header, data, 3));
    const loaded = torch.loadSafetensors(file);
    assert.deepEqual(loaded.get('w')!.tolist(), [
      [1, 2],
      [3, 4],
    ]);
    assert.deepEqual(loaded.get('ids')!.toArray(), [-7, 2 ** 40]);
    // The tensors are usable after the file object is closed, and writable without touching the file.
    loaded.get('w')!.mul_(10);
    assert.equal(loaded.get('w')!.index(0, 0).item(), 10);
    assert.equal(torch.loadSafetensors(file).get('w')!.index(0, 0).item(), 1);
  });

  test('unaligned tensor data is read correctly (copied)', () => {
    const data = Buffer.alloc(1 + 8);
    data.writeUInt8(9, 0);
    data.writeFloatLE(0.25, 1);
    data.writeFloatLE(-8, 5);
    const header = {
      a: { dtype: 'U8', shape: [1], data_offsets: [0, 1] },
      b: { dtype: 'F32', shape: [2], data_offsets: [1, 9] },
    };
    const file = path.join(dir, 'unaligned.safetensors');
    writeFileSync(file, handBuiltFile(header, data));
    const loaded = torch.loadSafetensors(file);
    assert.deepEqual(loaded.get('b')!.toArray(), [0.25, -8]);
  });

  const corrupt: [string, () => Buffer, RegExp][] = [
    ['too short', () => Buffer.from([1, 2, 3]), /too short/],
    [
      'header length past the end',
      () => {
        const b = Buffer.alloc(16);
        b.writeBigUInt64LE(1000n);
        return b;
      },
      /runs past the end/,
    ],
    [
      'absurd header length',
      () => {
        const b = Buffer.alloc(16);
        b.writeBigUInt64LE(1n << 40n);
        return b;
      },
      /exceeds/,
    ],
    [
      'not JSON',
      () => {
        const json = Buffer.from('{"a": [1, 2');
        const len = Buffer.alloc(8);
        len.writeBigUInt64LE(BigInt(json.length));
        return Buffer.concat([len, json]);
      },
      /not valid JSON/,
    ],
    [
      'unknown dtype',
      () => handBuiltFile({ x: { dtype: 'F8_E4M3', shape: [1], data_offsets: [0, 1] } }, Buffer.alloc(1)),
      /not supported/,
    ],
    [
      'offsets disagree with shape',
      () => handBuiltFile({ x: { dtype: 'F32', shape: [3], data_offsets: [0, 8] } }, Buffer.alloc(8)),
      /needs 12/,
    ],
    [
      'data truncated',
      () => handBuiltFile({ x: { dtype: 'F32', shape: [4], data_offsets: [0, 16] } }, Buffer.alloc(8)),
      /past the data section/,
    ],
    [
      'overlapping tensors',
      () =>
        handBuiltFile(
          {
            x: { dtype: 'F32', shape: [2], data_offsets: [0, 8] },
            y: { dtype: 'F32', shape: [2], data_offsets: [4, 12] },
          },
          Buffer.alloc(12),
        ),
      /overlaps/,
    ],
    ['hole', () => handBuiltFile({ x: { dtype: 'F32', shape: [1], data_offsets: [4, 8] } }, Buffer.alloc(8)), /hole/],
    [
      'negative shape',
      () => handBuiltFile({ x: { dtype: 'F32', shape: [-1], data_offsets: [0, 0] } }, Buffer.alloc(0)),
      /shape/,
    ],
  ];
  for (const [name, make, pattern] of corrupt) {
    test(`corrupt file is rejected with a clear error: ${name}`, () => {
      const file = path.join(dir, `bad-${name.replace(/\W+/g, '-')}.safetensors`);
      writeFileSync(file, make());
      assert.throws(
        () => torch.SafetensorsFile.open(file),
        (e: Error) => e instanceof torch.SafetensorsError && pattern.test(e.message) && e.message.includes(file),
      );
    });
  }

  test('a file truncated after writing fails to open instead of returning garbage', () => {
    const file = path.join(dir, 'trunc.safetensors');
    torch.saveSafetensors(file, { a: torch.ones([64]) });
    truncateSync(file, readFileSync(file).length - 10);
    assert.throws(() => torch.SafetensorsFile.open(file), /past the data section|truncated/);
  });

  test('missing file names the path', () => {
    assert.throws(() => torch.SafetensorsFile.open(path.join(dir, 'nope.safetensors')), /nope\.safetensors/);
  });

  test('writes are atomic: a failed write leaves the previous file intact and no temporary behind', () => {
    const file = path.join(dir, 'atomic.safetensors');
    torch.saveSafetensors(file, { a: torch.ones([4]) });
    const disposed = torch.ones([2]);
    disposed.dispose();
    assert.throws(() => torch.saveSafetensors(file, { a: torch.zeros([4]), b: disposed }), /disposed/);
    assert.deepEqual(torch.loadSafetensors(file).get('a')!.toArray(), [1, 1, 1, 1]);
    assert.deepEqual(
      readdirSync(dir).filter((f) => f.includes('.tmp-')),
      [],
    );
  });
});

describe('Hugging Face checkpoints', () => {
  test('sharded save writes an index and loads back every tensor', () => {
    const ckpt = mkdtempSync(path.join(dir, 'ckpt-'));
    const tensors = new Map<string, torch.Tensor>();
    for (let i = 0; i < 5; i++) tensors.set(`model.layers.${i}.weight`, torch.full([16, 16], i, { dtype: 'float32' }));
    const written = torch.saveCheckpoint(ckpt, tensors, { maxShardBytes: 2 * 16 * 16 * 4 });
    assert.ok(written.includes(torch.SAFE_WEIGHTS_INDEX_NAME));
    assert.equal(written.filter((f) => f.endsWith('.safetensors')).length, 3);
    const index = JSON.parse(readFileSync(path.join(ckpt, torch.SAFE_WEIGHTS_INDEX_NAME), 'utf8')) as {
      metadata: { total_size: number };
      weight_map: Record<string, string>;
    };
    assert.equal(index.metadata.total_size, 5 * 16 * 16 * 4);
    assert.equal(index.weight_map['model.layers.4.weight'], 'model-00003-of-00003.safetensors');
    const reader = new torch.CheckpointReader(ckpt);
    assert.equal(reader.keys().length, 5);
    for (let i = 0; i < 5; i++) {
      const t = reader.get(`model.layers.${i}.weight`);
      assert.equal(t.sum().item(), i * 256);
    }
    // Re-saving unsharded removes the stale shards and index.
    torch.saveCheckpoint(ckpt, tensors);
    assert.deepEqual(readdirSync(ckpt).sort(), [torch.SAFE_WEIGHTS_NAME]);
    assert.equal(new torch.CheckpointReader(ckpt).keys().length, 5);
  });

  test('an index pointing at a shard that lacks the tensor is an error', () => {
    const ckpt = mkdtempSync(path.join(dir, 'ckpt-bad-'));
    torch.saveSafetensors(path.join(ckpt, 'model-00001-of-00001.safetensors'), { a: torch.ones([1]) });
    writeFileSync(
      path.join(ckpt, torch.SAFE_WEIGHTS_INDEX_NAME),
      JSON.stringify({ weight_map: { a: 'model-00001-of-00001.safetensors', b: 'model-00001-of-00001.safetensors' } }),
    );
    assert.throws(() => new torch.CheckpointReader(ckpt), /'b' is mapped to model-00001-of-00001.safetensors/);
  });

  test('a directory without weights is reported', () => {
    assert.throws(() => new torch.CheckpointReader(mkdtempSync(path.join(dir, 'empty-'))), /no model\.safetensors/);
  });
});
