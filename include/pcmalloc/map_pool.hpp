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
// Idle maps wait in per-CPU lists, and one per thread in that thread's slot
// (thread_slots.hpp): a thread that releases a map and acquires one again
// takes it back from its slot with plain loads and stores, where a per-CPU
// list costs a locked exchange each way (about a tenth of a pooled request).
// A thread's slot is emptied when the thread exits, when it next uses a
// disposed pool, and when the pool is destroyed; dispose() empties the
// calling thread's slot at once, another thread's slot then. The debug
// library does without the slots, so that every return parks the map.
// While the pool is disposing or terminated, or holds more than
// memory_budget bytes, acquire() returns a plain map on the default resource
// and counts a fallback.
// The pool must outlive every handle it gave out.
//
// pcm::recycling_map<Map> makes a pooled map skip most of its work: its
// clear() keeps the nodes with their keys and values constructed, and its
// emplace() assigns the new entry into one of them, so a string key or value
// reuses its old capacity. A request that fills a recycled map like the last
// one allocates nothing and frees nothing:
//
//   pcm::map_pool<pcm::recycling_map<std::pmr::unordered_map<std::pmr::string, std::pmr::string>>> pool;
//
// Statistics: live_bytes counts, for every pooled map, what its resource had
// in use when the map last went back (before clear(): the nodes and buckets
// the next user will reuse, whether they sit in the map as kept nodes or in
// its resource's free lists); held_bytes, what its resource held from
// upstream then. Both are as of each map's last return (a map never returned
// counts what it held when built), so reading them never touches a map in
// use. fragmentation() = 1 - live/held is then the part of the pool's memory
// that no refill of the same size would use: block tails never carved, block
// headers, free-list leftovers of bigger earlier uses.
#pragma once
#include <algorithm>
#include <atomic>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <memory>
#include <memory_resource>
#include <functional>
#include <iterator>
#include <new>
#include <string_view>
#include <type_traits>
#include <utility>
#include <vector>

#include "pcmalloc.h"
#include "pmr.hpp"
#include "recycle.hpp"
#include "thread_slots.hpp"

namespace pcm {

// An associative container (std::unordered_map, std::map, their pmr forms)
// whose erased and cleared nodes are kept, constructed, for the next inserts.
// Up to max_kept nodes are kept; the rest are freed. Inserting goes through
// emplace(key, value) / try_emplace / insert_or_assign / operator[]; everything
// else of Map is behind base() (base().emplace() would take a new node).
template <class Map>
class recycling_map {
 public:
  using map_type = Map;
  using key_type = typename Map::key_type;
  using mapped_type = typename Map::mapped_type;
  using value_type = typename Map::value_type;
  using allocator_type = typename Map::allocator_type;
  using size_type = typename Map::size_type;
  using iterator = typename Map::iterator;
  using const_iterator = typename Map::const_iterator;
  using node_type = typename Map::node_type;

  static constexpr std::size_t default_max_kept = 1024;

  recycling_map() = default;
  explicit recycling_map(const allocator_type& a) : map_(a), kept_(node_allocator(a)) {}

  // Inserts (key, value) unless key is there; a kept node takes the entry by
  // assignment (key = key; mapped = value), else a new node is made.
  template <class K, class V>
  std::pair<iterator, bool> emplace(K&& key, V&& value) {
    if (kept_.empty()) return map_.emplace(std::forward<K>(key), std::forward<V>(value));
    node_type node = std::move(kept_.back().node);
    kept_.pop_back();
    recycle::assign(node.key(), std::forward<K>(key));
    recycle::assign(node.mapped(), std::forward<V>(value));
    auto result = map_.insert(std::move(node));
    if (!result.inserted) kept_.push_back({std::move(result.node)});
    return {result.position, result.inserted};
  }
  template <class K, class V>
  std::pair<iterator, bool> try_emplace(K&& key, V&& value) {
    if (auto found = map_.find(key); found != map_.end()) return {found, false};
    return emplace(std::forward<K>(key), std::forward<V>(value));
  }
  template <class K, class V>
  std::pair<iterator, bool> insert_or_assign(K&& key, V&& value) {
    if (auto found = map_.find(key); found != map_.end()) {
      found->second = std::forward<V>(value);
      return {found, false};
    }
    return emplace(std::forward<K>(key), std::forward<V>(value));
  }
  template <class K>
  mapped_type& operator[](K&& key) {
    if (auto found = map_.find(key); found != map_.end()) return found->second;
    if (kept_.empty()) return map_.try_emplace(std::forward<K>(key)).first->second;
    node_type node = std::move(kept_.back().node);
    kept_.pop_back();
    recycle::assign(node.key(), std::forward<K>(key));
    recycle::reset(node.mapped());
    return map_.insert(std::move(node)).position->second;
  }

