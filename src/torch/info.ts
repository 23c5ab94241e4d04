// Build and runtime information.
import { native } from './native.js';

export interface BuildInfo {
  libtorchVersion: string;
  cudaAvailable: boolean;
  cudaDeviceCount: number;
  mkldnn: boolean;
  lapack: boolean;
  numThreads: number;
  openblasCoreType: string | undefined;
}

export function buildInfo(): BuildInfo {
  return {
    libtorchVersion: native.libtorchVersion(),
    cudaAvailable: native.cudaIsAvailable(),
    cudaDeviceCount: native.cudaDeviceCount(),
    mkldnn: native.hasMkldnn(),
    lapack: native.hasLapack(),
    numThreads: native.getNumThreads(),
    openblasCoreType: process.env.OPENBLAS_CORETYPE,
  };
}

/** Intra-op threads used by libtorch's CPU kernels (`torch.set_num_threads`). */
export function setNumThreads(n: number): void {
  native.setNumThreads(n);
}

export function getNumThreads(): number {
  return native.getNumThreads();
}

export function cudaIsAvailable(): boolean {
  return native.cudaIsAvailable();
}

/** Tensor handles alive in this thread and the storage bytes they keep (for leak checks). */
export function liveTensorStats(): { storages: number; handles: number; bytes: number } {
  return native.liveTensorStats();
}

export interface CpuCacheStats {
  /** Bytes of freed large blocks kept for reuse. */
  cachedBytes: number;
  cachedBlocks: number;
  /** Large allocations served from the cache / from the system. */
  hits: number;
  misses: number;
  /** Most bytes the cache keeps (MOCA_CPU_CACHE_MB; 0 disables caching). */
  limitBytes: number;
}

/** State of the caching CPU allocator (see docs/runtime.md). */
export function cpuCacheStats(): CpuCacheStats {
  const [cachedBytes, cachedBlocks, hits, misses, limitBytes] = native.cpuCacheStats() as [
    number,
    number,
    number,
    number,
    number,
  ];
  return { cachedBytes, cachedBlocks, hits, misses, limitBytes };
}

/** Returns the cached free blocks to the system (like `torch.cuda.empty_cache()`). */
export function emptyCache(): void {
  native.emptyCpuCache();
}
