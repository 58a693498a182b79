// A slab: a run of pages holding objects of one small size class, or (with
// objects == 1) a large run or a huge mapping. The descriptor lives in base
// metadata, out of band; only free objects carry a link and a mark in their
// first two words (free_object.hpp).
// Synchronisation: a small slab belongs to one arena bin and is touched only
// under that bin's lock; large/huge descriptors under their arena's page lock.
#pragma once
#include <cstddef>
#include <cstdint>

namespace pcm {

struct arena_core;
struct chunk;

struct slab {
  std::uintptr_t start = 0;       // first byte of the first page
  std::size_t bytes = 0;          // pages * page size (huge: mapped bytes)
  void* free_list = nullptr;       // free_object::link'ed, newest first
  std::uint32_t bump = 0;         // objects below this index were handed out once
  std::uint32_t used = 0;         // objects out of the slab (in caches or in use)
  std::uint32_t capacity = 0;     // objects per slab
  std::uint16_t size_class = 0;
  bool in_partial_list = false;
  slab* prev = nullptr;           // bin's partial list (small), free list of descriptors
  slab* next = nullptr;
  arena_core* owner = nullptr;
  chunk* home = nullptr;          // the chunk whose pages this slab uses (small/large)
  std::uint32_t first_page = 0;   // index of the first page within its chunk
  std::uint32_t pages = 0;
  std::uint32_t sample = 0;       // large/huge: the heap profiler's record + 1 (0: not sampled)
  std::size_t requested = 0;      // large, huge: bytes the caller asked for (stats; bit 63: hardened.cpp's "no header")

  bool full() const noexcept { return free_list == nullptr && bump == capacity; }
  bool empty() const noexcept { return used == 0; }
};

// Intrusive doubly linked list of slabs (a bin's partial slabs).
class slab_list {
 public:
  bool empty() const noexcept { return head_ == nullptr; }
  slab* front() const noexcept { return head_; }
  void push_front(slab* s) noexcept {
    s->prev = nullptr;
    s->next = head_;
    if (head_) head_->prev = s;
    head_ = s;
  }
  void remove(slab* s) noexcept {
    if (s->prev) s->prev->next = s->next; else head_ = s->next;
    if (s->next) s->next->prev = s->prev;
    s->prev = s->next = nullptr;
  }
  void reset() noexcept { head_ = nullptr; }
 private:
  slab* head_ = nullptr;
};

}  // namespace pcm
