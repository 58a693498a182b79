// pcm::map_pool over three kinds of map: pmr string maps and pcm::unordered_map
// (each pooled map on its own local_resource) and a plain std::unordered_map.
// Acquire/release, lifecycle, fallbacks, budget, idle limit, statistics,
// handle moves, handles crossing threads, and a stress of 2, 4 and 8 threads.
#include <doctest/doctest.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <csignal>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <functional>
#include <memory_resource>
#include <mutex>
#include <random>
#include <string>
#include <string_view>
#include <thread>
#include <type_traits>
#include <unordered_map>
#include <vector>

#include <pcmalloc/allocator.hpp>
#include <pcmalloc/map_pool.hpp>
#include <pcmalloc/pmr.hpp>

#include "support.hpp"

namespace {

using string_map = std::pmr::unordered_map<std::pmr::string, std::pmr::string>;
using number_map = pcm::unordered_map<std::uint64_t, std::uint64_t>;
using plain_map = std::unordered_map<std::string, std::string>;

template <class Map>
constexpr bool on_resource = std::is_constructible_v<typename Map::allocator_type, std::pmr::memory_resource*>;

// Keys and values past the small-string buffer: every entry allocates from the map's resource.
std::string key_text(std::uint64_t seed, int i) { return "key " + std::to_string(seed) + "/" + std::to_string(i) + " of the pool test"; }
std::string value_text(std::uint64_t seed, int i) { return "value " + std::to_string(seed * 31 + std::uint64_t(i)) + " of the pool test"; }
std::uint64_t key_number(std::uint64_t seed, int i) { return seed * 1000003 + std::uint64_t(i); }
std::uint64_t value_number(std::uint64_t seed, int i) { return key_number(seed, i) * 0x9e3779b97f4a7c15ull; }

template <class Map>
void fill(Map& m, std::uint64_t seed, int n) {
  for (int i = 0; i < n; ++i) {
    if constexpr (std::is_integral_v<typename Map::key_type>) m.emplace(key_number(seed, i), value_number(seed, i));
    else m.emplace(key_text(seed, i).c_str(), value_text(seed, i).c_str());
  }
}

// Exactly the n entries fill(m, seed, n) put there.
template <class Map>
bool holds(const Map& m, std::uint64_t seed, int n) {
  if (m.size() != std::size_t(n)) return false;
  for (int i = 0; i < n; ++i) {
    if constexpr (std::is_integral_v<typename Map::key_type>) {
      auto it = m.find(key_number(seed, i));
      if (it == m.end() || it->second != value_number(seed, i)) return false;
    } else {
      auto it = m.find(typename Map::key_type(key_text(seed, i).c_str()));
      if (it == m.end() || std::string_view(it->second.data(), it->second.size()) != value_text(seed, i)) return false;
    }
  }
  return true;
}

// A pooled map lives on its own local_resource (when its allocator can).
template <class Map>
bool on_local_resource(const Map& m) {
  if constexpr (on_resource<Map>) return dynamic_cast<pcm::pmr::local_resource*>(m.get_allocator().resource()) != nullptr;
  else return true;
}

// A hash whose default construction (inside the pool, when it builds a map) calls a hook.
struct watching_hash {
  static inline std::function<void()> on_construct;
  watching_hash() {
    if (on_construct) on_construct();
  }
  std::size_t operator()(int k) const noexcept { return std::hash<int>()(k); }
};
using watched_map = std::unordered_map<int, int, watching_hash>;

struct hook_reset {
  ~hook_reset() { watching_hash::on_construct = nullptr; }
};

bool counters_add_up(const pcm::map_pool_statistics& s) { return s.hits + s.misses + s.fallbacks == s.acquires; }

}  // namespace

