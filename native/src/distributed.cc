// Data-parallel training on libtorch's c10d: TCPStore rendezvous, process groups (Gloo on CPU; NCCL when the
// binding is built against a CUDA libtorch that ships nccl.h), collectives with asynchronous work handles, and a
// bucketed gradient reducer that starts all-reduces from autograd hooks while backward is still running.
//
// Nothing here reimplements communication: every collective is a c10d call; this file only exposes handles.
//
// Handles (opaque JS objects, type-tagged and napi_wrap-ped to a shared_ptr):
//   NativeStore         a c10d::Store (TCPStore, wrapped in a PrefixStore per process group)
//   NativeProcessGroup  a c10d ProcessGroupGloo / ProcessGroupNCCL with its rank, size, backend and timeout
//   NativeWork          one or more c10d::Work plus an optional completion step (e.g. the division of 'avg')
//   NativeReducer       the gradient reducer (see ReducerState)
//
// Waiting: `workWait` returns a Promise and waits on a libuv pool thread, so the event loop keeps running (signal
// handlers, timers); `workWaitSync` blocks the calling thread (for synchronous code such as a loss function).
// Errors (a peer that exited or was killed, a timeout, bad tensors) become JS Errors carrying c10d's message.
//
// Gloo has no AVG reduction: 'avg' is a SUM followed by a division by the group size when the work completes.

// ProcessGroupGloo.hpp and ProcessGroupNCCL.hpp are compiled only under these defines (as in PyTorch's build).
// Gloo needs its headers (Debian: libgloo-dev; libtorch carries the library). NCCL needs a CUDA libtorch
// (MOCA_WITH_CUDA, see binding.gyp), nccl.h and the CUDA toolkit's headers on the include path (e.g.
// CPLUS_INCLUDE_PATH=/usr/local/cuda/include); otherwise the binding builds without it and says so at run time.
#if __has_include(<gloo/context.h>)
#define USE_C10D_GLOO 1
#define MOCA_WITH_GLOO 1
#endif
#if defined(MOCA_WITH_CUDA) && __has_include(<nccl.h>) && __has_include(<cuda_runtime_api.h>)
#define USE_C10D_NCCL 1
#define MOCA_WITH_NCCL 1
#endif

#include <c10/core/GradMode.h>
#include <torch/csrc/api/include/torch/version.h>
#include <torch/csrc/autograd/function.h>
#include <torch/csrc/autograd/utils/lambda_post_hook.h>
#include <torch/csrc/autograd/variable.h>
#include <torch/csrc/distributed/c10d/PrefixStore.hpp>
#include <torch/csrc/distributed/c10d/TCPStore.hpp>
#include <torch/csrc/distributed/c10d/Work.hpp>
#ifdef MOCA_WITH_GLOO
#include <torch/csrc/distributed/c10d/ProcessGroupGloo.hpp>
#endif
#ifdef MOCA_WITH_NCCL
#include <torch/csrc/distributed/c10d/ProcessGroupNCCL.hpp>
#endif

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdlib>
#include <functional>
#include <mutex>
#include <sstream>

#include "common.h"

namespace moca {

// In libtorch 2.x the backends (Gloo, NCCL) derive from c10d::Backend; in 1.13 from c10d::ProcessGroup. Both
// bases declare the same collectives.
#if TORCH_VERSION_MAJOR >= 2
using CollectiveBackend = c10d::Backend;
#else
using CollectiveBackend = c10d::ProcessGroup;
#endif

namespace {

using Millis = std::chrono::milliseconds;

// ---------------------------------------------------------------------------------------------------------
// Handle boxes

struct StoreBox {
  c10::intrusive_ptr<c10d::Store> store;
};

struct GroupBox {
  c10::intrusive_ptr<c10d::Store> store;
  c10::intrusive_ptr<CollectiveBackend> pg;
  std::string backend;
  int rank = 0;
  int size = 1;
  Millis timeout{0};
  std::atomic<bool> destroyed{false};

  CollectiveBackend& get(const char* op) const {
    if (destroyed.load() || !pg) throw std::runtime_error(std::string(op) + ": the process group was destroyed");
    return *pg;
  }
};

// One or more c10d works seen from JS as a single handle, with an optional step run once after all completed.
struct WorkBox {
  std::vector<c10::intrusive_ptr<c10d::Work>> works;
  std::function<void()> then;
  std::string what;
  Millis timeout{0};
  std::mutex mu;
  bool finished = false;
  std::exception_ptr error;

  void wait() {
    std::lock_guard<std::mutex> lock(mu);
    if (finished) {
      if (error) std::rethrow_exception(error);
      return;
    }
    try {
      for (auto& w : works) w->wait(timeout);
      if (then) {
        c10::AutoGradMode noGrad(false);
        then();
      }
    } catch (...) {
      error = std::current_exception();
      finished = true;
      throw;
    }
    finished = true;
  }

