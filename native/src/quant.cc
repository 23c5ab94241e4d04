// Low-precision inference linear layers: weights packed once in bfloat16 or int8 (per-output-channel symmetric
// scales), activations float32 in and out.
//
//  - bfloat16: weights rounded to bf16 (half the bytes of float32), widened back to float32 block by block
//    inside the kernel; activations stay float32, float32 FMA accumulation.
//  - int8: weights q[c][k] = round(w[c][k] / s_c), s_c = max_k |w[c][k]| / 127. Activations are quantised per row
//    (token) the same way on the fly (dynamic quantisation: VNNI multiplies int8 by int8, so weight-only int8
//    still needs integer activations), stored +128 as uint8 for vpdpbusd (AVX512_VNNI) with int32 accumulation;
//    y = s_row · s_c · (Σ u8·s8 − 128 · Σ_k q[c][k]) + bias. A quarter of the weight bytes of float32.
//
// Layout (see fused_kernels.h): 64-channel panels (channels zero-padded); bf16 [k][64]; int8 [k/4][64][4] (k
// zero-padded to a multiple of 4). Without the CPU instructions the portable kernels compute the same values.
#include <ATen/Parallel.h>

#include <cstring>

#include "common.h"
#include "fused_common.h"

namespace moca {
namespace {

enum class Format { Bf16, Int8 };

Format parseFormat(const std::string& f) {
  if (f == "bfloat16") return Format::Bf16;
  if (f == "int8") return Format::Int8;
  TORCH_CHECK(false, "packed linear: format must be 'bfloat16' or 'int8', got '", f, "'");
}

int64_t groupOf(Format f) { return f == Format::Bf16 ? 1 : 4; }

// From this many rows the bf16 product widens the weight and calls BLAS (see packedLinear).
constexpr int64_t kBf16BlasRows = 128;
int64_t paddedK(int64_t k, Format f) { return (k + groupOf(f) - 1) / groupOf(f) * groupOf(f); }
int64_t panels(int64_t n) { return (n + kern::kPanel - 1) / kern::kPanel; }
int64_t packedBytes(int64_t n, int64_t k, Format f) {
  return f == Format::Bf16 ? panels(n) * k * kern::kPanel * 2 : panels(n) * (paddedK(k, f) / 4) * 256;
}

// Returns [packed bytes, column scales (int8) or empty, column compensation 128·Σq (int8) or empty].
std::vector<at::Tensor> packWeight(const at::Tensor& weight, const std::string& formatName) {
  TORCH_CHECK(weight.dim() == 2, "packLinearWeight: weight must be (out, in), got ", weight.sizes());
  TORCH_CHECK(at::isFloatingType(weight.scalar_type()), "packLinearWeight: weight must be floating point");
  const Format f = parseFormat(formatName);
  const int64_t n = weight.size(0), k = weight.size(1), kp = paddedK(k, f), p = panels(n);
  at::Tensor w = weight.to(at::kFloat).contiguous();
  const float* wp = w.data_ptr<float>();
  at::Tensor packed = at::zeros({packedBytes(n, k, f)}, weight.options().dtype(at::kByte));
  if (f == Format::Bf16) {
    uint16_t* out = reinterpret_cast<uint16_t*>(packed.data_ptr<uint8_t>());
    at::parallel_for(0, p, 1, [&](int64_t b, int64_t e) {
      for (int64_t pi = b; pi < e; ++pi)
        for (int64_t col = 0; col < k; ++col)
          for (int64_t c = 0; c < kern::kPanel; ++c) {
            const int64_t row = pi * kern::kPanel + c;
            out[(pi * k + col) * kern::kPanel + c] = c10::BFloat16(row < n ? wp[row * k + col] : 0.0f).x;
          }
    });
    return {packed, at::Tensor(), at::Tensor()};
  }
  at::Tensor scales = at::empty({n}, weight.options().dtype(at::kFloat));
  at::Tensor comp = at::empty({n}, weight.options().dtype(at::kInt));
  float* sp = scales.data_ptr<float>();
  int32_t* cp = comp.data_ptr<int32_t>();
  int8_t* out = reinterpret_cast<int8_t*>(packed.data_ptr<uint8_t>());
  at::parallel_for(0, n, 16, [&](int64_t b, int64_t e) {
    for (int64_t row = b; row < e; ++row) {
      const float* wr = wp + row * k;
      float amax = 0;
      for (int64_t c = 0; c < k; ++c) amax = std::max(amax, std::fabs(wr[c]));
      const float s = amax > 0 ? amax / 127.0f : 1.0f;
      sp[row] = s;
      int32_t sum = 0;
      const int64_t pi = row / kern::kPanel, c = row % kern::kPanel;
      for (int64_t col = 0; col < k; ++col) {
        int32_t q = static_cast<int32_t>(std::nearbyint(wr[col] / s));
        q = std::min(127, std::max(-127, q));
        sum += q;
        out[((pi * (kp / 4) + col / 4) * kern::kPanel + c) * 4 + col % 4] = static_cast<int8_t>(q);
      }
      cp[row] = 128 * sum;
    }
  });
  return {packed, scales, comp};
}

// The float (out, in) matrix a packed weight stands for (bf16 values, or q · s for int8): for tests and checks.
at::Tensor unpackWeight(const at::Tensor& packed, const std::string& formatName, int64_t n, int64_t k,
                        const c10::optional<at::Tensor>& scales) {
  const Format f = parseFormat(formatName);
  const int64_t kp = paddedK(k, f);
  TORCH_CHECK(packed.scalar_type() == at::kByte && packed.numel() == packedBytes(n, k, f),
              "unpackLinearWeight: packed buffer does not match (", n, ", ", k, ") in ", formatName);
  at::Tensor w = at::empty({n, k}, packed.options().dtype(at::kFloat));
  float* wp = w.data_ptr<float>();
  const uint8_t* raw = packed.data_ptr<uint8_t>();
  for (int64_t row = 0; row < n; ++row) {
    const int64_t pi = row / kern::kPanel, c = row % kern::kPanel;
    for (int64_t col = 0; col < k; ++col) {
      if (f == Format::Bf16) {
        const uint16_t* p16 = reinterpret_cast<const uint16_t*>(raw);
        c10::BFloat16 b;
        b.x = p16[(pi * k + col) * kern::kPanel + c];
        wp[row * k + col] = static_cast<float>(b);
      } else {
        TORCH_CHECK(scales.has_value(), "unpackLinearWeight: int8 needs the scales");
        const int8_t* p8 = reinterpret_cast<const int8_t*>(raw);
        wp[row * k + col] =
            static_cast<float>(p8[((pi * (kp / 4) + col / 4) * kern::kPanel + c) * 4 + col % 4]) *
            scales->data_ptr<float>()[row];
      }
    }
  }
  return w;
}

at::Tensor packedLinear(const at::Tensor& input, const at::Tensor& packed, const std::string& formatName, int64_t n,
                        int64_t k, const c10::optional<at::Tensor>& scales, const c10::optional<at::Tensor>& comp,
                        const c10::optional<at::Tensor>& bias) {
  const Format f = parseFormat(formatName);
  TORCH_CHECK(!(input.requires_grad() && at::GradMode::is_enabled()),
              "packed (", formatName, ") linear layers are inference-only: run under noGrad");
  TORCH_CHECK(input.dim() >= 1 && input.size(-1) == k, "packed linear: input ", input.sizes(),
              " does not end in the weight's ", k, " input features");
  const int64_t kp = paddedK(k, f), np = panels(n);
  TORCH_CHECK(packed.scalar_type() == at::kByte && packed.numel() == packedBytes(n, k, f),
              "packed linear: packed buffer does not match (", n, ", ", k, ") in ", formatName);
  if (f == Format::Int8)
    TORCH_CHECK(scales.has_value() && comp.has_value() && scales->numel() == n && comp->numel() == n,
                "packed linear: int8 needs the column scales and compensation of the packed weight");
  at::Tensor x = input.reshape({-1, k}).to(at::kFloat).contiguous();
  const int64_t m = x.size(0);
  std::vector<int64_t> outShape(input.sizes().begin(), input.sizes().end());
  outShape.back() = n;
  at::Tensor y = at::empty({m, n}, x.options());
  if (m == 0) return y.view(outShape);
  at::Tensor b = bias.has_value() ? bias->to(at::kFloat).contiguous() : at::Tensor();
  const float* bp = b.defined() ? b.data_ptr<float>() : nullptr;
  const auto& K = kern::kernels();
  const float* xp = x.data_ptr<float>();
  float* yp = y.data_ptr<float>();

  // Items: (panel, block of rows), panel-major so that a thread's consecutive items reuse one weight panel.
  const int64_t rowsPerBlock = 240;
  const int64_t mb = (m + rowsPerBlock - 1) / rowsPerBlock;
  if (f == Format::Bf16 && m >= kBf16BlasRows) {
    // Many rows: the product is compute-bound, so widen the weight to float32 (Wᵀ, k × n) once and let BLAS
    // run it; widening costs a few percent of the product at these sizes, the in-kernel widening per row block
    // costs more.
    at::Tensor wt = at::empty({k, n}, x.options());
    float* wtp = wt.data_ptr<float>();
    const uint16_t* wp = reinterpret_cast<const uint16_t*>(packed.data_ptr<uint8_t>());
    at::parallel_for(0, np, 1, [&](int64_t s, int64_t e) {
      for (int64_t pi = s; pi < e; ++pi) {
        const int64_t c0 = pi * kern::kPanel, cols = std::min(kern::kPanel, n - c0);
        for (int64_t kk = 0; kk < k; ++kk) {
          const uint16_t* src = wp + (pi * k + kk) * kern::kPanel;
          float* dst = wtp + kk * n + c0;
          for (int64_t c = 0; c < cols; ++c) {
            const uint32_t bits = static_cast<uint32_t>(src[c]) << 16;
            std::memcpy(dst + c, &bits, 4);
          }
        }
      }
    });
    at::Tensor out = b.defined() ? at::addmm(b, x, wt) : at::mm(x, wt);
    return out.view(outShape);
  }
  if (f == Format::Bf16) {
    const uint16_t* wp = reinterpret_cast<const uint16_t*>(packed.data_ptr<uint8_t>());
    at::parallel_for(0, np * mb, 1, [&](int64_t s, int64_t e) {
      for (int64_t it = s; it < e; ++it) {
        const int64_t pi = it / mb, r0 = (it % mb) * rowsPerBlock, rows = std::min(rowsPerBlock, m - r0);
        K.gemmBf16(rows, n, k, xp + r0 * k, k, wp, bp, yp + r0 * n, n, pi, pi + 1);
      }
    });
  } else {
    at::Tensor a = at::empty({m, kp}, x.options().dtype(at::kByte));
    at::Tensor rowScale = at::empty({m}, x.options());
    uint8_t* ap = a.data_ptr<uint8_t>();
    float* rs = rowScale.data_ptr<float>();
    at::parallel_for(0, m, 16, [&](int64_t s, int64_t e) {
      K.quantizeRowsU8(xp + s * k, k, e - s, k, kp, ap + s * kp, rs + s);
    });
    const int8_t* wp = reinterpret_cast<const int8_t*>(packed.data_ptr<uint8_t>());
    const float* cs = scales->data_ptr<float>();
    const int32_t* cc = comp->data_ptr<int32_t>();
    at::parallel_for(0, np * mb, 1, [&](int64_t s, int64_t e) {
      for (int64_t it = s; it < e; ++it) {
        const int64_t pi = it / mb, r0 = (it % mb) * rowsPerBlock, rows = std::min(rowsPerBlock, m - r0);
        K.gemmU8S8(rows, n, kp, ap + r0 * kp, kp, wp, rs + r0, cs, cc, bp, yp + r0 * n, n, pi, pi + 1);
      }
    });
  }
  return y.view(outShape);
}

// Float32 inference linear for a few rows (short queries: every weight is read for ≤ 16 tokens). A BLAS call
// packs the whole weight matrix for such a product, which triples the memory traffic of what is a
// bandwidth-bound operation; this reads each weight row once, in place.
at::Tensor linearSmallBatch(const at::Tensor& input, const at::Tensor& weight0, const c10::optional<at::Tensor>& bias) {
  TORCH_CHECK(!(at::GradMode::is_enabled() && (input.requires_grad() || weight0.requires_grad())),
              "linearSmallBatch is inference-only: run under noGrad");
  TORCH_CHECK(input.scalar_type() == at::kFloat && weight0.scalar_type() == at::kFloat,
              "linearSmallBatch: float32 input and weight expected");
  TORCH_CHECK(weight0.dim() == 2 && input.dim() >= 1 && input.size(-1) == weight0.size(1),
              "linearSmallBatch: input ", input.sizes(), " and weight ", weight0.sizes(), " do not match");
  const int64_t n = weight0.size(0), k = weight0.size(1);
  at::Tensor x = input.reshape({-1, k}).contiguous();
  at::Tensor w = weight0.contiguous();
  const int64_t m = x.size(0);
  TORCH_CHECK(m <= 16, "linearSmallBatch: at most 16 rows, got ", m);
  at::Tensor b = bias.has_value() ? bias->to(at::kFloat).contiguous() : at::Tensor();
  at::Tensor y = at::empty({m, n}, x.options());
  const auto& K = kern::kernels();
  const float* xp = x.data_ptr<float>();
  const float* wp = w.data_ptr<float>();
  const float* bp = b.defined() ? b.data_ptr<float>() : nullptr;
  float* yp = y.data_ptr<float>();
  at::parallel_for(0, n, 16, [&](int64_t s, int64_t e) { K.linearSmallBatch(m, k, xp, k, wp, k, bp, yp, n, s, e); });
  std::vector<int64_t> shape(input.sizes().begin(), input.sizes().end());
  shape.back() = n;
  return y.view(shape);
}

}  // namespace

void registerQuantOps(Registry& r) {
  r.def("linearSmallBatch", "input, weight, bias",
        +[](const at::Tensor& x, const at::Tensor& w, c10::optional<at::Tensor> b) {
          return linearSmallBatch(x, w, b);
        });
  using at::Tensor;
  using OptTensor = c10::optional<Tensor>;
  r.def("packLinearWeight", "weight, format", +[](const Tensor& w, std::string format) { return packWeight(w, format); });
  r.def("unpackLinearWeight", "packed, format, outFeatures, inFeatures, scales",
        +[](const Tensor& p, std::string format, int64_t n, int64_t k, OptTensor scales) {
          return unpackWeight(p, format, n, k, scales);
        });
  r.def("packedLinear", "input, packed, format, outFeatures, inFeatures, scales, compensation, bias",
        +[](const Tensor& x, const Tensor& p, std::string format, int64_t n, int64_t k, OptTensor scales,
            OptTensor comp, OptTensor bias) { return packedLinear(x, p, format, n, k, scales, comp, bias); });
  // Which kernels run the packed formats on this CPU: "avx512_bf16" / "avx512_vnni" or "portable".
  r.def("packedLinearKernels", "", +[]() {
    const auto* avx = kern::avx512Kernels();
    std::vector<std::string> parts;
    std::string bf = avx != nullptr ? "bfloat16:avx512" : "bfloat16:portable";
    std::string i8 = avx != nullptr && avx->gemmU8S8 != kern::genericKernels().gemmU8S8 ? "int8:avx512_vnni"
                                                                                      : "int8:portable";
    return bf + "," + i8;
  });
}

}  // namespace moca
