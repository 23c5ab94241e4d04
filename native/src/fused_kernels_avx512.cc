// AVX-512 kernels of the fused ops (see fused_kernels.h). This whole translation unit is compiled for
// AVX-512 (F/BW/VL/DQ, plus VNNI for the int8 GEMM) by the pragma below; it is only entered
// through the table returned by avx512KernelTable(), which fused_kernels_generic.cc hands out after checking
// the CPU. It deliberately includes nothing but <immintrin.h> and fixed-width integer types: no inline
// template or library function from here may be shared with code built for other CPUs.
#pragma GCC target("avx512f,avx512bw,avx512vl,avx512dq,avx512vnni,fma,avx2,f16c")
// GCC 12's own intrinsic headers trip these (self-initialised "undefined" vectors); nothing here reads uninitialised data.
#pragma GCC diagnostic ignored "-Wuninitialized"
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"

#include <immintrin.h>
#include <stdint.h>

#include "fused_kernels.h"

namespace moca {
namespace kern {
namespace {

inline int64_t imin(int64_t a, int64_t b) { return a < b ? a : b; }

inline __mmask16 tailMask(int64_t rem) {
  return rem >= 16 ? static_cast<__mmask16>(0xFFFF) : static_cast<__mmask16>((1u << (rem > 0 ? rem : 0)) - 1u);
}

// exp(x) for float32 lanes: Cephes' range reduction x = n·ln2 + r, degree-6 polynomial in r, 2ⁿ by scalef.
// Relative error about 2 ulp over the clamped range; inputs below −87.3 give ≈1e-38 (callers never feed −inf).
inline __m512 vexp(__m512 x) {
  x = _mm512_min_ps(_mm512_max_ps(x, _mm512_set1_ps(-87.3f)), _mm512_set1_ps(88.7f));
  __m512 n = _mm512_roundscale_ps(_mm512_mul_ps(x, _mm512_set1_ps(1.44269504088896341f)),
                                  _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
  __m512 r = _mm512_fnmadd_ps(n, _mm512_set1_ps(0.693359375f), x);
  r = _mm512_fnmadd_ps(n, _mm512_set1_ps(-2.12194440e-4f), r);
  __m512 p = _mm512_set1_ps(1.9875691500E-4f);
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.3981999507E-3f));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(8.3334519073E-3f));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(4.1665795894E-2f));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.6666665459E-1f));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(5.0000001201E-1f));
  __m512 r2 = _mm512_mul_ps(r, r);
  p = _mm512_fmadd_ps(p, r2, _mm512_add_ps(r, _mm512_set1_ps(1.0f)));
  return _mm512_scalef_ps(p, n);
}

// 1 / (1 + exp(-x)), exact division (the backward formulas reuse it, so no reciprocal approximation).
inline __m512 vsigmoid(__m512 x) {
  __m512 e = vexp(_mm512_sub_ps(_mm512_setzero_ps(), x));
  return _mm512_div_ps(_mm512_set1_ps(1.0f), _mm512_add_ps(_mm512_set1_ps(1.0f), e));
}

// tanh(y) = 1 − 2 / (exp(2y) + 1): saturates correctly at both ends; absolute error ~1e-7 near 0, which the
// callers (GELU) multiply by x.
inline __m512 vtanh(__m512 y) {
  __m512 e = vexp(_mm512_add_ps(y, y));
  return _mm512_sub_ps(_mm512_set1_ps(1.0f),
                       _mm512_div_ps(_mm512_set1_ps(2.0f), _mm512_add_ps(e, _mm512_set1_ps(1.0f))));
}

inline float hsum(__m512 v) { return _mm512_reduce_add_ps(v); }

// ------------------------------------------------------------------------------------------ small sgemm