  bool completed() {
    for (auto& w : works)
      if (!w->isCompleted()) return false;
    return true;
  }
};

struct ReducerState;

template <typename T>
struct HandleTraits;

template <>
struct HandleTraits<StoreBox> {
  static constexpr napi_type_tag tag = {0x6d6f63615f647374ULL, 0x73746f7265303031ULL};
  static constexpr const char* ts = "NativeStore";
  static constexpr const char* what = "a store handle";
};
template <>
struct HandleTraits<GroupBox> {
  static constexpr napi_type_tag tag = {0x6d6f63615f647374ULL, 0x67726f7570303031ULL};
  static constexpr const char* ts = "NativeProcessGroup";
  static constexpr const char* what = "a process-group handle";
};
template <>
struct HandleTraits<WorkBox> {
  static constexpr napi_type_tag tag = {0x6d6f63615f647374ULL, 0x776f726b30303031ULL};
  static constexpr const char* ts = "NativeWork";
  static constexpr const char* what = "a work handle";
};
template <>
struct HandleTraits<ReducerState> {
  static constexpr napi_type_tag tag = {0x6d6f63615f647374ULL, 0x7265647563723031ULL};
  static constexpr const char* ts = "NativeReducer";
  static constexpr const char* what = "a reducer handle";
};

template <typename T>
Napi::Value wrapHandle(Napi::Env env, std::shared_ptr<T> p) {
  Napi::Object obj = Napi::Object::New(env);
  obj.TypeTag(&HandleTraits<T>::tag);
  auto* holder = new std::shared_ptr<T>(std::move(p));
  napi_status status = napi_wrap(
      env, obj, holder, [](napi_env, void* data, void*) { delete static_cast<std::shared_ptr<T>*>(data); }, nullptr,
      nullptr);
  if (status != napi_ok) {
    delete holder;
    throw Napi::Error::New(env, "internal error: could not attach a native object to its handle");
  }
  return obj;
}

template <typename T>
std::shared_ptr<T> unwrapHandle(const Napi::Value& v, const char* op, const std::string& argName) {
  if (!v.IsObject() || !v.As<Napi::Object>().CheckTypeTag(&HandleTraits<T>::tag)) {
    throw Napi::TypeError::New(v.Env(), std::string(op) + ": argument '" + argName + "' must be " +
                                            HandleTraits<T>::what);
  }
  void* data = nullptr;
  if (napi_unwrap(v.Env(), v, &data) != napi_ok || data == nullptr)
    throw Napi::Error::New(v.Env(), std::string(op) + ": argument '" + argName + "' was released");
  return *static_cast<std::shared_ptr<T>*>(data);
}

}  // namespace

// Typed arguments and results for the handles, so that Registry::def converts and documents them.
template <typename T>
struct Arg<std::shared_ptr<T>, std::void_t<decltype(HandleTraits<T>::ts)>> {
  static constexpr const char* ts = HandleTraits<T>::ts;
  static std::shared_ptr<T> get(const Napi::Value& v, const ArgContext& ctx) {
    return unwrapHandle<T>(v, ctx.op, ctx.argName);
  }
};
template <typename T>
struct Ret<std::shared_ptr<T>> {
  static constexpr const char* ts = HandleTraits<T>::ts;
  static Napi::Value make(Napi::Env env, std::shared_ptr<T> p) { return wrapHandle<T>(env, std::move(p)); }
};

namespace {

// ---------------------------------------------------------------------------------------------------------
// Helpers

c10d::ReduceOp::RedOpType parseReduceOp(const std::string& op) {
  if (op == "sum" || op == "avg") return c10d::ReduceOp::SUM;  // avg: SUM, then a division (see the header)
  if (op == "product") return c10d::ReduceOp::PRODUCT;
  if (op == "min") return c10d::ReduceOp::MIN;
  if (op == "max") return c10d::ReduceOp::MAX;
  TORCH_CHECK(false, "unknown reduce op '", op, "' (expected sum, avg, product, min or max)");
  return c10d::ReduceOp::SUM;  // unreachable
}

void checkCollectiveTensor(const at::Tensor& t, const GroupBox& g, const char* what) {
  TORCH_CHECK(t.defined(), what, ": undefined tensor");
  TORCH_CHECK(t.layout() == at::kStrided, what, ": only dense tensors can be communicated");
  TORCH_CHECK(t.is_contiguous(), what, ": the tensor must be contiguous (call .contiguous() first)");
  if (g.backend == "nccl") {
    TORCH_CHECK(t.is_cuda(), what, ": the nccl backend communicates CUDA tensors, got a ", t.device(), " tensor");
  } else {
    TORCH_CHECK(t.is_cpu(), what, ": the gloo backend of this build communicates CPU tensors, got a ", t.device(),
                " tensor");
  }
}

std::shared_ptr<WorkBox> makeWork(const GroupBox& g, const char* what, c10::intrusive_ptr<c10d::Work> w) {
  auto box = std::make_shared<WorkBox>();
  box->works.push_back(std::move(w));
  box->what = what;
  // The backend's own timeout ends a stuck collective with its message; the margin lets that message win.
  box->timeout = g.timeout.count() > 0 ? g.timeout + Millis(5000) : Millis(0);
  return box;
}

std::string describeException(std::exception_ptr e) {
  try {
    std::rethrow_exception(e);
  } catch (const c10::Error& err) {
    return err.what_without_backtrace();
  } catch (const std::exception& err) {
    return err.what();
  } catch (...) {
    return "unknown native error";
  }
}

// Runs `fn` on a libuv pool thread and settles a Promise with `done(env)` (on the JS thread) or the error.
class PromiseWorker : public Napi::AsyncWorker {
 public:
  PromiseWorker(Napi::Env env, std::string op, std::function<void()> fn, std::function<Napi::Value(Napi::Env)> done)
      : Napi::AsyncWorker(env, "moca-distributed"),
        deferred_(Napi::Promise::Deferred::New(env)),
        op_(std::move(op)),
        fn_(std::move(fn)),
        done_(std::move(done)) {}

