// std::unordered_map<uint64_t, uint64_t> churn: random inserts and erases over a
// fixed key space, so the map hovers near half full and keeps allocating and
// freeing its nodes. Each thread churns its own map with its share of OPS.
#include "bench_common.hpp"

#include <unordered_map>

namespace {

uint64_t churn(unsigned index, uint64_t ops, uint64_t keys) {
  bench::rng random(0x3A9ull + index);
  std::unordered_map<uint64_t, uint64_t> map;
  return bench::churn_map(map, random, ops, keys);
}

}  // namespace

int main(int argc, char** argv) {
  auto args = bench::parse_args(argc, argv, "THREADS OPS [KEYS=500000]", 2, {1, 0, 500000});
  unsigned threads = static_cast<unsigned>(args[0]);
  uint64_t keys = args[2] ? args[2] : 1;
  std::vector<uint64_t> sums(threads);
  bench::stopwatch clock;
  bench::run_threads(threads, [&](unsigned i) { sums[i] = churn(i, bench::share(args[1], threads, i), keys); });
  uint64_t checksum = 0;
  for (uint64_t sum : sums) checksum += sum;
  bench::report("map_churn", threads, clock.seconds(), args[1], checksum);
  return 0;
}