// C[MR × (16·NZ)] block of alpha·A·B (+C). B rows are read with `masks`, so columns beyond n contribute 0.
// A is read as a[r·lda + p] (row-major m × k) or, with TransA, a[p·lda + r] (stored k × m). The k loop only
// touches registers: masks are copied to locals and B is loaded unmasked for full 16-lane vectors (with the
// masks read from memory inside the loop GCC kept the 24 accumulators in memory).
template <int MR, int NZ, bool TransA>
inline void sgemmBlock(int64_t k, float alpha, const float* __restrict__ a, int64_t lda, const float* __restrict__ b,
                       int64_t ldb, float* __restrict__ c, int64_t ldc, bool accumulate, const __mmask16* masks) {
  const __mmask16 lastMask = masks[NZ - 1];
  const bool full = lastMask == static_cast<__mmask16>(0xFFFF);
  __m512 acc[MR][NZ];
#pragma GCC unroll 8
  for (int r = 0; r < MR; ++r)
#pragma GCC unroll 4
    for (int q = 0; q < NZ; ++q) acc[r][q] = _mm512_setzero_ps();
  for (int64_t p = 0; p < k; ++p) {
    const float* bp = b + p * ldb;
    __m512 bv[NZ];
#pragma GCC unroll 4
    for (int q = 0; q < NZ - 1; ++q) bv[q] = _mm512_loadu_ps(bp + 16 * q);
    bv[NZ - 1] = full ? _mm512_loadu_ps(bp + 16 * (NZ - 1)) : _mm512_maskz_loadu_ps(lastMask, bp + 16 * (NZ - 1));
#pragma GCC unroll 8
    for (int r = 0; r < MR; ++r) {
      const __m512 av = _mm512_set1_ps(TransA ? a[p * lda + r] : a[r * lda + p]);
#pragma GCC unroll 4
      for (int q = 0; q < NZ; ++q) acc[r][q] = _mm512_fmadd_ps(av, bv[q], acc[r][q]);
    }
  }
  const __m512 al = _mm512_set1_ps(alpha);
#pragma GCC unroll 8
  for (int r = 0; r < MR; ++r) {
#pragma GCC unroll 4
    for (int q = 0; q < NZ; ++q) {
      const __mmask16 mq = q == NZ - 1 ? lastMask : static_cast<__mmask16>(0xFFFF);
      float* cp = c + r * ldc + 16 * q;
      __m512 v = _mm512_mul_ps(acc[r][q], al);
      if (accumulate) v = _mm512_add_ps(v, _mm512_maskz_loadu_ps(mq, cp));
      _mm512_mask_storeu_ps(cp, mq, v);
    }
  }
}

template <int MR, bool TransA>
inline void sgemmRows(int64_t n, int64_t k, float alpha, const float* a, int64_t lda, const float* b, int64_t ldb,
                      float* c, int64_t ldc, bool accumulate) {
  for (int64_t j = 0; j < n; j += 64) {
    int64_t nn = imin(64, n - j);
    __mmask16 masks[4] = {tailMask(nn), tailMask(nn - 16), tailMask(nn - 32), tailMask(nn - 48)};
    int nz = static_cast<int>((nn + 15) / 16);
    const float* bj = b + j;
    float* cj = c + j;
    switch (nz) {
      case 1: sgemmBlock<MR, 1, TransA>(k, alpha, a, lda, bj, ldb, cj, ldc, accumulate, masks); break;
      case 2: sgemmBlock<MR, 2, TransA>(k, alpha, a, lda, bj, ldb, cj, ldc, accumulate, masks); break;
      case 3: sgemmBlock<MR, 3, TransA>(k, alpha, a, lda, bj, ldb, cj, ldc, accumulate, masks); break;
      default: sgemmBlock<MR, 4, TransA>(k, alpha, a, lda, bj, ldb, cj, ldc, accumulate, masks); break;
    }
  }
}

template <bool TransA>
void sgemmAny(int64_t m, int64_t n, int64_t k, float alpha, const float* a, int64_t lda, const float* b, int64_t ldb,
              float* c, int64_t ldc, bool accumulate) {
  // Row tile i starts at a + i·lda (row-major A) or at column i (transposed A).
  const int64_t rowStep = TransA ? 1 : lda;
  int64_t i = 0;
  for (; i + 6 <= m; i += 6)
    sgemmRows<6, TransA>(n, k, alpha, a + i * rowStep, lda, b, ldb, c + i * ldc, ldc, accumulate);
  const float* ai = a + i * rowStep;
  float* ci = c + i * ldc;
  switch (m - i) {
    case 5: sgemmRows<5, TransA>(n, k, alpha, ai, lda, b, ldb, ci, ldc, accumulate); break;
    case 4: sgemmRows<4, TransA>(n, k, alpha, ai, lda, b, ldb, ci, ldc, accumulate); break;
    case 3: sgemmRows<3, TransA>(n, k, alpha, ai, lda, b, ldb, ci, ldc, accumulate); break;
    case 2: sgemmRows<2, TransA>(n, k, alpha, ai, lda, b, ldb, ci, ldc, accumulate); break;
    case 1: sgemmRows<1, TransA>(n, k, alpha, ai, lda, b, ldb, ci, ldc, accumulate); break;
    default: break;
  }
}

void sgemm(int64_t m, int64_t n, int64_t k, float alpha, const float* a, int64_t lda, const float* b, int64_t ldb,
           float* c, int64_t ldc, bool accumulate) {
  sgemmAny<false>(m, n, k, alpha, a, lda, b, ldb, c, ldc, accumulate);
}

void sgemmTN(int64_t m, int64_t n, int64_t k, float alpha, const float* a, int64_t lda, const float* b, int64_t ldb,
             float* c, int64_t ldc, bool accumulate) {
  sgemmAny<true>(m, n, k, alpha, a, lda, b, ldb, c, ldc, accumulate);
}