  Napi::Promise promise() { return deferred_.Promise(); }

  void Execute() override {
    try {
      fn_();
    } catch (...) {
      SetError(op_ + ": " + describeException(std::current_exception()));
    }
  }
  void OnOK() override {
    Napi::HandleScope scope(Env());
    try {
      deferred_.Resolve(done_(Env()));
    } catch (const Napi::Error& e) {
      deferred_.Reject(e.Value());
    }
  }
  void OnError(const Napi::Error& e) override {
    Napi::HandleScope scope(Env());
    deferred_.Reject(e.Value());
  }

 private:
  Napi::Promise::Deferred deferred_;
  std::string op_;
  std::function<void()> fn_;
  std::function<Napi::Value(Napi::Env)> done_;
};

// ---------------------------------------------------------------------------------------------------------
// Store and process group creation (both block until the peers arrive: run off the JS thread)

Napi::Value tcpStoreCreate(const Napi::CallbackInfo& info) {
  // tcpStoreCreate(host, port, isServer, worldSize, timeoutMs): Promise<NativeStore>
  Napi::Env env = info.Env();
  const char* op = "tcpStoreCreate";
  std::string n0 = "host", n1 = "port", n2 = "isServer", n3 = "worldSize", n4 = "timeoutMs";
  std::string host = Arg<std::string>::get(info[0], ArgContext{op, n0, 0});
  int64_t port = Arg<int64_t>::get(info[1], ArgContext{op, n1, 1});
  bool isServer = Arg<bool>::get(info[2], ArgContext{op, n2, 2});
  int64_t worldSize = Arg<int64_t>::get(info[3], ArgContext{op, n3, 3});
  int64_t timeoutMs = Arg<int64_t>::get(info[4], ArgContext{op, n4, 4});
  if (port < 1 || port > 65535) throw Napi::RangeError::New(env, "tcpStoreCreate: port must lie in 1…65535");
  if (worldSize < 1) throw Napi::RangeError::New(env, "tcpStoreCreate: worldSize must be ≥ 1");
  auto result = std::make_shared<StoreBox>();
  auto* worker = new PromiseWorker(
      env, op,
      [=]() {
        c10d::TCPStoreOptions o;
        o.port = static_cast<std::uint16_t>(port);
        o.isServer = isServer;
        o.numWorkers = static_cast<std::size_t>(worldSize);
        // The server does not wait for the clients here: the process group's rendezvous does, with its timeout.
        o.waitWorkers = false;
        o.timeout = Millis(timeoutMs);
        result->store = c10::make_intrusive<c10d::TCPStore>(host, o);
      },
      [result](Napi::Env e) { return wrapHandle<StoreBox>(e, result); });
  auto promise = worker->promise();
  worker->Queue();
  return promise;
}

Napi::Value processGroupCreate(const Napi::CallbackInfo& info) {
  // processGroupCreate(store, prefix, backend, rank, size, timeoutMs, hostname, iface): Promise<NativeProcessGroup>
  Napi::Env env = info.Env();
  const char* op = "processGroupCreate";
  std::string n[] = {"store", "prefix", "backend", "rank", "size", "timeoutMs", "hostname", "iface"};
  auto store = unwrapHandle<StoreBox>(info[0], op, n[0]);
  std::string prefix = Arg<std::string>::get(info[1], ArgContext{op, n[1], 1});
  std::string backend = Arg<std::string>::get(info[2], ArgContext{op, n[2], 2});
  int64_t rank = Arg<int64_t>::get(info[3], ArgContext{op, n[3], 3});
  int64_t size = Arg<int64_t>::get(info[4], ArgContext{op, n[4], 4});
  int64_t timeoutMs = Arg<int64_t>::get(info[5], ArgContext{op, n[5], 5});
  std::string hostname = Arg<std::string>::get(info[6], ArgContext{op, n[6], 6});
  std::string iface = Arg<std::string>::get(info[7], ArgContext{op, n[7], 7});
  if (size < 1 || rank < 0 || rank >= size)
    throw Napi::RangeError::New(env, "processGroupCreate: rank " + std::to_string(rank) + " is outside a group of " +
                                         std::to_string(size));
  if (timeoutMs <= 0) throw Napi::RangeError::New(env, "processGroupCreate: timeoutMs must be positive");
#ifndef MOCA_WITH_GLOO
  if (backend == "gloo")
    throw Napi::Error::New(env,
                           "processGroupCreate: this build of the binding has no Gloo backend (the gloo headers were "
                           "missing at build time: install libgloo-dev and rebuild with `npm run build:native`)");
#endif
#ifndef MOCA_WITH_NCCL
  if (backend == "nccl")
    throw Napi::Error::New(env,
                           "processGroupCreate: this build of the binding has no NCCL backend (build against a CUDA "
                           "libtorch with LIBTORCH=…, with nccl.h and the CUDA toolkit headers on the include path)");
#endif
  if (backend != "gloo" && backend != "nccl")
    throw Napi::Error::New(env, "processGroupCreate: unknown backend '" + backend + "' (expected gloo or nccl)");

  auto group = std::make_shared<GroupBox>();
  group->backend = backend;
  group->rank = static_cast<int>(rank);
  group->size = static_cast<int>(size);
  group->timeout = Millis(timeoutMs);
  auto baseStore = store->store;
  auto* worker = new PromiseWorker(
      env, op,
      [=]() {
        auto prefixed = c10::make_intrusive<c10d::PrefixStore>(prefix, baseStore);
        group->store = prefixed;
#ifdef MOCA_WITH_GLOO
        if (backend == "gloo") {
          auto options = c10d::ProcessGroupGloo::Options::create(Millis(timeoutMs));
          if (!iface.empty()) {
            std::stringstream names(iface);
            std::string name;
            while (std::getline(names, name, ','))
              if (!name.empty()) options->devices.push_back(c10d::ProcessGroupGloo::createDeviceForInterface(name));
          } else if (!hostname.empty()) {
            options->devices.push_back(c10d::ProcessGroupGloo::createDeviceForHostname(hostname));
          } else {
            options->devices.push_back(c10d::ProcessGroupGloo::createDefaultDevice());
          }
          options->threads = 2;
          group->pg = c10::make_intrusive<c10d::ProcessGroupGloo>(prefixed, static_cast<int>(rank),
                                                                  static_cast<int>(size), options);
        }
#endif
#ifdef MOCA_WITH_NCCL
        if (backend == "nccl") {
          auto options = c10d::ProcessGroupNCCL::Options::create();
          options->timeout = Millis(timeoutMs);
          group->pg = c10::make_intrusive<c10d::ProcessGroupNCCL>(prefixed, static_cast<int>(rank),
                                                                  static_cast<int>(size), options);
        }
#endif
        TORCH_CHECK(group->pg, "backend '", backend, "' is not available in this build");
      },
      [group](Napi::Env e) { return wrapHandle<GroupBox>(e, group); });
  auto promise = worker->promise();
  worker->Queue();
  return promise;
}

Napi::Value storeGet(const Napi::CallbackInfo& info) {
  // storeGet(store, key): Promise<Buffer> — waits (up to the store's timeout) until the key is set.
  Napi::Env env = info.Env();
  std::string n0 = "store", n1 = "key";
  auto store = unwrapHandle<StoreBox>(info[0], "storeGet", n0);
  std::string key = Arg<std::string>::get(info[1], ArgContext{"storeGet", n1, 1});
  auto value = std::make_shared<std::vector<uint8_t>>();
  auto* worker = new PromiseWorker(
      env, "storeGet", [=]() { *value = store->store->get(key); },
      [value](Napi::Env e) -> Napi::Value { return Napi::Buffer<uint8_t>::Copy(e, value->data(), value->size()); });
  auto promise = worker->promise();
  worker->Queue();
  return promise;
}

Napi::Value workWait(const Napi::CallbackInfo& info) {
  // workWait(work): Promise<void>, settled off the JS thread.
  Napi::Env env = info.Env();
  std::string n0 = "work";
  auto box = unwrapHandle<WorkBox>(info[0], "workWait", n0);
  auto* worker = new PromiseWorker(
      env, box->what, [box]() { box->wait(); }, [](Napi::Env e) { return e.Undefined(); });
  auto promise = worker->promise();
  worker->Queue();
  return promise;
}

// ---------------------------------------------------------------------------------------------------------
// The gradient reducer
//
// Parameters are grouped into buckets (reverse parameter order, which is roughly the order in which backward
// produces their gradients; one dtype per bucket; the first bucket small so that communication starts early, as
// in PyTorch's DDP). While *armed*, a post-hook on each parameter's AccumulateGrad node marks the parameter ready;
// when every parameter of a bucket is ready, its gradients are copied into the bucket's flat buffer and an async
// SUM all-reduce starts — while backward continues with the layers below. Buckets are always launched in index
// order, so every rank issues the same sequence of collectives even when its gradients arrive in another order.
// `flush` launches whatever was not launched during backward (parameters without a gradient contribute zeros)
// plus one all-reduce of a per-parameter "has a gradient" count, and returns a work covering all of them;
// `apply(scale)` then writes `scale · sum` into every parameter that had a gradient on some rank, and leaves the
// others without one (as a single process would: AdamW then skips them).
//
// The initial bucket order is reverse parameter order. As PyTorch's DDP does after its first iteration, the
// trainer can then `rebuild` the buckets in the order in which rank 0's gradients actually became ready
// (`readyOrder`; parameters without a gradient last), so that a parameter used late in backward — or not at all
// in a micro-batch, such as the vision tower on text-only data — does not hold back the buckets after it.
//
// Hooks hold a weak reference to the state, and `destroy` removes them.

struct ReducerState {
  struct Bucket {
    std::vector<size_t> members;
    std::vector<int64_t> offsets;
    int64_t numel = 0;
    at::Tensor buffer;
    size_t pending = 0;
    bool launched = false;
    c10::intrusive_ptr<c10d::Work> work;
  };

