// Fused AdamW step over many parameters in one call: the per-element arithmetic of torch.optim.AdamW's
// single-tensor path (decoupled decay, moment updates, bias-corrected step) in one pass over each parameter's
// four arrays, instead of nine elementwise ops (and as many passes over memory) per parameter.
#include <ATen/Parallel.h>

#include "common.h"

namespace moca {
namespace {

template <typename T>
void adamwKernel(T* p, const T* g, T* m, T* v, int64_t n, double lr, double beta1, double beta2, double eps,
                 double weightDecay, double stepSize, double bc2Sqrt, bool maximize) {
  const T decay = static_cast<T>(1 - lr * weightDecay);
  const T b1 = static_cast<T>(beta1), b2 = static_cast<T>(beta2);
  const T a1 = static_cast<T>(1 - beta1), a2 = static_cast<T>(1 - beta2);
  const T ss = static_cast<T>(-stepSize), bc = static_cast<T>(bc2Sqrt), e = static_cast<T>(eps);
  at::parallel_for(0, n, 32768, [&](int64_t b, int64_t end) {
    for (int64_t i = b; i < end; ++i) {
      const T gi = maximize ? -g[i] : g[i];
      const T mi = m[i] * b1 + a1 * gi;
      const T vi = v[i] * b2 + a2 * gi * gi;
      m[i] = mi;
      v[i] = vi;
      const T denom = std::sqrt(vi) / bc + e;
      p[i] = p[i] * decay + ss * (mi / denom);
    }
  });
}

void adamwStep(std::vector<at::Tensor> params, std::vector<at::Tensor> grads, std::vector<at::Tensor> expAvgs,
               std::vector<at::Tensor> expAvgSqs, std::vector<int64_t> steps, double lr, double beta1, double beta2,
               double eps, double weightDecay, bool maximize) {
  const size_t n = params.size();
  TORCH_CHECK(grads.size() == n && expAvgs.size() == n && expAvgSqs.size() == n && steps.size() == n,
              "adamwStep: params, grads, expAvgs, expAvgSqs and steps must have the same length");
  for (size_t i = 0; i < n; ++i) {
    const at::Tensor& p = params[i];
    TORCH_CHECK(p.device().is_cpu() && p.is_contiguous(), "adamwStep: parameter ", i, " must be a contiguous CPU tensor");
    TORCH_CHECK(p.scalar_type() == at::kFloat || p.scalar_type() == at::kDouble, "adamwStep: parameter ", i,
                " must be float32 or float64, got ", p.scalar_type());
    for (const at::Tensor* t : {&grads[i], &expAvgs[i], &expAvgSqs[i]}) {
      TORCH_CHECK(t->sizes() == p.sizes() && t->scalar_type() == p.scalar_type(), "adamwStep: state / grad of parameter ",
                  i, " does not match it in shape or dtype");
    }
    TORCH_CHECK(expAvgs[i].is_contiguous() && expAvgSqs[i].is_contiguous(), "adamwStep: moments must be contiguous");
    TORCH_CHECK(steps[i] >= 1, "adamwStep: step counts start at 1");
  }
  for (size_t i = 0; i < n; ++i) {
    const double bc1 = 1 - std::pow(beta1, static_cast<double>(steps[i]));
    const double bc2Sqrt = std::sqrt(1 - std::pow(beta2, static_cast<double>(steps[i])));
    const double stepSize = lr / bc1;
    at::Tensor g = grads[i].contiguous();
    if (params[i].scalar_type() == at::kFloat) {
      adamwKernel<float>(params[i].data_ptr<float>(), g.data_ptr<float>(), expAvgs[i].data_ptr<float>(),
                         expAvgSqs[i].data_ptr<float>(), params[i].numel(), lr, beta1, beta2, eps, weightDecay,
                         stepSize, bc2Sqrt, maximize);
    } else {
      adamwKernel<double>(params[i].data_ptr<double>(), g.data_ptr<double>(), expAvgs[i].data_ptr<double>(),
                          expAvgSqs[i].data_ptr<double>(), params[i].numel(), lr, beta1, beta2, eps, weightDecay,
                          stepSize, bc2Sqrt, maximize);
    }
  }
}

}  // namespace

void registerFusedOptimOps(Registry& r) {
  r.def("fusedAdamwStep", "params, grads, expAvgs, expAvgSqs, steps, lr, beta1, beta2, eps, weightDecay, maximize",
        &adamwStep);
}

}  // namespace moca
