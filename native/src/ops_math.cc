// Elementwise math, comparisons, reductions, linear algebra and in-place updates.
#include "common.h"

namespace moca {

void registerMathOps(Registry& r) {
  using at::Scalar;
  using at::ScalarType;
  using at::Tensor;
  using Dims = std::vector<int64_t>;
  using OptDims = c10::optional<std::vector<int64_t>>;

  // ---- unary (one pattern: Tensor -> Tensor)
#define MOCA_UNARY(name, expr) r.def(name, "self", +[](const Tensor& t) { return expr; })
  MOCA_UNARY("neg", at::neg(t));
  MOCA_UNARY("abs", at::abs(t));
  MOCA_UNARY("exp", at::exp(t));
  MOCA_UNARY("expm1", at::expm1(t));
  MOCA_UNARY("log", at::log(t));
  MOCA_UNARY("log1p", at::log1p(t));
  MOCA_UNARY("log2", at::log2(t));
  MOCA_UNARY("sqrt", at::sqrt(t));
  MOCA_UNARY("rsqrt", at::rsqrt(t));
  MOCA_UNARY("square", at::square(t));
  MOCA_UNARY("reciprocal", at::reciprocal(t));
  MOCA_UNARY("sin", at::sin(t));
  MOCA_UNARY("cos", at::cos(t));
  MOCA_UNARY("tanh", at::tanh(t));
  MOCA_UNARY("sigmoid", at::sigmoid(t));
  MOCA_UNARY("erf", at::erf(t));
  MOCA_UNARY("sign", at::sign(t));
  MOCA_UNARY("floor", at::floor(t));
  MOCA_UNARY("ceil", at::ceil(t));
  MOCA_UNARY("round", at::round(t));
  MOCA_UNARY("trunc", at::trunc(t));
  MOCA_UNARY("relu", at::relu(t));
  MOCA_UNARY("silu", at::silu(t));
  MOCA_UNARY("logicalNot", at::logical_not(t));
  MOCA_UNARY("isnan", at::isnan(t));
  MOCA_UNARY("isinf", at::isinf(t));
  MOCA_UNARY("isfinite", at::isfinite(t));
  MOCA_UNARY("bitwiseNot", at::bitwise_not(t));
#undef MOCA_UNARY

  // ---- binary, tensor-tensor and tensor-scalar (broadcasting and type promotion are libtorch's)
#define MOCA_BINARY(name, fn)                                                                   \
  r.def(name, "self, other", +[](const Tensor& a, const Tensor& b) { return at::fn(a, b); }); \
  r.def(name "Scalar", "self, other", +[](const Tensor& a, Scalar b) { return at::fn(a, b); })
  MOCA_BINARY("mul", mul);
  MOCA_BINARY("div", div);
  MOCA_BINARY("remainder", remainder);
  MOCA_BINARY("eq", eq);
  MOCA_BINARY("ne", ne);
  MOCA_BINARY("lt", lt);
  MOCA_BINARY("le", le);
  MOCA_BINARY("gt", gt);
  MOCA_BINARY("ge", ge);
  MOCA_BINARY("pow", pow);
  MOCA_BINARY("fmod", fmod);
  MOCA_BINARY("bitwiseAnd", bitwise_and);
  MOCA_BINARY("bitwiseOr", bitwise_or);
  MOCA_BINARY("bitwiseXor", bitwise_xor);
#undef MOCA_BINARY
  r.def("add", "self, other, alpha",
        +[](const Tensor& a, const Tensor& b, Scalar alpha) { return at::add(a, b, alpha); });
  r.def("addScalar", "self, other, alpha",
        +[](const Tensor& a, Scalar b, Scalar alpha) { return at::add(a, b, alpha); });
  r.def("sub", "self, other, alpha",
        +[](const Tensor& a, const Tensor& b, Scalar alpha) { return at::sub(a, b, alpha); });
  r.def("subScalar", "self, other, alpha",
        +[](const Tensor& a, Scalar b, Scalar alpha) { return at::sub(a, b, alpha); });
  r.def("rsubScalar", "self, other", +[](const Tensor& a, Scalar b) { return at::rsub(a, b); });
  r.def("powScalarBase", "base, exponent", +[](Scalar base, const Tensor& e) { return at::pow(base, e); });
  r.def("divMode", "self, other, roundingMode", +[](const Tensor& a, const Tensor& b, std::string mode) {
    return at::div(a, b, c10::optional<c10::string_view>(mode));
  });
  r.def("maximum", "self, other", +[](const Tensor& a, const Tensor& b) { return at::maximum(a, b); });
  r.def("minimum", "self, other", +[](const Tensor& a, const Tensor& b) { return at::minimum(a, b); });
  r.def("atan2", "self, other", +[](const Tensor& a, const Tensor& b) { return at::atan2(a, b); });
  r.def("logicalAnd", "self, other", +[](const Tensor& a, const Tensor& b) { return at::logical_and(a, b); });
  r.def("logicalOr", "self, other", +[](const Tensor& a, const Tensor& b) { return at::logical_or(a, b); });
  r.def("logicalXor", "self, other", +[](const Tensor& a, const Tensor& b) { return at::logical_xor(a, b); });
  r.def("clamp", "self, min, max", +[](const Tensor& t, c10::optional<Scalar> lo, c10::optional<Scalar> hi) {
    return at::clamp(t, lo, hi);
  });
  r.def("clampTensor", "self, min, max",
        +[](const Tensor& t, c10::optional<Tensor> lo, c10::optional<Tensor> hi) { return at::clamp(t, lo, hi); });
  r.def("where", "condition, self, other",
        +[](const Tensor& c, const Tensor& a, const Tensor& b) { return at::where(c, a, b); });
  r.def("whereScalarOther", "condition, self, other",
        +[](const Tensor& c, const Tensor& a, Scalar b) { return at::where(c, a, b); });
  r.def("whereScalarSelf", "condition, self, other",
        +[](const Tensor& c, Scalar a, const Tensor& b) { return at::where(c, a, b); });
  r.def("lerp", "self, end, weight", +[](const Tensor& a, const Tensor& b, Scalar w) { return at::lerp(a, b, w); });
  r.def("addcmul", "self, tensor1, tensor2, value", +[](const Tensor& t, const Tensor& a, const Tensor& b, Scalar v) {
    return at::addcmul(t, a, b, v);
  });
  r.def("addcdiv", "self, tensor1, tensor2, value", +[](const Tensor& t, const Tensor& a, const Tensor& b, Scalar v) {
    return at::addcdiv(t, a, b, v);
  });

  // ---- comparisons of whole tensors
  r.def("equal", "self, other", +[](const Tensor& a, const Tensor& b) { return at::equal(a, b); });
  r.def("allclose", "self, other, rtol, atol, equalNan",
        +[](const Tensor& a, const Tensor& b, double rtol, double atol, bool equalNan) {
          return at::allclose(a, b, rtol, atol, equalNan);
        });

  // ---- reductions. `dims` null reduces over all dimensions.
  r.def("sum", "self, dims, keepdim, dtype", +[](const Tensor& t, OptDims dims, bool keepdim, c10::optional<ScalarType> dtype) {
    if (!dims) return at::sum(t, dtype);
    return at::sum(t, *dims, keepdim, dtype);
  });
  r.def("mean", "self, dims, keepdim, dtype", +[](const Tensor& t, OptDims dims, bool keepdim, c10::optional<ScalarType> dtype) {
    if (!dims) return at::mean(t, dtype);
    return at::mean(t, *dims, keepdim, dtype);
  });
  r.def("prod", "self, dim, keepdim, dtype", +[](const Tensor& t, c10::optional<int64_t> dim, bool keepdim, c10::optional<ScalarType> dtype) {
    if (!dim) return at::prod(t, dtype);
    return at::prod(t, *dim, keepdim, dtype);
  });
  r.def("var", "self, dims, correction, keepdim", +[](const Tensor& t, OptDims dims, int64_t correction, bool keepdim) {
    if (!dims) return at::var(t, c10::nullopt, c10::optional<int64_t>(correction), keepdim);
    return at::var(t, at::IntArrayRef(*dims), c10::optional<int64_t>(correction), keepdim);
  });
  r.def("std", "self, dims, correction, keepdim", +[](const Tensor& t, OptDims dims, int64_t correction, bool keepdim) {
    if (!dims) return at::std(t, c10::nullopt, c10::optional<int64_t>(correction), keepdim);
    return at::std(t, at::IntArrayRef(*dims), c10::optional<int64_t>(correction), keepdim);
  });
  r.def("norm", "self, p, dims, keepdim", +[](const Tensor& t, Scalar p, OptDims dims, bool keepdim) {
    if (!dims) return at::norm(t, p);
    return at::norm(t, c10::optional<Scalar>(p), *dims, keepdim);
  });
  r.def("amax", "self, dims, keepdim", +[](const Tensor& t, Dims dims, bool keepdim) { return at::amax(t, dims, keepdim); });
  r.def("amin", "self, dims, keepdim", +[](const Tensor& t, Dims dims, bool keepdim) { return at::amin(t, dims, keepdim); });
  r.def("maxAll", "self", +[](const Tensor& t) { return at::max(t); });
  r.def("minAll", "self", +[](const Tensor& t) { return at::min(t); });
  r.def("maxDim", "self, dim, keepdim", +[](const Tensor& t, int64_t dim, bool keepdim) {
    return std::tuple<Tensor, Tensor>(at::max(t, dim, keepdim));
  });
  r.def("minDim", "self, dim, keepdim", +[](const Tensor& t, int64_t dim, bool keepdim) {
    return std::tuple<Tensor, Tensor>(at::min(t, dim, keepdim));
  });
  r.def("argmax", "self, dim, keepdim", +[](const Tensor& t, c10::optional<int64_t> dim, bool keepdim) {
    return at::argmax(t, dim, keepdim);
  });
  r.def("argmin", "self, dim, keepdim", +[](const Tensor& t, c10::optional<int64_t> dim, bool keepdim) {
    return at::argmin(t, dim, keepdim);
  });
  r.def("logsumexp", "self, dims, keepdim", +[](const Tensor& t, Dims dims, bool keepdim) {
    return at::logsumexp(t, dims, keepdim);
  });
  r.def("all", "self", +[](const Tensor& t) { return at::all(t); });
  r.def("any", "self", +[](const Tensor& t) { return at::any(t); });
  r.def("allDim", "self, dim, keepdim", +[](const Tensor& t, int64_t dim, bool keepdim) { return at::all(t, dim, keepdim); });
  r.def("anyDim", "self, dim, keepdim", +[](const Tensor& t, int64_t dim, bool keepdim) { return at::any(t, dim, keepdim); });
  r.def("cumsum", "self, dim, dtype", +[](const Tensor& t, int64_t dim, c10::optional<ScalarType> dtype) {
    return at::cumsum(t, dim, dtype);
  });
  r.def("cumprod", "self, dim, dtype", +[](const Tensor& t, int64_t dim, c10::optional<ScalarType> dtype) {
    return at::cumprod(t, dim, dtype);
  });
  r.def("countNonzero", "self, dim", +[](const Tensor& t, c10::optional<int64_t> dim) {
    return at::count_nonzero(t, dim);
  });
  r.def("bincount", "self, weights, minlength", +[](const Tensor& t, c10::optional<Tensor> w, int64_t minlength) {
    return at::bincount(t, w, minlength);
  });

  // ---- linear algebra
  r.def("matmul", "self, other", +[](const Tensor& a, const Tensor& b) { return at::matmul(a, b); });
  r.def("mm", "self, other", +[](const Tensor& a, const Tensor& b) { return at::mm(a, b); });
  r.def("bmm", "self, other", +[](const Tensor& a, const Tensor& b) { return at::bmm(a, b); });
  r.def("dot", "self, other", +[](const Tensor& a, const Tensor& b) { return at::dot(a, b); });
  r.def("outer", "self, other", +[](const Tensor& a, const Tensor& b) { return at::outer(a, b); });
  r.def("linear", "input, weight, bias", +[](const Tensor& x, const Tensor& w, c10::optional<Tensor> b) {
    return at::linear(x, w, b);
  });
  r.def("addmm", "self, mat1, mat2, beta, alpha", +[](const Tensor& t, const Tensor& a, const Tensor& b, Scalar beta, Scalar alpha) {
    return at::addmm(t, a, b, beta, alpha);
  });
  r.def("baddbmm", "self, batch1, batch2, beta, alpha", +[](const Tensor& t, const Tensor& a, const Tensor& b, Scalar beta, Scalar alpha) {
    return at::baddbmm(t, a, b, beta, alpha);
  });
  r.def("einsum", "equation, operands", +[](std::string eq, std::vector<Tensor> operands) {
    return at::einsum(eq, operands);
  });

  // ---- in-place updates (return nothing; the TS side returns `this`)
  r.def("add_", "self, other, alpha", +[](Tensor t, const Tensor& o, Scalar alpha) { t.add_(o, alpha); });
  r.def("addScalar_", "self, other, alpha", +[](Tensor t, Scalar o, Scalar alpha) { t.add_(o, alpha); });
  r.def("sub_", "self, other, alpha", +[](Tensor t, const Tensor& o, Scalar alpha) { t.sub_(o, alpha); });
  r.def("mul_", "self, other", +[](Tensor t, const Tensor& o) { t.mul_(o); });
  r.def("mulScalar_", "self, other", +[](Tensor t, Scalar o) { t.mul_(o); });
  r.def("div_", "self, other", +[](Tensor t, const Tensor& o) { t.div_(o); });
  r.def("divScalar_", "self, other", +[](Tensor t, Scalar o) { t.div_(o); });
  r.def("addcmul_", "self, tensor1, tensor2, value", +[](Tensor t, const Tensor& a, const Tensor& b, Scalar v) {
    t.addcmul_(a, b, v);
  });
  r.def("addcdiv_", "self, tensor1, tensor2, value", +[](Tensor t, const Tensor& a, const Tensor& b, Scalar v) {
    t.addcdiv_(a, b, v);
  });
  r.def("lerp_", "self, end, weight", +[](Tensor t, const Tensor& e, Scalar w) { t.lerp_(e, w); });
  r.def("copy_", "self, src", +[](Tensor t, const Tensor& s) { t.copy_(s); });
  r.def("zero_", "self", +[](Tensor t) { t.zero_(); });
  r.def("fill_", "self, value", +[](Tensor t, Scalar v) { t.fill_(v); });
  r.def("clamp_", "self, min, max", +[](Tensor t, c10::optional<Scalar> lo, c10::optional<Scalar> hi) {
    t.clamp_(lo, hi);
  });
  r.def("sqrt_", "self", +[](Tensor t) { t.sqrt_(); });
  r.def("neg_", "self", +[](Tensor t) { t.neg_(); });
  r.def("exp_", "self", +[](Tensor t) { t.exp_(); });
  r.def("maskedFill_", "self, mask, value", +[](Tensor t, const Tensor& m, Scalar v) { t.masked_fill_(m, v); });
  r.def("indexPut_", "self, indices, values, accumulate",
        +[](Tensor t, std::vector<c10::optional<Tensor>> idx, const Tensor& v, bool accumulate) {
          c10::List<c10::optional<Tensor>> list;
          for (auto& i : idx) list.push_back(i);
          t.index_put_(list, v, accumulate);
        });
  r.def("indexFill_", "self, dim, index, value", +[](Tensor t, int64_t dim, const Tensor& index, Scalar v) {
    t.index_fill_(dim, index, v);
  });
}

}  // namespace moca
