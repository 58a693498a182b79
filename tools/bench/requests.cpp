// Request handling: per request, parse five header-like pairs into a fresh
// std::unordered_map<std::string, std::string> (40-byte values, so every value and
// the longer names live on the heap), look one up, drop the map. Each of T threads
// serves its share of REQUESTS.
#include "bench_common.hpp"

#include <array>
#include <string>
#include <unordered_map>

namespace {

constexpr size_t value_length = 40;
constexpr std::array<const char*, 5> header_names = {"Host", "User-Agent", "Accept-Encoding", "Content-Type",
                                                     "X-Request-Identifier"};

// Eight letters per random word: the generator should not cost more than the map.
void fill_value(bench::rng& random, char (&value)[value_length]) {
  for (size_t i = 0; i < value_length; i += 8) {
    uint64_t word = random.next();
    for (size_t k = i; k < i + 8 && k < value_length; ++k, word >>= 8)
      value[k] = static_cast<char>('a' + (word & 0xff) % 26);
  }
}

uint64_t serve(unsigned index, uint64_t requests) {
  bench::rng random(0xF00Dull + index);
  char value[value_length];
  uint64_t sum = 0;
  for (uint64_t r = 0; r < requests; ++r) {
    std::unordered_map<std::string, std::string> headers;
    for (const char* name : header_names) {
      fill_value(random, value);
      headers.emplace(name, std::string(value, value_length));
    }
    auto found = headers.find(header_names[random.below(header_names.size())]);
    sum += found == headers.end() ? 0 : static_cast<unsigned char>(found->second[r % value_length]);
  }
  return sum;
}

}  // namespace

int main(int argc, char** argv) {
  auto args = bench::parse_args(argc, argv, "THREADS REQUESTS", 2, {1, 0});
  unsigned threads = static_cast<unsigned>(args[0]);
  std::vector<uint64_t> sums(threads);
  bench::stopwatch clock;
  bench::run_threads(threads, [&](unsigned i) { sums[i] = serve(i, bench::share(args[1], threads, i)); });
  uint64_t checksum = 0;
  for (uint64_t sum : sums) checksum += sum;
  bench::report("requests", threads, clock.seconds(), args[1], checksum);
  return 0;
}
