// Allocators for containers that do not use std::pmr.
//
//   pcm::allocator<T>      standard allocator on pcmalloc's global heap (works
//                          whether or not malloc itself is overridden).
//   pcm::map_allocator<T>  holds a std::pmr::memory_resource* like
//                          std::pmr::polymorphic_allocator, but asks for
//                          64-byte alignment when it allocates an array (n > 1):
//                          hash-map bucket arrays start on a cache line, nodes
//                          (n == 1) are packed tight in their size class.
//   pcm::unordered_map<K, V> etc.: std containers with map_allocator.
#pragma once
#include <cstddef>
#include <functional>
#include <limits>
#include <memory_resource>
#include <new>
#include <unordered_map>
#include <unordered_set>

#include "pcmalloc.h"

namespace pcm {

template <class T>
struct allocator {
  using value_type = T;
  allocator() noexcept = default;
  template <class U>
  allocator(const allocator<U>&) noexcept {}

  T* allocate(std::size_t n) {
    if (n > std::numeric_limits<std::size_t>::max() / sizeof(T)) throw std::bad_array_new_length();
    void* p = alignof(T) <= 16 ? pcm_malloc(n * sizeof(T)) : pcm_aligned_alloc(alignof(T), n * sizeof(T));
    if (!p) throw std::bad_alloc();
    return static_cast<T*>(p);
  }
  void deallocate(T* p, std::size_t n) noexcept { pcm_free_sized(p, n * sizeof(T)); }

  template <class U>
  bool operator==(const allocator<U>&) const noexcept { return true; }
};

inline constexpr std::size_t cache_line = 64;

template <class T>
class map_allocator {
 public:
  using value_type = T;
  map_allocator() noexcept : resource_(std::pmr::get_default_resource()) {}
  map_allocator(std::pmr::memory_resource* r) noexcept : resource_(r) {}   // implicit, as polymorphic_allocator
  template <class U>
  map_allocator(const map_allocator<U>& other) noexcept : resource_(other.resource()) {}

  T* allocate(std::size_t n) {
    if (n > std::numeric_limits<std::size_t>::max() / sizeof(T)) throw std::bad_array_new_length();
    std::size_t alignment = n > 1 && alignof(T) < cache_line ? cache_line : alignof(T);
    return static_cast<T*>(resource_->allocate(n * sizeof(T), alignment));
  }
  void deallocate(T* p, std::size_t n) noexcept {
    std::size_t alignment = n > 1 && alignof(T) < cache_line ? cache_line : alignof(T);
    resource_->deallocate(p, n * sizeof(T), alignment);
  }
  std::pmr::memory_resource* resource() const noexcept { return resource_; }
  // Containers copied with select_on_container_copy_construction get the default
  // resource, as with polymorphic_allocator.
  map_allocator select_on_container_copy_construction() const noexcept { return map_allocator(); }

  template <class U>
  bool operator==(const map_allocator<U>& other) const noexcept {
    return resource_ == other.resource() || resource_->is_equal(*other.resource());
  }

 private:
  std::pmr::memory_resource* resource_;
};

template <class K, class V, class Hash = std::hash<K>, class Eq = std::equal_to<K>>
using unordered_map = std::unordered_map<K, V, Hash, Eq, map_allocator<std::pair<const K, V>>>;
template <class K, class Hash = std::hash<K>, class Eq = std::equal_to<K>>
using unordered_set = std::unordered_set<K, Hash, Eq, map_allocator<K>>;

}  // namespace pcm