  template <class K> iterator find(const K& key) { return map_.find(key); }
  template <class K> const_iterator find(const K& key) const { return map_.find(key); }
  template <class K> size_type count(const K& key) const { return map_.count(key); }
  template <class K> bool contains(const K& key) const { return map_.find(key) != map_.end(); }
  mapped_type& at(const key_type& key) { return map_.at(key); }
  const mapped_type& at(const key_type& key) const { return map_.at(key); }

  // Erasing keeps the node.
  iterator erase(const_iterator position) {
    iterator next = std::next(map_.erase(position, position));   // erase(p, p) only turns p mutable
    keep(map_.extract(position));
    return next;
  }
  size_type erase(const key_type& key) {
    node_type node = map_.extract(key);
    if (node.empty()) return 0;
    keep(std::move(node));
    return 1;
  }
  // Empties the map and keeps its nodes (up to max_kept in all); buckets stay.
  void clear() noexcept {
    const std::size_t keep = std::min(max_kept, kept_.size() + map_.size());
    if (kept_.capacity() < keep) {
      try {
        kept_.reserve(keep);
      } catch (...) {   // no room to keep them: the nodes are freed
      }
    }
    while (!map_.empty() && kept_.size() < kept_.capacity() && kept_.size() < max_kept)
      kept_.push_back({map_.extract(map_.begin())});
    map_.clear();
  }

  iterator begin() noexcept { return map_.begin(); }
  iterator end() noexcept { return map_.end(); }
  const_iterator begin() const noexcept { return map_.begin(); }
  const_iterator end() const noexcept { return map_.end(); }
  size_type size() const noexcept { return map_.size(); }
  bool empty() const noexcept { return map_.empty(); }
  void reserve(size_type n) { map_.reserve(n); }
  allocator_type get_allocator() const noexcept { return map_.get_allocator(); }
  size_type kept() const noexcept { return kept_.size(); }
  // Frees the kept nodes.
  void shrink() noexcept { kept_.clear(); }

  Map& base() noexcept { return map_; }
  const Map& base() const noexcept { return map_; }

  std::size_t max_kept = default_max_kept;

 private:
  // A wrapper without allocator_type: a pmr vector must not try uses-allocator
  // construction on node handles (they name an allocator type but take none).
  struct kept_node {
    node_type node;
  };
  using node_allocator_type = typename std::allocator_traits<allocator_type>::template rebind_alloc<kept_node>;
  static node_allocator_type node_allocator(const allocator_type& a) { return node_allocator_type(a); }

  // No room to keep it (the vector cannot grow): the node is freed instead, so
  // erase() never fails after the element is gone.
  void keep(node_type node) noexcept {
    if (kept_.size() >= max_kept) return;
    try {
      kept_.push_back({std::move(node)});
    } catch (...) {
    }
  }
  // kept_ is declared after map_ so it dies first; nodes and map share the allocator.
  Map map_;
  std::vector<kept_node, node_allocator_type> kept_;
};

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
  std::size_t live_bytes = 0;        // nodes and buckets pooled maps used when last returned (see above)
  std::size_t held_bytes = 0;        // memory their resources held then, idle or not
  double hit_rate() const noexcept { return acquires ? double(acquires - misses) / double(acquires) : 1.0; }
  double fragmentation() const noexcept { return held_bytes ? 1.0 - double(live_bytes) / double(held_bytes) : 0.0; }
};

