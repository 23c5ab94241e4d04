// Fused attention over packed variable-length segments (flash-attention style, CPU), forward and backward.
//
// q (Nq, Hq, D), k (Nk, Hkv, D), v (Nk, Hkv, Dv): tokens of all sequences packed along dim 0, heads in dim 1
// (Hq a multiple of Hkv: grouped-query attention without repeating K/V). `segments` (S, 4) int64 lists
// [qStart, qLen, kStart, kLen]: queries qStart..qStart+qLen attend keys kStart..kStart+kLen and nothing else.
// That covers packed sequences (equal ranges), right-padded batches (queries = the whole row, keys = the real
// tokens only) and the vision tower's windows. Query rows outside every segment get 0.
//
// Scores are computed block by block (64 queries × 64 keys) with an online softmax, so no score matrix larger
// than one block exists and masked (padding) positions are never computed. `causal` restricts query i of a
// segment to keys j ≤ i (positions counted from each range's start), as a causal mask combined with right
// padding does. Backward recomputes the blocks from the saved log-sum-exp (FlashAttention-2's scheme) and
// accumulates dK/dV per (segment, KV head) work item, so threads never write the same rows.
#include <ATen/Parallel.h>
#include <torch/csrc/autograd/custom_function.h>

#include <type_traits>

#include "common.h"
#include "fused_common.h"

