// Size classes as data: a constexpr table built once at compile time, its
// invariants checked by static_assert. No state, no synchronisation.
//
// Small classes (slabs): 16-byte steps to 128 B, then four classes per doubling
// to 32 KiB. Large classes (page runs): four per doubling to 2 MiB. Above that,
// huge blocks are mapped directly, rounded to pages.
// Internal waste (class size - request) / class size: at most 15/16 of one
// 16-byte step up to 128 B; above, at most one quarter-doubling step, i.e.
// < 20% just past a power of two and about 10% on average (size_class_test
// prints every class with its worst case and slab tail waste).
#pragma once
#include <array>
#include <bit>
#include <cstddef>
#include <cstdint>

#include "platform/platform.hpp"

namespace pcm {

inline constexpr std::size_t small_max = 32 * 1024;
inline constexpr std::size_t large_max = 2 * 1024 * 1024;
inline constexpr unsigned small_class_count = 8 + 4 * 8;   // 16..128, then 4/doubling to 32 KiB
inline constexpr unsigned large_class_count = 4 * 6;       // 32 KiB (excl.) .. 2 MiB
inline constexpr unsigned class_count = small_class_count + large_class_count;
// Class 0 means "no class": a page-map entry of 0 is memory we do not own.
inline constexpr unsigned first_class = 1;

struct size_class_info {
  std::uint32_t size;          // object size in bytes
  std::uint32_t slab_pages;    // pages per slab (small) or per run (large)
  std::uint32_t objects;       // objects per slab (1 for large)
  std::uint32_t reciprocal;    // ceil(2^32 / size): offset / size without a divide
};

namespace detail {
constexpr std::uint32_t class_size(unsigned index) {   // index 0-based over all classes
  if (index < 8) return 16 * (index + 1);
  unsigned k = index - 8;                 // 0.. : groups of four per doubling above 128
  unsigned group = k / 4, step = k % 4;
  std::uint32_t base = 128u << group;     // 128, 256, ...
  return base + (base / 4) * (step + 1);
}

// Pick the slab length in pages: at least 16 KiB and 8 objects, and the first
// length whose tail waste is below 1/32 of the slab (or the least-waste length).
constexpr std::uint32_t choose_slab_pages(std::uint32_t size) {
  std::uint32_t best = 0;
  std::uint64_t best_waste_ratio_num = ~0ull, best_den = 1;
  for (std::uint32_t pages = 1; pages <= 64; ++pages) {
    std::uint64_t bytes = std::uint64_t(pages) * os::page_size;
    if (bytes < 16 * 1024 || bytes / size < 8) continue;
    std::uint64_t waste = bytes % size;
    if (waste * 32 <= bytes) return pages;
    if (waste * best_den < best_waste_ratio_num * bytes) { best = pages; best_waste_ratio_num = waste; best_den = bytes; }
  }
  return best;
}

constexpr std::array<size_class_info, class_count + 1> build_table() {
  std::array<size_class_info, class_count + 1> table{};
  for (unsigned i = 0; i < class_count; ++i) {
    std::uint32_t size = class_size(i);
    size_class_info& c = table[i + first_class];
    c.size = size;
    if (i < small_class_count) {
      c.slab_pages = choose_slab_pages(size);
      c.objects = c.slab_pages * std::uint32_t(os::page_size) / size;
    } else {
      c.slab_pages = size / std::uint32_t(os::page_size);
      c.objects = 1;
    }
    c.reciprocal = std::uint32_t(((1ull << 32) + size - 1) / size);
  }
  return table;
}

// size -> class for sizes up to 1024: one table load, indexed by 16-byte steps.
constexpr std::array<std::uint8_t, 1024 / 16 + 1> build_small_lookup() {
  std::array<std::uint8_t, 1024 / 16 + 1> lookup{};
  unsigned cls = first_class;
  for (unsigned slot = 0; slot < lookup.size(); ++slot) {
    std::uint32_t size = slot * 16;
    while (class_size(cls - first_class) < size) ++cls;
    lookup[slot] = std::uint8_t(cls);
  }
  return lookup;
}
}  // namespace detail

inline constexpr auto size_classes = detail::build_table();
inline constexpr auto small_lookup = detail::build_small_lookup();

// O(1), no loops: table lookup below 1 KiB, bit arithmetic above.
constexpr unsigned size_to_class(std::size_t size) {
  if (size <= 1024) return small_lookup[(size + 15) >> 4];
  // size in (2^g, 2^(g+1)]: four classes of width 2^(g-2).
  unsigned g = 63u - unsigned(std::countl_zero(std::uint64_t(size - 1)));   // floor(log2(size-1))
  unsigned step = unsigned((size - 1) >> (g - 2)) & 3u;                      // which quarter
  return first_class + 8 + (g - 7) * 4 + step;
}

constexpr std::size_t class_to_size(unsigned cls) { return size_classes[cls].size; }
constexpr bool is_small_class(unsigned cls) { return cls - first_class < small_class_count; }
inline constexpr unsigned large_first_class = first_class + small_class_count;

// Smallest small class >= size whose objects are all `alignment`-aligned
// (slabs start on pages, so: a class size that is a multiple of the alignment);
// 0 if none. For alignments up to a page and sizes up to small_max there is
// always one (the power-of-two classes).
constexpr unsigned aligned_small_class(std::size_t size, std::size_t alignment) {
  for (unsigned cls = size_to_class(size); is_small_class(cls); ++cls)
    if (size_classes[cls].size % alignment == 0) return cls;
  return 0;
}

// Invariants the rest of the allocator relies on.
static_assert(class_to_size(first_class) == 16);
static_assert(class_to_size(first_class + small_class_count - 1) == small_max);
static_assert(class_to_size(class_count) == large_max);
static_assert(size_to_class(0) == first_class && size_to_class(1) == first_class);
static_assert(size_to_class(small_max) == first_class + small_class_count - 1);
static_assert(size_to_class(large_max) == class_count);
static_assert(class_count < 255, "page-map entries keep the class in 8 bits");
constexpr bool table_is_consistent() {
  for (unsigned c = first_class; c <= class_count; ++c) {
    const auto& info = size_classes[c];
    if (info.size % 16 != 0) return false;                         // 16-byte alignment for all
    if (c > first_class && info.size <= size_classes[c - 1].size) return false;
    if (size_to_class(info.size) != c) return false;                // exact sizes map to themselves
    if (size_to_class(info.size + 1) != c + 1 && c != class_count) return false;
    if (info.slab_pages == 0 || info.slab_pages > 512) return false;
    if (is_small_class(c) && info.objects < 8) return false;
    if (!is_small_class(c) && info.size % os::page_size != 0) return false;
    // (size + 15)/16 steps: waste against the class never above 1/8 past 128 B.
    if (info.size > 128 && (info.size - size_classes[c - 1].size) * 8 > info.size * 2) return false;
  }
  return true;
}
static_assert(table_is_consistent());

}  // namespace pcm
