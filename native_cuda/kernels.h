// Host-side launchers of the nexus_cuda kernels (implemented in the .cu files, called by binding.cc). Each launches on
// the addon's one stream and returns without waiting; a launch error throws CudaError naming the kernel. Pointers are
// device addresses the TypeScript allocator handed out; sizes were validated by the op layer. Indices are int64.
#pragma once
#include <cuda_bf16.h>
#include <cuda_runtime.h>

#include <cstdint>
#include <stdexcept>
#include <string>

namespace nxc {

struct CudaError : std::runtime_error {
  using std::runtime_error::runtime_error;
};

/** Throws CudaError "[cuda <what>] <cuda message>" when err is not cudaSuccess. */
void check(cudaError_t err, const char* what);
/** Checks the last launch (cudaGetLastError) of kernel `what`. */
void checkLaunch(const char* what);

cudaStream_t stream();
int smCount();

constexpr int kMaxDims = 8;
/** A strided view: shape and strides of up to kMaxDims coalesced dims (nd 0 is a single element). */
struct Strided {
  int nd;
  int64_t shape[kMaxDims];
  int64_t st0[kMaxDims];
  int64_t st1[kMaxDims];
};

enum class Math : int { Fp32 = 0, Tf32 = 1, Bf16 = 2 };

// elementwise.cu
void unary(int op, float* out, const float* x, int64_t n, float p0, float p1);
void binary(int op, float* out, const float* a, const float* b, int64_t n, const Strided& layout);
void where(float* out, const float* cond, const float* a, const float* b, int64_t n);
void fill(void* out, int64_t n, float value, bool isInt);
void cast(void* out, const void* x, int64_t n, bool outInt, bool xInt);
void copyStrided(uint32_t* out, const uint32_t* x, int64_t n, const Strided& view, int64_t offset);
void copyToStrided(uint32_t* out, const uint32_t* x, int64_t n, const Strided& view, int64_t offset);
void swiglu(float* out, const float* gate, const float* up, int64_t n);
void swigluBackward(float* dgate, float* dup, const float* dout, const float* gate, const float* up, int64_t n);
void adamw(float* p, const float* g, float* m, float* v, int64_t n, const float hp[7]);
/** addrs: [p, g, m, v] per tensor; hp: 7 floats per tensor (lr, b1, b2, eps, wd, bc1, bc2). */
void adamwMulti(const uint64_t* addrs, const int64_t* sizes, const float* hp, int count);
void toBf16(__nv_bfloat16* out, const float* x, int64_t n);

// reduce.cu
void sum(float* out, const float* x, int64_t outer, int64_t n, int64_t inner);
void max(float* out, int32_t* idx, const float* x, int64_t outer, int64_t n, int64_t inner);
void logsumexp(float* out, const float* x, int64_t outer, int64_t n, int64_t inner);
void softmax(float* out, const float* x, int64_t rows, int64_t n, bool log);
void tokenLogprobs(float* out, float* lse, const float* logits, const int32_t* targets, int64_t rows, int64_t v);
void tokenLogprobsBackward(float* dlogits, const float* dout, const float* logits, const float* lse, const int32_t* targets,
                           int64_t rows, int64_t v);
void rmsNorm(float* y, float* rstd, const float* x, const float* w, int64_t rows, int64_t d, float eps);
void rmsNormBackward(float* dx, float* dw, const float* dy, const float* x, const float* w, const float* rstd, int64_t rows,
                     int64_t d, float* partials, int64_t chunks);

// index.cu
void gather(float* out, const float* x, const int32_t* idx, int64_t outer, int64_t nIn, int64_t nIdx, int64_t inner);
void scatterAdd(float* out, const float* src, const int32_t* idx, int64_t outer, int64_t nOut, int64_t nIdx, int64_t inner);
void indexSelect(float* out, const float* table, const int32_t* ids, int64_t n, int64_t d, int64_t rows);
void indexAdd(float* table, const float* src, const int32_t* ids, int64_t n, int64_t d, int64_t rows);
void sort(float* values, int32_t* indices, const float* x, int64_t outer, int64_t n, int64_t inner, bool descending,
          float* scratch);
void rope(float* out, const float* x, const float* cos, const float* sin, int64_t b, int64_t h, int64_t t, int64_t dh,
          bool inverse);

// attention.cu
struct AttentionShape {
  int64_t b, h, hkv, t, s, dh, sCap;
  float scale;
  bool causal;
  Math math;
};
void attention(float* out, float* lse, const float* q, const float* k, const float* v, const float* mask,
               const AttentionShape& a);
void attentionBackward(float* dq, float* dk, float* dv, const float* dout, const float* q, const float* k, const float* v,
                       const float* out, const float* lse, const float* mask, const AttentionShape& a, float* dsum);

// decode.cu (the rollout engine's paged KV cache)
void pagedKvWrite(float* kCache, float* vCache, const float* k, const float* v, const int32_t* slots, int64_t n, int64_t hkv,
                  int64_t dh, int64_t bs);
void copyBlocks(float* cache, const int32_t* src, const int32_t* dst, int64_t n, int64_t blockElems);
/** n: query rows (queryStarts[numSeqs]), read from the host side so the grid needs no device read. */
void pagedAttention(float* out, const float* q, const float* kCache, const float* vCache, const int32_t* blockTables,
                    const int32_t* contextLens, const int32_t* queryStarts, int64_t numSeqs, int64_t n, int64_t h, int64_t hkv,
                    int64_t dh, int64_t bs, int64_t maxBlocks, float scale);

// gemm.cc (cuBLASLt, loaded at run time)
/** Loads libcublasLt and creates the handle and workspace; returns "" or why it cannot. */
std::string gemmInit();
std::string gemmLibrary();
void matmul(float* c, const float* a, const float* b, int64_t batch, int64_t m, int64_t n, int64_t k, bool transA,
            bool transB, int64_t strideA, int64_t strideB, int64_t strideC, bool accumulate, Math math, void* scratchA,
            void* scratchB);

}  // namespace nxc
