// Fused linear + cross-entropy (the LM head's loss) without the full logits: mean over rows of
// −log softmax(hidden · weightᵀ)[label], rows whose label is `ignoreIndex` skipped.
//
// Forward walks (row chunk × vocabulary chunk) blocks of logits with an online log-sum-exp, keeping per row only
// the running max, the running sum, the label's logit and the argmax (for accuracy). Backward recomputes each
// block's logits and turns them into the block of dL/dlogits = (softmax − onehot) / count in place, which feeds
// dHidden += G·W_chunk and dWeight_chunk += Gᵀ·hidden_chunk. Peak extra memory is one block of logits (bounded
// by `chunkElements`) plus the weight gradient itself. When all the logits fit in one block (small vocabularies,
// few rows) the forward keeps that block's softmax − onehot for backward instead of recomputing the product. Logits and softmax are float32 (float64 for float64
// inputs); the matrix products run in the inputs' dtype (bfloat16 under autocast).
#include <ATen/Parallel.h>
#include <torch/csrc/autograd/custom_function.h>

#include "common.h"
#include "fused_common.h"

namespace moca {
namespace {

using torch::autograd::AutogradContext;
using torch::autograd::variable_list;

struct Chunking {
  int64_t rows, vocab;
};

Chunking chunking(int64_t n, int64_t v, int64_t chunkElements) {
  const int64_t vocab = std::min<int64_t>(v, 8192);
  const int64_t rows = std::max<int64_t>(1, std::min<int64_t>(n, chunkElements / std::max<int64_t>(vocab, 1)));
  return {rows, vocab};
}

void checkArgs(const at::Tensor& hidden, const at::Tensor& weight, const at::Tensor& labels, int64_t ignoreIndex) {
  TORCH_CHECK(hidden.dim() == 2 && weight.dim() == 2 && hidden.size(1) == weight.size(1),
              "linearCrossEntropy: hidden (N, H) and weight (V, H) expected, got ", hidden.sizes(), " and ",
              weight.sizes());
  TORCH_CHECK(labels.dim() == 1 && labels.size(0) == hidden.size(0), "linearCrossEntropy: labels must be (",
              hidden.size(0), ",), got ", labels.sizes());
  TORCH_CHECK(labels.scalar_type() == at::kLong || labels.scalar_type() == at::kInt,
              "linearCrossEntropy: labels must be int64 or int32, got ", labels.scalar_type());
  TORCH_CHECK(hidden.scalar_type() == weight.scalar_type(), "linearCrossEntropy: hidden (", hidden.scalar_type(),
              ") and weight (", weight.scalar_type(), ") dtypes differ");
  at::Tensor l = labels.to(at::kLong);
  const int64_t v = weight.size(0);
  at::Tensor bad = (l.ne(ignoreIndex)).logical_and(l.lt(0).logical_or(l.ge(v)));
  if (bad.any().item<bool>()) {
    int64_t at = bad.nonzero().select(1, 0)[0].item<int64_t>();
    TORCH_CHECK(false, "linearCrossEntropy: label ", l[at].item<int64_t>(), " of row ", at,
                " is outside the vocabulary [0, ", v, ") and is not the ignore index ", ignoreIndex);
  }
}

template <typename Acc>
struct RowStats {
  std::vector<Acc> max, sum, picked, best;
  std::vector<int64_t> argmax;
  explicit RowStats(int64_t n)
      : max(n, -std::numeric_limits<Acc>::infinity()),
        sum(n, Acc(0)),
        picked(n, Acc(0)),
        best(n, -std::numeric_limits<Acc>::infinity()),
        argmax(n, -1) {}
};

// Folds one block of logits (rows r0.., vocabulary v0..) into the running row statistics. The block is
// overwritten by exp(logit − running max) unless `keepLogits`.
template <typename Acc>
void blockStats(Acc* lp, int64_t rows, int64_t cols, int64_t r0, int64_t v0, const int64_t* labels,
                RowStats<Acc>& st, bool keepLogits) {
  at::parallel_for(0, rows, 16, [&](int64_t b, int64_t e) {
    std::vector<Acc> scratch(keepLogits ? static_cast<size_t>(cols) : 0);
    for (int64_t i = b; i < e; ++i) {
      const int64_t row = r0 + i;
      Acc* x = lp + i * cols;
      const int64_t y = labels[row];
      if (y >= v0 && y < v0 + cols) st.picked[row] = x[y - v0];
      const Acc mx = fused::rowMax(x, cols);
      if (mx > st.best[row]) {
        st.best[row] = mx;
        st.argmax[row] = v0 + (std::find(x, x + cols, mx) - x);
      }
      const Acc mnew = std::max(st.max[row], mx);
      const Acc corr = st.max[row] == -std::numeric_limits<Acc>::infinity() ? Acc(0) : std::exp(st.max[row] - mnew);
      Acc* target = x;
      if (keepLogits) {
        std::copy(x, x + cols, scratch.begin());
        target = scratch.data();
      }
      st.sum[row] = st.sum[row] * corr + fused::expShiftSum(target, cols, Acc(1), mnew);
      st.max[row] = mnew;
    }
  });
}

// Turns a block of logits into (softmax − onehot) · scale in place (rows with the ignore label: 0).
template <typename Acc>
void toSoftmaxGrad(Acc* gp, int64_t rows, int64_t cols, int64_t r0, int64_t v0, const int64_t* labels,
                   const Acc* lse, int64_t ignoreIndex, Acc scale) {
  at::parallel_for(0, rows, 16, [&](int64_t b, int64_t e) {
    for (int64_t i = b; i < e; ++i) {
      const int64_t row = r0 + i;
      Acc* x = gp + i * cols;
      const int64_t y = labels[row];
      if (y == ignoreIndex) {
        std::fill(x, x + cols, Acc(0));
        continue;
      }
      fused::expShiftSum(x, cols, Acc(1), lse[row]);  // softmax
      if (y >= v0 && y < v0 + cols) x[y - v0] -= Acc(1);
      if (scale != Acc(1)) fused::scaleRow(x, cols, scale);
    }
  });
}

template <typename Acc>
void forwardBlocks(const at::Tensor& hidden, const at::Tensor& weight, const int64_t* labels, Chunking ch,
                   RowStats<Acc>& st) {
  const int64_t n = hidden.size(0), v = weight.size(0);
  const at::ScalarType accType = std::is_same_v<Acc, double> ? at::kDouble : at::kFloat;
  for (int64_t r0 = 0; r0 < n; r0 += ch.rows) {
    const int64_t rows = std::min(ch.rows, n - r0);
    at::Tensor h = hidden.narrow(0, r0, rows);
    for (int64_t v0 = 0; v0 < v; v0 += ch.vocab) {
      const int64_t cols = std::min(ch.vocab, v - v0);
      at::Tensor logits = at::mm(h, weight.narrow(0, v0, cols).t()).to(accType).contiguous();
      blockStats<Acc>(logits.data_ptr<Acc>(), rows, cols, r0, v0, labels, st, false);
    }
  }
}

struct LinearCrossEntropyFn : public torch::autograd::Function<LinearCrossEntropyFn> {
  static variable_list forward(AutogradContext* ctx, const at::Tensor& hidden0, const at::Tensor& weight0,
                               const at::Tensor& labels0, int64_t ignoreIndex, int64_t chunkElements) {
    checkArgs(hidden0, weight0, labels0, ignoreIndex);
    at::Tensor hidden = hidden0.contiguous(), weight = weight0.contiguous();
    at::Tensor labels = labels0.to(at::kLong).contiguous();
    const int64_t n = hidden.size(0);
    const bool isDouble = hidden.scalar_type() == at::kDouble;
    const at::ScalarType accType = isDouble ? at::kDouble : at::kFloat;
    const Chunking ch = chunking(n, weight.size(0), std::max<int64_t>(1, chunkElements));
    const int64_t* lab = labels.data_ptr<int64_t>();
    at::Tensor lse = at::empty({n}, hidden.options().dtype(accType));
    const bool singleBlock = ch.rows >= n && ch.vocab >= weight.size(0);
    // Single block: the logits themselves, turned into softmax − onehot below and kept for backward.
    at::Tensor probs = singleBlock ? at::mm(hidden, weight.t()).to(accType).contiguous() : at::Tensor();
    int64_t count = 0, correct = 0;
    double lossSum = 0;
    AT_DISPATCH_FLOATING_TYPES(accType, "linearCrossEntropy", [&] {
      using Acc = scalar_t;
      RowStats<Acc> st(n);
      if (singleBlock)
        blockStats<Acc>(probs.data_ptr<Acc>(), n, weight.size(0), 0, 0, lab, st, /*keepLogits=*/true);
      else
        forwardBlocks<Acc>(hidden, weight, lab, ch, st);
      Acc* lp = lse.data_ptr<Acc>();
      for (int64_t i = 0; i < n; ++i) {
        lp[i] = st.max[i] + std::log(st.sum[i]);
        if (lab[i] == ignoreIndex) continue;
        ++count;
        lossSum += static_cast<double>(lp[i] - st.picked[i]);
        if (st.argmax[i] == lab[i]) ++correct;
      }
      if (singleBlock) toSoftmaxGrad<Acc>(probs.data_ptr<Acc>(), n, weight.size(0), 0, 0, lab, lp, ignoreIndex, Acc(1));
    });
    at::Tensor loss = at::scalar_tensor(count > 0 ? lossSum / static_cast<double>(count) : 0.0,
                                        hidden.options().dtype(accType));
    at::Tensor correctT = at::scalar_tensor(correct, hidden.options().dtype(at::kLong));
    at::Tensor countT = at::scalar_tensor(count, hidden.options().dtype(at::kLong));
    ctx->mark_non_differentiable({correctT, countT});
    ctx->save_for_backward({hidden, weight, labels, lse, probs});
    ctx->saved_data["ignoreIndex"] = ignoreIndex;
    ctx->saved_data["count"] = count;
    ctx->saved_data["chunkRows"] = ch.rows;
    ctx->saved_data["chunkVocab"] = ch.vocab;
    return {loss, correctT, countT};
  }

