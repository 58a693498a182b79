// A thread that exits after the program's static destructors ran, holding
// maps of two leaked pools in its slots (map_pool's per-thread slots,
// include/pcmalloc/thread_slots.hpp): its exit hook must still find the
// registry. It once was a function-local std::vector, destroyed before such
// a thread's hook walked it (SIGSEGV). Exit status 0 and "joined" expected.
#include <atomic>
#include <cstdio>
#include <memory_resource>
#include <thread>
#include <unistd.h>
#include <unordered_map>

#include <pcmalloc/map_pool.hpp>

namespace {
std::atomic<bool> go{false};
struct joiner {
  std::thread t;
  ~joiner() {
    go = true;
    if (t.joinable()) t.join();
    std::puts("joined");
  }
};
joiner late;   // constructed before any pool: destroyed after the registry's statics would be
using number_map = std::pmr::unordered_map<int, int>;
}  // namespace

int main() {
  auto* pool = new pcm::map_pool<number_map>();   // leaked singletons, as servers keep them
  auto* other = new pcm::map_pool<number_map>();
  late.t = std::thread([pool, other] {
    { auto h = pool->acquire(); (*h)[1] = 2; }
    { auto h = other->acquire(); (*h)[1] = 2; }
    while (!go) usleep(1000);
  });
  usleep(20000);
  std::puts("main returns");
}
