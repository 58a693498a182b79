// Which heap the front ends talk to, chosen at compile time: the core directly
// (libpcmalloc) or the debug heap on top of it (libpcmalloc-debug, built from
// the same sources with PCM_DEBUG=1). The release build carries none of the
// debug work; it tests one flag at run time, sampling's (heap profile or
// guarded samples: src/sampling.hpp).
#pragma once
#include <cerrno>
#include <cstddef>

#include "explicit_arena.hpp"
#include "heap.hpp"
#include "report/block_record.hpp"
#include "sampling.hpp"

#ifndef PCM_DEBUG
#define PCM_DEBUG 0
#endif

#if PCM_DEBUG
#include "debug/debug_heap.hpp"
#endif

namespace pcm {

// With sampling off each allocating entry costs one load and one
// well-predicted branch more; on, a jump to sampling's entry points, which
// count down and then allocate as here; frees cost nothing (profiled and
// guarded blocks reach the core's slow path on their own).
struct release_heap {
  static constexpr bool debug = false;
  [[gnu::always_inline]] static void* allocate(std::size_t n, request) noexcept {
    if (sampling::enabled) [[unlikely]] return sampling::allocate(n);
    return pcm::allocate(n);
  }
  [[gnu::always_inline]] static void* allocate_aligned(std::size_t a, std::size_t n, request) noexcept {
    if (sampling::enabled) [[unlikely]] return sampling::allocate_aligned(a, n);
    return pcm::allocate_aligned(a, n);
  }
  [[gnu::always_inline]] static void* allocate_zeroed(std::size_t c, std::size_t n) noexcept {
    if (sampling::enabled) [[unlikely]] return sampling::allocate_zeroed(c, n);
    return pcm::allocate_zeroed(c, n);
  }
  [[gnu::always_inline]] static void deallocate(void* p, request) noexcept { pcm::deallocate(p); }
  // operator delete's size is the one given to operator new (exact); the
  // malloc family's (free_sized, pmr) may be smaller than a block realloc kept.
  [[gnu::always_inline]] static void deallocate_sized(void* p, std::size_t n, request r, bool aligned = false) noexcept {
    pcm::deallocate_sized(p, n, r != request::malloc_family && !aligned);
  }
  [[gnu::always_inline]] static void* reallocate(void* p, std::size_t n) noexcept {
    if (sampling::enabled) [[unlikely]] return sampling::reallocate(p, n);
    return pcm::reallocate(p, n);
  }
  static std::size_t usable_size(const void* p) noexcept { return pcm::usable_size(p); }
  static bool owns(const void* p) noexcept { return pcm::owns(p); }
  // pcm::arena (src/arena_handle.cpp): the core's explicit arenas as they are.
  static void* arena_allocate(arena_core& a, std::size_t n, std::size_t alignment) noexcept {
    return explicit_arenas::allocate(a, n, alignment);
  }
  static void arena_deallocate(arena_core& a, void* p) noexcept { explicit_arenas::deallocate(a, p); }
  static bool arena_owns(const arena_core& a, const void* p) noexcept { return explicit_arenas::owns(a, p); }
  static void arena_reset(arena_core& a) noexcept { explicit_arenas::reset(&a); }
  static void arena_destroy(arena_core& a) noexcept { explicit_arenas::destroy(&a); }
};

#if PCM_DEBUG
struct debug_heap {
  static constexpr bool debug = true;
  static const char* operation(request r) noexcept {
    return r == request::malloc_family ? "free" : r == request::new_scalar ? "operator delete" : "operator delete[]";
  }
  static void* allocate(std::size_t n, request r) noexcept { return debug::allocate(n, 16, r, false); }
  static void* allocate_aligned(std::size_t a, std::size_t n, request r) noexcept {
    if (a == 0 || (a & (a - 1))) { errno = EINVAL; return nullptr; }
    return debug::allocate(n, a, r, false);
  }
  static void* allocate_zeroed(std::size_t c, std::size_t n) noexcept {
    std::size_t total;
    if (__builtin_mul_overflow(c, n, &total)) { errno = ENOMEM; return nullptr; }
    return debug::allocate(total, 16, request::malloc_family, true);
  }
  static void deallocate(void* p, request r) noexcept { debug::deallocate(p, r, 0, operation(r)); }
  static void deallocate_sized(void* p, std::size_t n, request r, bool = false) noexcept { debug::deallocate(p, r, n, operation(r)); }
  static void* reallocate(void* p, std::size_t n) noexcept { return debug::reallocate(p, n); }
  static std::size_t usable_size(const void* p) noexcept { return debug::usable_size(p); }
  static bool owns(const void* p) noexcept { return debug::owns(p); }
  // pcm::arena: debug blocks in the arena's memory; a reset frees every live
  // block through the debug heap (a use after it is a use after free), and
  // the arena's memory comes back to it through the quarantine.
  static void* arena_allocate(arena_core& a, std::size_t n, std::size_t alignment) noexcept {
    if (alignment == 0 || (alignment & (alignment - 1))) { errno = EINVAL; return nullptr; }
    return debug::allocate(n, alignment, request::malloc_family, false, &a);
  }
  static void arena_deallocate(arena_core& a, void* p) noexcept { debug::deallocate_in(a, p); }
  static bool arena_owns(const arena_core& a, const void* p) noexcept { return debug::arena_owns(a, p); }
  static void arena_reset(arena_core& a) noexcept { debug::free_arena_blocks(a); }
  static void arena_destroy(arena_core& a) noexcept {
    debug::free_arena_blocks(a);
    debug::release_quarantined(a);
    explicit_arenas::destroy(&a);
  }
};
using heap_policy = debug_heap;
#else
using heap_policy = release_heap;
#endif

}  // namespace pcm