  static variable_list backward(AutogradContext* ctx, variable_list grads) {
    auto saved = ctx->get_saved_variables();
    const at::Tensor& hidden = saved[0];
    const at::Tensor& weight = saved[1];
    const at::Tensor& labels = saved[2];
    const at::Tensor& lse = saved[3];
    const at::Tensor& probs = saved[4];
    const int64_t ignoreIndex = ctx->saved_data["ignoreIndex"].toInt();
    const int64_t count = ctx->saved_data["count"].toInt();
    const Chunking ch{ctx->saved_data["chunkRows"].toInt(), ctx->saved_data["chunkVocab"].toInt()};
    const int64_t n = hidden.size(0), v = weight.size(0);
    const bool isDouble = hidden.scalar_type() == at::kDouble;
    const at::ScalarType accType = isDouble ? at::kDouble : at::kFloat;
    const bool needH = ctx->needs_input_grad(0), needW = ctx->needs_input_grad(1);
    at::Tensor dH = needH ? at::zeros(hidden.sizes(), hidden.options().dtype(accType)) : at::Tensor();
    at::Tensor dW = needW ? at::zeros(weight.sizes(), weight.options().dtype(accType)) : at::Tensor();
    if (count == 0 || !grads[0].defined() || (!needH && !needW))
      return {needH ? dH.to(hidden.scalar_type()) : at::Tensor(), needW ? dW.to(weight.scalar_type()) : at::Tensor(),
              at::Tensor(), at::Tensor(), at::Tensor()};
    const double gscale = grads[0].item<double>() / static_cast<double>(count);
    const int64_t* lab = labels.data_ptr<int64_t>();
    if (probs.defined()) {  // single block: softmax − onehot kept by forward
      at::Tensor gc = probs.mul(gscale).to(hidden.scalar_type());
      return {needH ? at::mm(gc, weight).to(hidden.scalar_type()) : at::Tensor(),
              needW ? at::mm(gc.t(), hidden).to(weight.scalar_type()) : at::Tensor(), at::Tensor(), at::Tensor(),
              at::Tensor()};
    }
    AT_DISPATCH_FLOATING_TYPES(accType, "linearCrossEntropyBackward", [&] {
      using Acc = scalar_t;
      const Acc* lp = lse.data_ptr<Acc>();
      for (int64_t r0 = 0; r0 < n; r0 += ch.rows) {
        const int64_t rows = std::min(ch.rows, n - r0);
        at::Tensor h = hidden.narrow(0, r0, rows);
        for (int64_t v0 = 0; v0 < v; v0 += ch.vocab) {
          const int64_t cols = std::min(ch.vocab, v - v0);
          at::Tensor w = weight.narrow(0, v0, cols);
          at::Tensor g = at::mm(h, w.t()).to(accType).contiguous();
          toSoftmaxGrad<Acc>(g.data_ptr<Acc>(), rows, cols, r0, v0, lab, lp, ignoreIndex, static_cast<Acc>(gscale));
          at::Tensor gc = g.to(hidden.scalar_type());
          if (needH) dH.narrow(0, r0, rows).add_(at::mm(gc, w).to(accType));
          if (needW) dW.narrow(0, v0, cols).add_(at::mm(gc.t(), h).to(accType));
        }
      }
    });
    return {needH ? dH.to(hidden.scalar_type()) : at::Tensor(), needW ? dW.to(weight.scalar_type()) : at::Tensor(),
            at::Tensor(), at::Tensor(), at::Tensor()};
  }
};

}  // namespace

void registerFusedLinearCrossEntropyOps(Registry& r) {
  using at::Tensor;
  // Returns [mean loss (0-d float32/float64), rows whose argmax equals the label, rows counted].
  r.def("fusedLinearCrossEntropy", "hidden, weight, labels, ignoreIndex, chunkElements",
        +[](const Tensor& h, const Tensor& w, const Tensor& labels, int64_t ignoreIndex, int64_t chunkElements) {
          return LinearCrossEntropyFn::apply(h, w, labels, ignoreIndex, chunkElements);
        });
}

}  // namespace moca