namespace moca {
namespace {

using torch::autograd::AutogradContext;
using torch::autograd::variable_list;

constexpr int64_t kBq = 64;  // queries per block
constexpr int64_t kBk = 64;  // keys per block

struct Segment {
  int64_t qStart, qLen, kStart, kLen;
};

void checkDisjoint(std::vector<std::pair<int64_t, int64_t>> ranges, const char* what) {
  std::sort(ranges.begin(), ranges.end());
  for (size_t i = 1; i < ranges.size(); ++i) {
    TORCH_CHECK(ranges[i].first >= ranges[i - 1].second, "flashAttention: ", what,
                " ranges of two segments overlap ([", ranges[i - 1].first, ", ", ranges[i - 1].second, ") and [",
                ranges[i].first, ", ", ranges[i].second, "))");
  }
}

struct Coverage {
  bool allQueries, allKeys;
};

// Whether the segments cover every query row / key row (then outputs need no zero fill).
Coverage coverage(const std::vector<Segment>& segs, int64_t nq, int64_t nk) {
  int64_t q = 0, k = 0;
  for (const Segment& g : segs) {
    q += g.qLen;
    k += g.kLen;
  }
  return {q == nq, k == nk};  // ranges are disjoint (checked), so the sums tell
}

std::vector<Segment> readSegments(const at::Tensor& segments, int64_t nq, int64_t nk) {
  TORCH_CHECK(segments.dim() == 2 && segments.size(1) == 4,
              "flashAttention: segments must be (S, 4) [qStart, qLen, kStart, kLen], got shape ", segments.sizes());
  TORCH_CHECK(!at::isFloatingType(segments.scalar_type()), "flashAttention: segments must be an integer tensor");
  at::Tensor s = segments.to(at::kLong).contiguous();
  const int64_t* p = s.data_ptr<int64_t>();
  std::vector<Segment> out(static_cast<size_t>(s.size(0)));
  std::vector<std::pair<int64_t, int64_t>> qr, kr;
  for (int64_t i = 0; i < s.size(0); ++i) {
    Segment g{p[4 * i], p[4 * i + 1], p[4 * i + 2], p[4 * i + 3]};
    TORCH_CHECK(g.qStart >= 0 && g.qLen >= 0 && g.qStart + g.qLen <= nq, "flashAttention: segment ", i,
                " query range [", g.qStart, ", ", g.qStart + g.qLen, ") is outside the ", nq, " query rows");
    TORCH_CHECK(g.kStart >= 0 && g.kLen >= 0 && g.kStart + g.kLen <= nk, "flashAttention: segment ", i,
                " key range [", g.kStart, ", ", g.kStart + g.kLen, ") is outside the ", nk, " key rows");
    out[static_cast<size_t>(i)] = g;
    if (g.qLen > 0) qr.emplace_back(g.qStart, g.qStart + g.qLen);
    if (g.kLen > 0) kr.emplace_back(g.kStart, g.kStart + g.kLen);
  }
  checkDisjoint(qr, "query");
  checkDisjoint(kr, "key");
  return out;
}

void checkInputs(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v) {
  TORCH_CHECK(q.dim() == 3 && k.dim() == 3 && v.dim() == 3,
              "flashAttention: q, k, v must be (tokens, heads, headDim), got ", q.sizes(), ", ", k.sizes(), ", ",
              v.sizes());
  TORCH_CHECK(q.device().is_cpu() && k.device().is_cpu() && v.device().is_cpu(),
              "flashAttention: CPU tensors only");
  TORCH_CHECK(q.scalar_type() == k.scalar_type() && q.scalar_type() == v.scalar_type(),
              "flashAttention: q, k, v must share a dtype, got ", q.scalar_type(), ", ", k.scalar_type(), ", ",
              v.scalar_type());
  TORCH_CHECK(q.size(2) == k.size(2), "flashAttention: q and k head dims differ (", q.size(2), " vs ", k.size(2),
              ")");
  TORCH_CHECK(k.size(0) == v.size(0) && k.size(1) == v.size(1), "flashAttention: k ", k.sizes(),
              " and v ", v.sizes(), " disagree in tokens or heads");
  TORCH_CHECK(k.size(1) > 0 && q.size(1) % k.size(1) == 0, "flashAttention: query heads (", q.size(1),
              ") must be a multiple of key/value heads (", k.size(1), ")");
}

at::Tensor lastDimContiguous(const at::Tensor& t) { return t.stride(2) == 1 ? t : t.contiguous(); }

// Work is split into `lanes` (one per thread); items are sorted by estimated cost and dealt round-robin, so
// that segments of very different lengths still give each thread a similar share.
template <typename Item, typename Cost, typename Fn>
void runBalanced(std::vector<Item>& items, Cost cost, Fn fn) {
  if (items.empty()) return;
  std::stable_sort(items.begin(), items.end(), [&](const Item& a, const Item& b) { return cost(a) > cost(b); });
  const int64_t n = static_cast<int64_t>(items.size());
  const int64_t lanes = std::min<int64_t>(at::get_num_threads(), n);
  at::parallel_for(0, lanes, 1, [&](int64_t begin, int64_t end) {
    for (int64_t lane = begin; lane < end; ++lane)
      for (int64_t i = lane; i < n; i += lanes) fn(items[static_cast<size_t>(i)]);
  });
}

// Rows [r0, r0 + rows) of head `head` of a (tokens, heads, dim) tensor as an Acc matrix with leading dimension
// *ld: the tensor's own memory when it already is Acc (float32 / float64 input), else converted into `buf`.
template <typename T, typename Acc>
const Acc* rowsOf(const T* base, int64_t s0, int64_t s1, int64_t r0, int64_t rows, int64_t head, int64_t dim,
                  Acc* buf, int64_t* ld) {
  const T* first = base + r0 * s0 + head * s1;
  if constexpr (std::is_same_v<T, Acc>) {
    *ld = s0;
    return first;
  } else {
    for (int64_t r = 0; r < rows; ++r) fused::loadRow(first + r * s0, buf + r * dim, dim);
    *ld = dim;
    return buf;
  }
}

// Blocks are stored keys × queries (Sᵀ = K Qᵀ), so that the softmax runs across queries in vector lanes and
// every product reads K, V, Q and dO rows in place: only Q (and dO in backward) is transposed, once per item.
template <typename T>
void flashForward(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v, const std::vector<Segment>& segs,
                  double scaleArg, bool causal, at::Tensor& out, at::Tensor& lse) {
  using Acc = fused::acc_t<T>;
  const int64_t nq = q.size(0), hq = q.size(1), d = q.size(2), dv = v.size(2);
  const int64_t group = hq / k.size(1);
  const int64_t qs0 = q.stride(0), qs1 = q.stride(1), ks0 = k.stride(0), ks1 = k.stride(1);
  const int64_t vs0 = v.stride(0), vs1 = v.stride(1);
  const T* qp = q.data_ptr<T>();
  const T* kp = k.data_ptr<T>();
  const T* vp = v.data_ptr<T>();
  T* op = out.data_ptr<T>();
  Acc* lp = lse.data_ptr<Acc>();
  const Acc scale = static_cast<Acc>(scaleArg);

  struct Item {
    int64_t seg, head, q0;
  };
  std::vector<Item> items;
  for (int64_t s = 0; s < static_cast<int64_t>(segs.size()); ++s)
    for (int64_t h = 0; h < hq; ++h)
      for (int64_t q0 = 0; q0 < segs[s].qLen; q0 += kBq) items.push_back({s, h, q0});

  auto cost = [&](const Item& it) {
    const Segment& g = segs[it.seg];
    return causal ? std::min(g.kLen, it.q0 + kBq) : g.kLen;
  };
  runBalanced(items, cost, [&](const Item& it) {
    thread_local std::vector<Acc> buf;
    const size_t need = static_cast<size_t>(kBq * d + d * kBq + kBk * d + kBk * dv + kBk * kBq + kBq * dv + 3 * kBq);
    if (buf.size() < need) buf.resize(need);
    Acc* qrows = buf.data();
    Acc* qt = qrows + kBq * d;
    Acc* kbuf = qt + d * kBq;
    Acc* vbuf = kbuf + kBk * d;
    Acc* st = vbuf + kBk * dv;
    Acc* ob = st + kBk * kBq;
    Acc* m = ob + kBq * dv;
    Acc* l = m + kBq;
    Acc* corr = l + kBq;

    const Segment& g = segs[it.seg];
    const int64_t h = it.head, hk = h / group;
    const int64_t rows = std::min(kBq, g.qLen - it.q0);
    int64_t ldq = 0;
    const Acc* qa = rowsOf<T, Acc>(qp, qs0, qs1, g.qStart + it.q0, rows, h, d, qrows, &ldq);
    fused::transpose(rows, d, qa, ldq, qt, kBq);
    std::fill(ob, ob + rows * dv, Acc(0));
    std::fill(m, m + rows, -std::numeric_limits<Acc>::infinity());
    std::fill(l, l + rows, Acc(0));
    const int64_t kEnd = causal ? std::min(g.kLen, it.q0 + rows) : g.kLen;
    for (int64_t kb = 0; kb < kEnd; kb += kBk) {
      const int64_t bk = std::min(kBk, kEnd - kb);
      int64_t ldk = 0, ldv = 0;
      const Acc* ka = rowsOf<T, Acc>(kp, ks0, ks1, g.kStart + kb, bk, hk, d, kbuf, &ldk);
      const Acc* va = rowsOf<T, Acc>(vp, vs0, vs1, g.kStart + kb, bk, hk, dv, vbuf, &ldv);
      fused::gemm(bk, rows, d, Acc(1), ka, ldk, qt, kBq, st, kBq, false);  // Sᵀ = K Qᵀ
      fused::softmaxColumns(st, bk, rows, kBq, scale, kb - it.q0, causal, m, l, corr);
      for (int64_t r = 0; r < rows; ++r)
        if (corr[r] != Acc(1)) fused::scaleRow(ob + r * dv, dv, corr[r]);
      fused::gemmTN(rows, dv, bk, Acc(1), st, kBq, va, ldv, ob, dv, true);  // O += P V
    }
    for (int64_t r = 0; r < rows; ++r) {
      const int64_t qi = g.qStart + it.q0 + r;
      T* orow = op + (qi * hq + h) * dv;
      if (l[r] > 0) {
        const Acc inv = Acc(1) / l[r];
        for (int64_t c = 0; c < dv; ++c) orow[c] = fused::fromAcc<T>(ob[r * dv + c] * inv);
        lp[h * nq + qi] = m[r] * scale + std::log(l[r]);
      } else {
        for (int64_t c = 0; c < dv; ++c) orow[c] = fused::fromAcc<T>(Acc(0));
        lp[h * nq + qi] = -std::numeric_limits<Acc>::infinity();
      }
    }
  });
}

template <typename T>
void flashBackward(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v, const at::Tensor& out,
                   const at::Tensor& dout, const at::Tensor& lse, const std::vector<Segment>& segs, double scaleArg,
                   bool causal, at::Tensor& dq, at::Tensor& dk, at::Tensor& dvOut) {
  using Acc = fused::acc_t<T>;
  const int64_t nq = q.size(0), hq = q.size(1), d = q.size(2), dv = v.size(2);
  const int64_t hkv = k.size(1), group = hq / hkv;
  const int64_t qs0 = q.stride(0), qs1 = q.stride(1), ks0 = k.stride(0), ks1 = k.stride(1);
  const int64_t vs0 = v.stride(0), vs1 = v.stride(1);
  const int64_t os0 = out.stride(0), os1 = out.stride(1), gs0 = dout.stride(0), gs1 = dout.stride(1);
  const T* qp = q.data_ptr<T>();
  const T* kp = k.data_ptr<T>();
  const T* vp = v.data_ptr<T>();
  const T* opp = out.data_ptr<T>();
  const T* gp = dout.data_ptr<T>();
  const Acc* lp = lse.data_ptr<Acc>();
  T* dqp = dq.data_ptr<T>();
  T* dkp = dk.data_ptr<T>();
  T* dvp = dvOut.data_ptr<T>();
  const Acc scale = static_cast<Acc>(scaleArg);

  struct Item {
    int64_t seg, kvHead;
  };
  std::vector<Item> items;
  for (int64_t s = 0; s < static_cast<int64_t>(segs.size()); ++s)
    if (segs[s].qLen > 0 && segs[s].kLen > 0)
      for (int64_t h = 0; h < hkv; ++h) items.push_back({s, h});

  auto cost = [&](const Item& it) { return segs[it.seg].qLen * segs[it.seg].kLen; };
  runBalanced(items, cost, [&](const Item& it) {
    const Segment& g = segs[it.seg];
    const int64_t hk = it.kvHead, n = g.qLen;
    auto vec = [](int64_t size) { return std::vector<Acc>(static_cast<size_t>(size)); };
    std::vector<Acc> dqAcc = vec(n * d), dkAcc(static_cast<size_t>(g.kLen * d), Acc(0)),
                     dvAcc(static_cast<size_t>(g.kLen * dv), Acc(0)), di = vec(n), lrow = vec(n), qt = vec(d * n),
                     gt = vec(dv * n), qrows = vec(std::is_same_v<T, Acc> ? 0 : n * d),
                     grows = vec(std::is_same_v<T, Acc> ? 0 : n * dv), kbuf = vec(kBk * d), vbuf = vec(kBk * dv),
                     pt = vec(kBk * kBq), dst = vec(kBk * kBq);

    for (int64_t hh = 0; hh < group; ++hh) {
      const int64_t h = hk * group + hh;
      for (int64_t i = 0; i < n; ++i) {
        const int64_t qi = g.qStart + i;
        Acc s = 0;
        const T* orow = opp + qi * os0 + h * os1;
        const T* grow = gp + qi * gs0 + h * gs1;
        for (int64_t c = 0; c < dv; ++c) s += fused::toAcc<Acc>(orow[c]) * fused::toAcc<Acc>(grow[c]);
        di[i] = s;
        lrow[i] = lp[h * nq + qi];
      }
      int64_t ldq = 0, ldg = 0;
      const Acc* qa = rowsOf<T, Acc>(qp, qs0, qs1, g.qStart, n, h, d, qrows.data(), &ldq);
      const Acc* ga = rowsOf<T, Acc>(gp, gs0, gs1, g.qStart, n, h, dv, grows.data(), &ldg);
      fused::transpose(n, d, qa, ldq, qt.data(), n);
      fused::transpose(n, dv, ga, ldg, gt.data(), n);
      std::fill(dqAcc.begin(), dqAcc.end(), Acc(0));
      for (int64_t kb = 0; kb < g.kLen; kb += kBk) {
        if (causal && kb >= n) break;  // no query reaches these keys
        const int64_t bk = std::min(kBk, g.kLen - kb);
        int64_t ldk = 0, ldv = 0;
        const Acc* ka = rowsOf<T, Acc>(kp, ks0, ks1, g.kStart + kb, bk, hk, d, kbuf.data(), &ldk);
        const Acc* va = rowsOf<T, Acc>(vp, vs0, vs1, g.kStart + kb, bk, hk, dv, vbuf.data(), &ldv);
        const int64_t qFirst = causal ? (kb / kBq) * kBq : 0;
        for (int64_t q0 = qFirst; q0 < n; q0 += kBq) {
          const int64_t rows = std::min(kBq, n - q0);
          // Pᵀ = exp(K Qᵀ · scale − lse)
          fused::gemm(bk, rows, d, Acc(1), ka, ldk, qt.data() + q0, n, pt.data(), kBq, false);
          fused::probColumns(pt.data(), bk, rows, kBq, scale, lrow.data() + q0, kb - q0, causal);
          // dV += Pᵀ dO
          fused::gemm(bk, dv, rows, Acc(1), pt.data(), kBq, ga + q0 * ldg, ldg, dvAcc.data() + kb * dv, dv, true);
          // dSᵀ = Pᵀ ∘ (V dOᵀ − D)
          fused::gemm(bk, rows, dv, Acc(1), va, ldv, gt.data() + q0, n, dst.data(), kBq, false);
          fused::dsColumns(dst.data(), pt.data(), bk, rows, kBq, di.data() + q0);
          // dQ += scale · dS K ; dK += scale · dSᵀ Q
          fused::gemmTN(rows, d, bk, scale, dst.data(), kBq, ka, ldk, dqAcc.data() + q0 * d, d, true);
          fused::gemm(bk, d, rows, scale, dst.data(), kBq, qa + q0 * ldq, ldq, dkAcc.data() + kb * d, d, true);
        }
      }
      for (int64_t i = 0; i < n; ++i)
        fused::storeRow(dqAcc.data() + i * d, dqp + ((g.qStart + i) * hq + h) * d, d);
    }
    for (int64_t j = 0; j < g.kLen; ++j) {
      fused::storeRow(dkAcc.data() + j * d, dkp + ((g.kStart + j) * hkv + hk) * d, d);
      fused::storeRow(dvAcc.data() + j * dv, dvp + ((g.kStart + j) * hkv + hk) * dv, dv);
    }
  });
}

std::tuple<at::Tensor, at::Tensor> forwardImpl(const at::Tensor& q0, const at::Tensor& k0, const at::Tensor& v0,
                                               const std::vector<Segment>& segs, double scale, bool causal) {
  at::Tensor q = lastDimContiguous(q0), k = lastDimContiguous(k0), v = lastDimContiguous(v0);
  const Coverage cov = coverage(segs, q.size(0), k.size(0));
  at::Tensor out = cov.allQueries ? at::empty({q.size(0), q.size(1), v.size(2)}, q.options())
                                  : at::zeros({q.size(0), q.size(1), v.size(2)}, q.options());
  at::ScalarType lseType = q.scalar_type() == at::kDouble ? at::kDouble : at::kFloat;
  at::Tensor lse = at::full({q.size(1), q.size(0)}, -std::numeric_limits<double>::infinity(),
                            q.options().dtype(lseType));
  MOCA_DISPATCH_FUSED(q.scalar_type(), "flashAttention", [&] {
    flashForward<scalar_t>(q, k, v, segs, scale, causal, out, lse);
  });
  return {out, lse};
}

struct FlashAttentionFn : public torch::autograd::Function<FlashAttentionFn> {
  static at::Tensor forward(AutogradContext* ctx, const at::Tensor& q, const at::Tensor& k, const at::Tensor& v,
                            const at::Tensor& segments, double scale, bool causal) {
    checkInputs(q, k, v);
    auto segs = readSegments(segments, q.size(0), k.size(0));
    auto [out, lse] = forwardImpl(q, k, v, segs, scale, causal);
    ctx->save_for_backward({q, k, v, out, lse, segments});
    ctx->saved_data["scale"] = scale;
    ctx->saved_data["causal"] = causal;
    return out;
  }

