// pcm::map_pool<Map> — a pool of ready, empty maps.
//
//   pcm::map_pool<std::pmr::unordered_map<std::pmr::string, std::pmr::string>> pool;
//   pool.prewarm(64);
//   {
//     auto headers = pool.acquire();     // an empty map that kept its buckets and node storage
//     (*headers)["host"] = "example.org";
//   }                                    // back to the pool, cleared
//
// Each pooled map owns a pcm::pmr::local_resource (when Map's allocator can be
// built from a std::pmr::memory_resource*): its nodes are carved in sequence
// and, after clear(), reused by the same map; its bucket array survives clear().
// A map is used by one thread at a time (its handle's owner); handles may move
// between threads, so a map acquired in one thread can be released in another.
// Idle maps wait in per-CPU lists. While the pool is disposing or terminated,
// or holds more than memory_budget bytes, acquire() returns a plain map on the
// default resource and counts a fallback.
// The pool must outlive every handle it gave out.
#pragma once
#include <algorithm>
#include <atomic>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <memory>
#include <memory_resource>
#include <new>
#include <type_traits>
#include <utility>

#include "pcmalloc.h"
#include "pmr.hpp"

namespace pcm {

enum class pool_state : std::uint8_t { initialised, warming, ready, disposing, terminated };

inline const char* to_string(pool_state s) noexcept {
  switch (s) {
    case pool_state::initialised: return "initialised";
    case pool_state::warming: return "warming";
    case pool_state::ready: return "ready";
    case pool_state::disposing: return "disposing";
    case pool_state::terminated: return "terminated";
  }
  return "?";
}

struct map_pool_options {
  std::size_t max_idle = 4096;       // idle maps kept (spread over the CPUs' lists); more are dropped
  std::size_t memory_budget = 0;     // bytes held by pooled maps (0: no limit)
  std::size_t reserve = 0;           // buckets reserved in every new pooled map
};

struct map_pool_statistics {
  std::uint64_t acquires = 0, hits = 0, misses = 0, releases = 0, drops = 0, fallbacks = 0;
  std::size_t idle = 0, outstanding = 0;
  std::size_t live_bytes = 0;        // nodes and buckets in use by pooled maps
  std::size_t held_bytes = 0;        // memory held by pooled maps, idle or not
  double hit_rate() const noexcept { return acquires ? double(acquires - misses) / double(acquires) : 1.0; }
  double fragmentation() const noexcept { return held_bytes ? 1.0 - double(live_bytes) / double(held_bytes) : 0.0; }
};

template <class Map>
class map_pool {
  static constexpr bool uses_resource =
      std::is_constructible_v<typename Map::allocator_type, std::pmr::memory_resource*>;

  struct entry {
    explicit entry(std::size_t first_block, std::size_t reserve)
        : resource(pmr::global_resource(), first_block), map(make_map(resource)) {
      if (reserve) map.reserve(reserve);
    }
    static Map make_map(pmr::local_resource& r) {
      if constexpr (uses_resource) return Map(typename Map::allocator_type(&r));
      else return Map();
    }
    pmr::local_resource resource;
    Map map;
    entry* next_idle = nullptr;
    std::size_t accounted_held = 0;   // its share of the pool's held_ counter
    unsigned returned_at = 0;         // debug library: where it last went back
    entry* prev_all = nullptr;
    entry* next_all = nullptr;
  };

  // A tiny spin lock: idle lists are per CPU, so contention is rare and short.
  struct spin_lock {
    std::atomic<bool> held{false};
    void lock() noexcept {
      while (held.exchange(true, std::memory_order_acquire))
        while (held.load(std::memory_order_relaxed)) {
#if defined(__x86_64__)
          __builtin_ia32_pause();
#endif
        }
    }
    void unlock() noexcept { held.store(false, std::memory_order_release); }
  };
  // Counters live with the idle list they describe and change under its lock:
  // the common acquire and release touch one CPU's cache line and nothing shared.
  struct alignas(64) shard {
    spin_lock lock;
    entry* idle = nullptr;
    std::size_t count = 0;
    std::uint64_t acquires = 0, hits = 0, releases = 0, drops = 0;
  };

 public:
  using map_type = Map;

  class handle {
   public:
    handle() noexcept = default;
    handle(handle&& o) noexcept : pool_(o.pool_), entry_(o.entry_), fallback_(std::move(o.fallback_)) {
      o.pool_ = nullptr;
      o.entry_ = nullptr;
    }
    handle& operator=(handle&& o) noexcept {
      if (this != &o) {
        release();
        pool_ = std::exchange(o.pool_, nullptr);
        entry_ = std::exchange(o.entry_, nullptr);
        fallback_ = std::move(o.fallback_);
      }
      return *this;
    }
    handle(const handle&) = delete;
    handle& operator=(const handle&) = delete;
    ~handle() { release(); }

