// BLIS-style sgemm driver: packing (transposes included), cache blocking, edge tiles, threading over C blocks
// or over the batch, and the cheap GEMV / small-matrix paths. Arguments are trusted: the N-API layer in
// gemm.cc checks lengths first. No N-API in here, so a standalone harness can link it.
#pragma once
#include <cstdint>

#include "gemm_kernels.h"

namespace nexus::gemm {

struct GemmArgs {
  float* c;
  const float* a;
  const float* b;
  int64_t batch, m, n, k;
  bool transA, transB;  // op(A) is [m,k], stored [k,m] when transA; op(B) is [k,n], stored [n,k] when transB
  int64_t strideA, strideB, strideC;  // elements between batch items; 0 broadcasts one matrix
  bool accumulate;                  // C += op(A) op(B) instead of C = op(A) op(B)
};

struct Blocking {
  int mr, nr, mc, kc, nc;
};

// The blocking sgemm() uses with `arch`; NEXUS_GEMM_BLOCKS="mc,kc,nc" overrides it (tuning only).
Blocking blockingFor(const Arch& arch);

void sgemm(const Arch& arch, const GemmArgs& g);

}  // namespace nexus::gemm
