// OpenBLAS kernel selection (pure: importing this module loads nothing).

/**
 * OpenBLAS picks its kernels from the CPU model. On virtual machines that report a generic model it falls back
 * to the oldest x86-64 kernels (measured on this project's 2-core VM: 64 GFLOP/s instead of 294 at 1024³).
 * Unless the user chose a core type, pick one from the CPU's instruction-set flags. This must happen before
 * libtorch (and with it OpenBLAS) is loaded, because OpenBLAS reads the variable in its constructor.
 */
export function chooseOpenBlasCoreType(cpuinfo: string): string | undefined {
  const flagsLine = cpuinfo.split('\n').find((l) => l.startsWith('flags'));
  if (!flagsLine) return undefined;
  const flags = new Set(flagsLine.split(':')[1]?.trim().split(/\s+/) ?? []);
  if (flags.has('avx512f') && flags.has('avx512bw') && flags.has('avx512vl')) return 'SKYLAKEX';
  if (flags.has('avx2') && flags.has('fma')) return 'HASWELL';
  return undefined;
}