// dst[c][r] = src[r][c]: 16 rows of one source column per gather.
void transpose(int64_t rows, int64_t cols, const float* src, int64_t lds, float* dst, int64_t ldd) {
  const __m512i lane = _mm512_mullo_epi32(_mm512_set_epi32(15, 14, 13, 12, 11, 10, 9, 8, 7, 6, 5, 4, 3, 2, 1, 0),
                                          _mm512_set1_epi32(static_cast<int>(lds)));
  for (int64_t r = 0; r < rows; r += 16) {
    const __mmask16 mk = tailMask(rows - r);
    const float* base = src + r * lds;
    for (int64_t c = 0; c < cols; ++c) {
      __m512 v = _mm512_mask_i32gather_ps(_mm512_setzero_ps(), mk, lane, base + c, 4);
      _mm512_mask_storeu_ps(dst + c * ldd + r, mk, v);
    }
  }
}

// Lanes of a 16-query chunk starting at column q0 that key row j may attend (j + diag ≤ q).
inline __mmask16 visible(__mmask16 tail, int64_t j, int64_t diag, int64_t q0, bool causal) {
  if (!causal) return tail;
  const int64_t first = j + diag - q0;  // first visible lane
  if (first <= 0) return tail;
  if (first >= 16) return 0;
  return static_cast<__mmask16>(tail & ~((1u << first) - 1u));
}

void softmaxColumns(float* s, int64_t bk, int64_t bq, int64_t ld, float scale, int64_t diag, bool causal, float* m,
                    float* l, float* corr) {
  const __m512 negInf = _mm512_set1_ps(-__builtin_inff());
  const __m512 sc = _mm512_set1_ps(scale);
  for (int64_t q0 = 0; q0 < bq; q0 += 16) {
    const __mmask16 tail = tailMask(bq - q0);
    const __m512 mOld = _mm512_mask_loadu_ps(negInf, tail, m + q0);
    __m512 mNew = mOld;
    for (int64_t j = 0; j < bk; ++j) {
      const __mmask16 vis = visible(tail, j, diag, q0, causal);
      if (vis == 0) continue;
      mNew = _mm512_mask_max_ps(mNew, vis, mNew, _mm512_maskz_loadu_ps(vis, s + j * ld + q0));
    }
    // corr = exp((mOld − mNew)·scale), 0 where nothing was seen before.
    const __mmask16 seen = _mm512_cmp_ps_mask(mOld, negInf, _CMP_NEQ_OQ);
    const __m512 c = _mm512_maskz_mov_ps(seen, vexp(_mm512_mul_ps(_mm512_sub_ps(mOld, mNew), sc)));
    __m512 lv = _mm512_mul_ps(_mm512_maskz_loadu_ps(tail, l + q0), c);
    const __m512 shift = _mm512_mul_ps(mNew, sc);
    for (int64_t j = 0; j < bk; ++j) {
      const __mmask16 vis = visible(tail, j, diag, q0, causal);
      float* row = s + j * ld + q0;
      __m512 p = _mm512_maskz_mov_ps(vis, vexp(_mm512_fmsub_ps(_mm512_maskz_loadu_ps(vis, row), sc, shift)));
      lv = _mm512_add_ps(lv, p);
      _mm512_mask_storeu_ps(row, tail, p);
    }
    _mm512_mask_storeu_ps(m + q0, tail, mNew);
    _mm512_mask_storeu_ps(l + q0, tail, lv);
    _mm512_mask_storeu_ps(corr + q0, tail, c);
  }
}

void probColumns(float* s, int64_t bk, int64_t bq, int64_t ld, float scale, const float* lse, int64_t diag,
                 bool causal) {
  const __m512 negInf = _mm512_set1_ps(-__builtin_inff());
  const __m512 sc = _mm512_set1_ps(scale);
  for (int64_t q0 = 0; q0 < bq; q0 += 16) {
    const __mmask16 tail = tailMask(bq - q0);
    const __m512 lv = _mm512_mask_loadu_ps(negInf, tail, lse + q0);
    const __mmask16 live = _mm512_mask_cmp_ps_mask(tail, lv, negInf, _CMP_NEQ_OQ);
    for (int64_t j = 0; j < bk; ++j) {
      const __mmask16 vis = visible(live, j, diag, q0, causal);
      float* row = s + j * ld + q0;
      __m512 p = _mm512_maskz_mov_ps(vis, vexp(_mm512_fmsub_ps(_mm512_maskz_loadu_ps(vis, row), sc, lv)));
      _mm512_mask_storeu_ps(row, tail, p);
    }
  }
}

void dsColumns(float* ds, const float* p, int64_t bk, int64_t bq, int64_t ld, const float* d) {
  for (int64_t q0 = 0; q0 < bq; q0 += 16) {
    const __mmask16 tail = tailMask(bq - q0);
    const __m512 dv = _mm512_maskz_loadu_ps(tail, d + q0);
    for (int64_t j = 0; j < bk; ++j) {
      float* row = ds + j * ld + q0;
      __m512 v = _mm512_mul_ps(_mm512_maskz_loadu_ps(tail, p + j * ld + q0),
                               _mm512_sub_ps(_mm512_maskz_loadu_ps(tail, row), dv));
      _mm512_mask_storeu_ps(row, tail, v);
    }
  }
}

// ------------------------------------------------------------------------------------------ row helpers

