// Device helpers shared by the nexus_cuda kernels: launch geometry for grid-stride loops, warp and block reductions,
// NaN-propagating max (CUDA's fmaxf drops NaN; the `ref` backend's Math.max keeps it) and bf16 rounding.
#pragma once
#include <cuda_bf16.h>
#include <cuda_runtime.h>

#include <cmath>
#include <cstdint>
#include <cstring>

#include "kernels.h"

namespace nxc {

constexpr int kBlock = 256;

/** Blocks for a grid-stride loop over n items: enough to fill the device, never more than the items need. */
inline unsigned gridFor(int64_t n, int threads = kBlock) {
  const int64_t need = (n + threads - 1) / threads;
  const int64_t cap = static_cast<int64_t>(smCount()) * 32;
  const int64_t g = need < cap ? need : cap;
  return static_cast<unsigned>(g < 1 ? 1 : g);
}

#define NXC_GRID_STRIDE(i, n) \
  for (int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; i < (n); i += static_cast<int64_t>(gridDim.x) * blockDim.x)

__device__ __forceinline__ float nanMax(float a, float b) { return (isnan(a) || isnan(b)) ? NAN : (a > b ? a : b); }

__device__ __forceinline__ float warpSum(float v) {
  for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
  return v;
}

__device__ __forceinline__ float warpMax(float v) {
  for (int o = 16; o > 0; o >>= 1) v = nanMax(v, __shfl_xor_sync(0xffffffffu, v, o));
  return v;
}

/** Sum over the block (blockDim.x a multiple of 32, at most 1024); every thread gets the result. */
__device__ __forceinline__ float blockSum(float v) {
  __shared__ float part[32];
  const int lane = threadIdx.x & 31, wid = threadIdx.x >> 5, nw = blockDim.x >> 5;
  v = warpSum(v);
  __syncthreads();  // part[] may still be read by a previous call
  if (lane == 0) part[wid] = v;
  __syncthreads();
  float t = lane < nw ? part[lane] : 0.f;
  return warpSum(t);
}

/** NaN-propagating max over the block; every thread gets the result. */
__device__ __forceinline__ float blockMax(float v) {
  __shared__ float part[32];
  const int lane = threadIdx.x & 31, wid = threadIdx.x >> 5, nw = blockDim.x >> 5;
  v = warpMax(v);
  __syncthreads();
  if (lane == 0) part[wid] = v;
  __syncthreads();
  float t = lane < nw ? part[lane] : -INFINITY;
  return warpMax(t);
}

/** x rounded to the nearest bfloat16 (ties to even), back as float: what a bf16 tensor-core operand holds. */
__device__ __forceinline__ float roundBf16(float x) { return __bfloat162float(__float2bfloat16_rn(x)); }

}  // namespace nxc
