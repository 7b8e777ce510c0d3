// Shared declarations of the native CPU backend: each kernel file registers its N-API functions here.
// Native code only loops over contiguous memory it is handed; TypeScript validates shapes before calling.
#pragma once
#include <napi.h>
#include <cstdint>

namespace nexus {

enum class SimdLevel { Scalar = 0, Avx2 = 1, Avx512 = 2 };
SimdLevel simdLevel();          // detected once at load; NEXUS_SIMD=scalar|avx2|avx512 may lower it
const char* simdLevelName(SimdLevel level);
int numThreads();               // OpenMP threads used by kernels

// Typed-array access; throws a JS TypeError naming `what` when the argument has the wrong type.
float* f32(const Napi::Value& v, const char* what);
int32_t* i32(const Napi::Value& v, const char* what);
size_t lengthOf(const Napi::Value& v);

void registerGemm(Napi::Env env, Napi::Object exports);
void registerFused(Napi::Env env, Napi::Object exports);
void registerElementwise(Napi::Env env, Napi::Object exports);
void registerDecode(Napi::Env env, Napi::Object exports);

}  // namespace nexus
