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
