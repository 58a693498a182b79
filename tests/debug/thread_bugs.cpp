// The debug corpus, multi-threaded C++: blocks crossing threads, and the
// pooled objects whose misuse the heap alone cannot see (a local_resource, a
// map_pool map or a pcm::node_map used by two threads at once, a map or a
// node_map used after it went back to its pool). `thread_bugs CASE`; "expect-threads: ..." lines on stdout give the
// thread ids the report must name. Deliberately buggy.
#include <pthread.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <map>
#include <memory>
#include <memory_resource>
#include <string>
#include <thread>
#include <unordered_map>
#include <vector>

#include <pcmalloc/arena.hpp>
#include <pcmalloc/map_pool.hpp>
#include <pcmalloc/node_map.hpp>
#include <pcmalloc/pmr.hpp>

namespace {

int tid() { return int(syscall(SYS_gettid)); }
void* volatile sink;

using text_map = std::pmr::unordered_map<std::pmr::string, std::pmr::string>;
using text_node_map = pcm::node_map<std::pmr::string, std::pmr::string>;

// Runs body on a new thread and waits for it; returns that thread's id.
template <class Body>
int on_thread(Body body) {
  int id = 0;
  std::thread t([&] { id = tid(); body(); });
  t.join();
  return id;
}

__attribute__((noinline)) char* make_on_thread(std::size_t n) { return new char[n]; }
__attribute__((noinline)) void delete_on_thread(char* p) { delete[] p; }
__attribute__((noinline)) void delete_scalar_on_thread(char* p) { delete p; }
__attribute__((noinline)) void touch_after_free(char* p) { static_cast<volatile char*>(p)[2] = 9; }

// An upstream that holds its first caller inside (the local_resource is then
// "in use" by that thread) until the second thread has tried the resource.
struct holding_upstream : std::pmr::memory_resource {
  std::atomic<int> state{0};   // 0 idle, 1 first caller inside, 2 second thread done
  void* do_allocate(std::size_t n, std::size_t a) override {
    int idle = 0;
    if (state.compare_exchange_strong(idle, 1))
      while (state.load() != 2) std::this_thread::yield();
    return std::pmr::new_delete_resource()->allocate(n, a);
  }
  void do_deallocate(void* p, std::size_t n, std::size_t a) override { std::pmr::new_delete_resource()->deallocate(p, n, a); }
  bool do_is_equal(const std::pmr::memory_resource& o) const noexcept override { return this == &o; }
};

__attribute__((noinline)) void second_thread_allocates(pcm::pmr::local_resource& r) { sink = r.allocate(48); }

void local_resource_two_threads() {
  holding_upstream upstream;
  pcm::pmr::local_resource resource(&upstream);
  int first = 0, second = 0;
  std::thread a([&] { first = tid(); sink = resource.allocate(64); });
  while (upstream.state.load() != 1) std::this_thread::yield();
  std::thread b([&] {
    second = tid();
    std::printf("expect-threads: detected in T%d, in use by T%d at the same time\n", second, first);
    std::fflush(stdout);
    second_thread_allocates(resource);
    upstream.state.store(2);
  });
  b.join();
  a.join();
}

// Two threads through one map_pool handle: the map's resource sees them both.
__attribute__((noinline)) void insert_from_thread(std::pmr::memory_resource* r, const std::atomic<bool>& stop) {
  while (!stop.load(std::memory_order_relaxed)) r->deallocate(r->allocate(40, 8), 40, 8);
}

void map_pool_handle_two_threads() {
  pcm::map_pool<text_map> pool;
  auto h = pool.acquire();
  std::pmr::memory_resource* r = h->get_allocator().resource();
  std::atomic<bool> stop{false};
  // Detection aborts the program (abort_on_error); without an overlap in this
  // time the test fails.
  std::thread a([&] { insert_from_thread(r, stop); });
  std::thread b([&] { insert_from_thread(r, stop); });
  std::this_thread::sleep_for(std::chrono::seconds(20));
  stop = true;
  a.join();
  b.join();
}

// A map used after its handle went back: std's map is reported by its parked
// local_resource; a pcm::node_map watches its own use and reports first.
template <class Map>
__attribute__((noinline)) void give_map_back(typename pcm::map_pool<Map>::handle& h) { h.release(); }
template <class Map>
__attribute__((noinline)) void use_returned_map(Map* m) { m->emplace("a key long enough to allocate", "and a value long enough too"); }

template <class Map>
void map_used_after_return() {
  pcm::map_pool<Map> pool;
  auto h = pool.acquire();
  Map* m = h.get();
  m->emplace("first key, long enough to allocate", "first value, long enough to allocate");
  give_map_back<Map>(h);
  use_returned_map(m);
}

// A hash that holds its first caller inside the node_map's emplace (the map is
// then in use by that thread) until the second thread has tried the map.
std::atomic<int> hold_state{0};   // 0 idle, 1 first caller inside, 2 second thread done
struct holding_hash {
  std::size_t operator()(int key) const {
    int idle = 0;
    if (hold_state.compare_exchange_strong(idle, 1))
      while (hold_state.load() != 2) std::this_thread::yield();
    return std::hash<int>()(key);
  }
};
using held_node_map = pcm::node_map<int, int, holding_hash>;

__attribute__((noinline)) void second_thread_emplaces(held_node_map& m) { m.emplace(2, 2); }

void node_map_two_threads() {
  held_node_map m;
  int first = 0;
  std::thread a([&] { first = tid(); m.emplace(1, 1); });
  while (hold_state.load() != 1) std::this_thread::yield();
  std::thread b([&] {
    std::printf("expect-threads: detected in T%d, in use by T%d at the same time\n", tid(), first);
    std::fflush(stdout);
    second_thread_emplaces(m);
    hold_state.store(2);
  });
  b.join();
  a.join();
}

// Clean: threads share blocks (made on one, freed on another), containers,
// shared_ptr, a local_resource per thread, one map_pool of each kind of map
// used properly, and a node_map handed from one thread to the next.
void clean_threads() {
  pcm::map_pool<text_map> pool;
  pcm::map_pool<text_node_map> node_pool;
  held_node_map handed_map;
  hold_state = 3;   // holding_hash holds nobody
  std::vector<std::thread> threads;
  std::vector<std::unique_ptr<std::string>> handed(4);
  for (int t = 0; t < 4; ++t)
    threads.emplace_back([&, t] {
      pcm::pmr::local_resource local;
      std::pmr::vector<std::pmr::string> words(&local);
      std::map<int, std::shared_ptr<std::vector<int>>> shared;
      for (int i = 0; i < 3000; ++i) {
        words.emplace_back(std::to_string(i) + " is a number long enough to allocate");
        shared[i % 50] = std::make_shared<std::vector<int>>(i % 17, t);
        auto h = pool.acquire();
        h->emplace(std::pmr::string(std::to_string(i) + " key long enough to allocate"), "value");
        auto n = node_pool.acquire();
        n->emplace(std::pmr::string(std::to_string(i % 7) + " key long enough to allocate"), "value");
        if (n->find(std::pmr::string("3 key long enough to allocate")) != n->end()) n->clear();
      }
      handed[std::size_t(t)] = std::make_unique<std::string>(words.back());
    });
  for (auto& t : threads) t.join();
  for (int t = 0; t < 4; ++t) on_thread([&] {   // one thread after another
    for (int i = 0; i < 100; ++i) handed_map[t * 100 + i] = i;
    handed_map.erase(t * 100);
  });
  std::size_t total = handed_map.size();
  for (auto& s : handed) total += s->size();
  std::printf("clean total %zu\n", total);
}

// pcm::arena under the debug library: its blocks are debug blocks. free() of
// one gives it back to its arena (as in release), containers on an
// arena_resource, reset, a caller-memory arena filled, reset and filled again
// (its memory comes back from quarantine), an arena destroyed with blocks
// quarantined and live, arena blocks freed on another thread.
void clean_arenas() {
  {
    pcm::arena a;
    void* p = a.allocate(100);
    std::free(p);   // the example: an invalid-free report and a leak until 2026-12-06
    if (!a.owns(a.allocate(64, 64))) std::abort();
    pcm::pmr::arena_resource r(a);
    std::pmr::vector<int> v(&r);
    for (int i = 0; i < 10000; ++i) v.push_back(i);
    std::pmr::unordered_map<std::pmr::string, std::pmr::string> m(&r);
    for (int i = 0; i < 200; ++i) m.emplace(std::to_string(i) + " a key longer than SSO", "and a value longer than SSO too");
    void* big = a.allocate(3 << 20);   // huge: a mapping of its own
    char* other = nullptr;
    on_thread([&] { other = static_cast<char*>(a.allocate(48)); });
    on_thread([&] { std::free(other); });
    a.deallocate(big);
    v = std::pmr::vector<int>(&r);   // drop the old storage before the reset
    m = std::pmr::unordered_map<std::pmr::string, std::pmr::string>(&r);
    a.reset();   // the one live block above (64 at 64) goes, unused afterwards
    for (int i = 0; i < 1000; ++i) a.deallocate(a.allocate(std::size_t(i) * 8 + 1));
    sink = a.allocate(200);   // live at destruction: freed by it, no leak
  }
  {
    static char memory[1 << 20];
    pcm::arena fixed(memory, sizeof memory);
    for (int round = 0; round < 4; ++round) {
      for (int i = 0; i < 3000; ++i) {
        if (!fixed.allocate(200)) { std::printf("caller-memory arena full at round %d block %d\n", round, i); std::exit(3); }
      }
      fixed.reset();
    }
  }
  std::printf("clean arenas\n");
}

__attribute__((noinline)) char* make_in_arena(pcm::arena& a) { return static_cast<char*>(a.allocate(40)); }
__attribute__((noinline)) void reset_arena(pcm::arena& a) { a.reset(); }
__attribute__((noinline)) void use_after_reset(char* p) { static_cast<volatile char*>(p)[3] = 7; }

// A block of an arena used after the arena's reset (the arena's own
// use-after-return): reported as a use after free, the reset as its free.
void arena_used_after_reset() {
  pcm::arena a;
  char* p = make_in_arena(a);
  reset_arena(a);
  use_after_reset(p);
}

__attribute__((noinline)) void free_in_wrong_arena(pcm::arena& b, void* p) { b.deallocate(p); }

void block_of_another_arena() {
  pcm::arena a, b;
  void* p = a.allocate(40);
  free_in_wrong_arena(b, p);
  a.deallocate(p);
}

__attribute__((noinline)) char read_past_end(const char* p, std::size_t n) { return static_cast<const volatile char*>(p)[n + 100]; }

// guard:true: blocks that get no guard pages (an arena's, one aligned past a
// page) must not turn guard pages off for the blocks after them.
void overflow_after_unguarded_blocks() {
  pcm::arena a;
  a.deallocate(a.allocate(64));
  void* aligned = nullptr;
  if (posix_memalign(&aligned, 8192, 100) != 0) std::exit(2);
  std::free(aligned);
  char* p = static_cast<char*>(std::malloc(4096));
  sink = p;
  std::printf("read %d\n", read_past_end(p, 4096));
}

}  // namespace

