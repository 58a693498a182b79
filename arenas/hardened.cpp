#include "hardened.hpp"

#include <cerrno>
#include <cstdint>
#include <cstring>

#include "free_object.hpp"
#include "heap.hpp"
#include "options.hpp"
#include "page_map.hpp"
#include "report.hpp"
#include "slab.hpp"

namespace pcm::hardened {
namespace {

constexpr std::size_t header_bytes = 16, canary_bytes = 8;
constexpr std::uint64_t freed_size = ~std::uint64_t(0);
// Large and huge blocks aligned to a page or more carry no header (the
// caller's bytes would start on a page the page map does not name); their
// descriptor says so instead.
constexpr std::size_t unhardened = std::size_t(1) << 63;

// Keys per block: the process secret mixed with the caller's address.
std::uint64_t key(const char* user, unsigned which) noexcept {
  std::uint64_t k = (free_marks::secret + which * 0x9e3779b97f4a7c15u) ^ reinterpret_cast<std::uintptr_t>(user);
  k *= 0xbf58476d1ce4e5b9u;
  return k ^ (k >> 31);
}
std::uint64_t load(const char* p) noexcept { std::uint64_t v; std::memcpy(&v, p, 8); return v; }
void store(char* p, std::uint64_t v) noexcept { std::memcpy(p, &v, 8); }

struct block_view {
  char* slot;            // the core's block
  std::size_t usable;    // its bytes
  std::size_t size;      // the caller's
  bool small;
  bool has_header;
};

// The block whose caller's bytes start at p, with its header and canary
// checked; anything else is reported, and the process stops.
block_view check(const char* operation, const void* p) noexcept {
  auto* user = static_cast<const char*>(p);
  page_entry e = page_map::lookup(p);
  unsigned cls = e.size_class();
  if (cls == 0)
    invalid_pointer(operation, p, "not allocated by pcmalloc (stack, global, foreign heap, or already freed large block)");
  block_view b{static_cast<char*>(block_start(p)), 0, 0, is_small_class(cls), true};
  if (!b.slot) invalid_pointer(operation, p, "points into a slab's unused tail");
  b.usable = b.small ? size_classes[cls].size : e.owner()->bytes;
  auto offset = std::size_t(user - b.slot);
  if (!b.small && offset == 0 && ((e.owner()->requested & unhardened) || e.owner()->sample)) {   // or the profiler's
    b.has_header = false;
    b.size = e.owner()->requested & ~unhardened;
    return b;
  }
  if (offset < header_bytes) {
    if (b.small && offset == 0 && free_marks::is_marked(b.slot)) free_marks::double_free(operation, p);
    invalid_pointer(operation, p, "not the start of a block (it points into a block's hardened header)");
  }
  std::uint64_t stored_offset = load(user - 8), size = load(user - 16) ^ key(user, 0) ^ (stored_offset << 48);
  if (size == freed_size && stored_offset == offset) free_marks::double_free(operation, p);
  if (stored_offset != offset) {
    if (b.small && free_marks::is_marked(b.slot)) free_marks::double_free(operation, p);
    fatal("%s(%p): heap corruption or invalid pointer: the 16 bytes before it are not a block header (a buffer "
          "underflow wrote over them, or the pointer is not the start of a block)", operation, p);
  }
  if (size > b.usable - offset - canary_bytes)
    fatal("%s(%p): heap corruption: the block's header was overwritten (a buffer underflow)", operation, p);
  if (load(user + size) != key(user, 2))
    fatal("%s(%p): heap corruption: the canary after the %zu-byte block was overwritten (a buffer overflow)",
          operation, p, static_cast<std::size_t>(size));
  b.size = size;
  return b;
}

// A free small block is zero past its first two words (the core's). Checked
// when it leaves the delay ring (its first 64 bytes), when it is handed out
// (its first 256 bytes, where a stale pointer's fields and links lie, and its
// last 64) and at exit (the whole of those still in the ring). (All of every
// block, and again when the ring let it go, cost a second and third pass over
// memory: larson ran 10x release's time, 3x without the zeroing.)
constexpr std::size_t checked_head = 256, checked_tail = 64;
void check_zero_range(const char* slot, std::size_t from, std::size_t to) noexcept {
  for (std::size_t i = from; i < to; i += 8)
    if (load(slot + i) != 0)
      fatal("heap corruption: the free block at %p was written after it was freed (a use after free, or an "
            "overflow from the block below it), at offset %zu", static_cast<const void*>(slot), i);
}
void check_zero(const char* slot, std::size_t usable, bool whole) noexcept {
  if (whole || usable <= checked_head + checked_tail) return check_zero_range(slot, header_bytes, usable);
  check_zero_range(slot, header_bytes, checked_head);
  check_zero_range(slot, usable - checked_tail, usable);
}

void release(void* slot) noexcept { detail::free_block(slot, page_map::lookup(slot)); }

}  // namespace

void* allocate(std::size_t size, std::size_t alignment) noexcept {
  const std::size_t offset = alignment > header_bytes ? alignment : header_bytes;
  std::size_t raw;
  if (__builtin_add_overflow(size, offset + canary_bytes, &raw)) { errno = ENOMEM; return nullptr; }
  const bool small_slot = raw <= small_max && alignment <= os::page_size;   // a slab's pages are all mapped
  if (offset >= os::page_size && !small_slot) {
    // The caller's bytes would start on a later page of a run or mapping,
    // which the page map does not name: no header, the descriptor says so.
    void* p = detail::allocate_block(size > small_max ? size : small_max + 1, alignment);
    if (p) page_map::lookup(p).owner()->requested = size | unhardened;
    return p;
  }
  auto* slot = static_cast<char*>(detail::allocate_block(raw, alignment));
  if (!slot) return nullptr;
  page_entry e = page_map::lookup(slot);
  if (is_small_class(e.size_class()) && config.hardened_zero) check_zero(slot, size_classes[e.size_class()].size, false);
  char* user = slot + offset;
  // The offset in plain: the word before a block is where operator delete[]
  // looks for an array's element count, and a mistaken delete[] of a scalar
  // should run 16 destructors, not 2^63. The size word binds it.
  store(user - 16, size ^ key(user, 0) ^ (std::uint64_t(offset) << 48));
  store(user - 8, offset);
  store(user + size, key(user, 2));
  return user;
}

void deallocate(void* p, std::size_t size, bool exact) noexcept {
  if (!p) return;
  block_view b = check(size ? "sized delete" : "free", p);
  if (size && (exact ? size != b.size : size > b.size))
    fatal("sized free or delete(%p, %zu): invalid size: the block holds %zu bytes (a delete through the wrong type?)",
          p, size, b.size);
  if (!b.has_header) return release(b.slot);
  auto* user = static_cast<char*>(p);
  store(user - 16, freed_size ^ key(user, 0) ^ (load(user - 8) << 48));
  if (!b.small) return release(b.slot);
  if (config.hardened_zero) {
    std::memset(b.slot + header_bytes, 0, b.usable - header_bytes);
    if (user - b.slot > std::ptrdiff_t(header_bytes)) store(user - 16, 0);   // an aligned block's header lies in the zeroed part
  }
  cache_set* set = detail::own_cache_set();
  if (!set || config.hardened_delay == 0) return release(b.slot);
  delay_ring& ring = set->delayed;
  const std::uint32_t slots = config.hardened_delay < delay_slots ? config.hardened_delay : delay_slots;
  void* oldest = ring.count == slots ? ring.blocks[ring.next] : nullptr;
  ring.blocks[ring.next] = b.slot;
  ring.next = ring.next + 1 == slots ? 0 : ring.next + 1;
  if (!oldest) { ++ring.count; return; }
  if (config.hardened_zero) {   // one line on the way out: where a stale pointer writes first
    std::size_t usable = size_classes[page_map::lookup(oldest).size_class()].size;
    check_zero_range(static_cast<char*>(oldest), header_bytes, usable < 80 ? usable : 80);
  }
  release(oldest);
}

namespace {
// At exit, the blocks still waiting in the exiting thread's ring are checked:
// a write after free shortly before the end is found too.
__attribute__((destructor)) void check_delayed_at_exit() {
  if (!config.hardened || !config.hardened_zero) return;
  if (cache_set* set = detail::own_cache_set()) {
    const delay_ring& ring = set->delayed;
    for (std::uint32_t i = 0; i < ring.count; ++i) {
      auto* slot = static_cast<char*>(ring.blocks[i]);
      check_zero(slot, size_classes[page_map::lookup(slot).size_class()].size, true);
    }
  }
}
}  // namespace

void* reallocate(void* p, std::size_t size) noexcept {
  block_view b = check("realloc", p);
  void* q = allocate(size, 16);
  if (!q) return nullptr;   // the old block stays valid
  std::memcpy(q, p, size < b.size ? size : b.size);
  deallocate(p, 0, false);
  return q;
}

std::size_t usable_size(const void* p) noexcept { return check("malloc_usable_size", p).size; }

bool owns(const void* p) noexcept {
  page_entry e = page_map::lookup(p);
  if (e.size_class() == 0) return false;
  auto* user = static_cast<const char*>(p);
  auto* slot = static_cast<const char*>(block_start(p));
  if (!slot) return false;
  if (!is_small_class(e.size_class()) && user == slot) return (e.owner()->requested & unhardened) || e.owner()->sample;
  if (user - slot < std::ptrdiff_t(header_bytes) || load(user - 8) != std::uint64_t(user - slot)) return false;
  std::uint64_t size = load(user - 16) ^ key(user, 0) ^ (std::uint64_t(user - slot) << 48);
  return size != freed_size && size <= std::uint64_t(-1) / 2;
}

void flush_delayed(cache_set& set) noexcept {
  delay_ring& ring = set.delayed;
  // The ring fills slots 0, 1, ... and then cycles, so its blocks are always
  // slots [0, count).
  std::uint32_t n = ring.count;
  ring.count = ring.next = 0;
  for (std::uint32_t i = 0; i < n; ++i) release(ring.blocks[i]);
}

}  // namespace pcm::hardened