  static variable_list backward(AutogradContext* ctx, variable_list grads) {
    auto saved = ctx->get_saved_variables();
    at::Tensor q = lastDimContiguous(saved[0]), k = lastDimContiguous(saved[1]), v = lastDimContiguous(saved[2]);
    const at::Tensor& out = saved[3];
    const at::Tensor& lse = saved[4];
    auto segs = readSegments(saved[5], q.size(0), k.size(0));
    const double scale = ctx->saved_data["scale"].toDouble();
    const bool causal = ctx->saved_data["causal"].toBool();
    at::Tensor dout = grads[0].defined() ? lastDimContiguous(grads[0].to(out.scalar_type())) : at::zeros_like(out);
    // Rows of segments with no keys (or no queries) are not visited by the kernel: zero-fill unless every
    // segment has both.
    bool allVisited = true;
    for (const Segment& g : segs) allVisited = allVisited && g.qLen > 0 && g.kLen > 0;
    const Coverage cov = coverage(segs, q.size(0), k.size(0));
    auto make = [&](const at::Tensor& like, bool covered) {
      return covered && allVisited ? at::empty(like.sizes(), like.options()) : at::zeros(like.sizes(), like.options());
    };
    at::Tensor dq = make(q, cov.allQueries);
    at::Tensor dk = make(k, cov.allKeys);
    at::Tensor dv = make(v, cov.allKeys);
    MOCA_DISPATCH_FUSED(q.scalar_type(), "flashAttentionBackward", [&] {
      flashBackward<scalar_t>(q, k, v, out, dout, lse, segs, scale, causal, dq, dk, dv);
    });
    return {dq, dk, dv, at::Tensor(), at::Tensor(), at::Tensor()};
  }
};

}  // namespace

void registerFusedAttentionOps(Registry& r) {
  using at::Tensor;
  r.def("flashAttention", "q, k, v, segments, scale, causal",
        +[](const Tensor& q, const Tensor& k, const Tensor& v, const Tensor& segments, double scale, bool causal) {
          return FlashAttentionFn::apply(q, k, v, segments, scale, causal);
        });
  // Forward only, also returning the log-sum-exp (heads, queries): for tests and inference callers.
  r.def("flashAttentionWithLse", "q, k, v, segments, scale, causal",
        +[](const Tensor& q, const Tensor& k, const Tensor& v, const Tensor& segments, double scale, bool causal) {
          checkInputs(q, k, v);
          auto segs = readSegments(segments, q.size(0), k.size(0));
          at::NoGradGuard noGrad;
          return forwardImpl(q, k, v, segs, scale, causal);
        });
  r.def("fusedKernelsName", "", +[]() { return std::string(kern::kernels().name); });
}

}  // namespace moca
