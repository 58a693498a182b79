// Shared by the workload programs: positional arguments, a seeded generator, work
// splitting, an optimisation barrier and the one result line run.py parses.
// Header only; nothing here allocates inside a timed loop.
#pragma once

#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <thread>
#include <utility>
#include <vector>

namespace bench {

// splitmix64: one word of state, the same sequence on every run and machine, so
// checksums can be compared across allocators.
class rng {
public:
  explicit rng(uint64_t seed) : state_(seed * 0x9E3779B97F4A7C15ull + 0x2545F4914F6CDD1Dull) {}

  uint64_t next() {
    uint64_t z = (state_ += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
  }
  // Uniform in [0, n): the high word of a 64x64 product, no division.
  uint64_t below(uint64_t n) {
    __extension__ using wide = unsigned __int128;
    return static_cast<uint64_t>((static_cast<wide>(next()) * n) >> 64);
  }
  uint64_t between(uint64_t low, uint64_t high) { return low + below(high - low + 1); }

private:
  uint64_t state_;
};

// A size in [low, high] skewed towards low: u^3 puts half the mass in the lowest
// eighth of the range, as in programs dominated by small nodes and bignum digits.
// The range must stay below 2^16 so (high - low) * u^3 fits in 64 bits.
inline size_t skewed_size(rng& random, size_t low, size_t high) {
  uint64_t u = random.below(1u << 16);
  return low + static_cast<size_t>(((high - low) * u * u * u) >> 48);
}

// Keeps a pointer (and what it points to) alive for the compiler: without it
// GCC may delete a malloc/free pair whose block is never observed.
template <class T>
inline void escape(T* pointer) {
  asm volatile("" : : "r"(pointer) : "memory");
}

// Thread `index` of `parts` gets this much of `total`; the shares add up to it.
inline uint64_t share(uint64_t total, unsigned parts, unsigned index) {
  return total / parts + (index < total % parts ? 1 : 0);
}

class stopwatch {
public:
  double seconds() const {
    return std::chrono::duration<double>(std::chrono::steady_clock::now() - start_).count();
  }

private:
  std::chrono::steady_clock::time_point start_ = std::chrono::steady_clock::now();
};

// Positional numeric arguments (a k, M or G suffix multiplies by 10^3, 10^6,
// 10^9). `values` holds the defaults; the first `required` have none.
inline std::vector<uint64_t> parse_args(int argc, char** argv, const char* usage, size_t required,
                                        std::vector<uint64_t> values) {
  size_t given = static_cast<size_t>(argc > 0 ? argc - 1 : 0);
  if (given < required || given > values.size()) {
    std::fprintf(stderr, "usage: %s %s\n", argv[0], usage);
    std::exit(2);
  }
  for (size_t i = 0; i < given; ++i) {
    char* end = nullptr;
    unsigned long long value = std::strtoull(argv[i + 1], &end, 10);
    if (*end == 'k') { value *= 1000ull; ++end; }
    else if (*end == 'M') { value *= 1000000ull; ++end; }
    else if (*end == 'G') { value *= 1000000000ull; ++end; }
    if (end == argv[i + 1] || *end != '\0') {
      std::fprintf(stderr, "%s: not a number: '%s'\nusage: %s %s\n", argv[0], argv[i + 1], argv[0], usage);
      std::exit(2);
    }
    values[i] = value;
  }
  if (values[0] == 0) {
    std::fprintf(stderr, "%s: THREADS must be at least 1\n", argv[0]);
    std::exit(2);
  }
  return values;
}

// Runs body(index) on `count` new threads and waits for them. Even one worker
// gets its own thread, so every thread count exercises the same code path.
template <class Body>
void run_threads(unsigned count, Body body) {
  std::vector<std::thread> workers;
  workers.reserve(count);
  for (unsigned i = 0; i < count; ++i) workers.emplace_back(body, i);
  for (auto& worker : workers) worker.join();
}

// The result line: `NAME threads=T seconds=S ops=N checksum=HEX [key=value ...]`.
inline void report(const char* name, unsigned threads, double seconds, uint64_t ops, uint64_t checksum,
                   const std::string& extra = {}) {
  std::printf("%s threads=%u seconds=%.6f ops=%llu checksum=%016llx%s%s\n", name, threads, seconds,
              static_cast<unsigned long long>(ops), static_cast<unsigned long long>(checksum),
              extra.empty() ? "" : " ", extra.c_str());
  std::fflush(stdout);
}

// The main of most programs: worker(index, share) runs on each of `threads`
// threads with its share of `total`, and what the workers return adds up to the
// checksum. `before` runs on the main thread inside the timed span, just before
// the threads start (cache_scratch allocates the objects it hands out there).
template <class Worker, class Before = void (*)()>
void run_and_report(const char* name, unsigned threads, uint64_t total, Worker worker, Before before = [] {}) {
  std::vector<uint64_t> sums(threads);
  stopwatch clock;
  before();
  run_threads(threads, [&](unsigned i) { sums[i] = worker(i, share(total, threads, i)); });
  uint64_t checksum = 0;
  for (uint64_t sum : sums) checksum += sum;
  report(name, threads, clock.seconds(), total, checksum);
}

// The "churn" workload of map_churn and maps: random inserts and erases of
// `ops` keys drawn from [0, keys), so the map hovers near half full and keeps
// allocating and freeing nodes. Returns an order-independent checksum.
template <class Map>
std::uint64_t churn_map(Map& map, rng& random, std::uint64_t ops, std::uint64_t keys) {
  std::uint64_t sum = 0;
  for (std::uint64_t i = 0; i < ops; ++i) {
    std::uint64_t key = random.below(keys);
    if (random.next() & 1) {
      sum += map.insert_or_assign(key, i).second;
    } else {
      auto found = map.find(key);
      if (found != map.end()) {
        sum += found->second;
        map.erase(found);
      }
    }
  }
  for (const auto& [key, value] : map) sum += key ^ value;   // the order of buckets does not matter
  return sum + map.size();
}

// The loop of cache-thrash and cache-scratch: `iterations` times, malloc an
// object, write all of it `writes` times, free it. Objects of neighbouring
// threads that share a cache line make the writes contend (false sharing).
inline std::uint64_t write_fresh_objects(std::uint64_t iterations, std::uint64_t writes, std::size_t object_size) {
  std::uint64_t sum = 0;
  for (std::uint64_t i = 0; i < iterations; ++i) {
    char* object = static_cast<char*>(std::malloc(object_size));
    volatile char* cell = object;   // so each write reaches memory
    for (std::uint64_t w = 0; w < writes; ++w)
      for (std::size_t k = 0; k < object_size; ++k) cell[k] = static_cast<char>(w + k);
    sum += static_cast<unsigned char>(cell[object_size - 1]);
    std::free(object);
  }
  return sum;
}

}  // namespace bench
