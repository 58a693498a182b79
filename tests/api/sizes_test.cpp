// Sizes: every size up to 64 KiB, sampled sizes to 64 MiB, every size-class
// boundary, zero sizes, and large and huge blocks written in full.
#include <cstring>
#include <new>
#include <set>

#include <doctest/doctest.h>

#include "size_class.hpp"
#include "support.hpp"

using namespace api_test;

TEST_CASE("usable size >= requested for every size from 0 to 64 KiB") {
  for (std::size_t n = 0; n <= 64 * KiB; ++n) {
    void* p = malloc(n);
    if (!p || pcm_owns(p) != 1 || pcm_usable_size(p) < n) {
      CAPTURE(n);
      REQUIRE(p);
      CHECK(pcm_owns(p) == 1);
      CHECK(pcm_usable_size(p) >= n);
    }
    std::memset(p, 0xcd, n);
    free(p);
  }
}

TEST_CASE("usable size >= requested for sampled sizes up to 64 MiB") {
  for (std::size_t power = 64 * KiB; power <= 64 * MiB; power *= 2) {
    for (std::size_t n : {power - 1, power, power + 1, power + 4095, power + 4096, power + power / 3 + 7}) {
      if (n > 64 * MiB) continue;
      CAPTURE(n);
      void* p = malloc(n);
      REQUIRE(p);
      CHECK(pcm_owns(p) == 1);
      CHECK(pcm_usable_size(p) >= n);
      touch_pages(p, n);
      free(p);
    }
  }
}

TEST_CASE("every size-class boundary: s-1, s and s+1") {
  RELEASE_LIBRARY_ONLY("usable size is the class size");
  for (unsigned cls = pcm::first_class; cls <= pcm::class_count; ++cls) {
    const std::size_t s = pcm::class_to_size(cls);
    for (std::size_t n : {s - 1, s, s + 1}) {
      CAPTURE(cls);
      CAPTURE(n);
      void* p = malloc(n);
      REQUIRE(p);
      CHECK(pcm_owns(p) == 1);
      const std::size_t usable = pcm_usable_size(p);
      CHECK(usable >= n);
      if (n <= pcm::small_max) {
        CHECK(usable == pcm::class_to_size(pcm::size_to_class(n)));   // slab objects are exactly their class
      } else if (n <= pcm::large_max) {
        CHECK(usable <= pcm::class_to_size(pcm::size_to_class(n)));   // never more waste than the class table
      } else {
        CHECK(usable < n + 4096);                                      // huge: whole pages
      }
      fill(p, n, n);
      CHECK(intact(p, n, n));
      free(p);
    }
  }
}

TEST_CASE("zero sizes give distinct blocks that can be freed") {
  std::vector<void*> blocks;
  std::set<void*> distinct;
  auto keep = [&](void* p) {
    REQUIRE(p != nullptr);
    CHECK(pcm_owns(p) == 1);
    blocks.push_back(p);
    distinct.insert(p);
  };
  for (int i = 0; i < 100; ++i) {
    keep(malloc(0));
    keep(calloc(0, 16));
    keep(calloc(16, 0));
    keep(calloc(0, 0));
    keep(realloc(nullptr, 0));
    keep(reallocarray(nullptr, 0, 8));
    keep(aligned_alloc(64, 0));
    keep(memalign(256, 0));
    void* q = nullptr;
    REQUIRE(posix_memalign(&q, 64, 0) == 0);
    keep(q);
    keep(valloc(0));
    keep(pvalloc(0));
    keep(pcm_malloc(0));
    keep(pcm_calloc(0, 0));
    keep(pcm_aligned_alloc(4096, 0));
  }
  CHECK(distinct.size() == blocks.size());
  for (void* p : blocks) free(p);

  std::vector<void*> news;
  for (int i = 0; i < 100; ++i) {
    news.push_back(::operator new(0));
    news.push_back(::operator new[](0));
    news.push_back(::operator new(0, std::align_val_t(128)));
  }
  std::set<void*> distinct_news(news.begin(), news.end());
  CHECK(distinct_news.size() == news.size());
  for (std::size_t i = 0; i < news.size(); i += 3) {
    CHECK(pcm_owns(news[i]) == 1);
    ::operator delete(news[i]);
    ::operator delete[](news[i + 1]);
    ::operator delete(news[i + 2], std::align_val_t(128));
  }
}

TEST_CASE("large and huge blocks are writable in full") {
  for (std::size_t n : {40 * KiB, 1 * MiB, 2 * MiB, 2 * MiB + 1, 64 * MiB, 256 * MiB}) {
    CAPTURE(n);
    void* p = malloc(n);
    REQUIRE(p);
    CHECK(pcm_owns(p) == 1);
    CHECK(pcm_usable_size(p) >= n);
    fill(p, n, n);
    CHECK(intact(p, n, n));
    free(p);
  }
}