  std::shared_ptr<GroupBox> group;
  std::vector<at::Tensor> params;
  std::vector<std::shared_ptr<torch::autograd::Node>> accumulators;
  std::vector<uintptr_t> hookKeys;
  std::vector<Bucket> buckets;
  std::vector<size_t> bucketOf;
  std::vector<char> ready;
  std::vector<int64_t> readyOrder;
  std::vector<float> hadGrad;
  int64_t bucketCap = 0;
  int64_t firstBucketCap = 0;
  at::Tensor presence;
  c10::intrusive_ptr<c10d::Work> presenceWork;
  std::mutex mu;
  bool armed = false;
  bool flushed = false;
  size_t nextLaunch = 0;
  int64_t launchedDuringBackward = 0;
  int64_t launchedTotal = 0;
  std::string error;

  void onGradReady(size_t i) {
    std::lock_guard<std::mutex> lock(mu);
    if (!armed || ready[i]) return;
    ready[i] = 1;
    readyOrder.push_back(static_cast<int64_t>(i));
    Bucket& b = buckets[bucketOf[i]];
    if (b.pending > 0) --b.pending;
    try {
      while (nextLaunch < buckets.size() && buckets[nextLaunch].pending == 0) {
        launch(nextLaunch++);
        ++launchedDuringBackward;
      }
    } catch (...) {
      // Exceptions must not escape into the autograd engine from here: reported by flush().
      error = describeException(std::current_exception());
      armed = false;
    }
  }