int main(int argc, char** argv) {
  int which = argc > 1 ? std::atoi(argv[1]) : 0;
  switch (which) {
    case 0: clean_threads(); break;
    case 1: local_resource_two_threads(); break;
    case 2: map_pool_handle_two_threads(); break;
    case 3: map_used_after_return<text_map>(); break;
    case 6: map_used_after_return<text_node_map>(); break;
    case 7: node_map_two_threads(); break;
    case 8: clean_arenas(); break;
    case 9: arena_used_after_reset(); break;
    case 10: block_of_another_arena(); break;
    case 11: overflow_after_unguarded_blocks(); break;
    case 4: {   // new[] on T1, delete[] on T2, written on main: found at exit
      char* p = nullptr;
      int t1 = on_thread([&] { p = make_on_thread(40); });
      int t2 = on_thread([&] { delete_on_thread(p); });
      touch_after_free(p);
      std::printf("expect-threads: allocated by T%d, freed by T%d\n", t1, t2);
      break;
    }
    case 5: {   // new[] on T1, delete (not delete[]) on T2
      char* p = nullptr;
      int t1 = on_thread([&] { p = make_on_thread(40); });
      int t2 = on_thread([&] { delete_scalar_on_thread(p); });
      std::printf("expect-threads: detected in T%d, allocated by T%d\n", t2, t1);
      break;
    }
  }
  std::printf("done %d\n", which);
  return 0;
}
