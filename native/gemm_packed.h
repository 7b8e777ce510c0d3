// Prepacked-weight GEMM for decode (gemm_packed.cc): pack a Linear weight W [n, k] once into the microkernel's
// B panels, then y = x W^T per call without packing B. The layout is this CPU's (Arch tile); sizes are in floats
// and include 16 floats of slack so the panels can start 64-byte aligned inside a JS typed array.
#pragma once
#include <cstdint>

#include "gemm_driver.h"

namespace nexus::gemm {

int64_t packedWeightSize(const Arch& arch, int64_t n, int64_t k);
void packWeight(const Arch& arch, const float* w, int64_t n, int64_t k, float* buffer);
void linearPacked(const Arch& arch, const Blocking& bl, float* y, const float* x, const float* buffer, int64_t m,
                  int64_t n, int64_t k);

}  // namespace nexus::gemm
