// A free small object, and the mark that makes heap misuse visible without any
// metadata next to user data (release hardening, always on).
//
// Every small object is at least 16 bytes. While it is free its second word
// holds its mark, secret ^ address, and on its slab's free list its first word
// holds the link to the next free object, encoded the same way (next ^ mark).
// Every hand-out to a caller erases the mark. Hence two checks:
//   free:      the object already holds its mark -> double free. A live object
//              never holds it: only a program that read its own freed memory
//              could know the (per-process random) secret.
//   slab pop:  a decoded link outside the slab or off an object start -> a
//              corrupted free list, which is never followed (so a heap overflow
//              or a use after free cannot steer the allocator into handing out
//              an address of its choice). Objects in caches and transfer
//              stacks have no link to corrupt: those hold their pointers out
//              of band.
// A drain onto a slab also finds a mark that was overwritten while the object
// sat in a cache (a write after free). Cost on the fast paths: free reads and
// writes one word of the object (the line the caller just used, as a rule),
// malloc clears it; 4 and 1 instructions. The hardened mode (hardened.hpp)
// checks every hand-out as well.
#pragma once
#include <cstdint>

#include "size_class.hpp"

namespace pcm {

namespace free_marks {

// Set once at initialisation, before the first object is carved.
extern std::uintptr_t secret __attribute__((visibility("hidden")));

using word = std::uintptr_t __attribute__((may_alias));

[[gnu::always_inline]] inline std::uintptr_t mark_of(const void* p) noexcept {
  return secret ^ reinterpret_cast<std::uintptr_t>(p);
}
[[gnu::always_inline]] inline bool is_marked(const void* p) noexcept {
  return static_cast<const word*>(p)[1] == mark_of(p);
}
// A free object entering a cache, a transfer stack or a fresh slab's tail.
[[gnu::always_inline]] inline void mark(void* p) noexcept { static_cast<word*>(p)[1] = mark_of(p); }

// Reports and aborts (free_object.cpp): one line naming the operation, the
// pointer and what was wrong.
[[noreturn, gnu::cold]] void double_free(const char* operation, const void* p) noexcept;
[[noreturn, gnu::cold]] void written_after_free(const char* operation, const void* p) noexcept;
[[noreturn, gnu::cold]] void corrupted_link(const void* object, std::uintptr_t link) noexcept;

// The object leaves the allocator: a live object never holds its mark.
[[gnu::always_inline]] inline void* hand_out(void* p) noexcept {
  static_cast<word*>(p)[1] = 0;
  return p;
}
// The object comes back from a caller: refuse a second free, then mark it.
// (The mark is computed once: a store through `word` may alias the secret.)
[[gnu::always_inline]] inline void take_back(void* p, const char* operation) noexcept {
  auto* w = static_cast<word*>(p);
  std::uintptr_t m = mark_of(p);
  if (w[1] == m) [[unlikely]] double_free(operation, p);
  w[1] = m;
}

}  // namespace free_marks

// The view of a free object on its slab's free list.
struct free_object {
  // Link `self` in front of `next` (nullptr ends the list); word 1 keeps the mark.
  static void link(void* self, void* next) noexcept {
    static_cast<free_marks::word*>(self)[0] = reinterpret_cast<std::uintptr_t>(next) ^ free_marks::mark_of(self);
  }
  // The next object after `self`, checked to be an object start of the slab
  // [start, start + objects * size of class cls); clears self's word 0.
  static void* unlink(void* self, std::uintptr_t start, unsigned cls) noexcept {
    std::uintptr_t next = static_cast<free_marks::word*>(self)[0] ^ free_marks::mark_of(self);
    static_cast<free_marks::word*>(self)[0] = 0;
    if (next == 0) return nullptr;
    const size_class_info& info = size_classes[cls];
    std::uint64_t offset = next - start;   // wraps to huge below start
    std::uint64_t index = (offset * info.reciprocal) >> 32;
    if (offset >= std::uint64_t(info.objects) * info.size || index * info.size != offset) [[unlikely]]
      free_marks::corrupted_link(self, next);
    return reinterpret_cast<void*>(next);
  }
};

}  // namespace pcm
