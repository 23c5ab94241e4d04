// Raw-pointer CPU kernels behind the fused ops (fused_*.cc, quant.cc), chosen once at load time.
//
// Two implementations fill the same table: portable C++ (fused_kernels_generic.cc) and AVX-512
// (fused_kernels_avx512.cc, compiled for that ISA with a target pragma and used only when the CPU reports it).
// The AVX-512 translation unit includes no ATen or standard-library templates, so no inline function compiled
// for AVX-512 can be picked by the linker for code that runs on other CPUs. Everything here is float32 on
// row-major memory with explicit leading dimensions; dtype conversion and autograd live in the ATen-side files.
#pragma once

#include <cstdint>

namespace moca {
namespace kern {

// Packed weight layouts of the low-precision linear kernels (see quant.cc). Output channels are grouped in
// panels of 64 (padded with zeros). bf16: [k][64] per panel. int8: k grouped by 4 ([k/4][64][4], k padded) so
// that one 64-byte vector holds 16 channels × one k-group, the operand layout of vpdpbusd.
constexpr int64_t kPanel = 64;

struct KernelTable {
  const char* name;
  // C[m×n] = alpha · A[m×k] · B[k×n] (+ C when accumulate). Row-major, leading dimensions in elements.
  void (*sgemm)(int64_t m, int64_t n, int64_t k, float alpha, const float* a, int64_t lda, const float* b,
                int64_t ldb, float* c, int64_t ldc, bool accumulate);
  // C[m×n] = alpha · Aᵀ · B (+ C), A stored k × m (row-major, lda).
  void (*sgemmTN)(int64_t m, int64_t n, int64_t k, float alpha, const float* a, int64_t lda, const float* b,
                  int64_t ldb, float* c, int64_t ldc, bool accumulate);
  // dst[c][r] = src[r][c] for a rows × cols block.
  void (*transpose)(int64_t rows, int64_t cols, const float* src, int64_t lds, float* dst, int64_t ldd);
  // Column-wise softmax steps of flash attention on keys × queries blocks (see fused_attention_ref.h).
  void (*softmaxColumns)(float* s, int64_t bk, int64_t bq, int64_t ld, float scale, int64_t diag, bool causal,
                         float* m, float* l, float* corr);
  void (*probColumns)(float* s, int64_t bk, int64_t bq, int64_t ld, float scale, const float* lse, int64_t diag,
                      bool causal);
  void (*dsColumns)(float* ds, const float* p, int64_t bk, int64_t bq, int64_t ld, const float* d);
  // max over x[0..n)
  float (*rowMax)(const float* x, int64_t n);
  // x[i] = exp(x[i] · scale − shift) in place; returns the sum.
  float (*expShiftSum)(float* x, int64_t n, float scale, float shift);
  // y[i] *= a
  void (*scale)(float* y, int64_t n, float a);
  // sum x[i]·y[i]
  float (*dot)(const float* x, const float* y, int64_t n);
  // GELU, tanh approximation: y = gelu(x); backward dx = dy · gelu'(x)
  void (*geluTanh)(const float* x, float* y, int64_t n);
  void (*geluTanhBackward)(const float* x, const float* dy, float* dx, int64_t n);
  // SwiGLU: y = silu(g) · u; backward dg, du
  void (*siluMul)(const float* g, const float* u, float* y, int64_t n);
  void (*siluMulBackward)(const float* g, const float* u, const float* dy, float* dg, float* du, int64_t n);
  // Low-precision linear over the 64-channel panels [panelBegin, panelEnd) of a packed weight (see quant.cc):
  //   bf16: C = A · Wᵀ + bias, A = float32 rows (kPadded = k), weights widened to float32 per block, float32 FMA.
  //   int8: C = rowScale · colScale · (A · Wᵀ − colComp) + bias, A = uint8 rows (int8 + 128, kPadded a multiple
  //         of 4), int32 accumulation (vpdpbusd); colComp = 128 · Σ_k W[c][k].
  // Null when the CPU lacks the instructions (the generic table has portable versions of both).
  void (*gemmBf16)(int64_t m, int64_t n, int64_t kPadded, const float* a, int64_t lda, const uint16_t* w,
                   const float* bias, float* c, int64_t ldc, int64_t panelBegin, int64_t panelEnd);
  void (*gemmU8S8)(int64_t m, int64_t n, int64_t kPadded, const uint8_t* a, int64_t lda, const int8_t* w,
                   const float* rowScale, const float* colScale, const int32_t* colComp, const float* bias, float* c,
                   int64_t ldc, int64_t panelBegin, int64_t panelEnd);
  // Small-batch float32 linear for output channels [nBegin, nEnd): C[m×n] = X · Wᵀ + bias with W (n × k)
  // row-major read once, straight from the weight (no packing copy); m ≤ 16.
  void (*linearSmallBatch)(int64_t m, int64_t k, const float* x, int64_t ldx, const float* w, int64_t ldw,
                           const float* bias, float* c, int64_t ldc, int64_t nBegin, int64_t nEnd);
  // Per-row symmetric int8 quantisation of float rows x (m × k, leading dim ldx) into uint8 (q + 128) rows of
  // kPadded (padding = 128, i.e. 0) and one scale per row (max|x| / 127).
  void (*quantizeRowsU8)(const float* x, int64_t ldx, int64_t m, int64_t k, int64_t kPadded, uint8_t* out,
                         float* scales);
};

const KernelTable& kernels();
// The portable table (tests compare the two where both exist).
const KernelTable& genericKernels();
// nullptr when this CPU lacks AVX-512 (F, BW, VL, DQ); its int8 GEMM is the generic one without AVX512_VNNI.
const KernelTable* avx512Kernels();
// Defined in fused_kernels_avx512.cc; only to be called after checking the CPU.
const KernelTable* avx512KernelTable();

}  // namespace kern
}  // namespace moca
