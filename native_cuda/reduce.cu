// Reduction kernels of nexus_cuda over [outer, n, inner] views: sum, max/argmax and logsumexp (a block per row when the
// reduced axis is the last one, else a thread per output walking the axis), softmax / log-softmax rows, token
// log-probs and their backward without a [rows, V] buffer, RMSNorm and its backward (dw from per-chunk partial sums,
// reduced in a second pass: deterministic, no atomics). Semantics follow the `ref` backend, NaN and -Infinity included.
#include "common.cuh"

namespace nxc {
namespace {

constexpr int kRowBlock = 256;

// ---- sum ----
__global__ void sumRows(float* out, const float* x, int64_t rows, int64_t n) {
  for (int64_t r = blockIdx.x; r < rows; r += gridDim.x) {
    const float* row = x + r * n;
    float s = 0.f;
    for (int64_t j = threadIdx.x; j < n; j += blockDim.x) s += row[j];
    s = blockSum(s);
    if (threadIdx.x == 0) out[r] = s;
  }
}

__global__ void sumCols(float* out, const float* x, int64_t outer, int64_t n, int64_t inner) {
  NXC_GRID_STRIDE(p, outer * inner) {
    const int64_t o = p / inner, i = p % inner;
    double s = 0.0;  // a long serial sum: double keeps it as close to ref's as a tree would
    for (int64_t j = 0; j < n; ++j) s += x[(o * n + j) * inner + i];
    out[p] = static_cast<float>(s);
  }
}

// ---- max / argmax: the first NaN wins, else the largest value at its first index (ref's sequential rule) ----
struct Arg {
  float v;
  int32_t i;
};

__device__ __forceinline__ bool beats(Arg a, Arg b) {
  const bool an = isnan(a.v), bn = isnan(b.v);
  if (an != bn) return an;
  if (!an && a.v != b.v) return a.v > b.v;
  return a.i < b.i;
}

__global__ void maxRows(float* out, int32_t* idx, const float* x, int64_t rows, int64_t n) {
  __shared__ float sv[32];
  __shared__ int32_t si[32];
  for (int64_t r = blockIdx.x; r < rows; r += gridDim.x) {
    const float* row = x + r * n;
    Arg best{-INFINITY, 0};
    bool any = false;
    for (int64_t j = threadIdx.x; j < n; j += blockDim.x) {
      const Arg c{row[j], static_cast<int32_t>(j)};
      // a thread's first element always counts (an all -Infinity row keeps index 0 through the ties rule)
      if (!any || beats(c, best)) best = c;
      any = true;
    }
    if (!any) best = Arg{-INFINITY, 2147483647};
    for (int o = 16; o > 0; o >>= 1) {
      const Arg c{__shfl_xor_sync(0xffffffffu, best.v, o), __shfl_xor_sync(0xffffffffu, best.i, o)};
      if (beats(c, best)) best = c;
    }
    const int lane = threadIdx.x & 31, wid = threadIdx.x >> 5, nw = blockDim.x >> 5;
    __syncthreads();
    if (lane == 0) {
      sv[wid] = best.v;
      si[wid] = best.i;
    }
    __syncthreads();
    if (wid == 0) {
      Arg b = lane < nw ? Arg{sv[lane], si[lane]} : Arg{-INFINITY, 2147483647};
      for (int o = 16; o > 0; o >>= 1) {
        const Arg c{__shfl_xor_sync(0xffffffffu, b.v, o), __shfl_xor_sync(0xffffffffu, b.i, o)};
        if (beats(c, b)) b = c;
      }
      if (lane == 0) {
        out[r] = b.v;
        idx[r] = b.i;
      }
    }
  }
}

__global__ void maxCols(float* out, int32_t* idx, const float* x, int64_t outer, int64_t n, int64_t inner) {
  NXC_GRID_STRIDE(p, outer * inner) {
    const int64_t o = p / inner, i = p % inner;
    float best = -INFINITY;
    int32_t arg = 0;
    for (int64_t j = 0; j < n; ++j) {
      const float v = x[(o * n + j) * inner + i];
      if (v > best || (isnan(v) && !isnan(best))) {
        best = v;
        arg = static_cast<int32_t>(j);
      }
    }
    out[p] = best;
    idx[p] = arg;
  }
}

// ---- logsumexp: max (NaN propagates); a +-Infinity max is the answer; else max + log(sum exp(x - max)) ----
__global__ void lseRows(float* out, const float* x, int64_t rows, int64_t n) {
  for (int64_t r = blockIdx.x; r < rows; r += gridDim.x) {
    const float* row = x + r * n;
    float m = -INFINITY;
    for (int64_t j = threadIdx.x; j < n; j += blockDim.x) m = nanMax(m, row[j]);
    m = blockMax(m);
    if (isinf(m)) {
      if (threadIdx.x == 0) out[r] = m;
      continue;  // uniform across the block: m is the same everywhere
    }
    float s = 0.f;
    for (int64_t j = threadIdx.x; j < n; j += blockDim.x) s += expf(row[j] - m);
    s = blockSum(s);
    if (threadIdx.x == 0) out[r] = m + logf(s);
  }
}

__global__ void lseCols(float* out, const float* x, int64_t outer, int64_t n, int64_t inner) {
  NXC_GRID_STRIDE(p, outer * inner) {
    const int64_t o = p / inner, i = p % inner;
    float m = -INFINITY;
    for (int64_t j = 0; j < n; ++j) m = nanMax(m, x[(o * n + j) * inner + i]);
    if (isinf(m)) {
      out[p] = m;
      continue;
    }
    double s = 0.0;
    for (int64_t j = 0; j < n; ++j) s += expf(x[(o * n + j) * inner + i] - m);
    out[p] = m + logf(static_cast<float>(s));
  }
}

// ---- softmax / log-softmax over rows ----
__global__ void softmaxRows(float* out, const float* x, int64_t rows, int64_t n, bool log) {
  for (int64_t r = blockIdx.x; r < rows; r += gridDim.x) {
    const float* row = x + r * n;
    float* o = out + r * n;
    float m = -INFINITY;
    for (int64_t j = threadIdx.x; j < n; j += blockDim.x) m = nanMax(m, row[j]);
    m = blockMax(m);
    float s = 0.f;
    for (int64_t j = threadIdx.x; j < n; j += blockDim.x) s += expf(row[j] - m);
    s = blockSum(s);
    if (log) {
      const float lse = m + logf(s);
      for (int64_t j = threadIdx.x; j < n; j += blockDim.x) o[j] = row[j] - lse;
    } else {
      for (int64_t j = threadIdx.x; j < n; j += blockDim.x) o[j] = expf(row[j] - m) / s;
    }
  }
}

// ---- token log-probs ----
__global__ void tokenLogprobsKernel(float* out, float* lse, const float* logits, const int32_t* targets, int64_t rows, int64_t v) {
  for (int64_t r = blockIdx.x; r < rows; r += gridDim.x) {
    const float* row = logits + r * v;
    float m = -INFINITY;
    for (int64_t j = threadIdx.x; j < v; j += blockDim.x) m = nanMax(m, row[j]);
    m = blockMax(m);
    float s = 0.f;
    for (int64_t j = threadIdx.x; j < v; j += blockDim.x) s += expf(row[j] - m);
    s = blockSum(s);
    if (threadIdx.x == 0) {
      const float l = m + logf(s);
      const int32_t t = targets[r];
      lse[r] = l;
      out[r] = (t >= 0 && t < v) ? row[t] - l : NAN;
    }
  }
}

__global__ void tokenLogprobsBackwardKernel(float* dlogits, const float* dout, const float* logits, const float* lse,
                                            const int32_t* targets, int64_t rows, int64_t v) {
  for (int64_t r = blockIdx.x; r < rows; r += gridDim.x) {
    const float g = dout[r], l = lse[r];
    const int32_t t = targets[r];
    const float* row = logits + r * v;
    float* d = dlogits + r * v;
    for (int64_t j = threadIdx.x; j < v; j += blockDim.x) d[j] = -g * expf(row[j] - l) + (j == t ? g : 0.f);
  }
}

// ---- RMSNorm ----
__global__ void rmsNormKernel(float* y, float* rstd, const float* x, const float* w, int64_t rows, int64_t d, float eps) {
  for (int64_t r = blockIdx.x; r < rows; r += gridDim.x) {
    const float* xr = x + r * d;
    float ss = 0.f;
    for (int64_t j = threadIdx.x; j < d; j += blockDim.x) ss += xr[j] * xr[j];
    ss = blockSum(ss);
    const float rs = 1.f / sqrtf(ss / static_cast<float>(d) + eps);
    if (threadIdx.x == 0) rstd[r] = rs;
    for (int64_t j = threadIdx.x; j < d; j += blockDim.x) y[r * d + j] = xr[j] * rs * w[j];
  }
}

// dx per row; dw partial sums of the block's chunk of rows into partials[chunk, d]
__global__ void rmsNormBackwardKernel(float* dx, float* partials, const float* dy, const float* x, const float* w,
                                      const float* rstd, int64_t rows, int64_t d, int64_t rowsPerChunk) {
  const int64_t c = blockIdx.x;
  const int64_t r0 = c * rowsPerChunk;
  const int64_t r1 = r0 + rowsPerChunk < rows ? r0 + rowsPerChunk : rows;
  for (int64_t r = r0; r < r1; ++r) {
    const float rs = rstd[r];
    float dot = 0.f;
    for (int64_t j = threadIdx.x; j < d; j += blockDim.x) dot += dy[r * d + j] * w[j] * x[r * d + j];
    dot = blockSum(dot);
    const float k = rs * rs * rs * dot / static_cast<float>(d);
    for (int64_t j = threadIdx.x; j < d; j += blockDim.x) dx[r * d + j] = rs * dy[r * d + j] * w[j] - x[r * d + j] * k;
  }
  for (int64_t j = threadIdx.x; j < d; j += blockDim.x) {
    float acc = 0.f;
    for (int64_t r = r0; r < r1; ++r) acc += dy[r * d + j] * x[r * d + j] * rstd[r];
    partials[c * d + j] = acc;
  }
}

__global__ void sumChunks(float* dw, const float* partials, int64_t chunks, int64_t d) {
  NXC_GRID_STRIDE(j, d) {
    float acc = 0.f;
    for (int64_t c = 0; c < chunks; ++c) acc += partials[c * d + j];
    dw[j] = acc;
  }
}

unsigned rowGrid(int64_t rows) {
  const int64_t cap = static_cast<int64_t>(smCount()) * 64;
  return static_cast<unsigned>(rows < cap ? (rows < 1 ? 1 : rows) : cap);
}

}  // namespace

void sum(float* out, const float* x, int64_t outer, int64_t n, int64_t inner) {
  if (outer * inner == 0) return;
  if (inner == 1) sumRows<<<rowGrid(outer), kRowBlock, 0, stream()>>>(out, x, outer, n);
  else sumCols<<<gridFor(outer * inner), kBlock, 0, stream()>>>(out, x, outer, n, inner);
  checkLaunch("sum");
}

void max(float* out, int32_t* idx, const float* x, int64_t outer, int64_t n, int64_t inner) {
  if (outer * inner == 0) return;
  if (inner == 1) maxRows<<<rowGrid(outer), kRowBlock, 0, stream()>>>(out, idx, x, outer, n);
  else maxCols<<<gridFor(outer * inner), kBlock, 0, stream()>>>(out, idx, x, outer, n, inner);
  checkLaunch("max");
}

void logsumexp(float* out, const float* x, int64_t outer, int64_t n, int64_t inner) {
  if (outer * inner == 0) return;
  if (inner == 1) lseRows<<<rowGrid(outer), kRowBlock, 0, stream()>>>(out, x, outer, n);
  else lseCols<<<gridFor(outer * inner), kBlock, 0, stream()>>>(out, x, outer, n, inner);
  checkLaunch("logsumexp");
}

void softmax(float* out, const float* x, int64_t rows, int64_t n, bool log) {
  if (rows * n == 0) return;
  softmaxRows<<<rowGrid(rows), kRowBlock, 0, stream()>>>(out, x, rows, n, log);
  checkLaunch(log ? "logSoftmax" : "softmax");
}

void tokenLogprobs(float* out, float* lse, const float* logits, const int32_t* targets, int64_t rows, int64_t v) {
  if (rows == 0) return;
  tokenLogprobsKernel<<<rowGrid(rows), kRowBlock, 0, stream()>>>(out, lse, logits, targets, rows, v);
  checkLaunch("tokenLogprobs");
}

void tokenLogprobsBackward(float* dlogits, const float* dout, const float* logits, const float* lse, const int32_t* targets,
                           int64_t rows, int64_t v) {
  if (rows * v == 0) return;
  tokenLogprobsBackwardKernel<<<rowGrid(rows), kRowBlock, 0, stream()>>>(dlogits, dout, logits, lse, targets, rows, v);
  checkLaunch("tokenLogprobsBackward");
}

void rmsNorm(float* y, float* rstd, const float* x, const float* w, int64_t rows, int64_t d, float eps) {
  if (rows == 0) return;
  rmsNormKernel<<<rowGrid(rows), kRowBlock, 0, stream()>>>(y, rstd, x, w, rows, d, eps);
  checkLaunch("rmsNorm");
}

void rmsNormBackward(float* dx, float* dw, const float* dy, const float* x, const float* w, const float* rstd, int64_t rows,
                     int64_t d, float* partials, int64_t chunks) {
  if (d == 0) return;
  if (rows == 0) {
    fill(dw, d, 0.f, false);
    return;
  }
  const int64_t per = (rows + chunks - 1) / chunks;
  const int64_t used = (rows + per - 1) / per;  // chunks that hold at least one row
  rmsNormBackwardKernel<<<static_cast<unsigned>(used), kRowBlock, 0, stream()>>>(dx, partials, dy, x, w, rstd, rows, d, per);
  checkLaunch("rmsNormBackward");
  sumChunks<<<gridFor(d), kBlock, 0, stream()>>>(dw, partials, used, d);
  checkLaunch("rmsNormBackward dw");
}

}  // namespace nxc
