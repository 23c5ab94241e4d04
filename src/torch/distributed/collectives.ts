// Collectives (torch.distributed's names): allReduce, allGather, broadcast, barrier, and their object variants.
//
// Every rank of a group must issue the same collectives in the same order. By default a collective returns a
// Promise that settles when it completed; with `asyncOp: true` it returns a Work handle instead (the operation
// runs in the backend's threads meanwhile): `await work.wait()` waits off the JS thread (timers and signal
// handlers keep running), `work.waitSync()` blocks (for synchronous code such as a loss inside `scope()`).
// Tensors must be contiguous, on the CPU for gloo and on a CUDA device for nccl, and must stay alive and untouched
// until the work completed. Failures (a peer that exited or was killed, a timeout) reject with a DistributedError.
import { native } from '../native.js';
import type { NativeWork } from '../native-handles.js';
import { empty, fromBytes, tensor } from '../creation.js';
import type { Tensor } from '../tensor.js';
import { DistributedError, getDefaultGroup, type ProcessGroup } from './process-group.js';

export type ReduceOp = 'sum' | 'avg' | 'product' | 'min' | 'max';

/** Explains the common causes of a communication failure next to c10d's message. */
export function communicationError(what: string, group: ProcessGroup, e: unknown): DistributedError {
  // The binding prefixes its messages with the op's name; the line below names it already.
  const msg = (e instanceof Error ? e.message : String(e))
    .replace(/^(pg[A-Z]\w*|reducer[A-Z]\w*|workWaitSync): /, '')
    .replace(new RegExp(`^${what}: `), '');
  const peerGone = /closed by peer|Connection reset|Broken pipe|EOF|ECONNRESET|ECONNREFUSED|Connection refused/i.test(
    msg,
  );
  const timedOut = /timed? ?out/i.test(msg);
  const hint = peerGone
    ? ' — another worker exited or was killed (see its output); stopping'
    : timedOut
      ? ` — no answer within the timeout (${Math.round(group.timeoutMs / 1000)} s): another worker is stuck or gone`
      : '';
  return new DistributedError(`${what} failed on ${group}: ${msg}${hint}`);
}

/** An asynchronous collective in flight (torch.distributed.Work). */
export class Work {
  constructor(
    private readonly handle: NativeWork,
    readonly what: string,
    readonly group: ProcessGroup,
  ) {}

  /** Resolves when the operation completed (waits on a libuv thread, the event loop keeps running). */
  async wait(): Promise<void> {
    try {
      await native.workWait(this.handle);
    } catch (e) {
      throw communicationError(this.what, this.group, e);
    }
  }

  /** Blocks the calling thread until the operation completed. */
  waitSync(): void {
    try {
      native.workWaitSync(this.handle);
    } catch (e) {
      throw communicationError(this.what, this.group, e);
    }
  }

  isCompleted(): boolean {
    return native.workIsCompleted(this.handle);
  }
}

export interface CollectiveOptions {
  group?: ProcessGroup;
}

type AsyncFlag = { asyncOp: true };

function issue(what: string, group: ProcessGroup, start: () => NativeWork): Work {
  try {
    return new Work(start(), what, group);
  } catch (e) {
    throw communicationError(what, group, e);
  }
}

function finish(work: Work, asyncOp: boolean | undefined): Work | Promise<void> {
  return asyncOp ? work : work.wait();
}

/** In place: every rank's `tensor` becomes the reduction ('sum' by default) over all ranks. */
export function allReduce(
  tensor: Tensor,
  options?: CollectiveOptions & { op?: ReduceOp; asyncOp?: false },
): Promise<void>;
export function allReduce(tensor: Tensor, options: CollectiveOptions & { op?: ReduceOp } & AsyncFlag): Work;
export function allReduce(
  t: Tensor,
  options: CollectiveOptions & { op?: ReduceOp; asyncOp?: boolean } = {},
): Work | Promise<void> {
  const group = options.group ?? getDefaultGroup();
  const work = issue('allReduce', group, () => native.pgAllReduce(group.handle, [t.handle], options.op ?? 'sum'));
  return finish(work, options.asyncOp);
}

/** `outputs[r]` receives rank r's `input` (same shape and dtype on every rank). */
export function allGather(
  outputs: Tensor[],
  input: Tensor,
  options?: CollectiveOptions & { asyncOp?: false },
): Promise<void>;
export function allGather(outputs: Tensor[], input: Tensor, options: CollectiveOptions & AsyncFlag): Work;
export function allGather(
  outputs: Tensor[],
  input: Tensor,
  options: CollectiveOptions & { asyncOp?: boolean } = {},
): Work | Promise<void> {
  const group = options.group ?? getDefaultGroup();
  const work = issue('allGather', group, () =>
    native.pgAllGather(
      group.handle,
      outputs.map((o) => o.handle),
      input.handle,
    ),
  );
  return finish(work, options.asyncOp);
}

