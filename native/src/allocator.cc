// A caching CPU allocator for large tensor buffers.
//
// Why: in a Node process glibc cannot grow its main heap with brk (V8's reservations sit right after it), so
// every allocation above the mmap threshold is a fresh mmap and every free a munmap. A (16, 330, 512) float
// intermediate then costs 2,640 page faults each time it is allocated (measured: `add` 3.0 ms in Node vs 0.4 ms
// in a Python process on the same libtorch). Keeping freed large blocks in size classes and handing them out
// again removes those faults — the same idea as PyTorch's CUDA caching allocator.
//
// Blocks of at least kMinCached bytes are rounded up to a size class (at most 1/8 larger than asked), cached
// on free while the cache holds less than its limit (MOCA_CPU_CACHE_MB, default 1024; 0 disables), and reused
// by any later request of the same class. Smaller requests go to libtorch's default allocator. Misses evict
// cached blocks so that cache + live memory stays within 10% of the highest live total (see allocateImpl).
#include <c10/core/CPUAllocator.h>
#include <torch/csrc/api/include/torch/version.h>

#include <cstdlib>
#include <map>
#include <unordered_map>
#include <mutex>
#include <vector>

#include "common.h"

namespace moca {

namespace {

constexpr size_t kMinCached = 256 * 1024;
constexpr size_t kAlignment = 64;

size_t sizeClass(size_t n) {
  // Round up to a multiple of 2^(floor(log2 n) - 3): at most 12.5% over the request.
  size_t top = 63 - __builtin_clzll(static_cast<unsigned long long>(n));
  size_t step = size_t{1} << (top - 3);
  return (n + step - 1) / step * step;
}

class CachingCpuAllocator final : public c10::Allocator {
 public:
  CachingCpuAllocator() {
    const char* env = std::getenv("MOCA_CPU_CACHE_MB");
    limit_ = (env != nullptr ? static_cast<size_t>(std::strtoull(env, nullptr, 10)) : size_t{1024}) << 20;
  }

#if TORCH_VERSION_MAJOR > 2 || (TORCH_VERSION_MAJOR == 2 && TORCH_VERSION_MINOR >= 3)
  at::DataPtr allocate(size_t n) override { return allocateImpl(n); }
  void copy_data(void* dest, const void* src, std::size_t count) const override {
    default_copy_data(dest, src, count);
  }
#else
  at::DataPtr allocate(size_t n) const override { return const_cast<CachingCpuAllocator*>(this)->allocateImpl(n); }
#endif

  // Some kernels use the raw interface (raw_allocate / raw_deallocate), which needs context == data and a
  // deleter taking the data pointer: sizes are therefore looked up by pointer.
  at::DeleterFnPtr raw_deleter() const override { return &CachingCpuAllocator::release; }

  struct Stats {
    size_t cachedBytes, cachedBlocks, hits, misses, limit;
  };

  Stats stats() {
    std::lock_guard<std::mutex> lock(mutex_);
    size_t blocks = 0;
    for (const auto& kv : free_) blocks += kv.second.size();
    return {cached_, blocks, hits_, misses_, limit_};
  }

  void emptyCache() {
    std::vector<void*> toFree;
    {
      std::lock_guard<std::mutex> lock(mutex_);
      for (auto& kv : free_)
        for (void* p : kv.second) toFree.push_back(p);
      free_.clear();
      cached_ = 0;
    }
    for (void* p : toFree) std::free(p);
  }

