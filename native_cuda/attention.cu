// Flash-style attention of nexus_cuda (FlashAttention's tiling and online softmax, on CUDA cores in fp32: simple and
// checkable; a tensor-core version is future work). Forward: a block per (batch, head, 32 query rows) walks 32-key
// tiles in shared memory, keeping a running max, sum and output, so no [T, S] score matrix exists; it saves the
// log-sum-exp per row. Backward (FlashAttention-2 recomputation, no atomics): D = rowsum(dO * O); one kernel per key
// tile accumulates dK, dV over the query heads of its kv group and the query tiles that can see it; another per query
// tile accumulates dQ over key tiles. Causal masks align to the end (query t sees keys j <= t + S - T), a [B, S] key
// mask drops keys, GQA maps head h to kv head h / (H / Hkv); rows that see no key give 0 output, -Infinity lse, 0 grads.
// Head dims 64, 80 and 128 are compiled specialisations, any other up to 256 runs the same code with a runtime dim.
// bf16 math rounds q, k, v (and dO) to bfloat16 on load; every product and sum is fp32.
#include <string>
#include <unordered_map>

#include "common.cuh"

namespace nxc {
namespace {

constexpr int BR = 32;  // query rows per tile
constexpr int BC = 32;  // keys per tile: one per lane in the softmax update
constexpr int kThreads = 128;
constexpr int kMaxDh = 256;

struct Args {
  int64_t b, h, hkv, t, s, dh, sCap;
  float scale;
  bool causal, bf16;
};

__device__ __forceinline__ float load(const float* p, bool bf16) { return bf16 ? roundBf16(*p) : *p; }

/** Whether query t of batch bi sees key j (both in range). */
__device__ __forceinline__ bool visible(const Args& a, const float* mask, int64_t bi, int64_t t, int64_t j) {
  if (t >= a.t || j >= a.s) return false;
  if (a.causal && j > t + (a.s - a.t)) return false;
  return mask == nullptr || mask[bi * a.s + j] != 0.f;
}

template <int DH>
__global__ void __launch_bounds__(kThreads) forwardKernel(float* out, float* lse, const float* q, const float* k, const float* v,
                                                          const float* mask, Args a) {
  const int dh = DH > 0 ? DH : static_cast<int>(a.dh);
  const int ld = dh + 1;  // padded rows: column reads across lanes hit distinct banks
  extern __shared__ float sm[];
  float* Qs = sm;
  float* Ks = Qs + BR * ld;
  float* Vs = Ks + BC * ld;
  float* Os = Vs + BC * ld;
  float* P = Os + BR * dh;
  float* mRow = P + BR * BC;
  float* lRow = mRow + BR;
  float* alpha = lRow + BR;

  const int64_t tiles = (a.t + BR - 1) / BR;
  const int64_t bh = blockIdx.x / tiles;
  const int64_t t0 = (blockIdx.x % tiles) * BR;
  const int64_t bi = bh / a.h, hi = bh % a.h;
  const int64_t kvh = hi / (a.h / a.hkv);
  const float* qb = q + bh * a.t * dh;
  const float* kb = k + (bi * a.hkv + kvh) * a.sCap * dh;
  const float* vb = v + (bi * a.hkv + kvh) * a.sCap * dh;
  const int tid = threadIdx.x, lane = tid & 31, warp = tid >> 5, warps = kThreads / 32;

  for (int idx = tid; idx < BR * dh; idx += kThreads) {
    const int r = idx / dh, d = idx % dh;
    const int64_t t = t0 + r;
    Qs[r * ld + d] = t < a.t ? load(qb + t * dh + d, a.bf16) : 0.f;
    Os[r * dh + d] = 0.f;
  }
  for (int r = tid; r < BR; r += kThreads) {
    mRow[r] = -INFINITY;
    lRow[r] = 0.f;
  }
  __syncthreads();

  const int64_t tLast = (t0 + BR < a.t ? t0 + BR : a.t) - 1;
  int64_t jEnd = a.s;
  if (a.causal && tLast + (a.s - a.t) + 1 < jEnd) jEnd = tLast + (a.s - a.t) + 1;
  for (int64_t j0 = 0; j0 < jEnd; j0 += BC) {
    for (int idx = tid; idx < BC * dh; idx += kThreads) {
      const int c = idx / dh, d = idx % dh;
      const int64_t j = j0 + c;
      Ks[c * ld + d] = j < a.s ? load(kb + j * dh + d, a.bf16) : 0.f;
      Vs[c * ld + d] = j < a.s ? load(vb + j * dh + d, a.bf16) : 0.f;
    }
    __syncthreads();
    for (int idx = tid; idx < BR * BC; idx += kThreads) {
      const int r = idx / BC, c = idx % BC;
      float sc = -INFINITY;
      if (visible(a, mask, bi, t0 + r, j0 + c)) {
        float dot = 0.f;
        for (int d = 0; d < dh; ++d) dot += Qs[r * ld + d] * Ks[c * ld + d];
        sc = dot * a.scale;
      }
      P[r * BC + c] = sc;
    }
    __syncthreads();
    for (int r = warp; r < BR; r += warps) {
      const float sc = P[r * BC + lane];
      const float mOld = mRow[r];
      const float mNew = nanMax(mOld, warpMax(sc));
      float p = 0.f, al = 1.f;
      if (mNew != -INFINITY) {
        p = sc == -INFINITY ? 0.f : expf(sc - mNew);
        al = mOld == -INFINITY ? 0.f : expf(mOld - mNew);
      }
      const float ps = warpSum(p);
      P[r * BC + lane] = p;
      if (lane == 0) {
        lRow[r] = lRow[r] * al + ps;
        mRow[r] = mNew;
        alpha[r] = al;
      }
    }
    __syncthreads();
    for (int idx = tid; idx < BR * dh; idx += kThreads) {
      const int r = idx / dh, d = idx % dh;
      float acc = Os[r * dh + d] * alpha[r];
      for (int c = 0; c < BC; ++c) acc += P[r * BC + c] * Vs[c * ld + d];
      Os[r * dh + d] = acc;
    }
    __syncthreads();
  }
  for (int idx = tid; idx < BR * dh; idx += kThreads) {
    const int r = idx / dh, d = idx % dh;
    const int64_t t = t0 + r;
    if (t < a.t) out[(bh * a.t + t) * dh + d] = lRow[r] > 0.f ? Os[r * dh + d] / lRow[r] : 0.f;
  }
  for (int r = tid; r < BR; r += kThreads) {
    const int64_t t = t0 + r;
    if (t < a.t) lse[bh * a.t + t] = lRow[r] > 0.f ? mRow[r] + logf(lRow[r]) : -INFINITY;
  }
}

// D[row] = sum_d dO * O: a warp per row
__global__ void rowDotKernel(float* dsum, const float* dout, const float* out, int64_t rows, int64_t dh, bool bf16) {
  const int64_t warpsTotal = static_cast<int64_t>(gridDim.x) * (blockDim.x / 32);
  const int lane = threadIdx.x & 31;
  for (int64_t r = static_cast<int64_t>(blockIdx.x) * (blockDim.x / 32) + (threadIdx.x >> 5); r < rows; r += warpsTotal) {
    float s = 0.f;
    for (int64_t d = lane; d < dh; d += 32) s += load(dout + r * dh + d, bf16) * out[r * dh + d];
    s = warpSum(s);
    if (lane == 0) dsum[r] = s;
  }
}

/** P and dS of one (query tile, key tile) pair into shared memory; rows past T or with lse -Infinity give zeros. */
__device__ __forceinline__ void probsAndGrads(const Args& a, const float* mask, int64_t bi, int64_t t0, int64_t j0, int dh, int ld,
                                              const float* Qs, const float* Ks, const float* Vs, const float* dOs, const float* lseR,
                                              const float* DR, float* P, float* dS) {
  for (int idx = threadIdx.x; idx < BR * BC; idx += kThreads) {
    const int r = idx / BC, c = idx % BC;
    float p = 0.f, ds = 0.f;
    if (lseR[r] != -INFINITY && visible(a, mask, bi, t0 + r, j0 + c)) {
      float dot = 0.f, dp = 0.f;
      for (int d = 0; d < dh; ++d) {
        dot += Qs[r * ld + d] * Ks[c * ld + d];
        dp += dOs[r * ld + d] * Vs[c * ld + d];
      }
      p = expf(dot * a.scale - lseR[r]);
      ds = p * (dp - DR[r]) * a.scale;
    }
    if (P != nullptr) P[r * BC + c] = p;
    dS[r * BC + c] = ds;
  }
}

/** Q, dO (rounded for bf16), lse and D of the query tile at t0 of head bh. */
__device__ __forceinline__ void loadQueryTile(const Args& a, int64_t bh, int64_t t0, int dh, int ld, const float* q, const float* dout,
                                              const float* lse, const float* dsum, float* Qs, float* dOs, float* lseR, float* DR) {
  for (int idx = threadIdx.x; idx < BR * dh; idx += kThreads) {
    const int r = idx / dh, d = idx % dh;
    const int64_t t = t0 + r;
    const bool in = t < a.t;
    Qs[r * ld + d] = in ? load(q + (bh * a.t + t) * dh + d, a.bf16) : 0.f;
    dOs[r * ld + d] = in ? load(dout + (bh * a.t + t) * dh + d, a.bf16) : 0.f;
  }
  for (int r = threadIdx.x; r < BR; r += kThreads) {
    const int64_t t = t0 + r;
    lseR[r] = t < a.t ? lse[bh * a.t + t] : -INFINITY;
    DR[r] = t < a.t ? dsum[bh * a.t + t] : 0.f;
  }
}

template <int DH>
__global__ void __launch_bounds__(kThreads) backwardKVKernel(float* dk, float* dv, const float* dout, const float* q, const float* k,
                                                             const float* v, const float* lse, const float* dsum, const float* mask,
                                                             Args a) {
  const int dh = DH > 0 ? DH : static_cast<int>(a.dh);
  const int ld = dh + 1;
  extern __shared__ float sm[];
  float* Ks = sm;
  float* Vs = Ks + BC * ld;
  float* Qs = Vs + BC * ld;
  float* dOs = Qs + BR * ld;
  float* dKs = dOs + BR * ld;
  float* dVs = dKs + BC * dh;
  float* P = dVs + BC * dh;
  float* dS = P + BR * BC;
  float* lseR = dS + BR * BC;
  float* DR = lseR + BR;

  const int64_t keyTiles = (a.s + BC - 1) / BC;
  const int64_t g = blockIdx.x / keyTiles;  // bi * hkv + kvh
  const int64_t j0 = (blockIdx.x % keyTiles) * BC;
  const int64_t bi = g / a.hkv, kvh = g % a.hkv;
  const int64_t group = a.h / a.hkv;
  const float* kb = k + g * a.s * dh;
  const float* vb = v + g * a.s * dh;
  const int tid = threadIdx.x;

  for (int idx = tid; idx < BC * dh; idx += kThreads) {
    const int c = idx / dh, d = idx % dh;
    const int64_t j = j0 + c;
    Ks[c * ld + d] = j < a.s ? load(kb + j * dh + d, a.bf16) : 0.f;
    Vs[c * ld + d] = j < a.s ? load(vb + j * dh + d, a.bf16) : 0.f;
    dKs[c * dh + d] = 0.f;
    dVs[c * dh + d] = 0.f;
  }
  // causal: only queries t >= j0 - (S - T) see a key of this tile
  int64_t tMin = a.causal ? j0 - (a.s - a.t) : 0;
  if (tMin < 0) tMin = 0;
  const int64_t tStart = (tMin / BR) * BR;
  for (int64_t hg = 0; hg < group; ++hg) {
    const int64_t bh = bi * a.h + kvh * group + hg;
    for (int64_t t0 = tStart; t0 < a.t; t0 += BR) {
      __syncthreads();  // the previous pair's reads of Qs, dOs, P, dS are done
      loadQueryTile(a, bh, t0, dh, ld, q, dout, lse, dsum, Qs, dOs, lseR, DR);
      __syncthreads();
      probsAndGrads(a, mask, bi, t0, j0, dh, ld, Qs, Ks, Vs, dOs, lseR, DR, P, dS);
      __syncthreads();
      for (int idx = tid; idx < BC * dh; idx += kThreads) {
        const int c = idx / dh, d = idx % dh;
        float accV = 0.f, accK = 0.f;
        for (int r = 0; r < BR; ++r) {
          accV += P[r * BC + c] * dOs[r * ld + d];
          accK += dS[r * BC + c] * Qs[r * ld + d];
        }
        dVs[c * dh + d] += accV;
        dKs[c * dh + d] += accK;
      }
    }
  }
  __syncthreads();
  for (int idx = tid; idx < BC * dh; idx += kThreads) {
    const int c = idx / dh, d = idx % dh;
    const int64_t j = j0 + c;
    if (j < a.s) {
      dk[g * a.s * dh + j * dh + d] = dKs[c * dh + d];
      dv[g * a.s * dh + j * dh + d] = dVs[c * dh + d];
    }
  }
}

template <int DH>
__global__ void __launch_bounds__(kThreads) backwardQKernel(float* dq, const float* dout, const float* q, const float* k, const float* v,
                                                            const float* lse, const float* dsum, const float* mask, Args a) {
  const int dh = DH > 0 ? DH : static_cast<int>(a.dh);
  const int ld = dh + 1;
  extern __shared__ float sm[];
  float* Qs = sm;
  float* dOs = Qs + BR * ld;
  float* Ks = dOs + BR * ld;
  float* Vs = Ks + BC * ld;
  float* dQs = Vs + BC * ld;
  float* dS = dQs + BR * dh;
  float* lseR = dS + BR * BC;
  float* DR = lseR + BR;

  const int64_t tiles = (a.t + BR - 1) / BR;
  const int64_t bh = blockIdx.x / tiles;
  const int64_t t0 = (blockIdx.x % tiles) * BR;
  const int64_t bi = bh / a.h, hi = bh % a.h;
  const int64_t g = bi * a.hkv + hi / (a.h / a.hkv);
  const float* kb = k + g * a.s * dh;
  const float* vb = v + g * a.s * dh;
  const int tid = threadIdx.x;

  loadQueryTile(a, bh, t0, dh, ld, q, dout, lse, dsum, Qs, dOs, lseR, DR);
  for (int idx = tid; idx < BR * dh; idx += kThreads) dQs[idx] = 0.f;
  const int64_t tLast = (t0 + BR < a.t ? t0 + BR : a.t) - 1;
  int64_t jEnd = a.s;
  if (a.causal && tLast + (a.s - a.t) + 1 < jEnd) jEnd = tLast + (a.s - a.t) + 1;
  for (int64_t j0 = 0; j0 < jEnd; j0 += BC) {
    __syncthreads();  // the previous tile's reads of Ks and dS are done (and the query tile is loaded)
    for (int idx = tid; idx < BC * dh; idx += kThreads) {
      const int c = idx / dh, d = idx % dh;
      const int64_t j = j0 + c;
      Ks[c * ld + d] = j < a.s ? load(kb + j * dh + d, a.bf16) : 0.f;
      Vs[c * ld + d] = j < a.s ? load(vb + j * dh + d, a.bf16) : 0.f;
    }
    __syncthreads();
    probsAndGrads(a, mask, bi, t0, j0, dh, ld, Qs, Ks, Vs, dOs, lseR, DR, nullptr, dS);
    __syncthreads();
    for (int idx = tid; idx < BR * dh; idx += kThreads) {
      const int r = idx / dh, d = idx % dh;
      float acc = 0.f;
      for (int c = 0; c < BC; ++c) acc += dS[r * BC + c] * Ks[c * ld + d];
      dQs[idx] += acc;
    }
  }
  __syncthreads();
  for (int idx = tid; idx < BR * dh; idx += kThreads) {
    const int r = idx / dh, d = idx % dh;
    const int64_t t = t0 + r;
    if (t < a.t) dq[(bh * a.t + t) * dh + d] = dQs[idx];
  }
}

size_t forwardSmem(int dh) { return sizeof(float) * (static_cast<size_t>(BR + 2 * BC) * (dh + 1) + BR * dh + BR * BC + 3 * BR); }
size_t kvSmem(int dh) { return sizeof(float) * (static_cast<size_t>(2 * BC + 2 * BR) * (dh + 1) + 2 * BC * dh + 2 * BR * BC + 2 * BR); }
size_t qSmem(int dh) { return sizeof(float) * (static_cast<size_t>(2 * BR + 2 * BC) * (dh + 1) + BR * dh + BR * BC + 2 * BR); }

/** Raise a kernel's dynamic shared memory limit to `bytes` (needed past 48 KiB) and check the device allows it. */
template <typename K>
void allowSmem(K kernel, size_t bytes, const char* what) {
  static std::unordered_map<const void*, size_t> raised;  // per kernel: the limit already set
  const void* key = reinterpret_cast<const void*>(kernel);
  auto it = raised.find(key);
  if (it != raised.end() && it->second >= bytes) return;
  int dev = 0, optin = 0;
  check(cudaGetDevice(&dev), what);
  check(cudaDeviceGetAttribute(&optin, cudaDevAttrMaxSharedMemoryPerBlockOptin, dev), what);
  if (bytes > static_cast<size_t>(optin))
    throw CudaError(std::string("[cuda ") + what + "] needs " + std::to_string(bytes) + " bytes of shared memory per block, the device allows " +
                    std::to_string(optin));
  check(cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, static_cast<int>(bytes)), what);
  raised[key] = bytes;
}

Args argsOf(const AttentionShape& s) { return Args{s.b, s.h, s.hkv, s.t, s.s, s.dh, s.sCap, s.scale, s.causal, s.math == Math::Bf16}; }

void checkShape(const AttentionShape& s, const char* what) {
  if (s.dh > kMaxDh)
    throw CudaError(std::string("[cuda ") + what + "] head dim " + std::to_string(s.dh) + " is above the supported " + std::to_string(kMaxDh));
  if (s.hkv <= 0 || s.h % s.hkv != 0) throw CudaError(std::string("[cuda ") + what + "] h must be a multiple of hkv");
}

template <int DH>
void launchForward(float* out, float* lse, const float* q, const float* k, const float* v, const float* mask, const Args& a) {
  const size_t bytes = forwardSmem(static_cast<int>(a.dh));
  allowSmem(forwardKernel<DH>, bytes, "attention");
  const int64_t blocks = a.b * a.h * ((a.t + BR - 1) / BR);
  forwardKernel<DH><<<static_cast<unsigned>(blocks), kThreads, bytes, stream()>>>(out, lse, q, k, v, mask, a);
  checkLaunch("attention");
}

template <int DH>
void launchBackward(float* dq, float* dk, float* dv, const float* dout, const float* q, const float* k, const float* v, const float* lse,
                    const float* dsum, const float* mask, const Args& a) {
  const int dh = static_cast<int>(a.dh);
  allowSmem(backwardKVKernel<DH>, kvSmem(dh), "attentionBackward");
  const int64_t kvBlocks = a.b * a.hkv * ((a.s + BC - 1) / BC);
  backwardKVKernel<DH><<<static_cast<unsigned>(kvBlocks), kThreads, kvSmem(dh), stream()>>>(dk, dv, dout, q, k, v, lse, dsum, mask, a);
  checkLaunch("attentionBackward dk dv");
  allowSmem(backwardQKernel<DH>, qSmem(dh), "attentionBackward");
  const int64_t qBlocks = a.b * a.h * ((a.t + BR - 1) / BR);
  backwardQKernel<DH><<<static_cast<unsigned>(qBlocks), kThreads, qSmem(dh), stream()>>>(dq, dout, q, k, v, lse, dsum, mask, a);
  checkLaunch("attentionBackward dq");
}

}  // namespace

