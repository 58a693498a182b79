// The debug corpus, multi-threaded C++: blocks crossing threads, and the
// pooled objects whose misuse the heap alone cannot see (a local_resource or a
// map_pool map used by two threads at once, a map used after it went back to
// its pool). `thread_bugs CASE`; "expect-threads: ..." lines on stdout give the
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

#include <pcmalloc/map_pool.hpp>
#include <pcmalloc/pmr.hpp>

namespace {

int tid() { return int(syscall(SYS_gettid)); }
void* volatile sink;

using text_map = std::pmr::unordered_map<std::pmr::string, std::pmr::string>;

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

__attribute__((noinline)) void give_map_back(pcm::map_pool<text_map>::handle& h) { h.release(); }
__attribute__((noinline)) void use_returned_map(text_map* m) { m->emplace("a key long enough to allocate", "and a value long enough too"); }

void map_used_after_return() {
  pcm::map_pool<text_map> pool;
  auto h = pool.acquire();
  text_map* m = h.get();
  m->emplace("first key, long enough to allocate", "first value, long enough to allocate");
  give_map_back(h);
  use_returned_map(m);
}

// Clean: threads share blocks (made on one, freed on another), containers,
// shared_ptr, a local_resource per thread and one map_pool used properly.
void clean_threads() {
  pcm::map_pool<text_map> pool;
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
      }
      handed[std::size_t(t)] = std::make_unique<std::string>(words.back());
    });
  for (auto& t : threads) t.join();
  std::size_t total = 0;
  for (auto& s : handed) total += s->size();
  std::printf("clean total %zu\n", total);
}

}  // namespace

int main(int argc, char** argv) {
  int which = argc > 1 ? std::atoi(argv[1]) : 0;
  switch (which) {
    case 0: clean_threads(); break;
    case 1: local_resource_two_threads(); break;
    case 2: map_pool_handle_two_threads(); break;
    case 3: map_used_after_return(); break;
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
