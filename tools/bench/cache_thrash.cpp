// Active false sharing, in the manner of Hoard's cache-thrash: every thread keeps
// allocating one small object, writing it many times and freeing it. An allocator
// that hands concurrent threads objects on one cache line makes those writes
// bounce the line between cores.
#include "bench_common.hpp"

int main(int argc, char** argv) {
  auto args = bench::parse_args(argc, argv, "THREADS ITERATIONS [WRITES=100] [OBJECT_SIZE=8]", 2, {1, 0, 100, 8});
  unsigned threads = static_cast<unsigned>(args[0]);
  size_t object_size = args[3] ? args[3] : 1;
  bench::run_and_report("cache_thrash", threads, args[1], [&](unsigned, uint64_t iterations) {
    return bench::write_fresh_objects(iterations, args[2], object_size);
  });
  return 0;
}
