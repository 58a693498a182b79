// Threads: blocks freed by other threads than their allocators, threads that
// come and go by the hundred, and fork from a process whose other threads are
// busy in the allocator.
#include <atomic>
#include <condition_variable>
#include <csignal>
#include <cstring>
#include <cstdlib>
#include <cstdio>
#include <deque>
#include <mutex>
#include <pthread.h>
#include <sched.h>
#include <random>
#include <thread>
#include <vector>

#include <doctest/doctest.h>

#include <pcmalloc/arena.hpp>

#include "support.hpp"

using namespace api_test;

namespace {

// Sizes spread evenly over orders of magnitude, 1 B .. 64 KiB.
std::size_t random_size(std::mt19937_64& rng) {
  unsigned bits = unsigned(rng() % 17);
  return 1 + std::size_t(rng() % (std::size_t(1) << bits));
}

struct handed_block {
  void* p;
  std::size_t n;
  std::uint64_t seed;
};

// A bounded queue under a mutex: producers wait when it is full.
class block_queue {
 public:
  void push(handed_block b) {
    std::unique_lock lock(mutex_);
    not_full_.wait(lock, [this] { return items_.size() < capacity; });
    items_.push_back(b);
    not_empty_.notify_one();
  }
  // False once closed and drained.
  bool pop(handed_block& out) {
    std::unique_lock lock(mutex_);
    not_empty_.wait(lock, [this] { return !items_.empty() || closed_; });
    if (items_.empty()) return false;
    out = items_.front();
    items_.pop_front();
    not_full_.notify_one();
    return true;
  }
  void close() {
    std::lock_guard lock(mutex_);
    closed_ = true;
    not_empty_.notify_all();
  }

 private:
  static constexpr std::size_t capacity = 1024;
  std::mutex mutex_;
  std::condition_variable not_empty_, not_full_;
  std::deque<handed_block> items_;
  bool closed_ = false;
};

}  // namespace

TEST_CASE("cross-thread frees: 4 producers hand blocks to 4 consumers") {
  constexpr int producers = 4, consumers = 4, blocks_each = 25000;
  block_queue queue;
  std::atomic<int> bad_blocks{0}, consumed{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < producers; ++t) {
    threads.emplace_back([&, t] {
      std::mt19937_64 rng(std::uint64_t(t) + 1);
      for (int i = 0; i < blocks_each; ++i) {
        std::size_t n = random_size(rng);
        void* p = malloc(n);
        if (!p || pcm_owns(p) != 1) { ++bad_blocks; continue; }
        std::uint64_t seed = rng();
        fill(p, n, seed);
        queue.push({p, n, seed});
      }
    });
  }
  for (int t = 0; t < consumers; ++t) {
    threads.emplace_back([&, t] {
      handed_block b;
      for (unsigned i = 0; queue.pop(b); ++i) {
        if (!intact(b.p, b.n, b.seed) || pcm_usable_size(b.p) < b.n) ++bad_blocks;
        switch ((i + unsigned(t)) % 3) {   // every free form, from a foreign thread
          case 0: free(b.p); break;
          case 1: free_sized(b.p, b.n); break;
          default: pcm_free(b.p); break;   // (operator delete of a malloc block: a mismatch the debug flavour reports)
        }
        ++consumed;
      }
    });
  }
  for (int t = 0; t < producers; ++t) threads[std::size_t(t)].join();
  queue.close();
  for (std::size_t t = producers; t < threads.size(); ++t) threads[t].join();
  CHECK(bad_blocks.load() == 0);
  CHECK(consumed.load() == producers * blocks_each);
}

TEST_CASE("thread churn: 200 short threads, some of their blocks freed later by main") {
  constexpr int rounds = 50, per_round = 4, blocks_each = 3000;
  std::vector<handed_block> survivors;
  std::mutex survivors_lock;
  std::atomic<int> bad_blocks{0};
  for (int round = 0; round < rounds; ++round) {
    std::vector<std::thread> threads;
    for (int t = 0; t < per_round; ++t) {
      threads.emplace_back([&, seed = std::uint64_t(round * per_round + t)] {
        std::mt19937_64 rng(seed);
        std::vector<handed_block> mine;
        mine.reserve(blocks_each);
        for (int i = 0; i < blocks_each; ++i) {
          std::size_t n = rng() % 8 == 0 ? random_size(rng) : 1 + rng() % 512;
          void* p = malloc(n);
          if (!p) { ++bad_blocks; continue; }
          fill(p, n, seed * 100000 + std::uint64_t(i));
          mine.push_back({p, n, seed * 100000 + std::uint64_t(i)});
        }
        std::vector<handed_block> kept;
        for (std::size_t i = 0; i < mine.size(); ++i) {
          if (i % 3 == 0) { kept.push_back(mine[i]); continue; }   // the main thread frees these later
          if (!intact(mine[i].p, mine[i].n, mine[i].seed)) ++bad_blocks;
          free(mine[i].p);
        }
        std::lock_guard lock(survivors_lock);
        survivors.insert(survivors.end(), kept.begin(), kept.end());
      });
    }
    for (auto& t : threads) t.join();
  }
  for (const handed_block& b : survivors) {
    if (!intact(b.p, b.n, b.seed) || pcm_owns(b.p) != 1) ++bad_blocks;
    free(b.p);
  }
  CHECK(bad_blocks.load() == 0);
  CHECK(survivors.size() == std::size_t(rounds * per_round * ((blocks_each + 2) / 3)));
}

