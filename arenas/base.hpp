// Metadata memory ("base"): descriptors for slabs, chunks and caches live here,
// out of band, never in front of a user object. Bump allocation from mapped
// blocks, never returned to the OS; typed free lists recycle descriptors.
// Synchronisation: one mutex; metadata allocation is rare (slab-level events).
#pragma once
#include <cstddef>
#include <new>

#include "lock.hpp"

namespace pcm::base {

// Zeroed, 64-byte aligned (descriptors never share a cache line by accident).
// Returns nullptr when the OS refuses memory.
void* allocate(std::size_t size) noexcept;
std::size_t mapped_bytes() noexcept;
void lock_for_fork() noexcept;
void unlock_after_fork(bool child) noexcept;

// A recycling list of fixed-type descriptors.
template <class T>
class pool {
 public:
  T* acquire() noexcept {
    {
      lock_guard guard(lock_);
      if (free_) {
        node* n = free_;
        free_ = n->next;
        return new (n) T{};
      }
    }
    void* raw = allocate(sizeof(T) < sizeof(node) ? sizeof(node) : sizeof(T));
    if (!raw) return nullptr;
    return new (raw) T{};
  }
  void release(T* item) noexcept {
    item->~T();
    node* n = reinterpret_cast<node*>(item);
    lock_guard guard(lock_);
    n->next = free_;
    free_ = n;
  }
  mutex& lock() noexcept { return lock_; }

 private:
  struct node { node* next; };
  mutex lock_;
  node* free_ = nullptr;
};

}  // namespace pcm::base
