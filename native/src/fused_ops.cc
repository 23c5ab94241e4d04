// Fused elementwise / row ops with hand-written backward (torch::autograd::Function): RMSNorm, rotary position
// embedding (rotate-half convention, any per-token cos/sin: RoPE, M-RoPE, 2-D vision RoPE), SwiGLU's
// silu(gate)·up, and tanh-approximated GELU. Each replaces a chain of 4–10 libtorch ops (and as many full-size
// temporaries kept for backward) by one pass forward and one pass backward. float32 runs through the active
// kernel table (AVX-512 where available); float64 has exact scalar formulas (used by the gradient checks);
// bfloat16 is computed in float32 and rounded on output.
#include <ATen/Parallel.h>
#include <torch/csrc/autograd/custom_function.h>

#include "common.h"
#include "fused_common.h"

#include <array>

namespace moca {
namespace {

using torch::autograd::AutogradContext;
using torch::autograd::variable_list;

constexpr int64_t kChunk = 4096;  // elements per inner chunk of the elementwise kernels

// ------------------------------------------------------------------------------------------------ elementwise

// Applies `floatFn(const float* in..., float* out..., n)` over chunks: directly on float data, through float
// scratch for bfloat16. `doubleFn(i)` handles one double element.
template <int NIn, int NOut, typename FloatFn>
void elementwiseFloat(int64_t n, std::array<const void*, NIn> in, std::array<void*, NOut> out, at::ScalarType st,
                      FloatFn floatFn) {
  at::parallel_for(0, (n + kChunk - 1) / kChunk, 1, [&](int64_t b, int64_t e) {
    float scratch[(NIn + NOut) * kChunk];
    for (int64_t c = b; c < e; ++c) {
      const int64_t off = c * kChunk, len = std::min(kChunk, n - off);
      std::array<const float*, NIn> ip;
      std::array<float*, NOut> opp;
      if (st == at::kFloat) {
        for (int i = 0; i < NIn; ++i) ip[i] = static_cast<const float*>(in[i]) + off;
        for (int i = 0; i < NOut; ++i) opp[i] = out[i] == nullptr ? nullptr : static_cast<float*>(out[i]) + off;
        floatFn(ip, opp, len);
      } else {  // bfloat16
        for (int i = 0; i < NIn; ++i) {
          float* s = scratch + i * kChunk;
          const c10::BFloat16* src = static_cast<const c10::BFloat16*>(in[i]) + off;
          for (int64_t j = 0; j < len; ++j) s[j] = static_cast<float>(src[j]);
          ip[i] = s;
        }
        for (int i = 0; i < NOut; ++i) opp[i] = out[i] == nullptr ? nullptr : scratch + (NIn + i) * kChunk;
        floatFn(ip, opp, len);
        for (int i = 0; i < NOut; ++i) {
          if (out[i] == nullptr) continue;
          c10::BFloat16* dst = static_cast<c10::BFloat16*>(out[i]) + off;
          for (int64_t j = 0; j < len; ++j) dst[j] = c10::BFloat16(opp[i][j]);
        }
      }
    }
  });
}

void checkFloating(const at::Tensor& t, const char* op, const char* arg) {
  TORCH_CHECK(t.device().is_cpu(), op, ": ", arg, " must be a CPU tensor");
  auto st = t.scalar_type();
  TORCH_CHECK(st == at::kFloat || st == at::kDouble || st == at::kBFloat16, op, ": ", arg,
              " must be float32, float64 or bfloat16, got ", st);
}

// ---- silu(g) · u

// y = silu(g)·u into `out` (a new tensor, or g itself for the in-place inference variant).
at::Tensor siluMulForward(const at::Tensor& g0, const at::Tensor& u0, bool inPlace = false) {
  TORCH_CHECK(g0.sizes() == u0.sizes(), "siluMul: gate ", g0.sizes(), " and up ", u0.sizes(), " differ in shape");
  TORCH_CHECK(g0.scalar_type() == u0.scalar_type(), "siluMul: gate and up dtypes differ");
  TORCH_CHECK(!inPlace || g0.is_contiguous(), "siluMul_: the gate must be contiguous");
  at::Tensor g = g0.contiguous(), u = u0.contiguous();
  at::Tensor y = inPlace ? g : at::empty_like(g, at::MemoryFormat::Contiguous);
  const int64_t n = g.numel();
  if (g.scalar_type() == at::kDouble) {
    const double *gp = g.data_ptr<double>(), *up = u.data_ptr<double>();
    double* yp = y.data_ptr<double>();
    at::parallel_for(0, n, kChunk, [&](int64_t b, int64_t e) {
      for (int64_t i = b; i < e; ++i) yp[i] = gp[i] / (1.0 + std::exp(-gp[i])) * up[i];
    });
    return y;
  }
  const auto& K = kern::kernels();
  elementwiseFloat<2, 1>(n, {g.data_ptr(), u.data_ptr()}, {y.data_ptr()}, g.scalar_type(),
                         [&](std::array<const float*, 2> in, std::array<float*, 1> out, int64_t len) {
                           K.siluMul(in[0], in[1], out[0], len);
                         });
  return y;
}

struct SiluMulFn : public torch::autograd::Function<SiluMulFn> {
  static at::Tensor forward(AutogradContext* ctx, const at::Tensor& g, const at::Tensor& u) {
    checkFloating(g, "siluMul", "gate");
    checkFloating(u, "siluMul", "up");
    ctx->save_for_backward({g, u});
    return siluMulForward(g, u);
  }
  static variable_list backward(AutogradContext* ctx, variable_list grads) {
    auto saved = ctx->get_saved_variables();
    at::Tensor g = saved[0].contiguous(), u = saved[1].contiguous();
    at::Tensor dy = grads[0].to(g.scalar_type()).contiguous();
    bool needG = ctx->needs_input_grad(0), needU = ctx->needs_input_grad(1);
    at::Tensor dg = needG ? at::empty_like(g) : at::Tensor();
    at::Tensor du = needU ? at::empty_like(u) : at::Tensor();
    const int64_t n = g.numel();
    if (g.scalar_type() == at::kDouble) {
      const double *gp = g.data_ptr<double>(), *up = u.data_ptr<double>(), *dyp = dy.data_ptr<double>();
      double* dgp = needG ? dg.data_ptr<double>() : nullptr;
      double* dup = needU ? du.data_ptr<double>() : nullptr;
      at::parallel_for(0, n, kChunk, [&](int64_t b, int64_t e) {
        for (int64_t i = b; i < e; ++i) {
          double s = 1.0 / (1.0 + std::exp(-gp[i]));
          if (dgp) dgp[i] = dyp[i] * up[i] * s * (1.0 + gp[i] * (1.0 - s));
          if (dup) dup[i] = dyp[i] * gp[i] * s;
        }
      });
    } else {
      const auto& K = kern::kernels();
      elementwiseFloat<3, 2>(n, {g.data_ptr(), u.data_ptr(), dy.data_ptr()},
                             {needG ? dg.data_ptr() : nullptr, needU ? du.data_ptr() : nullptr}, g.scalar_type(),
                             [&](std::array<const float*, 3> in, std::array<float*, 2> out, int64_t len) {
                               K.siluMulBackward(in[0], in[1], in[2], out[0], out[1], len);
                             });
    }
    return {dg, du};
  }
};

// ---- GELU (tanh approximation)

constexpr double kSqrt2OverPi = 0.79788456080286535588;
constexpr double kGeluC = 0.044715;

at::Tensor geluTanhForward(const at::Tensor& x0) {
  at::Tensor x = x0.contiguous();
  at::Tensor y = at::empty_like(x, at::MemoryFormat::Contiguous);
  const int64_t n = x.numel();
  if (x.scalar_type() == at::kDouble) {
    const double* xp = x.data_ptr<double>();
    double* yp = y.data_ptr<double>();
    at::parallel_for(0, n, kChunk, [&](int64_t b, int64_t e) {
      for (int64_t i = b; i < e; ++i) {
        double v = xp[i];
        yp[i] = 0.5 * v * (1.0 + std::tanh(kSqrt2OverPi * (v + kGeluC * v * v * v)));
      }
    });
    return y;
  }
  const auto& K = kern::kernels();
  elementwiseFloat<1, 1>(n, {x.data_ptr()}, {y.data_ptr()}, x.scalar_type(),
                         [&](std::array<const float*, 1> in, std::array<float*, 1> out, int64_t len) {
                           K.geluTanh(in[0], out[0], len);
                         });
  return y;
}

struct GeluTanhFn : public torch::autograd::Function<GeluTanhFn> {
  static at::Tensor forward(AutogradContext* ctx, const at::Tensor& x) {
    checkFloating(x, "geluTanh", "input");
    ctx->save_for_backward({x});
    return geluTanhForward(x);
  }
  static variable_list backward(AutogradContext* ctx, variable_list grads) {
    at::Tensor x = ctx->get_saved_variables()[0].contiguous();
    at::Tensor dy = grads[0].to(x.scalar_type()).contiguous();
    at::Tensor dx = at::empty_like(x);
    const int64_t n = x.numel();
    if (x.scalar_type() == at::kDouble) {
      const double *xp = x.data_ptr<double>(), *dyp = dy.data_ptr<double>();
      double* dxp = dx.data_ptr<double>();
      at::parallel_for(0, n, kChunk, [&](int64_t b, int64_t e) {
        for (int64_t i = b; i < e; ++i) {
          double v = xp[i];
          double t = std::tanh(kSqrt2OverPi * (v + kGeluC * v * v * v));
          dxp[i] = dyp[i] * (0.5 * (1 + t) + 0.5 * v * (1 - t * t) * kSqrt2OverPi * (1 + 3 * kGeluC * v * v));
        }
      });
    } else {
      const auto& K = kern::kernels();
      elementwiseFloat<2, 1>(n, {x.data_ptr(), dy.data_ptr()}, {dx.data_ptr()}, x.scalar_type(),
                             [&](std::array<const float*, 2> in, std::array<float*, 1> out, int64_t len) {
                               K.geluTanhBackward(in[0], in[1], out[0], len);
                             });
    }
    return {dx};
  }
};

// ------------------------------------------------------------------------------------------------ RMSNorm
//
// Qwen2RMSNorm: y = w · cast_x(x · rsqrt(mean(x²) + eps)), statistics in float32 (float64 for float64 input),
// the normalised value rounded to x's dtype before the weight multiply; the output dtype is the promotion of
// x's and w's. Backward treats that rounding as identity.

template <typename T, typename O>
void rmsNormRows(const T* x, const float* wf, const double* wd, O* y, float* rstdOut, double* rstdOutD, int64_t rows,
                 int64_t h, double eps) {
  using Acc = fused::acc_t<T>;
  at::parallel_for(0, rows, std::max<int64_t>(1, 16384 / std::max<int64_t>(h, 1)), [&](int64_t b, int64_t e) {
    std::vector<Acc> row(static_cast<size_t>(h));
    for (int64_t r = b; r < e; ++r) {
      const T* xr = x + r * h;
      const Acc* xa;
      if constexpr (std::is_same_v<T, Acc>) {
        xa = xr;
      } else {
        fused::loadRow(xr, row.data(), h);
        xa = row.data();
      }
      const Acc rstd = Acc(1) / std::sqrt(fused::dot(xa, xa, h) / Acc(h) + Acc(eps));
      if constexpr (std::is_same_v<Acc, double>)
        rstdOutD[r] = rstd;
      else
        rstdOut[r] = rstd;
      O* yr = y + r * h;
      for (int64_t c = 0; c < h; ++c) {
        Acc normed = fused::toAcc<Acc>(fused::fromAcc<T>(xa[c] * rstd));
        Acc w;
        if constexpr (std::is_same_v<Acc, double>)
          w = wd != nullptr ? wd[c] : 1.0;
        else
          w = wf != nullptr ? wf[c] : 1.0f;
        yr[c] = fused::fromAcc<O>(w * normed);
      }
    }
  });
}

struct RmsNormFn : public torch::autograd::Function<RmsNormFn> {
  // The weight is optional: libtorch 1.13's custom Functions cannot take an undefined tensor as an input.
  static at::Tensor forward(AutogradContext* ctx, const at::Tensor& x0, const c10::optional<at::Tensor>& wOpt,
                            double eps) {
    const at::Tensor w0 = wOpt.has_value() ? *wOpt : at::Tensor();
    checkFloating(x0, "rmsNorm", "input");
    TORCH_CHECK(x0.dim() >= 1, "rmsNorm: input must have at least one dimension");
    const int64_t h = x0.size(-1);
    const bool hasW = w0.defined();
    if (hasW) {
      checkFloating(w0, "rmsNorm", "weight");
      TORCH_CHECK(w0.dim() == 1 && w0.size(0) == h, "rmsNorm: weight ", w0.sizes(), " does not match the last dim ",
                  h);
    }
    at::Tensor x = x0.contiguous();
    const int64_t rows = h == 0 ? 0 : x.numel() / h;
    const bool isDouble = x.scalar_type() == at::kDouble;
    at::ScalarType accType = isDouble ? at::kDouble : at::kFloat;
    at::ScalarType outType = hasW ? at::promote_types(x.scalar_type(), w0.scalar_type()) : x.scalar_type();
    at::Tensor wAcc = hasW ? w0.to(accType).contiguous() : at::Tensor();
    at::Tensor y = at::empty(x.sizes(), x.options().dtype(outType));
    at::Tensor rstd = at::empty({rows}, x.options().dtype(accType));
    const float* wf = hasW && !isDouble ? wAcc.data_ptr<float>() : nullptr;
    const double* wd = hasW && isDouble ? wAcc.data_ptr<double>() : nullptr;
    float* rf = isDouble ? nullptr : rstd.data_ptr<float>();
    double* rd = isDouble ? rstd.data_ptr<double>() : nullptr;
    auto st = x.scalar_type();
    if (st == at::kDouble && outType == at::kDouble) {
      rmsNormRows<double, double>(x.data_ptr<double>(), wf, wd, y.data_ptr<double>(), rf, rd, rows, h, eps);
    } else if (st == at::kFloat && outType == at::kFloat) {
      rmsNormRows<float, float>(x.data_ptr<float>(), wf, wd, y.data_ptr<float>(), rf, rd, rows, h, eps);
    } else if (st == at::kBFloat16 && outType == at::kBFloat16) {
      rmsNormRows<c10::BFloat16, c10::BFloat16>(x.data_ptr<c10::BFloat16>(), wf, wd, y.data_ptr<c10::BFloat16>(), rf,
                                               rd, rows, h, eps);
    } else if (st == at::kBFloat16 && outType == at::kFloat) {
      rmsNormRows<c10::BFloat16, float>(x.data_ptr<c10::BFloat16>(), wf, wd, y.data_ptr<float>(), rf, rd, rows, h,
                                        eps);
    } else {
      TORCH_CHECK(false, "rmsNorm: unsupported input/weight dtypes ", st, " / ", w0.scalar_type());
    }
    ctx->save_for_backward({x, w0, rstd});
    return y;
  }