TEST_SUITE("pmr") {

TEST_CASE_TEMPLATE("map_pool: empty on acquire, kept while held, cleared on release, the same map again", Map,
                   string_map, number_map, plain_map) {
  pcm::map_pool<Map> pool;
  CHECK(pool.state() == pcm::pool_state::initialised);
  const Map* first = nullptr;
  {
    auto h = pool.acquire();
    REQUIRE(h);
    CHECK(h.pooled());
    CHECK(pool.state() == pcm::pool_state::ready);
    CHECK(h->empty());
    CHECK(on_local_resource(*h));
    fill(*h, 1, 500);
    CHECK(holds(*h, 1, 500));
    if constexpr (std::is_same_v<Map, string_map>)
      CHECK(h->begin()->second.get_allocator().resource() == h->get_allocator().resource());
    first = h.get();
    CHECK(pool.statistics().outstanding == 1);
  }
  int same = 0, not_empty = 0, wrong = 0;
  for (int round = 2; round < 102; ++round) {
    auto h = pool.acquire();
    same += h.get() == first;
    not_empty += !h->empty();
    int n = 1 + round * 37 % 300;
    fill(*h, std::uint64_t(round), n);
    wrong += !holds(*h, std::uint64_t(round), n);
  }
  CHECK(same >= 90);
  CHECK(not_empty == 0);
  CHECK(wrong == 0);
  // Two maps held at once are different maps, each with its own contents.
  {
    auto a = pool.acquire();
    auto b = pool.acquire();
    CHECK(a.get() != b.get());
    fill(*a, 1000, 300);
    fill(*b, 2000, 200);
    CHECK(holds(*a, 1000, 300));
    CHECK(holds(*b, 2000, 200));
  }
  pcm::map_pool_statistics s = pool.statistics();
  CHECK(s.acquires == 103);
  CHECK(s.releases == 103);
  CHECK(s.drops == 0);
  CHECK(s.fallbacks == 0);
  CHECK(s.outstanding == 0);
  CHECK(s.misses == 2);   // the first map, and the second one held at once
  CHECK(counters_add_up(s));
  CHECK(s.idle == 2);
  CHECK(s.hit_rate() == doctest::Approx(double(s.acquires - s.misses) / double(s.acquires)));
  CHECK(s.hit_rate() >= 0.9);
  CHECK(s.fragmentation() >= 0.0);
  CHECK(s.fragmentation() <= 1.0);
  if constexpr (on_resource<Map>) {
    CHECK(s.held_bytes > 0);
    CHECK(s.live_bytes <= s.held_bytes);
  }
}

TEST_CASE("map_pool: lifecycle initialised -> warming -> ready -> disposing -> terminated") {
  hook_reset reset;
  pcm::map_pool<watched_map> pool;
  std::vector<pcm::pool_state> seen;   // the pool's state whenever it builds a map
  watching_hash::on_construct = [&] { seen.push_back(pool.state()); };
  CHECK(pool.state() == pcm::pool_state::initialised);
  pool.prewarm(4);
  REQUIRE(seen.size() == 4);
  for (pcm::pool_state state : seen) CHECK(state == pcm::pool_state::warming);
  CHECK(pool.state() == pcm::pool_state::ready);
  CHECK(pool.statistics().idle == 4);
  CHECK(pool.statistics().acquires == 0);

  seen.clear();
  auto h1 = pool.acquire();
  auto h2 = pool.acquire();
  CHECK(seen.empty());   // both came from the prewarmed maps
  CHECK(pool.statistics().hits == 2);
  CHECK(pool.statistics().misses == 0);
  h1->emplace(1, 1);

  pool.dispose();
  CHECK(pool.state() == pcm::pool_state::disposing);   // two handles are still out
  CHECK(pool.statistics().idle == 0);
  CHECK(pool.statistics().outstanding == 2);
  CHECK(h1->at(1) == 1);

  // While disposing: a working map that is not pooled, counted as a fallback.
  auto h3 = pool.acquire();
  REQUIRE(h3);
  CHECK_FALSE(h3.pooled());
  h3->emplace(5, 5);
  CHECK(h3->at(5) == 5);
  CHECK(pool.statistics().fallbacks == 1);
  pool.prewarm(4);   // no effect any more
  CHECK(pool.state() == pcm::pool_state::disposing);
  CHECK(pool.statistics().idle == 0);

  h1.release();
  CHECK(pool.state() == pcm::pool_state::disposing);
  h2.release();
  CHECK(pool.state() == pcm::pool_state::terminated);

  auto h4 = pool.acquire();
  REQUIRE(h4);
  CHECK_FALSE(h4.pooled());
  h4->emplace(6, 6);
  CHECK(pool.statistics().fallbacks == 2);
  pool.dispose();
  pool.prewarm(2);
  CHECK(pool.state() == pcm::pool_state::terminated);
  h3.release();
  h4.release();
  pcm::map_pool_statistics s = pool.statistics();
  CHECK(s.acquires == 4);
  CHECK(s.releases == 2);   // fallback maps are not counted back
  CHECK(s.outstanding == 0);
  CHECK(counters_add_up(s));
}

TEST_CASE("map_pool: other paths through the lifecycle") {
  {
    pcm::map_pool<number_map> pool;
    pool.dispose();   // never used: straight to terminated
    CHECK(pool.state() == pcm::pool_state::terminated);
    auto h = pool.acquire();
    CHECK_FALSE(h.pooled());
    fill(*h, 3, 100);
    CHECK(holds(*h, 3, 100));
  }
  {
    pcm::map_pool<number_map> pool;
    auto h = pool.acquire();   // first acquire: initialised -> ready
    CHECK(pool.state() == pcm::pool_state::ready);
    pool.prewarm(3);   // from ready: warms, then ready again
    CHECK(pool.state() == pcm::pool_state::ready);
    CHECK(pool.statistics().idle == 3);
    h.release();
    pool.dispose();
    CHECK(pool.state() == pcm::pool_state::terminated);
    CHECK(pool.statistics().idle == 0);
  }
}

TEST_CASE("map_pool: a map that cannot be built: prewarm() and acquire() throw, and the counters stay true") {
  // Building a pooled map throws here (a reserve no memory can hold); the pool
  // must not count an acquire that never happened, nor stay warming.
  pcm::map_pool_options options;
  options.reserve = std::size_t(1) << 60;
  {
    pcm::map_pool<number_map> pool(options);
    CHECK_THROWS(pool.prewarm(2));
    CHECK(pool.state() == pcm::pool_state::ready);
    CHECK_THROWS((void)pool.acquire());
    pcm::map_pool_statistics s = pool.statistics();
    CHECK(s.acquires == 0);
    CHECK(s.misses == 0);
    CHECK(s.outstanding == 0);
    CHECK(counters_add_up(s));
    pool.dispose();
    CHECK(pool.state() == pcm::pool_state::terminated);
  }   // the destructor aborts if it believes a map is still out
}

TEST_CASE("map_pool: dispose() on another thread during prewarm() wins") {
  // The pool is disposed while prewarm() is building its third map: whatever
  // prewarm does afterwards, the pool must stay disposed.
  hook_reset reset;
  pcm::map_pool<watched_map> pool;
  int built = 0;
  watching_hash::on_construct = [&] {
    if (++built == 3) std::thread([&pool] { pool.dispose(); }).join();
  };
  pool.prewarm(16);
  watching_hash::on_construct = nullptr;
  CHECK(pool.state() == pcm::pool_state::terminated);
  CHECK(pool.statistics().idle == 0);
  auto h = pool.acquire();
  CHECK_FALSE(h.pooled());
}

TEST_CASE("map_pool: dispose() while other threads acquire and release leaves nothing pooled") {
  // A release that read the state as ready just before dispose() ran must not
  // park its map in the disposed pool: the map would never be freed (the
  // destructor's dispose() returns at once) and the pool could stay disposing.
  int trials = 0, idle_left = 0, not_terminated = 0;
  for (; trials < 300 && !idle_left && !not_terminated; ++trials) {
    pcm::map_pool<number_map> pool;
    pool.prewarm(4);
    std::atomic<bool> stop{false};
    auto worker = [&] {
      while (!stop.load(std::memory_order_relaxed)) {
        auto h = pool.acquire();
        (*h)[1] = 2;
      }
    };
    std::thread threads[] = {std::thread(worker), std::thread(worker)};
    std::this_thread::sleep_for(std::chrono::microseconds(200));
    pool.dispose();
    stop = true;
    for (auto& t : threads) t.join();
    idle_left += pool.statistics().idle != 0;
    not_terminated += pool.state() != pcm::pool_state::terminated;
  }
  CAPTURE(trials);
  CHECK(idle_left == 0);
  CHECK(not_terminated == 0);
}

TEST_CASE_TEMPLATE("map_pool: fallback maps work for every kind of map", Map, string_map, number_map, plain_map) {
  pcm::map_pool<Map> pool;
  pool.prewarm(2);
  pool.dispose();
  auto h = pool.acquire();
  REQUIRE(h);
  CHECK_FALSE(h.pooled());
  fill(*h, 9, 400);
  CHECK(holds(*h, 9, 400));
  auto moved = std::move(h);
  CHECK_FALSE(h);
  CHECK(holds(*moved, 9, 400));
  moved.release();
  CHECK_FALSE(moved);
  CHECK(pool.statistics().fallbacks == 1);
  CHECK(pool.statistics().releases == 0);
}

TEST_CASE_TEMPLATE("map_pool: memory_budget", Map, string_map, number_map) {
  SUBCASE("maps returned over the budget are dropped, not kept") {
    pcm::map_pool_options options;
    options.memory_budget = 1;
    pcm::map_pool<Map> pool(options);
    for (int round = 0; round < 10; ++round) {
      auto h = pool.acquire();
      CHECK(h.pooled());
      fill(*h, std::uint64_t(round), 100);
    }
    pcm::map_pool_statistics s = pool.statistics();
    CHECK(s.drops == 10);
    CHECK(s.idle == 0);
    CHECK(s.held_bytes == 0);
  }
  SUBCASE("while the pool holds more than the budget, acquire falls back") {
    // Accounting happens when a map is built or returned: a map built with
    // reserved buckets puts the pool over a tiny budget at once.
    pcm::map_pool_options options;
    options.memory_budget = 1;
    options.reserve = 64;
    pcm::map_pool<Map> pool(options);
    auto held = pool.acquire();
    CHECK(held.pooled());
    CHECK(pool.statistics().held_bytes > options.memory_budget);
    int fallbacks = 0, wrong = 0;
    for (int round = 0; round < 20; ++round) {
      auto h = pool.acquire();
      fallbacks += !h.pooled();
      fill(*h, std::uint64_t(round), 50);
      wrong += !holds(*h, std::uint64_t(round), 50);
    }
    CHECK(fallbacks == 20);
    CHECK(wrong == 0);
    CHECK(pool.statistics().fallbacks == 20);
    held.release();
    CHECK(pool.statistics().drops == 1);
    CHECK(pool.statistics().outstanding == 0);
  }
  SUBCASE("a budget for a few maps keeps a few") {
    pcm::map_pool_options options;
    options.memory_budget = 64 * 1024;
    pcm::map_pool<Map> pool(options);
    std::vector<typename pcm::map_pool<Map>::handle> handles;
    for (int i = 0; i < 40; ++i) {
      handles.push_back(pool.acquire());
      fill(*handles.back(), std::uint64_t(i), 100);
    }
    handles.clear();
    pcm::map_pool_statistics s = pool.statistics();
    CHECK(s.held_bytes <= options.memory_budget);
    CHECK(s.idle > 0);
    CHECK(s.drops > 0);
    CHECK(s.idle + s.drops == 40);
  }
}

TEST_CASE("map_pool: releasing more maps than max_idle drops the rest") {
  pcm::map_pool_options options;
  options.max_idle = 2 * std::max(1u, pcm_cpu_count());   // a whole number per CPU list
  pcm::map_pool<number_map> pool(options);
  const std::size_t count = options.max_idle + 10;
  std::vector<pcm::map_pool<number_map>::handle> handles;
  for (std::size_t i = 0; i < count; ++i) {
    handles.push_back(pool.acquire());
    fill(*handles.back(), i, 20);
  }
  handles.clear();
  pcm::map_pool_statistics s = pool.statistics();
  CHECK(s.releases == count);
  CHECK(s.idle <= options.max_idle);
  CHECK(s.drops >= 10);
  CHECK(s.idle + s.drops == count);
  // prewarm never goes past the limit either.
  pool.prewarm(10 * count);
  CHECK(pool.statistics().idle <= options.max_idle);
}

TEST_CASE("map_pool: handles move, and releasing twice is harmless") {
  pcm::map_pool<string_map> pool;
  auto h1 = pool.acquire();
  fill(*h1, 1, 50);
  string_map* m1 = h1.get();
  auto h2(std::move(h1));
  CHECK_FALSE(h1);
  CHECK_FALSE(h1.pooled());
  CHECK(h1.get() == nullptr);
  CHECK(h2.get() == m1);
  CHECK(holds(*h2, 1, 50));

  pcm::map_pool<string_map>::handle h3;
  CHECK_FALSE(h3);
  h3 = std::move(h2);
  CHECK(h3.get() == m1);
  CHECK(pool.statistics().releases == 0);

  auto h4 = pool.acquire();   // a second map, given back when h4 takes h3's
  string_map* m4 = h4.get();
  CHECK(m4 != m1);
  h4 = std::move(h3);
  CHECK(pool.statistics().releases == 1);
  CHECK(h4.get() == m1);
  auto& same = h4;
  h4 = std::move(same);   // self-move keeps the map
  CHECK(h4.get() == m1);
  CHECK(holds(*h4, 1, 50));

  h4.release();
  CHECK_FALSE(h4);
  h4.release();
  h1.release();
  CHECK(pool.statistics().releases == 2);
  CHECK(pool.statistics().outstanding == 0);
  auto h5 = pool.acquire();
  CHECK(h5->empty());
}

TEST_CASE_TEMPLATE("map_pool: maps acquired on one thread, released on another", Map, string_map, number_map, plain_map) {
  pcm::map_pool<Map> pool;
  using handle = typename pcm::map_pool<Map>::handle;
  struct item {
    handle map;
    std::uint64_t seed;
    int count;
  };
  std::mutex lock;
  std::condition_variable ready;
  std::deque<item> queue;
  int producers_left = 2;
  std::atomic<int> wrong{0}, not_empty{0}, consumed{0};
  constexpr int per_producer = 1500;
  auto producer = [&](int id) {
    for (int i = 0; i < per_producer; ++i) {
      handle h = pool.acquire();
      if (!h->empty()) ++not_empty;
      std::uint64_t seed = std::uint64_t(id) * 100000 + std::uint64_t(i);
      int count = 1 + i % 40;
      fill(*h, seed, count);
      std::lock_guard guard(lock);
      queue.push_back({std::move(h), seed, count});
      ready.notify_one();
    }
    std::lock_guard guard(lock);
    --producers_left;
    ready.notify_all();
  };
  auto consumer = [&] {
    for (;;) {
      std::unique_lock guard(lock);
      ready.wait(guard, [&] { return !queue.empty() || producers_left == 0; });
      if (queue.empty()) return;
      item it = std::move(queue.front());
      queue.pop_front();
      guard.unlock();
      if (!holds(*it.map, it.seed, it.count)) ++wrong;
      it.map.release();
      ++consumed;
    }
  };
  std::thread threads[] = {std::thread(producer, 1), std::thread(producer, 2), std::thread(consumer),
                           std::thread(consumer)};
  for (auto& t : threads) t.join();
  CHECK(consumed == 2 * per_producer);
  CHECK(wrong == 0);
  CHECK(not_empty == 0);
  pcm::map_pool_statistics s = pool.statistics();
  CHECK(s.acquires == 2 * per_producer);
  CHECK(s.releases == 2 * per_producer);
  CHECK(s.outstanding == 0);
  CHECK(counters_add_up(s));
  // How many hit depends on how far the producers run ahead of the consumers.
  CHECK(s.hit_rate() == doctest::Approx(double(s.acquires - s.misses) / double(s.acquires)));
  CHECK(s.idle + s.drops == s.misses);
}

TEST_CASE_TEMPLATE("map_pool: 2, 4 and 8 threads acquire, fill, check and release", Map, string_map, number_map,
                   plain_map) {
  for (unsigned thread_count : {2u, 4u, 8u}) {
    CAPTURE(thread_count);
    pcm::map_pool_options options;
    options.max_idle = 64;
    pcm::map_pool<Map> pool(options);
    pool.prewarm(8);
    std::atomic<int> wrong{0}, not_empty{0}, fallbacks{0}, foreign{0};
    std::atomic<std::uint64_t> rounds{0};
    // A fixed count, not a time: the check must not depend on the machine's speed.
    constexpr std::uint64_t rounds_each = 600;
    auto worker = [&](unsigned id) {
      std::mt19937 random(id + 1);
      std::uint64_t done = 0;
      for (std::uint64_t round = 0; round < rounds_each; ++round, ++done) {
        std::uint64_t seed = (std::uint64_t(id) << 32) | round;
        auto h = pool.acquire();
        if (!h.pooled()) ++fallbacks;
        if (!h->empty()) ++not_empty;
        if (!on_local_resource(*h)) ++foreign;
        int count = 1 + int(random() % 64);
        fill(*h, seed, count);
        if (random() % 8 == 0) {   // a second map at once
          auto other = pool.acquire();
          if (!other->empty()) ++not_empty;
          fill(*other, seed + 7, 10);
          if (!holds(*other, seed + 7, 10)) ++wrong;
        }
        if (!holds(*h, seed, count)) ++wrong;
      }
      rounds += done;
    };
    std::vector<std::thread> threads;
    for (unsigned id = 0; id < thread_count; ++id) threads.emplace_back(worker, id);
    for (auto& t : threads) t.join();
    CHECK(rounds == rounds_each * thread_count);
    CHECK(wrong == 0);
    CHECK(not_empty == 0);
    CHECK(fallbacks == 0);
    CHECK(foreign == 0);
    pcm::map_pool_statistics s = pool.statistics();
    CHECK(s.outstanding == 0);
    CHECK(s.acquires == s.releases);
    CHECK(counters_add_up(s));
    CHECK(s.idle <= options.max_idle);
    CHECK(s.idle + s.drops <= s.misses + 8);
    CHECK(s.fragmentation() >= 0.0);
    CHECK(s.fragmentation() <= 1.0);
    pool.dispose();
    CHECK(pool.state() == pcm::pool_state::terminated);
  }
}

// ---- the threads' own slots (thread_slots.hpp) --------------------------------

// A map type that counts its live instances: nothing leaks, nothing is freed twice.
struct counted_map : number_map {
  struct counter {
    counter() noexcept { ++alive; }
    counter(const counter&) noexcept { ++alive; }
    ~counter() { --alive; }
    counter& operator=(const counter&) = default;
  };
  using number_map::number_map;
  counter count;
  static inline std::atomic<int> alive{0};
};

TEST_CASE("map_pool: a thread gets back the map it released, from its own slot") {
  pcm::map_pool<number_map> pool;
  const number_map* first;
  {
    auto h = pool.acquire();
    first = h.get();
    fill(*h, 1, 20);
  }
  pcm::map_pool_statistics s = pool.statistics();
  CHECK(s.releases == 1);
  CHECK(s.idle == 1);
  for (int round = 0; round < 10; ++round) {
    auto h = pool.acquire();
    CHECK(h.get() == first);
    CHECK(h->empty());
    fill(*h, std::uint64_t(round), 20);
  }
  s = pool.statistics();
  CHECK(s.acquires == 11);
  CHECK(s.hits == 10);
  CHECK(s.misses == 1);
  CHECK(s.releases == 11);
  CHECK(s.outstanding == 0);
  CHECK(s.idle == 1);
  CHECK(counters_add_up(s));
}

TEST_CASE("map_pool: a thread's idle map goes to the shared lists when the thread exits") {
  pcm::map_pool<number_map> pool;
  const number_map* used_there = nullptr;
  std::thread([&] {
    auto h = pool.acquire();
    used_there = h.get();
    fill(*h, 3, 10);
  }).join();
  pcm::map_pool_statistics s = pool.statistics();
  CHECK(s.idle == 1);
  CHECK(s.outstanding == 0);
  auto h = pool.acquire();   // this thread's slot is empty: from the per-CPU list
  CHECK(h.get() == used_there);
  CHECK(h->empty());
  CHECK(pool.statistics().misses == 1);
}

TEST_CASE("map_pool: maps in threads' slots are freed by dispose(), the thread's next call, or the destructor") {
  RELEASE_LIBRARY_ONLY("the debug library keeps no per-thread slots (its checks need every map in the shared lists)");
  REQUIRE(counted_map::alive == 0);
  {
    pcm::map_pool<counted_map> pool;
    std::mutex lock;
    std::condition_variable changed;
    int stage = 0;   // 1: the other thread parked a map in its slot; 2: disposed; 3: it acquired again
    bool pooled_after_dispose = true;   // checked here: no doctest assertion runs in another thread
    std::thread other([&] {
      { auto h = pool.acquire(); }
      std::unique_lock guard(lock);
      stage = 1;
      changed.notify_all();
      changed.wait(guard, [&] { return stage == 2; });
      {
        auto h = pool.acquire();   // the pool is disposed: a fallback, and the slot's map is freed
        pooled_after_dispose = h.pooled();
      }
      stage = 3;
      changed.notify_all();
      changed.wait(guard, [&] { return stage == 4; });
    });
    std::unique_lock guard(lock);
    changed.wait(guard, [&] { return stage == 1; });
    { auto mine = pool.acquire(); }   // this thread's slot holds one too
    CHECK(counted_map::alive == 2);
    pool.dispose();                     // frees this thread's, not the other's
    CHECK(counted_map::alive == 1);
    stage = 2;
    changed.notify_all();
    changed.wait(guard, [&] { return stage == 3; });
    CHECK(counted_map::alive == 0);
    CHECK_FALSE(pooled_after_dispose);
    CHECK(pool.state() == pcm::pool_state::terminated);
    stage = 4;
    changed.notify_all();
    guard.unlock();
    other.join();
  }
  CHECK(counted_map::alive == 0);
  {
    // A thread that never comes back: the destructor frees its slot's map.
    auto pool = std::make_unique<pcm::map_pool<counted_map>>();
    std::mutex lock;
    std::condition_variable changed;
    int stage = 0;
    std::thread other([&] {
      { auto h = pool->acquire(); }
      std::unique_lock guard(lock);
      stage = 1;
      changed.notify_all();
      changed.wait(guard, [&] { return stage == 2; });
    });
    {
      std::unique_lock guard(lock);
      changed.wait(guard, [&] { return stage == 1; });
    }
    CHECK(counted_map::alive == 1);
    pool.reset();
    CHECK(counted_map::alive == 0);
    {
      std::lock_guard guard(lock);
      stage = 2;
    }
    changed.notify_all();
    other.join();   // its exit hook finds no pool to empty
  }
  CHECK(counted_map::alive == 0);
}

TEST_CASE("map_pool: under threads passing handles around, no map is held twice and none is lost") {
  REQUIRE(counted_map::alive == 0);
  {
    pcm::map_pool<counted_map> pool;
    std::mutex lock;
    std::vector<const counted_map*> held;                   // maps held by some handle now
    std::vector<pcm::map_pool<counted_map>::handle> passed;   // handles on their way to another thread
    std::atomic<int> twice{0}, not_empty{0};
    constexpr int rounds = 3000;
    auto worker = [&](unsigned id) {
      std::mt19937 random(id + 11);
      for (int round = 0; round < rounds; ++round) {
        auto h = pool.acquire();
        if (!h->empty()) ++not_empty;
        {
          std::lock_guard guard(lock);
          if (std::find(held.begin(), held.end(), h.get()) != held.end()) ++twice;
          held.push_back(h.get());
        }
        fill(*h, id, 3);
        std::lock_guard guard(lock);
        if (random() % 2) {   // another thread releases it
          passed.push_back(std::move(h));
          if (passed.size() < 4) continue;
          h = std::move(passed.front());
          passed.erase(passed.begin());
        }
        held.erase(std::find(held.begin(), held.end(), h.get()));
        h.release();
      }
    };
    std::vector<std::thread> threads;
    for (unsigned id = 0; id < 4; ++id) threads.emplace_back(worker, id);
    for (auto& t : threads) t.join();
    for (auto& h : passed) held.erase(std::find(held.begin(), held.end(), h.get()));
    passed.clear();
    CHECK(twice == 0);
    CHECK(not_empty == 0);
    CHECK(held.empty());
    pcm::map_pool_statistics s = pool.statistics();
    CHECK(s.outstanding == 0);
    CHECK(s.acquires == s.releases);
    CHECK(counters_add_up(s));
    CHECK(s.idle + s.drops == s.misses);              // every map built is idle or was dropped
    CHECK(counted_map::alive == int(s.idle));          // and nothing else is alive
  }
  CHECK(counted_map::alive == 0);
}

TEST_CASE("map_pool: destroyed while a map is still acquired, it says so in one line and aborts") {
  pmr_test::child_result child = pmr_test::run_in_child([] {
    auto* pool = new pcm::map_pool<number_map>();
    auto* held = new pcm::map_pool<number_map>::handle(pool->acquire());   // never given back
    (void)held;
    delete pool;
  });
  CAPTURE(child.error_text);
  CHECK(child.signalled);
  CHECK(child.signal == SIGABRT);
  if (pmr_test::debug_library()) return;   // (the debug library reports on the stderr it found at start-up)
  CHECK(child.error_text == "pcmalloc: error: map_pool destroyed with 1 maps still acquired\n");
}

}  // TEST_SUITE
