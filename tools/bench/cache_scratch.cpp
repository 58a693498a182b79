// Passive false sharing, in the manner of Hoard's cache-scratch: main allocates one
// small object per thread, back to back (so likely on one cache line), and hands
// one to each thread; the thread frees it, then keeps allocating, writing and
// freeing its own. An allocator that gives the freed neighbour straight back to
// the freeing thread keeps the threads writing one shared line.
#include "bench_common.hpp"

namespace {

uint64_t scratch(char* handed, uint64_t iterations, uint64_t writes, size_t object_size) {
  uint64_t sum = static_cast<unsigned char>(handed[0]);
  std::free(handed);
  return sum + bench::write_fresh_objects(iterations, writes, object_size);
}

}  // namespace

int main(int argc, char** argv) {
  auto args = bench::parse_args(argc, argv, "THREADS ITERATIONS [WRITES=100] [OBJECT_SIZE=8]", 2, {1, 0, 100, 8});
  unsigned threads = static_cast<unsigned>(args[0]);
  size_t object_size = args[3] ? args[3] : 1;
  std::vector<char*> handed;
  // Main's part of the workload, so it is timed: allocated back to back, the
  // handed-out objects likely share a cache line.
  auto hand_out = [&] {
    handed.resize(threads);
    for (unsigned i = 0; i < threads; ++i) {
      handed[i] = static_cast<char*>(std::malloc(object_size));
      std::memset(handed[i], static_cast<int>(i + 1), object_size);
    }
  };
  bench::run_and_report(
      "cache_scratch", threads, args[1],
      [&](unsigned i, uint64_t iterations) { return scratch(handed[i], iterations, args[2], object_size); }, hand_out);
  return 0;
}
