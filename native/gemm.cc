// N-API surface of the sgemm: `matmul` (the Kernels.matmul contract of src/backend/types.ts), `matmulInfo`
// (tile and cache blocks, for benchmark printouts) and `fmaThroughput` (measured fp32 FMA peak).
// Checks only what is cheap (types, integer sizes, array lengths); the GEMM itself is in gemm_driver.cc.
#include <omp.h>

#include <chrono>
#include <cmath>
#include <exception>
#include <string>

#include "gemm_driver.h"
#include "gemm_packed.h"
#include "nexus.h"

namespace nexus {
namespace {

const gemm::Arch& activeArch() {
  switch (simdLevel()) {
    case SimdLevel::Avx512: return gemm::archAvx512();
    case SimdLevel::Avx2: return gemm::archAvx2();
    default: return gemm::archScalar();
  }
}

[[noreturn]] void rangeError(Napi::Env env, const std::string& msg, const char* kernel = "matmul") {
  throw Napi::RangeError::New(env, std::string("[cpu ") + kernel + "] " + msg);
}

int64_t sizeArg(const Napi::CallbackInfo& info, size_t i, const char* name) {
  const Napi::Value v = info[i];
  if (!v.IsNumber()) throw Napi::TypeError::New(info.Env(), std::string("[cpu matmul] ") + name + " must be a number");
  const double d = v.As<Napi::Number>().DoubleValue();
  if (!(d >= 0) || d != std::floor(d) || d > 9.0e15)
    rangeError(info.Env(), std::string(name) + " must be a non-negative integer, got " + std::to_string(d));
  return static_cast<int64_t>(d);
}

// r * c of two sizes (each below 2^53), taken in 128 bits and refused above 2^53 elements.
int64_t matrixSize(Napi::Env env, int64_t r, int64_t c, const char* shape, const char* kernel = "matmul") {
  const __int128 p = static_cast<__int128>(r) * c;
  if (p > (int64_t{1} << 53))
    rangeError(env, std::string(shape) + " is " + std::to_string(r) + " x " + std::to_string(c) + ": too large", kernel);
  return static_cast<int64_t>(p);
}

// Elements batch item `batch-1` reaches: (batch-1)*stride + size, in 128 bits (batch 2^33 times a stride of
// 2^31 is 2^64, which would wrap around in int64 and pass).
void checkLength(Napi::Env env, const char* name, size_t have, int64_t batch, int64_t stride, int64_t size,
                 const char* shape, const char* kernel = "matmul") {
  if (batch == 0 || size == 0) return;
  const __int128 need = static_cast<__int128>(batch - 1) * stride + size;
  if (static_cast<__int128>(have) < need) {
    const std::string needStr = need > INT64_MAX ? std::string("more than 2^63") : std::to_string(static_cast<int64_t>(need));
    rangeError(env, std::string(name) + " has " + std::to_string(have) + " elements, needs " + needStr + " (" + shape + ")", kernel);
  }
}

// matmul(c, a, b, batch, m, n, k, transA, transB, strideA, strideB, strideC, accumulate)
Napi::Value matmul(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (info.Length() < 13) rangeError(env, "expected 13 arguments, got " + std::to_string(info.Length()));
  gemm::GemmArgs g{};
  g.c = f32(info[0], "matmul c");
  g.a = f32(info[1], "matmul a");
  g.b = f32(info[2], "matmul b");
  g.batch = sizeArg(info, 3, "batch");
  g.m = sizeArg(info, 4, "m");
  g.n = sizeArg(info, 5, "n");
  g.k = sizeArg(info, 6, "k");
  g.transA = info[7].ToBoolean().Value();
  g.transB = info[8].ToBoolean().Value();
  g.strideA = sizeArg(info, 9, "strideA");
  g.strideB = sizeArg(info, 10, "strideB");
  g.strideC = sizeArg(info, 11, "strideC");
  g.accumulate = info[12].ToBoolean().Value();
  const int64_t sizeA = matrixSize(env, g.m, g.k, "a [m,k]"), sizeB = matrixSize(env, g.k, g.n, "b [k,n]");
  const int64_t sizeC = matrixSize(env, g.m, g.n, "c [m,n]");
  checkLength(env, "a", lengthOf(info[1]), g.batch, g.strideA, sizeA, "batch x [m,k]");
  checkLength(env, "b", lengthOf(info[2]), g.batch, g.strideB, sizeB, "batch x [k,n]");
  checkLength(env, "c", lengthOf(info[0]), g.batch, g.strideC, sizeC, "batch x [m,n]");
  if (g.batch == 0 || sizeC == 0) return env.Undefined();  // no output element: nothing to compute
  // Some operand must advance with the batch, so the array lengths bound how many items there are (every
  // stride 0 would repeat one product `batch` times: 2^33 of them pass every length check and never end).
  const bool advances = g.strideC > 0 || (g.k > 0 && (g.strideA > 0 || g.strideB > 0));
  if (g.batch > 1 && !advances)
    rangeError(env, "batch " + std::to_string(g.batch) + " with no operand advancing (every stride is 0, or k = 0 and strideC = 0)");
  try {
    gemm::sgemm(activeArch(), g);
  } catch (const std::exception& e) {
    throw Napi::Error::New(env, std::string("[cpu matmul] ") + e.what());
  }
  return env.Undefined();
}

Napi::Value matmulInfo(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  const gemm::Arch& arch = activeArch();
  const gemm::Blocking bl = gemm::blockingFor(arch);
  Napi::Object o = Napi::Object::New(env);
  o.Set("mr", bl.mr);
  o.Set("nr", bl.nr);
  o.Set("mc", bl.mc);
  o.Set("kc", bl.kc);
  o.Set("nc", bl.nc);
  o.Set("simd", arch.name);
  o.Set("threads", numThreads());
  return o;
}

// fmaThroughput(iters) -> {gflops, lanes, threads, seconds}: every OpenMP thread runs `iters` iterations of a
// dependency-free FMA loop at the widest vector width the hardware has (NEXUS_SIMD does not lower it: this
// measures the machine's peak, not the dispatch choice).
Napi::Value fmaThroughput(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  const double itersD = info.Length() > 0 && info[0].IsNumber() ? info[0].As<Napi::Number>().DoubleValue() : 2e7;
  // 1e8 iterations take ~0.5 s per thread: more is a hang, not a measurement
  if (!(itersD >= 1) || itersD > 1e8) throw Napi::RangeError::New(env, "[cpu fmaThroughput] iters must be in [1, 1e8]");
  const int64_t iters = static_cast<int64_t>(itersD);
  __builtin_cpu_init();
  const bool has512 = __builtin_cpu_supports("avx512f");
  const bool has2 = __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
  if (!has512 && !has2) throw Napi::Error::New(env, "[cpu fmaThroughput] needs AVX2+FMA or AVX-512");
  const int threads = numThreads();
  double flops = 0;
  const auto t0 = std::chrono::steady_clock::now();
#pragma omp parallel num_threads(threads) reduction(+ : flops)
  flops += has512 ? gemm::fmaLoopAvx512(iters) : gemm::fmaLoopAvx2(iters);
  const double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  Napi::Object o = Napi::Object::New(env);
  o.Set("gflops", flops / secs / 1e9);
  o.Set("lanes", has512 ? 16 : 8);
  o.Set("threads", threads);
  o.Set("seconds", secs);
  return o;
}

// packedWeightSize(n, k) -> floats packWeight writes for a [n, k] weight on this CPU.
Napi::Value packedWeightSize(const Napi::CallbackInfo& info) {
  if (info.Length() < 2) rangeError(info.Env(), "expected 2 arguments", "packedWeightSize");
  const int64_t n = sizeArg(info, 0, "n"), k = sizeArg(info, 1, "k");
  matrixSize(info.Env(), n, k, "[n,k]", "packedWeightSize");
  return Napi::Number::New(info.Env(), static_cast<double>(gemm::packedWeightSize(activeArch(), n, k)));
}

// packWeight(out, w, n, k)
Napi::Value packWeight(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (info.Length() < 4) rangeError(env, "expected 4 arguments, got " + std::to_string(info.Length()), "packWeight");
  float* out = f32(info[0], "packWeight out");
  const float* w = f32(info[1], "packWeight w");
  const int64_t n = sizeArg(info, 2, "n"), k = sizeArg(info, 3, "k");
  checkLength(env, "w", lengthOf(info[1]), 1, 0, matrixSize(env, n, k, "w [n,k]", "packWeight"), "n * k", "packWeight");
  checkLength(env, "out", lengthOf(info[0]), 1, 0, gemm::packedWeightSize(activeArch(), n, k), "packedWeightSize(n, k)",
              "packWeight");
  gemm::packWeight(activeArch(), w, n, k, out);
  return env.Undefined();
}

// linearPacked(y, x, packed, m, n, k)
Napi::Value linearPacked(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (info.Length() < 6) rangeError(env, "expected 6 arguments, got " + std::to_string(info.Length()), "linearPacked");
  float* y = f32(info[0], "linearPacked y");
  const float* x = f32(info[1], "linearPacked x");
  const float* packed = f32(info[2], "linearPacked packed");
  const int64_t m = sizeArg(info, 3, "m"), n = sizeArg(info, 4, "n"), k = sizeArg(info, 5, "k");
  checkLength(env, "y", lengthOf(info[0]), 1, 0, matrixSize(env, m, n, "y [m,n]", "linearPacked"), "m * n", "linearPacked");
  checkLength(env, "x", lengthOf(info[1]), 1, 0, matrixSize(env, m, k, "x [m,k]", "linearPacked"), "m * k", "linearPacked");
  matrixSize(env, n, k, "packed [n,k]", "linearPacked");
  checkLength(env, "packed", lengthOf(info[2]), 1, 0, gemm::packedWeightSize(activeArch(), n, k), "packedWeightSize(n, k)",
              "linearPacked");
  try {
    gemm::linearPacked(activeArch(), gemm::blockingFor(activeArch()), y, x, packed, m, n, k);
  } catch (const std::exception& e) {
    throw Napi::Error::New(env, std::string("[cpu linearPacked] ") + e.what());
  }
  return env.Undefined();
}

}  // namespace

void registerGemm(Napi::Env env, Napi::Object exports) {
  exports.Set("matmul", Napi::Function::New(env, matmul, "matmul"));
  exports.Set("matmulInfo", Napi::Function::New(env, matmulInfo, "matmulInfo"));
  exports.Set("fmaThroughput", Napi::Function::New(env, fmaThroughput, "fmaThroughput"));
  exports.Set("packedWeightSize", Napi::Function::New(env, packedWeightSize, "packedWeightSize"));
  exports.Set("packWeight", Napi::Function::New(env, packWeight, "packWeight"));
  exports.Set("linearPacked", Napi::Function::New(env, linearPacked, "linearPacked"));
}

}  // namespace nexus