float rowMax(const float* x, int64_t n) {
  __m512 m = _mm512_set1_ps(-__builtin_inff());
  for (int64_t i = 0; i < n; i += 16) {
    __mmask16 mk = tailMask(n - i);
    m = _mm512_mask_max_ps(m, mk, m, _mm512_maskz_loadu_ps(mk, x + i));
  }
  return _mm512_reduce_max_ps(m);
}

float expShiftSum(float* x, int64_t n, float scale, float shift) {
  __m512 s = _mm512_set1_ps(scale);
  __m512 sh = _mm512_set1_ps(shift);
  __m512 sum = _mm512_setzero_ps();
  for (int64_t i = 0; i < n; i += 16) {
    __mmask16 mk = tailMask(n - i);
    __m512 v = vexp(_mm512_fmsub_ps(_mm512_maskz_loadu_ps(mk, x + i), s, sh));
    sum = _mm512_mask_add_ps(sum, mk, sum, v);
    _mm512_mask_storeu_ps(x + i, mk, v);
  }
  return hsum(sum);
}

void scaleRow(float* y, int64_t n, float a) {
  __m512 av = _mm512_set1_ps(a);
  for (int64_t i = 0; i < n; i += 16) {
    __mmask16 mk = tailMask(n - i);
    _mm512_mask_storeu_ps(y + i, mk, _mm512_mul_ps(_mm512_maskz_loadu_ps(mk, y + i), av));
  }
}

float dotRow(const float* x, const float* y, int64_t n) {
  __m512 acc = _mm512_setzero_ps();
  for (int64_t i = 0; i < n; i += 16) {
    __mmask16 mk = tailMask(n - i);
    acc = _mm512_fmadd_ps(_mm512_maskz_loadu_ps(mk, x + i), _mm512_maskz_loadu_ps(mk, y + i), acc);
  }
  return hsum(acc);
}

// ------------------------------------------------------------------------------------------ activations

constexpr float kSqrt2OverPi = 0.7978845608028654f;
constexpr float kGeluC = 0.044715f;

void geluTanh(const float* x, float* y, int64_t n) {
  for (int64_t i = 0; i < n; i += 16) {
    __mmask16 mk = tailMask(n - i);
    __m512 v = _mm512_maskz_loadu_ps(mk, x + i);
    __m512 v3 = _mm512_mul_ps(_mm512_mul_ps(v, v), v);
    __m512 inner = _mm512_mul_ps(_mm512_set1_ps(kSqrt2OverPi), _mm512_fmadd_ps(_mm512_set1_ps(kGeluC), v3, v));
    __m512 t = vtanh(inner);
    __m512 out = _mm512_mul_ps(_mm512_mul_ps(_mm512_set1_ps(0.5f), v), _mm512_add_ps(_mm512_set1_ps(1.0f), t));
    _mm512_mask_storeu_ps(y + i, mk, out);
  }
}

void geluTanhBackward(const float* x, const float* dy, float* dx, int64_t n) {
  for (int64_t i = 0; i < n; i += 16) {
    __mmask16 mk = tailMask(n - i);
    __m512 v = _mm512_maskz_loadu_ps(mk, x + i);
    __m512 v2 = _mm512_mul_ps(v, v);
    __m512 inner = _mm512_mul_ps(_mm512_set1_ps(kSqrt2OverPi),
                                 _mm512_fmadd_ps(_mm512_mul_ps(_mm512_set1_ps(kGeluC), v2), v, v));
    __m512 t = vtanh(inner);
    // d/dx [0.5 x (1 + t)] = 0.5 (1 + t) + 0.5 x (1 − t²) √(2/π) (1 + 3c x²)
    __m512 dinner = _mm512_mul_ps(_mm512_set1_ps(kSqrt2OverPi),
                                  _mm512_fmadd_ps(_mm512_set1_ps(3.0f * kGeluC), v2, _mm512_set1_ps(1.0f)));
    __m512 sech2 = _mm512_fnmadd_ps(t, t, _mm512_set1_ps(1.0f));
    __m512 left = _mm512_mul_ps(_mm512_set1_ps(0.5f), _mm512_add_ps(_mm512_set1_ps(1.0f), t));
    __m512 right = _mm512_mul_ps(_mm512_mul_ps(_mm512_set1_ps(0.5f), v), _mm512_mul_ps(sech2, dinner));
    __m512 g = _mm512_mul_ps(_mm512_maskz_loadu_ps(mk, dy + i), _mm512_add_ps(left, right));
    _mm512_mask_storeu_ps(dx + i, mk, g);
  }
}

void siluMul(const float* g, const float* u, float* y, int64_t n) {
  for (int64_t i = 0; i < n; i += 16) {
    __mmask16 mk = tailMask(n - i);
    __m512 gv = _mm512_maskz_loadu_ps(mk, g + i);
    __m512 s = vsigmoid(gv);
    _mm512_mask_storeu_ps(y + i, mk, _mm512_mul_ps(_mm512_mul_ps(gv, s), _mm512_maskz_loadu_ps(mk, u + i)));
  }
}

