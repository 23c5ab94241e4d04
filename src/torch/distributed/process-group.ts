// Process groups on libtorch's c10d (torch.distributed's names): a TCPStore rendezvous at MASTER_ADDR:MASTER_PORT
// hosted by rank 0, then a Gloo (CPU) or NCCL (CUDA) process group over it. `initProcessGroup()` reads the
// torchrun environment (RANK, WORLD_SIZE, MASTER_ADDR, MASTER_PORT, LOCAL_RANK) unless told otherwise, so both
// `moca train --nproc-per-node` and existing cluster launchers (torchrun, Slurm wrappers) work.
import { native } from '../native.js';
import type { NativeProcessGroup, NativeStore } from '../native-handles.js';

export type Backend = 'gloo' | 'nccl';

/** A collective or rendezvous that failed: a peer exited or was killed, a timeout, mismatched calls. */
export class DistributedError extends Error {}

/** torch.distributed's default timeout for collectives and rendezvous (30 minutes). */
export const DEFAULT_TIMEOUT_MS = 30 * 60 * 1000;

/** The torchrun-style environment of one worker process. */
export interface DistributedEnv {
  rank: number;
  worldSize: number;
  localRank: number;
  localWorldSize: number;
  masterAddr: string;
  masterPort: number;
}

function envInt(env: NodeJS.ProcessEnv, name: string, min: number): number | undefined {
  const raw = env[name];
  if (raw === undefined || raw === '') return undefined;
  const v = Number(raw);
  if (!Number.isInteger(v) || v < min) {
    throw new DistributedError(`environment variable ${name}=${JSON.stringify(raw)} must be an integer ≥ ${min}`);
  }
  return v;
}

/**
 * The distributed environment set by a launcher (ours or torchrun), or null when WORLD_SIZE is not set. RANK is
 * required with WORLD_SIZE; MASTER_ADDR defaults to 127.0.0.1 and MASTER_PORT to 29500 (torchrun's defaults);
 * LOCAL_RANK to RANK and LOCAL_WORLD_SIZE to WORLD_SIZE.
 */
export function distributedEnv(env: NodeJS.ProcessEnv = process.env): DistributedEnv | null {
  const worldSize = envInt(env, 'WORLD_SIZE', 1);
  if (worldSize === undefined) return null;
  const rank = envInt(env, 'RANK', 0);
  if (rank === undefined) throw new DistributedError('WORLD_SIZE is set but RANK is not');
  if (rank >= worldSize) throw new DistributedError(`RANK=${rank} is outside WORLD_SIZE=${worldSize}`);
  const masterPort = envInt(env, 'MASTER_PORT', 1) ?? 29500;
  if (masterPort > 65535) throw new DistributedError(`MASTER_PORT=${masterPort} is not a TCP port`);
  return {
    rank,
    worldSize,
    localRank: envInt(env, 'LOCAL_RANK', 0) ?? rank,
    localWorldSize: envInt(env, 'LOCAL_WORLD_SIZE', 1) ?? worldSize,
    masterAddr: env.MASTER_ADDR || '127.0.0.1',
    masterPort,
  };
}

function isLoopback(host: string): boolean {
  return host === 'localhost' || host === '::1' || /^127\./.test(host);
}

/** The key-value store of a rendezvous (c10d TCPStore: rank 0 serves it, the others connect). */
export class Store {
  private constructor(readonly handle: NativeStore) {}

  static async tcp(
    host: string,
    port: number,
    options: { isServer: boolean; worldSize: number; timeoutMs?: number },
  ): Promise<Store> {
    try {
      const h = await native.tcpStoreCreate(
        host,
        port,
        options.isServer,
        options.worldSize,
        options.timeoutMs ?? DEFAULT_TIMEOUT_MS,
      );
      return new Store(h);
    } catch (e) {
      const role = options.isServer ? `serve the rendezvous store on ${host}:${port}` : `reach ${host}:${port}`;
      throw new DistributedError(
        `could not ${role}: ${(e as Error).message}` +
          (options.isServer ? ' (is the port in use? choose another with --master-port / MASTER_PORT)' : ''),
      );
    }
  }

  set(key: string, value: string): void {
    native.storeSet(this.handle, key, value);
  }

  /** Waits (up to the store's timeout) until `key` is set. */
  async get(key: string): Promise<string> {
    return (await native.storeGet(this.handle, key)).toString('utf8');
  }

  add(key: string, amount: number): number {
    return native.storeAdd(this.handle, key, amount);
  }
}

/** A group of processes that run collectives together (torch.distributed.ProcessGroup). */
export class ProcessGroup {
  private destroyed = false;

  constructor(
    private readonly nativeGroup: NativeProcessGroup,
    readonly rank: number,
    readonly size: number,
    readonly backend: Backend,
    readonly timeoutMs: number,
    readonly store: Store,
  ) {}

  get handle(): NativeProcessGroup {
    if (this.destroyed) throw new DistributedError('the process group was destroyed');
    return this.nativeGroup;
  }

  get isDestroyed(): boolean {
    return this.destroyed;
  }

  /** Releases the backend. `abort`: do not wait for its threads (after a failure, before exiting). */
  destroy(options: { abort?: boolean } = {}): void {
    if (this.destroyed) return;
    this.destroyed = true;
    native.pgDestroy(this.nativeGroup, options.abort ?? false);
  }

