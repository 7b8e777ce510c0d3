// Indexing kernels of nexus_cuda: gather / scatterAdd along an axis of [outer, n, inner] views, embedding row lookup and
// its gradient (atomic adds for repeated ids), a stable sort along an axis (one block per segment, bottom-up merge sort
// in scratch memory: simple and stable, not the fastest), and RoPE (rotate-half). Indices outside their range give NaN
// (gathers) or are skipped (scatters), as the interface documents; the op layer range-checks host-made indices.
#include "common.cuh"

namespace nxc {
namespace {

__global__ void gatherKernel(float* out, const float* x, const int32_t* idx, int64_t outer, int64_t nIn, int64_t nIdx, int64_t inner) {
  NXC_GRID_STRIDE(p, outer * nIdx * inner) {
    const int64_t o = p / (nIdx * inner), i = p % inner;
    const int32_t r = idx[p];
    out[p] = (r >= 0 && r < nIn) ? x[(o * nIn + r) * inner + i] : NAN;
  }
}

__global__ void scatterAddKernel(float* out, const float* src, const int32_t* idx, int64_t outer, int64_t nOut, int64_t nIdx, int64_t inner) {
  NXC_GRID_STRIDE(p, outer * nIdx * inner) {
    const int64_t o = p / (nIdx * inner), i = p % inner;
    const int32_t r = idx[p];
    if (r >= 0 && r < nOut) atomicAdd(out + (o * nOut + r) * inner + i, src[p]);
  }
}

__global__ void indexSelectKernel(float* out, const float* table, const int32_t* ids, int64_t n, int64_t d, int64_t rows) {
  NXC_GRID_STRIDE(p, n * d) {
    const int64_t i = p / d, j = p % d;
    const int32_t id = ids[i];
    out[p] = (id >= 0 && id < rows) ? table[static_cast<int64_t>(id) * d + j] : NAN;
  }
}

__global__ void indexAddKernel(float* table, const float* src, const int32_t* ids, int64_t n, int64_t d, int64_t rows) {
  NXC_GRID_STRIDE(p, n * d) {
    const int64_t i = p / d, j = p % d;
    const int32_t id = ids[i];
    if (id >= 0 && id < rows) atomicAdd(table + static_cast<int64_t>(id) * d + j, src[p]);
  }
}

/** a goes before b: NaN last in both directions, as ref's comparator. */
__device__ __forceinline__ bool before(float a, float b, bool descending) {
  if (isnan(a)) return false;
  if (isnan(b)) return true;
  return descending ? a > b : a < b;
}

// One block per segment (o, i): keys and positions copied to scratch, merged in runs of width 1, 2, 4, ... between two
// buffers (each merge done by one thread, taking the left run's element unless the right one strictly goes first).
__global__ void sortKernel(float* values, int32_t* indices, const float* x, int64_t outer, int64_t n, int64_t inner, bool descending,
                           float* scratch) {
  const int64_t segments = outer * inner;
  for (int64_t s = blockIdx.x; s < segments; s += gridDim.x) {
    const int64_t o = s / inner, i = s % inner;
    float* keyA = scratch + s * n * 4;
    int32_t* posA = reinterpret_cast<int32_t*>(keyA + n);
    float* keyB = keyA + 2 * n;
    int32_t* posB = reinterpret_cast<int32_t*>(keyA + 3 * n);
    for (int64_t j = threadIdx.x; j < n; j += blockDim.x) {
      keyA[j] = x[(o * n + j) * inner + i];
      posA[j] = static_cast<int32_t>(j);
    }
    __syncthreads();
    bool inA = true;
    for (int64_t w = 1; w < n; w *= 2) {
      const float* ks = inA ? keyA : keyB;
      const int32_t* ps = inA ? posA : posB;
      float* kd = inA ? keyB : keyA;
      int32_t* pd = inA ? posB : posA;
      const int64_t merges = (n + 2 * w - 1) / (2 * w);
      for (int64_t m = threadIdx.x; m < merges; m += blockDim.x) {
        const int64_t lo = m * 2 * w;
        const int64_t mid = lo + w < n ? lo + w : n;
        const int64_t hi = lo + 2 * w < n ? lo + 2 * w : n;
        int64_t a = lo, b = mid, k = lo;
        while (a < mid && b < hi) {
          if (before(ks[b], ks[a], descending)) {
            kd[k] = ks[b];
            pd[k++] = ps[b++];
          } else {
            kd[k] = ks[a];
            pd[k++] = ps[a++];
          }
        }
        while (a < mid) {
          kd[k] = ks[a];
          pd[k++] = ps[a++];
        }
        while (b < hi) {
          kd[k] = ks[b];
          pd[k++] = ps[b++];
        }
      }
      inA = !inA;
      __syncthreads();
    }
    const float* kf = inA ? keyA : keyB;
    const int32_t* pf = inA ? posA : posB;
    for (int64_t j = threadIdx.x; j < n; j += blockDim.x) {
      values[(o * n + j) * inner + i] = kf[j];
      indices[(o * n + j) * inner + i] = pf[j];
    }
    __syncthreads();  // the next segment reuses nothing, but keep the block in step
  }
}

// x [B, H, T, Dh], cos/sin [B, T, Dh/2]: one thread per (b, h, t, i < Dh/2) rotates the pair (i, i + Dh/2)
__global__ void ropeKernel(float* out, const float* x, const float* cos, const float* sin, int64_t b, int64_t h, int64_t t, int64_t dh,
                           float sgn) {
  const int64_t half = dh / 2;
  NXC_GRID_STRIDE(p, b * h * t * half) {
    const int64_t i = p % half;
    const int64_t row = p / half;  // (bi * h + hi) * t + ti
    const int64_t ti = row % t;
    const int64_t bi = row / (h * t);
    const int64_t xo = row * dh;
    const int64_t co = (bi * t + ti) * half + i;
    const float c = cos[co], s = sgn * sin[co];
    const float x1 = x[xo + i], x2 = x[xo + i + half];
    out[xo + i] = x1 * c - x2 * s;
    out[xo + i + half] = x2 * c + x1 * s;
  }
}

}  // namespace

void gather(float* out, const float* x, const int32_t* idx, int64_t outer, int64_t nIn, int64_t nIdx, int64_t inner) {
  const int64_t total = outer * nIdx * inner;
  if (total == 0) return;
  gatherKernel<<<gridFor(total), kBlock, 0, stream()>>>(out, x, idx, outer, nIn, nIdx, inner);
  checkLaunch("gather");
}

void scatterAdd(float* out, const float* src, const int32_t* idx, int64_t outer, int64_t nOut, int64_t nIdx, int64_t inner) {
  const int64_t total = outer * nIdx * inner;
  if (total == 0) return;
  scatterAddKernel<<<gridFor(total), kBlock, 0, stream()>>>(out, src, idx, outer, nOut, nIdx, inner);
  checkLaunch("scatterAdd");
}

void indexSelect(float* out, const float* table, const int32_t* ids, int64_t n, int64_t d, int64_t rows) {
  if (n * d == 0) return;
  indexSelectKernel<<<gridFor(n * d), kBlock, 0, stream()>>>(out, table, ids, n, d, rows);
  checkLaunch("indexSelect");
}

void indexAdd(float* table, const float* src, const int32_t* ids, int64_t n, int64_t d, int64_t rows) {
  if (n * d == 0) return;
  indexAddKernel<<<gridFor(n * d), kBlock, 0, stream()>>>(table, src, ids, n, d, rows);
  checkLaunch("indexAdd");
}

void sort(float* values, int32_t* indices, const float* x, int64_t outer, int64_t n, int64_t inner, bool descending, float* scratch) {
  const int64_t segments = outer * inner;
  if (segments * n == 0) return;
  const unsigned grid = static_cast<unsigned>(segments < 65535 ? segments : 65535);
  sortKernel<<<grid, kBlock, 0, stream()>>>(values, indices, x, outer, n, inner, descending, scratch);
  checkLaunch("sort");
}

void rope(float* out, const float* x, const float* cos, const float* sin, int64_t b, int64_t h, int64_t t, int64_t dh, bool inverse) {
  const int64_t total = b * h * t * (dh / 2);
  if (total == 0) return;
  ropeKernel<<<gridFor(total), kBlock, 0, stream()>>>(out, x, cos, sin, b, h, t, dh, inverse ? -1.f : 1.f);
  checkLaunch("rope");
}

}  // namespace nxc