void siluMulBackward(const float* g, const float* u, const float* dy, float* dg, float* du, int64_t n) {
  for (int64_t i = 0; i < n; i += 16) {
    __mmask16 mk = tailMask(n - i);
    __m512 gv = _mm512_maskz_loadu_ps(mk, g + i);
    __m512 uv = _mm512_maskz_loadu_ps(mk, u + i);
    __m512 d = _mm512_maskz_loadu_ps(mk, dy + i);
    __m512 s = vsigmoid(gv);
    __m512 silu = _mm512_mul_ps(gv, s);
    // silu'(g) = s (1 + g (1 − s))
    __m512 dsilu = _mm512_mul_ps(s, _mm512_fmadd_ps(gv, _mm512_sub_ps(_mm512_set1_ps(1.0f), s), _mm512_set1_ps(1.0f)));
    if (dg != nullptr) _mm512_mask_storeu_ps(dg + i, mk, _mm512_mul_ps(_mm512_mul_ps(d, uv), dsilu));
    if (du != nullptr) _mm512_mask_storeu_ps(du + i, mk, _mm512_mul_ps(d, silu));
  }
}

// ------------------------------------------------------------------------------------------ low-precision GEMMs
//
// Weights are packed per 64-channel panel: bf16 as [k][64 channels]; int8 as [k/4][64 channels][4], so that each
// k-group of a panel is four 64-byte vectors (16 channels × 4 k each) and one 32-bit broadcast of an activation
// row's 4 bytes feeds 4 vpdpbusd.

// bf16 weights, float32 activations: each 128-row k-block of a weight panel is widened to float32 in an L1
// buffer and multiplied with the float32 FMA tile (AVX512_BF16's vdpbf16ps would round the activations and, on
// cores without AMX, retires no more multiply-adds per cycle than two FMA ports). The weight bytes read are
// half of float32's, which is what bounds small batches.
constexpr int64_t kBf16Kc = 128;

template <int MR>
inline void bf16Tile(int64_t kc, const float* a, int64_t lda, const float* b, float* c, int64_t ldc, bool accumulate,
                     const float* bias, const __mmask16* masks, const uint16_t* prefetch) {
  __m512 acc[MR][4];
#pragma GCC unroll 8
  for (int r = 0; r < MR; ++r)
  #pragma GCC unroll 4
    for (int q = 0; q < 4; ++q)
      acc[r][q] = accumulate ? _mm512_maskz_loadu_ps(masks[q], c + r * ldc + 16 * q) : _mm512_setzero_ps();
  for (int64_t p = 0; p < kc; ++p) {
    const float* bp = b + p * kPanel;
    if (prefetch != nullptr) {  // one k-row of bf16 weights: 128 bytes, two lines
      _mm_prefetch(reinterpret_cast<const char*>(prefetch + p * kPanel), _MM_HINT_T1);
      _mm_prefetch(reinterpret_cast<const char*>(prefetch + p * kPanel + 32), _MM_HINT_T1);
    }
    __m512 b0 = _mm512_load_ps(bp), b1 = _mm512_load_ps(bp + 16), b2 = _mm512_load_ps(bp + 32),
           b3 = _mm512_load_ps(bp + 48);
  #pragma GCC unroll 8
    for (int r = 0; r < MR; ++r) {
      __m512 av = _mm512_set1_ps(a[r * lda + p]);
      acc[r][0] = _mm512_fmadd_ps(av, b0, acc[r][0]);
      acc[r][1] = _mm512_fmadd_ps(av, b1, acc[r][1]);
      acc[r][2] = _mm512_fmadd_ps(av, b2, acc[r][2]);
      acc[r][3] = _mm512_fmadd_ps(av, b3, acc[r][3]);
    }
  }
#pragma GCC unroll 4
  for (int q = 0; q < 4; ++q) {
    __m512 bv = bias != nullptr ? _mm512_maskz_loadu_ps(masks[q], bias + 16 * q) : _mm512_setzero_ps();
  #pragma GCC unroll 8
    for (int r = 0; r < MR; ++r) _mm512_mask_storeu_ps(c + r * ldc + 16 * q, masks[q], _mm512_add_ps(acc[r][q], bv));
  }
}

