// The size-class table as data (STYLE.md habit 3): every size from 0 to 2 MiB,
// every alignment up to a page, slab geometry, and the reciprocal that the free
// fast path divides with. Header-only: nothing is allocated.
#include <cstdint>
#include <cstdio>

#include <doctest/doctest.h>

#include "heap.hpp"
#include "size_class.hpp"

using namespace pcm;

namespace {

constexpr std::uint64_t slab_bytes(unsigned cls) { return std::uint64_t(size_classes[cls].slab_pages) * os::page_size; }
constexpr std::uint32_t previous_size(unsigned cls) { return cls == first_class ? 0 : size_classes[cls - 1].size; }

// Failures inside million-step sweeps: report the first few, count the rest.
struct failure_log {
  unsigned count = 0;
  template <class... Values>
  void add(const char* what, Values... values) {
    if (count++ < 8) {
      std::printf("  %s:", what);
      ((std::printf(" %llu", static_cast<unsigned long long>(values))), ...);
      std::printf("\n");
    }
  }
};

}  // namespace

TEST_CASE("every size from 0 to 2 MiB gets the smallest class that fits") {
  failure_log failures;
  for (std::size_t n = 0; n <= large_max; ++n) {
    unsigned cls = size_to_class(n);
    if (cls < first_class || cls > class_count) { failures.add("class out of range (size, class)", n, cls); continue; }
    if (class_to_size(cls) < n) failures.add("class too small (size, class size)", n, class_to_size(cls));
    if (cls > first_class && class_to_size(cls - 1) >= n) failures.add("a smaller class fits (size, previous class size)", n, class_to_size(cls - 1));
  }
  CHECK(failures.count == 0);
}

TEST_CASE("class sizes increase in multiples of 16; small and large split at 32 KiB") {
  for (unsigned cls = first_class; cls <= class_count; ++cls) {
    CAPTURE(cls);
    CHECK(size_classes[cls].size % 16 == 0);
    CHECK(size_classes[cls].size > previous_size(cls));
    CHECK(is_small_class(cls) == (size_classes[cls].size <= small_max));
    if (!is_small_class(cls)) {
      CHECK(size_classes[cls].objects == 1);
      CHECK(std::uint64_t(size_classes[cls].slab_pages) * os::page_size == size_classes[cls].size);
    }
  }
  CHECK(!is_small_class(0));
  CHECK(!is_small_class(class_count + 1));
  CHECK(!is_small_class(page_entry::huge_class));
}

TEST_CASE("slab geometry: objects fit, at least 8, page offsets fit the page map's 8 bits") {
  for (unsigned cls = first_class; is_small_class(cls); ++cls) {
    const size_class_info& c = size_classes[cls];
    CAPTURE(c.size);
    CHECK(c.objects >= 8);
    CHECK(slab_bytes(cls) >= 16 * 1024);
    CHECK(std::uint64_t(c.objects) * c.size <= slab_bytes(cls));
    CHECK(slab_bytes(cls) - std::uint64_t(c.objects) * c.size < c.size);   // no room for one more
    CHECK(c.slab_pages <= 255);   // page_entry::page_offset is 8 bits
  }
}

// The rule in choose_slab_pages, restated: tail waste at most 1/32 of the slab,
// or else the least waste any allowed length (16 KiB+, 8+ objects, <= 64 pages) gets.
TEST_CASE("slab length: tail waste <= 1/32 or the least possible") {
  for (unsigned cls = first_class; is_small_class(cls); ++cls) {
    const std::uint64_t size = size_classes[cls].size, bytes = slab_bytes(cls), waste = bytes % size;
    CAPTURE(size);
    if (waste * 32 <= bytes) continue;
    for (std::uint64_t pages = 1; pages <= 64; ++pages) {
      std::uint64_t other = pages * os::page_size;
      if (other < 16 * 1024 || other / size < 8) continue;
      CHECK(waste * other <= (other % size) * bytes);   // waste/bytes <= other waste/other
    }
  }
}

TEST_CASE("cache lines: classes of 64-byte multiples start on lines; classes dividing 64 never straddle one") {
  for (unsigned cls = first_class; is_small_class(cls); ++cls) {
    const size_class_info& c = size_classes[cls];
    const bool line_multiple = c.size % 64 == 0, divides_line = 64 % c.size == 0;
    if (!line_multiple && !divides_line) continue;
    CAPTURE(c.size);
    unsigned misaligned = 0, straddling = 0;
    for (std::uint64_t i = 0; i < c.objects; ++i) {
      std::uint64_t start = i * c.size, end = start + c.size - 1;   // offsets in a page-aligned slab
      if (line_multiple && start % 64 != 0) ++misaligned;
      if (divides_line && start / 64 != end / 64) ++straddling;
    }
    CHECK(misaligned == 0);
    CHECK(straddling == 0);
  }
}

