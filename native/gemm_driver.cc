// BLIS-style sgemm driver (Van Zee & van de Geijn, "BLIS", TOMS 2015): loops jc (NC) -> pc (KC) -> pack B ->
// ic (MC) -> pack A -> jr (NR) -> ir (MR) -> microkernel. Differences from BLIS: threads claim row blocks of C
// from the thread pool (thread_pool.h; no barriers, so a thread on a busy core takes fewer blocks instead of
// stalling the others) and each packs its own copy of the B panel (packing is ~6 % of single-thread time at
// 1024^3, perf-measured), and batches of small matrices are spread over threads whole. Transposes are
// handled while packing. Every C element is computed the same way whichever thread computes it.
// Not here: alpha/beta scaling, non-unit strides inside a matrix, other dtypes.
#include "gemm_driver.h"

#include <algorithm>
#include <atomic>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <new>
#include <stdexcept>

#include "thread_pool.h"

namespace nexus::gemm {
namespace {

// op(A)(i,k) / op(B)(k,j) of a row-major matrix that may be stored transposed.
struct View {
  const float* p;
  int64_t ld;
  bool trans;
};

struct FreeDeleter {
  void operator()(float* p) const { std::free(p); }
};

// Grow-only, 64-byte aligned scratch, one per thread, so packing never allocates in steady state.
struct Scratch {
  std::unique_ptr<float, FreeDeleter> mem;
  size_t size = 0;
  float* get(size_t n) {
    if (n > size) {
      const size_t bytes = ((n * sizeof(float) + 63) / 64) * 64;
      mem.reset(static_cast<float*>(std::aligned_alloc(64, bytes)));
      if (!mem) throw std::bad_alloc();
      size = n;
    }
    return mem.get();
  }
};
thread_local Scratch tlsA, tlsB, tlsRow, tlsBFull;

int64_t ceilDiv(int64_t a, int64_t b) { return (a + b - 1) / b; }
int64_t roundUp(int64_t a, int64_t b) { return ceilDiv(a, b) * b; }

// Splits `total` into ceil(total/block) near-equal blocks, each a multiple of `unit` (the last may be short).
int64_t evenBlock(int64_t total, int64_t block, int64_t unit) {
  const int64_t nblocks = ceilDiv(total, block);
  return std::min(block, roundUp(ceilDiv(total, nblocks), unit));
}

// A block [i0, i0+mc) x [p0, p0+kc) -> MR-row panels, each kc x MR (k-major), rows past mc zero-filled.
template <int MR>
void packA(const View& A, int64_t i0, int64_t p0, int64_t mc, int64_t kc, float* __restrict dst) {
  for (int64_t ip = 0; ip < mc; ip += MR) {
    const int64_t mr = std::min<int64_t>(MR, mc - ip);
    float* __restrict d = dst + ip * kc;
    if (A.trans) {  // stored [k, m]: MR consecutive values per k
      for (int64_t kk = 0; kk < kc; ++kk) {
        const float* src = A.p + (p0 + kk) * A.ld + i0 + ip;
        if (mr == MR) {
          for (int r = 0; r < MR; ++r) d[kk * MR + r] = src[r];
        } else {
          for (int r = 0; r < MR; ++r) d[kk * MR + r] = r < mr ? src[r] : 0.0f;
        }
      }
    } else {  // stored [m, k]: gather MR rows, 4 k at a time so each row read is a short contiguous run
      if (mr < MR) std::memset(d, 0, sizeof(float) * MR * kc);
      const float* rows[MR];
      for (int r = 0; r < MR; ++r) rows[r] = A.p + (i0 + ip + std::min<int64_t>(r, mr - 1)) * A.ld + p0;
      if (mr == MR) {
        for (int64_t kk = 0; kk < kc; ++kk)
          for (int r = 0; r < MR; ++r) d[kk * MR + r] = rows[r][kk];
      } else {
        for (int64_t kk = 0; kk < kc; ++kk)
          for (int r = 0; r < mr; ++r) d[kk * MR + r] = rows[r][kk];
      }
    }
  }
}

// B block [p0, p0+kc) x [j0, j0+nc) -> NR-column panels, each kc x NR (k-major), columns past nc zero-filled.
template <int NR>
void packB(const View& B, int64_t p0, int64_t j0, int64_t kc, int64_t nc, float* __restrict dst) {
  for (int64_t jp = 0; jp < nc; jp += NR) {
    const int64_t nr = std::min<int64_t>(NR, nc - jp);
    float* __restrict d = dst + jp * kc;
    if (!B.trans) {  // stored [k, n]: NR consecutive values per k
      for (int64_t kk = 0; kk < kc; ++kk) {
        const float* src = B.p + (p0 + kk) * B.ld + j0 + jp;
        if (nr == NR) {
          for (int j = 0; j < NR; ++j) d[kk * NR + j] = src[j];
        } else {
          for (int j = 0; j < NR; ++j) d[kk * NR + j] = j < nr ? src[j] : 0.0f;
        }
      }
    } else {  // stored [n, k]: gather NR rows
      if (nr < NR) std::memset(d, 0, sizeof(float) * NR * kc);
      for (int64_t j = 0; j < nr; ++j) {
        const float* src = B.p + (j0 + jp + j) * B.ld + p0;
        for (int64_t kk = 0; kk < kc; ++kk) d[kk * NR + j] = src[kk];
      }
    }
  }
}

// One thread, one matrix: C[m,n] (ldc) (+)= op(A)[m,k] op(B)[k,n].
template <int MR, int NR>
void gemmSerial(const Arch& arch, const Blocking& bl, int64_t m, int64_t n, int64_t k, const View& A,
                const View& B, float* c, int64_t ldc, bool accumulate) {
  const int64_t NC = evenBlock(n, bl.nc, NR), KC = evenBlock(k, bl.kc, 1), MC = evenBlock(m, bl.mc, MR);
  float* pa = tlsA.get(static_cast<size_t>(roundUp(MC, MR) * KC));
  float* pb = tlsB.get(static_cast<size_t>(roundUp(NC, NR) * KC));
  alignas(64) float tile[MR * NR];
  for (int64_t jc = 0; jc < n; jc += NC) {
    const int64_t nc = std::min(NC, n - jc);
    for (int64_t pc = 0; pc < k; pc += KC) {
      const int64_t kc = std::min(KC, k - pc);
      const bool acc = accumulate || pc > 0;  // later K blocks add onto the first one's result
      packB<NR>(B, pc, jc, kc, nc, pb);
      for (int64_t ic = 0; ic < m; ic += MC) {
        const int64_t mc = std::min(MC, m - ic);
        packA<MR>(A, ic, pc, mc, kc, pa);
        for (int64_t jr = 0; jr < nc; jr += NR) {
          const int64_t nr = std::min<int64_t>(NR, nc - jr);
          const float* bp = pb + jr * kc;
          for (int64_t ir = 0; ir < mc; ir += MR) {
            const int64_t mr = std::min<int64_t>(MR, mc - ir);
            float* cp = c + (ic + ir) * ldc + jc + jr;
            if (mr == MR && nr == NR) {
              arch.kernel(kc, pa + ir * kc, bp, cp, ldc, acc);
            } else {  // edge tile: full tile into scratch, then copy the valid part
              arch.kernel(kc, pa + ir * kc, bp, tile, NR, false);
              for (int64_t i = 0; i < mr; ++i)
                for (int64_t j = 0; j < nr; ++j)
                  cp[i * ldc + j] = acc ? cp[i * ldc + j] + tile[i * NR + j] : tile[i * NR + j];
            }
          }
        }
      }
    }
  }
}

// Distinct per threaded call, so a thread knows whether the B panel in its buffer is this call's.
std::atomic<uint64_t> callCounter{0};

// Threaded: C[m,n] in units of `unitRows` rows x one NC column block, claimed from the pool. A thread packs the
// B panel of a column block for every K block at once ([K x NC]) the first time it takes a unit there, then
// reuses it; each unit runs its K blocks in order, so no two threads ever add into the same C element.
template <int MR, int NR>
void gemmUnits(const Arch& arch, const Blocking& bl, int64_t m, int64_t n, int64_t k, const View& A, const View& B,
               float* c, int64_t ldc, bool accumulate, int threads) {
  const int64_t NC = evenBlock(n, bl.nc, NR), KC = evenBlock(k, bl.kc, 1);
  // about 8 units per thread where m allows, never more rows than one MC block
  const int64_t unitRows = std::min<int64_t>(roundUp(bl.mc, MR), std::max<int64_t>(MR, roundUp(ceilDiv(m, 8 * threads), MR)));
  const int64_t rowUnits = ceilDiv(m, unitRows), colBlocks = ceilDiv(n, NC);
  const uint64_t call = callCounter.fetch_add(1, std::memory_order_relaxed) + 1;
  pool::forEachChunk(
      rowUnits * colBlocks,
      [&](int64_t u) {
        static thread_local uint64_t packedCall = 0;
        static thread_local int64_t packedBlock = -1;
        const int64_t jb = u / rowUnits, ic = (u % rowUnits) * unitRows;
        const int64_t jc = jb * NC, nc = std::min(NC, n - jc), mc = std::min(unitRows, m - ic), ncr = roundUp(nc, NR);
        float* pb = tlsBFull.get(static_cast<size_t>(roundUp(NC, NR) * k));
        if (packedCall != call || packedBlock != jb) {
          for (int64_t pc = 0; pc < k; pc += KC) packB<NR>(B, pc, jc, std::min(KC, k - pc), nc, pb + pc * ncr);
          packedCall = call;
          packedBlock = jb;
        }
        float* pa = tlsA.get(static_cast<size_t>(roundUp(unitRows, MR) * KC));
        alignas(64) float tile[MR * NR];
        for (int64_t pc = 0; pc < k; pc += KC) {
          const int64_t kc = std::min(KC, k - pc);
          const bool acc = accumulate || pc > 0;
          packA<MR>(A, ic, pc, mc, kc, pa);
          for (int64_t jr = 0; jr < nc; jr += NR) {
            const int64_t nr = std::min<int64_t>(NR, nc - jr);
            const float* bp = pb + pc * ncr + jr * kc;
            for (int64_t ir = 0; ir < mc; ir += MR) {
              const int64_t mr = std::min<int64_t>(MR, mc - ir);
              float* cp = c + (ic + ir) * ldc + jc + jr;
              if (mr == MR && nr == NR) {
                arch.kernel(kc, pa + ir * kc, bp, cp, ldc, acc);
              } else {
                arch.kernel(kc, pa + ir * kc, bp, tile, NR, false);
                for (int64_t i = 0; i < mr; ++i)
                  for (int64_t j = 0; j < nr; ++j) cp[i * ldc + j] = acc ? cp[i * ldc + j] + tile[i * NR + j] : tile[i * NR + j];
              }
            }
          }
        }
      },
      threads);
}

using SerialFn = void (*)(const Arch&, const Blocking&, int64_t, int64_t, int64_t, const View&, const View&, float*,
                          int64_t, bool);
using UnitsFn = void (*)(const Arch&, const Blocking&, int64_t, int64_t, int64_t, const View&, const View&, float*,
                         int64_t, bool, int);

SerialFn serialFor(const Blocking& bl) {
  if (bl.mr == 6 && bl.nr == 64) return &gemmSerial<6, 64>;
  if (bl.mr == 14 && bl.nr == 32) return &gemmSerial<14, 32>;
  if (bl.mr == 6 && bl.nr == 16) return &gemmSerial<6, 16>;
  if (bl.mr == 4 && bl.nr == 8) return &gemmSerial<4, 8>;
#ifdef NEXUS_GEMM_EXTRA_SHAPES  // tuning builds try other tiles
  if (bl.mr == 8 && bl.nr == 32) return &gemmSerial<8, 32>;
  if (bl.mr == 12 && bl.nr == 32) return &gemmSerial<12, 32>;
  if (bl.mr == 8 && bl.nr == 48) return &gemmSerial<8, 48>;
  if (bl.mr == 4 && bl.nr == 96) return &gemmSerial<4, 96>;
#endif
  // A tile without an instantiation is a build mistake; the N-API layer turns this into a JS error.
  throw std::logic_error("no driver instantiation for this microkernel tile");
}

UnitsFn unitsFor(const Blocking& bl) {
  if (bl.mr == 6 && bl.nr == 64) return &gemmUnits<6, 64>;
  if (bl.mr == 14 && bl.nr == 32) return &gemmUnits<14, 32>;
  if (bl.mr == 6 && bl.nr == 16) return &gemmUnits<6, 16>;
  if (bl.mr == 4 && bl.nr == 8) return &gemmUnits<4, 8>;
#ifdef NEXUS_GEMM_EXTRA_SHAPES  // tuning builds try other tiles
  if (bl.mr == 8 && bl.nr == 32) return &gemmUnits<8, 32>;
  if (bl.mr == 12 && bl.nr == 32) return &gemmUnits<12, 32>;
  if (bl.mr == 8 && bl.nr == 48) return &gemmUnits<8, 48>;
  if (bl.mr == 4 && bl.nr == 96) return &gemmUnits<4, 96>;
#endif
  // A tile without an instantiation is a build mistake; the N-API layer turns this into a JS error.
  throw std::logic_error("no driver instantiation for this microkernel tile");
}

// Small problems, GEMV and few-row GEMMs (decode): no packing. Row i of C = op(A)(i,:) op(B), computed in
// column chunks so that op(B)'s chunk (k x chunk) stays in L2 while each of the m rows reuses it.
void gemmRows(const Arch& arch, int64_t m, int64_t n, int64_t k, const View& A, const View& B, float* c, int64_t ldc,
              bool accumulate) {
  const float* rows = A.p;  // op(A) row-major [m, k]
  int64_t ldr = A.ld;
  if (A.trans && m > 1) {  // gather op(A)'s rows once; for m == 1 the stored [k, 1] column is already contiguous
    float* g = tlsRow.get(static_cast<size_t>(m * k));
    for (int64_t i = 0; i < m; ++i)
      for (int64_t kk = 0; kk < k; ++kk) g[i * k + kk] = A.p[kk * A.ld + i];
    rows = g;
    ldr = k;
  } else if (A.trans) {
    ldr = 0;
  }
  const int64_t chunk = m == 1 ? n : std::max<int64_t>(64, roundUp(32768 / k, 16));  // 32768 floats = 128 KiB
  for (int64_t j0 = 0; j0 < n; j0 += chunk) {
    const int64_t nc = std::min(chunk, n - j0);
    for (int64_t i = 0; i < m; ++i) {
      if (B.trans) arch.dot(c + i * ldc + j0, nc, k, B.p + j0 * B.ld, B.ld, rows + i * ldr, accumulate);
      else arch.axpy(c + i * ldc + j0, nc, k, B.p + j0, B.ld, rows + i * ldr, accumulate);
    }
  }
}

// C[m,1] = op(A) b: the same two primitives with A's roles swapped.
void gemvColumn(const Arch& arch, int64_t m, int64_t k, const View& A, const float* bvec, float* c, bool accumulate) {
  if (A.trans) arch.axpy(c, m, k, A.p, A.ld, bvec, accumulate);
  else arch.dot(c, m, k, A.p, A.ld, bvec, accumulate);
}

constexpr int64_t kSmallWork = 32 * 1024;     // m*n*k below this: direct loops beat packing
constexpr int64_t kRowsMaxM = 4;              // up to this many rows, streaming op(B) beats packing it
constexpr int64_t kThreadWork = 1 << 20;      // m*n*k (FMAs) below this: one thread (fork/join ~ several us)
// Above it, at least this much work per thread (~10 us of FMAs per core): a mid-sized GEMM split over 16 cores
// would give each a few microseconds of work behind a fork/join and 16 packings of the shared operand. Two threads
// are still used from kThreadWork up, as before.
constexpr int64_t kWorkPerThread = 1 << 20;

/** Threads for a GEMM of `work` FMAs when `most` are available: 2 from kThreadWork up, then one per kWorkPerThread. */
int gemmThreads(int64_t work, int most) {
  if (most < 2 || work < kThreadWork) return 1;
  const int64_t want = std::max<int64_t>(2, work / kWorkPerThread);
  return static_cast<int>(std::min<int64_t>(want, most));
}
constexpr int64_t kGemvThreadWork = 1 << 20;  // GEMV FMAs worth splitting (a busy sibling core stalls a fork ms)

// The packed path's choices for one microkernel tile.
struct Plan {
  const Arch* arch;
  Blocking bl;
  SerialFn serial;
  UnitsFn units;
};

// Chunks of `total` (multiples of 16) for the unpacked paths: about 4 per thread.
int64_t chunkOf(int64_t total, int threads) { return std::max<int64_t>(16, roundUp(ceilDiv(total, 4 * threads), 16)); }

// One matrix, possibly threaded. `threads` is how many pool threads this call may use.
void gemmOne(const Plan& wide, const Plan* narrow, int64_t m, int64_t n, int64_t k, const View& A, const View& B,
             float* c, bool accumulate, int threads) {
  const Arch& arch = *wide.arch;
  const int64_t ldc = n;
  if (m == 0 || n == 0) return;
  if (k == 0) {
    if (!accumulate) std::memset(c, 0, sizeof(float) * m * n);
    return;
  }
  const int64_t work = m * n * k;
  if (n == 1) {  // matrix-vector: split the m outputs
    const int t = work >= kGemvThreadWork ? gemmThreads(work, threads) : 1;
    if (t <= 1) return gemvColumn(arch, m, k, A, B.p, c, accumulate);
    const int64_t chunk = chunkOf(m, t);
    pool::forEachChunk(
        ceilDiv(m, chunk),
        [&](int64_t q) {
          const int64_t i0 = q * chunk;
          const View Ai{A.trans ? A.p + i0 : A.p + i0 * A.ld, A.ld, A.trans};
          gemvColumn(arch, std::min(chunk, m - i0), k, Ai, B.p, c + i0, accumulate);
        },
        t);
    return;
  }
  if (m <= kRowsMaxM || work < kSmallWork) {  // vector-matrix or few rows: split the n outputs
    const int t = m <= kRowsMaxM && work >= kGemvThreadWork ? gemmThreads(work, threads) : 1;
    if (t <= 1) return gemmRows(arch, m, n, k, A, B, c, ldc, accumulate);
    const int64_t chunk = chunkOf(n, t);
    pool::forEachChunk(
        ceilDiv(n, chunk),
        [&](int64_t q) {
          const int64_t j0 = q * chunk;
          const View Bj{B.trans ? B.p + j0 * B.ld : B.p + j0, B.ld, B.trans};
          gemmRows(arch, m, std::min(chunk, n - j0), k, A, Bj, c + j0, ldc, accumulate);
        },
        t);
    return;
  }
  // Narrow tile when the wide one would pad n by 15 % more (n = 32: 64 vs 32 columns computed).
  const bool useNarrow = narrow != nullptr && roundUp(n, wide.bl.nr) * 100 > roundUp(n, narrow->bl.nr) * 115;
  const Plan& p = useNarrow ? *narrow : wide;
  threads = gemmThreads(work, threads);
  if (threads <= 1) return p.serial(*p.arch, p.bl, m, n, k, A, B, c, ldc, accumulate);
  p.units(*p.arch, p.bl, m, n, k, A, B, c, ldc, accumulate, threads);
}

Plan planFor(const Arch& arch) {
  const Blocking bl = blockingFor(arch);
  return Plan{&arch, bl, serialFor(bl), unitsFor(bl)};
}

}  // namespace

Blocking blockingFor(const Arch& arch) {
  Blocking bl{arch.mr, arch.nr, arch.mc, arch.kc, arch.nc};
  if (const char* env = std::getenv("NEXUS_GEMM_BLOCKS")) {
    int mc = 0, kc = 0, nc = 0;
    if (std::sscanf(env, "%d,%d,%d", &mc, &kc, &nc) == 3 && mc > 0 && kc > 0 && nc > 0) {
      bl.mc = static_cast<int>(roundUp(mc, arch.mr));
      bl.kc = kc;
      bl.nc = static_cast<int>(roundUp(nc, arch.nr));
    }
  }
  return bl;
}

void sgemm(const Arch& arch, const GemmArgs& g) {
  // Locals, not the thread_local cache itself: inside the parallel regions below that name would resolve to
  // each worker's own (empty) copy.
  static thread_local const Arch* lastArch = nullptr;
  static thread_local Plan cachedWide{}, cachedNarrow{};
  if (lastArch != &arch) {
    cachedWide = planFor(arch);
    if (arch.narrow != nullptr) cachedNarrow = planFor(*arch.narrow);
    lastArch = &arch;
  }
  const Plan wide = cachedWide, narrowPlan = cachedNarrow;
  const Plan* narrow = arch.narrow != nullptr ? &narrowPlan : nullptr;
  const int threads = pool::maxThreads();
  const int64_t m = g.m, n = g.n, k = g.k;
  auto viewA = [&](int64_t b) { return View{g.a + b * g.strideA, g.transA ? m : k, g.transA}; };
  auto viewB = [&](int64_t b) { return View{g.b + b * g.strideB, g.transB ? k : n, g.transB}; };
  // Whole matrices per thread when there are enough of them (attention-sized batches); never when C items
  // overlap, since accumulating into a broadcast C must stay sequential.
  const int64_t work = m * n * k;
  const bool cDisjoint = g.strideC >= m * n;
  const bool perItem = threads > 1 && g.batch > 1 && cDisjoint && g.batch * work >= kThreadWork &&
                       (g.batch >= 4 * threads || g.batch % threads == 0 || work < kThreadWork);
  if (perItem) {
    pool::forEachChunk(
        g.batch, [&](int64_t b) { gemmOne(wide, narrow, m, n, k, viewA(b), viewB(b), g.c + b * g.strideC, g.accumulate, 1); },
        static_cast<int>(std::min<int64_t>(threads, g.batch)));
    return;
  }
  for (int64_t b = 0; b < g.batch; ++b)
    gemmOne(wide, narrow, m, n, k, viewA(b), viewB(b), g.c + b * g.strideC, g.accumulate, threads);
}

// ---- scalar fallback: a 4x8 tile the compiler can still vectorise with baseline SSE2 ----
namespace {

void kernelScalar(int64_t kc, const float* __restrict pa, const float* __restrict pb, float* __restrict c, int64_t ldc,
                  bool accumulate) {
  float acc[4][8] = {};
  for (int64_t p = 0; p < kc; ++p) {
    for (int i = 0; i < 4; ++i)
      for (int j = 0; j < 8; ++j) acc[i][j] += pa[i] * pb[j];
    pa += 4;
    pb += 8;
  }
  for (int i = 0; i < 4; ++i)
    for (int j = 0; j < 8; ++j) c[i * ldc + j] = accumulate ? c[i * ldc + j] + acc[i][j] : acc[i][j];
}

void axpyScalar(float* out, int64_t len, int64_t rows, const float* mat, int64_t ld, const float* vec,
                bool accumulate) {
  if (!accumulate) std::memset(out, 0, sizeof(float) * len);
  for (int64_t r = 0; r < rows; ++r)
    for (int64_t j = 0; j < len; ++j) out[j] += vec[r] * mat[r * ld + j];
}

void dotScalar(float* out, int64_t len, int64_t depth, const float* mat, int64_t ld, const float* vec,
               bool accumulate) {
  for (int64_t j = 0; j < len; ++j) {
    float s[4] = {0, 0, 0, 0};  // four partial sums: shorter dependency chain, slightly better rounding
    int64_t r = 0;
    for (; r + 4 <= depth; r += 4)
      for (int q = 0; q < 4; ++q) s[q] += mat[j * ld + r + q] * vec[r + q];
    for (; r < depth; ++r) s[0] += mat[j * ld + r] * vec[r];
    const float t = (s[0] + s[1]) + (s[2] + s[3]);
    out[j] = accumulate ? out[j] + t : t;
  }
}

}  // namespace

const Arch& archScalar() {
  static const Arch arch{"scalar", 4, 8, 128, 256, 2048, &kernelScalar, &axpyScalar, &dotScalar, nullptr};
  return arch;
}

}  // namespace nexus::gemm
