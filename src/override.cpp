// The override shim: the standard malloc family and every C++ operator new and
// delete, forwarding to the core. Nothing else defines these symbols, and the
// core never does. Built into libpcmalloc.so (link or LD_PRELOAD) and .a.
#include <cerrno>
#include <cstddef>
#include <new>

#include "entry_points.hpp"

#define PCM_EXPORT extern "C" __attribute__((visibility("default")))
using namespace pcm::entry;

PCM_EXPORT void* malloc(std::size_t n) { return c_malloc(n); }
PCM_EXPORT void free(void* p) { c_free(p); }
PCM_EXPORT void cfree(void* p) { c_free(p); }
PCM_EXPORT void* calloc(std::size_t c, std::size_t n) { return c_calloc(c, n); }
PCM_EXPORT void* realloc(void* p, std::size_t n) { return c_realloc(p, n); }
PCM_EXPORT void* reallocarray(void* p, std::size_t c, std::size_t n) { return c_reallocarray(p, c, n); }
PCM_EXPORT void* aligned_alloc(std::size_t a, std::size_t n) { return c_aligned_alloc(a, n); }
PCM_EXPORT int posix_memalign(void** out, std::size_t a, std::size_t n) { return c_posix_memalign(out, a, n); }
PCM_EXPORT void* memalign(std::size_t a, std::size_t n) { return c_memalign(a, n); }
PCM_EXPORT void* valloc(std::size_t n) { return c_valloc(n); }
PCM_EXPORT void* pvalloc(std::size_t n) { return c_pvalloc(n); }
PCM_EXPORT std::size_t malloc_usable_size(void* p) { return c_usable_size(p); }
PCM_EXPORT void free_sized(void* p, std::size_t n) { c_free_sized(p, n); }
PCM_EXPORT void free_aligned_sized(void* p, std::size_t a, std::size_t n) { c_free_aligned_sized(p, a, n); }
// glibc's heap is not ours to trim; trimming ours is what a caller wants.
PCM_EXPORT int malloc_trim(std::size_t) { pcm::purge_all(); return 1; }

// ---- C++ operators. Policy: throwing forms loop on the new_handler, then throw.
namespace {
using pcm::request;
enum class on_failure { throw_bad_alloc, return_null };

template <on_failure policy>
[[gnu::noinline]] void* new_failed(std::size_t n, std::size_t alignment, request r) {
  while (true) {
    std::new_handler handler = std::get_new_handler();
    if (!handler) {
      if constexpr (policy == on_failure::throw_bad_alloc) throw std::bad_alloc();
      else return nullptr;
    }
    if constexpr (policy == on_failure::throw_bad_alloc) {
      handler();
    } else {
      try { handler(); } catch (...) { return nullptr; }
    }
    void* p = alignment ? heap::allocate_aligned(alignment, n, r) : heap::allocate(n, r);
    if (p) return p;
  }
}

template <on_failure policy, request r>
[[gnu::always_inline]] inline void* new_plain(std::size_t n) {
  void* p = heap::allocate(n, r);
  if (p) [[likely]] return p;
  return new_failed<policy>(n, 0, r);
}

template <on_failure policy, request r>
[[gnu::always_inline]] inline void* new_aligned(std::size_t n, std::align_val_t a) {
  void* p = heap::allocate_aligned(static_cast<std::size_t>(a), n, r);
  if (p) [[likely]] return p;
  return new_failed<policy>(n, static_cast<std::size_t>(a), r);
}
}  // namespace

#define PCM_NEW __attribute__((visibility("default")))
using nothrow_tag = const std::nothrow_t&;
constexpr auto throws = on_failure::throw_bad_alloc;
constexpr auto nulls = on_failure::return_null;
constexpr auto scalar = request::new_scalar;
constexpr auto array = request::new_array;

PCM_NEW void* operator new(std::size_t n) { return new_plain<throws, scalar>(n); }
PCM_NEW void* operator new[](std::size_t n) { return new_plain<throws, array>(n); }
PCM_NEW void* operator new(std::size_t n, nothrow_tag) noexcept { return new_plain<nulls, scalar>(n); }
PCM_NEW void* operator new[](std::size_t n, nothrow_tag) noexcept { return new_plain<nulls, array>(n); }
PCM_NEW void* operator new(std::size_t n, std::align_val_t a) { return new_aligned<throws, scalar>(n, a); }
PCM_NEW void* operator new[](std::size_t n, std::align_val_t a) { return new_aligned<throws, array>(n, a); }
PCM_NEW void* operator new(std::size_t n, std::align_val_t a, nothrow_tag) noexcept { return new_aligned<nulls, scalar>(n, a); }
PCM_NEW void* operator new[](std::size_t n, std::align_val_t a, nothrow_tag) noexcept { return new_aligned<nulls, array>(n, a); }

PCM_NEW void operator delete(void* p) noexcept { heap::deallocate(p, scalar); }
PCM_NEW void operator delete[](void* p) noexcept { heap::deallocate(p, array); }
PCM_NEW void operator delete(void* p, nothrow_tag) noexcept { heap::deallocate(p, scalar); }
PCM_NEW void operator delete[](void* p, nothrow_tag) noexcept { heap::deallocate(p, array); }
PCM_NEW void operator delete(void* p, std::size_t n) noexcept { heap::deallocate_sized(p, n, scalar); }
PCM_NEW void operator delete[](void* p, std::size_t n) noexcept { heap::deallocate_sized(p, n, array); }
PCM_NEW void operator delete(void* p, std::align_val_t) noexcept { heap::deallocate(p, scalar); }
PCM_NEW void operator delete[](void* p, std::align_val_t) noexcept { heap::deallocate(p, array); }
PCM_NEW void operator delete(void* p, std::align_val_t, nothrow_tag) noexcept { heap::deallocate(p, scalar); }
PCM_NEW void operator delete[](void* p, std::align_val_t, nothrow_tag) noexcept { heap::deallocate(p, array); }
PCM_NEW void operator delete(void* p, std::size_t n, std::align_val_t) noexcept { heap::deallocate_sized(p, n, scalar, true); }
PCM_NEW void operator delete[](void* p, std::size_t n, std::align_val_t) noexcept { heap::deallocate_sized(p, n, array, true); }
