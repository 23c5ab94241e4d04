// Factory functions and random sampling. Device is passed as a string ("cpu", "cuda", "cuda:1").
#include "common.h"

namespace moca {

static at::TensorOptions opts(at::ScalarType dtype, const std::string& device) {
  return at::TensorOptions().dtype(dtype).device(c10::Device(device));
}

void registerCreationOps(Registry& r) {
  using at::Scalar;
  using at::ScalarType;
  using at::Tensor;
  using Shape = std::vector<int64_t>;

  r.def("empty", "shape, dtype, device", +[](Shape shape, ScalarType dtype, std::string device) {
    return at::empty(shape, opts(dtype, device));
  });
  r.def("zeros", "shape, dtype, device", +[](Shape shape, ScalarType dtype, std::string device) {
    return at::zeros(shape, opts(dtype, device));
  });
  r.def("ones", "shape, dtype, device", +[](Shape shape, ScalarType dtype, std::string device) {
    return at::ones(shape, opts(dtype, device));
  });
  r.def("full", "shape, value, dtype, device", +[](Shape shape, Scalar value, ScalarType dtype, std::string device) {
    return at::full(shape, value, opts(dtype, device));
  });
  r.def("arange", "start, end, step, dtype, device",
        +[](Scalar start, Scalar end, Scalar step, ScalarType dtype, std::string device) {
          return at::arange(start, end, step, opts(dtype, device));
        });
  r.def("linspace", "start, end, steps, dtype, device",
        +[](Scalar start, Scalar end, int64_t steps, ScalarType dtype, std::string device) {
          return at::linspace(start, end, steps, opts(dtype, device));
        });
  r.def("eye", "n, m, dtype, device", +[](int64_t n, int64_t m, ScalarType dtype, std::string device) {
    return at::eye(n, m, opts(dtype, device));
  });
  r.def("scalarTensor", "value, dtype, device", +[](Scalar value, ScalarType dtype, std::string device) {
    return at::scalar_tensor(value, opts(dtype, device));
  });
  r.def("emptyLike", "self", +[](const Tensor& t) { return at::empty_like(t); });
  r.def("zerosLike", "self", +[](const Tensor& t) { return at::zeros_like(t); });
  r.def("onesLike", "self", +[](const Tensor& t) { return at::ones_like(t); });
  r.def("fullLike", "self, value", +[](const Tensor& t, Scalar v) { return at::full_like(t, v); });

  // Random sampling uses the default generator seeded by manualSeed().
  r.def("randn", "shape, dtype, device", +[](Shape shape, ScalarType dtype, std::string device) {
    return at::randn(shape, opts(dtype, device));
  });
  r.def("rand", "shape, dtype, device", +[](Shape shape, ScalarType dtype, std::string device) {
    return at::rand(shape, opts(dtype, device));
  });
  r.def("randint", "low, high, shape, dtype, device",
        +[](int64_t low, int64_t high, Shape shape, ScalarType dtype, std::string device) {
          return at::randint(low, high, shape, opts(dtype, device));
        });
  r.def("randperm", "n, dtype, device", +[](int64_t n, ScalarType dtype, std::string device) {
    return at::randperm(n, opts(dtype, device));
  });
  r.def("bernoulli", "self", +[](const Tensor& p) { return at::bernoulli(p); });
  r.def("bernoulliScalar", "self, p", +[](const Tensor& t, double p) { return at::bernoulli(t, p); });
  r.def("multinomial", "self, numSamples, replacement", +[](const Tensor& t, int64_t n, bool replacement) {
    return at::multinomial(t, n, replacement);
  });
  r.def("normal_", "self, mean, std", +[](Tensor t, double mean, double std) { t.normal_(mean, std); });
  r.def("uniform_", "self, from, to", +[](Tensor t, double from, double to) { t.uniform_(from, to); });
  r.def("bernoulli_", "self, p", +[](Tensor t, double p) { t.bernoulli_(p); });
}

}  // namespace moca
