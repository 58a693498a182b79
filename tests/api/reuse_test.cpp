// Freed memory comes back: a free that silently went nowhere (a cache push
// that "succeeded" without storing, a batch lost between a bin and its arena)
// leaks without any other symptom, so these tests watch the slab memory the
// heap holds while blocks of every small class and of bursts bigger than a
// cache are allocated and freed many times over.
#include <vector>

#include <doctest/doctest.h>

#include "support.hpp"

namespace {

std::uint64_t small_slab_bytes() {
  pcm_stats s;
  pcm_stats_get(&s);
  return s.small_slab_bytes;
}

}  // namespace

TEST_CASE("pairs of malloc and free reuse the same memory") {
  std::uint64_t before = small_slab_bytes();
  for (std::size_t size : {16, 64, 256, 1024, 4096, 32768}) {
    CAPTURE(size);
    // 64 MiB of traffic per size: were frees lost, slabs would grow by as much.
    for (std::size_t i = 0; i < (std::size_t(64) << 20) / size; ++i) {
      void* p = malloc(size);
      REQUIRE(p != nullptr);
      static_cast<char*>(p)[0] = 1;
      free(p);
    }
  }
  CHECK(small_slab_bytes() < before + (std::uint64_t(4) << 20));
}

TEST_CASE("bursts larger than the caches cycle without growing the heap") {
  std::vector<void*> blocks(5000);
  std::uint64_t after_first = 0;
  for (int round = 0; round < 200; ++round) {
    for (void*& p : blocks) {
      p = malloc(48);
      REQUIRE(p != nullptr);
    }
    for (std::size_t i = 0; i < blocks.size(); ++i) free(blocks[round % 2 ? blocks.size() - 1 - i : i]);
    if (round == 0) after_first = small_slab_bytes();
  }
  // 200 rounds of 5000 x 48 B = 48 MiB of traffic; one burst is 240 KiB.
  CHECK(small_slab_bytes() < after_first + (std::uint64_t(2) << 20));
}
