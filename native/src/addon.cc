// Module entry: per-environment state, op registration, build information and global settings.
#include <ATen/Parallel.h>
#include <ATen/Version.h>
#include <ATen/CPUGeneratorImpl.h>
#include <ATen/detail/CUDAHooksInterface.h>
#include <torch/csrc/api/include/torch/version.h>

#include <mutex>

#include "common.h"

namespace moca {

static Napi::Value liveTensorStats(const Napi::CallbackInfo& info) {
  // Handles alive in this environment and the storage bytes they keep reachable: the leak tests' probe.
  Napi::Env env = info.Env();
  auto& data = addonData(env);
  int64_t handles = 0, bytes = 0;
  for (const auto& kv : data.storageRefs) {
    handles += kv.second.first;
    bytes += kv.second.second;
  }
  auto o = Napi::Object::New(env);
  o.Set("storages", Napi::Number::New(env, double(data.storageRefs.size())));
  o.Set("handles", Napi::Number::New(env, double(handles)));
  o.Set("bytes", Napi::Number::New(env, double(bytes)));
  o.Set("reportedBytes", Napi::Number::New(env, double(data.reportedBytes)));
  return o;
}

static Napi::Value signatures(const Napi::CallbackInfo& info) { return addonData(info.Env()).signatures.Value(); }

static void registerGlobalOps(Registry& r) {
  r.def("libtorchVersion", "", +[]() { return std::string(TORCH_VERSION); });
  r.def("cudaIsAvailable", "", +[]() { return at::hasCUDA(); });
  r.def("cudaDeviceCount", "", +[]() {
    return static_cast<int64_t>(at::hasCUDA() ? at::detail::getCUDAHooks().getNumGPUs() : 0);
  });
  r.def("hasMkldnn", "", +[]() { return at::hasMKLDNN(); });
  r.def("hasLapack", "", +[]() { return at::hasLAPACK(); });
  r.def("parallelInfo", "", +[]() { return at::get_parallel_info(); });
  r.def("showConfig", "", +[]() { return at::show_config(); });
  r.def("setNumThreads", "n", +[](int64_t n) {
    TORCH_CHECK(n > 0, "setNumThreads: n must be positive, got ", n);
    at::set_num_threads(static_cast<int>(n));
  });
  r.def("getNumThreads", "", +[]() { return static_cast<int64_t>(at::get_num_threads()); });
  r.def("setNumInteropThreads", "n", +[](int64_t n) { at::set_num_interop_threads(static_cast<int>(n)); });
  r.def("getNumInteropThreads", "", +[]() { return static_cast<int64_t>(at::get_num_interop_threads()); });
  r.def("manualSeed", "seed", +[](int64_t seed) {
    {
      auto gen = at::detail::getDefaultCPUGenerator();
      std::lock_guard<std::mutex> lock(gen.mutex());
      gen.set_current_seed(static_cast<uint64_t>(seed));
    }
    if (at::hasCUDA()) {
      for (int64_t i = 0; i < at::detail::getCUDAHooks().getNumGPUs(); ++i) {
        auto gen = at::detail::getCUDAHooks().getDefaultCUDAGenerator(static_cast<c10::DeviceIndex>(i));
        std::lock_guard<std::mutex> lock(gen.mutex());
        gen.set_current_seed(static_cast<uint64_t>(seed));
      }
    }
  });
  r.def("getRngState", "", +[]() {
    auto gen = at::detail::getDefaultCPUGenerator();
    std::lock_guard<std::mutex> lock(gen.mutex());
    return gen.get_state();
  });
  r.def("setRngState", "state", +[](const at::Tensor& state) {
    auto gen = at::detail::getDefaultCPUGenerator();
    std::lock_guard<std::mutex> lock(gen.mutex());
    gen.set_state(state);
  });
}

Napi::Object Init(Napi::Env env, Napi::Object exports) {
  auto* data = new AddonData();
  env.SetInstanceData<AddonData>(data);
  data->signatures = Napi::Persistent(Napi::Array::New(env));

  installCachingCpuAllocator();
  Registry r(env, exports);
  registerGlobalOps(r);
  registerTensorInfoOps(r);
  registerCreationOps(r);
  registerMathOps(r);
  registerShapeOps(r);
  registerNnOps(r);
  registerAutogradOps(r);
  registerAllocatorOps(r);
  registerDistributedOps(r);
  registerPerformanceOps(r);
  registerStorageOps(r, env);
  r.defRaw("liveTensorStats", &liveTensorStats, "", "{ storages: number; handles: number; bytes: number; reportedBytes: number }");
  exports.Set("signatures", Napi::Function::New(env, &signatures, "signatures"));
  return exports;
}

}  // namespace moca

static Napi::Object InitModule(Napi::Env env, Napi::Object exports) { return moca::Init(env, exports); }

NODE_API_MODULE(moca_torch, InitModule)
