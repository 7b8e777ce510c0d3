// The CPU backend's parallel loops: `forEachChunk(count, f)` runs f(0..count-1) on the calling thread and a
// small pool of persistent workers, each chunk claimed from a shared counter. Unlike an OpenMP region it never
// waits for a worker that has not started: when another process keeps a core busy, the worker on that core
// wakes late, finds fewer (or no) chunks left, and the caller only ever waits for a chunk a worker is in the
// middle of. (A static OpenMP split waits for the slowest thread's whole share, and its join waits for a
// thread that is not even running: a scheduler slice per region.) Which thread runs a chunk never changes
// the result: callers give each chunk disjoint outputs, or reduce per-chunk partials in chunk order.
// Not here: what the chunks compute; OMP_NUM_THREADS still sets the thread count (omp_get_max_threads).
#pragma once
#include <cstdint>
#include <utility>

namespace nexus::pool {

using ChunkFn = void (*)(void* ctx, int64_t chunk);

// f(ctx, i) for every i in [0, count), on up to `threads` threads (the caller included); returns when all
// are done. Called from inside a chunk (nested), it runs serially on the calling thread.
void run(int64_t count, int threads, ChunkFn f, void* ctx);

// Threads a parallel loop may use: OMP_NUM_THREADS (or the core count).
int maxThreads();

template <class F>
void forEachChunk(int64_t count, F&& f, int threads = maxThreads()) {
  auto thunk = [](void* ctx, int64_t i) { (*static_cast<std::remove_reference_t<F>*>(ctx))(i); };
  run(count, threads, thunk, const_cast<void*>(static_cast<const void*>(&f)));
}

// f(begin, end) over [0, n) in contiguous chunks, about 8 per thread, with boundaries at multiples of `align`;
// one call f(0, n) when `parallel` is false. Chunk boundaries depend only on n and the thread count.
template <class F>
void forRange(int64_t n, bool parallel, F&& f, int64_t align = 1) {
  if (n <= 0) return;
  const int nt = maxThreads();
  if (!parallel || nt < 2 || n < 2) {
    f(int64_t{0}, n);
    return;
  }
  int64_t size = (n + 8 * nt - 1) / (8 * nt);
  size = (size + align - 1) / align * align;
  forEachChunk((n + size - 1) / size, [&](int64_t i) { f(i * size, i * size + size < n ? i * size + size : n); }, nt);
}

}  // namespace nexus::pool