  toString(): string {
    return `rank ${this.rank} of ${this.size} (${this.backend})`;
  }
}

export interface InitProcessGroupOptions {
  /** 'gloo' (CPU tensors; default) or 'nccl' (CUDA tensors; needs a CUDA build of the binding). */
  backend?: Backend;
  /** Default: RANK / WORLD_SIZE / MASTER_ADDR / MASTER_PORT from the environment. */
  rank?: number;
  worldSize?: number;
  masterAddr?: string;
  masterPort?: number;
  /** Rendezvous and collective timeout in ms (default 30 minutes, as torch.distributed). */
  timeoutMs?: number;
  /** Network interface(s) for Gloo (comma-separated; default: $GLOO_SOCKET_IFNAME, else by host name). */
  iface?: string;
}

let defaultGroup: ProcessGroup | null = null;
let groupCounter = 0;

/** Backends this build of the binding supports. */
export function isBackendAvailable(backend: Backend): boolean {
  return native.distBackendAvailable(backend);
}

/**
 * Joins the default process group (torch.distributed.init_process_group with init_method env://): rank 0 serves a
 * TCPStore at masterAddr:masterPort, every rank connects, and the backend connects all pairs. Resolves once all
 * `worldSize` ranks arrived; rejects with a DistributedError after `timeoutMs` otherwise.
 */
export async function initProcessGroup(options: InitProcessGroupOptions = {}): Promise<ProcessGroup> {
  if (defaultGroup !== null) throw new DistributedError('the default process group is already initialised');
  const env = distributedEnv();
  const rank = options.rank ?? env?.rank;
  const worldSize = options.worldSize ?? env?.worldSize;
  if (rank === undefined || worldSize === undefined) {
    throw new DistributedError('initProcessGroup: give rank and worldSize, or set RANK and WORLD_SIZE');
  }
  if (!(Number.isInteger(worldSize) && worldSize >= 1 && Number.isInteger(rank) && rank >= 0 && rank < worldSize)) {
    throw new DistributedError(`initProcessGroup: rank ${rank} is outside a world of size ${worldSize}`);
  }
  const masterAddr = options.masterAddr ?? env?.masterAddr ?? '127.0.0.1';
  const masterPort = options.masterPort ?? env?.masterPort ?? 29500;
  const backend = options.backend ?? 'gloo';
  const timeoutMs = options.timeoutMs ?? DEFAULT_TIMEOUT_MS;
  if (!isBackendAvailable(backend)) {
    throw new DistributedError(
      backend === 'nccl'
        ? 'the nccl backend needs the binding built against a CUDA libtorch with NCCL (LIBTORCH=…, see README)'
        : 'the gloo backend is missing from this build of the binding (install libgloo-dev and rebuild it)',
    );
  }
  const store = await Store.tcp(masterAddr, masterPort, { isServer: rank === 0, worldSize, timeoutMs });
  const group = await newGroupOnStore(store, { rank, worldSize, backend, timeoutMs, masterAddr, iface: options.iface });
  defaultGroup = group;
  return group;
}

async function newGroupOnStore(
  store: Store,
  o: { rank: number; worldSize: number; backend: Backend; timeoutMs: number; masterAddr: string; iface?: string },
): Promise<ProcessGroup> {
  const iface = o.iface ?? process.env.GLOO_SOCKET_IFNAME ?? '';
  // On one machine (loopback master) Gloo listens on loopback; otherwise on the interface of the host name.
  const hostname = iface === '' && isLoopback(o.masterAddr) ? '127.0.0.1' : '';
  const prefix = `moca/pg${groupCounter++}/`;
  try {
    const h = await native.processGroupCreate(
      store.handle,
      prefix,
      o.backend,
      o.rank,
      o.worldSize,
      o.timeoutMs,
      hostname,
      iface,
    );
    return new ProcessGroup(h, o.rank, o.worldSize, o.backend, o.timeoutMs, store);
  } catch (e) {
    throw new DistributedError(
      `rank ${o.rank} of ${o.worldSize}: could not form the ${o.backend} process group: ${(e as Error).message}` +
        ' (did every rank start, with the same WORLD_SIZE, MASTER_ADDR and MASTER_PORT?)',
    );
  }
}

export function isInitialized(): boolean {
  return defaultGroup !== null;
}

/** The default group (throws when initProcessGroup has not run). */
export function getDefaultGroup(): ProcessGroup {
  if (defaultGroup === null) {
    throw new DistributedError('the default process group is not initialised; call initProcessGroup() first');
  }
  return defaultGroup;
}

/** The default group when initialised with more than one rank, else null (single-process training). */
export function dataParallelGroup(): ProcessGroup | null {
  return defaultGroup !== null && defaultGroup.size > 1 ? defaultGroup : null;
}

export function getRank(group?: ProcessGroup): number {
  return (group ?? getDefaultGroup()).rank;
}

export function getWorldSize(group?: ProcessGroup): number {
  return (group ?? getDefaultGroup()).size;
}

export function getBackend(group?: ProcessGroup): Backend {
  return (group ?? getDefaultGroup()).backend;
}

/** Destroys `group` (default: the default group, which can then be initialised again). */
export function destroyProcessGroup(group?: ProcessGroup, options: { abort?: boolean } = {}): void {
  const g = group ?? defaultGroup;
  if (g === null) return;
  g.destroy(options);
  if (g === defaultGroup) defaultGroup = null;
}
