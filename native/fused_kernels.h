// Per-ISA table of the fused and elementwise kernels; fused.cc and elementwise.cc hold their N-API side.
// One source (fused_impl_*.h) is compiled three times under different `#pragma GCC target`s by
// fused_avx512.cc, fused_avx2.cc and fused_scalar.cc; table() picks one by simdLevel() at run time.
// Everything here takes raw pointers and sizes the caller has already checked: no N-API, no validation.
#pragma once
#include <cstdint>

namespace nexus::fk {

// Same order as UNARY_OPS / BINARY_OPS in src/backend/types.ts.
enum class Unary : int {
  Neg, Exp, Log, Log1p, Expm1, Sqrt, Rsqrt, Abs, Sign, Sigmoid, Tanh, Relu, Silu, Softplus, LogSigmoid,
  Log1mexp, Square, Reciprocal, PowScalar, Clamp, AddScalar, MulScalar, GtScalar, SiluGrad, Count
};
enum class Binary : int { Add, Sub, Mul, Div, Pow, Minimum, Maximum, Gt, Ge, Eq, Count };

// Attention sizes (Kernels.attention): q [B, H, T, Dh], k/v [B, Hkv, S, Dh], keyMask [B, S] or null.
struct AttnShape {
  int64_t b, h, hkv, t, s, dh;
  int64_t sCap;  // key rows per (batch, kv head) in k/v storage (>= s): a KV cache's capacity; s otherwise
  float scale;
  bool causal;
};

// Paged attention sizes (Kernels.pagedAttention): q/out [N, H, Dh], caches [numBlocks, Hkv, blockSize, Dh].
struct PagedShape {
  int64_t numSeqs, h, hkv, dh, blockSize, maxBlocks;
  float scale;
};

struct AdamWParams {
  double lr, beta1, beta2, eps, weightDecay, bc1, bc2;
};

// Broadcast binary over at most kMaxDims coalesced dims (the caller drops size-1 dims and merges contiguous ones).
constexpr int kMaxDims = 16;

struct Table {
  const char* name;
  void (*unary)(Unary op, float* out, const float* x, int64_t n, double p0, double p1);
  void (*binary)(Binary op, float* out, const float* a, const float* b, int nd, const int64_t* shape,
                 const int64_t* aStrides, const int64_t* bStrides);
  void (*where)(float* out, const float* cond, const float* a, const float* b, int64_t n);
  void (*sum)(float* out, const float* x, int64_t outer, int64_t n, int64_t inner);
  void (*logsumexp)(float* out, const float* x, int64_t outer, int64_t n, int64_t inner);
  void (*softmax)(float* out, const float* x, int64_t rows, int64_t n, bool log);
  void (*tokenLogprobs)(float* out, float* lse, const float* logits, const int32_t* targets, int64_t rows,
                        int64_t v);
  void (*tokenLogprobsBackward)(float* dlogits, const float* dout, const float* logits, const float* lse,
                                const int32_t* targets, int64_t rows, int64_t v);
  void (*rmsNorm)(float* y, float* rstd, const float* x, const float* w, int64_t rows, int64_t d, double eps);
  void (*rmsNormBackward)(float* dx, float* dw, const float* dy, const float* x, const float* w, const float* rstd,
                          int64_t rows, int64_t d);
  void (*rope)(float* out, const float* x, const float* cos, const float* sin, int64_t b, int64_t h, int64_t t,
               int64_t dh, bool inverse);
  void (*swiglu)(float* out, const float* gate, const float* up, int64_t n);
  void (*swigluBackward)(float* dgate, float* dup, const float* dout, const float* gate, const float* up, int64_t n);
  void (*adamw)(float* p, const float* g, float* m, float* v, int64_t n, const AdamWParams& hp);
  void (*attention)(float* out, float* lse, const float* q, const float* k, const float* v, const float* keyMask,
                    const AttnShape& sh);
  void (*attentionBackward)(float* dq, float* dk, float* dv, const float* dout, const float* q, const float* k,
                            const float* v, const float* out, const float* lse, const float* keyMask,
                            const AttnShape& sh);
  void (*pagedAttention)(float* out, const float* q, const float* kCache, const float* vCache,
                         const int32_t* blockTables, const int32_t* contextLens, const int32_t* queryStarts,
                         const PagedShape& sh);
  void (*sampleTokens)(int32_t* ids, float* logprobs, const float* logits, const float* temperature,
                       const int32_t* topK, const float* topP, const float* minP, const float* uniform, int64_t rows,
                       int64_t v);
};

const Table& tableAvx512();
const Table& tableAvx2();
const Table& tableScalar();
const Table& table();  // the one simdLevel() selects

}  // namespace nexus::fk
