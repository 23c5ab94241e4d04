// Portable kernels of the fused ops and the choice of the active table (see fused_kernels.h).
#include "fused_kernels.h"

#include "fused_attention_ref.h"

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <limits>

namespace moca {
namespace kern {
namespace {

void sgemm(int64_t m, int64_t n, int64_t k, float alpha, const float* a, int64_t lda, const float* b, int64_t ldb,
           float* c, int64_t ldc, bool accumulate) {
  for (int64_t i = 0; i < m; ++i) {
    float* ci = c + i * ldc;
    if (!accumulate) std::fill(ci, ci + n, 0.0f);
    for (int64_t p = 0; p < k; ++p) {
      float av = alpha * a[i * lda + p];
      const float* bp = b + p * ldb;
      for (int64_t j = 0; j < n; ++j) ci[j] += av * bp[j];
    }
  }
}

void sgemmTN(int64_t m, int64_t n, int64_t k, float alpha, const float* a, int64_t lda, const float* b, int64_t ldb,
             float* c, int64_t ldc, bool accumulate) {
  gemmTNRef<float>(m, n, k, alpha, a, lda, b, ldb, c, ldc, accumulate);
}

void transpose(int64_t rows, int64_t cols, const float* src, int64_t lds, float* dst, int64_t ldd) {
  transposeRef<float>(rows, cols, src, lds, dst, ldd);
}

void softmaxColumns(float* s, int64_t bk, int64_t bq, int64_t ld, float scale, int64_t diag, bool causal, float* m,
                    float* l, float* corr) {
  softmaxColumnsRef<float>(s, bk, bq, ld, scale, diag, causal, m, l, corr);
}

void probColumns(float* s, int64_t bk, int64_t bq, int64_t ld, float scale, const float* lse, int64_t diag,
                 bool causal) {
  probColumnsRef<float>(s, bk, bq, ld, scale, lse, diag, causal);
}

void dsColumns(float* ds, const float* p, int64_t bk, int64_t bq, int64_t ld, const float* d) {
  dsColumnsRef<float>(ds, p, bk, bq, ld, d);
}

float rowMax(const float* x, int64_t n) {
  float m = -std::numeric_limits<float>::infinity();
  for (int64_t i = 0; i < n; ++i) m = std::max(m, x[i]);
  return m;
}

float expShiftSum(float* x, int64_t n, float scale, float shift) {
  float s = 0;
  for (int64_t i = 0; i < n; ++i) {
    x[i] = std::exp(x[i] * scale - shift);
    s += x[i];
  }
  return s;
}

void scaleRow(float* y, int64_t n, float a) {
  for (int64_t i = 0; i < n; ++i) y[i] *= a;
}

float dotRow(const float* x, const float* y, int64_t n) {
  float s = 0;
  for (int64_t i = 0; i < n; ++i) s += x[i] * y[i];
  return s;
}

constexpr float kSqrt2OverPi = 0.7978845608028654f;
constexpr float kGeluC = 0.044715f;

void geluTanh(const float* x, float* y, int64_t n) {
  for (int64_t i = 0; i < n; ++i) {
    float v = x[i];
    y[i] = 0.5f * v * (1.0f + std::tanh(kSqrt2OverPi * (v + kGeluC * v * v * v)));
  }
}

void geluTanhBackward(const float* x, const float* dy, float* dx, int64_t n) {
  for (int64_t i = 0; i < n; ++i) {
    float v = x[i];
    float t = std::tanh(kSqrt2OverPi * (v + kGeluC * v * v * v));
    float d = 0.5f * (1.0f + t) + 0.5f * v * (1.0f - t * t) * kSqrt2OverPi * (1.0f + 3.0f * kGeluC * v * v);
    dx[i] = dy[i] * d;
  }
}

void siluMul(const float* g, const float* u, float* y, int64_t n) {
  for (int64_t i = 0; i < n; ++i) y[i] = g[i] / (1.0f + std::exp(-g[i])) * u[i];
}

void siluMulBackward(const float* g, const float* u, const float* dy, float* dg, float* du, int64_t n) {
  for (int64_t i = 0; i < n; ++i) {
    float s = 1.0f / (1.0f + std::exp(-g[i]));
    if (dg != nullptr) dg[i] = dy[i] * u[i] * s * (1.0f + g[i] * (1.0f - s));
    if (du != nullptr) du[i] = dy[i] * g[i] * s;
  }
}

float bf16Value(uint16_t h) {
  uint32_t u = static_cast<uint32_t>(h) << 16;
  float f;
  std::memcpy(&f, &u, 4);
  return f;
}

void gemmBf16(int64_t m, int64_t n, int64_t k, const float* a, int64_t lda, const uint16_t* w, const float* bias,
              float* c, int64_t ldc, int64_t panelBegin, int64_t panelEnd) {
  for (int64_t p = panelBegin; p < panelEnd; ++p) {
    const uint16_t* panel = w + p * k * kPanel;
    for (int64_t ch = 0; ch < kPanel && p * kPanel + ch < n; ++ch) {
      const int64_t col = p * kPanel + ch;
      for (int64_t i = 0; i < m; ++i) {
        float acc = 0;
        const float* ar = a + i * lda;
        for (int64_t kk = 0; kk < k; ++kk) acc += ar[kk] * bf16Value(panel[kk * kPanel + ch]);
        c[i * ldc + col] = acc + (bias != nullptr ? bias[col] : 0.0f);
      }
    }
  }
}

void gemmU8S8(int64_t m, int64_t n, int64_t kPadded, const uint8_t* a, int64_t lda, const int8_t* w,
              const float* rowScale, const float* colScale, const int32_t* colComp, const float* bias, float* c,
              int64_t ldc, int64_t panelBegin, int64_t panelEnd) {
  int64_t groups = kPadded / 4;
  for (int64_t p = panelBegin; p < panelEnd; ++p) {
    const int8_t* panel = w + p * groups * 256;
    for (int64_t ch = 0; ch < kPanel && p * kPanel + ch < n; ++ch) {
      int64_t col = p * kPanel + ch;
      for (int64_t i = 0; i < m; ++i) {
        int32_t acc = 0;
        const uint8_t* ar = a + i * lda;
        for (int64_t g = 0; g < groups; ++g) {
          const int8_t* wp = panel + g * 256 + ch * 4;
          for (int t = 0; t < 4; ++t) acc += static_cast<int32_t>(ar[4 * g + t]) * static_cast<int32_t>(wp[t]);
        }
        float v = static_cast<float>(acc - colComp[col]) * colScale[col] * rowScale[i];
        c[i * ldc + col] = v + (bias != nullptr ? bias[col] : 0.0f);
      }
    }
  }
}

void linearSmallBatch(int64_t m, int64_t k, const float* x, int64_t ldx, const float* w, int64_t ldw,
                      const float* bias, float* c, int64_t ldc, int64_t nBegin, int64_t nEnd) {
  for (int64_t n = nBegin; n < nEnd; ++n)
    for (int64_t i = 0; i < m; ++i) {
      float acc = 0;
      for (int64_t p = 0; p < k; ++p) acc += x[i * ldx + p] * w[n * ldw + p];
      c[i * ldc + n] = acc + (bias != nullptr ? bias[n] : 0.0f);
    }
}

void quantizeRowsU8(const float* x, int64_t ldx, int64_t m, int64_t k, int64_t kPadded, uint8_t* out,
                    float* scales) {
  for (int64_t r = 0; r < m; ++r) {
    const float* xr = x + r * ldx;
    float amax = 0;
    for (int64_t i = 0; i < k; ++i) amax = std::max(amax, std::fabs(xr[i]));
    float scale = amax > 0 ? amax / 127.0f : 1.0f;
    scales[r] = scale;
    float inv = 1.0f / scale;
    uint8_t* o = out + r * kPadded;
    for (int64_t i = 0; i < k; ++i) {
      float q = std::nearbyint(xr[i] * inv);
      q = std::min(127.0f, std::max(-127.0f, q));
      o[i] = static_cast<uint8_t>(static_cast<int32_t>(q) + 128);
    }
    for (int64_t i = k; i < kPadded; ++i) o[i] = 128;
  }
}

const KernelTable kGeneric = {
    "generic",         &sgemm,   &sgemmTN, &transpose, &softmaxColumns, &probColumns, &dsColumns, &rowMax,          &expShiftSum, &scaleRow, &dotRow,         &geluTanh,
    &geluTanhBackward, &siluMul, &siluMulBackward, &gemmBf16, &gemmU8S8, &linearSmallBatch, &quantizeRowsU8,
};

bool avx512Usable() {
  // MOCA_KERNELS=generic forces the portable kernels (for comparisons and debugging).
  const char* force = std::getenv("MOCA_KERNELS");
  if (force != nullptr && std::strcmp(force, "generic") == 0) return false;
  __builtin_cpu_init();
  return __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
         __builtin_cpu_supports("avx512vl") && __builtin_cpu_supports("avx512dq");
}

KernelTable makeAvx512Table() {
  KernelTable t = *avx512KernelTable();
  if (!__builtin_cpu_supports("avx512vnni")) t.gemmU8S8 = kGeneric.gemmU8S8;
  return t;
}

}  // namespace

const KernelTable& genericKernels() { return kGeneric; }

const KernelTable* avx512Kernels() {
  static const bool usable = avx512Usable();
  if (!usable) return nullptr;
  static const KernelTable table = makeAvx512Table();
  return &table;
}

const KernelTable& kernels() {
  static const KernelTable* active = avx512Kernels() != nullptr ? avx512Kernels() : &kGeneric;
  return *active;
}

}  // namespace kern
}  // namespace moca