  void launch(size_t bi) {
    c10::AutoGradMode noGrad(false);
    Bucket& b = buckets[bi];
    for (size_t k = 0; k < b.members.size(); ++k) {
      size_t j = b.members[k];
      const at::Tensor& g = params[j].grad();
      auto slice = b.buffer.narrow(0, b.offsets[k], params[j].numel());
      if (g.defined()) {
        TORCH_CHECK(g.layout() == at::kStrided, "parameter ", j, " has a sparse gradient (not supported)");
        slice.copy_(g.reshape({-1}));
        hadGrad[j] = 1.0f;
      } else {
        slice.zero_();
        hadGrad[j] = 0.0f;
      }
    }
    std::vector<at::Tensor> ts{b.buffer};
    c10d::AllreduceOptions opts;
    opts.reduceOp = c10d::ReduceOp::SUM;
    b.work = group->get("reducer").allreduce(ts, opts);
    b.launched = true;
    ++launchedTotal;
  }

  std::shared_ptr<WorkBox> flush() {
    std::lock_guard<std::mutex> lock(mu);
    armed = false;
    if (!error.empty()) {
      std::string e = error;
      error.clear();
      TORCH_CHECK(false, "gradient all-reduce failed to start during backward: ", e);
    }
    TORCH_CHECK(!flushed, "reducerFlush: already flushed; call reducerApply first");
    while (nextLaunch < buckets.size()) launch(nextLaunch++);
    {
      c10::AutoGradMode noGrad(false);
      presence.copy_(at::from_blob(hadGrad.data(), {static_cast<int64_t>(hadGrad.size())}, at::kFloat));
      std::vector<at::Tensor> ts{presence};
      presenceWork = group->get("reducer").allreduce(ts);
    }
    flushed = true;
    auto box = std::make_shared<WorkBox>();
    box->what = "gradient all-reduce";
    box->timeout = group->timeout.count() > 0 ? group->timeout + Millis(5000) : Millis(0);
    for (auto& b : buckets) box->works.push_back(b.work);
    box->works.push_back(presenceWork);
    return box;
  }

  void apply(double scale) {
    std::lock_guard<std::mutex> lock(mu);
    TORCH_CHECK(flushed, "reducerApply: call reducerFlush and wait for its work first");
    for (auto& b : buckets)
      TORCH_CHECK(b.work && b.work->isCompleted(), "reducerApply: the gradient all-reduce has not completed");
    TORCH_CHECK(presenceWork->isCompleted(), "reducerApply: the gradient all-reduce has not completed");
    c10::AutoGradMode noGrad(false);
    at::Tensor counts = presence.to(at::kCPU).contiguous();
    const float* c = counts.data_ptr<float>();
    for (auto& b : buckets) {
      for (size_t k = 0; k < b.members.size(); ++k) {
        size_t j = b.members[k];
        at::Tensor& p = params[j];
        at::Tensor& g = p.mutable_grad();
        if (c[j] <= 0.0f) {
          g = at::Tensor();  // no rank produced a gradient for it
          continue;
        }
        auto reduced = b.buffer.narrow(0, b.offsets[k], p.numel()).view(p.sizes());
        if (!g.defined()) {
          g = reduced.mul(scale);
        } else {
          g.copy_(reduced);
          if (scale != 1.0) g.mul_(scale);
        }
      }
      b.work.reset();
      b.launched = false;
      b.pending = b.members.size();
    }
    presenceWork.reset();
    std::fill(ready.begin(), ready.end(), 0);
    nextLaunch = 0;
    flushed = false;
  }