void gemmBf16(int64_t m, int64_t n, int64_t k, const float* a, int64_t lda, const uint16_t* w, const float* bias,
              float* c, int64_t ldc, int64_t panelBegin, int64_t panelEnd) {
  alignas(64) float block[kBf16Kc * kPanel];
  for (int64_t p = panelBegin; p < panelEnd; ++p) {
    const uint16_t* panel = w + p * k * kPanel;
    const int64_t col = p * kPanel;
    const int64_t nn = imin(kPanel, n - col);
    __mmask16 masks[4] = {tailMask(nn), tailMask(nn - 16), tailMask(nn - 32), tailMask(nn - 48)};
    for (int64_t k0 = 0; k0 < k; k0 += kBf16Kc) {
      const int64_t kc = imin(kBf16Kc, k - k0);
      const uint16_t* src = panel + k0 * kPanel;
      for (int64_t i = 0; i < kc * kPanel; i += 16) {
        __m512i wide = _mm512_cvtepu16_epi32(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(src + i)));
        _mm512_store_ps(block + i, _mm512_castsi512_ps(_mm512_slli_epi32(wide, 16)));
      }
      const bool accumulate = k0 > 0;
      const float* bp = k0 + kc == k && bias != nullptr ? bias + col : nullptr;
      // The first pass of rows fetches the next k-block of bf16 weights (the rest of this panel, then the next
      // panel's first block) into L2, so that memory keeps streaming while the passes compute. Only for a few
      // rows: with many, the passes are long enough for the hardware prefetcher.
      const uint16_t* next = nullptr;
      if (m <= 16) {
        if (k0 + kc < k)
          next = src + kc * kPanel;
        else if (col + kPanel < n)
          next = panel + k * kPanel;
      }
      // (A next block shorter than kc rows is over-fetched a little: prefetches never fault.)
      int64_t i = 0;
      for (; i + 6 <= m; i += 6)
        bf16Tile<6>(kc, a + i * lda + k0, lda, block, c + i * ldc + col, ldc, accumulate, bp, masks,
                    i == 0 ? next : nullptr);
      const float* ai = a + i * lda + k0;
      float* ci = c + i * ldc + col;
      const uint16_t* pf = i == 0 ? next : nullptr;
      switch (m - i) {
        case 5: bf16Tile<5>(kc, ai, lda, block, ci, ldc, accumulate, bp, masks, pf); break;
        case 4: bf16Tile<4>(kc, ai, lda, block, ci, ldc, accumulate, bp, masks, pf); break;
        case 3: bf16Tile<3>(kc, ai, lda, block, ci, ldc, accumulate, bp, masks, pf); break;
        case 2: bf16Tile<2>(kc, ai, lda, block, ci, ldc, accumulate, bp, masks, pf); break;
        case 1: bf16Tile<1>(kc, ai, lda, block, ci, ldc, accumulate, bp, masks, pf); break;
        default: break;
      }
    }
  }
}

// Output y = rowScale[r] · colScale[c] · (Σ u8·s8 − colComp[c]) + bias[c], where colComp = 128 · Σ_k w[c][k]
// undoes the +128 that made the symmetric int8 activations unsigned.
// acc += Σ₄ u8(a)·s8(b) per 32-bit lane. Inline assembly pins the accumulator to a register: with the intrinsic,
// GCC 12 copied every accumulator through the stack on each iteration.
inline void dpbusd(__m512i& acc, __m512i a, __m512i b) { asm("vpdpbusd %2, %1, %0" : "+v"(acc) : "v"(a), "v"(b)); }

template <int MR>
inline void u8s8Tile(int64_t kGroups, const uint8_t* __restrict__ a, int64_t lda, const int8_t* __restrict__ panel,
                     const float* rowScale, const float* colScale, const int32_t* colComp, const float* bias,
                     float* __restrict__ c, int64_t ldc, int64_t nn, const int8_t* prefetch) {
  __m512i c0[MR], c1[MR], c2[MR], c3[MR];
#pragma GCC unroll 8
  for (int r = 0; r < MR; ++r) c0[r] = c1[r] = c2[r] = c3[r] = _mm512_setzero_si512();
  for (int64_t g = 0; g < kGroups; ++g) {
    const int8_t* bp = panel + g * 256;
    if (prefetch != nullptr) {
      const char* q = reinterpret_cast<const char*>(prefetch + g * 256);
      _mm_prefetch(q, _MM_HINT_T1);
      _mm_prefetch(q + 64, _MM_HINT_T1);
      _mm_prefetch(q + 128, _MM_HINT_T1);
      _mm_prefetch(q + 192, _MM_HINT_T1);
    }
    const __m512i b0 = _mm512_loadu_si512(bp);
    const __m512i b1 = _mm512_loadu_si512(bp + 64);
    const __m512i b2 = _mm512_loadu_si512(bp + 128);
    const __m512i b3 = _mm512_loadu_si512(bp + 192);
#pragma GCC unroll 8
    for (int r = 0; r < MR; ++r) {
      int32_t word;
      __builtin_memcpy(&word, a + r * lda + 4 * g, 4);
      const __m512i av = _mm512_set1_epi32(word);
      dpbusd(c0[r], av, b0);
      dpbusd(c1[r], av, b1);
      dpbusd(c2[r], av, b2);
      dpbusd(c3[r], av, b3);
    }
  }
  // (Written out per column: taking the arrays' addresses would keep them in memory.)
#define MOCA_U8S8_FINISH(ACC, Q)                                                                      \
  {                                                                                                   \
    const __mmask16 mk = tailMask(nn - 16 * (Q));                                                     \
    const __m512i comp = _mm512_maskz_loadu_epi32(mk, colComp + 16 * (Q));                           \
    const __m512 cs = _mm512_maskz_loadu_ps(mk, colScale + 16 * (Q));                                 \
    const __m512 bv = bias != nullptr ? _mm512_maskz_loadu_ps(mk, bias + 16 * (Q)) : _mm512_setzero_ps(); \
    _Pragma("GCC unroll 8") for (int r = 0; r < MR; ++r) {                                            \
      __m512 v = _mm512_cvtepi32_ps(_mm512_sub_epi32(ACC[r], comp));                                  \
      v = _mm512_fmadd_ps(_mm512_mul_ps(v, cs), _mm512_set1_ps(rowScale[r]), bv);                     \
      _mm512_mask_storeu_ps(c + r * ldc + 16 * (Q), mk, v);                                           \
    }                                                                                                 \
  }
  MOCA_U8S8_FINISH(c0, 0)
  MOCA_U8S8_FINISH(c1, 1)
  MOCA_U8S8_FINISH(c2, 2)
  MOCA_U8S8_FINISH(c3, 3)
#undef MOCA_U8S8_FINISH
}

