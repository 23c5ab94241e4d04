// Portable column-wise softmax steps of the flash attention kernel (fused_attention.cc), for float (the generic
// kernel table) and double (the float64 path). A score block is stored keys × queries (Sᵀ), so each query's
// softmax runs down a column and the vector units work across queries.
//
// Causal masking: key row j of the block is visible to query column q when j + diag ≤ q, where
// diag = (first key index of the block) − (first query index of the block), both counted from the segment start.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <limits>

namespace moca {
namespace kern {

template <typename T>
inline int64_t firstVisibleColumn(int64_t j, int64_t diag, bool causal) {
  return causal ? std::max<int64_t>(0, j + diag) : 0;
}

// One online-softmax step: m (running max of raw scores), l (running sum) per query are updated with the
// block; s becomes the block's probabilities exp(s·scale − m_new·scale) (0 where masked); corr[q] is the factor
// the query's accumulated output must be multiplied by.
template <typename T>
void softmaxColumnsRef(T* s, int64_t bk, int64_t bq, int64_t ld, T scale, int64_t diag, bool causal, T* m, T* l,
                       T* corr) {
  const T negInf = -std::numeric_limits<T>::infinity();
  for (int64_t q = 0; q < bq; ++q) corr[q] = m[q];  // old max, for now
  for (int64_t j = 0; j < bk; ++j) {
    const T* row = s + j * ld;
    for (int64_t q = firstVisibleColumn<T>(j, diag, causal); q < bq; ++q) m[q] = std::max(m[q], row[q]);
  }
  for (int64_t q = 0; q < bq; ++q) {
    const T old = corr[q];
    corr[q] = old == negInf ? T(0) : std::exp((old - m[q]) * scale);
    l[q] *= corr[q];
  }
  for (int64_t j = 0; j < bk; ++j) {
    T* row = s + j * ld;
    const int64_t first = firstVisibleColumn<T>(j, diag, causal);
    for (int64_t q = 0; q < std::min(first, bq); ++q) row[q] = T(0);
    for (int64_t q = first; q < bq; ++q) {
      row[q] = std::exp(row[q] * scale - m[q] * scale);
      l[q] += row[q];
    }
  }
}

// Backward: s becomes P = exp(s·scale − lse[q]) (0 where masked or where the query saw no key).
template <typename T>
void probColumnsRef(T* s, int64_t bk, int64_t bq, int64_t ld, T scale, const T* lse, int64_t diag, bool causal) {
  const T negInf = -std::numeric_limits<T>::infinity();
  for (int64_t j = 0; j < bk; ++j) {
    T* row = s + j * ld;
    const int64_t first = firstVisibleColumn<T>(j, diag, causal);
    for (int64_t q = 0; q < bq; ++q)
      row[q] = q < first || lse[q] == negInf ? T(0) : std::exp(row[q] * scale - lse[q]);
  }
}

// Backward: ds = p ∘ (ds − D[q]) (ds holds dP on entry).
template <typename T>
void dsColumnsRef(T* ds, const T* p, int64_t bk, int64_t bq, int64_t ld, const T* d) {
  for (int64_t j = 0; j < bk; ++j)
    for (int64_t q = 0; q < bq; ++q) ds[j * ld + q] = p[j * ld + q] * (ds[j * ld + q] - d[q]);
}

// C[m×n] = alpha · Aᵀ · B (+C), A stored k × m (row-major, lda), B k × n.
template <typename T>
void gemmTNRef(int64_t m, int64_t n, int64_t k, T alpha, const T* a, int64_t lda, const T* b, int64_t ldb, T* c,
               int64_t ldc, bool accumulate) {
  for (int64_t i = 0; i < m; ++i) {
    T* ci = c + i * ldc;
    if (!accumulate) std::fill(ci, ci + n, T(0));
    for (int64_t p = 0; p < k; ++p) {
      const T av = alpha * a[p * lda + i];
      const T* bp = b + p * ldb;
      for (int64_t j = 0; j < n; ++j) ci[j] += av * bp[j];
    }
  }
}

template <typename T>
void transposeRef(int64_t rows, int64_t cols, const T* src, int64_t lds, T* dst, int64_t ldd) {
  for (int64_t r = 0; r < rows; ++r)
    for (int64_t c = 0; c < cols; ++c) dst[c * ldd + r] = src[r * lds + c];
}

}  // namespace kern
}  // namespace moca
