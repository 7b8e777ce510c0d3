// AVX2+FMA pieces of the sgemm: a 6x16 microkernel and GEMV primitives, for x86-64 CPUs without AVX-512
// (or NEXUS_SIMD=avx2). Same contracts as gemm_kernels.h; packing, blocking and threading live in the driver.
#include <immintrin.h>

#include "gemm_kernels.h"

#define NEXUS_AVX2 __attribute__((target("avx2,fma")))

namespace nexus::gemm {
namespace {

// 6x16: 12 ymm accumulators + 2 B vectors + 1 broadcast = 15 of 16 registers.
NEXUS_AVX2 void kernel6x16(int64_t kc, const float* __restrict pa, const float* __restrict pb, float* __restrict c,
                           int64_t ldc, bool accumulate) {
  constexpr int MR = 6;
  __m256 acc[MR][2];
#pragma GCC unroll 6
  for (int i = 0; i < MR; ++i) acc[i][0] = acc[i][1] = _mm256_setzero_ps();
  for (int i = 0; i < MR; ++i) _mm_prefetch(reinterpret_cast<const char*>(c + i * ldc), _MM_HINT_T0);
#pragma GCC unroll 2
  for (int64_t p = 0; p < kc; ++p) {
    const __m256 b0 = _mm256_load_ps(pb), b1 = _mm256_load_ps(pb + 8);
#pragma GCC unroll 6
    for (int i = 0; i < MR; ++i) {
      const __m256 a = _mm256_broadcast_ss(pa + i);
      acc[i][0] = _mm256_fmadd_ps(a, b0, acc[i][0]);
      acc[i][1] = _mm256_fmadd_ps(a, b1, acc[i][1]);
    }
    pa += MR;
    pb += 16;
  }
#pragma GCC unroll 6
  for (int i = 0; i < MR; ++i) {
    float* row = c + i * ldc;
    __m256 r0 = acc[i][0], r1 = acc[i][1];
    if (accumulate) {
      r0 = _mm256_add_ps(r0, _mm256_loadu_ps(row));
      r1 = _mm256_add_ps(r1, _mm256_loadu_ps(row + 8));
    }
    _mm256_storeu_ps(row, r0);
    _mm256_storeu_ps(row + 8, r1);
  }
}

NEXUS_AVX2 float hsum(__m256 v) {
  __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
  s = _mm_add_ps(s, _mm_movehl_ps(s, s));
  s = _mm_add_ss(s, _mm_movehdup_ps(s));
  return _mm_cvtss_f32(s);
}

NEXUS_AVX2 void axpy(float* out, int64_t len, int64_t rows, const float* mat, int64_t ld, const float* vec,
                     bool accumulate) {
  for (int64_t j0 = 0; j0 < len; j0 += 1024) {  // keeps the out slice in L1
    const int64_t j1 = j0 + 1024 < len ? j0 + 1024 : len;
    if (!accumulate)
      for (int64_t j = j0; j < j1; ++j) out[j] = 0.0f;
    for (int64_t r = 0; r < rows; ++r) {
      const __m256 s = _mm256_set1_ps(vec[r]);
      const float* m0 = mat + r * ld;
      int64_t j = j0;
      for (; j + 8 <= j1; j += 8)
        _mm256_storeu_ps(out + j, _mm256_fmadd_ps(s, _mm256_loadu_ps(m0 + j), _mm256_loadu_ps(out + j)));
      for (; j < j1; ++j) out[j] += vec[r] * m0[j];
    }
  }
}

NEXUS_AVX2 void dot(float* out, int64_t len, int64_t depth, const float* mat, int64_t ld, const float* vec,
                    bool accumulate) {
  for (int64_t j = 0; j < len; ++j) {
    const float* m0 = mat + j * ld;
    __m256 a0 = _mm256_setzero_ps(), a1 = a0;
    int64_t r = 0;
    for (; r + 16 <= depth; r += 16) {
      a0 = _mm256_fmadd_ps(_mm256_loadu_ps(m0 + r), _mm256_loadu_ps(vec + r), a0);
      a1 = _mm256_fmadd_ps(_mm256_loadu_ps(m0 + r + 8), _mm256_loadu_ps(vec + r + 8), a1);
    }
    float s = hsum(_mm256_add_ps(a0, a1));
    for (; r < depth; ++r) s += m0[r] * vec[r];
    out[j] = accumulate ? out[j] + s : s;
  }
}

}  // namespace

NEXUS_AVX2 double fmaLoopAvx2(int64_t iters) {
  __m256 x[12];
  for (int i = 0; i < 12; ++i) x[i] = _mm256_set1_ps(1.0f + 1e-7f * static_cast<float>(i));
  const __m256 m = _mm256_set1_ps(0.999999f), a = _mm256_set1_ps(1e-6f);
  for (int64_t t = 0; t < iters; ++t) {
#pragma GCC unroll 12
    for (int i = 0; i < 12; ++i) x[i] = _mm256_fmadd_ps(x[i], m, a);
  }
  __m256 s = x[0];
  for (int i = 1; i < 12; ++i) s = _mm256_add_ps(s, x[i]);
  volatile float sink = hsum(s);  // keeps the loop from being optimised away
  (void)sink;
  return static_cast<double>(iters) * 12.0 * 8.0 * 2.0;
}

const Arch& archAvx2() {
  static const Arch arch{"avx2", 6, 16, 144, 256, 2048, &kernel6x16, &axpy, &dot, nullptr};
  return arch;
}

}  // namespace nexus::gemm