    Map* get() const noexcept { return entry_ ? &entry_->map : fallback_.get(); }
    Map& operator*() const noexcept { return *get(); }
    Map* operator->() const noexcept { return get(); }
    explicit operator bool() const noexcept { return get() != nullptr; }
    bool pooled() const noexcept { return entry_ != nullptr; }

    // Give the map back now (cleared); the handle becomes empty.
    void release() noexcept {
      if (entry_) pool_->give_back(std::exchange(entry_, nullptr));
      else if (fallback_ && pool_) fallback_.reset();
      pool_ = nullptr;
    }

   private:
    friend class map_pool;
    handle(map_pool* p, entry* e) noexcept : pool_(p), entry_(e) {}
    handle(map_pool* p, std::unique_ptr<Map> m) noexcept : pool_(p), fallback_(std::move(m)) {}
    map_pool* pool_ = nullptr;
    entry* entry_ = nullptr;
    std::unique_ptr<Map> fallback_;
  };

  explicit map_pool(map_pool_options options = {})
      : options_(options), shard_count_(std::max(1u, pcm_cpu_count())),
        per_shard_idle_((options.max_idle + shard_count_ - 1) / shard_count_), shards_(new shard[shard_count_]) {}
  ~map_pool() {
    dispose();
    if (std::size_t n = statistics().outstanding) {
      std::fprintf(stderr, "pcmalloc: error: map_pool destroyed with %zu maps still acquired\n", n);
      std::abort();
    }
  }
  map_pool(const map_pool&) = delete;
  map_pool& operator=(const map_pool&) = delete;

  // Build n idle maps now, so that the first acquires hit. A dispose() from
  // another thread meanwhile wins: the maps not yet parked are dropped.
  void prewarm(std::size_t n) {
    pool_state expected = pool_state::initialised;
    if (!state_.compare_exchange_strong(expected, pool_state::warming)) {
      if (expected != pool_state::ready || !state_.compare_exchange_strong(expected, pool_state::warming)) return;
    }
    for (std::size_t i = 0; i < n; ++i) {
      shard& sh = shards_[i % shard_count_];
      entry* e = create();
      sh.lock.lock();
      bool keep = state_.load(std::memory_order_acquire) == pool_state::warming && sh.count < per_shard_idle_;
      if (keep) park(sh, e);
      sh.lock.unlock();
      if (!keep) {
        destroy(e);
        break;
      }
    }
    expected = pool_state::warming;
    state_.compare_exchange_strong(expected, pool_state::ready);
  }

  handle acquire() {
    pool_state s = state_.load(std::memory_order_acquire);
    if (s != pool_state::ready) [[unlikely]] {
      if (s == pool_state::initialised) state_.compare_exchange_strong(s, pool_state::ready);
      else if (s != pool_state::warming) return fallback();
    }
    if (over_budget()) [[unlikely]] return fallback();
    const std::size_t home = pcm_current_cpu() % shard_count_;
    shard& own = shards_[home];
    own.lock.lock();
    ++own.acquires;
    entry* e = pop(own);
    if (e) ++own.hits;
    own.lock.unlock();
    // A map idle on another CPU is still better than a new one.
    for (std::size_t k = 1; !e && k < shard_count_; ++k) {
      shard& other = shards_[(home + k) % shard_count_];
      if (!other.idle) continue;
      other.lock.lock();
      e = pop(other);
      if (e) ++other.hits;
      other.lock.unlock();
    }
    if (!e) {
      misses_.fetch_add(1, std::memory_order_relaxed);
      e = create();
    } else if (debug_) [[unlikely]] {
      e->resource.debug_unpark();
      if (!e->map.empty())
        pcm_debug_report(PCM_DEBUG_USE_AFTER_RETURN, &e->map, sizeof(Map), e->returned_at,
                         0, "a map was changed after it went back to its map_pool (found when it was acquired again)");
    }
    return handle(this, e);
  }

  // Stop pooling: idle maps are freed now, acquired ones when they come back.
  void dispose() noexcept {
    pool_state s = state_.load();
    if (s == pool_state::disposing || s == pool_state::terminated) return;
    state_.store(pool_state::disposing);
    for (std::size_t i = 0; i < shard_count_; ++i) {
      shard& sh = shards_[i];
      sh.lock.lock();
      entry* list = std::exchange(sh.idle, nullptr);
      sh.count = 0;
      sh.lock.unlock();
      while (list) destroy(std::exchange(list, list->next_idle));
    }
    finish_if_drained();
  }

  pool_state state() const noexcept { return state_.load(std::memory_order_acquire); }

