// calloc always returns zeroed memory: fresh, recycled after being dirtied,
// after in-place shrinking left dirty pages behind, and after purging.
#include <cstring>

#include <doctest/doctest.h>

#include "support.hpp"

using namespace api_test;

namespace {
const std::size_t sizes[] = {1,       2,        3,        15,         16,       17,      100,     1000,
                             4095,    4096,     4097,     32 * KiB - 1, 32 * KiB, 32 * KiB + 1, 100 * KiB, 1 * MiB,
                             2 * MiB, 2 * MiB + 1, 5 * MiB, 64 * MiB};

void* dirty_block(std::size_t n) {
  void* p = malloc(n);
  REQUIRE(p);
  std::memset(p, 0xab, n);
  return p;
}
}  // namespace

TEST_CASE("calloc returns zeroed memory from 1 B to 64 MiB") {
  for (std::size_t n : sizes) {
    CAPTURE(n);
    void* p = calloc(1, n);
    REQUIRE(p);
    CHECK(pcm_owns(p) == 1);
    CHECK(all_zero(p, n));
    free(p);
    if (n % 8 == 0) {
      p = calloc(n / 8, 8);
      REQUIRE(p);
      CHECK(all_zero(p, n));
      free(p);
    }
    p = pcm_calloc(n, 1);
    REQUIRE(p);
    CHECK(all_zero(p, n));
    pcm_free(p);
  }
}

TEST_CASE("calloc zeroes memory that was dirtied and freed") {
  for (std::size_t n : sizes) {
    CAPTURE(n);
    const int rounds = n > 2 * MiB ? 4 : 50;
    for (int round = 0; round < rounds; ++round) {
      free(dirty_block(n));
      void* p = calloc(1, n);
      REQUIRE(p);
      if (!all_zero(p, n)) {
        CAPTURE(round);
        FAIL_CHECK("calloc returned dirty memory");
      }
      std::memset(p, 0xab, n);
      free(p);
    }
  }
}

TEST_CASE("calloc zeroes many recycled blocks at once") {
  for (std::size_t n : {std::size_t(48), std::size_t(1000), 20 * KiB, 64 * KiB, 300 * KiB, 1 * MiB}) {
    CAPTURE(n);
    std::vector<void*> blocks;
    for (int i = 0; i < 64; ++i) blocks.push_back(dirty_block(n));
    for (void* p : blocks) free(p);
    blocks.clear();
    int dirty = 0;
    for (int i = 0; i < 64; ++i) {
      void* p = calloc(n, 1);
      REQUIRE(p);
      dirty += !all_zero(p, n);
      std::memset(p, 0xab, n);
      blocks.push_back(p);
    }
    CHECK(dirty == 0);
    for (void* p : blocks) free(p);
  }
}

TEST_CASE("calloc zeroes pages left dirty by an in-place shrink") {
  // The tail a large run gives back when it shrinks in place was written: a
  // calloc that lands there must still read zero.
  for (int round = 0; round < 20; ++round) {
    void* big = dirty_block(1 * MiB);
    void* shrunk = realloc(big, 64 * KiB);
    REQUIRE(shrunk);
    std::vector<void*> blocks;
    int dirty = 0;
    for (int i = 0; i < 12; ++i) {
      void* p = calloc(1, 80 * KiB);
      REQUIRE(p);
      dirty += !all_zero(p, 80 * KiB);
      blocks.push_back(p);
    }
    CHECK(dirty == 0);
    for (void* p : blocks) free(p);
    free(shrunk);
  }
}

TEST_CASE("calloc zeroes memory after a purge") {
  std::vector<void*> blocks;
  for (int i = 0; i < 32; ++i) blocks.push_back(dirty_block(i % 2 ? 128 * KiB : 512));
  for (void* p : blocks) free(p);
  pcm_purge();
  for (int i = 0; i < 32; ++i) {
    std::size_t n = i % 2 ? 128 * KiB : 512;
    void* p = calloc(1, n);
    REQUIRE(p);
    CHECK(all_zero(p, n));
    free(p);
  }
}
