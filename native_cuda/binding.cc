// N-API entry point of the `cuda` backend (nexus_cuda.node): device selection, the stream, device memory calls and one
// function per kernel of src/backend/types.ts, taking device addresses (numbers) and explicit sizes, as declared by
// CudaNative in src/backend/cuda.ts. It validates what is cheap (argument types, integer sizes, rank limits) and turns
// every CUDA / cuBLAS failure into a JS Error tagged with the kernel; it never exits or prints. Kernels run
// asynchronously on one stream; download() and synchronize() wait for it.
#include <napi.h>

#include <cmath>
#include <string>
#include <vector>

#include "kernels.h"

namespace nxc {

namespace {
cudaStream_t g_stream = nullptr;
int g_sms = 0;
bool g_ready = false;
}  // namespace

cudaStream_t stream() { return g_stream; }
int smCount() { return g_sms > 0 ? g_sms : 1; }

void check(cudaError_t err, const char* what) {
  if (err != cudaSuccess) throw CudaError(std::string("[cuda ") + what + "] " + cudaGetErrorName(err) + ": " + cudaGetErrorString(err));
}

void checkLaunch(const char* what) { check(cudaGetLastError(), what); }

namespace {

/** Argument readers tagged with the kernel name, as native/fused_args.h does for the cpu addon. */
class Args {
 public:
  Args(const Napi::CallbackInfo& info, const char* name, size_t count) : info_(info), name_(name) {
    if (info.Length() < count) fail("expected " + std::to_string(count) + " arguments, got " + std::to_string(info.Length()));
  }
  [[noreturn]] void fail(const std::string& msg) const { throw Napi::RangeError::New(info_.Env(), std::string("[cuda ") + name_ + "] " + msg); }
  double num(size_t i, const char* what) const {
    if (!info_[i].IsNumber()) throw Napi::TypeError::New(info_.Env(), std::string("[cuda ") + name_ + "] " + what + " must be a number");
    return info_[i].As<Napi::Number>().DoubleValue();
  }
  int64_t size(size_t i, const char* what) const {
    const double d = num(i, what);
    if (!(d >= 0) || d != std::floor(d) || d > 9.0e15) fail(std::string(what) + " must be a non-negative integer");
    return static_cast<int64_t>(d);
  }
  int64_t integer(size_t i, const char* what) const {
    const double d = num(i, what);
    if (d != std::floor(d) || std::fabs(d) > 9.0e15) fail(std::string(what) + " must be an integer");
    return static_cast<int64_t>(d);
  }
  /** A device address; 0 (null) only where allowed. */
  template <typename T>
  T* ptr(size_t i, const char* what, bool nullable = false) const {
    const int64_t a = size(i, what);
    if (a == 0 && !nullable) fail(std::string(what) + " is a null device address");
    return reinterpret_cast<T*>(static_cast<uintptr_t>(a));
  }
  bool flag(size_t i) const { return info_[i].ToBoolean().Value(); }
  std::vector<int64_t> ints(size_t i, const char* what) const {
    if (!info_[i].IsArray()) fail(std::string(what) + " must be an array of integers");
    const Napi::Array arr = info_[i].As<Napi::Array>();
    std::vector<int64_t> out(arr.Length());
    for (uint32_t k = 0; k < arr.Length(); ++k) {
      const Napi::Value e = arr.Get(k);
      const double d = e.IsNumber() ? e.As<Napi::Number>().DoubleValue() : NAN;
      if (d != std::floor(d) || std::fabs(d) > 9.0e15) fail(std::string(what) + " must hold integers");
      out[k] = static_cast<int64_t>(d);
    }
    return out;
  }
  /** A strided layout from shape and up to two stride arrays (coalesced in TypeScript; at most kMaxDims dims). */
  Strided layout(size_t shapeAt, size_t st0At, long st1At) const {
    const std::vector<int64_t> shape = ints(shapeAt, "shape");
    const std::vector<int64_t> s0 = ints(st0At, "strides");
    const std::vector<int64_t> s1 = st1At >= 0 ? ints(static_cast<size_t>(st1At), "strides") : std::vector<int64_t>(shape.size(), 0);
    if (shape.size() > static_cast<size_t>(kMaxDims)) fail("more than " + std::to_string(kMaxDims) + " dims after coalescing");
    if (s0.size() != shape.size() || s1.size() != shape.size()) fail("shape and strides differ in rank");
    Strided l{};
    l.nd = static_cast<int>(shape.size());
    for (size_t d = 0; d < shape.size(); ++d) {
      if (shape[d] < 0) fail("shape sizes must not be negative");
      l.shape[d] = shape[d];
      l.st0[d] = s0[d];
      l.st1[d] = s1[d];
    }
    return l;
  }
  Napi::Env env() const { return info_.Env(); }
  const Napi::CallbackInfo& info() const { return info_; }

