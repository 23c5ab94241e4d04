// Helpers shared by the fused ops (fused_*.cc): element conversion and the float/double arithmetic used by the
// portable paths, with float routed to the active kernel table (AVX-512 where available).
#pragma once

#include <ATen/ATen.h>
#include <c10/util/BFloat16.h>

#include <algorithm>
#include <cmath>
#include <limits>

#include "fused_attention_ref.h"
#include "fused_kernels.h"

namespace moca {
namespace fused {

// Computation type of an element type: double stays double, everything else computes in float.
template <typename T>
struct AccOf {
  using type = float;
};
template <>
struct AccOf<double> {
  using type = double;
};
template <typename T>
using acc_t = typename AccOf<T>::type;

template <typename Acc, typename T>
inline Acc toAcc(T v) {
  return static_cast<Acc>(v);
}

template <typename T, typename Acc>
inline T fromAcc(Acc v) {
  return static_cast<T>(v);
}

// C = alpha·A·B (+C), row-major.
inline void gemm(int64_t m, int64_t n, int64_t k, float alpha, const float* a, int64_t lda, const float* b,
                 int64_t ldb, float* c, int64_t ldc, bool accumulate) {
  if (m <= 0 || n <= 0) return;
  if (k <= 0) {
    if (!accumulate)
      for (int64_t i = 0; i < m; ++i) std::fill(c + i * ldc, c + i * ldc + n, 0.0f);
    return;
  }
  kern::kernels().sgemm(m, n, k, alpha, a, lda, b, ldb, c, ldc, accumulate);
}

inline void gemm(int64_t m, int64_t n, int64_t k, double alpha, const double* a, int64_t lda, const double* b,
                 int64_t ldb, double* c, int64_t ldc, bool accumulate) {
  for (int64_t i = 0; i < m; ++i) {
    double* ci = c + i * ldc;
    if (!accumulate) std::fill(ci, ci + n, 0.0);
    for (int64_t p = 0; p < k; ++p) {
      double av = alpha * a[i * lda + p];
      const double* bp = b + p * ldb;
      for (int64_t j = 0; j < n; ++j) ci[j] += av * bp[j];
    }
  }
}

// C = alpha·Aᵀ·B (+C), A stored k × m.
inline void gemmTN(int64_t m, int64_t n, int64_t k, float alpha, const float* a, int64_t lda, const float* b,
                   int64_t ldb, float* c, int64_t ldc, bool accumulate) {
  if (m <= 0 || n <= 0) return;
  kern::kernels().sgemmTN(m, n, k, alpha, a, lda, b, ldb, c, ldc, accumulate);
}
inline void gemmTN(int64_t m, int64_t n, int64_t k, double alpha, const double* a, int64_t lda, const double* b,
                   int64_t ldb, double* c, int64_t ldc, bool accumulate) {
  kern::gemmTNRef<double>(m, n, k, alpha, a, lda, b, ldb, c, ldc, accumulate);
}

inline void transpose(int64_t rows, int64_t cols, const float* src, int64_t lds, float* dst, int64_t ldd) {
  kern::kernels().transpose(rows, cols, src, lds, dst, ldd);
}
inline void transpose(int64_t rows, int64_t cols, const double* src, int64_t lds, double* dst, int64_t ldd) {
  kern::transposeRef<double>(rows, cols, src, lds, dst, ldd);
}

inline void softmaxColumns(float* s, int64_t bk, int64_t bq, int64_t ld, float scale, int64_t diag, bool causal,
                           float* m, float* l, float* corr) {
  kern::kernels().softmaxColumns(s, bk, bq, ld, scale, diag, causal, m, l, corr);
}
inline void softmaxColumns(double* s, int64_t bk, int64_t bq, int64_t ld, double scale, int64_t diag, bool causal,
                           double* m, double* l, double* corr) {
  kern::softmaxColumnsRef<double>(s, bk, bq, ld, scale, diag, causal, m, l, corr);
}

inline void probColumns(float* s, int64_t bk, int64_t bq, int64_t ld, float scale, const float* lse, int64_t diag,
                        bool causal) {
  kern::kernels().probColumns(s, bk, bq, ld, scale, lse, diag, causal);
}
inline void probColumns(double* s, int64_t bk, int64_t bq, int64_t ld, double scale, const double* lse,
                        int64_t diag, bool causal) {
  kern::probColumnsRef<double>(s, bk, bq, ld, scale, lse, diag, causal);
}

inline void dsColumns(float* ds, const float* p, int64_t bk, int64_t bq, int64_t ld, const float* d) {
  kern::kernels().dsColumns(ds, p, bk, bq, ld, d);
}
inline void dsColumns(double* ds, const double* p, int64_t bk, int64_t bq, int64_t ld, const double* d) {
  kern::dsColumnsRef<double>(ds, p, bk, bq, ld, d);
}

inline float rowMax(const float* x, int64_t n) { return kern::kernels().rowMax(x, n); }
inline double rowMax(const double* x, int64_t n) {
  double m = -std::numeric_limits<double>::infinity();
  for (int64_t i = 0; i < n; ++i) m = std::max(m, x[i]);
  return m;
}

// x = exp(x·scale − shift), returns the sum.
inline float expShiftSum(float* x, int64_t n, float scale, float shift) {
  return kern::kernels().expShiftSum(x, n, scale, shift);
}
inline double expShiftSum(double* x, int64_t n, double scale, double shift) {
  double s = 0;
  for (int64_t i = 0; i < n; ++i) {
    x[i] = std::exp(x[i] * scale - shift);
    s += x[i];
  }
  return s;
}

inline void scaleRow(float* y, int64_t n, float a) { kern::kernels().scale(y, n, a); }
inline void scaleRow(double* y, int64_t n, double a) {
  for (int64_t i = 0; i < n; ++i) y[i] *= a;
}

inline float dot(const float* x, const float* y, int64_t n) { return kern::kernels().dot(x, y, n); }
inline double dot(const double* x, const double* y, int64_t n) {
  double s = 0;
  for (int64_t i = 0; i < n; ++i) s += x[i] * y[i];
  return s;
}

// Copies n elements of type T (strided by `stride`) into acc-type contiguous memory.
template <typename T, typename Acc>
inline void loadRow(const T* src, Acc* dst, int64_t n) {
  for (int64_t i = 0; i < n; ++i) dst[i] = toAcc<Acc>(src[i]);
}

template <typename T, typename Acc>
inline void storeRow(const Acc* src, T* dst, int64_t n) {
  for (int64_t i = 0; i < n; ++i) dst[i] = fromAcc<T>(src[i]);
}

// Dispatch over the floating dtypes the fused ops accept.
#define MOCA_DISPATCH_FUSED(dtype, name, ...) \
  AT_DISPATCH_FLOATING_TYPES_AND(at::ScalarType::BFloat16, dtype, name, __VA_ARGS__)

}  // namespace fused
}  // namespace moca
