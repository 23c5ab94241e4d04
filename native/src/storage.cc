// File-backed tensors: memory-mapped reads (safetensors loading without copying whole checkpoints into JS
// memory) and direct writes of tensor bytes to a file descriptor (no JS-heap copy of large weights).
#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "common.h"

namespace moca {

namespace {

const napi_type_tag kMappingTag = {0x6d6f63615f6d6d61ULL, 0x7070696e67303031ULL};

struct MappedFile {
  void* data = nullptr;
  size_t size = 0;
  std::string path;
  ~MappedFile() {
    if (data != nullptr && data != MAP_FAILED) munmap(data, size);
  }
};

using MappingHandle = std::shared_ptr<MappedFile>;

std::string errnoText(const std::string& what, const std::string& path) {
  return what + " '" + path + "': " + std::strerror(errno);
}

MappingHandle& unwrapMapping(const Napi::Value& v, const char* op) {
  if (!v.IsExternal() || !v.As<Napi::Object>().CheckTypeTag(&kMappingTag))
    throw Napi::TypeError::New(v.Env(), std::string(op) + ": argument 'mapping' must be a file mapping");
  return *v.As<Napi::External<MappingHandle>>().Data();
}

Napi::Value mmapFile(const Napi::CallbackInfo& info) {
  // mmapFile(path): maps the whole file copy-on-write (writes to tensors never reach the file).
  Napi::Env env = info.Env();
  if (!info[0].IsString()) throw Napi::TypeError::New(env, "mmapFile: argument 'path' must be a string");
  std::string path = info[0].As<Napi::String>().Utf8Value();
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) throw Napi::Error::New(env, errnoText("mmapFile: cannot open", path));
  struct stat st;
  if (fstat(fd, &st) != 0) {
    ::close(fd);
    throw Napi::Error::New(env, errnoText("mmapFile: cannot stat", path));
  }
  auto mapping = std::make_shared<MappedFile>();
  mapping->size = static_cast<size_t>(st.st_size);
  mapping->path = path;
  if (mapping->size > 0) {
    mapping->data = mmap(nullptr, mapping->size, PROT_READ | PROT_WRITE, MAP_PRIVATE, fd, 0);
    if (mapping->data == MAP_FAILED) {
      ::close(fd);
      throw Napi::Error::New(env, errnoText("mmapFile: cannot map", path));
    }
  }
  ::close(fd);
  auto ext = Napi::External<MappingHandle>::New(env, new MappingHandle(std::move(mapping)),
                                                [](Napi::Env, MappingHandle* h) { delete h; });
  ext.TypeTag(&kMappingTag);
  return ext;
}

Napi::Value mappingSize(const Napi::CallbackInfo& info) {
  return Napi::Number::New(info.Env(), double(unwrapMapping(info[0], "mappingSize")->size));
}

Napi::Value mappingBytes(const Napi::CallbackInfo& info) {
  // mappingBytes(mapping, offset, length): a copy of a byte range (for headers).
  Napi::Env env = info.Env();
  auto& m = unwrapMapping(info[0], "mappingBytes");
  std::string o = "offset", l = "length";
  int64_t offset = toInt64(info[1], ArgContext{"mappingBytes", o, 1});
  int64_t length = toInt64(info[2], ArgContext{"mappingBytes", l, 2});
  if (offset < 0 || length < 0 || static_cast<size_t>(offset + length) > m->size)
    throw Napi::RangeError::New(env, "mappingBytes: range [" + std::to_string(offset) + ", " +
                                         std::to_string(offset + length) + ") is outside '" + m->path + "' (" +
                                         std::to_string(m->size) + " bytes)");
  return Napi::Buffer<uint8_t>::Copy(env, static_cast<const uint8_t*>(m->data) + offset, length);
}

Napi::Value tensorFromMapping(const Napi::CallbackInfo& info) {
  // tensorFromMapping(mapping, offset, shape, dtype): a CPU tensor viewing the mapped bytes (zero copy when the
  // offset is aligned to the element size, otherwise an aligned copy).
  Napi::Env env = info.Env();
  MappingHandle m = unwrapMapping(info[0], "tensorFromMapping");
  std::string o = "offset", s = "shape", d = "dtype";
  int64_t offset = toInt64(info[1], ArgContext{"tensorFromMapping", o, 1});
  auto shape = Arg<std::vector<int64_t>>::get(info[2], ArgContext{"tensorFromMapping", s, 2});
  auto dtype = Arg<at::ScalarType>::get(info[3], ArgContext{"tensorFromMapping", d, 3});
  try {
    int64_t numel = 1;
    for (int64_t x : shape) {
      TORCH_CHECK(x >= 0, "negative dimension in shape");
      numel *= x;
    }
    int64_t itemsize = static_cast<int64_t>(c10::elementSize(dtype));
    int64_t nbytes = numel * itemsize;
    TORCH_CHECK(offset >= 0 && static_cast<size_t>(offset + nbytes) <= m->size, "tensor bytes [", offset, ", ",
                offset + nbytes, ") are outside '", m->path, "' (", m->size, " bytes)");
    auto options = at::TensorOptions().dtype(dtype);
    if (nbytes == 0) return tensor_handle::wrap(env, at::empty(shape, options));
    uint8_t* ptr = static_cast<uint8_t*>(m->data) + offset;
    if (reinterpret_cast<uintptr_t>(ptr) % itemsize != 0) {
      at::Tensor t = at::empty(shape, options);
      std::memcpy(t.data_ptr(), ptr, nbytes);
      return tensor_handle::wrap(env, t);
    }
    at::Tensor t = at::from_blob(
        ptr, shape, [m](void*) mutable { m.reset(); }, options);
    return tensor_handle::wrap(env, t);
  } catch (...) {
    rethrowAsJs(env, "tensorFromMapping");
  }
}

Napi::Value writeTensorToFd(const Napi::CallbackInfo& info) {
  // writeTensorToFd(self, fd): appends the tensor's row-major bytes at the descriptor's position.
  Napi::Env env = info.Env();
  std::string s = "self", f = "fd";
  at::Tensor t = Arg<at::Tensor>::get(info[0], ArgContext{"writeTensorToFd", s, 0});
  int64_t fd = toInt64(info[1], ArgContext{"writeTensorToFd", f, 1});
  at::Tensor c;
  try {
    c = t.detach().to(at::kCPU).contiguous();
  } catch (...) {
    rethrowAsJs(env, "writeTensorToFd");
  }
  const uint8_t* p = static_cast<const uint8_t*>(c.data_ptr());
  size_t left = c.numel() * c.element_size();
  while (left > 0) {
    ssize_t n = ::write(static_cast<int>(fd), p, left);
    if (n < 0) {
      if (errno == EINTR) continue;
      throw Napi::Error::New(env, std::string("writeTensorToFd: write failed: ") + std::strerror(errno));
    }
    p += n;
    left -= static_cast<size_t>(n);
  }
  return env.Undefined();
}

}  // namespace

void registerStorageOps(Registry& r, Napi::Env env) {
  r.defRaw("mmapFile", &mmapFile, "path: string", "NativeMapping");
  r.defRaw("mappingSize", &mappingSize, "mapping: NativeMapping", "number");
  r.defRaw("mappingBytes", &mappingBytes, "mapping: NativeMapping, offset: number, length: number", "Buffer");
  r.defRaw("tensorFromMapping", &tensorFromMapping,
           "mapping: NativeMapping, offset: number, shape: number[], dtype: number", "NativeTensor");
  r.defRaw("writeTensorToFd", &writeTensorToFd, "self: NativeTensor, fd: number", "void");
}

}  // namespace moca
