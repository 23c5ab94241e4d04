// The Tensor handle, error translation, the registry, and tensor metadata / data transfer ops.
#include <c10/util/Exception.h>

#include <cstring>
#include <sstream>

#include "common.h"

namespace moca {

namespace {
// Tags the JS objects made by this addon, so that an arbitrary object passed where a tensor is expected is
// rejected instead of being reinterpreted.
const napi_type_tag kTensorTag = {0x6d6f63615f747332ULL, 0x74656e736f723031ULL};
}  // namespace

AddonData& addonData(Napi::Env env) { return *env.GetInstanceData<AddonData>(); }

void syncExternalMemory(Napi::Env env, bool force) {
  auto& d = addonData(env);
  if (d.deferDepth > 0 && !force) return;
  int64_t delta = d.liveBytes - d.reportedBytes;
  if (delta != 0) {
    Napi::MemoryManagement::AdjustExternalMemory(env, delta);
    d.reportedBytes = d.liveBytes;
  }
}

namespace tensor_handle {

static void account(Napi::Env env, TensorBox* box) {
  const at::Tensor& t = box->tensor;
  if (!t.defined() || !t.has_storage()) return;
  const void* key = t.storage().unsafeGetStorageImpl();
  auto& refs = addonData(env).storageRefs;
  auto it = refs.find(key);
  if (it == refs.end()) {
    int64_t bytes = static_cast<int64_t>(t.storage().nbytes());
    refs.emplace(key, std::make_pair(int64_t{1}, bytes));
    addonData(env).liveBytes += bytes;
    syncExternalMemory(env);
  } else {
    it->second.first += 1;
  }
  box->storageKey = key;
}

static void release(Napi::Env env, TensorBox* box) {
  if (box->storageKey != nullptr) {
    auto& refs = addonData(env).storageRefs;
    auto it = refs.find(box->storageKey);
    if (it != refs.end() && --it->second.first == 0) {
      addonData(env).liveBytes -= it->second.second;
      refs.erase(it);
      syncExternalMemory(env);
    }
  }
  delete box;
}

static void finalize(napi_env env, void* data, void* /*hint*/) { release(Napi::Env(env), static_cast<TensorBox*>(data)); }

Napi::Value wrap(Napi::Env env, at::Tensor tensor) {
  if (!tensor.defined()) return env.Null();
  Napi::Object obj = Napi::Object::New(env);
  obj.TypeTag(&kTensorTag);
  auto* box = new TensorBox{std::move(tensor), nullptr};
  account(env, box);
  napi_status status = napi_wrap(env, obj, box, &finalize, nullptr, nullptr);
  if (status != napi_ok) {
    release(env, box);
    throw Napi::Error::New(env, "internal error: could not attach a tensor to its handle");
  }
  return obj;
}

bool isTensor(const Napi::Value& value) {
  return value.IsObject() && value.As<Napi::Object>().CheckTypeTag(&kTensorTag);
}

TensorBox* unwrap(const Napi::Value& value) {
  if (!isTensor(value)) throw Napi::TypeError::New(value.Env(), "expected a tensor handle");
  void* data = nullptr;
  if (napi_unwrap(value.Env(), value, &data) != napi_ok) return nullptr;  // disposed: the wrap was removed
  return static_cast<TensorBox*>(data);
}

void dispose(const Napi::Value& value) {
  if (unwrap(value) == nullptr) return;  // idempotent
  void* data = nullptr;
  if (napi_remove_wrap(value.Env(), value, &data) == napi_ok && data != nullptr) {
    release(value.Env(), static_cast<TensorBox*>(data));
  }
}

}  // namespace tensor_handle

// ---------------------------------------------------------------------------------------------------------

static std::string describe(const Napi::Value& v) {
  if (v.IsUndefined()) return "undefined";
  if (v.IsNull()) return "null";
  if (v.IsBoolean()) return v.As<Napi::Boolean>().Value() ? "true" : "false";
  if (v.IsNumber()) {
    std::ostringstream s;
    s << v.As<Napi::Number>().DoubleValue();
    return s.str();
  }
  if (v.IsString()) return "a string";
  if (v.IsArray()) return "an array";
  if (tensor_handle::isTensor(v)) return "a Tensor";
  if (v.IsFunction()) return "a function";
  return "an object";
}

void throwArgError(const Napi::Env& env, const ArgContext& ctx, const char* expected, const Napi::Value& got) {
  throw Napi::TypeError::New(env, std::string(ctx.op) + ": argument '" + ctx.argName + "' must be " + expected +
                                      ", got " + describe(got));
}

void rethrowAsJs(Napi::Env env, const char* op) {
  try {
    throw;
  } catch (const Napi::Error&) {
    throw;
  } catch (const c10::Error& e) {
    std::string msg = e.what_without_backtrace();
    throw Napi::Error::New(env, std::string(op) + ": " + msg);
  } catch (const std::exception& e) {
    throw Napi::Error::New(env, std::string(op) + ": " + e.what());
  } catch (...) {
    throw Napi::Error::New(env, std::string(op) + ": unknown native error");
  }
}

std::vector<std::string> Registry::splitNames(const char* names) {
  std::vector<std::string> out;
  std::string cur;
  for (const char* p = names; *p; ++p) {
    if (*p == ',') {
      out.push_back(cur);
      cur.clear();
    } else if (*p != ' ') {
      cur.push_back(*p);
    }
  }
  if (!cur.empty()) out.push_back(cur);
  return out;
}

void Registry::recordSignature(const char* name, const std::vector<std::string>& argNames,
                               const std::vector<std::string>& types, const std::vector<bool>& optional,
                               const char* ret) {
  std::string args;
  for (size_t i = 0; i < argNames.size(); ++i) {
    if (i) args += ", ";
    // A parameter is optional in TS only when it and all after it are optional.
    bool trailingOptional = true;
    for (size_t j = i; j < optional.size(); ++j) trailingOptional = trailingOptional && optional[j];
    args += argNames[i] + (trailingOptional ? "?: " : ": ") + types[i];
  }
  auto& data = addonData(env_);
  auto sig = Napi::Object::New(env_);
  sig.Set("name", name);
  sig.Set("args", args);
  sig.Set("ret", ret);
  data.signatures.Value().Set(data.signatureCount++, sig);
}

void Registry::defRaw(const char* name, Napi::Function::Callback cb, const char* tsArgs, const char* tsRet) {
  exports_.Set(name, Napi::Function::New(env_, cb, name));
  auto& data = addonData(env_);
  auto sig = Napi::Object::New(env_);
  sig.Set("name", name);
  sig.Set("args", tsArgs);
  sig.Set("ret", tsRet);
  data.signatures.Value().Set(data.signatureCount++, sig);
}

// ---------------------------------------------------------------------------------------------------------
// Metadata and data transfer

static Napi::Value fromBuffer(const Napi::CallbackInfo& info) {
  // fromBuffer(data: ArrayBufferView, shape: number[], dtype: number): copies the bytes into a new CPU tensor.
  Napi::Env env = info.Env();
  if (!info[0].IsTypedArray() && !info[0].IsDataView() && !info[0].IsBuffer())
    throw Napi::TypeError::New(env, "fromBuffer: argument 'data' must be a TypedArray or Buffer");
  std::string shapeName = "shape", dtypeName = "dtype";
  auto shape = Arg<std::vector<int64_t>>::get(info[1], ArgContext{"fromBuffer", shapeName, 1});
  auto dtype = Arg<at::ScalarType>::get(info[2], ArgContext{"fromBuffer", dtypeName, 2});
  const uint8_t* src;
  size_t byteLength;
  if (info[0].IsTypedArray()) {
    auto ta = info[0].As<Napi::TypedArray>();
    src = static_cast<const uint8_t*>(ta.ArrayBuffer().Data()) + ta.ByteOffset();
    byteLength = ta.ByteLength();
  } else {
    auto dv = info[0].As<Napi::DataView>();
    src = static_cast<const uint8_t*>(dv.ArrayBuffer().Data()) + dv.ByteOffset();
    byteLength = dv.ByteLength();
  }
  try {
    at::Tensor t = at::empty(shape, at::TensorOptions().dtype(dtype));
    size_t need = t.numel() * t.element_size();
    if (need != byteLength) {
      throw Napi::RangeError::New(env, "fromBuffer: shape " + std::string(c10::str(t.sizes())) + " of " +
                                           std::string(c10::toString(dtype)) + " needs " + std::to_string(need) +
                                           " bytes, the buffer has " + std::to_string(byteLength));
    }
    if (need) std::memcpy(t.data_ptr(), src, need);
    return tensor_handle::wrap(env, t);
  } catch (...) {
    rethrowAsJs(env, "fromBuffer");
  }
}

static Napi::Value toBuffer(const Napi::CallbackInfo& info) {
  // toBuffer(t): a copy of the tensor's elements, row-major, as a Node Buffer.
  Napi::Env env = info.Env();
  std::string name = "self";
  at::Tensor t = Arg<at::Tensor>::get(info[0], ArgContext{"toBuffer", name, 0});
  try {
    at::Tensor c = t.detach().to(at::kCPU).contiguous();
    size_t n = c.numel() * c.element_size();
    auto buf = Napi::Buffer<uint8_t>::New(env, n);
    if (n) std::memcpy(buf.Data(), c.data_ptr(), n);
    return buf;
  } catch (...) {
    rethrowAsJs(env, "toBuffer");
  }
}

static Napi::Value disposeHandle(const Napi::CallbackInfo& info) {
  if (!tensor_handle::isTensor(info[0])) throw Napi::TypeError::New(info.Env(), "dispose: argument 'self' must be a Tensor");
  tensor_handle::dispose(info[0]);
  return info.Env().Undefined();
}

static Napi::Value isDisposedHandle(const Napi::CallbackInfo& info) {
  if (!tensor_handle::isTensor(info[0])) throw Napi::TypeError::New(info.Env(), "isDisposed: argument 'self' must be a Tensor");
  return Napi::Boolean::New(info.Env(), tensor_handle::unwrap(info[0]) == nullptr);
}

static Napi::Value beginDeferExternalMemory(const Napi::CallbackInfo& info) {
  addonData(info.Env()).deferDepth += 1;
  return info.Env().Undefined();
}

static Napi::Value endDeferExternalMemory(const Napi::CallbackInfo& info) {
  auto& d = addonData(info.Env());
  if (d.deferDepth > 0) d.deferDepth -= 1;
  syncExternalMemory(info.Env());
  return info.Env().Undefined();
}

void registerTensorInfoOps(Registry& r) {
  r.defRaw("beginDeferExternalMemory", &beginDeferExternalMemory, "", "void");
  r.defRaw("endDeferExternalMemory", &endDeferExternalMemory, "", "void");
  r.defRaw("dispose", &disposeHandle, "self: NativeTensor", "void");
  r.defRaw("isDisposed", &isDisposedHandle, "self: NativeTensor", "boolean");
  r.defRaw("fromBuffer", &fromBuffer, "data: ArrayBufferView, shape: number[], dtype: number", "NativeTensor");
  r.defRaw("toBuffer", &toBuffer, "self: NativeTensor", "Buffer");

  r.def("sizes", "self", +[](const at::Tensor& t) { return t.sizes().vec(); });
  r.def("strides", "self", +[](const at::Tensor& t) { return t.strides().vec(); });
  r.def("dim", "self", +[](const at::Tensor& t) { return static_cast<int64_t>(t.dim()); });
  r.def("numel", "self", +[](const at::Tensor& t) { return static_cast<int64_t>(t.numel()); });
  r.def("scalarType", "self", +[](const at::Tensor& t) { return static_cast<int64_t>(t.scalar_type()); });
  r.def("device", "self", +[](const at::Tensor& t) { return t.device().str(); });
  r.def("isContiguous", "self", +[](const at::Tensor& t) { return t.is_contiguous(); });
  r.def("storageOffset", "self", +[](const at::Tensor& t) { return static_cast<int64_t>(t.storage_offset()); });
  r.def("elementSize", "self", +[](const at::Tensor& t) { return static_cast<int64_t>(t.element_size()); });
  r.def("sharesStorage", "self, other", +[](const at::Tensor& a, const at::Tensor& b) {
    return a.has_storage() && b.has_storage() && a.storage().is_alias_of(b.storage());
  });
  r.def("item", "self", +[](const at::Tensor& t) {
    TORCH_CHECK(t.numel() == 1, "a Tensor with ", t.numel(), " elements cannot be converted to a number");
    return t.item<double>();
  });
  r.def("toString", "self", +[](const at::Tensor& t) {
    std::ostringstream s;
    s << t;
    return s.str();
  });
}

}  // namespace moca
