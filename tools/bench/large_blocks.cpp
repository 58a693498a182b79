// Large blocks: realloc growth chains from 64 KiB to 32 MiB (doubling, then +25%
// steps), then a few replacements of random sizes 64 KiB-32 MiB. Every page a
// block gains is written, so an allocator pays for the memory it hands out, and
// each realloc checks that what was written before survived the move.
#include "bench_common.hpp"

#include <cmath>

namespace {

constexpr size_t min_block = size_t{64} << 10, max_block = size_t{32} << 20;
constexpr size_t page = 4096;
constexpr size_t pool_size = 4, replacements = 8;

// One word per page in [from, to), a function of the offset and the round.
void touch(char* block, size_t from, size_t to, uint64_t salt) {
  for (size_t offset = from & ~(page - 1); offset + sizeof(uint64_t) <= to; offset += page) {
    if (offset < from) continue;
    uint64_t word = offset ^ salt;
    std::memcpy(block + offset, &word, sizeof word);
  }
}

// Reads back the first and the last page word below `size`.
uint64_t sample(const char* block, size_t size) {
  uint64_t first, last;
  std::memcpy(&first, block, sizeof first);
  std::memcpy(&last, block + ((size - sizeof last) & ~(page - 1)), sizeof last);
  return first + last;
}

uint64_t grow_chain(uint64_t salt, bool doubling) {
  size_t size = min_block;
  char* block = static_cast<char*>(std::malloc(size));
  touch(block, 0, size, salt);
  uint64_t sum = 0;
  while (size < max_block) {
    size_t next = doubling ? size * 2 : size + size / 4;
    if (next > max_block) next = max_block;
    block = static_cast<char*>(std::realloc(block, next));
    sum += sample(block, size);
    touch(block, size, next, salt);
    size = next;
  }
  sum += sample(block, size);
  std::free(block);
  return sum;
}

// Sizes spread evenly on a log scale, so the small end is not drowned out.
size_t random_size(bench::rng& random) {
  double exponent = std::log2(static_cast<double>(min_block)) +
                    static_cast<double>(random.below(1u << 20)) / (1u << 20) *
                        (std::log2(static_cast<double>(max_block)) - std::log2(static_cast<double>(min_block)));
  auto size = static_cast<size_t>(std::exp2(exponent));
  return size < min_block ? min_block : size > max_block ? max_block : size;
}

uint64_t run_worker(unsigned index, uint64_t rounds) {
  bench::rng random(0x1A26Eull + index);
  char* pool[pool_size] = {};
  size_t sizes[pool_size] = {};
  uint64_t sum = 0;
  for (uint64_t round = 0; round < rounds; ++round) {
    uint64_t salt = random.next();
    sum += grow_chain(salt, true);
    sum += grow_chain(salt + 1, false);
    for (size_t i = 0; i < replacements; ++i) {
      size_t victim = random.below(pool_size);
      if (pool[victim]) sum += sample(pool[victim], sizes[victim]);
      std::free(pool[victim]);
      sizes[victim] = random_size(random);
      pool[victim] = static_cast<char*>(std::malloc(sizes[victim]));
      touch(pool[victim], 0, sizes[victim], salt + i);
    }
  }
  for (size_t i = 0; i < pool_size; ++i) {
    if (pool[i]) sum += sample(pool[i], sizes[i]);
    std::free(pool[i]);
  }
  return sum;
}

}  // namespace

int main(int argc, char** argv) {
  auto args = bench::parse_args(argc, argv, "THREADS ROUNDS", 2, {1, 0});
  unsigned threads = static_cast<unsigned>(args[0]);
  bench::run_and_report("large_blocks", threads, args[1], run_worker);
  return 0;
}