namespace {
// Runs after the allocator's own thread-exit hook (keys are destroyed in
// creation order, and pcmalloc creates its key at start-up): the exiting
// thread's cache is gone, yet it may still allocate and free.
pthread_key_t late_key;
std::atomic<int> late_failures{0};
void late_destructor(void* value) {
  auto* blocks = static_cast<std::vector<void*>*>(value);
  for (void* p : *blocks) free(p);
  delete blocks;
  for (std::size_t i = 0; i < 2000; ++i) {
    std::size_t n = 1 + (i * 97) % (i % 50 == 0 ? 200 * KiB : 2000);
    void* p = malloc(n);
    if (!p || pcm_owns(p) != 1) { ++late_failures; continue; }
    fill(p, n, i);
    if (!intact(p, n, i)) ++late_failures;
    if (i % 2) free(p);
    else free_sized(p, n);
  }
}
}  // namespace

TEST_CASE("threads allocate and free in their own exit destructors") {
  REQUIRE(pthread_key_create(&late_key, late_destructor) == 0);
  late_failures = 0;
  for (int round = 0; round < 10; ++round) {
    std::vector<std::thread> threads;
    for (int t = 0; t < 4; ++t) {
      threads.emplace_back([] {
        for (int i = 0; i < 500; ++i) free(opaque(malloc(std::size_t(i) * 3 + 1)));   // a cache to flush at exit
        auto* blocks = new std::vector<void*>;
        for (int i = 0; i < 100; ++i) blocks->push_back(malloc(std::size_t(i) * 40 + 1));
        pthread_setspecific(late_key, blocks);
      });
    }
    for (auto& t : threads) t.join();
  }
  pthread_key_delete(late_key);
  CHECK(late_failures.load() == 0);
  void* p = malloc(100);   // the registry of thread caches is still sound
  check_block(p, 100);
  free(p);
}

TEST_CASE("fork while other threads hammer the allocator") {
  std::atomic<bool> stop{false};
  std::vector<std::thread> hammers;
  for (int t = 0; t < 4; ++t) {
    hammers.emplace_back([&stop, t] {
      std::mt19937_64 rng(std::uint64_t(t) + 77);
      std::vector<void*> live(64, nullptr);
      while (!stop.load(std::memory_order_relaxed)) {
        std::size_t slot = rng() % live.size();
        free(live[slot]);
        std::size_t n = rng() % 64 == 0 ? 100 * KiB + rng() % MiB : random_size(rng);
        live[slot] = malloc(n);
        if (live[slot]) static_cast<char*>(live[slot])[n - 1] = 1;
      }
      for (void* p : live) free(p);
    });
  }

  // In the child: the locks the other threads may have held are usable, all
  // block kinds work, and new threads can allocate too.
  auto child_work = [] {
    std::mt19937_64 rng(5);
    std::vector<handed_block> blocks;
    for (int i = 0; i < 20000; ++i) {
      std::size_t n = i % 1000 == 0 ? 8 * MiB + rng() % MiB : i % 50 == 0 ? 100 * KiB + rng() % MiB : random_size(rng);
      void* p = malloc(n);
      if (!p) _exit(2);
      fill(p, n, std::uint64_t(i));
      blocks.push_back({p, n, std::uint64_t(i)});
      if (i % 3 == 0) {
        std::size_t victim = rng() % blocks.size();
        if (!intact(blocks[victim].p, blocks[victim].n, blocks[victim].seed)) _exit(3);
        free(blocks[victim].p);
        blocks[victim] = blocks.back();
        blocks.pop_back();
      }
    }
    std::thread helper([] {
      for (int i = 0; i < 10000; ++i) free(opaque(malloc(1 + std::size_t(i) % 3000)));
    });
    helper.join();
    for (const handed_block& b : blocks) {
      if (!intact(b.p, b.n, b.seed)) _exit(4);
      free(b.p);
    }
    void* huge = calloc(1, 64 * MiB);
    if (!huge || !all_zero(huge, 64 * MiB)) _exit(5);
    free(huge);
    pcm_purge();
  };

  // The debug heap poisons every freed block: with four hammers on two
  // cores a child takes seconds there, so its flavour forks twice.
  const int forks = debug_library() ? 2 : 8;
  for (int i = 0; i < forks; ++i) {
    CAPTURE(i);
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
    child_result r = run_in_child(child_work, 30);
    CAPTURE(r.error_text);
    if (r.signalled) CHECK_MESSAGE(r.signal != SIGALRM, "child deadlocked (killed by its 30 s alarm)");
    CHECK(r.exited);
    CHECK(r.status == 0);
  }
  stop = true;
  for (auto& t : hammers) t.join();
}

// hidden_cpus.sh starts this on CPU 1 with the possible CPU ids unreadable:
// two threads, pinned to CPUs 0 and 1, churn one explicit arena (its per-CPU
// caches are indexed by CPU id). Exits 0 when it survives.
int api_test::explicit_arena_two_cpus_child() {
  pcm::arena a;
  auto work = [&a](int cpu) {
    cpu_set_t one;
    CPU_ZERO(&one);
    CPU_SET(cpu, &one);
    sched_setaffinity(0, sizeof one, &one);
    std::vector<void*> blocks;
    for (int round = 0; round < 200; ++round) {
      for (int i = 0; i < 2000; ++i) {
        void* p = a.allocate(16 + std::size_t(i % 64) * 16);
        if (!p) std::abort();
        std::memset(p, cpu, 16);
        blocks.push_back(p);
      }
      for (void* p : blocks) a.deallocate(p);
      blocks.clear();
    }
  };
  std::thread first(work, 0), second(work, 1);
  first.join();
  second.join();
  std::printf("cpu_count %u, survived\n", pcm_cpu_count());
  return 0;
}
