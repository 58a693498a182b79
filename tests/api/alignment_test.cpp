// Aligned allocation: every power of two from 1 B to 64 KiB (and some far
// beyond) with sizes around the alignment and up to a few MiB, through every
// aligned entry point; and the invalid alignments each must refuse.
#include <bit>
#include <cerrno>
#include <new>
#include <set>

#include <doctest/doctest.h>

#include "support.hpp"

using namespace api_test;

namespace {

std::set<std::size_t> sizes_for(std::size_t a) {
  return {0, 1, a - 1, a, a + 1, 3 * a, 5000, 100 * KiB, 1 * MiB + 1, 3 * MiB};
}

// The block's full usable size is writable, and at least `n` of it.
void check_aligned_block(void* p, std::size_t n, std::size_t a) {
  check_block(p, n, a);
  std::size_t usable = pcm_usable_size(p);
  fill(p, usable, usable);
  CHECK(intact(p, usable, usable));
}

void check_all_forms(std::size_t a, std::size_t n) {
  CAPTURE(a);
  CAPTURE(n);
  void* p = aligned_alloc(a, n);
  check_aligned_block(p, n, a);
  free(p);

  p = memalign(a, n);
  check_aligned_block(p, n, a);
  free_aligned_sized(p, a, n);

  p = pcm_aligned_alloc(a, n);
  check_aligned_block(p, n, a);
  pcm_free_aligned_sized(p, a, n);

  p = pcm_memalign(a, n);
  check_aligned_block(p, n, a);
  pcm_free(p);

  if (a >= sizeof(void*)) {   // POSIX: a power of two multiple of sizeof(void*)
    void* q = nullptr;
    REQUIRE(posix_memalign(&q, a, n) == 0);
    check_aligned_block(q, n, a);
    free(q);
    q = nullptr;
    REQUIRE(pcm_posix_memalign(&q, a, n) == 0);
    check_aligned_block(q, n, a);
    pcm_free(q);
  }

  p = ::operator new(n, std::align_val_t(a));
  check_aligned_block(p, n, a);
  ::operator delete(p, n, std::align_val_t(a));
}

}  // namespace

TEST_CASE("every alignment from 1 B to 64 KiB") {
  for (std::size_t a = 1; a <= 64 * KiB; a *= 2)
    for (std::size_t n : sizes_for(a)) check_all_forms(a, n);
}

TEST_CASE("alignments above 64 KiB, up to 8 MiB") {
  for (std::size_t a = 128 * KiB; a <= 8 * MiB; a *= 2)
    for (std::size_t n : {std::size_t(0), std::size_t(1), std::size_t(4096), a - 1, a + 1, 3 * MiB})
      check_all_forms(a, n);
}

TEST_CASE("many live aligned blocks do not overlap") {
  // Neighbours in one slab or chunk: each keeps its pattern while the others are written.
  for (std::size_t a : {std::size_t(32), std::size_t(256), std::size_t(4096), std::size_t(16 * KiB)}) {
    CAPTURE(a);
    std::vector<void*> blocks;
    for (std::size_t i = 0; i < 200; ++i) {
      std::size_t n = 1 + (i * 131) % (3 * a);
      void* p = aligned_alloc(a, n);
      REQUIRE(p);
      CHECK(is_aligned(p, a));
      fill(p, n, i);
      blocks.push_back(p);
    }
    for (std::size_t i = 0; i < blocks.size(); ++i) {
      CHECK(intact(blocks[i], 1 + (i * 131) % (3 * a), i));
      free(blocks[i]);
    }
  }
}

TEST_CASE("aligned_alloc refuses a bad alignment with EINVAL") {
  for (std::size_t a : {std::size_t(0), std::size_t(3), std::size_t(24), std::size_t(48), std::size_t(100),
                        std::size_t(4095), std::size_t(4097), std::size_t(65537), std::size_t(3) << 20,
                        ~std::size_t(0)}) {
    CAPTURE(a);
    errno = 0;
    CHECK(aligned_alloc(opaque(a), 16) == nullptr);
    CHECK(errno == EINVAL);
    errno = 0;
    CHECK(pcm_aligned_alloc(opaque(a), 16) == nullptr);
    CHECK(errno == EINVAL);
  }
}

TEST_CASE("posix_memalign refuses a bad alignment with EINVAL and leaves errno alone") {
  for (std::size_t a : {std::size_t(0), std::size_t(1), std::size_t(2), std::size_t(4), std::size_t(12),
                        std::size_t(24), std::size_t(48), std::size_t(4097), ~std::size_t(0)}) {
    CAPTURE(a);
    int dummy;
    void* out = &dummy;
    errno = 1234;
    CHECK(posix_memalign(&out, opaque(a), 16) == EINVAL);
    CHECK(errno == 1234);
    CHECK(out == &dummy);   // untouched on failure
    CHECK(pcm_posix_memalign(&out, opaque(a), 16) == EINVAL);
    CHECK(errno == 1234);
    CHECK(out == &dummy);
  }
}

TEST_CASE("memalign rounds an alignment that is no power of two up to the next one, as glibc does") {
  struct form { void* (*allocate)(std::size_t, std::size_t); const char* name; };
  for (form f : {form{memalign, "memalign"}, form{pcm_memalign, "pcm_memalign"}}) {
    CAPTURE(f.name);
    for (std::size_t a : {std::size_t(3), std::size_t(24), std::size_t(48), std::size_t(100), std::size_t(4095),
                          std::size_t(4097), std::size_t(65537), std::size_t(3) << 20}) {
      CAPTURE(a);
      void* p = f.allocate(opaque(a), 100);
      REQUIRE(p != nullptr);
      CHECK(is_aligned(p, std::bit_ceil(a)));
      fill(p, 100, a);
      CHECK(intact(p, 100, a));
      free(p);
    }
    void* p = f.allocate(opaque(0), 100);   // 0: malloc's own alignment
    REQUIRE(p != nullptr);
    CHECK(is_aligned(p, 16));
    free(p);
    errno = 0;
    CHECK(f.allocate(opaque((~std::size_t(0) >> 1) + 2), 16) == nullptr);   // past the largest power of two
    CHECK(errno == EINVAL);
  }
}
