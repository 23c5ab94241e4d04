// The binding's one pattern: a typed C++ function per op, registered by name.
//
// Every op is a plain function (usually a captureless lambda) whose parameter and return types say how JS
// values are converted. `Registry::def` wraps it into a JS function that
//   1. converts each JS argument with `Arg<T>` (clear TypeError naming the op and the argument on mismatch),
//   2. calls the function with libtorch exceptions turned into JS Errors carrying libtorch's message,
//   3. converts the result with `Ret<R>`,
// and records a TypeScript signature built from the same types. `tools/gen-native-types.ts` writes those
// signatures to `src/torch/native-ops.ts`, so the C++ op table is the single source of the TS typings
// (a test checks that the committed file matches the built binding).
#pragma once

#include <napi.h>

#include <ATen/ATen.h>
#include <c10/util/Optional.h>

#include <cmath>
#include <memory>
#include <string>
#include <tuple>
#include <type_traits>
#include <unordered_map>
#include <utility>
#include <vector>

namespace moca {

struct OpInfo;

// Per-environment state (the main thread and every worker thread that loads the addon get their own).
struct AddonData {
  std::vector<std::unique_ptr<OpInfo>> ops;
  Napi::Reference<Napi::Array> signatures;
  uint32_t signatureCount = 0;
  // Bytes of tensor storage reachable from JS handles, counted once per storage (views share it). Reported to
  // V8 as external memory so that garbage-collection pressure reflects tensor memory.
  std::unordered_map<const void*, std::pair<int64_t, int64_t>> storageRefs;  // storage -> (handles, bytes)
  // Exact bytes of all storages above, and the part of it reported to V8 so far. Inside scopes reporting is
  // deferred (deferDepth > 0): the scope frees its temporaries deterministically, and reporting every
  // temporary made V8 start pointless full GCs ("external memory pressure", ~11 ms per training step of the
  // benchmark transformer). What survives the outermost scope is reported when it closes.
  int64_t liveBytes = 0;
  int64_t reportedBytes = 0;
  int deferDepth = 0;
};

// Brings V8's external-memory figure up to date with liveBytes (unless deferred).
void syncExternalMemory(Napi::Env env, bool force = false);

AddonData& addonData(Napi::Env env);

// A JS handle owning one libtorch tensor (which may share storage with others, as views do).
//
// Handles are plain JS objects tagged as tensors and napi_wrap-ped to a TensorBox. Explicit disposal removes the
// wrap (napi_remove_wrap) and frees the box at once, so a disposed handle leaves no finalizer behind: Node runs
// N-API finalizers from the event loop, and a synchronous training loop that only relied on them would queue
// one pending finalizer per temporary tensor until it yields (measured: ~14 KB per step of a small MLP).
// Handles that are never disposed are still freed by their GC finalizer.
struct TensorBox {
  at::Tensor tensor;
  const void* storageKey = nullptr;
};

namespace tensor_handle {
Napi::Value wrap(Napi::Env env, at::Tensor tensor);
bool isTensor(const Napi::Value& value);
// The box of a live handle, nullptr when the handle was disposed. Throws TypeError if `value` is no handle.
TensorBox* unwrap(const Napi::Value& value);
void dispose(const Napi::Value& value);
}  // namespace tensor_handle

// ---------------------------------------------------------------------------------------------------------
// Argument conversion

struct ArgContext {
  const char* op;
  const std::string& argName;
  size_t index;
};

[[noreturn]] void throwArgError(const Napi::Env& env, const ArgContext& ctx, const char* expected,
                                const Napi::Value& got);

template <typename T, typename Enable = void>
struct Arg;

template <>
struct Arg<at::Tensor> {
  static constexpr const char* ts = "NativeTensor";
  static at::Tensor get(const Napi::Value& v, const ArgContext& ctx) {
    if (!tensor_handle::isTensor(v)) throwArgError(v.Env(), ctx, "a Tensor", v);
    TensorBox* box = tensor_handle::unwrap(v);
    if (box == nullptr) {
      throw Napi::Error::New(v.Env(), std::string(ctx.op) + ": argument '" + ctx.argName +
                                          "' is a tensor that has already been disposed");
    }
    return box->tensor;
  }
};

inline int64_t toInt64(const Napi::Value& v, const ArgContext& ctx) {
  if (v.IsBigInt()) {
    bool lossless = false;
    int64_t x = v.As<Napi::BigInt>().Int64Value(&lossless);
    if (!lossless) throwArgError(v.Env(), ctx, "an integer within int64 range", v);
    return x;
  }
  if (!v.IsNumber()) throwArgError(v.Env(), ctx, "an integer", v);
  double d = v.As<Napi::Number>().DoubleValue();
  if (!std::isfinite(d) || std::trunc(d) != d || std::fabs(d) > 9007199254740991.0)
    throwArgError(v.Env(), ctx, "an integer (exactly representable)", v);
  return static_cast<int64_t>(d);
}

template <>
struct Arg<int64_t> {
  static constexpr const char* ts = "number";
  static int64_t get(const Napi::Value& v, const ArgContext& ctx) { return toInt64(v, ctx); }
};

template <>
struct Arg<double> {
  static constexpr const char* ts = "number";
  static double get(const Napi::Value& v, const ArgContext& ctx) {
    if (!v.IsNumber()) throwArgError(v.Env(), ctx, "a number", v);
    return v.As<Napi::Number>().DoubleValue();
  }
};

template <>
struct Arg<bool> {
  static constexpr const char* ts = "boolean";
  static bool get(const Napi::Value& v, const ArgContext& ctx) {
    if (!v.IsBoolean()) throwArgError(v.Env(), ctx, "a boolean", v);
    return v.As<Napi::Boolean>().Value();
  }
};

// JS numbers carry no int/float distinction: an integral number becomes an integer Scalar (so that
// `intTensor.add(1)` stays integral, as in PyTorch), any other number a double, a boolean a bool.
template <>
struct Arg<at::Scalar> {
  static constexpr const char* ts = "number | boolean";
  static at::Scalar get(const Napi::Value& v, const ArgContext& ctx) {
    if (v.IsBoolean()) return at::Scalar(v.As<Napi::Boolean>().Value());
    if (v.IsBigInt()) return at::Scalar(toInt64(v, ctx));
    if (!v.IsNumber()) throwArgError(v.Env(), ctx, "a number or boolean", v);
    double d = v.As<Napi::Number>().DoubleValue();
    if (std::isfinite(d) && std::trunc(d) == d && std::fabs(d) <= 9007199254740991.0)
      return at::Scalar(static_cast<int64_t>(d));
    return at::Scalar(d);
  }
};

template <>
struct Arg<at::ScalarType> {
  static constexpr const char* ts = "number";
  static at::ScalarType get(const Napi::Value& v, const ArgContext& ctx) {
    int64_t code = toInt64(v, ctx);
    if (code < 0 || code >= static_cast<int64_t>(at::ScalarType::NumOptions))
      throwArgError(v.Env(), ctx, "a dtype code", v);
    return static_cast<at::ScalarType>(code);
  }
};

template <>
struct Arg<std::string> {
  static constexpr const char* ts = "string";
  static std::string get(const Napi::Value& v, const ArgContext& ctx) {
    if (!v.IsString()) throwArgError(v.Env(), ctx, "a string", v);
    return v.As<Napi::String>().Utf8Value();
  }
};

template <>
struct Arg<std::vector<int64_t>> {
  static constexpr const char* ts = "number[]";
  static std::vector<int64_t> get(const Napi::Value& v, const ArgContext& ctx) {
    if (!v.IsArray()) throwArgError(v.Env(), ctx, "an array of integers", v);
    auto a = v.As<Napi::Array>();
    std::vector<int64_t> out(a.Length());
    for (uint32_t i = 0; i < a.Length(); ++i) out[i] = toInt64(a.Get(i), ctx);
    return out;
  }
};

template <>
struct Arg<std::vector<at::Tensor>> {
  static constexpr const char* ts = "NativeTensor[]";
  static std::vector<at::Tensor> get(const Napi::Value& v, const ArgContext& ctx) {
    if (!v.IsArray()) throwArgError(v.Env(), ctx, "an array of Tensors", v);
    auto a = v.As<Napi::Array>();
    std::vector<at::Tensor> out;
    out.reserve(a.Length());
    for (uint32_t i = 0; i < a.Length(); ++i) out.push_back(Arg<at::Tensor>::get(a.Get(i), ctx));
    return out;
  }
};

template <>
struct Arg<std::vector<c10::optional<at::Tensor>>> {
  static constexpr const char* ts = "(NativeTensor | null)[]";
  static std::vector<c10::optional<at::Tensor>> get(const Napi::Value& v, const ArgContext& ctx) {
    if (!v.IsArray()) throwArgError(v.Env(), ctx, "an array of Tensors or nulls", v);
    auto a = v.As<Napi::Array>();
    std::vector<c10::optional<at::Tensor>> out;
    out.reserve(a.Length());
    for (uint32_t i = 0; i < a.Length(); ++i) {
      Napi::Value item = a.Get(i);
      if (item.IsNull() || item.IsUndefined())
        out.emplace_back(c10::nullopt);
      else
        out.emplace_back(Arg<at::Tensor>::get(item, ctx));
    }
    return out;
  }
};

template <typename T>
struct Arg<c10::optional<T>> {
  static std::string tsName() { return std::string(Arg<T>::ts) + " | null"; }
  static constexpr const char* ts = nullptr;  // see tsName()
  static c10::optional<T> get(const Napi::Value& v, const ArgContext& ctx) {
    if (v.IsNull() || v.IsUndefined()) return c10::nullopt;
    return Arg<T>::get(v, ctx);
  }
};

template <typename T>
struct IsOptional : std::false_type {};
template <typename T>
struct IsOptional<c10::optional<T>> : std::true_type {};

template <typename T>
std::string tsArgType() {
  if constexpr (IsOptional<T>::value)
    return Arg<T>::tsName();
  else
    return Arg<T>::ts;
}

// ---------------------------------------------------------------------------------------------------------
// Result conversion

template <typename R>
struct Ret;

template <>
struct Ret<at::Tensor> {
  static constexpr const char* ts = "NativeTensor";
  static Napi::Value make(Napi::Env env, at::Tensor t) { return tensor_handle::wrap(env, std::move(t)); }
};
template <>
struct Ret<std::vector<at::Tensor>> {
  static constexpr const char* ts = "NativeTensor[]";
  static Napi::Value make(Napi::Env env, const std::vector<at::Tensor>& ts_) {
    auto a = Napi::Array::New(env, ts_.size());
    for (size_t i = 0; i < ts_.size(); ++i) a.Set(static_cast<uint32_t>(i), tensor_handle::wrap(env, ts_[i]));
    return a;
  }
};
template <>
struct Ret<std::tuple<at::Tensor, at::Tensor>> {
  static constexpr const char* ts = "[NativeTensor, NativeTensor]";
  static Napi::Value make(Napi::Env env, const std::tuple<at::Tensor, at::Tensor>& t) {
    auto a = Napi::Array::New(env, 2);
    a.Set(0u, tensor_handle::wrap(env, std::get<0>(t)));
    a.Set(1u, tensor_handle::wrap(env, std::get<1>(t)));
    return a;
  }
};
template <>
struct Ret<double> {
  static constexpr const char* ts = "number";
  static Napi::Value make(Napi::Env env, double x) { return Napi::Number::New(env, x); }
};
template <>
struct Ret<int64_t> {
  static constexpr const char* ts = "number";
  static Napi::Value make(Napi::Env env, int64_t x) { return Napi::Number::New(env, static_cast<double>(x)); }
};
template <>
struct Ret<bool> {
  static constexpr const char* ts = "boolean";
  static Napi::Value make(Napi::Env env, bool x) { return Napi::Boolean::New(env, x); }
};
template <>
struct Ret<std::string> {
  static constexpr const char* ts = "string";
  static Napi::Value make(Napi::Env env, const std::string& s) { return Napi::String::New(env, s); }
};
template <>
struct Ret<std::vector<int64_t>> {
  static constexpr const char* ts = "number[]";
  static Napi::Value make(Napi::Env env, const std::vector<int64_t>& v) {
    auto a = Napi::Array::New(env, v.size());
    for (size_t i = 0; i < v.size(); ++i) a.Set(static_cast<uint32_t>(i), Napi::Number::New(env, double(v[i])));
    return a;
  }
};
template <>
struct Ret<void> {
  static constexpr const char* ts = "void";
};

// ---------------------------------------------------------------------------------------------------------
// Registration

struct OpInfo {
  void* fn;
  std::string name;
  std::vector<std::string> argNames;
};

[[noreturn]] void rethrowAsJs(Napi::Env env, const char* op);

template <typename R, typename... A, size_t... I>
Napi::Value invokeOp(const Napi::CallbackInfo& info, std::index_sequence<I...>) {
  const OpInfo* op = static_cast<const OpInfo*>(info.Data());
  Napi::Env env = info.Env();
  if (info.Length() > sizeof...(A)) {
    throw Napi::TypeError::New(env, op->name + ": expected at most " + std::to_string(sizeof...(A)) +
                                        " arguments, got " + std::to_string(info.Length()));
  }
  auto fn = reinterpret_cast<R (*)(A...)>(op->fn);
  // Braced initialisation evaluates the conversions left to right.
  std::tuple<std::decay_t<A>...> args{
      Arg<std::decay_t<A>>::get(info[I], ArgContext{op->name.c_str(), op->argNames[I], I})...};
  try {
    if constexpr (std::is_void_v<R>) {
      fn(std::get<I>(args)...);
      return env.Undefined();
    } else {
      R result = fn(std::get<I>(args)...);
      return Ret<R>::make(env, std::move(result));
    }
  } catch (...) {
    rethrowAsJs(env, op->name.c_str());
  }
}

class Registry {
 public:
  Registry(Napi::Env env, Napi::Object exports) : env_(env), exports_(exports) {}

