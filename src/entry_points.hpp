// The malloc family's bodies, written once and inlined into both the prefixed C
// API (c_api.cpp) and the override shim (override.cpp). Boundary policy lives
// here: errno values, alignment rules of each standard function.
#pragma once
#include <bit>
#include <cerrno>
#include <cstddef>

#include "heap_policy.hpp"

namespace pcm::entry {

#define PCM_INLINE [[gnu::always_inline]] inline
using heap = heap_policy;
constexpr auto c_request = request::malloc_family;

PCM_INLINE void* c_malloc(std::size_t n) noexcept { return heap::allocate(n, c_request); }
PCM_INLINE void c_free(void* p) noexcept { heap::deallocate(p, c_request); }
PCM_INLINE void* c_calloc(std::size_t c, std::size_t n) noexcept { return heap::allocate_zeroed(c, n); }
PCM_INLINE void* c_realloc(void* p, std::size_t n) noexcept { return heap::reallocate(p, n); }
PCM_INLINE void* c_reallocarray(void* p, std::size_t c, std::size_t n) noexcept {
  std::size_t total;
  if (__builtin_mul_overflow(c, n, &total)) { errno = ENOMEM; return nullptr; }
  return heap::reallocate(p, total);
}
PCM_INLINE void* c_aligned_alloc(std::size_t a, std::size_t n) noexcept { return heap::allocate_aligned(a, n, c_request); }
PCM_INLINE int c_posix_memalign(void** out, std::size_t a, std::size_t n) noexcept {
  if (a < sizeof(void*) || (a & (a - 1))) return EINVAL;   // POSIX: power of two multiple of sizeof(void*)
  int saved = errno;
  void* p = heap::allocate_aligned(a, n, c_request);
  if (!p) { int e = errno; errno = saved; return e; }   // posix_memalign reports, never sets, errno
  *out = p;
  return 0;
}
// memalign keeps glibc's contract, which programs written against it rely on:
// an alignment that is no power of two is rounded up to the next one, 0 means
// malloc's own; only one past the largest power of two is EINVAL.
// (aligned_alloc and posix_memalign refuse such alignments, as C and POSIX say.)
PCM_INLINE void* c_memalign(std::size_t a, std::size_t n) noexcept {
  constexpr std::size_t largest = ~(~std::size_t(0) >> 1);
  if (a > largest) { errno = EINVAL; return nullptr; }
  return heap::allocate_aligned(a ? std::bit_ceil(a) : 16, n, c_request);
}
PCM_INLINE void* c_valloc(std::size_t n) noexcept { return heap::allocate_aligned(os::page_size, n, c_request); }
PCM_INLINE void* c_pvalloc(std::size_t n) noexcept {
  std::size_t rounded = os::round_to_pages(n);
  if (rounded < n) { errno = ENOMEM; return nullptr; }
  return heap::allocate_aligned(os::page_size, rounded ? rounded : os::page_size, c_request);
}
PCM_INLINE std::size_t c_usable_size(const void* p) noexcept { return heap::usable_size(p); }
PCM_INLINE void c_free_sized(void* p, std::size_t n) noexcept { heap::deallocate_sized(p, n, c_request); }
PCM_INLINE void c_free_aligned_sized(void* p, std::size_t, std::size_t n) noexcept { heap::deallocate_sized(p, n, c_request); }
PCM_INLINE bool c_owns(const void* p) noexcept { return heap::owns(p); }

#undef PCM_INLINE

}  // namespace pcm::entry
