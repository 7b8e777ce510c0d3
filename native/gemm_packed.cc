// Prepacked-weight GEMM for decode: y [m, n] = x [m, k] W^T with W [n, k] (a Linear weight) repacked once into the
// microkernel's B panels, so the per-call cost is only the FMAs. sgemm packs op(B) on every call, which at decode's
// m = 1..64 rows costs several times the product itself (a transposed gather of all of W per call). Same microkernels
// and tile as sgemm (wide tile of the CPU's Arch); threads split the n panels. N-API side: decode.cc.
// Not here: transposed x, accumulation, batches (decode does not need them).

#include <algorithm>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <new>

#include "gemm_packed.h"
#include "thread_pool.h"

namespace nexus::gemm {
namespace {

int64_t roundUp(int64_t a, int64_t b) { return (a + b - 1) / b * b; }

constexpr int64_t kTile = 16;                // transpose tile while packing
constexpr int64_t kPackedThreadWork = 1 << 19;  // m*n*k below this: one thread

struct FreeDeleter {
  void operator()(float* p) const { std::free(p); }
};
thread_local std::unique_ptr<float, FreeDeleter> tlsA;
thread_local size_t tlsASize = 0;

float* scratchA(size_t n) {
  if (n > tlsASize) {
    tlsA.reset(static_cast<float*>(std::aligned_alloc(64, ((n * sizeof(float) + 63) / 64) * 64)));
    if (!tlsA) throw std::bad_alloc();
    tlsASize = n;
  }
  return tlsA.get();
}

// x [m, k] -> MR-row panels [ceil(m/MR)][k][MR], rows past m zero.
void packRows(const float* x, int64_t m, int64_t k, int mr, float* dst) {
  for (int64_t i0 = 0; i0 < m; i0 += mr) {
    float* d = dst + i0 * k;
    const int64_t rows = std::min<int64_t>(mr, m - i0);
    if (rows < mr) std::memset(d, 0, sizeof(float) * mr * k);
    for (int64_t r = 0; r < rows; ++r) {
      const float* src = x + (i0 + r) * k;
      for (int64_t p = 0; p < k; ++p) d[p * mr + r] = src[p];
    }
  }
}

// The microkernels load B panels with aligned vector loads: the panels start at the first 64-byte boundary of the
// caller's buffer (a JS typed array is only 4-byte aligned; large ones never move, so the offset stays the same).
template <class T>
T* align64(T* p) {
  const auto a = reinterpret_cast<uintptr_t>(p);
  return reinterpret_cast<T*>((a + 63) & ~uintptr_t{63});
}

}  // namespace

int64_t packedWeightSize(const Arch& arch, int64_t n, int64_t k) { return roundUp(n, arch.nr) * k + 16; }

void packWeight(const Arch& arch, const float* w, int64_t n, int64_t k, float* buffer) {
  const int64_t nr = arch.nr;
  float* out = align64(buffer);
  pool::forEachChunk(roundUp(n, nr) / nr, [&](int64_t jp) {
    const int64_t j0 = jp * nr;
    float* panel = out + j0 * k;  // [k][nr]
    const int64_t cols = std::min(nr, n - j0);
    if (cols < nr) std::memset(panel, 0, sizeof(float) * nr * k);
    for (int64_t p0 = 0; p0 < k; p0 += kTile) {  // tiles keep both the reads and the strided writes in cache
      const int64_t p1 = std::min(k, p0 + kTile);
      for (int64_t j = 0; j < cols; ++j) {
        const float* src = w + (j0 + j) * k;
        for (int64_t p = p0; p < p1; ++p) panel[p * nr + j] = src[p];
      }
    }
  }, n * k >= (int64_t{1} << 18) ? pool::maxThreads() : 1);
}

void linearPacked(const Arch& arch, const Blocking& bl, float* y, const float* x, const float* buffer, int64_t m,
                  int64_t n, int64_t k) {
  if (m == 0 || n == 0) return;
  const float* packed = align64(buffer);
  if (k == 0) {
    std::memset(y, 0, sizeof(float) * m * n);
    return;
  }
  const int mr = arch.mr, nr = arch.nr;
  const int64_t kc = std::max<int64_t>(1, bl.kc), panels = roundUp(n, nr) / nr, mp = roundUp(m, mr);
  float* pa = scratchA(static_cast<size_t>(mp * k));
  packRows(x, m, k, mr, pa);
  const bool threaded = m * n * k >= kPackedThreadWork && pool::maxThreads() > 1 && panels > 1;
  pool::forEachChunk(panels, [&](int64_t jp) {
    alignas(64) float tile[16 * 64];  // mr * nr <= 16 * 64 for every Arch
    const int64_t j0 = jp * nr, cols = std::min<int64_t>(nr, n - j0);
    const float* pb = packed + j0 * k;
    for (int64_t p0 = 0; p0 < k; p0 += kc) {
      const int64_t kk = std::min(kc, k - p0);
      const bool acc = p0 > 0;
      for (int64_t i0 = 0; i0 < m; i0 += mr) {
        const int64_t rows = std::min<int64_t>(mr, m - i0);
        float* c = y + i0 * n + j0;
        const float* a = pa + i0 * k + p0 * mr;
        if (rows == mr && cols == nr) {
          arch.kernel(kk, a, pb + p0 * nr, c, n, acc);
          continue;
        }
        arch.kernel(kk, a, pb + p0 * nr, tile, nr, false);
        for (int64_t i = 0; i < rows; ++i)
          for (int64_t j = 0; j < cols; ++j) c[i * n + j] = acc ? c[i * n + j] + tile[i * nr + j] : tile[i * nr + j];
      }
    }
  }, threaded ? pool::maxThreads() : 1);
}

}  // namespace nexus::gemm