TEST_CASE("waste per class: printed; worst internal waste < 20% above 128 B, 16-byte steps below") {
  std::printf("%5s %8s %5s %7s %10s %9s %12s\n", "class", "size", "pages", "objects", "tail bytes", "tail %", "worst waste%");
  double worst_above_128 = 0;
  for (unsigned cls = first_class; cls <= class_count; ++cls) {
    const size_class_info& c = size_classes[cls];
    const std::uint64_t tail = is_small_class(cls) ? slab_bytes(cls) - std::uint64_t(c.objects) * c.size : 0;
    // The worst request for this class is one byte more than the previous class.
    const double worst = double(c.size - (previous_size(cls) + 1)) / c.size;
    std::printf("%5u %8u %5u %7u %10llu %8.2f%% %11.3f%%\n", cls, c.size, c.slab_pages, c.objects,
                static_cast<unsigned long long>(tail), 100.0 * double(tail) / double(slab_bytes(cls)), 100.0 * worst);
    CAPTURE(c.size);
    if (c.size > 128) {
      CHECK(worst < 0.20);
      if (worst > worst_above_128) worst_above_128 = worst;
    } else {
      CHECK(c.size - previous_size(cls) == 16);
    }
  }
  std::printf("worst internal waste above 128 B: %.3f%%\n", 100.0 * worst_above_128);
}

TEST_CASE("reciprocal: offset is an object start exactly when the multiply-back matches") {
  for (unsigned cls = first_class; is_small_class(cls); ++cls) {
    const std::uint64_t size = size_classes[cls].size, reciprocal = size_classes[cls].reciprocal;
    CAPTURE(size);
    failure_log failures;
    for (std::uint64_t offset = 0; offset < slab_bytes(cls); ++offset) {
      std::uint64_t index = (offset * reciprocal) >> 32;
      if ((index * size == offset) != (offset % size == 0)) failures.add("start test wrong (size, offset)", size, offset);
      // block_start in heap.cpp corrects a rounded-up quotient by one step only.
      if (index != offset / size && index != offset / size + 1) failures.add("quotient off by more than one (size, offset)", size, offset);
    }
    CHECK(failures.count == 0);
  }
}

// detail::is_object_start itself, on synthesised addresses: it only does
// arithmetic on the pointer and the page-map entry, never touches memory.
TEST_CASE("detail::is_object_start over every byte of a slab at a synthetic address") {
  const std::uintptr_t slab_start = std::uintptr_t(0x7f1234500000);   // page aligned
  for (unsigned cls = first_class; is_small_class(cls); ++cls) {
    const std::uint64_t size = size_classes[cls].size;
    CAPTURE(size);
    failure_log failures;
    for (std::uint64_t offset = 0; offset < slab_bytes(cls); ++offset) {
      page_entry e = page_entry::make(nullptr, cls, unsigned(offset >> os::page_shift));
      bool start = detail::is_object_start(reinterpret_cast<void*>(slab_start + offset), e, cls);
      // An object starts at every multiple of the size below the last object;
      // the slab's unused tail holds none.
      bool expected = offset % size == 0 && offset / size < size_classes[cls].objects;
      if (start != expected) failures.add("is_object_start wrong (size, offset)", size, offset);
    }
    CHECK(failures.count == 0);
  }
}

// allocate_aligned relies on this table property: for every size <= 32 KiB and
// alignment <= a page there is a small class >= size that is a multiple of the
// alignment (slabs start on pages, so such a class's objects are all aligned).
TEST_CASE("every size up to 32 KiB and alignment 16..4096 has an aligned small class") {
  failure_log failures;
  for (std::size_t alignment = 16; alignment <= os::page_size; alignment *= 2) {
    for (std::size_t size = 0; size <= small_max; ++size) {
      unsigned expected = 0;   // the rule, independently: the first fitting class that is a multiple
      for (unsigned cls = first_class; is_small_class(cls); ++cls)
        if (size_classes[cls].size >= size && size_classes[cls].size % alignment == 0) { expected = cls; break; }
      if (expected == 0) { failures.add("no aligned class (size, alignment)", size, alignment); continue; }
      if (aligned_small_class(size, alignment) != expected)
        failures.add("aligned_small_class differs (size, alignment, got, expected)", size, alignment, aligned_small_class(size, alignment), expected);
    }
  }
  CHECK(failures.count == 0);
}
