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

namespace pcm::debug {

void* allocate(std::size_t size, std::size_t alignment, alloc_kind kind, bool zero) noexcept;
// sized: the size the caller claims (sized delete, free_sized), 0 when none.
void deallocate(void* p, alloc_kind kind, std::size_t sized, const char* operation) noexcept;
void* reallocate(void* p, std::size_t size) noexcept;
std::size_t usable_size(const void* p) noexcept;
bool owns(const void* p) noexcept;

// Checks at exit: quarantined blocks written after free, leaks; then the exit
// status when errors were reported.
void check_at_exit() noexcept;

}  // namespace pcm::debug