  void arm() {
    std::lock_guard<std::mutex> lock(mu);
    TORCH_CHECK(!flushed, "reducerArm: the previous flush was not applied");
    armed = true;
    readyOrder.clear();
  }

  // Forms the buckets by walking `order` (a permutation of the parameter indices): one open bucket per dtype,
  // closed when it reaches the cap (the first bucket's cap is smaller); leftovers follow in order of first member.
  void assignBuckets(const std::vector<int64_t>& order) {
    const size_t n = params.size();
    TORCH_CHECK(order.size() == n, "reducer: the bucket order must list all ", n, " parameters");
    std::vector<char> seen(n, 0);
    for (int64_t i : order) {
      TORCH_CHECK(i >= 0 && static_cast<size_t>(i) < n && !seen[i], "reducer: the bucket order is not a permutation");
      seen[i] = 1;
    }
    std::unordered_map<int, Bucket> open;
    std::unordered_map<int, size_t> openRank;  // position in `order` of the bucket's first member
    std::vector<std::pair<size_t, Bucket>> closed;
    bool first = true;
    for (size_t pos = 0; pos < n; ++pos) {
      size_t i = static_cast<size_t>(order[pos]);
      int key = static_cast<int>(params[i].scalar_type());
      auto& b = open[key];
      if (b.members.empty()) openRank[key] = pos;
      b.members.push_back(i);
      b.offsets.push_back(b.numel);
      b.numel += params[i].numel();
      int64_t bytes = b.numel * static_cast<int64_t>(params[i].element_size());
      if (bytes >= (first ? firstBucketCap : bucketCap)) {
        closed.emplace_back(openRank[key], std::move(b));
        open.erase(key);
        first = false;
      }
    }
    std::vector<std::pair<size_t, Bucket>> rest;
    for (auto& kv : open) rest.emplace_back(openRank[kv.first], std::move(kv.second));
    std::sort(rest.begin(), rest.end(), [](const auto& a, const auto& b) { return a.first < b.first; });
    for (auto& r : rest) closed.push_back(std::move(r));
    buckets.clear();
    bucketOf.assign(n, 0);
    at::Device device = params[0].device();
    for (auto& cb : closed) {
      Bucket& b = cb.second;
      auto dtype = params[b.members[0]].scalar_type();
      b.buffer = at::zeros({b.numel}, at::TensorOptions().dtype(dtype).device(device));
      b.pending = b.members.size();
      for (size_t j : b.members) bucketOf[j] = buckets.size();
      buckets.push_back(std::move(b));
    }
  }

  // The order in which the last armed backward made gradients ready, then the parameters it did not reach (in
  // reverse index order).
  std::vector<int64_t> observedOrder() {
    std::lock_guard<std::mutex> lock(mu);
    std::vector<int64_t> order = readyOrder;
    std::vector<char> in(params.size(), 0);
    for (int64_t i : order) in[i] = 1;
    for (size_t r = 0; r < params.size(); ++r) {
      size_t i = params.size() - 1 - r;
      if (!in[i]) order.push_back(static_cast<int64_t>(i));
    }
    return order;
  }

  void rebuild(const std::vector<int64_t>& order) {
    std::lock_guard<std::mutex> lock(mu);
    TORCH_CHECK(!armed && !flushed, "reducerRebuild: only between steps (after reducerApply)");
    assignBuckets(order);
    nextLaunch = 0;
  }