void gemmU8S8(int64_t m, int64_t n, int64_t kPadded, const uint8_t* a, int64_t lda, const int8_t* w,
              const float* rowScale, const float* colScale, const int32_t* colComp, const float* bias, float* c,
              int64_t ldc, int64_t panelBegin, int64_t panelEnd) {
  int64_t kGroups = kPadded / 4;
  for (int64_t p = panelBegin; p < panelEnd; ++p) {
    const int8_t* panel = w + p * kGroups * 256;
    int64_t col = p * kPanel;
    int64_t nn = imin(kPanel, n - col);
    const float* bp = bias != nullptr ? bias + col : nullptr;
    const float* cs = colScale + col;
    const int32_t* cc = colComp + col;
    // With more than one pass of rows over the panel, the second pass (which reads the panel from L2) fetches
    // the next panel into L2, so that memory keeps streaming while the later passes compute.
    const int8_t* next = m > 6 && col + kPanel < n ? panel + kGroups * 256 : nullptr;
    int64_t i = 0;
    for (; i + 6 <= m; i += 6)
      u8s8Tile<6>(kGroups, a + i * lda, lda, panel, rowScale + i, cs, cc, bp, c + i * ldc + col, ldc, nn,
                  i == 6 ? next : nullptr);
    const uint8_t* ai = a + i * lda;
    float* ci = c + i * ldc + col;
    const float* rs = rowScale + i;
    const int8_t* pf = i == 6 ? next : nullptr;
    switch (m - i) {
      case 5: u8s8Tile<5>(kGroups, ai, lda, panel, rs, cs, cc, bp, ci, ldc, nn, pf); break;
      case 4: u8s8Tile<4>(kGroups, ai, lda, panel, rs, cs, cc, bp, ci, ldc, nn, pf); break;
      case 3: u8s8Tile<3>(kGroups, ai, lda, panel, rs, cs, cc, bp, ci, ldc, nn, pf); break;
      case 2: u8s8Tile<2>(kGroups, ai, lda, panel, rs, cs, cc, bp, ci, ldc, nn, pf); break;
      case 1: u8s8Tile<1>(kGroups, ai, lda, panel, rs, cs, cc, bp, ci, ldc, nn, pf); break;
      default: break;
    }
  }
}

// NR weight rows against MR activation rows: per 16-float chunk, NR weight loads and MR activation loads feed
// MR·NR FMAs (the weights stream from memory once; activations come from L1/L2). `prefetch` (or null): NR rows
// (stride ldw) fetched into L2 alongside, one line per row and chunk.
template <int MR, int NR>
inline void smallBatchTile(int64_t k, const float* x, int64_t ldx, const float* w, int64_t ldw, float* out,
                           int64_t ldc, const float* prefetch) {
  __m512 acc[MR][NR];
#pragma GCC unroll 8
  for (int r = 0; r < MR; ++r)
#pragma GCC unroll 3
    for (int j = 0; j < NR; ++j) acc[r][j] = _mm512_setzero_ps();
  for (int64_t p = 0; p < k; p += 16) {
    const __mmask16 mk = tailMask(k - p);
    if (prefetch != nullptr) {
#pragma GCC unroll 3
      for (int j = 0; j < NR; ++j) _mm_prefetch(reinterpret_cast<const char*>(prefetch + j * ldw + p), _MM_HINT_T1);
    }
    __m512 wv[NR];
#pragma GCC unroll 3
    for (int j = 0; j < NR; ++j) wv[j] = _mm512_maskz_loadu_ps(mk, w + j * ldw + p);
#pragma GCC unroll 8
    for (int r = 0; r < MR; ++r) {
      const __m512 xv = _mm512_maskz_loadu_ps(mk, x + r * ldx + p);
#pragma GCC unroll 3
      for (int j = 0; j < NR; ++j) acc[r][j] = _mm512_fmadd_ps(xv, wv[j], acc[r][j]);
    }
  }
#pragma GCC unroll 8
  for (int r = 0; r < MR; ++r)
#pragma GCC unroll 3
    for (int j = 0; j < NR; ++j) out[r * ldc + j] = _mm512_reduce_add_ps(acc[r][j]);
}

