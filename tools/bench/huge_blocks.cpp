// Huge blocks: each thread keeps a few blocks of 5-25 MB and replaces one at
// random per step: the new block is allocated and filled (every byte, as
// std::make_unique<char[]> or a vector's value-initialisation would) before the
// old one is freed. An allocator that maps each block afresh pays a page fault
// per 4 KiB every step; one that keeps freed memory reuses pages already there.
#include "bench_common.hpp"

namespace {

constexpr size_t min_block = size_t{5} << 20, max_block = size_t{25} << 20;
constexpr size_t slots = 8;

uint64_t run_worker(unsigned index, uint64_t steps) {
  bench::rng random(0x5EEDull + index);
  unsigned char* blocks[slots] = {};
  size_t sizes[slots] = {};
  uint64_t sum = 0;
  for (uint64_t step = 0; step < steps; ++step) {
    size_t victim = random.below(slots);
    size_t size = random.between(min_block, max_block);
    auto* block = static_cast<unsigned char*>(std::malloc(size));
    if (!block) std::abort();
    std::memset(block, static_cast<int>(step & 0xFF), size);
    if (blocks[victim]) sum += blocks[victim][0] + blocks[victim][sizes[victim] - 1] + sizes[victim];
    std::free(blocks[victim]);
    blocks[victim] = block;
    sizes[victim] = size;
  }
  for (size_t i = 0; i < slots; ++i) {
    if (blocks[i]) sum += blocks[i][0] + blocks[i][sizes[i] - 1] + sizes[i];
    std::free(blocks[i]);
  }
  return sum;
}

}  // namespace

int main(int argc, char** argv) {
  auto args = bench::parse_args(argc, argv, "THREADS STEPS", 2, {1, 0});
  unsigned threads = static_cast<unsigned>(args[0]);
  bench::run_and_report("huge_blocks", threads, args[1], run_worker);
  return 0;
}
