// The hardened mode of the release library (PCMALLOC_CONF=hardened:true): the
// checks that cost something, for programs that would rather pay than run on
// after heap corruption. Off, it costs nothing: the mode is chosen at
// initialisation by keeping every thread's inline fast path on an empty cache
// (heap.cpp, thread_slot()), so that each call misses into the slow paths,
// which call here. On:
//
//   every block   [16-byte header][the caller's bytes][8-byte canary]
//                 header = the size, xor a per-block key (the process secret
//                 mixed with the address) and the offset of the caller's bytes
//                 in the block; then that offset in plain (the word where
//                 delete[] reads an array cookie). An underflow that reaches
//                 it, or a free of a pointer that is not a block, decodes to
//                 nonsense; the canary (another key) catches an overflow by 1
//                 byte or more. Both are checked on free, realloc and
//                 malloc_usable_size.
//   small blocks  zeroed on free (hardened_zero) and checked to be still zero
//                 when the ring lets them go (first 64 bytes), when handed
//                 out again (first 256 and last 64 bytes)
//                 and at exit (all of those still held back): a write after
//                 free is found, and a new owner never reads an old owner's
//                 data; freed blocks wait in a per-thread ring of
//                 hardened_delay (64) before any cache sees them, so a
//                 dangling pointer does not alias the next allocation of its
//                 size.
//   sized delete  the size must be the block's.
// Large and huge blocks get the header and canary; huge ones go back to the
// kernel on free, so a use after free faults.
#pragma once
#include <cstddef>

#include "cache.hpp"

namespace pcm::hardened {

void* allocate(std::size_t size, std::size_t alignment) noexcept;
// `size`: 0 for free(); else a sized deallocation, exact or an upper bound.
void deallocate(void* p, std::size_t size, bool exact) noexcept;
void* reallocate(void* p, std::size_t size) noexcept;
std::size_t usable_size(const void* p) noexcept;
bool owns(const void* p) noexcept;
// Give a thread's delayed blocks to its cache (thread exit, flush, purge).
void flush_delayed(cache_set& set) noexcept;

}  // namespace pcm::hardened
