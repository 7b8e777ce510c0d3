// Elementwise kernels of nexus_cuda: unary maps (same op codes and formulas as the `ref` backend's UNARY_FNS), broadcast
// binary ops over a coalesced strided layout, where, fill, dtype casts, strided copies in both directions, SwiGLU,
// AdamW (one tensor, and many tensors in one launch) and the fp32 -> bf16 conversion for bf16 GEMMs. Grid-stride
// loops with int64 indices; no shared memory.
#include "common.cuh"

namespace nxc {
namespace {

__device__ __forceinline__ float sigmoidf(float x) {
  if (x >= 0.f) return 1.f / (1.f + expf(-x));
  const float e = expf(x);
  return e / (1.f + e);
}

__device__ __forceinline__ float softplusf(float x) { return fmaxf(x, 0.f) + log1pf(expf(-fabsf(x))); }

// op codes: the order of UNARY_OPS in src/backend/types.ts
__device__ float unaryOp(int op, float x, float p0, float p1) {
  switch (op) {
    case 0: return -x;                                            // neg
    case 1: return expf(x);                                       // exp
    case 2: return logf(x);                                       // log
    case 3: return log1pf(x);                                     // log1p
    case 4: return expm1f(x);                                     // expm1
    case 5: return sqrtf(x);                                      // sqrt
    case 6: return 1.f / sqrtf(x);                                // rsqrt
    case 7: return fabsf(x);                                      // abs
    case 8: return x > 0.f ? 1.f : (x < 0.f ? -1.f : 0.f);        // sign (NaN -> 0, as ref)
    case 9: return sigmoidf(x);                                   // sigmoid
    case 10: return tanhf(x);                                     // tanh
    case 11: return x > 0.f ? x : 0.f;                            // relu
    case 12: return x * sigmoidf(x);                              // silu
    case 13: return softplusf(x);                                 // softplus
    case 14: return -softplusf(-x);                               // logSigmoid
    case 15: return x > -0.6931471805599453f ? logf(-expm1f(x)) : log1pf(-expf(x));  // log1mexp
    case 16: return x * x;                                        // square
    case 17: return 1.f / x;                                      // reciprocal
    case 18: return powf(x, p0);                                  // powScalar
    case 19: return x < p0 ? p0 : (x > p1 ? p1 : x);              // clamp (NaN passes)
    case 20: return x + p0;                                       // addScalar
    case 21: return x * p0;                                       // mulScalar
    case 22: return x > p0 ? 1.f : 0.f;                           // gtScalar
    case 23: {                                                    // siluGrad
      const float s = sigmoidf(x);
      return s * (1.f + x * (1.f - s));
    }
    default: return NAN;
  }
}

// op codes: the order of BINARY_OPS in src/backend/types.ts
__device__ __forceinline__ float binaryOp(int op, float a, float b) {
  switch (op) {
    case 0: return a + b;
    case 1: return a - b;
    case 2: return a * b;
    case 3: return a / b;
    case 4: return powf(a, b);
    case 5: return a < b ? a : b;  // minimum, as ref's (a < b ? a : b)
    case 6: return a > b ? a : b;  // maximum
    case 7: return a > b ? 1.f : 0.f;
    case 8: return a >= b ? 1.f : 0.f;
    case 9: return a == b ? 1.f : 0.f;
    default: return NAN;
  }
}

__global__ void unaryKernel(int op, float* out, const float* x, int64_t n, float p0, float p1) {
  NXC_GRID_STRIDE(i, n) out[i] = unaryOp(op, x[i], p0, p1);
}

/** out (contiguous over layout.shape) = a (op) b, a and b read at strides st0 and st1. */
__global__ void binaryKernel(int op, float* out, const float* a, const float* b, int64_t n, Strided l) {
  NXC_GRID_STRIDE(i, n) {
    int64_t rem = i, ia = 0, ib = 0;
    for (int d = l.nd - 1; d >= 0; --d) {
      const int64_t c = rem % l.shape[d];
      rem /= l.shape[d];
      ia += c * l.st0[d];
      ib += c * l.st1[d];
    }
    out[i] = binaryOp(op, a[ia], b[ib]);
  }
}

__global__ void whereKernel(float* out, const float* cond, const float* a, const float* b, int64_t n) {
  NXC_GRID_STRIDE(i, n) out[i] = cond[i] != 0.f ? a[i] : b[i];
}

__global__ void fillKernel(uint32_t* out, int64_t n, uint32_t bits) {
  NXC_GRID_STRIDE(i, n) out[i] = bits;
}

__global__ void floatToInt(int32_t* out, const float* x, int64_t n) {
  NXC_GRID_STRIDE(i, n) {
    const float v = truncf(x[i]);
    // NaN -> 0 (as an Int32Array stores NaN); out-of-range values saturate (JS would wrap: both are garbage in)
    out[i] = isnan(v) ? 0 : (v >= 2147483647.f ? 2147483647 : (v <= -2147483648.f ? (-2147483647 - 1) : static_cast<int32_t>(v)));
  }
}

__global__ void intToFloat(float* out, const int32_t* x, int64_t n) {
  NXC_GRID_STRIDE(i, n) out[i] = static_cast<float>(x[i]);
}

__global__ void copyBits(uint32_t* out, const uint32_t* x, int64_t n) {
  NXC_GRID_STRIDE(i, n) out[i] = x[i];
}

/** out[i] = x[offset + sum_d c_d * st0[d]] (gather from a strided view). */
__global__ void copyStridedKernel(uint32_t* out, const uint32_t* x, int64_t n, Strided l, int64_t offset) {
  NXC_GRID_STRIDE(i, n) {
    int64_t rem = i, ix = offset;
    for (int d = l.nd - 1; d >= 0; --d) {
      ix += (rem % l.shape[d]) * l.st0[d];
      rem /= l.shape[d];
    }
    out[i] = x[ix];
  }
}

/** out[offset + sum_d c_d * st0[d]] = x[i] (scatter into a strided view; distinct targets). */
__global__ void copyToStridedKernel(uint32_t* out, const uint32_t* x, int64_t n, Strided l, int64_t offset) {
  NXC_GRID_STRIDE(i, n) {
    int64_t rem = i, io = offset;
    for (int d = l.nd - 1; d >= 0; --d) {
      io += (rem % l.shape[d]) * l.st0[d];
      rem /= l.shape[d];
    }
    out[io] = x[i];
  }
}

__global__ void swigluKernel(float* out, const float* gate, const float* up, int64_t n) {
  NXC_GRID_STRIDE(i, n) {
    const float g = gate[i];
    out[i] = g * sigmoidf(g) * up[i];
  }
}

__global__ void swigluBackwardKernel(float* dgate, float* dup, const float* dout, const float* gate, const float* up, int64_t n) {
  NXC_GRID_STRIDE(i, n) {
    const float g = gate[i], s = sigmoidf(g), d = dout[i];
    dup[i] = d * g * s;
    dgate[i] = d * up[i] * s * (1.f + g * (1.f - s));
  }
}

struct AdamHyper {
  float lr, b1, b2, eps, wd, bc1, bc2;
};

__device__ __forceinline__ void adamwElement(float* p, const float* g, float* m, float* v, int64_t i, const AdamHyper& h) {
  float pi = p[i];
  const float gi = g[i];
  pi -= h.lr * h.wd * pi;
  const float mi = h.b1 * m[i] + (1.f - h.b1) * gi;
  const float vi = h.b2 * v[i] + (1.f - h.b2) * gi * gi;
  m[i] = mi;
  v[i] = vi;
  p[i] = pi - (h.lr * (mi / h.bc1)) / (sqrtf(vi / h.bc2) + h.eps);
}

__global__ void adamwKernel(float* p, const float* g, float* m, float* v, int64_t n, AdamHyper h) {
  NXC_GRID_STRIDE(i, n) adamwElement(p, g, m, v, i, h);
}

constexpr int kMultiTensors = 32;  // tensors per launch: the argument struct stays under the 4 KiB parameter limit
struct MultiArgs {
  float* p[kMultiTensors];
  const float* g[kMultiTensors];
  float* m[kMultiTensors];
  float* v[kMultiTensors];
  int64_t n[kMultiTensors];
  AdamHyper h[kMultiTensors];
};

// blockIdx.y picks the tensor; x blocks stride over its elements
__global__ void adamwMultiKernel(MultiArgs a) {
  const int t = blockIdx.y;
  const int64_t n = a.n[t];
  for (int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; i < n; i += static_cast<int64_t>(gridDim.x) * blockDim.x)
    adamwElement(a.p[t], a.g[t], a.m[t], a.v[t], i, a.h[t]);
}

__global__ void toBf16Kernel(__nv_bfloat16* out, const float* x, int64_t n) {
  NXC_GRID_STRIDE(i, n) out[i] = __float2bfloat16_rn(x[i]);
}

}  // namespace

void unary(int op, float* out, const float* x, int64_t n, float p0, float p1) {
  if (n == 0) return;
  unaryKernel<<<gridFor(n), kBlock, 0, stream()>>>(op, out, x, n, p0, p1);
  checkLaunch("unary");
}

void binary(int op, float* out, const float* a, const float* b, int64_t n, const Strided& layout) {
  if (n == 0) return;
  binaryKernel<<<gridFor(n), kBlock, 0, stream()>>>(op, out, a, b, n, layout);
  checkLaunch("binary");
}

void where(float* out, const float* cond, const float* a, const float* b, int64_t n) {
  if (n == 0) return;
  whereKernel<<<gridFor(n), kBlock, 0, stream()>>>(out, cond, a, b, n);
  checkLaunch("where");
}

void fill(void* out, int64_t n, float value, bool isInt) {
  if (n == 0) return;
  uint32_t bits;
  if (isInt) {
    const int32_t iv = static_cast<int32_t>(value);
    std::memcpy(&bits, &iv, 4);
  } else {
    std::memcpy(&bits, &value, 4);
  }
  fillKernel<<<gridFor(n), kBlock, 0, stream()>>>(static_cast<uint32_t*>(out), n, bits);
  checkLaunch("fill");
}

void cast(void* out, const void* x, int64_t n, bool outInt, bool xInt) {
  if (n == 0) return;
  if (outInt && !xInt)
    floatToInt<<<gridFor(n), kBlock, 0, stream()>>>(static_cast<int32_t*>(out), static_cast<const float*>(x), n);
  else if (!outInt && xInt)
    intToFloat<<<gridFor(n), kBlock, 0, stream()>>>(static_cast<float*>(out), static_cast<const int32_t*>(x), n);
  else
    copyBits<<<gridFor(n), kBlock, 0, stream()>>>(static_cast<uint32_t*>(out), static_cast<const uint32_t*>(x), n);
  checkLaunch("cast");
}

void copyStrided(uint32_t* out, const uint32_t* x, int64_t n, const Strided& view, int64_t offset) {
  if (n == 0) return;
  copyStridedKernel<<<gridFor(n), kBlock, 0, stream()>>>(out, x, n, view, offset);
  checkLaunch("copyStrided");
}

void copyToStrided(uint32_t* out, const uint32_t* x, int64_t n, const Strided& view, int64_t offset) {
  if (n == 0) return;
  copyToStridedKernel<<<gridFor(n), kBlock, 0, stream()>>>(out, x, n, view, offset);
  checkLaunch("copyToStrided");
}

void swiglu(float* out, const float* gate, const float* up, int64_t n) {
  if (n == 0) return;
  swigluKernel<<<gridFor(n), kBlock, 0, stream()>>>(out, gate, up, n);
  checkLaunch("swiglu");
}

void swigluBackward(float* dgate, float* dup, const float* dout, const float* gate, const float* up, int64_t n) {
  if (n == 0) return;
  swigluBackwardKernel<<<gridFor(n), kBlock, 0, stream()>>>(dgate, dup, dout, gate, up, n);
  checkLaunch("swigluBackward");
}

void adamw(float* p, const float* g, float* m, float* v, int64_t n, const float hp[7]) {
  if (n == 0) return;
  const AdamHyper h{hp[0], hp[1], hp[2], hp[3], hp[4], hp[5], hp[6]};
  adamwKernel<<<gridFor(n), kBlock, 0, stream()>>>(p, g, m, v, n, h);
  checkLaunch("adamw");
}

void adamwMulti(const uint64_t* addrs, const int64_t* sizes, const float* hp, int count) {
  for (int start = 0; start < count; start += kMultiTensors) {
    const int c = count - start < kMultiTensors ? count - start : kMultiTensors;
    MultiArgs a{};
    int64_t most = 0;
    for (int j = 0; j < c; ++j) {
      const int t = start + j;
      a.p[j] = reinterpret_cast<float*>(addrs[4 * t]);
      a.g[j] = reinterpret_cast<const float*>(addrs[4 * t + 1]);
      a.m[j] = reinterpret_cast<float*>(addrs[4 * t + 2]);
      a.v[j] = reinterpret_cast<float*>(addrs[4 * t + 3]);
      a.n[j] = sizes[t];
      const float* h = hp + 7 * t;
      a.h[j] = AdamHyper{h[0], h[1], h[2], h[3], h[4], h[5], h[6]};
      if (sizes[t] > most) most = sizes[t];
    }
    if (most == 0) continue;
    const unsigned gx = gridFor(most) < 1024 ? gridFor(most) : 1024;
    adamwMultiKernel<<<dim3(gx, c), kBlock, 0, stream()>>>(a);
    checkLaunch("adamwMulti");
  }
}

void toBf16(__nv_bfloat16* out, const float* x, int64_t n) {
  if (n == 0) return;
  toBf16Kernel<<<gridFor(n), kBlock, 0, stream()>>>(out, x, n);
  checkLaunch("toBf16");
}

}  // namespace nxc
