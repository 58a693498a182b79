// The page map on synthesised addresses: it stores entries and never touches
// the pages they describe, so any canonical user address will do. Entries are
// packed and unpacked, set across 16 GiB leaf boundaries, and cleared; foreign,
// null and non-canonical addresses read as "not ours".
#include <cstdint>
#include <thread>
#include <vector>

#include <doctest/doctest.h>

#include "page_map.hpp"

using namespace pcm;

namespace {

constexpr std::uintptr_t leaf_span = std::uintptr_t(1) << page_map::leaf_bits;   // 16 GiB
constexpr std::uintptr_t page = os::page_size;

// Distinct fake descriptors: only their bits are stored.
slab* fake_slab(std::uintptr_t n) { return reinterpret_cast<slab*>(0x100000000000ull + 64 * n); }
const void* at(std::uintptr_t a) { return reinterpret_cast<const void*>(a); }

}  // namespace

TEST_CASE("page_entry packs owner (48 bits), class (8 bits) and page offset (8 bits)") {
  for (std::uintptr_t owner : {std::uintptr_t(0), std::uintptr_t(64), std::uintptr_t(0x7fffffffffc0), std::uintptr_t(0xffffffffffc0)}) {
    for (unsigned cls : {0u, 1u, 40u, 64u, page_entry::huge_class, page_entry::explicit_flag | 5u, 255u}) {
      for (unsigned offset : {0u, 1u, 63u, 254u, 255u}) {
        page_entry e = page_entry::make(reinterpret_cast<slab*>(owner), cls, offset);
        CAPTURE(owner);
        CAPTURE(cls);
        CAPTURE(offset);
        CHECK(reinterpret_cast<std::uintptr_t>(e.owner()) == owner);
        CHECK(e.size_class() == cls);
        CHECK(e.page_offset() == offset);
      }
    }
  }
  CHECK(page_entry{0}.size_class() == 0);   // 0: memory we do not own
}

TEST_CASE("nullptr, unmapped leaves and non-canonical addresses read as 0") {
  CHECK(page_map::lookup(nullptr).bits == 0);
  CHECK(page_map::lookup(at(0x5a5a5a5a5000)).bits == 0);   // leaf never installed
  CHECK(page_map::lookup(at(std::uintptr_t(1) << 47)).bits == 0);
  CHECK(page_map::lookup(at(0xffff800000000000ull)).bits == 0);   // kernel half
  CHECK(page_map::lookup(at(~std::uintptr_t(0))).bits == 0);
  CHECK(page_map::lookup(at(0x8000000000000000ull)).bits == 0);
  // Installing leaf 0 (the first 16 GiB) does not make nullptr ours.
  REQUIRE(page_map::set_one(at(0x10000000), page_entry::make(fake_slab(1), 3, 0)));
  CHECK(page_map::lookup(nullptr).bits == 0);
  CHECK(page_map::lookup(at(0x10000000)).size_class() == 3);
  page_map::clear(at(0x10000000), 1);
  CHECK(page_map::lookup(at(0x10000000)).bits == 0);
}

TEST_CASE("a small slab across a 16 GiB leaf boundary: every page knows its distance to the first") {
  const std::uintptr_t boundary = 5 * leaf_span;
  const std::uintptr_t first = boundary - 3 * page;
  const page_entry entry = page_entry::make(fake_slab(2), 17, 0);
  REQUIRE(page_map::set(at(first), 6, entry, false));
  for (unsigned i = 0; i < 6; ++i) {
    CAPTURE(i);
    page_entry e = page_map::lookup(at(first + i * page + 123));   // any byte of the page
    CHECK(e.owner() == fake_slab(2));
    CHECK(e.size_class() == 17);
    CHECK(e.page_offset() == i);
  }
  CHECK(page_map::lookup(at(first - 1)).bits == 0);            // the page before
  CHECK(page_map::lookup(at(first + 6 * page)).bits == 0);     // the page after
  page_map::clear(at(first), 6);
  for (unsigned i = 0; i < 6; ++i) CHECK(page_map::lookup(at(first + i * page)).bits == 0);
}

TEST_CASE("a large run's entries are all the same (same_for_all), at the top of the address space") {
  const std::uintptr_t top = std::uintptr_t(1) << page_map::address_bits;
  const std::uintptr_t first = top - 4 * page;
  const page_entry entry = page_entry::make(fake_slab(3), 45, 0);
  REQUIRE(page_map::set(at(first), 4, entry, true));
  for (unsigned i = 0; i < 4; ++i) CHECK(page_map::lookup(at(first + i * page)).bits == entry.bits);
  CHECK(page_map::lookup(at(top)).bits == 0);
  page_map::clear(at(first), 4);
  CHECK(page_map::lookup(at(first)).bits == 0);
}

TEST_CASE("entries are independent: neighbours, other leaves, overwrites") {
  const std::uintptr_t a = 7 * leaf_span + 100 * page, b = 8 * leaf_span + 100 * page;
  REQUIRE(page_map::set_one(at(a), page_entry::make(fake_slab(4), 1, 0)));
  REQUIRE(page_map::set_one(at(b), page_entry::make(fake_slab(5), 2, 0)));
  CHECK(page_map::lookup(at(a)).owner() == fake_slab(4));
  CHECK(page_map::lookup(at(b)).owner() == fake_slab(5));
  CHECK(page_map::lookup(at(a + page)).bits == 0);
  CHECK(page_map::lookup(at(a - page)).bits == 0);
  REQUIRE(page_map::set_one(at(a), page_entry::make(fake_slab(6), 9, 0)));
  CHECK(page_map::lookup(at(a)).owner() == fake_slab(6));
  CHECK(page_map::lookup(at(a)).size_class() == 9);
  CHECK(page_map::lookup(at(b)).owner() == fake_slab(5));
  page_map::clear(at(a), 1);
  page_map::clear(at(b), 1);
}

// Leaves are installed by compare-exchange: two threads racing to install the
// same fresh leaves must both see their entries (the loser drops its reservation).
TEST_CASE("two threads filling the same fresh leaves lose no entry") {
  constexpr unsigned leaves = 64, pages_per_thread = 32;
  const std::uintptr_t base = 1000 * leaf_span;
  auto fill = [&](unsigned thread) {
    for (unsigned leaf = 0; leaf < leaves; ++leaf)
      for (unsigned i = 0; i < pages_per_thread; ++i) {
        std::uintptr_t a = base + leaf * leaf_span + (2 * i + thread) * page;
        page_map::set_one(at(a), page_entry::make(fake_slab(leaf * 100 + 2 * i + thread), 1 + thread, 0));
      }
  };
  std::thread first(fill, 0), second(fill, 1);
  first.join();
  second.join();
  unsigned wrong = 0;
  for (unsigned leaf = 0; leaf < leaves; ++leaf)
    for (unsigned j = 0; j < 2 * pages_per_thread; ++j) {
      page_entry e = page_map::lookup(at(base + leaf * leaf_span + j * page));
      if (e.owner() != fake_slab(leaf * 100 + j) || e.size_class() != 1 + j % 2) ++wrong;
    }
  CHECK(wrong == 0);
}
