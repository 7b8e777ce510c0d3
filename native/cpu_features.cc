// Runtime CPU feature detection and typed-array helpers shared by every kernel file.
#include "nexus.h"
#include <cstdlib>
#include <cstring>
#include <omp.h>

namespace nexus {

static SimdLevel detect() {
  __builtin_cpu_init();
  SimdLevel hw = SimdLevel::Scalar;
  if (__builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") && __builtin_cpu_supports("avx512vl")) {
    hw = SimdLevel::Avx512;
  } else if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma")) {
    hw = SimdLevel::Avx2;
  }
  const char* want = std::getenv("NEXUS_SIMD");
  if (want != nullptr) {
    SimdLevel w = hw;
    if (std::strcmp(want, "scalar") == 0) w = SimdLevel::Scalar;
    else if (std::strcmp(want, "avx2") == 0) w = SimdLevel::Avx2;
    else if (std::strcmp(want, "avx512") == 0) w = SimdLevel::Avx512;
    if (static_cast<int>(w) < static_cast<int>(hw)) hw = w;  // can only lower what the CPU has
  }
  return hw;
}

SimdLevel simdLevel() {
  static SimdLevel level = detect();
  return level;
}

const char* simdLevelName(SimdLevel level) {
  switch (level) {
    case SimdLevel::Avx512: return "avx512";
    case SimdLevel::Avx2: return "avx2";
    default: return "scalar";
  }
}

int numThreads() { return omp_get_max_threads(); }

float* f32(const Napi::Value& v, const char* what) {
  if (!v.IsTypedArray() || v.As<Napi::TypedArray>().TypedArrayType() != napi_float32_array) {
    throw Napi::TypeError::New(v.Env(), std::string("[cpu] ") + what + " must be a Float32Array");
  }
  return v.As<Napi::Float32Array>().Data();
}

int32_t* i32(const Napi::Value& v, const char* what) {
  if (!v.IsTypedArray() || v.As<Napi::TypedArray>().TypedArrayType() != napi_int32_array) {
    throw Napi::TypeError::New(v.Env(), std::string("[cpu] ") + what + " must be an Int32Array");
  }
  return v.As<Napi::Int32Array>().Data();
}

size_t lengthOf(const Napi::Value& v) { return v.As<Napi::TypedArray>().ElementLength(); }

}  // namespace nexus
