// Active false sharing, in the manner of Hoard's cache-thrash: every thread keeps
// allocating one small object, writing it many times and freeing it. An allocator
// that hands concurrent threads objects on one cache line makes those writes
// bounce the line between cores.
#include "bench_common.hpp"

namespace {

// The writes go through a volatile pointer so each one reaches memory.
uint64_t thrash(uint64_t iterations, uint64_t writes, size_t object_size) {
  return bench::write_fresh_objects(iterations, writes, object_size);
}

}  // namespace

int main(int argc, char** argv) {
  auto args = bench::parse_args(argc, argv, "THREADS ITERATIONS [WRITES=100] [OBJECT_SIZE=8]", 2, {1, 0, 100, 8});
  unsigned threads = static_cast<unsigned>(args[0]);
  size_t object_size = args[3] ? args[3] : 1;
  std::vector<uint64_t> sums(threads);
  bench::stopwatch clock;
  bench::run_threads(threads, [&](unsigned i) {
    sums[i] = thrash(bench::share(args[1], threads, i), args[2], object_size);
  });
  uint64_t checksum = 0;
  for (uint64_t sum : sums) checksum += sum;
  bench::report("cache_thrash", threads, clock.seconds(), args[1], checksum);
  return 0;
}