void attention(float* out, float* lse, const float* q, const float* k, const float* v, const float* mask, const AttentionShape& s) {
  checkShape(s, "attention");
  if (s.b * s.h * s.t == 0) return;
  const Args a = argsOf(s);
  if (s.dh == 64) launchForward<64>(out, lse, q, k, v, mask, a);
  else if (s.dh == 80) launchForward<80>(out, lse, q, k, v, mask, a);
  else if (s.dh == 128) launchForward<128>(out, lse, q, k, v, mask, a);
  else launchForward<0>(out, lse, q, k, v, mask, a);
}

void attentionBackward(float* dq, float* dk, float* dv, const float* dout, const float* q, const float* k, const float* v, const float* out,
                       const float* lse, const float* mask, const AttentionShape& s, float* dsum) {
  checkShape(s, "attentionBackward");
  const Args a = argsOf(s);
  if (s.b * s.hkv * s.s * s.dh > 0 && s.b * s.h * s.t == 0) {  // no query: the key grads are zero
    fill(dk, s.b * s.hkv * s.s * s.dh, 0.f, false);
    fill(dv, s.b * s.hkv * s.s * s.dh, 0.f, false);
    return;
  }
  if (s.b * s.h * s.t == 0) return;
  const int64_t rows = s.b * s.h * s.t;
  const unsigned rowBlocks = gridFor(rows * 32, kBlock);
  rowDotKernel<<<rowBlocks, kBlock, 0, stream()>>>(dsum, dout, out, rows, s.dh, a.bf16);
  checkLaunch("attentionBackward rowsum");
  if (s.s == 0) {  // no key: dq is zero
    fill(dq, rows * s.dh, 0.f, false);
    return;
  }
  if (s.dh == 64) launchBackward<64>(dq, dk, dv, dout, q, k, v, lse, dsum, mask, a);
  else if (s.dh == 80) launchBackward<80>(dq, dk, dv, dout, q, k, v, lse, dsum, mask, a);
  else if (s.dh == 128) launchBackward<128>(dq, dk, dv, dout, q, k, v, lse, dsum, mask, a);
  else launchBackward<0>(dq, dk, dv, dout, q, k, v, lse, dsum, mask, a);
}

}  // namespace nxc
