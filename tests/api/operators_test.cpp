// Every replaceable C++ operator new and delete: plain, array, nothrow, sized,
// align_val_t and their combinations, called directly and through expressions.
#include <memory>
#include <new>
#include <string>
#include <vector>

#include <doctest/doctest.h>

#include "support.hpp"

using namespace api_test;

namespace {
const std::size_t sizes[] = {0, 1, 16, 100, 5000, 32 * KiB, 100 * KiB, 3 * MiB};
const std::size_t alignments[] = {1, 16, 32, 64, 256, 4096, 8192, 64 * KiB};

struct alignas(128) wide {
  unsigned char bytes[200];
};
struct alignas(4096) page_sized {
  unsigned char bytes[10];
};
}  // namespace

TEST_CASE("operator new and delete, unaligned forms") {
  for (std::size_t n : sizes) {
    CAPTURE(n);
    void* p = ::operator new(n);
    check_block(p, n);
    ::operator delete(p);

    p = ::operator new[](n);
    check_block(p, n);
    ::operator delete[](p);

    p = ::operator new(n, std::nothrow);
    check_block(p, n);
    ::operator delete(p, std::nothrow);

    p = ::operator new[](n, std::nothrow);
    check_block(p, n);
    ::operator delete[](p, std::nothrow);

    p = ::operator new(n);
    check_block(p, n);
    ::operator delete(p, n);

    p = ::operator new[](n);
    check_block(p, n);
    ::operator delete[](p, n);
  }
  ::operator delete(nullptr);
  ::operator delete[](nullptr);
  ::operator delete(nullptr, std::size_t(0));
}

TEST_CASE("operator new and delete, align_val_t forms") {
  for (std::size_t a : alignments) {
    for (std::size_t n : sizes) {
      CAPTURE(a);
      CAPTURE(n);
      const auto al = std::align_val_t(a);
      void* p = ::operator new(n, al);
      check_block(p, n, a);
      ::operator delete(p, al);

      p = ::operator new[](n, al);
      check_block(p, n, a);
      ::operator delete[](p, al);

      p = ::operator new(n, al, std::nothrow);
      check_block(p, n, a);
      ::operator delete(p, al, std::nothrow);

      p = ::operator new[](n, al, std::nothrow);
      check_block(p, n, a);
      ::operator delete[](p, al, std::nothrow);

      p = ::operator new(n, al);
      check_block(p, n, a);
      ::operator delete(p, n, al);

      p = ::operator new[](n, al);
      check_block(p, n, a);
      ::operator delete[](p, n, al);
    }
  }
  ::operator delete(nullptr, std::align_val_t(64));
  ::operator delete[](nullptr, std::size_t(0), std::align_val_t(64));
}

TEST_CASE("new and delete expressions go through pcmalloc") {
  auto* number = new std::uint64_t(7);
  CHECK(pcm_owns(number) == 1);
  delete number;

  auto* numbers = new std::uint32_t[1000]();
  CHECK(pcm_owns(numbers) == 1);
  CHECK(all_zero(numbers, sizeof(std::uint32_t) * 1000));
  delete[] numbers;

  auto* w = new wide;
  CHECK(pcm_owns(w) == 1);
  CHECK(is_aligned(w, alignof(wide)));
  delete w;

  auto* ws = new wide[5];   // trivially destructible: no array cookie, the block starts at ws
  CHECK(pcm_owns(ws) == 1);
  CHECK(is_aligned(ws, alignof(wide)));
  delete[] ws;

  auto* page = new (std::nothrow) page_sized;
  REQUIRE(page);
  CHECK(pcm_owns(page) == 1);
  CHECK(is_aligned(page, 4096));
  delete page;

  auto owned = std::make_unique<wide[]>(3);
  CHECK(pcm_owns(owned.get()) == 1);

  std::vector<int> v(100000, 1);
  CHECK(pcm_owns(v.data()) == 1);
  std::string s(1000, 'x');
  CHECK(pcm_owns(s.data()) == 1);
}
