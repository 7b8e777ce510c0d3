// Per-ISA pieces of the single-precision GEMM: register-blocked microkernels and GEMV primitives.
// The driver (gemm_driver.cc) owns packing, cache blocking, threading and edge tiles; the pieces here
// only see packed panels or contiguous rows. No N-API in here, so a standalone harness can link it.
#pragma once
#include <cstdint>

namespace nexus::gemm {

// C[MR x NR] (row stride ldc) = (accumulate ? C : 0) + sum_p pa[p*MR + i] * pb[p*NR + j], always a full tile.
using MicroKernel = void (*)(int64_t kc, const float* pa, const float* pb, float* c, int64_t ldc, bool accumulate);
// out[j] (+)= sum_r vec[r] * mat[r*ld + j] for j < len, r < rows: row-vector times row-major matrix.
using GemvAxpy = void (*)(float* out, int64_t len, int64_t rows, const float* mat, int64_t ld, const float* vec,
                          bool accumulate);
// out[j] (+)= sum_r mat[j*ld + r] * vec[r] for j < len, r < depth: matrix times column vector, rows contiguous.
using GemvDot = void (*)(float* out, int64_t len, int64_t depth, const float* mat, int64_t ld, const float* vec,
                         bool accumulate);

struct Arch {
  const char* name;
  int mr, nr;          // microkernel tile
  int mc, kc, nc;      // cache blocks: A block mc x kc in L2, B micro-panel kc x nr in L1/L2, B block in L3
  MicroKernel kernel;
  GemvAxpy axpy;
  GemvDot dot;
  const Arch* narrow;  // optional narrower tile for matrices whose n would leave most of an nr-wide tile empty
};

const Arch& archAvx512();
const Arch& archAvx2();
const Arch& archScalar();

// Dependency-free FMA loops on the calling thread (12 chains): return the flops performed.
double fmaLoopAvx512(int64_t iters);
double fmaLoopAvx2(int64_t iters);

}  // namespace nexus::gemm
