// realloc across every kind of block: small (slab objects), large (page runs,
// <= 2 MiB) and huge (own mappings), growing and shrinking, in place and
// moving. The contents up to the smaller size always survive.
#include <cerrno>

#include <doctest/doctest.h>

#include "support.hpp"

using namespace api_test;

namespace {

// realloc p (holding `from` patterned bytes) to `to`; checks the kept prefix and
// returns the new block, patterned over all `to` bytes with `seed`.
void* resize(void* p, std::size_t from, std::size_t to, std::uint64_t seed) {
  CAPTURE(from);
  CAPTURE(to);
  void* q = realloc(p, to);
  REQUIRE(q != nullptr);
  CHECK(pcm_owns(q) == 1);
  CHECK(pcm_usable_size(q) >= to);
  CHECK(is_aligned(q, 16));
  std::size_t kept = from < to ? from : to;
  CHECK(first_mismatch(q, kept, seed) == kept);
  fill(q, to, seed);
  return q;
}

void* patterned(std::size_t n, std::uint64_t seed) {
  void* p = malloc(n);
  REQUIRE(p);
  fill(p, n, seed);
  return p;
}

}  // namespace

TEST_CASE("realloc between every kind of block keeps the contents") {
  struct step { std::size_t from, to; const char* what; };
  const step steps[] = {
      {24, 200, "small -> small, growing"},
      {200, 20, "small -> small, shrinking"},
      {1000, 100 * KiB, "small -> large"},
      {100 * KiB, 1 * MiB, "large -> large, growing"},
      {1 * MiB, 40 * KiB, "large -> large, shrinking"},
      {1 * MiB, 16 * MiB, "large -> huge"},
      {16 * MiB, 64 * MiB, "huge -> huge, growing"},
      {64 * MiB, 5 * MiB + 123, "huge -> huge, shrinking"},
      {5 * MiB, 1 * MiB, "huge -> large"},
      {5 * MiB, 100, "huge -> small"},
      {100 * KiB, 500, "large -> small"},
      {100, 3 * MiB, "small -> huge"},
      {32 * KiB, 32 * KiB + 1, "largest small -> smallest large"},
      {2 * MiB, 2 * MiB + 1, "largest large -> smallest huge"},
      {2 * MiB + 1, 2 * MiB, "smallest huge -> largest large"},
  };
  std::uint64_t seed = 1;
  for (const step& s : steps) {
    CAPTURE(s.what);
    void* p = patterned(s.from, seed);
    p = resize(p, s.from, s.to, seed);
    free(p);
    ++seed;
  }
}

TEST_CASE("realloc in place where the block allows it") {
  RELEASE_LIBRARY_ONLY("the debug heap always moves a block on realloc");
  SUBCASE("small: shrinking a little keeps the block") {
    void* p = patterned(200, 1);
    void* q = resize(p, 200, 150, 1);
    CHECK(q == p);
    free(q);
  }
  SUBCASE("small: growing within the size class keeps the block") {
    void* p = patterned(1, 2);
    std::size_t usable = pcm_usable_size(p);
    void* q = resize(p, 1, usable, 2);
    CHECK(q == p);
    free(q);
  }
  SUBCASE("large: shrinking keeps the run") {
    void* p = patterned(200 * KiB, 3);
    void* q = resize(p, 200 * KiB, 100 * KiB, 3);
    CHECK(q == p);
    CHECK(pcm_usable_size(q) < 200 * KiB);
    free(q);
  }
  SUBCASE("large: growing into the free pages that follow") {
    // Two neighbouring runs: freeing the second leaves exactly the pages the
    // first needs to double. Placement is the allocator's; only check when adjacent.
    char* p = static_cast<char*>(patterned(100 * KiB, 4));
    void* next = malloc(100 * KiB);
    REQUIRE(next);
    bool adjacent = next == p + 100 * KiB;
    free(next);
    void* q = resize(p, 100 * KiB, 200 * KiB, 4);
    if (adjacent) CHECK(q == p);
    else MESSAGE("runs were not adjacent; in-place growth not checked");
    free(q);
  }
  SUBCASE("huge: same page count keeps the mapping") {
    void* p = patterned(16 * MiB, 5);
    void* q = resize(p, 16 * MiB, 16 * MiB - 100, 5);
    CHECK(q == p);
    free(q);
  }
}

TEST_CASE("realloc in steps from 1 B to 8 MiB and back") {
  std::size_t n = 1;
  void* p = patterned(n, 99);
  while (n < 8 * MiB) {
    std::size_t next = n + n / 2 + 1;
    p = resize(p, n, next, 99);
    n = next;
  }
  while (n > 1) {
    std::size_t next = n - n / 3 - 1;
    if (next == 0) next = 1;
    p = resize(p, n, next, 99);
    n = next;
  }
  free(p);
}

TEST_CASE("realloc(NULL, n) allocates") {
  for (std::size_t n : {std::size_t(0), std::size_t(1), std::size_t(100), 100 * KiB, 8 * MiB}) {
    CAPTURE(n);
    void* p = realloc(nullptr, n);
    check_block(p, n);
    free(p);
  }
}

TEST_CASE("realloc(p, 0) frees p and returns NULL, as glibc does") {
  for (std::size_t n : {std::size_t(1), std::size_t(100), 100 * KiB, 8 * MiB}) {
    CAPTURE(n);
    void* p = patterned(n, 3);
    errno = 0;
    CHECK(realloc(p, 0) == nullptr);
    CHECK(errno == 0);   // not a failure: nothing to report
    if (n > 32 * KiB) CHECK(pcm_owns(opaque(p)) == 0);   // large and huge blocks are visibly gone
  }
  void* p = pcm_malloc(10);
  REQUIRE(p);
  CHECK(pcm_realloc(p, 0) == nullptr);
}

TEST_CASE("reallocarray grows, shrinks and keeps the contents") {
  void* p = reallocarray(nullptr, 10, 8);
  check_block(p, 80);
  fill(p, 80, 5);
  p = reallocarray(p, 100000, 8);
  REQUIRE(p);
  CHECK(intact(p, 80, 5));
  fill(p, 800000, 6);
  p = reallocarray(p, 3, 8);
  REQUIRE(p);
  CHECK(intact(p, 24, 6));
  free(p);
}
