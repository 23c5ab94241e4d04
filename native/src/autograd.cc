// Autograd is libtorch's: these ops only expose it.
#include <ATen/autocast_mode.h>
#include <c10/core/GradMode.h>
#include <torch/csrc/autograd/autograd.h>
#include <torch/csrc/autograd/function.h>

#include "common.h"

namespace moca {

void registerAutogradOps(Registry& r) {
  using at::Tensor;
  using OptTensor = c10::optional<Tensor>;

  r.def("requiresGrad", "self", +[](const Tensor& t) { return t.requires_grad(); });
  r.def("requiresGrad_", "self, requiresGrad", +[](Tensor t, bool flag) { t.requires_grad_(flag); });
  r.def("isLeaf", "self", +[](const Tensor& t) { return t.is_leaf(); });
  r.def("gradFnName", "self", +[](const Tensor& t) {
    return t.grad_fn() ? t.grad_fn()->name() : std::string();
  });
  r.def("grad", "self", +[](const Tensor& t) { return t.grad(); });
  r.def("setGrad", "self, grad", +[](Tensor t, OptTensor g) { t.mutable_grad() = g ? *g : Tensor(); });
  r.def("retainGrad", "self", +[](const Tensor& t) { t.retain_grad(); });
  // `param.data = x` in PyTorch: the same autograd leaf now holds x's data (shape and dtype may change).
  r.def("setData", "self, newData", +[](Tensor t, const Tensor& d) { t.set_data(d); });
  r.def("detach", "self", +[](const Tensor& t) { return t.detach(); });
  r.def("detach_", "self", +[](Tensor t) { t.detach_(); });
  r.def("backward", "self, gradient, retainGraph, createGraph",
        +[](const Tensor& t, OptTensor g, bool retain, bool create) {
          t.backward(g ? *g : Tensor(), retain, create);
        });
  r.def("autogradBackward", "tensors, gradTensors, retainGraph, createGraph",
        +[](std::vector<Tensor> tensors, std::vector<c10::optional<Tensor>> grads, bool retain, bool create) {
          std::vector<Tensor> gs;
          gs.reserve(grads.size());
          for (auto& g : grads) gs.push_back(g ? *g : Tensor());
          torch::autograd::backward(tensors, gs, retain, create);
        });
  r.def("autogradGrad", "outputs, inputs, gradOutputs, retainGraph, createGraph, allowUnused",
        +[](std::vector<Tensor> outputs, std::vector<Tensor> inputs, std::vector<c10::optional<Tensor>> grads,
            bool retain, bool create, bool allowUnused) {
          std::vector<Tensor> gs;
          gs.reserve(grads.size());
          for (auto& g : grads) gs.push_back(g ? *g : Tensor());
          return torch::autograd::grad(outputs, inputs, gs, retain, create, allowUnused);
        });
  r.def("setGradEnabled", "enabled", +[](bool enabled) {
    bool previous = c10::GradMode::is_enabled();
    c10::GradMode::set_enabled(enabled);
    return previous;
  });
  r.def("isGradEnabled", "", +[]() { return c10::GradMode::is_enabled(); });
  // CPU autocast (mixed precision): matmuls and other eligible ops run in `dtype` (bfloat16) while parameters
  // and reductions stay float32. Returns whether it was enabled before.
  r.def("setAutocastCpu", "enabled, dtype", +[](bool enabled, at::ScalarType dtype) {
    bool previous = at::autocast::is_cpu_enabled();
    at::autocast::set_autocast_cpu_dtype(dtype);
    at::autocast::set_cpu_enabled(enabled);
    if (!enabled) at::autocast::clear_cache();
    return previous;
  });
}

}  // namespace moca
