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
  bench::run_and_report("map_churn", threads, args[1], [&](unsigned i, uint64_t ops) { return churn(i, ops, keys); });
  return 0;
}