 private:
  at::DataPtr allocateImpl(size_t n) {
    if (n < kMinCached || limit_ == 0) return c10::GetDefaultCPUAllocator()->allocate(n);
    size_t size = sizeClass(n);
    void* ptr = nullptr;
    std::vector<void*> evicted;  // freed after the lock is released
    {
      std::lock_guard<std::mutex> lock(mutex_);
      auto it = free_.find(size);
      if (it != free_.end() && !it->second.empty()) {
        ptr = it->second.back();
        it->second.pop_back();
        cached_ -= size;
        hits_++;
      } else {
        misses_++;
        // Keep cache + live memory near the live peak: a miss means the workload needs a size the cache does
        // not hold (e.g. batch shapes changed); evict cached blocks (largest first) while cache + live + the new
        // block would exceed the highest live total seen so far (+10%). A steady workload, whose blocks were all
        // live at once before, never evicts; a changed one does not stack its blocks on top of stale ones.
        peakLive_ = std::max(peakLive_, liveBytes_ + size);
        size_t budget = peakLive_ + peakLive_ / 10;
        for (auto it2 = free_.rbegin(); it2 != free_.rend() && liveBytes_ + cached_ + size > budget;) {
          auto& blocks = it2->second;
          while (!blocks.empty() && liveBytes_ + cached_ + size > budget) {
            evicted.push_back(blocks.back());
            blocks.pop_back();
            cached_ -= it2->first;
          }
          ++it2;
        }
      }
      liveBytes_ += size;
    }
    for (void* p : evicted) std::free(p);
    if (ptr == nullptr) {
      ptr = std::aligned_alloc(kAlignment, size);
      if (ptr == nullptr) {
        emptyCache();  // give the cache back and try once more before failing
        ptr = std::aligned_alloc(kAlignment, size);
      }
      TORCH_CHECK(ptr != nullptr, "DefaultCPUAllocator: not enough memory: you tried to allocate ", n, " bytes.");
    }
    {
      std::lock_guard<std::mutex> lock(mutex_);
      live_[ptr] = size;
    }
    return {ptr, ptr, &CachingCpuAllocator::release, at::Device(at::DeviceType::CPU)};
  }

  static void release(void* ctx);

  std::mutex mutex_;
  std::map<size_t, std::vector<void*>> free_;
  std::unordered_map<void*, size_t> live_;  // our blocks in use -> size class
  size_t liveBytes_ = 0;                     // sum of live_ sizes
  size_t peakLive_ = 0;                      // highest liveBytes_ seen (with the block being allocated)
  size_t cached_ = 0;
  size_t hits_ = 0;
  size_t misses_ = 0;
  size_t limit_;
};

CachingCpuAllocator& instance() {
  // Never destroyed: tensors may be freed during process exit after static destructors have run.
  static auto* a = new CachingCpuAllocator();
  return *a;
}

void CachingCpuAllocator::release(void* ptr) {
  auto& self = instance();
  bool ours = false;
  bool cached = false;
  {
    std::lock_guard<std::mutex> lock(self.mutex_);
    auto it = self.live_.find(ptr);
    if (it != self.live_.end()) {
      ours = true;
      size_t size = it->second;
      self.live_.erase(it);
      self.liveBytes_ -= size;
      if (self.cached_ + size <= self.limit_) {
        self.free_[size].push_back(ptr);
        self.cached_ += size;
        cached = true;
      }
    }
  }
  if (!ours) {
    // A small block handed out by the default allocator, returned through the raw interface.
    c10::GetDefaultCPUAllocator()->raw_deleter()(ptr);
  } else if (!cached) {
    std::free(ptr);
  }
}

}  // namespace

void installCachingCpuAllocator() {
  static std::once_flag once;
  std::call_once(once, [] { c10::SetCPUAllocator(&instance(), /*priority=*/10); });
}

void registerAllocatorOps(Registry& r) {
  r.def("cpuCacheStats", "", +[]() {
    auto s = instance().stats();
    return std::vector<int64_t>{static_cast<int64_t>(s.cachedBytes), static_cast<int64_t>(s.cachedBlocks),
                                static_cast<int64_t>(s.hits), static_cast<int64_t>(s.misses),
                                static_cast<int64_t>(s.limit)};
  });
  r.def("emptyCpuCache", "", +[]() { instance().emptyCache(); });
}

}  // namespace moca