  static variable_list backward(AutogradContext* ctx, variable_list grads) {
    auto saved = ctx->get_saved_variables();
    const at::Tensor& x = saved[0];
    const at::Tensor& w0 = saved[1];
    const at::Tensor& rstd = saved[2];
    const bool isDouble = x.scalar_type() == at::kDouble;
    at::ScalarType accType = isDouble ? at::kDouble : at::kFloat;
    const int64_t h = x.size(-1);
    const int64_t rows = rstd.size(0);
    // The backward math runs in the accumulation type on converted copies (x is re-read once).
    at::Tensor xa = x.to(accType).contiguous();
    at::Tensor g = grads[0].to(accType).contiguous();
    at::Tensor wa = w0.defined() ? w0.to(accType).contiguous() : at::Tensor();
    at::Tensor dx = at::empty(x.sizes(), x.options().dtype(accType));
    const bool needW = w0.defined() && ctx->needs_input_grad(1);
    const int64_t nt = std::max<int64_t>(1, std::min<int64_t>(at::get_num_threads(), rows));
    at::Tensor dwPartial = needW ? at::zeros({nt, h}, x.options().dtype(accType)) : at::Tensor();
    AT_DISPATCH_FLOATING_TYPES(accType, "rmsNormBackward", [&] {
      using Acc = scalar_t;
      const Acc* xp = xa.data_ptr<Acc>();
      const Acc* gp = g.data_ptr<Acc>();
      const Acc* wp = w0.defined() ? wa.data_ptr<Acc>() : nullptr;
      const Acc* rp = rstd.data_ptr<Acc>();
      Acc* dxp = dx.data_ptr<Acc>();
      Acc* dwp = needW ? dwPartial.data_ptr<Acc>() : nullptr;
      const int64_t per = (rows + nt - 1) / nt;
      at::parallel_for(0, nt, 1, [&](int64_t tb, int64_t te) {
        std::vector<Acc> gw(static_cast<size_t>(h));
        for (int64_t t = tb; t < te; ++t) {
          Acc* dwt = dwp != nullptr ? dwp + t * h : nullptr;
          for (int64_t r = t * per; r < std::min(rows, (t + 1) * per); ++r) {
            const Acc* xr = xp + r * h;
            const Acc* gr = gp + r * h;
            const Acc rs = rp[r];
            for (int64_t c = 0; c < h; ++c) gw[c] = wp != nullptr ? gr[c] * wp[c] : gr[c];
            // dx = rstd · (gw − x̂ · mean(gw · x̂)), x̂ = x · rstd
            const Acc proj = fused::dot(gw.data(), xr, h) * rs * rs / Acc(h);
            Acc* dxr = dxp + r * h;
            for (int64_t c = 0; c < h; ++c) dxr[c] = rs * (gw[c] - xr[c] * proj);
            if (dwt != nullptr)
              for (int64_t c = 0; c < h; ++c) dwt[c] += gr[c] * xr[c] * rs;
          }
        }
      });
    });
    at::Tensor dw = needW ? dwPartial.sum(0).to(w0.scalar_type()) : at::Tensor();
    return {dx.to(x.scalar_type()), dw, at::Tensor()};
  }
};

// ------------------------------------------------------------------------------------------------ rotary
//
// x (rows, heads, D) with any strides but a contiguous last dim; cos / sin (rows, D). Per head:
//   y = x · cos + rotate_half(x) · sin,  rotate_half([x1, x2]) = [−x2, x1],
// computed in float32 (float64 for float64 x) and rounded to x's dtype.

template <typename T>
void rotaryRows(const T* x, int64_t xs0, int64_t xs1, const fused::acc_t<T>* cs, const fused::acc_t<T>* sn, T* y,
                int64_t rows, int64_t heads, int64_t d, bool backward) {
  using Acc = fused::acc_t<T>;
  const int64_t half = d / 2;
  at::parallel_for(0, rows, std::max<int64_t>(1, 8192 / std::max<int64_t>(1, heads * d)), [&](int64_t b, int64_t e) {
    for (int64_t r = b; r < e; ++r) {
      const Acc* c = cs + r * d;
      const Acc* s = sn + r * d;
      for (int64_t h = 0; h < heads; ++h) {
        const T* xr = x + r * xs0 + h * xs1;
        T* yr = y + (r * heads + h) * d;
        for (int64_t i = 0; i < half; ++i) {
          const Acc x1 = fused::toAcc<Acc>(xr[i]), x2 = fused::toAcc<Acc>(xr[i + half]);
          if (!backward) {
            yr[i] = fused::fromAcc<T>(x1 * c[i] - x2 * s[i]);
            yr[i + half] = fused::fromAcc<T>(x2 * c[i + half] + x1 * s[i + half]);
          } else {  // transpose of the map above, applied to the gradient
            yr[i] = fused::fromAcc<T>(x1 * c[i] + x2 * s[i + half]);
            yr[i + half] = fused::fromAcc<T>(x2 * c[i + half] - x1 * s[i]);
          }
        }
      }
    }
  });
}

at::Tensor rotaryApply(const at::Tensor& x0, const at::Tensor& cos, const at::Tensor& sin, bool backward) {
  at::Tensor x = x0.stride(2) == 1 ? x0 : x0.contiguous();
  const int64_t rows = x.size(0), heads = x.size(1), d = x.size(2);
  at::ScalarType accType = x.scalar_type() == at::kDouble ? at::kDouble : at::kFloat;
  at::Tensor c = cos.to(accType).contiguous(), s = sin.to(accType).contiguous();
  at::Tensor y = at::empty({rows, heads, d}, x.options());
  MOCA_DISPATCH_FUSED(x.scalar_type(), "rotary", [&] {
    using Acc = fused::acc_t<scalar_t>;
    rotaryRows<scalar_t>(x.data_ptr<scalar_t>(), x.stride(0), x.stride(1), c.data_ptr<Acc>(), s.data_ptr<Acc>(),
                         y.data_ptr<scalar_t>(), rows, heads, d, backward);
  });
  return y;
}

struct RotaryFn : public torch::autograd::Function<RotaryFn> {
  static at::Tensor forward(AutogradContext* ctx, const at::Tensor& x, const at::Tensor& cos, const at::Tensor& sin) {
    checkFloating(x, "rotary", "input");
    TORCH_CHECK(x.dim() == 3, "rotary: input must be (rows, heads, headDim), got ", x.sizes());
    TORCH_CHECK(x.size(2) % 2 == 0, "rotary: head dim must be even, got ", x.size(2));
    TORCH_CHECK(cos.dim() == 2 && cos.size(0) == x.size(0) && cos.size(1) == x.size(2) && sin.sizes() == cos.sizes(),
                "rotary: cos/sin must be (rows, headDim) = (", x.size(0), ", ", x.size(2), "), got ", cos.sizes(),
                " and ", sin.sizes());
    TORCH_CHECK(!cos.requires_grad() && !sin.requires_grad(),
                "rotary: cos/sin must not require gradients (position encodings are constants)");
    ctx->save_for_backward({cos, sin});
    return rotaryApply(x, cos, sin, false);
  }
  static variable_list backward(AutogradContext* ctx, variable_list grads) {
    auto saved = ctx->get_saved_variables();
    return {rotaryApply(grads[0], saved[0], saved[1], true), at::Tensor(), at::Tensor()};
  }
};

}  // namespace

void registerFusedOps(Registry& r) {
  using at::Tensor;
  using OptTensor = c10::optional<Tensor>;
  r.def("fusedSiluMul", "gate, up", +[](const Tensor& g, const Tensor& u) { return SiluMulFn::apply(g, u); });
  // In place (gate ← silu(gate)·up) for inference: one intermediate-size buffer less. Not differentiable.
  r.def("fusedSiluMul_", "gate, up", +[](Tensor g, const Tensor& u) {
    checkFloating(g, "siluMul_", "gate");
    TORCH_CHECK(!(at::GradMode::is_enabled() && (g.requires_grad() || u.requires_grad())),
                "siluMul_ is inference-only: run under noGrad");
    siluMulForward(g, u, true);
  });
  r.def("fusedGeluTanh", "self", +[](const Tensor& x) { return GeluTanhFn::apply(x); });
  r.def("fusedRmsNorm", "input, weight, eps", +[](const Tensor& x, OptTensor w, double eps) {
    return RmsNormFn::apply(x, w, eps);
  });
  r.def("fusedRotary", "input, cos, sin", +[](const Tensor& x, const Tensor& cos, const Tensor& sin) {
    return RotaryFn::apply(x, cos, sin);
  });
}

}  // namespace moca
