// pcm::arena: the public face of the core's explicit arenas.
#include "pcmalloc/arena.hpp"

#include <new>

#include "explicit_arena.hpp"
#include "heap_policy.hpp"

namespace pcm {
namespace {
arena_core* core_of(void* p) { return static_cast<arena_core*>(p); }
}  // namespace

arena::arena() : core_(explicit_arenas::create()) {
  if (!core_) throw std::bad_alloc();
}

arena::arena(void* memory, std::size_t bytes) : core_(explicit_arenas::create(memory, bytes)) {
  if (!core_) throw std::bad_alloc();
}

arena::~arena() {
  if (core_) heap_policy::arena_destroy(*core_of(core_));
}

arena& arena::operator=(arena&& other) noexcept {
  if (this != &other) {
    if (core_) heap_policy::arena_destroy(*core_of(core_));
    core_ = other.core_;
    resets_ = other.resets_;
    other.core_ = nullptr;
  }
  return *this;
}

void* arena::allocate(std::size_t size, std::size_t alignment) noexcept {
  return heap_policy::arena_allocate(*core_of(core_), size, alignment);
}

void arena::deallocate(void* p) noexcept { heap_policy::arena_deallocate(*core_of(core_), p); }

void arena::reset() noexcept {
  heap_policy::arena_reset(*core_of(core_));
  ++resets_;
}

bool arena::owns(const void* p) const noexcept { return heap_policy::arena_owns(*core_of(core_), p); }

arena_statistics arena::statistics() const noexcept {
  explicit_arenas::counters c = explicit_arenas::read(*core_of(core_));
  arena_statistics s;
  s.slabs = c.slabs;
  s.slab_bytes = c.slab_bytes;
  s.large_bytes = c.large_bytes;
  s.huge_blocks = c.huge_blocks;
  s.small_objects = c.objects_out_of_slabs;
  s.cached_objects = c.cached_objects;
  s.mapped_bytes = c.mapped_bytes;
  s.dirty_bytes = c.dirty_bytes;
  s.resets = resets_;
  return s;
}

}  // namespace pcm
