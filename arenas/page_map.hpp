// The page map: O(1) pointer -> owner lookup for every 4 KiB page we hand out,
// and the answer to "is this pointer ours at all".
// Two levels over the 47-bit user address space: a static top table of 8192
// leaves (one per 16 GiB), each leaf a sparse reservation of 2^22 eight-byte
// entries (32 MiB virtual, 8 bytes resident per 4 KiB page actually used).
// Synchronisation: entries are written by the owner of the page run (under its
// arena lock) before the pointer escapes and read without locks; leaves are
// installed once with a compare-exchange and never removed.
#pragma once
#include <atomic>
#include <cstdint>

#include "platform/platform.hpp"

namespace pcm {

struct slab;

// An entry packs the page's descriptor and what the free fast path needs:
//   bits  0..47  slab* (descriptor of the slab, large run or huge block)
//   bits 48..55  size class (0: not ours; small classes; large; huge_class;
//                guarded_class: a page of the guarded-sample region, whose
//                owner is null and whose blocks src/guard keeps),
//                with explicit_flag set on small slabs of explicit arenas (so
//                the fast free path, which accepts only plain small classes,
//                leaves them to the slow path and their own arena)
//   bits 56..63  pages from the slab's first page (small slabs only)
// Only a run's first page is entered for large and huge blocks, so an interior
// pointer into them reads as "not ours".
struct page_entry {
  std::uint64_t bits;

  static constexpr unsigned huge_class = 0x7f;
  static constexpr unsigned guarded_class = 0x7e;
  static constexpr unsigned explicit_flag = 0x80;
  static page_entry make(slab* s, unsigned cls, unsigned page_offset) noexcept {
    return {reinterpret_cast<std::uint64_t>(s) | (std::uint64_t(cls) << 48) |
            (std::uint64_t(page_offset) << 56)};
  }
  slab* owner() const noexcept { return reinterpret_cast<slab*>(bits & ((1ull << 48) - 1)); }
  unsigned size_class() const noexcept { return unsigned(bits >> 48) & 0xff; }
  unsigned page_offset() const noexcept { return unsigned(bits >> 56); }
};

class page_map {
 public:
  static constexpr unsigned address_bits = 47;
  static constexpr unsigned leaf_bits = 34;  // 16 GiB per leaf
  static constexpr std::uint64_t leaf_entries = 1ull << (leaf_bits - os::page_shift);

  // Fast path: two dependent loads, no locks.
  static page_entry lookup(const void* p) noexcept {
    auto a = reinterpret_cast<std::uintptr_t>(p);
    if (a >> address_bits) [[unlikely]] return {0};
    page_entry* leaf = top_[a >> leaf_bits].load(std::memory_order_acquire);
    if (!leaf) [[unlikely]] return {0};
    return {__atomic_load_n(&leaf[(a >> os::page_shift) & (leaf_entries - 1)].bits, __ATOMIC_RELAXED)};
  }

  // Set `pages` consecutive entries starting at p (which must be page aligned).
  // Returns false when a leaf could not be reserved.
  static bool set(const void* p, std::size_t pages, page_entry first_entry, bool same_for_all) noexcept;
  static bool set_one(const void* p, page_entry e) noexcept { return set(p, 1, e, true); }
  static void clear(const void* p, std::size_t pages) noexcept { set(p, pages, {0}, true); }

 private:
  static page_entry* leaf_for(std::uintptr_t a) noexcept;
  static std::atomic<page_entry*> top_[1u << (address_bits - leaf_bits)];
};

}  // namespace pcm