  map_pool_statistics statistics() const noexcept {
    map_pool_statistics s;
    for (std::size_t i = 0; i < shard_count_; ++i) {
      shard& sh = shards_[i];
      sh.lock.lock();
      s.acquires += sh.acquires;
      s.hits += sh.hits;
      s.releases += sh.releases;
      s.drops += sh.drops;
      s.idle += sh.count;
      sh.lock.unlock();
    }
    s.misses = misses_.load();
    s.fallbacks = fallbacks_.load();
    s.acquires += s.fallbacks;
    // Fallback maps are not pooled: their release is not counted.
    s.outstanding = std::size_t(s.acquires - s.fallbacks - s.releases);
    all_lock_.lock();
    for (entry* e = all_; e; e = e->next_all) {
      s.live_bytes += e->resource.statistics().bytes_live;
      s.held_bytes += e->resource.statistics().bytes_held;
    }
    all_lock_.unlock();
    return s;
  }
  const map_pool_options& options() const noexcept { return options_; }

 private:
  entry* create() {
    auto* e = new entry(first_block_.load(std::memory_order_relaxed), options_.reserve);
    account(e);
    all_lock_.lock();
    e->next_all = all_;
    if (all_) all_->prev_all = e;
    all_ = e;
    all_lock_.unlock();
    return e;
  }

  void destroy(entry* e) noexcept {
    e->resource.debug_unpark();
    all_lock_.lock();
    if (e->prev_all) e->prev_all->next_all = e->next_all; else all_ = e->next_all;
    if (e->next_all) e->next_all->prev_all = e->prev_all;
    all_lock_.unlock();
    held_.fetch_sub(e->accounted_held, std::memory_order_relaxed);
    delete e;
  }

  static void park(shard& sh, entry* e) noexcept {
    e->next_idle = sh.idle;
    sh.idle = e;
    ++sh.count;
  }
  static entry* pop(shard& sh) noexcept {
    entry* e = sh.idle;
    if (e) {
      sh.idle = e->next_idle;
      --sh.count;
    }
    return e;
  }

  void give_back(entry* e) noexcept {
    // What a full map needed tells how big a new map's first block should be.
    std::size_t used = e->resource.statistics().bytes_live;
    if (used + 64 > first_block_.load(std::memory_order_relaxed) && used < pmr::local_resource::largest_block)
      first_block_.store((used + 64 + 63) & ~std::size_t(63), std::memory_order_relaxed);
    e->map.clear();
    if (e->resource.statistics().bytes_held != e->accounted_held) [[unlikely]] account(e);
    if (debug_) [[unlikely]] {
      e->returned_at = pcm_debug_stack();
      e->resource.debug_park(e->returned_at);
    }
    const bool within_budget = !over_budget();
    shard& sh = shards_[pcm_current_cpu() % shard_count_];
    sh.lock.lock();
    ++sh.releases;
    // The state is read under the shard lock: dispose() empties each shard
    // under the same lock after changing the state, so a map is either parked
    // before that (and dropped by dispose) or sees the new state here.
    pool_state s = state_.load(std::memory_order_acquire);
    bool keep = (s == pool_state::ready || s == pool_state::warming) && within_budget && sh.count < per_shard_idle_;
    if (keep) park(sh, e);
    else ++sh.drops;
    sh.lock.unlock();
    if (!keep) {
      destroy(e);
      finish_if_drained();
    }
  }

  handle fallback() {
    fallbacks_.fetch_add(1, std::memory_order_relaxed);
    return handle(this, std::make_unique<Map>());
  }

  // The budget is checked against what maps held when last returned (cheap;
  // maps in use may have grown since).
  void account(entry* e) noexcept {
    std::size_t now = e->resource.statistics().bytes_held;
    held_.fetch_add(now - e->accounted_held, std::memory_order_relaxed);
    e->accounted_held = now;
  }
  bool over_budget() const noexcept {
    return options_.memory_budget && held_.load(std::memory_order_relaxed) > options_.memory_budget;
  }

  void finish_if_drained() noexcept {
    if (state_.load() == pool_state::disposing && statistics().outstanding == 0) state_.store(pool_state::terminated);
  }

  map_pool_options options_;
  std::size_t shard_count_;
  std::size_t per_shard_idle_;   // max_idle spread over the CPUs' lists
  std::unique_ptr<shard[]> shards_;
  std::atomic<pool_state> state_{pool_state::initialised};
  std::atomic<std::uint64_t> misses_{0}, fallbacks_{0};   // rare events only
  const bool debug_ = pcm_debug_enabled() != 0;           // checks of the debug library
  std::atomic<std::size_t> first_block_{1024};
  std::atomic<std::size_t> held_{0};
  mutable spin_lock all_lock_;
  entry* all_ = nullptr;
};

}  // namespace pcm
