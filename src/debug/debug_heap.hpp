// The debug heap: every block the program gets goes through here in the debug
// library. Blocks are the core's, with canaries around them (or, in guard
// mode, their own pages between inaccessible guard pages); freed blocks are
// poisoned and held in a quarantine; every block records the threads and stacks
// that allocated and freed it. Detections become reports (reporter.hpp).
// Synchronisation: the registry and the quarantine shards have their own locks.
#pragma once
#include <cstddef>
#include <cstdint>

#include "registry.hpp"

namespace pcm {
struct arena_core;
}

namespace pcm::debug {

// `from`: the explicit arena (pcm::arena) whose memory holds the block, or
// nullptr for the global heap. An arena's blocks are debug blocks like any
// other (canaries, record, stacks, quarantine) but never guarded: they must
// lie in the arena's memory.
void* allocate(std::size_t size, std::size_t alignment, request kind, bool zero,
               arena_core* from = nullptr) noexcept;
// sized: the size the caller claims (sized delete, free_sized), 0 when none.
void deallocate(void* p, request kind, std::size_t sized, const char* operation) noexcept;
void* reallocate(void* p, std::size_t size) noexcept;
std::size_t usable_size(const void* p) noexcept;
bool owns(const void* p) noexcept;

// ---- explicit arenas (src/arena_handle.cpp under the debug library)
// pcm::arena::deallocate: p must be a live block of `a` (reported otherwise).
void deallocate_in(arena_core& a, void* p) noexcept;
bool arena_owns(const arena_core& a, const void* p) noexcept;
// pcm::arena::reset: every live block of `a` is freed as free() frees it, with
// the reset as its free stack, so a use after the reset is reported as a use
// after free. The memory goes back to the arena as the blocks leave
// quarantine, or at once when the arena runs out of memory.
void free_arena_blocks(arena_core& a) noexcept;
// Before the arena's memory goes (destroy): its blocks in quarantine are
// checked for writes after free and released.
void release_quarantined(arena_core& a) noexcept;

// Checks at exit: quarantined blocks written after free, leaks; then the exit
// status when errors were reported.
void check_at_exit() noexcept;

}  // namespace pcm::debug