template <class Map>
class map_pool final : detail::thread_slot_owner {
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
    // Debug library: a parked map's resource (and the map itself, where it
    // watches its own use, as pcm::node_map does) reports any use.
    void park() noexcept {
      resource.debug_park(returned_at);
      if constexpr (requires { map.debug_park(returned_at); }) map.debug_park(returned_at);
    }
    void unpark() noexcept {
      resource.debug_unpark();
      if constexpr (requires { map.debug_unpark(); }) map.debug_unpark();
    }
    pmr::local_resource resource;
    Map map;
    entry* next_idle = nullptr;
    std::size_t accounted_held = 0;   // its share of the pool's held_ counter
    // As of its last return (or its creation): read by statistics() from any
    // thread, written only by the map's owner.
    std::atomic<std::size_t> live_at_return{0}, held_at_return{0};
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
  // One thread's idle map and its counts. Written by that thread only (the
  // destructor aside, which runs alone); statistics() reads them as they
  // are, hence atomics, changed by a plain load and store (no locked add).
  // Every acquire from a slot is a hit.
  struct alignas(64) thread_slot {
    std::atomic<entry*> idle{nullptr};
    std::atomic<std::uint64_t> acquires{0}, releases{0};
    static void count(std::atomic<std::uint64_t>& c) noexcept {
      c.store(c.load(std::memory_order_relaxed) + 1, std::memory_order_release);
    }
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
        per_shard_idle_((options.max_idle + shard_count_ - 1) / shard_count_), shards_(new shard[shard_count_]),
        slots_(new thread_slot[detail::thread_slots::max_threads]) {
    detail::thread_slots::enroll(this);
  }
  ~map_pool() {
    detail::thread_slots::forget(this);   // no thread's exit hook runs on this pool any more
    dispose();
    // Alone now (a pool is destroyed after its last use): every thread's
    // idle map goes.
    for (unsigned t = 0; t < detail::thread_slots::max_threads; ++t) drop_slot(t);
    if (std::size_t n = statistics().outstanding) {
      char message[80];
      std::snprintf(message, sizeof message, "map_pool destroyed with %zu maps still acquired", n);
      pcm_misuse(message);
    }
  }
  map_pool(const map_pool&) = delete;
  map_pool& operator=(const map_pool&) = delete;

