// Threads passing blocks to each other through pcm_* and pcm::arena, for
// ThreadSanitizer (and ASan): producers allocate and pattern blocks, hand them
// over through a locked queue, consumers check, sometimes realloc, and free
// them, so most frees are cross-thread; meanwhile every thread also churns
// blocks of its own, which reuses on one CPU what another thread freed there.
// Exit status 0 when every block arrived intact; any sanitizer report fails
// the run (the scripts set halt_on_error).
#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <deque>
#include <functional>
#include <mutex>
#include <thread>
#include <vector>

#include <pcmalloc/arena.hpp>
#include <pcmalloc/pcmalloc.h>

namespace {

struct parcel {
  unsigned char* p;
  std::size_t size;
  std::uint32_t id;
  bool from_arena;
};

class queue {
 public:
  void put(parcel x) {
    { std::lock_guard<std::mutex> g(m_); q_.push_back(x); }
    cv_.notify_one();
  }
  bool take(parcel& x) {
    std::unique_lock<std::mutex> g(m_);
    cv_.wait(g, [&] { return !q_.empty() || closed_; });
    if (q_.empty()) return false;
    x = q_.front();
    q_.pop_front();
    return true;
  }
  void close() {
    { std::lock_guard<std::mutex> g(m_); closed_ = true; }
    cv_.notify_all();
  }
 private:
  std::mutex m_;
  std::condition_variable cv_;
  std::deque<parcel> q_;
  bool closed_ = false;
};

unsigned char byte_of(std::uint32_t id, std::size_t i) { return static_cast<unsigned char>(id * 131u + i * 7u + (i >> 9)); }
void fill(unsigned char* p, std::size_t n, std::uint32_t id) { for (std::size_t i = 0; i < n; ++i) p[i] = byte_of(id, i); }
bool intact(const unsigned char* p, std::size_t n, std::uint32_t id) {
  for (std::size_t i = 0; i < n; ++i)
    if (p[i] != byte_of(id, i)) return false;
  return true;
}

std::atomic<unsigned> failures{0};
void failed(const char* what, const void* p) {
  std::fprintf(stderr, "threads_test: %s (%p)\n", what, p);
  failures.fetch_add(1);
}

std::size_t size_for(std::uint32_t x) {
  switch (x % 16) {
    case 0: return 40000 + x % 100000;   // large
    case 1: return 2u * 1024 * 1024 + x % 100000;   // huge (rarely)
    default: return 1 + x % 600;
  }
}

std::uint32_t next(std::uint32_t& x) { x ^= x << 13; x ^= x >> 17; x ^= x << 5; return x; }

// Blocks of this thread's own, freed by it: reuses what others freed on this CPU.
void churn(std::uint32_t& x, unsigned rounds) {
  unsigned char* mine[8] = {};
  std::size_t sizes[8] = {};
  for (unsigned i = 0; i < rounds; ++i) {
    unsigned k = next(x) % 8;
    if (mine[k]) {
      if (!intact(mine[k], sizes[k], k)) failed("own block damaged", mine[k]);
      pcm_free(mine[k]);
    }
    sizes[k] = 1 + next(x) % 300;
    mine[k] = static_cast<unsigned char*>(pcm_malloc(sizes[k]));
    if (!mine[k]) { failed("pcm_malloc failed", nullptr); return; }
    fill(mine[k], sizes[k], k);
  }
  for (unsigned k = 0; k < 8; ++k) pcm_free(mine[k]);
}

void producer(queue& out, pcm::arena& shared_arena, unsigned seed, unsigned count) {
  std::uint32_t x = seed * 2654435761u | 1;
  for (unsigned i = 0; i < count; ++i) {
    std::uint32_t r = next(x);
    std::size_t size = size_for(r);
    if (size > 1024 * 1024 && (r >> 8) % 8) size = 1 + r % 600;   // huge ones seldom
    bool from_arena = (r >> 4) % 4 == 0 && size < 1024 * 1024;
    void* p = from_arena ? shared_arena.allocate(size, (r >> 12) % 2 ? 64 : 16) : pcm_malloc(size);
    if (!p) { failed("allocation failed", nullptr); continue; }
    if (pcm_usable_size(p) < size) failed("usable size below the request", p);
    std::uint32_t id = seed << 20 | i;
    fill(static_cast<unsigned char*>(p), size, id);
    out.put({static_cast<unsigned char*>(p), size, id, from_arena});
    if (i % 16 == 0) churn(x, 32);
  }
}

void consumer(queue& in, pcm::arena& shared_arena, unsigned seed) {
  std::uint32_t x = seed * 40503u | 1;
  parcel got;
  while (in.take(got)) {
    if (!intact(got.p, got.size, got.id)) failed("block damaged on its way", got.p);
    std::uint32_t r = next(x);
    if (!got.from_arena && r % 4 == 0) {   // grow or shrink it here, then free
      std::size_t size = 1 + r % 5000;
      auto* q = static_cast<unsigned char*>(pcm_realloc(got.p, size));
      if (!q) { failed("pcm_realloc failed", got.p); continue; }
      std::size_t kept = size < got.size ? size : got.size;
      if (!intact(q, kept, got.id)) failed("pcm_realloc lost contents", q);
      fill(q, size, got.id);
      pcm_free(q);
    } else if (got.from_arena && r % 2) {
      shared_arena.deallocate(got.p);
    } else {
      pcm_free(got.p);   // an arena's block goes home through free() too
    }
    if (r % 64 == 0) churn(x, 16);
    if (r % 512 == 0) pcm_thread_flush();
  }
}

}  // namespace

int main(int argc, char** argv) {
  unsigned per_producer = argc > 1 ? unsigned(std::atoi(argv[1])) : 3000;
  pcm::arena shared_arena;
  queue q;
  std::vector<std::thread> consumers, producers;
  for (unsigned i = 0; i < 2; ++i) consumers.emplace_back(consumer, std::ref(q), std::ref(shared_arena), i + 1);
  for (unsigned i = 0; i < 2; ++i)
    producers.emplace_back(producer, std::ref(q), std::ref(shared_arena), i + 1, per_producer);
  for (auto& t : producers) t.join();
  q.close();
  for (auto& t : consumers) t.join();
  std::printf("threads_test: %u blocks passed between threads in %s mode, %u failures\n", 2 * per_producer,
              pcm_cache_mode(), failures.load());
  return failures.load() ? 1 : 0;
}