  template <typename R, typename... A>
  void def(const char* name, const char* argNames, R (*fn)(A...)) {
    auto op = std::make_unique<OpInfo>();
    op->fn = reinterpret_cast<void*>(fn);
    op->name = name;
    op->argNames = splitNames(argNames);
    if (op->argNames.size() != sizeof...(A)) {
      throw std::logic_error(std::string("op ") + name + ": argument names do not match the arity");
    }
    std::vector<std::string> types{tsArgType<std::decay_t<A>>()...};
    std::vector<bool> optional{IsOptional<std::decay_t<A>>::value...};
    recordSignature(name, op->argNames, types, optional, Ret<R>::ts);
    auto f = Napi::Function::New(env_, &Registry::dispatch<R, A...>, name, op.get());
    exports_.Set(name, f);
    addonData(env_).ops.push_back(std::move(op));
  }

  // For functions written by hand against the N-API (buffers, mappings): the signature is given as text.
  void defRaw(const char* name, Napi::Function::Callback cb, const char* tsArgs, const char* tsRet);

 private:
  template <typename R, typename... A>
  static Napi::Value dispatch(const Napi::CallbackInfo& info) {
    return invokeOp<R, A...>(info, std::index_sequence_for<A...>{});
  }
  static std::vector<std::string> splitNames(const char* names);
  void recordSignature(const char* name, const std::vector<std::string>& argNames,
                       const std::vector<std::string>& types, const std::vector<bool>& optional, const char* ret);

  Napi::Env env_;
  Napi::Object exports_;
};

void registerCreationOps(Registry& r);
void registerMathOps(Registry& r);
void registerShapeOps(Registry& r);
void registerNnOps(Registry& r);
void registerAutogradOps(Registry& r);
void registerStorageOps(Registry& r, Napi::Env env);
void registerTensorInfoOps(Registry& r);
void registerAllocatorOps(Registry& r);
void registerDistributedOps(Registry& r);
void registerPerformanceOps(Registry& r);
void installCachingCpuAllocator();

}  // namespace moca