template <int NR>
inline void smallBatchRows(int64_t rows, int64_t k, const float* x, int64_t ldx, const float* w, int64_t ldw,
                           float* out, int64_t ldc, const float* pf) {
  switch (rows) {
    case 8: smallBatchTile<8, NR>(k, x, ldx, w, ldw, out, ldc, pf); break;
    case 7: smallBatchTile<7, NR>(k, x, ldx, w, ldw, out, ldc, pf); break;
    case 6: smallBatchTile<6, NR>(k, x, ldx, w, ldw, out, ldc, pf); break;
    case 5: smallBatchTile<5, NR>(k, x, ldx, w, ldw, out, ldc, pf); break;
    case 4: smallBatchTile<4, NR>(k, x, ldx, w, ldw, out, ldc, pf); break;
    case 3: smallBatchTile<3, NR>(k, x, ldx, w, ldw, out, ldc, pf); break;
    case 2: smallBatchTile<2, NR>(k, x, ldx, w, ldw, out, ldc, pf); break;
    default: smallBatchTile<1, NR>(k, x, ldx, w, ldw, out, ldc, pf); break;
  }
}

void linearSmallBatch(int64_t m, int64_t k, const float* x, int64_t ldx, const float* w, int64_t ldw,
                      const float* bias, float* c, int64_t ldc, int64_t nBegin, int64_t nEnd) {
  for (int64_t n = nBegin; n < nEnd; n += 3) {
    const int64_t nr = imin(3, nEnd - n);
    const float* wn = w + n * ldw;
    // Rows in groups of 8; the second group re-reads the three weight rows from L1 / L2, and meanwhile fetches
    // the next three rows into L2 so that memory keeps streaming while it computes.
    const float* next = m > 8 && n + 2 * nr <= nEnd ? wn + nr * ldw : nullptr;
    for (int64_t i = 0; i < m; i += 8) {
      const int64_t rows = imin(8, m - i);
      const float* xi = x + i * ldx;
      float* ci = c + i * ldc + n;
      const float* pf = i == 8 ? next : nullptr;
      if (nr == 3)
        smallBatchRows<3>(rows, k, xi, ldx, wn, ldw, ci, ldc, pf);
      else if (nr == 2)
        smallBatchRows<2>(rows, k, xi, ldx, wn, ldw, ci, ldc, pf);
      else
        smallBatchRows<1>(rows, k, xi, ldx, wn, ldw, ci, ldc, pf);
    }
    if (bias != nullptr)
      for (int64_t i = 0; i < m; ++i)
        for (int64_t j = 0; j < nr; ++j) c[i * ldc + n + j] += bias[n + j];
  }
}

// Per-row symmetric int8 quantisation of activations, stored +128 as uint8 (padding columns get 128 = zero).
void quantizeRowsU8(const float* x, int64_t ldx, int64_t m, int64_t k, int64_t kPadded, uint8_t* out, float* scales) {
  for (int64_t r = 0; r < m; ++r) {
    const float* xr = x + r * ldx;
    __m512 mx = _mm512_setzero_ps();
    for (int64_t i = 0; i < k; i += 16) {
      __mmask16 mk = tailMask(k - i);
      mx = _mm512_max_ps(mx, _mm512_abs_ps(_mm512_maskz_loadu_ps(mk, xr + i)));
    }
    float amax = _mm512_reduce_max_ps(mx);
    float scale = amax > 0 ? amax / 127.0f : 1.0f;
    scales[r] = scale;
    __m512 inv = _mm512_set1_ps(1.0f / scale);
    uint8_t* o = out + r * kPadded;
    for (int64_t i = 0; i < k; i += 16) {
      __mmask16 mk = tailMask(k - i);
      __m512 v = _mm512_mul_ps(_mm512_maskz_loadu_ps(mk, xr + i), inv);
      __m512i q = _mm512_cvtps_epi32(v);  // round to nearest even
      q = _mm512_min_epi32(_mm512_max_epi32(q, _mm512_set1_epi32(-127)), _mm512_set1_epi32(127));
      q = _mm512_add_epi32(q, _mm512_set1_epi32(128));
      _mm_mask_storeu_epi8(o + i, mk, _mm512_cvtepi32_epi8(q));
    }
    for (int64_t i = k; i < kPadded; ++i) o[i] = 128;
  }
}

}  // namespace

const KernelTable* avx512KernelTable() {
  static const KernelTable table = {
      "avx512",        &sgemm,   &sgemmTN, &transpose, &softmaxColumns, &probColumns, &dsColumns, &rowMax,          &expShiftSum, &scaleRow, &dotRow,         &geluTanh,
      &geluTanhBackward, &siluMul, &siluMulBackward, &gemmBf16, &gemmU8S8, &linearSmallBatch, &quantizeRowsU8,
  };
  return &table;
}

}  // namespace kern
}  // namespace moca
