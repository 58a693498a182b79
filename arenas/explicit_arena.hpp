// Explicit arenas (jemalloc's arenas.create / arena.<i>.reset / destroy): an
// arena_core outside the round-robin table, with its own per-CPU caches when
// rseq runs, optionally over memory the caller supplies. Its small slabs carry
// page_entry::explicit_flag, so free() routes them here, never into the global
// caches (reset() must be able to forget every object at once).
// Synchronisation: allocate/deallocate from any thread; reset and destroy
// REQUIRE that no other thread uses the arena meanwhile.
#pragma once
#include <cstddef>
#include <cstdint>

#include "arena.hpp"
#include "heap.hpp"

namespace pcm::explicit_arenas {

struct counters {
  std::uint64_t slabs = 0, slab_bytes = 0, large_bytes = 0, huge_blocks = 0;
  std::uint64_t objects_out_of_slabs = 0, cached_objects = 0;
  std::uint64_t mapped_bytes = 0, dirty_bytes = 0;
};

// memory == nullptr: the arena maps chunks from the OS as it needs them.
// Otherwise it lives in [memory, memory + bytes) and never asks the OS for more.
arena_core* create(void* memory = nullptr, std::size_t bytes = 0) noexcept;
void destroy(arena_core* a) noexcept;
void reset(arena_core* a) noexcept;
void* allocate(arena_core& a, std::size_t size, std::size_t alignment) noexcept;
void deallocate(arena_core& a, void* p) noexcept;   // aborts if p is not a's
bool owns(const arena_core& a, const void* p) noexcept;
// The explicit arena whose memory holds the core block that starts at `block`
// (what allocate() returned); nullptr for a block of the global heap.
arena_core* owner_of(const void* block) noexcept;
counters read(arena_core& a) noexcept;

}  // namespace pcm::explicit_arenas
