// GEMM of nexus_cuda through cuBLASLt, loaded at run time with dlopen (the library and its headers need not exist where
// this is compiled; without the library the cuda backend reports why and stays unavailable). The few entry points and
// enum values used are declared here from cublasLt.h / cublas_api.h; where the real header is found at build time the
// values are checked against it (static_assert). Row-major C = op(A) op(B) runs as column-major C^T = op(B)^T op(A)^T.
// fp32: CUBLAS_COMPUTE_32F; tf32: CUBLAS_COMPUTE_32F_FAST_TF32; bf16: A and B converted to bf16 scratch, fp32
// accumulation and fp32 C. accumulate (C += ...) is beta = 1. Algorithms come from the heuristic once per shape (cached).
// Not here: bias/activation epilogues (the op layer has no fused linear+bias op), bf16 outputs.
#include <cuda_bf16.h>
#include <cuda_runtime.h>
#include <dlfcn.h>
#include <library_types.h>

#include <cstdlib>
#include <cstring>
#include <mutex>
#include <string>
#include <unordered_map>
#include <vector>

#include "kernels.h"

#if __has_include(<cublasLt.h>)
#include <cublasLt.h>
#define NXC_HAVE_CUBLASLT_H 1
#endif

namespace nxc {
namespace lt {

// ---- the slice of cublasLt.h / cublas_api.h this file uses ----
using Status = int;  // cublasStatus_t; 0 is CUBLAS_STATUS_SUCCESS
using Handle = void*;
using MatmulDesc = void*;
using Layout = void*;
using Preference = void*;
struct Algo {
  uint64_t data[8];
};
struct Heuristic {
  Algo algo;
  size_t workspaceSize;
  Status state;
  float wavesCount;
  int reserved[4];
};
constexpr int kCompute32F = 68;          // CUBLAS_COMPUTE_32F
constexpr int kCompute32FFastTf32 = 77;  // CUBLAS_COMPUTE_32F_FAST_TF32
constexpr int kOpN = 0, kOpT = 1;        // CUBLAS_OP_N, CUBLAS_OP_T
constexpr int kDescComputeType = 0, kDescScaleType = 1, kDescTransA = 3, kDescTransB = 4;
constexpr int kLayoutBatchCount = 5, kLayoutBatchOffset = 6;
constexpr int kPrefMaxWorkspace = 1;
constexpr int kPrefAlignA = 5, kPrefAlignB = 6, kPrefAlignC = 7, kPrefAlignD = 8;

#ifdef NXC_HAVE_CUBLASLT_H
static_assert(kCompute32F == CUBLAS_COMPUTE_32F && kCompute32FFastTf32 == CUBLAS_COMPUTE_32F_FAST_TF32, "cublasComputeType_t");
static_assert(kOpN == CUBLAS_OP_N && kOpT == CUBLAS_OP_T, "cublasOperation_t");
static_assert(kDescComputeType == CUBLASLT_MATMUL_DESC_COMPUTE_TYPE && kDescScaleType == CUBLASLT_MATMUL_DESC_SCALE_TYPE &&
                  kDescTransA == CUBLASLT_MATMUL_DESC_TRANSA && kDescTransB == CUBLASLT_MATMUL_DESC_TRANSB,
              "cublasLtMatmulDescAttributes_t");
static_assert(kLayoutBatchCount == CUBLASLT_MATRIX_LAYOUT_BATCH_COUNT && kLayoutBatchOffset == CUBLASLT_MATRIX_LAYOUT_STRIDED_BATCH_OFFSET,
              "cublasLtMatrixLayoutAttribute_t");
static_assert(kPrefMaxWorkspace == CUBLASLT_MATMUL_PREF_MAX_WORKSPACE_BYTES && kPrefAlignA == CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_A_BYTES &&
                  kPrefAlignB == CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_B_BYTES && kPrefAlignC == CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_C_BYTES &&
                  kPrefAlignD == CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_D_BYTES,
              "cublasLtMatmulPreferenceAttributes_t");
static_assert(sizeof(Heuristic) == sizeof(cublasLtMatmulHeuristicResult_t), "cublasLtMatmulHeuristicResult_t");
static_assert(sizeof(Algo) == sizeof(cublasLtMatmulAlgo_t), "cublasLtMatmulAlgo_t");
#endif

struct Api {
  Status (*create)(Handle*);
  Status (*descCreate)(MatmulDesc*, int computeType, cudaDataType_t scaleType);
  Status (*descSet)(MatmulDesc, int attr, const void* buf, size_t size);
  Status (*descDestroy)(MatmulDesc);
  Status (*layoutCreate)(Layout*, cudaDataType_t type, uint64_t rows, uint64_t cols, int64_t ld);
  Status (*layoutSet)(Layout, int attr, const void* buf, size_t size);
  Status (*layoutDestroy)(Layout);
  Status (*prefCreate)(Preference*);
  Status (*prefSet)(Preference, int attr, const void* buf, size_t size);
  Status (*prefDestroy)(Preference);
  Status (*heuristic)(Handle, MatmulDesc, Layout, Layout, Layout, Layout, Preference, int requested, Heuristic* results, int* returned);
  Status (*matmul)(Handle, MatmulDesc, const void* alpha, const void* A, Layout, const void* B, Layout, const void* beta, const void* C,
                   Layout, void* D, Layout, const Algo* algo, void* workspace, size_t workspaceSize, cudaStream_t stream);
  const char* (*statusName)(Status);
};

Api api;
Handle handle = nullptr;
void* workspace = nullptr;
constexpr size_t kWorkspace = size_t{32} << 20;
std::string library;

template <typename F>
bool sym(void* lib, const char* name, F& out, std::string& err) {
  out = reinterpret_cast<F>(dlsym(lib, name));
  if (out == nullptr) err = std::string("symbol ") + name + " missing from " + library;
  return out != nullptr;
}

void ok(Status s, const char* what) {
  if (s != 0) {
    const char* name = api.statusName != nullptr ? api.statusName(s) : "";
    throw CudaError(std::string("[cuda matmul] ") + what + " failed: cuBLAS status " + std::to_string(s) + (name ? std::string(" ") + name : ""));
  }
}

struct Key {
  int64_t batch, m, n, k, sA, sB, sC;
  int flags;  // transA | transB << 1 | math << 2
  uint32_t alignA, alignB, alignC;  // bytes the operands are guaranteed to be aligned to (what the algorithm may assume)
  bool operator==(const Key& o) const {
    return batch == o.batch && m == o.m && n == o.n && k == o.k && sA == o.sA && sB == o.sB && sC == o.sC && flags == o.flags &&
           alignA == o.alignA && alignB == o.alignB && alignC == o.alignC;
  }
};
struct KeyHash {
  size_t operator()(const Key& x) const {
    size_t h = 1469598103934665603ull;
    for (int64_t v : {x.batch, x.m, x.n, x.k, x.sA, x.sB, x.sC, static_cast<int64_t>(x.flags), static_cast<int64_t>(x.alignA),
                      static_cast<int64_t>(x.alignB), static_cast<int64_t>(x.alignC)})
      h = (h ^ static_cast<size_t>(v)) * 1099511628211ull;
    return h;
  }
};
/** Descriptors and the chosen algorithm of one problem shape. */
struct Plan {
  MatmulDesc desc;
  Layout a, b, c;
  Algo algo;
  size_t workspaceSize;
};
std::unordered_map<Key, Plan, KeyHash> plans;

Layout layout(cudaDataType_t type, uint64_t rows, uint64_t cols, int64_t ld, int64_t batch, int64_t stride) {
  Layout l = nullptr;
  ok(api.layoutCreate(&l, type, rows, cols, ld), "cublasLtMatrixLayoutCreate");
  if (batch > 1) {
    const int32_t count = static_cast<int32_t>(batch);
    ok(api.layoutSet(l, kLayoutBatchCount, &count, sizeof(count)), "batch count");
    ok(api.layoutSet(l, kLayoutBatchOffset, &stride, sizeof(stride)), "batch stride");
  }
  return l;
}

// cuBLAS sees C^T [N, M] = X [N, K] * Y [K, M] with X = op(B)^T (our B) and Y = op(A)^T (our A), all column-major.
const Plan& plan(const Key& key, bool transA, bool transB, Math math) {
  auto it = plans.find(key);
  if (it != plans.end()) return it->second;
  const cudaDataType_t ab = math == Math::Bf16 ? CUDA_R_16BF : CUDA_R_32F;
  const int compute = math == Math::Tf32 ? kCompute32FFastTf32 : kCompute32F;
  Plan p{};
  ok(api.descCreate(&p.desc, compute, CUDA_R_32F), "cublasLtMatmulDescCreate");
  // X: our B stored [K, N] row-major = [N, K] column-major (op N), or stored [N, K] = [K, N] column-major (op T)
  const int opX = transB ? kOpT : kOpN;
  // Y: our A stored [M, K] row-major = [K, M] column-major (op N), or stored [K, M] = [M, K] column-major (op T)
  const int opY = transA ? kOpT : kOpN;
  ok(api.descSet(p.desc, kDescTransA, &opX, sizeof(opX)), "transa");
  ok(api.descSet(p.desc, kDescTransB, &opY, sizeof(opY)), "transb");
  const int64_t m = key.m, n = key.n, k = key.k;
  p.a = transB ? layout(ab, k, n, k, key.batch, key.sB) : layout(ab, n, k, n, key.batch, key.sB);
  p.b = transA ? layout(ab, m, k, m, key.batch, key.sA) : layout(ab, k, m, k, key.batch, key.sA);
  p.c = layout(CUDA_R_32F, n, m, n, key.batch, key.sC);
  Preference pref = nullptr;
  ok(api.prefCreate(&pref), "cublasLtMatmulPreferenceCreate");
  const uint64_t ws = kWorkspace;
  ok(api.prefSet(pref, kPrefMaxWorkspace, &ws, sizeof(ws)), "workspace preference");
  // cuBLAS's A is our B and its B our A
  ok(api.prefSet(pref, kPrefAlignA, &key.alignB, sizeof(uint32_t)), "alignment preference");
  ok(api.prefSet(pref, kPrefAlignB, &key.alignA, sizeof(uint32_t)), "alignment preference");
  ok(api.prefSet(pref, kPrefAlignC, &key.alignC, sizeof(uint32_t)), "alignment preference");
  ok(api.prefSet(pref, kPrefAlignD, &key.alignC, sizeof(uint32_t)), "alignment preference");
  Heuristic h{};
  int found = 0;
  const Status st = api.heuristic(handle, p.desc, p.a, p.b, p.c, p.c, pref, 1, &h, &found);
  api.prefDestroy(pref);
  if (st != 0 || found == 0)
    throw CudaError("[cuda matmul] cuBLASLt has no algorithm for batch " + std::to_string(key.batch) + " [" + std::to_string(m) + ", " +
                    std::to_string(k) + "] x [" + std::to_string(k) + ", " + std::to_string(n) + "] (status " + std::to_string(st) + ")");
  p.algo = h.algo;
  p.workspaceSize = h.workspaceSize;
  return plans.emplace(key, p).first->second;
}

/** The largest power of two (at most 256) dividing the address and, for a batch, the byte stride between entries. */
uint32_t alignment(const void* p, int64_t strideBytes) {
  uint64_t x = reinterpret_cast<uint64_t>(p) | static_cast<uint64_t>(strideBytes) | 256u;
  return static_cast<uint32_t>(x & (~x + 1));
}

}  // namespace lt

std::string gemmLibrary() { return lt::library; }

std::string gemmInit() {
  static std::mutex mu;
  std::lock_guard<std::mutex> lock(mu);
  if (lt::handle != nullptr) return "";
  std::vector<std::string> candidates;
  if (const char* p = std::getenv("NEXUS_CUBLASLT")) candidates.push_back(p);
  candidates.push_back("libcublasLt.so.13");
  const char* home = std::getenv("CUDA_HOME");
  const std::string cudaHome = home != nullptr ? home : "/usr/local/cuda";
  for (const char* dir : {"/lib64/", "/targets/x86_64-linux/lib/"}) candidates.push_back(cudaHome + dir + "libcublasLt.so.13");
  candidates.push_back("libcublasLt.so.12");
  candidates.push_back("libcublasLt.so");
  void* lib = nullptr;
  std::string tried;
  for (const std::string& c : candidates) {
    lib = dlopen(c.c_str(), RTLD_NOW | RTLD_LOCAL);
    if (lib != nullptr) {
      lt::library = c;
      break;
    }
    tried += (tried.empty() ? "" : ", ") + c;
  }
  if (lib == nullptr) return "cuBLASLt not found (tried " + tried + "; set NEXUS_CUBLASLT to its path or add its folder to LD_LIBRARY_PATH)";
  std::string err;
  auto& a = lt::api;
  if (!(lt::sym(lib, "cublasLtCreate", a.create, err) && lt::sym(lib, "cublasLtMatmulDescCreate", a.descCreate, err) &&
        lt::sym(lib, "cublasLtMatmulDescSetAttribute", a.descSet, err) && lt::sym(lib, "cublasLtMatmulDescDestroy", a.descDestroy, err) &&
        lt::sym(lib, "cublasLtMatrixLayoutCreate", a.layoutCreate, err) && lt::sym(lib, "cublasLtMatrixLayoutSetAttribute", a.layoutSet, err) &&
        lt::sym(lib, "cublasLtMatrixLayoutDestroy", a.layoutDestroy, err) && lt::sym(lib, "cublasLtMatmulPreferenceCreate", a.prefCreate, err) &&
        lt::sym(lib, "cublasLtMatmulPreferenceSetAttribute", a.prefSet, err) &&
        lt::sym(lib, "cublasLtMatmulPreferenceDestroy", a.prefDestroy, err) && lt::sym(lib, "cublasLtMatmulAlgoGetHeuristic", a.heuristic, err) &&
        lt::sym(lib, "cublasLtMatmul", a.matmul, err)))
    return err;
  a.statusName = reinterpret_cast<const char* (*)(lt::Status)>(dlsym(lib, "cublasLtGetStatusName"));
  if (a.create(&lt::handle) != 0) return "cublasLtCreate failed (" + lt::library + ")";
  if (cudaMalloc(&lt::workspace, lt::kWorkspace) != cudaSuccess) {
    cudaGetLastError();
    return "could not allocate the 32 MiB cuBLASLt workspace";
  }
  return "";
}

void matmul(float* c, const float* a, const float* b, int64_t batch, int64_t m, int64_t n, int64_t k, bool transA, bool transB,
            int64_t strideA, int64_t strideB, int64_t strideC, bool accumulate, Math math, void* scratchA, void* scratchB) {
  if (batch == 0 || m == 0 || n == 0) return;
  if (k == 0) {  // an empty sum: C = 0, or C unchanged when accumulating
    if (!accumulate) {
      for (int64_t i = 0; i < batch; ++i) fill(c + i * strideC, m * n, 0.f, false);
    }
    return;
  }
  if (lt::handle == nullptr) throw CudaError("[cuda matmul] cuBLASLt is not initialised");
  // a broadcast operand (stride 0) runs as one GEMM per batch entry: strided-batch offsets of 0 are not relied upon
  if (batch > 1 && (strideA == 0 || strideB == 0)) {
    for (int64_t i = 0; i < batch; ++i)
      matmul(c + i * strideC, a + i * strideA, b + i * strideB, 1, m, n, k, transA, transB, 0, 0, 0, accumulate, math, scratchA, scratchB);
    return;
  }
  const void* A = a;
  const void* B = b;
  if (math == Math::Bf16) {
    const int64_t spanA = strideA * (batch - 1) + m * k, spanB = strideB * (batch - 1) + k * n;
    toBf16(static_cast<__nv_bfloat16*>(scratchA), a, spanA);
    toBf16(static_cast<__nv_bfloat16*>(scratchB), b, spanB);
    A = scratchA;
    B = scratchB;
  }
  const int64_t elem = math == Math::Bf16 ? 2 : 4;
  const lt::Key key{batch,
                    m,
                    n,
                    k,
                    batch > 1 ? strideA : 0,
                    batch > 1 ? strideB : 0,
                    batch > 1 ? strideC : 0,
                    (transA ? 1 : 0) | (transB ? 2 : 0) | (static_cast<int>(math) << 2),
                    lt::alignment(A, batch > 1 ? strideA * elem : 0),
                    lt::alignment(B, batch > 1 ? strideB * elem : 0),
                    lt::alignment(c, batch > 1 ? strideC * 4 : 0)};
  const lt::Plan& p = lt::plan(key, transA, transB, math);
  const float alpha = 1.f, beta = accumulate ? 1.f : 0.f;
  lt::ok(lt::api.matmul(lt::handle, p.desc, &alpha, B, p.a, A, p.b, &beta, c, p.c, c, p.c, &p.algo, lt::workspace, lt::kWorkspace, stream()),
         "cublasLtMatmul");
  checkLaunch("matmul");
}

}  // namespace nxc