  // Build n idle maps now, so that the first acquires hit. A dispose() from
  // another thread meanwhile wins: the maps not yet parked are dropped.
  // If building a map throws, the maps already parked stay, the pool is ready
  // and the exception goes on.
  void prewarm(std::size_t n) {
    pool_state expected = pool_state::initialised;
    if (!state_.compare_exchange_strong(expected, pool_state::warming)) {
      if (expected != pool_state::ready || !state_.compare_exchange_strong(expected, pool_state::warming)) return;
    }
    for (std::size_t i = 0; i < n; ++i) {
      shard& sh = shards_[i % shard_count_];
      entry* e;
      try {
        e = create();
      } catch (...) {
        expected = pool_state::warming;
        state_.compare_exchange_strong(expected, pool_state::ready);
        throw;
      }
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

  // Throws what building a new map throws (std::bad_alloc...); the pool's
  // counters then are as before the call.
  handle acquire() {
    if (thread_slot* own = own_slot()) [[likely]] {
      entry* e = own->idle.load(std::memory_order_relaxed);
      if (e && state_.load(std::memory_order_acquire) == pool_state::ready && !over_budget()) [[likely]] {
        own->idle.store(nullptr, std::memory_order_relaxed);
        thread_slot::count(own->acquires);
        return handle(this, e);
      }
    }
    return acquire_shared();
  }

 private:
  // The per-CPU lists, or a new map, or a fallback.
  [[gnu::noinline]] handle acquire_shared() {
    pool_state s = state_.load(std::memory_order_acquire);
    if (s != pool_state::ready) [[unlikely]] {
      // This thread's idle map, kept from before dispose(), goes now.
      if (s != pool_state::initialised) drop_slot(detail::thread_slots::number());
      // A failed exchange leaves the state that won in s: disposing wins over us.
      if (s == pool_state::initialised) state_.compare_exchange_strong(s, pool_state::ready);
      if (s == pool_state::disposing || s == pool_state::terminated) return fallback();
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
      // A peek without the lock (just a hint), so idle is written atomically.
      if (!__atomic_load_n(&other.idle, __ATOMIC_RELAXED)) continue;
      other.lock.lock();
      e = pop(other);
      if (e) ++other.hits;
      other.lock.unlock();
    }
    if (!e) {
      try {
        e = create();
      } catch (...) {   // not an acquire after all
        own.lock.lock();
        --own.acquires;
        own.lock.unlock();
        throw;
      }
      misses_.fetch_add(1, std::memory_order_relaxed);
    } else if (debug_) [[unlikely]] {
      e->unpark();
      if (!e->map.empty())
        pcm_debug_report(PCM_DEBUG_USE_AFTER_RETURN, &e->map, sizeof(Map), e->returned_at,
                         0, "a map was changed after it went back to its map_pool (found when it was acquired again)");
    }
    return handle(this, e);
  }

 public:
  // Stop pooling: idle maps are freed now (another thread's slot: when that
  // thread next uses the pool or exits), acquired ones when they come back.
  void dispose() noexcept {
    drop_slot(detail::thread_slots::number());
    pool_state s = state_.load();
    do {   // one caller moves the pool to disposing; a later one never moves it back
      if (s == pool_state::disposing || s == pool_state::terminated) return;
    } while (!state_.compare_exchange_weak(s, pool_state::disposing));
    for (std::size_t i = 0; i < shard_count_; ++i) {
      shard& sh = shards_[i];
      sh.lock.lock();
      entry* list = sh.idle;
      __atomic_store_n(&sh.idle, nullptr, __ATOMIC_RELAXED);
      sh.count = 0;
      sh.lock.unlock();
      while (list) destroy(std::exchange(list, list->next_idle));
    }
    finish_if_drained();
  }

  pool_state state() const noexcept { return state_.load(std::memory_order_acquire); }

  // One consistent cut: every shard is held at once (acquire and release hold
  // one at a time), so a map counted as released is counted as acquired, and a
  // miss is counted after its acquire: outstanding and hit_rate() never wrap.
  // The thread slots' counts are read around that cut: releases before it,
  // acquires after, so that an acquire is counted whenever its release is.
  map_pool_statistics statistics() const noexcept {
    map_pool_statistics s;
    std::uint64_t slot_releases = 0, slot_acquires = 0;
    for (unsigned t = 0; t < detail::thread_slots::max_threads; ++t) {
      slot_releases += slots_[t].releases.load(std::memory_order_acquire);
      s.idle += slots_[t].idle.load(std::memory_order_relaxed) != nullptr;
    }
    for (std::size_t i = 0; i < shard_count_; ++i) shards_[i].lock.lock();
    for (std::size_t i = 0; i < shard_count_; ++i) {
      const shard& sh = shards_[i];
      s.acquires += sh.acquires;
      s.hits += sh.hits;
      s.releases += sh.releases;
      s.drops += sh.drops;
      s.idle += sh.count;
    }
    s.misses = misses_.load();
    s.fallbacks = fallbacks_.load();
    for (std::size_t i = shard_count_; i-- > 0;) shards_[i].lock.unlock();
    for (unsigned t = 0; t < detail::thread_slots::max_threads; ++t)
      slot_acquires += slots_[t].acquires.load(std::memory_order_acquire);
    s.acquires += slot_acquires + s.fallbacks;
    s.hits += slot_acquires;
    s.releases += slot_releases;
    // Fallback maps are not pooled: their release is not counted.
    s.outstanding = std::size_t(s.acquires - s.fallbacks - s.releases);
    all_lock_.lock();
    for (entry* e = all_; e; e = e->next_all) {
      s.live_bytes += e->live_at_return.load(std::memory_order_relaxed);
      s.held_bytes += e->held_at_return.load(std::memory_order_relaxed);
    }
    all_lock_.unlock();
    return s;
  }
  const map_pool_options& options() const noexcept { return options_; }

 private:
  entry* create() {
    auto* e = new entry(first_block_.load(std::memory_order_relaxed), options_.reserve);
    account(e);
    e->live_at_return.store(e->resource.statistics().bytes_live, std::memory_order_relaxed);
    all_lock_.lock();
    e->next_all = all_;
    if (all_) all_->prev_all = e;
    all_ = e;
    all_lock_.unlock();
    return e;
  }

  void destroy(entry* e) noexcept {
    e->unpark();
    all_lock_.lock();
    if (e->prev_all) e->prev_all->next_all = e->next_all; else all_ = e->next_all;
    if (e->next_all) e->next_all->prev_all = e->prev_all;
    all_lock_.unlock();
    held_.fetch_sub(e->accounted_held, std::memory_order_relaxed);
    delete e;
  }

  // This thread's slot; none in the debug library (see the top) or when the
  // thread has no number.
  thread_slot* own_slot() const noexcept {
    const unsigned t = detail::thread_slots::number();
    return !debug_ && t < detail::thread_slots::max_threads ? &slots_[t] : nullptr;
  }
  // The idle map in thread t's slot (run by t itself, by t's exit hook or by
  // the destructor) goes to the per-CPU lists, or is freed when the pool is
  // disposing or they are full. It was counted as released when it went into
  // the slot.
  void drop_slot(unsigned t) noexcept {
    if (t >= detail::thread_slots::max_threads) return;
    thread_slot& slot = slots_[t];
    entry* e = slot.idle.load(std::memory_order_relaxed);
    if (!e) return;
    slot.idle.store(nullptr, std::memory_order_relaxed);
    park_or_drop(e, true, false);
  }
  void thread_exited(unsigned t) noexcept override { drop_slot(t); }

  std::size_t home_shard() const noexcept { return pcm_current_cpu() % shard_count_; }

  static void park(shard& sh, entry* e) noexcept {
    e->next_idle = sh.idle;
    __atomic_store_n(&sh.idle, e, __ATOMIC_RELAXED);   // acquire() peeks at it unlocked
    ++sh.count;
  }
  static entry* pop(shard& sh) noexcept {
    entry* e = sh.idle;
    if (e) {
      __atomic_store_n(&sh.idle, e->next_idle, __ATOMIC_RELAXED);
      --sh.count;
    }
    return e;
  }

  // Out of line (as g++ chose anyway): inlined into a handle released after
  // a move, g++ 12 warns of an overflow on a null entry that cannot occur.
  [[gnu::noinline]] void give_back(entry* e) noexcept {
    // What a full map needed tells how big a new map's first block should be.
    std::size_t used = e->resource.statistics().bytes_live;
    if (used + 64 > first_block_.load(std::memory_order_relaxed) && used < pmr::local_resource::largest_block)
      first_block_.store((used + 64 + 63) & ~std::size_t(63), std::memory_order_relaxed);
    e->map.clear();
    if (e->resource.statistics().bytes_held != e->accounted_held) [[unlikely]] account(e);
    if (e->live_at_return.load(std::memory_order_relaxed) != used) [[unlikely]]
      e->live_at_return.store(used, std::memory_order_relaxed);
    if (debug_) [[unlikely]] {
      e->returned_at = pcm_debug_stack();
      e->park();
    }
    const bool within_budget = !over_budget();
    if (thread_slot* own = own_slot(); own && within_budget && !own->idle.load(std::memory_order_relaxed)) {
      // A dispose() that this load misses leaves the map in the slot, for
      // the thread's next call, its exit or the destructor (see the top).
      if (state_.load(std::memory_order_acquire) == pool_state::ready) [[likely]] {
        own->idle.store(e, std::memory_order_relaxed);
        thread_slot::count(own->releases);
        return;
      }
    }
    park_or_drop(e, within_budget, true);
  }

  // A map going idle: parked in this CPU's list, or freed when the pool is
  // disposing, over budget, or the list is full. `release`: count it as a
  // release (a map from a thread's slot was counted when it went there).
  void park_or_drop(entry* e, bool within_budget, bool release) noexcept {
    shard& sh = shards_[home_shard()];
    sh.lock.lock();
    if (release) ++sh.releases;
    // The state is read under the shard lock: dispose() empties each shard
    // under the same lock after changing the state, so a map is either parked
    // before that (and dropped by dispose) or sees the new state here.
    const pool_state s = state_.load(std::memory_order_acquire);
    const bool keep = (s == pool_state::ready || s == pool_state::warming) && within_budget && sh.count < per_shard_idle_;
    if (keep) park(sh, e);
    else ++sh.drops;
    sh.lock.unlock();
    if (!keep) {
      destroy(e);
      finish_if_drained();
    }
  }

  handle fallback() {
    auto map = std::make_unique<Map>();   // counted once it exists
    fallbacks_.fetch_add(1, std::memory_order_relaxed);
    return handle(this, std::move(map));
  }

  // The budget is checked against what maps held when last returned (cheap;
  // maps in use may have grown since).
  void account(entry* e) noexcept {
    std::size_t now = e->resource.statistics().bytes_held;
    held_.fetch_add(now - e->accounted_held, std::memory_order_relaxed);
    e->accounted_held = now;
    e->held_at_return.store(now, std::memory_order_relaxed);
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
  std::unique_ptr<thread_slot[]> slots_;   // by thread number (thread_slots.hpp)
  std::atomic<pool_state> state_{pool_state::initialised};
  std::atomic<std::uint64_t> misses_{0}, fallbacks_{0};   // rare events only
  const bool debug_ = pcm_debug_enabled() != 0;           // checks of the debug library
  std::atomic<std::size_t> first_block_{1024};
  std::atomic<std::size_t> held_{0};
  mutable spin_lock all_lock_;
  entry* all_ = nullptr;
};

}  // namespace pcm
