// The worker pool behind forEachChunk (thread_pool.h). One job at a time: the caller publishes it (a new epoch
// in the shared state word), works on it itself, and waits only for chunks other threads have claimed. Workers
// spin briefly for the next job (kernels come back to back), then sleep on a condition variable, so an idle or
// contended worker costs nothing and, having slept, is scheduled promptly when it is woken.
#include "thread_pool.h"

#include <immintrin.h>
#include <omp.h>

#include <atomic>
#include <condition_variable>
#include <exception>
#include <mutex>
#include <thread>
#include <vector>

namespace nexus::pool {
namespace {

constexpr int kSpinPolls = 4096;  // ~50-100 us of polling before a worker sleeps
// The job state word: [epoch: 20 bits][count: 22][next: 22]. A claim is one CAS on the whole word, so a
// worker that read an old job's state can never claim a chunk of a newer one.
constexpr int kBits = 22;
constexpr uint64_t kMask = (uint64_t{1} << kBits) - 1;
constexpr int64_t kMaxChunks = static_cast<int64_t>(kMask);
uint64_t pack(uint32_t epoch, int64_t count, int64_t next) {
  return (static_cast<uint64_t>(epoch & 0xfffff) << (2 * kBits)) | (static_cast<uint64_t>(count) << kBits) | static_cast<uint64_t>(next);
}

thread_local bool inChunk = false;  // nested calls run serially

struct Pool {
  std::atomic<uint64_t> state{0};
  std::atomic<uint32_t> published{0};
  std::atomic<int64_t> done{0};
  std::atomic<int> sleepers{0};
  std::atomic<bool> busy{false};
  // written by the caller before it publishes a job, read by a thread only after it claimed a chunk of it
  ChunkFn fn = nullptr;
  void* ctx = nullptr;
  std::atomic<int> workersWanted{0};  // workers 0..workersWanted-1 take part in the current job
  std::exception_ptr error;
  std::mutex errorMutex;
  std::mutex m;
  std::condition_variable cv;
  std::vector<std::thread> workers;

  // Claim and run chunks of job `epoch` until none is left.
  void work(uint32_t epoch) {
    for (;;) {
      uint64_t s = state.load(std::memory_order_acquire);
      for (;;) {
        const int64_t next = static_cast<int64_t>(s & kMask), count = static_cast<int64_t>((s >> kBits) & kMask);
        if ((s >> (2 * kBits)) != (epoch & 0xfffff) || next >= count) return;
        if (state.compare_exchange_weak(s, s + 1, std::memory_order_acq_rel, std::memory_order_acquire)) break;
      }
      const int64_t chunk = static_cast<int64_t>(s & kMask);
      inChunk = true;
      try {
        fn(ctx, chunk);
      } catch (...) {
        std::lock_guard<std::mutex> lock(errorMutex);
        if (!error) error = std::current_exception();
      }
      inChunk = false;
      done.fetch_add(1, std::memory_order_acq_rel);
    }
  }

  void workerLoop(int index) {
    uint32_t seen = published.load(std::memory_order_acquire);
    for (;;) {
      uint32_t now = published.load(std::memory_order_acquire);
      for (int i = 0; i < kSpinPolls && now == seen; ++i) {
        _mm_pause();
        now = published.load(std::memory_order_acquire);
      }
      if (now == seen) {
        sleepers.fetch_add(1, std::memory_order_seq_cst);
        std::unique_lock<std::mutex> lock(m);
        cv.wait(lock, [&] { return published.load(std::memory_order_seq_cst) != seen; });
        sleepers.fetch_sub(1, std::memory_order_seq_cst);
        now = published.load(std::memory_order_acquire);
      }
      seen = now;
      if (index < workersWanted.load(std::memory_order_acquire)) work(now);
    }
  }

  void ensureWorkers(int n) {
    while (static_cast<int>(workers.size()) < n) {
      const int index = static_cast<int>(workers.size());
      workers.emplace_back([this, index] { workerLoop(index); });
      workers.back().detach();
    }
  }
};

// Never destroyed: detached workers may still be polling when the process exits.
Pool& pool() {
  static Pool* p = new Pool();
  return *p;
}

}  // namespace

int maxThreads() { return omp_get_max_threads(); }

void run(int64_t count, int threads, ChunkFn f, void* ctx) {
  if (count <= 0) return;
  Pool& p = pool();
  const bool serial = threads <= 1 || count == 1 || inChunk || count > kMaxChunks;
  // one job at a time: a second caller (another JS thread) runs its loop by itself
  if (serial || p.busy.exchange(true, std::memory_order_acquire)) {
    for (int64_t i = 0; i < count; ++i) f(ctx, i);
    return;
  }
  p.ensureWorkers(threads - 1);
  p.fn = f;
  p.ctx = ctx;
  p.workersWanted.store(threads - 1, std::memory_order_relaxed);
  p.error = nullptr;
  p.done.store(0, std::memory_order_relaxed);
  const uint32_t epoch = p.published.load(std::memory_order_relaxed) + 1;
  p.state.store(pack(epoch, count, 0), std::memory_order_release);
  p.published.store(epoch, std::memory_order_seq_cst);
  if (p.sleepers.load(std::memory_order_seq_cst) > 0) {
    std::lock_guard<std::mutex> lock(p.m);
    p.cv.notify_all();
  }
  p.work(epoch);
  // only chunks another thread is in the middle of are waited for, never a worker that has not started
  for (int spins = 0; p.done.load(std::memory_order_acquire) < count; ++spins) {
    if (spins < 20000) _mm_pause();
    else std::this_thread::yield();
  }
  std::exception_ptr error = p.error;
  p.busy.store(false, std::memory_order_release);
  if (error) std::rethrow_exception(error);
}

}  // namespace nexus::pool