  void destroy() {
    std::lock_guard<std::mutex> lock(mu);
    armed = false;
    for (size_t i = 0; i < accumulators.size(); ++i)
      if (accumulators[i]) accumulators[i]->del_post_hook(hookKeys[i]);
    accumulators.clear();
    hookKeys.clear();
  }
};

std::shared_ptr<ReducerState> makeReducer(std::shared_ptr<GroupBox> group, std::vector<at::Tensor> params,
                                          int64_t bucketCapBytes, int64_t firstBucketCapBytes) {
  TORCH_CHECK(!params.empty(), "reducerCreate: no parameters");
  TORCH_CHECK(bucketCapBytes > 0 && firstBucketCapBytes > 0, "reducerCreate: bucket caps must be positive");
  auto state = std::make_shared<ReducerState>();
  state->group = group;
  state->params = params;
  const size_t n = params.size();
  at::Device device = params[0].device();
  for (size_t i = 0; i < n; ++i) {
    const auto& p = params[i];
    TORCH_CHECK(p.defined() && p.requires_grad() && p.is_leaf(), "reducerCreate: parameter ", i,
                " is not a leaf tensor that requires grad");
    TORCH_CHECK(p.device() == device, "reducerCreate: all parameters must be on one device (parameter ", i,
                " is on ", p.device(), ", parameter 0 on ", device, ")");
    checkCollectiveTensor(p, *group, "reducerCreate");
  }
  state->bucketCap = bucketCapBytes;
  state->firstBucketCap = firstBucketCapBytes;
  std::vector<int64_t> reverse(n);
  for (size_t r = 0; r < n; ++r) reverse[r] = static_cast<int64_t>(n - 1 - r);
  state->assignBuckets(reverse);
  state->ready.assign(n, 0);
  state->hadGrad.assign(n, 0.0f);
  state->presence = at::zeros({static_cast<int64_t>(n)}, at::TensorOptions().dtype(at::kFloat).device(device));

  std::weak_ptr<ReducerState> weak = state;
  for (size_t i = 0; i < n; ++i) {
    auto acc = torch::autograd::impl::grad_accumulator(params[i]);
    TORCH_CHECK(acc, "reducerCreate: parameter ", i, " has no gradient accumulator");
    auto key = acc->add_post_hook(std::make_unique<torch::autograd::utils::LambdaPostHook>(
        [weak, i](const torch::autograd::variable_list& outputs, const torch::autograd::variable_list&) {
          if (auto s = weak.lock()) s->onGradReady(i);
          return outputs;
        }));
    state->accumulators.push_back(std::move(acc));
    state->hookKeys.push_back(key);
  }
  return state;
}

}  // namespace

void registerDistributedOps(Registry& r) {
  using at::Tensor;
  using GroupPtr = std::shared_ptr<GroupBox>;
  using WorkPtr = std::shared_ptr<WorkBox>;
  using StorePtr = std::shared_ptr<StoreBox>;
  using ReducerPtr = std::shared_ptr<ReducerState>;

  r.def("distBackendAvailable", "backend", +[](std::string backend) {
#ifdef MOCA_WITH_GLOO
    if (backend == "gloo") return true;
#endif
#ifdef MOCA_WITH_NCCL
    if (backend == "nccl") return true;
#endif
    return false;
  });

  r.defRaw("tcpStoreCreate", &tcpStoreCreate,
           "host: string, port: number, isServer: boolean, worldSize: number, timeoutMs: number",
           "Promise<NativeStore>");
  r.def("storeSet", "store, key, value", +[](StorePtr s, std::string key, std::string value) {
    s->store->set(key, std::vector<uint8_t>(value.begin(), value.end()));
  });
  r.def("storeAdd", "store, key, amount",
        +[](StorePtr s, std::string key, int64_t amount) { return s->store->add(key, amount); });
  r.defRaw("storeGet", &storeGet, "store: NativeStore, key: string", "Promise<Buffer>");

  r.defRaw("processGroupCreate", &processGroupCreate,
           "store: NativeStore, prefix: string, backend: string, rank: number, size: number, timeoutMs: number, "
           "hostname: string, iface: string",
           "Promise<NativeProcessGroup>");
  r.def("pgRank", "group", +[](GroupPtr g) { return static_cast<int64_t>(g->rank); });
  r.def("pgSize", "group", +[](GroupPtr g) { return static_cast<int64_t>(g->size); });
  r.def("pgBackend", "group", +[](GroupPtr g) { return g->backend; });
  // Destroys the backend (joins its threads). abort: drop it without joining, for a process about to exit after
  // a communication failure (a thread stuck on a dead peer would otherwise hold the exit up to the timeout).
  r.def("pgDestroy", "group, abort", +[](GroupPtr g, bool abort) {
    if (g->destroyed.exchange(true)) return;
    if (abort) {
      (void)g->pg.release();
      (void)g->store.release();
    } else {
      g->pg.reset();
      g->store.reset();
    }
  });

  r.def("pgAllReduce", "group, tensors, op", +[](GroupPtr g, std::vector<Tensor> tensors, std::string op) {
    TORCH_CHECK(!tensors.empty(), "allReduce: no tensors");
    for (auto& t : tensors) checkCollectiveTensor(t, *g, "allReduce");
    bool avg = op == "avg";
    if (avg)
      for (auto& t : tensors) TORCH_CHECK(t.is_floating_point(), "allReduce: op 'avg' needs a floating-point tensor");
    c10d::AllreduceOptions opts;
    opts.reduceOp = parseReduceOp(op);
    auto box = makeWork(*g, "allReduce", g->get("allReduce").allreduce(tensors, opts));
    if (avg) {
      int size = g->size;
      box->then = [tensors, size]() {
        for (const auto& t : tensors) t.div_(size);
      };
    }
    return box;
  });
  r.def("pgAllGather", "group, outputs, input", +[](GroupPtr g, std::vector<Tensor> outputs, Tensor input) {
    checkCollectiveTensor(input, *g, "allGather");
    TORCH_CHECK(static_cast<int>(outputs.size()) == g->size, "allGather: expected ", g->size,
                " output tensors (one per rank), got ", outputs.size());
    for (auto& t : outputs) {
      checkCollectiveTensor(t, *g, "allGather");
      TORCH_CHECK(t.sizes() == input.sizes() && t.scalar_type() == input.scalar_type(),
                  "allGather: every output must have the input's shape ", input.sizes(), " and dtype ",
                  input.scalar_type(), ", got ", t.sizes(), " ", t.scalar_type());
    }
    std::vector<std::vector<Tensor>> outs{outputs};
    std::vector<Tensor> ins{input};
    return makeWork(*g, "allGather", g->get("allGather").allgather(outs, ins));
  });
  r.def("pgBroadcast", "group, tensors, root", +[](GroupPtr g, std::vector<Tensor> tensors, int64_t root) {
    TORCH_CHECK(!tensors.empty(), "broadcast: no tensors");
    TORCH_CHECK(root >= 0 && root < g->size, "broadcast: root ", root, " is outside a group of ", g->size);
    for (auto& t : tensors) checkCollectiveTensor(t, *g, "broadcast");
    c10d::BroadcastOptions opts;
    opts.rootRank = root;
    return makeWork(*g, "broadcast", g->get("broadcast").broadcast(tensors, opts));
  });
  // Broadcasts many tensors (e.g. all parameters) as few flat buffers of at most bucketBytes: one collective per
  // buffer instead of one per tensor. The tensors receive root's values when the work completes.
  r.def("pgBroadcastCoalesced", "group, tensors, root, bucketBytes",
        +[](GroupPtr g, std::vector<Tensor> tensors, int64_t root, int64_t bucketBytes) {
          TORCH_CHECK(root >= 0 && root < g->size, "broadcast: root ", root, " is outside a group of ", g->size);
          TORCH_CHECK(bucketBytes > 0, "broadcast: bucketBytes must be positive");
          c10::AutoGradMode noGrad(false);
          auto box = std::make_shared<WorkBox>();
          box->what = "broadcast";
          box->timeout = g->timeout.count() > 0 ? g->timeout + Millis(5000) : Millis(0);
          std::vector<std::pair<Tensor, std::vector<Tensor>>> flats;
          size_t i = 0;
          while (i < tensors.size()) {
            std::vector<Tensor> group;
            int64_t bytes = 0;
            auto dtype = tensors[i].scalar_type();
            while (i < tensors.size() && tensors[i].scalar_type() == dtype &&
                   (group.empty() || bytes + tensors[i].nbytes() <= static_cast<size_t>(bucketBytes))) {
              checkCollectiveTensor(tensors[i].detach().reshape({-1}), *g, "broadcast");
              bytes += tensors[i].nbytes();
              group.push_back(tensors[i]);
              ++i;
            }
            std::vector<Tensor> flatParts;
            for (auto& t : group) flatParts.push_back(t.detach().reshape({-1}));
            Tensor flat = at::cat(flatParts);
            std::vector<Tensor> ts{flat};
            c10d::BroadcastOptions opts;
            opts.rootRank = root;
            box->works.push_back(g->get("broadcast").broadcast(ts, opts));
            flats.emplace_back(flat, group);
          }
          box->then = [flats]() {
            for (const auto& fg : flats) {
              int64_t off = 0;
              for (const auto& t : fg.second) {
                int64_t n = t.numel();
                t.detach().view({-1}).copy_(fg.first.narrow(0, off, n));
                off += n;
              }
            }
          };
          return box;
        });
  r.def("pgBarrier", "group", +[](GroupPtr g) {
    c10d::BarrierOptions opts;
    return makeWork(*g, "barrier", g->get("barrier").barrier(opts));
  });

  r.defRaw("workWait", &workWait, "work: NativeWork", "Promise<void>");
  r.def("workWaitSync", "work", +[](WorkPtr w) {
    try {
      w->wait();
    } catch (...) {
      TORCH_CHECK(false, w->what, ": ", describeException(std::current_exception()));
    }
  });
  r.def("workIsCompleted", "work", +[](WorkPtr w) { return w->completed(); });

  r.def("reducerCreate", "group, params, bucketCapBytes, firstBucketCapBytes",
        +[](GroupPtr g, std::vector<Tensor> params, int64_t cap, int64_t firstCap) {
          return makeReducer(std::move(g), std::move(params), cap, firstCap);
        });
  r.def("reducerArm", "reducer", +[](ReducerPtr s) { s->arm(); });
  r.def("reducerFlush", "reducer", +[](ReducerPtr s) { return s->flush(); });
  r.def("reducerApply", "reducer, scale", +[](ReducerPtr s, double scale) { s->apply(scale); });
  r.def("reducerObservedOrder", "reducer", +[](ReducerPtr s) { return s->observedOrder(); });
  r.def("reducerRebuild", "reducer, order", +[](ReducerPtr s, std::vector<int64_t> order) { s->rebuild(order); });
  r.def("reducerBuckets", "reducer", +[](ReducerPtr s) {
    std::vector<int64_t> out;  // flattened: bucket index of every parameter
    for (size_t b : s->bucketOf) out.push_back(static_cast<int64_t>(b));
    return out;
  });
  // [buckets, all-reduces started inside backward, all-reduces started in total] since the reducer was created:
  // how much communication actually overlapped with backward.
  r.def("reducerStats", "reducer", +[](ReducerPtr s) {
    std::lock_guard<std::mutex> lock(s->mu);
    return std::vector<int64_t>{static_cast<int64_t>(s->buckets.size()), s->launchedDuringBackward, s->launchedTotal};
  });
  r.def("reducerDestroy", "reducer", +[](ReducerPtr s) { s->destroy(); });
}

}  // namespace moca