 private:
  const Napi::CallbackInfo& info_;
  const char* name_;
};

using Fn = Napi::Value (*)(const Napi::CallbackInfo&);

/** Runs body, turning C++ / CUDA errors into JS errors (N-API errors pass through). */
template <typename F>
Napi::Value guarded(const Napi::CallbackInfo& info, F body) {
  try {
    body();
  } catch (const Napi::Error&) {
    throw;
  } catch (const std::exception& e) {
    throw Napi::Error::New(info.Env(), e.what());
  }
  return info.Env().Undefined();
}

void requireReady(const Napi::CallbackInfo& info) {
  if (!g_ready) throw Napi::Error::New(info.Env(), "[cuda] init() has not succeeded");
}

// ---- device, memory, info ----

Napi::Value init(const Napi::CallbackInfo& info) {
  if (g_ready) return info.Env().Null();
  int count = 0;
  cudaError_t err = cudaGetDeviceCount(&count);
  if (err != cudaSuccess) {
    cudaGetLastError();
    return Napi::String::New(info.Env(), std::string("no CUDA device: ") + cudaGetErrorName(err) + " (" + cudaGetErrorString(err) + ")");
  }
  if (count == 0) return Napi::String::New(info.Env(), "no CUDA device found");
  try {
    check(cudaSetDevice(0), "init");
    check(cudaDeviceGetAttribute(&g_sms, cudaDevAttrMultiProcessorCount, 0), "init");
    check(cudaStreamCreateWithFlags(&g_stream, cudaStreamNonBlocking), "init");
  } catch (const std::exception& e) {
    return Napi::String::New(info.Env(), e.what());
  }
  const std::string gemm = gemmInit();
  if (!gemm.empty()) return Napi::String::New(info.Env(), gemm);
  g_ready = true;
  return info.Env().Null();
}

Napi::Value deviceInfo(const Napi::CallbackInfo& info) {
  requireReady(info);
  Napi::Object o = Napi::Object::New(info.Env());
  try {
    cudaDeviceProp p{};
    check(cudaGetDeviceProperties(&p, 0), "deviceInfo");
    size_t freeB = 0, totalB = 0;
    check(cudaMemGetInfo(&freeB, &totalB), "deviceInfo");
    int driver = 0, runtime = 0;
    cudaDriverGetVersion(&driver);
    cudaRuntimeGetVersion(&runtime);
    auto ver = [](int v) { return std::to_string(v / 1000) + "." + std::to_string((v % 1000) / 10); };
    o.Set("name", std::string(p.name));
    o.Set("computeCapability", std::to_string(p.major) + "." + std::to_string(p.minor));
    o.Set("multiprocessors", p.multiProcessorCount);
    o.Set("totalBytes", static_cast<double>(totalB));
    o.Set("freeBytes", static_cast<double>(freeB));
    o.Set("driverVersion", ver(driver));
    o.Set("runtimeVersion", ver(runtime));
    o.Set("cublasLt", gemmLibrary());
  } catch (const std::exception& e) {
    throw Napi::Error::New(info.Env(), e.what());
  }
  return o;
}

Napi::Value mallocFn(const Napi::CallbackInfo& info) {
  requireReady(info);
  Args a(info, "malloc", 1);
  const int64_t bytes = a.size(0, "bytes");
  void* p = nullptr;
  const cudaError_t err = cudaMalloc(&p, static_cast<size_t>(bytes));
  if (err == cudaErrorMemoryAllocation) {
    cudaGetLastError();  // clear it: out of memory is reported to the allocator, which says so with its statistics
    return info.Env().Null();
  }
  if (err != cudaSuccess) throw Napi::Error::New(info.Env(), std::string("[cuda malloc] ") + cudaGetErrorString(err));
  const uint64_t addr = reinterpret_cast<uint64_t>(p);
  if (addr > (uint64_t{1} << 53)) {
    cudaFree(p);
    throw Napi::Error::New(info.Env(), "[cuda malloc] the device address does not fit a JavaScript number");
  }
  return Napi::Number::New(info.Env(), static_cast<double>(addr));
}

Napi::Value freeFn(const Napi::CallbackInfo& info) {
  requireReady(info);
  Args a(info, "free", 1);
  void* p = a.ptr<void>(0, "addr");
  return guarded(info, [&] { check(cudaFree(p), "free"); });
}

/** The bytes of a Float32Array / Int32Array argument. */
std::pair<void*, size_t> hostBytes(const Args& a, size_t i, const char* what) {
  const Napi::Value v = a.info()[i];
  if (!v.IsTypedArray()) a.fail(std::string(what) + " must be a Float32Array or Int32Array");
  const Napi::TypedArray t = v.As<Napi::TypedArray>();
  if (t.TypedArrayType() != napi_float32_array && t.TypedArrayType() != napi_int32_array)
    a.fail(std::string(what) + " must be a Float32Array or Int32Array");
  return {static_cast<uint8_t*>(t.ArrayBuffer().Data()) + t.ByteOffset(), t.ByteLength()};
}

Napi::Value upload(const Napi::CallbackInfo& info) {
  requireReady(info);
  Args a(info, "upload", 2);
  void* dst = a.ptr<void>(0, "addr");
  const auto [src, bytes] = hostBytes(a, 1, "src");
  // from pageable memory the copy is staged before this returns, so the JS array may change or go right after
  return guarded(info, [&] { check(cudaMemcpyAsync(dst, src, bytes, cudaMemcpyHostToDevice, g_stream), "upload"); });
}

Napi::Value download(const Napi::CallbackInfo& info) {
  requireReady(info);
  Args a(info, "download", 2);
  const auto [dst, bytes] = hostBytes(a, 0, "dst");
  const void* src = a.ptr<void>(1, "addr");
  return guarded(info, [&] {
    check(cudaMemcpyAsync(dst, src, bytes, cudaMemcpyDeviceToHost, g_stream), "download");
    check(cudaStreamSynchronize(g_stream), "download (a kernel queued earlier failed)");
  });
}

Napi::Value synchronize(const Napi::CallbackInfo& info) {
  requireReady(info);
  return guarded(info, [&] { check(cudaStreamSynchronize(g_stream), "synchronize (a kernel queued earlier failed)"); });
}

// ---- kernels: argument lists as CudaNative in src/backend/cuda.ts ----

#define KERNEL(name, count) \
  requireReady(info);       \
  Args a(info, name, count);

Napi::Value unaryFn(const Napi::CallbackInfo& info) {
  KERNEL("unary", 6);
  const int op = static_cast<int>(a.size(0, "op"));
  if (op > 23) a.fail("unknown unary op code " + std::to_string(op));
  return guarded(info, [&] {
    unary(op, a.ptr<float>(1, "out"), a.ptr<const float>(2, "x"), a.size(3, "n"), static_cast<float>(a.num(4, "p0")),
          static_cast<float>(a.num(5, "p1")));
  });
}

Napi::Value binaryFn(const Napi::CallbackInfo& info) {
  KERNEL("binary", 8);
  const int op = static_cast<int>(a.size(0, "op"));
  if (op > 9) a.fail("unknown binary op code " + std::to_string(op));
  const Strided l = a.layout(5, 6, 7);
  return guarded(info, [&] { binary(op, a.ptr<float>(1, "out"), a.ptr<const float>(2, "a"), a.ptr<const float>(3, "b"), a.size(4, "n"), l); });
}

Napi::Value whereFn(const Napi::CallbackInfo& info) {
  KERNEL("where", 5);
  return guarded(info, [&] {
    where(a.ptr<float>(0, "out"), a.ptr<const float>(1, "cond"), a.ptr<const float>(2, "a"), a.ptr<const float>(3, "b"), a.size(4, "n"));
  });
}

Napi::Value fillFn(const Napi::CallbackInfo& info) {
  KERNEL("fill", 4);
  return guarded(info, [&] { fill(a.ptr<void>(0, "out"), a.size(1, "n"), static_cast<float>(a.num(2, "value")), a.flag(3)); });
}

Napi::Value castFn(const Napi::CallbackInfo& info) {
  KERNEL("cast", 5);
  return guarded(info, [&] { cast(a.ptr<void>(0, "out"), a.ptr<const void>(1, "x"), a.size(2, "n"), a.flag(3), a.flag(4)); });
}

Napi::Value sumFn(const Napi::CallbackInfo& info) {
  KERNEL("sum", 5);
  return guarded(info, [&] { sum(a.ptr<float>(0, "out"), a.ptr<const float>(1, "x"), a.size(2, "outer"), a.size(3, "n"), a.size(4, "inner")); });
}

Napi::Value maxFn(const Napi::CallbackInfo& info) {
  KERNEL("max", 6);
  return guarded(info, [&] {
    max(a.ptr<float>(0, "out"), a.ptr<int32_t>(1, "idx"), a.ptr<const float>(2, "x"), a.size(3, "outer"), a.size(4, "n"), a.size(5, "inner"));
  });
}

Napi::Value logsumexpFn(const Napi::CallbackInfo& info) {
  KERNEL("logsumexp", 5);
  return guarded(info, [&] { logsumexp(a.ptr<float>(0, "out"), a.ptr<const float>(1, "x"), a.size(2, "outer"), a.size(3, "n"), a.size(4, "inner")); });
}

Napi::Value matmulFn(const Napi::CallbackInfo& info) {
  KERNEL("matmul", 16);
  const int math = static_cast<int>(a.size(13, "math"));
  if (math > 2) a.fail("unknown math code " + std::to_string(math));
  return guarded(info, [&] {
    matmul(a.ptr<float>(0, "c"), a.ptr<const float>(1, "a"), a.ptr<const float>(2, "b"), a.size(3, "batch"), a.size(4, "m"), a.size(5, "n"),
           a.size(6, "k"), a.flag(7), a.flag(8), a.size(9, "strideA"), a.size(10, "strideB"), a.size(11, "strideC"), a.flag(12),
           static_cast<Math>(math), a.ptr<void>(14, "scratchA", true), a.ptr<void>(15, "scratchB", true));
  });
}

Napi::Value copyStridedFn(const Napi::CallbackInfo& info) {
  KERNEL("copyStrided", 6);
  const Strided l = a.layout(3, 4, -1);
  return guarded(info, [&] { copyStrided(a.ptr<uint32_t>(0, "out"), a.ptr<const uint32_t>(1, "x"), a.size(2, "n"), l, a.size(5, "offset")); });
}

Napi::Value copyToStridedFn(const Napi::CallbackInfo& info) {
  KERNEL("copyToStrided", 6);
  const Strided l = a.layout(3, 4, -1);
  return guarded(info, [&] { copyToStrided(a.ptr<uint32_t>(0, "out"), a.ptr<const uint32_t>(1, "x"), a.size(2, "n"), l, a.size(5, "outOffset")); });
}

Napi::Value gatherFn(const Napi::CallbackInfo& info) {
  KERNEL("gather", 7);
  return guarded(info, [&] {
    gather(a.ptr<float>(0, "out"), a.ptr<const float>(1, "x"), a.ptr<const int32_t>(2, "idx"), a.size(3, "outer"), a.size(4, "nIn"),
           a.size(5, "nIdx"), a.size(6, "inner"));
  });
}

Napi::Value scatterAddFn(const Napi::CallbackInfo& info) {
  KERNEL("scatterAdd", 7);
  return guarded(info, [&] {
    scatterAdd(a.ptr<float>(0, "out"), a.ptr<const float>(1, "src"), a.ptr<const int32_t>(2, "idx"), a.size(3, "outer"), a.size(4, "nOut"),
               a.size(5, "nIdx"), a.size(6, "inner"));
  });
}

Napi::Value indexSelectFn(const Napi::CallbackInfo& info) {
  KERNEL("indexSelect", 6);
  return guarded(info, [&] {
    indexSelect(a.ptr<float>(0, "out"), a.ptr<const float>(1, "table"), a.ptr<const int32_t>(2, "ids"), a.size(3, "n"), a.size(4, "d"),
                a.size(5, "rows"));
  });
}

Napi::Value indexAddFn(const Napi::CallbackInfo& info) {
  KERNEL("indexAdd", 6);
  return guarded(info, [&] {
    indexAdd(a.ptr<float>(0, "table"), a.ptr<const float>(1, "src"), a.ptr<const int32_t>(2, "ids"), a.size(3, "n"), a.size(4, "d"),
             a.size(5, "rows"));
  });
}

Napi::Value softmaxFn(const Napi::CallbackInfo& info) {
  KERNEL("softmax", 5);
  return guarded(info, [&] { softmax(a.ptr<float>(0, "out"), a.ptr<const float>(1, "x"), a.size(2, "rows"), a.size(3, "n"), a.flag(4)); });
}

Napi::Value tokenLogprobsFn(const Napi::CallbackInfo& info) {
  KERNEL("tokenLogprobs", 6);
  return guarded(info, [&] {
    tokenLogprobs(a.ptr<float>(0, "out"), a.ptr<float>(1, "lse"), a.ptr<const float>(2, "logits"), a.ptr<const int32_t>(3, "targets"),
                  a.size(4, "rows"), a.size(5, "v"));
  });
}

Napi::Value tokenLogprobsBackwardFn(const Napi::CallbackInfo& info) {
  KERNEL("tokenLogprobsBackward", 7);
  return guarded(info, [&] {
    tokenLogprobsBackward(a.ptr<float>(0, "dlogits"), a.ptr<const float>(1, "dout"), a.ptr<const float>(2, "logits"), a.ptr<const float>(3, "lse"),
                          a.ptr<const int32_t>(4, "targets"), a.size(5, "rows"), a.size(6, "v"));
  });
}

Napi::Value rmsNormFn(const Napi::CallbackInfo& info) {
  KERNEL("rmsNorm", 7);
  return guarded(info, [&] {
    rmsNorm(a.ptr<float>(0, "y"), a.ptr<float>(1, "rstd"), a.ptr<const float>(2, "x"), a.ptr<const float>(3, "w"), a.size(4, "rows"),
            a.size(5, "d"), static_cast<float>(a.num(6, "eps")));
  });
}

Napi::Value rmsNormBackwardFn(const Napi::CallbackInfo& info) {
  KERNEL("rmsNormBackward", 10);
  const int64_t chunks = a.size(9, "chunks");
  if (chunks < 1) a.fail("chunks must be at least 1");
  return guarded(info, [&] {
    rmsNormBackward(a.ptr<float>(0, "dx"), a.ptr<float>(1, "dw"), a.ptr<const float>(2, "dy"), a.ptr<const float>(3, "x"),
                    a.ptr<const float>(4, "w"), a.ptr<const float>(5, "rstd"), a.size(6, "rows"), a.size(7, "d"), a.ptr<float>(8, "partials"),
                    chunks);
  });
}

Napi::Value ropeFn(const Napi::CallbackInfo& info) {
  KERNEL("rope", 9);
  const int64_t dh = a.size(7, "dh");
  if (dh % 2 != 0) a.fail("head dim must be even");
  return guarded(info, [&] {
    rope(a.ptr<float>(0, "out"), a.ptr<const float>(1, "x"), a.ptr<const float>(2, "cos"), a.ptr<const float>(3, "sin"), a.size(4, "b"),
         a.size(5, "h"), a.size(6, "t"), dh, a.flag(8));
  });
}

AttentionShape attentionShape(const Args& a, size_t at, size_t mathAt) {
  AttentionShape s{};
  s.b = a.size(at, "b");
  s.h = a.size(at + 1, "h");
  s.hkv = a.size(at + 2, "hkv");
  s.t = a.size(at + 3, "t");
  s.s = a.size(at + 4, "s");
  s.dh = a.size(at + 5, "dh");
  s.scale = static_cast<float>(a.num(at + 6, "scale"));
  s.causal = a.flag(at + 7);
  const int math = static_cast<int>(a.size(mathAt, "math"));
  if (math > 2) a.fail("unknown math code " + std::to_string(math));
  s.math = static_cast<Math>(math);
  if (s.hkv == 0 || s.h % s.hkv != 0) a.fail("h (" + std::to_string(s.h) + ") must be a multiple of hkv (" + std::to_string(s.hkv) + ")");
  return s;
}

Napi::Value attentionFn(const Napi::CallbackInfo& info) {
  KERNEL("attention", 16);
  AttentionShape s = attentionShape(a, 6, 15);
  s.sCap = a.size(14, "sCap");
  if (s.sCap < s.s) a.fail("sCap must be at least s");
  return guarded(info, [&] {
    attention(a.ptr<float>(0, "out"), a.ptr<float>(1, "lse"), a.ptr<const float>(2, "q"), a.ptr<const float>(3, "k"), a.ptr<const float>(4, "v"),
              a.ptr<const float>(5, "keyMask", true), s);
  });
}

Napi::Value attentionBackwardFn(const Napi::CallbackInfo& info) {
  KERNEL("attentionBackward", 20);
  AttentionShape s = attentionShape(a, 10, 18);
  s.sCap = s.s;
  return guarded(info, [&] {
    attentionBackward(a.ptr<float>(0, "dq"), a.ptr<float>(1, "dk"), a.ptr<float>(2, "dv"), a.ptr<const float>(3, "dout"), a.ptr<const float>(4, "q"),
                      a.ptr<const float>(5, "k"), a.ptr<const float>(6, "v"), a.ptr<const float>(7, "out"), a.ptr<const float>(8, "lse"),
                      a.ptr<const float>(9, "keyMask", true), s, a.ptr<float>(19, "dsum"));
  });
}

Napi::Value swigluFn(const Napi::CallbackInfo& info) {
  KERNEL("swiglu", 4);
  return guarded(info, [&] { swiglu(a.ptr<float>(0, "out"), a.ptr<const float>(1, "gate"), a.ptr<const float>(2, "up"), a.size(3, "n")); });
}

Napi::Value swigluBackwardFn(const Napi::CallbackInfo& info) {
  KERNEL("swigluBackward", 6);
  return guarded(info, [&] {
    swigluBackward(a.ptr<float>(0, "dgate"), a.ptr<float>(1, "dup"), a.ptr<const float>(2, "dout"), a.ptr<const float>(3, "gate"),
                   a.ptr<const float>(4, "up"), a.size(5, "n"));
  });
}

Napi::Value sortFn(const Napi::CallbackInfo& info) {
  KERNEL("sort", 8);
  return guarded(info, [&] {
    sort(a.ptr<float>(0, "values"), a.ptr<int32_t>(1, "indices"), a.ptr<const float>(2, "x"), a.size(3, "outer"), a.size(4, "n"),
         a.size(5, "inner"), a.flag(6), a.ptr<float>(7, "scratch"));
  });
}

Napi::Value adamwFn(const Napi::CallbackInfo& info) {
  KERNEL("adamw", 12);
  float hp[7];
  const char* names[7] = {"lr", "beta1", "beta2", "eps", "weightDecay", "bc1", "bc2"};
  for (int i = 0; i < 7; ++i) hp[i] = static_cast<float>(a.num(5 + i, names[i]));
  return guarded(info, [&] {
    adamw(a.ptr<float>(0, "p"), a.ptr<const float>(1, "g"), a.ptr<float>(2, "m"), a.ptr<float>(3, "v"), a.size(4, "n"), hp);
  });
}

Napi::Value adamwMultiFn(const Napi::CallbackInfo& info) {
  KERNEL("adamwMulti", 3);
  auto f64 = [&](size_t i, const char* what) {
    if (!info[i].IsTypedArray() || info[i].As<Napi::TypedArray>().TypedArrayType() != napi_float64_array)
      a.fail(std::string(what) + " must be a Float64Array");
    return info[i].As<Napi::Float64Array>();
  };
  const Napi::Float64Array addrs = f64(0, "addrs"), sizes = f64(1, "sizes"), hyper = f64(2, "hyper");
  const size_t count = sizes.ElementLength();
  if (addrs.ElementLength() != 4 * count || hyper.ElementLength() != 7 * count) a.fail("addrs needs 4 and hyper 7 entries per tensor");
  std::vector<uint64_t> ad(4 * count);
  std::vector<int64_t> sz(count);
  std::vector<float> hp(7 * count);
  for (size_t i = 0; i < 4 * count; ++i) {
    if (addrs[i] <= 0) a.fail("a null device address");
    ad[i] = static_cast<uint64_t>(addrs[i]);
  }
  for (size_t i = 0; i < count; ++i) sz[i] = static_cast<int64_t>(sizes[i]);
  for (size_t i = 0; i < 7 * count; ++i) hp[i] = static_cast<float>(hyper[i]);
  return guarded(info, [&] { adamwMulti(ad.data(), sz.data(), hp.data(), static_cast<int>(count)); });
}

Napi::Value pagedKvWriteFn(const Napi::CallbackInfo& info) {
  KERNEL("pagedKvWrite", 9);
  return guarded(info, [&] {
    pagedKvWrite(a.ptr<float>(0, "kCache"), a.ptr<float>(1, "vCache"), a.ptr<const float>(2, "k"), a.ptr<const float>(3, "v"),
                 a.ptr<const int32_t>(4, "slots"), a.size(5, "n"), a.size(6, "hkv"), a.size(7, "dh"), a.size(8, "blockSize"));
  });
}

Napi::Value copyBlocksFn(const Napi::CallbackInfo& info) {
  KERNEL("copyBlocks", 5);
  return guarded(info, [&] {
    copyBlocks(a.ptr<float>(0, "cache"), a.ptr<const int32_t>(1, "src"), a.ptr<const int32_t>(2, "dst"), a.size(3, "n"), a.size(4, "blockElems"));
  });
}

Napi::Value pagedAttentionFn(const Napi::CallbackInfo& info) {
  KERNEL("pagedAttention", 15);
  const int64_t h = a.size(9, "h"), hkv = a.size(10, "hkv");
  if (hkv == 0 || h % hkv != 0) a.fail("h must be a multiple of hkv");
  return guarded(info, [&] {
    pagedAttention(a.ptr<float>(0, "out"), a.ptr<const float>(1, "q"), a.ptr<const float>(2, "kCache"), a.ptr<const float>(3, "vCache"),
                   a.ptr<const int32_t>(4, "blockTables"), a.ptr<const int32_t>(5, "contextLens"), a.ptr<const int32_t>(6, "queryStarts"),
                   a.size(7, "numSeqs"), a.size(8, "n"), h, hkv, a.size(11, "dh"), a.size(12, "blockSize"), a.size(13, "maxBlocks"),
                   static_cast<float>(a.num(14, "scale")));
  });
}

Napi::Object Init(Napi::Env env, Napi::Object exports) {
  const std::pair<const char*, Fn> fns[] = {
      {"init", init},
      {"deviceInfo", deviceInfo},
      {"malloc", mallocFn},
      {"free", freeFn},
      {"upload", upload},
      {"download", download},
      {"synchronize", synchronize},
      {"unary", unaryFn},
      {"binary", binaryFn},
      {"where", whereFn},
      {"fill", fillFn},
      {"cast", castFn},
      {"sum", sumFn},
      {"max", maxFn},
      {"logsumexp", logsumexpFn},
      {"matmul", matmulFn},
      {"copyStrided", copyStridedFn},
      {"copyToStrided", copyToStridedFn},
      {"gather", gatherFn},
      {"scatterAdd", scatterAddFn},
      {"indexSelect", indexSelectFn},
      {"indexAdd", indexAddFn},
      {"softmax", softmaxFn},
      {"tokenLogprobs", tokenLogprobsFn},
      {"tokenLogprobsBackward", tokenLogprobsBackwardFn},
      {"rmsNorm", rmsNormFn},
      {"rmsNormBackward", rmsNormBackwardFn},
      {"rope", ropeFn},
      {"attention", attentionFn},
      {"attentionBackward", attentionBackwardFn},
      {"swiglu", swigluFn},
      {"swigluBackward", swigluBackwardFn},
      {"sort", sortFn},
      {"pagedKvWrite", pagedKvWriteFn},
      {"copyBlocks", copyBlocksFn},
      {"pagedAttention", pagedAttentionFn},
      {"adamw", adamwFn},
      {"adamwMulti", adamwMultiFn},
  };
  for (const auto& [name, fn] : fns) exports.Set(name, Napi::Function::New(env, fn, name));
  return exports;
}

}  // namespace
}  // namespace nxc

static Napi::Object InitNexusCuda(Napi::Env env, Napi::Object exports) { return nxc::Init(env, exports); }

NODE_API_MODULE(nexus_cuda, InitNexusCuda)