/** In place: every rank's `tensor` becomes rank `src`'s. */
export function broadcast(
  tensor: Tensor,
  src: number,
  options?: CollectiveOptions & { asyncOp?: false },
): Promise<void>;
export function broadcast(tensor: Tensor, src: number, options: CollectiveOptions & AsyncFlag): Work;
export function broadcast(
  t: Tensor,
  src: number,
  options: CollectiveOptions & { asyncOp?: boolean } = {},
): Work | Promise<void> {
  const group = options.group ?? getDefaultGroup();
  const work = issue('broadcast', group, () => native.pgBroadcast(group.handle, [t.handle], src));
  return finish(work, options.asyncOp);
}

/**
 * Broadcasts many tensors (e.g. all parameters of a model) from `src`, packed into flat buffers of at most
 * `bucketBytes` (default 25 MB): one collective per buffer rather than per tensor.
 */
export function broadcastCoalesced(
  tensors: readonly Tensor[],
  src: number,
  options: CollectiveOptions & { bucketBytes?: number } = {},
): Promise<void> {
  const group = options.group ?? getDefaultGroup();
  const bucketBytes = options.bucketBytes ?? 25 * 1024 * 1024;
  const work = issue('broadcast', group, () =>
    native.pgBroadcastCoalesced(
      group.handle,
      tensors.map((t) => t.handle),
      src,
      bucketBytes,
    ),
  );
  return work.wait();
}

/** Resolves when every rank of the group reached the barrier. */
export function barrier(options?: CollectiveOptions & { asyncOp?: false }): Promise<void>;
export function barrier(options: CollectiveOptions & AsyncFlag): Work;
export function barrier(options: CollectiveOptions & { asyncOp?: boolean } = {}): Work | Promise<void> {
  const group = options.group ?? getDefaultGroup();
  const work = issue('barrier', group, () => native.pgBarrier(group.handle));
  return finish(work, options.asyncOp);
}

/**
 * Every rank's JSON-serialisable `value`, in rank order (torch.distributed.all_gather_object, with JSON instead of
 * pickle): the encoded lengths are gathered first, then the bytes padded to the longest.
 */
export async function allGatherObject<T>(value: T, options: CollectiveOptions = {}): Promise<T[]> {
  const group = options.group ?? getDefaultGroup();
  const bytes = Buffer.from(JSON.stringify(value) ?? 'null', 'utf8');
  const lengths = await gatherLengths(bytes.length, group);
  const max = Math.max(...lengths);
  const padded = Buffer.alloc(max);
  bytes.copy(padded);
  const input = fromBytes(padded, [max], 'uint8');
  const outputs = lengths.map(() => empty([max], { dtype: 'uint8' }));
  try {
    await allGather(outputs, input, { group });
    return outputs.map((o, r) => JSON.parse(o.toBytes().subarray(0, lengths[r]!).toString('utf8')) as T);
  } finally {
    input.dispose();
    for (const o of outputs) o.dispose();
  }
}

async function gatherLengths(n: number, group: ProcessGroup): Promise<number[]> {
  const input = tensor([n], { dtype: 'int64' });
  const outputs = Array.from({ length: group.size }, () => empty([1], { dtype: 'int64' }));
  try {
    await allGather(outputs, input, { group });
    return outputs.map((o) => o.item());
  } finally {
    input.dispose();
    for (const o of outputs) o.dispose();
  }
}

/** Rank `src`'s JSON-serialisable value, on every rank (torch.distributed.broadcast_object_list for one object). */
export async function broadcastObject<T>(value: T, src: number, options: CollectiveOptions = {}): Promise<T> {
  const group = options.group ?? getDefaultGroup();
  const mine = group.rank === src ? Buffer.from(JSON.stringify(value) ?? 'null', 'utf8') : Buffer.alloc(0);
  const length = tensor([mine.length], { dtype: 'int64' });
  try {
    await broadcast(length, src, { group });
    const n = length.item();
    const data = group.rank === src ? fromBytes(mine, [n], 'uint8') : empty([n], { dtype: 'uint8' });
    try {
      if (n > 0) await broadcast(data, src, { group });
      return JSON.parse(data.toBytes().toString('utf8')) as T;
    } finally {
      data.dispose();
    }
  } finally {
    length.dispose();
  }
}

/** True on every rank when `flag` is true on any (one small MAX all-reduce). */
export async function anyRank(flag: boolean, options: CollectiveOptions = {}): Promise<boolean> {
  const group = options.group ?? getDefaultGroup();
  const t = tensor([flag ? 1 : 0], { dtype: 'int32' });
  try {
    await allReduce(t, { group, op: 'max' });
    return t.item() > 0;
  } finally {
    t.dispose();
  }
}
