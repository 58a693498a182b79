// malloc/free of one size, three ways: pairs (malloc then free at once), batches of
// 1000 freed in allocation order, and batches freed in reverse. Each thread does
// its share of ITERATIONS pairs in every phase; the phases start together, and
// the extra fields give each phase's cost per malloc+free pair, in nanoseconds
// as one thread sees it (the mean over threads).
#include "bench_common.hpp"

#include <barrier>

namespace {

constexpr size_t batch = 1000;

struct phase_times {
  double pairs = 0, forward = 0, reverse = 0;
};

uint64_t run_pairs(size_t size, uint64_t count) {
  uint64_t sum = 0;
  for (uint64_t i = 0; i < count; ++i) {
    char* block = static_cast<char*>(std::malloc(size));
    block[0] = static_cast<char>(i);
    bench::escape(block);
    sum += static_cast<unsigned char>(block[0]);
    std::free(block);
  }
  return sum;
}

uint64_t run_batches(size_t size, uint64_t count, bool reverse) {
  char* blocks[batch];
  uint64_t sum = 0;
  for (uint64_t done = 0; done < count; done += batch) {
    size_t n = count - done < batch ? count - done : batch;
    for (size_t i = 0; i < n; ++i) {
      blocks[i] = static_cast<char*>(std::malloc(size));
      blocks[i][0] = static_cast<char>(i);
    }
    bench::escape(blocks);
    for (size_t i = 0; i < n; ++i) {
      char* block = blocks[reverse ? n - 1 - i : i];
      sum += static_cast<unsigned char>(block[0]);
      std::free(block);
    }
  }
  return sum;
}

}  // namespace

int main(int argc, char** argv) {
  auto args = bench::parse_args(argc, argv, "THREADS SIZE ITERATIONS", 3, {1, 0, 0});
  unsigned threads = static_cast<unsigned>(args[0]);
  size_t size = args[1] ? args[1] : 1;
  std::vector<uint64_t> sums(threads);
  std::vector<phase_times> times(threads);
  std::barrier sync(threads);
  bench::stopwatch clock;
  bench::run_threads(threads, [&](unsigned i) {
    uint64_t count = bench::share(args[2], threads, i);
    auto timed = [&](auto&& work, double& seconds) {
      sync.arrive_and_wait();
      bench::stopwatch phase;
      sums[i] += work();
      seconds = phase.seconds();
    };
    timed([&] { return run_pairs(size, count); }, times[i].pairs);
    timed([&] { return run_batches(size, count, false); }, times[i].forward);
    timed([&] { return run_batches(size, count, true); }, times[i].reverse);
  });
  double seconds = clock.seconds();

  phase_times mean;
  for (unsigned i = 0; i < threads; ++i) {
    double count = static_cast<double>(bench::share(args[2], threads, i));
    if (count == 0) count = 1;  // a thread with no share timed an empty phase
    mean.pairs += times[i].pairs / count * 1e9 / threads;
    mean.forward += times[i].forward / count * 1e9 / threads;
    mean.reverse += times[i].reverse / count * 1e9 / threads;
  }
  uint64_t checksum = 0;
  for (uint64_t sum : sums) checksum += sum;
  char extra[160];
  std::snprintf(extra, sizeof extra, "size=%zu pair_ns=%.2f batch_ns=%.2f reverse_ns=%.2f", size, mean.pairs,
                mean.forward, mean.reverse);
  bench::report("malloc_micro", threads, seconds, 3 * args[2], checksum, extra);
  return 0;
}
