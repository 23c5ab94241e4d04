// Neural-network functionals (the composed ones live in TypeScript).
#include "common.h"

namespace moca {

static int64_t reductionCode(const std::string& reduction) {
  if (reduction == "mean") return at::Reduction::Mean;
  if (reduction == "sum") return at::Reduction::Sum;
  if (reduction == "none") return at::Reduction::None;
  TORCH_CHECK(false, "reduction must be 'mean', 'sum' or 'none', got '", reduction, "'");
}

void registerNnOps(Registry& r) {
  using at::Scalar;
  using at::ScalarType;
  using at::Tensor;
  using Dims = std::vector<int64_t>;
  using OptTensor = c10::optional<Tensor>;

  r.def("embedding", "weight, indices, paddingIdx", +[](const Tensor& w, const Tensor& idx, int64_t paddingIdx) {
    return at::embedding(w, idx, paddingIdx, false, false);
  });
  r.def("layerNorm", "input, normalizedShape, weight, bias, eps",
        +[](const Tensor& x, Dims shape, OptTensor w, OptTensor b, double eps) {
          return at::layer_norm(x, shape, w, b, eps);
        });
  r.def("softmax", "self, dim, dtype", +[](const Tensor& t, int64_t dim, c10::optional<ScalarType> dtype) {
    return at::softmax(t, dim, dtype);
  });
  r.def("logSoftmax", "self, dim, dtype", +[](const Tensor& t, int64_t dim, c10::optional<ScalarType> dtype) {
    return at::log_softmax(t, dim, dtype);
  });
  r.def("gelu", "self, approximate", +[](const Tensor& t, std::string approximate) {
    return at::gelu(t, approximate);
  });
  r.def("softplus", "self, beta, threshold", +[](const Tensor& t, Scalar beta, Scalar threshold) {
    return at::softplus(t, beta, threshold);
  });
  r.def("logSigmoid", "self", +[](const Tensor& t) { return at::log_sigmoid(t); });
  r.def("dropout", "self, p, train", +[](const Tensor& t, double p, bool train) { return at::dropout(t, p, train); });
  r.def("crossEntropy", "input, target, weight, reduction, ignoreIndex, labelSmoothing",
        +[](const Tensor& x, const Tensor& y, OptTensor w, std::string reduction, int64_t ignoreIndex, double ls) {
          return at::cross_entropy_loss(x, y, w, reductionCode(reduction), ignoreIndex, ls);
        });
  r.def("nllLoss", "input, target, weight, reduction, ignoreIndex",
        +[](const Tensor& x, const Tensor& y, OptTensor w, std::string reduction, int64_t ignoreIndex) {
          return at::nll_loss_nd(x, y, w, reductionCode(reduction), ignoreIndex);
        });
  r.def("mseLoss", "input, target, reduction", +[](const Tensor& x, const Tensor& y, std::string reduction) {
    return at::mse_loss(x, y, reductionCode(reduction));
  });
  r.def("binaryCrossEntropyWithLogits", "input, target, weight, posWeight, reduction",
        +[](const Tensor& x, const Tensor& y, OptTensor w, OptTensor pw, std::string reduction) {
          return at::binary_cross_entropy_with_logits(x, y, w, pw, reductionCode(reduction));
        });
  r.def("conv2d", "input, weight, bias, stride, padding, dilation, groups",
        +[](const Tensor& x, const Tensor& w, OptTensor b, Dims stride, Dims padding, Dims dilation, int64_t groups) {
          return at::conv2d(x, w, b, stride, padding, dilation, groups);
        });
  r.def("conv3d", "input, weight, bias, stride, padding, dilation, groups",
        +[](const Tensor& x, const Tensor& w, OptTensor b, Dims stride, Dims padding, Dims dilation, int64_t groups) {
          return at::conv3d(x, w, b, stride, padding, dilation, groups);
        });
}

}  // namespace moca
