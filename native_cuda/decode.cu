// Decode kernels of nexus_cuda (the rollout engine's, src/generate/): writes of new keys/values into a paged KV cache
// (keys transposed within a block: kCache [numBlocks, Hkv, Dh, blockSize], vCache [numBlocks, Hkv, blockSize, Dh]),
// block copies for copy-on-write, and attention of packed query tokens over block tables: one block per (query token,
// head), keys in chunks of 256 with a running max and sum (online softmax), fp32 throughout. Semantics follow
// src/backend/ref_decode.ts. Not here: sampling (the cuda binding samples on the host for now) and packed weights.
#include "common.cuh"

namespace nxc {
namespace {

__global__ void pagedKvWriteKernel(float* kCache, float* vCache, const float* k, const float* v, const int32_t* slots, int64_t n,
                                   int64_t hkv, int64_t dh, int64_t bs) {
  NXC_GRID_STRIDE(p, n * hkv * dh) {
    const int64_t d = p % dh, g = (p / dh) % hkv, i = p / (dh * hkv);
    const int32_t slot = slots[i];
    if (slot < 0) continue;
    const int64_t blk = slot / bs, row = slot % bs;
    kCache[((blk * hkv + g) * dh + d) * bs + row] = k[p];
    vCache[((blk * hkv + g) * bs + row) * dh + d] = v[p];
  }
}

__global__ void copyBlocksKernel(float* cache, const int32_t* src, const int32_t* dst, int64_t n, int64_t blockElems) {
  NXC_GRID_STRIDE(p, n * blockElems) {
    const int64_t i = p / blockElems, e = p % blockElems;
    cache[static_cast<int64_t>(dst[i]) * blockElems + e] = cache[static_cast<int64_t>(src[i]) * blockElems + e];
  }
}

constexpr int kChunk = 256;
constexpr int kDecodeThreads = 128;

// blockIdx.x = query row * h + head; the row's sequence is found by binary search over queryStarts
__global__ void pagedAttentionKernel(float* out, const float* q, const float* kCache, const float* vCache, const int32_t* blockTables,
                                     const int32_t* contextLens, const int32_t* queryStarts, int64_t numSeqs, int64_t h, int64_t hkv,
                                     int64_t dh, int64_t bs, int64_t maxBlocks, float scale) {
  extern __shared__ float sm[];
  float* qs = sm;             // dh
  float* acc = qs + dh;       // dh
  float* sc = acc + dh;       // kChunk
  __shared__ float stat[2];   // running max, running sum
  const int64_t row = blockIdx.x / h, hi = blockIdx.x % h;
  int64_t lo = 0, up = numSeqs;  // the s with queryStarts[s] <= row < queryStarts[s + 1]
  while (up - lo > 1) {
    const int64_t mid = (lo + up) / 2;
    if (queryStarts[mid] <= row) lo = mid;
    else up = mid;
  }
  const int64_t s = lo;
  const int64_t qn = queryStarts[s + 1] - queryStarts[s];
  const int64_t i = row - queryStarts[s];
  const int64_t visible = contextLens[s] - qn + i + 1;  // keys [0, visible)
  const int64_t g = hi / (h / hkv);
  const float* qr = q + (row * h + hi) * dh;
  for (int64_t d = threadIdx.x; d < dh; d += blockDim.x) {
    qs[d] = qr[d];
    acc[d] = 0.f;
  }
  if (threadIdx.x == 0) {
    stat[0] = -INFINITY;
    stat[1] = 0.f;
  }
  __syncthreads();
  for (int64_t j0 = 0; j0 < visible; j0 += kChunk) {
    const int64_t cn = visible - j0 < kChunk ? visible - j0 : kChunk;
    float localMax = -INFINITY;
    for (int64_t c = threadIdx.x; c < cn; c += blockDim.x) {
      const int64_t j = j0 + c;
      const int64_t blk = blockTables[s * maxBlocks + j / bs];
      const float* kp = kCache + (blk * hkv + g) * dh * bs + (j % bs);
      float dot = 0.f;
      for (int64_t d = 0; d < dh; ++d) dot += qs[d] * kp[d * bs];
      sc[c] = dot * scale;
      localMax = nanMax(localMax, sc[c]);
    }
    const float chunkMax = blockMax(localMax);
    const float mOld = stat[0];
    const float mNew = nanMax(mOld, chunkMax);
    const float alpha = mOld == -INFINITY ? 0.f : expf(mOld - mNew);
    float localSum = 0.f;
    for (int64_t c = threadIdx.x; c < cn; c += blockDim.x) {
      const float p = expf(sc[c] - mNew);
      sc[c] = p;
      localSum += p;
    }
    const float chunkSum = blockSum(localSum);  // its barriers also publish sc[]
    for (int64_t d = threadIdx.x; d < dh; d += blockDim.x) {
      float a = acc[d] * alpha;
      for (int64_t c = 0; c < cn; ++c) {
        const int64_t j = j0 + c;
        const int64_t blk = blockTables[s * maxBlocks + j / bs];
        a += sc[c] * vCache[((blk * hkv + g) * bs + (j % bs)) * dh + d];
      }
      acc[d] = a;
    }
    __syncthreads();  // every thread has read stat[] and sc[] before they change
    if (threadIdx.x == 0) {
      stat[1] = stat[1] * alpha + chunkSum;
      stat[0] = mNew;
    }
    __syncthreads();
  }
  float* o = out + (row * h + hi) * dh;
  for (int64_t d = threadIdx.x; d < dh; d += blockDim.x) o[d] = visible > 0 ? acc[d] / stat[1] : 0.f;
}

}  // namespace

void pagedKvWrite(float* kCache, float* vCache, const float* k, const float* v, const int32_t* slots, int64_t n, int64_t hkv,
                  int64_t dh, int64_t bs) {
  const int64_t total = n * hkv * dh;
  if (total == 0) return;
  pagedKvWriteKernel<<<gridFor(total), kBlock, 0, stream()>>>(kCache, vCache, k, v, slots, n, hkv, dh, bs);
  checkLaunch("pagedKvWrite");
}

void copyBlocks(float* cache, const int32_t* src, const int32_t* dst, int64_t n, int64_t blockElems) {
  if (n * blockElems == 0) return;
  copyBlocksKernel<<<gridFor(n * blockElems), kBlock, 0, stream()>>>(cache, src, dst, n, blockElems);
  checkLaunch("copyBlocks");
}

void pagedAttention(float* out, const float* q, const float* kCache, const float* vCache, const int32_t* blockTables,
                    const int32_t* contextLens, const int32_t* queryStarts, int64_t numSeqs, int64_t n, int64_t h, int64_t hkv,
                    int64_t dh, int64_t bs, int64_t maxBlocks, float scale) {
  if (n * h == 0 || dh == 0) return;
  const size_t smem = sizeof(float) * (2 * static_cast<size_t>(dh) + kChunk);
  pagedAttentionKernel<<<static_cast<unsigned>(n * h), kDecodeThreads, smem, stream()>>>(out, q, kCache, vCache, blockTables, contextLens,
                                                                                          queryStarts, numSeqs, h, hkv, dh, bs, maxBlocks, scale);
  checkLaunch("pagedAttention");
}

}  // namespace nxc
