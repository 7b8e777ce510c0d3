// AVX-512 pieces of the sgemm: the register-blocked microkernel, GEMV primitives and an FMA-throughput probe.
// Compiled without -march: every function carries a target attribute and is only called after the runtime
// dispatch in gemm_driver.cc has seen AVX-512. Packing, blocking and threading live in the driver.
#include <immintrin.h>

#include "gemm_kernels.h"

#define NEXUS_AVX512 __attribute__((target("avx512f,avx512bw,avx512vl,fma")))

namespace nexus::gemm {
namespace {

// MR rows x NV*16 columns of C in MR*NV zmm accumulators; A values are broadcast, B rows loaded as vectors.
// The shipped 6x64 uses 24 accumulators + 4 B vectors + 1 broadcast = 29 of 32 registers; its 24 independent
// FMA chains cover Zen 5's 2 pipes x 4-cycle latency. It measured ~3 % above 14x32, 12x32 and 8x48 at 1024^3.
template <int MR, int NV>
NEXUS_AVX512 void kernel(int64_t kc, const float* __restrict pa, const float* __restrict pb, float* __restrict c,
                         int64_t ldc, bool accumulate) {
  constexpr int NR = NV * 16;
  __m512 acc[MR][NV];
#pragma GCC unroll 16
  for (int i = 0; i < MR; ++i)
#pragma GCC unroll 4
    for (int v = 0; v < NV; ++v) acc[i][v] = _mm512_setzero_ps();
  // Warm C's lines now so the final read-modify-write does not stall on memory.
#pragma GCC unroll 16
  for (int i = 0; i < MR; ++i) {
    _mm_prefetch(reinterpret_cast<const char*>(c + i * ldc), _MM_HINT_T0);
    _mm_prefetch(reinterpret_cast<const char*>(c + i * ldc + NR - 1), _MM_HINT_T0);
  }
#pragma GCC unroll 2
  for (int64_t p = 0; p < kc; ++p) {
    __m512 b[NV];
#pragma GCC unroll 4
    for (int v = 0; v < NV; ++v) b[v] = _mm512_load_ps(pb + v * 16);
    _mm_prefetch(reinterpret_cast<const char*>(pa + 8 * MR), _MM_HINT_T0);
#pragma GCC unroll 16
    for (int i = 0; i < MR; ++i) {
      const __m512 a = _mm512_set1_ps(pa[i]);
#pragma GCC unroll 4
      for (int v = 0; v < NV; ++v) acc[i][v] = _mm512_fmadd_ps(a, b[v], acc[i][v]);
    }
    pa += MR;
    pb += NR;
  }
#pragma GCC unroll 16
  for (int i = 0; i < MR; ++i) {
    float* row = c + i * ldc;
#pragma GCC unroll 4
    for (int v = 0; v < NV; ++v) {
      __m512 r = acc[i][v];
      if (accumulate) r = _mm512_add_ps(r, _mm512_loadu_ps(row + v * 16));
      _mm512_storeu_ps(row + v * 16, r);
    }
  }
}

// Through memory because GCC 12's reduce/shuffle/extract intrinsics trip -Wuninitialized inside its own
// headers when used under a target attribute; this runs once per dot product, so the store is free.
NEXUS_AVX512 float hsum(__m512 v) {
  alignas(64) float t[16];
  _mm512_store_ps(t, v);
  __m128 s = _mm_add_ps(_mm_add_ps(_mm_load_ps(t), _mm_load_ps(t + 4)),
                        _mm_add_ps(_mm_load_ps(t + 8), _mm_load_ps(t + 12)));
  s = _mm_add_ps(s, _mm_movehl_ps(s, s));
  s = _mm_add_ss(s, _mm_movehdup_ps(s));
  return _mm_cvtss_f32(s);
}

NEXUS_AVX512 void axpy(float* out, int64_t len, int64_t rows, const float* mat, int64_t ld, const float* vec,
                       bool accumulate) {
  // Column blocks of 1024 keep the out slice in L1 while every row of the matrix streams past once.
  for (int64_t j0 = 0; j0 < len; j0 += 1024) {
    const int64_t j1 = j0 + 1024 < len ? j0 + 1024 : len;
    if (!accumulate)
      for (int64_t j = j0; j < j1; ++j) out[j] = 0.0f;
    int64_t r = 0;
    for (; r + 4 <= rows; r += 4) {  // four rows per pass: one out load/store per four FMAs
      const __m512 s0 = _mm512_set1_ps(vec[r]), s1 = _mm512_set1_ps(vec[r + 1]);
      const __m512 s2 = _mm512_set1_ps(vec[r + 2]), s3 = _mm512_set1_ps(vec[r + 3]);
      const float* m0 = mat + r * ld;
      int64_t j = j0;
      for (; j + 16 <= j1; j += 16) {
        __m512 o = _mm512_loadu_ps(out + j);
        o = _mm512_fmadd_ps(s0, _mm512_loadu_ps(m0 + j), o);
        o = _mm512_fmadd_ps(s1, _mm512_loadu_ps(m0 + ld + j), o);
        o = _mm512_fmadd_ps(s2, _mm512_loadu_ps(m0 + 2 * ld + j), o);
        o = _mm512_fmadd_ps(s3, _mm512_loadu_ps(m0 + 3 * ld + j), o);
        _mm512_storeu_ps(out + j, o);
      }
      for (; j < j1; ++j)
        out[j] += vec[r] * m0[j] + vec[r + 1] * m0[ld + j] + vec[r + 2] * m0[2 * ld + j] + vec[r + 3] * m0[3 * ld + j];
    }
    for (; r < rows; ++r) {
      const __m512 s = _mm512_set1_ps(vec[r]);
      const float* m0 = mat + r * ld;
      int64_t j = j0;
      for (; j + 16 <= j1; j += 16)
        _mm512_storeu_ps(out + j, _mm512_fmadd_ps(s, _mm512_loadu_ps(m0 + j), _mm512_loadu_ps(out + j)));
      for (; j < j1; ++j) out[j] += vec[r] * m0[j];
    }
  }
}

NEXUS_AVX512 void dot(float* out, int64_t len, int64_t depth, const float* mat, int64_t ld, const float* vec,
                      bool accumulate) {
  int64_t j = 0;
  for (; j + 4 <= len; j += 4) {  // four output rows share each vec load
    const float* m0 = mat + j * ld;
    __m512 a0 = _mm512_setzero_ps(), a1 = a0, a2 = a0, a3 = a0;
    int64_t r = 0;
    for (; r + 16 <= depth; r += 16) {
      const __m512 x = _mm512_loadu_ps(vec + r);
      a0 = _mm512_fmadd_ps(_mm512_loadu_ps(m0 + r), x, a0);
      a1 = _mm512_fmadd_ps(_mm512_loadu_ps(m0 + ld + r), x, a1);
      a2 = _mm512_fmadd_ps(_mm512_loadu_ps(m0 + 2 * ld + r), x, a2);
      a3 = _mm512_fmadd_ps(_mm512_loadu_ps(m0 + 3 * ld + r), x, a3);
    }
    if (r < depth) {
      const __mmask16 mk = static_cast<__mmask16>((1u << (depth - r)) - 1u);
      const __m512 x = _mm512_maskz_loadu_ps(mk, vec + r);
      a0 = _mm512_fmadd_ps(_mm512_maskz_loadu_ps(mk, m0 + r), x, a0);
      a1 = _mm512_fmadd_ps(_mm512_maskz_loadu_ps(mk, m0 + ld + r), x, a1);
      a2 = _mm512_fmadd_ps(_mm512_maskz_loadu_ps(mk, m0 + 2 * ld + r), x, a2);
      a3 = _mm512_fmadd_ps(_mm512_maskz_loadu_ps(mk, m0 + 3 * ld + r), x, a3);
    }
    const float s[4] = {hsum(a0), hsum(a1), hsum(a2), hsum(a3)};
    for (int q = 0; q < 4; ++q) out[j + q] = accumulate ? out[j + q] + s[q] : s[q];
  }
  for (; j < len; ++j) {
    const float* m0 = mat + j * ld;
    __m512 a0 = _mm512_setzero_ps();
    int64_t r = 0;
    for (; r + 16 <= depth; r += 16) a0 = _mm512_fmadd_ps(_mm512_loadu_ps(m0 + r), _mm512_loadu_ps(vec + r), a0);
    if (r < depth) {
      const __mmask16 mk = static_cast<__mmask16>((1u << (depth - r)) - 1u);
      a0 = _mm512_fmadd_ps(_mm512_maskz_loadu_ps(mk, m0 + r), _mm512_maskz_loadu_ps(mk, vec + r), a0);
    }
    const float s = hsum(a0);
    out[j] = accumulate ? out[j] + s : s;
  }
}

}  // namespace

// 12 independent chains: enough to fill 2 pipes x 4-cycle latency (and a 3-cycle latency core) without spills.
NEXUS_AVX512 double fmaLoopAvx512(int64_t iters) {
  __m512 x[12];
  for (int i = 0; i < 12; ++i) x[i] = _mm512_set1_ps(1.0f + 1e-7f * static_cast<float>(i));
  const __m512 m = _mm512_set1_ps(0.999999f), a = _mm512_set1_ps(1e-6f);
  for (int64_t t = 0; t < iters; ++t) {
#pragma GCC unroll 12
    for (int i = 0; i < 12; ++i) x[i] = _mm512_fmadd_ps(x[i], m, a);
  }
  __m512 s = x[0];
  for (int i = 1; i < 12; ++i) s = _mm512_add_ps(s, x[i]);
  volatile float sink = hsum(s);  // keeps the loop from being optimised away
  (void)sink;
  return static_cast<double>(iters) * 12.0 * 16.0 * 2.0;
}

#ifndef NEXUS_GEMM_MR  // tuning builds pass other tiles with -D
// Tuned on Zen 5 (48 KiB L1d, 1 MiB L2/core): MC x KC of A = 144 KiB sits in L2; the 64 KiB B micro-panel
// streams from L2; KC x NC of B = 2 MiB per thread in L3. MC 96-240, KC 192-512, NC 1024-4096 were within
// noise (+-3 %) of each other.
#define NEXUS_GEMM_MR 6
#define NEXUS_GEMM_NV 4
#define NEXUS_GEMM_MC 144
#define NEXUS_GEMM_KC 256
#define NEXUS_GEMM_NC 2048
#endif

const Arch& archAvx512() {
  // 14x32 for n <= 32 or so (attention's P @ V with head dim 32): a 64-wide tile would be half padding there.
  static const Arch narrow{"avx512", 14, 32, 168, 256, 2048, &kernel<14, 2>, &axpy, &dot, nullptr};
  static const Arch arch{"avx512", NEXUS_GEMM_MR, NEXUS_GEMM_NV * 16, NEXUS_GEMM_MC, NEXUS_GEMM_KC, NEXUS_GEMM_NC,
                         &kernel<NEXUS_GEMM_MR, NEXUS_GEMM_NV>, &axpy, &dot, &narrow};
  return arch;
}

}  // namespace nexus::gemm
