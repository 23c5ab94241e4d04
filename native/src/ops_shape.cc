// Views, shape manipulation, indexing, sorting and conversion.
#include "common.h"

namespace moca {

static c10::List<c10::optional<at::Tensor>> toIndexList(const std::vector<c10::optional<at::Tensor>>& idx) {
  c10::List<c10::optional<at::Tensor>> list;
  for (const auto& i : idx) list.push_back(i);
  return list;
}

void registerShapeOps(Registry& r) {
  using at::Scalar;
  using at::ScalarType;
  using at::Tensor;
  using Dims = std::vector<int64_t>;

  r.def("alias", "self", +[](const Tensor& t) { return at::alias(t); });
  r.def("view", "self, shape", +[](const Tensor& t, Dims shape) { return t.view(shape); });
  r.def("viewDtype", "self, dtype", +[](const Tensor& t, ScalarType dtype) { return t.view(dtype); });
  r.def("reshape", "self, shape", +[](const Tensor& t, Dims shape) { return t.reshape(shape); });
  r.def("permute", "self, dims", +[](const Tensor& t, Dims dims) { return t.permute(dims); });
  r.def("transpose", "self, dim0, dim1", +[](const Tensor& t, int64_t a, int64_t b) { return t.transpose(a, b); });
  r.def("contiguous", "self", +[](const Tensor& t) { return t.contiguous(); });
  r.def("unsqueeze", "self, dim", +[](const Tensor& t, int64_t d) { return t.unsqueeze(d); });
  r.def("squeeze", "self, dim", +[](const Tensor& t, c10::optional<int64_t> d) {
    return d ? t.squeeze(*d) : t.squeeze();
  });
  r.def("expand", "self, shape", +[](const Tensor& t, Dims shape) { return t.expand(shape); });
  r.def("repeat", "self, repeats", +[](const Tensor& t, Dims reps) { return t.repeat(reps); });
  r.def("repeatInterleave", "self, repeats, dim", +[](const Tensor& t, int64_t reps, c10::optional<int64_t> dim) {
    return at::repeat_interleave(t, reps, dim);
  });
  r.def("repeatInterleaveTensor", "self, repeats, dim",
        +[](const Tensor& t, const Tensor& reps, c10::optional<int64_t> dim) {
          return at::repeat_interleave(t, reps, dim);
        });
  r.def("flatten", "self, startDim, endDim", +[](const Tensor& t, int64_t s, int64_t e) { return t.flatten(s, e); });
  r.def("unflatten", "self, dim, sizes", +[](const Tensor& t, int64_t dim, Dims sizes) {
    return t.unflatten(dim, sizes);
  });
  r.def("cat", "tensors, dim", +[](std::vector<Tensor> ts, int64_t dim) { return at::cat(ts, dim); });
  r.def("stack", "tensors, dim", +[](std::vector<Tensor> ts, int64_t dim) { return at::stack(ts, dim); });
  r.def("split", "self, splitSize, dim", +[](const Tensor& t, int64_t size, int64_t dim) {
    return at::split(t, size, dim);
  });
  r.def("splitWithSizes", "self, sizes, dim", +[](const Tensor& t, Dims sizes, int64_t dim) {
    return at::split_with_sizes(t, sizes, dim);
  });
  r.def("chunk", "self, chunks, dim", +[](const Tensor& t, int64_t n, int64_t dim) { return at::chunk(t, n, dim); });
  r.def("unbind", "self, dim", +[](const Tensor& t, int64_t dim) { return at::unbind(t, dim); });
  r.def("narrow", "self, dim, start, length", +[](const Tensor& t, int64_t dim, int64_t start, int64_t len) {
    return t.narrow(dim, start, len);
  });
  r.def("slice", "self, dim, start, end, step",
        +[](const Tensor& t, int64_t dim, c10::optional<int64_t> start, c10::optional<int64_t> end, int64_t step) {
          return at::slice(t, dim, start, end, step);
        });
  r.def("select", "self, dim, index", +[](const Tensor& t, int64_t dim, int64_t i) { return t.select(dim, i); });
  r.def("flip", "self, dims", +[](const Tensor& t, Dims dims) { return at::flip(t, dims); });
  r.def("roll", "self, shifts, dims", +[](const Tensor& t, Dims shifts, Dims dims) { return at::roll(t, shifts, dims); });
  r.def("tril", "self, diagonal", +[](const Tensor& t, int64_t k) { return at::tril(t, k); });
  r.def("triu", "self, diagonal", +[](const Tensor& t, int64_t k) { return at::triu(t, k); });
  r.def("diagonal", "self, offset, dim1, dim2", +[](const Tensor& t, int64_t o, int64_t d1, int64_t d2) {
    return at::diagonal(t, o, d1, d2);
  });
  r.def("diagEmbed", "self", +[](const Tensor& t) { return at::diag_embed(t); });
  r.def("constantPad", "self, pad, value", +[](const Tensor& t, Dims pad, Scalar v) {
    return at::constant_pad_nd(t, pad, v);
  });

  // ---- indexing
  r.def("indexSelect", "self, dim, index", +[](const Tensor& t, int64_t dim, const Tensor& i) {
    return at::index_select(t, dim, i);
  });
  r.def("gather", "self, dim, index", +[](const Tensor& t, int64_t dim, const Tensor& i) { return at::gather(t, dim, i); });
  r.def("scatter", "self, dim, index, src", +[](const Tensor& t, int64_t dim, const Tensor& i, const Tensor& s) {
    return at::scatter(t, dim, i, s);
  });
  r.def("scatterScalar", "self, dim, index, value", +[](const Tensor& t, int64_t dim, const Tensor& i, Scalar v) {
    return at::scatter(t, dim, i, v);
  });
  r.def("scatterAdd", "self, dim, index, src", +[](const Tensor& t, int64_t dim, const Tensor& i, const Tensor& s) {
    return at::scatter_add(t, dim, i, s);
  });
  r.def("indexAdd", "self, dim, index, source, alpha",
        +[](const Tensor& t, int64_t dim, const Tensor& i, const Tensor& s, Scalar alpha) {
          return at::index_add(t, dim, i, s, alpha);
        });
  r.def("index", "self, indices", +[](const Tensor& t, std::vector<c10::optional<Tensor>> idx) {
    return at::index(t, toIndexList(idx));
  });
  r.def("indexPut", "self, indices, values, accumulate",
        +[](const Tensor& t, std::vector<c10::optional<Tensor>> idx, const Tensor& v, bool accumulate) {
          return at::index_put(t, toIndexList(idx), v, accumulate);
        });
  r.def("maskedFill", "self, mask, value", +[](const Tensor& t, const Tensor& m, Scalar v) {
    return at::masked_fill(t, m, v);
  });
  r.def("maskedFillTensor", "self, mask, value", +[](const Tensor& t, const Tensor& m, const Tensor& v) {
    return at::masked_fill(t, m, v);
  });
  r.def("maskedScatter", "self, mask, source", +[](const Tensor& t, const Tensor& m, const Tensor& s) {
    return at::masked_scatter(t, m, s);
  });
  r.def("maskedSelect", "self, mask", +[](const Tensor& t, const Tensor& m) { return at::masked_select(t, m); });
  r.def("nonzero", "self", +[](const Tensor& t) { return at::nonzero(t); });
  r.def("sort", "self, dim, descending, stable", +[](const Tensor& t, int64_t dim, bool desc, bool stable) {
    return std::tuple<Tensor, Tensor>(at::sort(t, c10::optional<bool>(stable), dim, desc));
  });
  r.def("argsort", "self, dim, descending, stable", +[](const Tensor& t, int64_t dim, bool desc, bool stable) {
    return std::get<1>(at::sort(t, c10::optional<bool>(stable), dim, desc));
  });
  r.def("topk", "self, k, dim, largest, sorted", +[](const Tensor& t, int64_t k, int64_t dim, bool largest, bool sorted) {
    return std::tuple<Tensor, Tensor>(at::topk(t, k, dim, largest, sorted));
  });
  r.def("unique", "self, sorted, returnInverse", +[](const Tensor& t, bool sorted, bool inverse) {
    auto res = at::_unique(t, sorted, inverse);
    return std::tuple<Tensor, Tensor>(std::get<0>(res), std::get<1>(res));
  });
  r.def("oneHot", "self, numClasses", +[](const Tensor& t, int64_t n) { return at::one_hot(t, n); });
  r.def("searchsorted", "sortedSequence, self, right", +[](const Tensor& s, const Tensor& t, bool right) {
    return at::searchsorted(s, t, false, right);
  });

  // ---- conversion and copies
  r.def("toDtype", "self, dtype, copy", +[](const Tensor& t, ScalarType dtype, bool copy) {
    return t.to(dtype, false, copy);
  });
  r.def("toDevice", "self, device, dtype, copy", +[](const Tensor& t, std::string device, ScalarType dtype, bool copy) {
    return t.to(c10::Device(device), dtype, false, copy);
  });
  r.def("clone", "self", +[](const Tensor& t) { return t.clone(); });
}

}  // namespace moca
