#include "page_map.hpp"

namespace pcm {

std::atomic<page_entry*> page_map::top_[1u << (address_bits - leaf_bits)];

page_entry* page_map::leaf_for(std::uintptr_t a) noexcept {
  auto& slot = top_[a >> leaf_bits];
  page_entry* leaf = slot.load(std::memory_order_acquire);
  if (leaf) return leaf;
  auto* fresh = static_cast<page_entry*>(os::reserve_sparse(leaf_entries * sizeof(page_entry)));
  if (!fresh) return nullptr;
  if (!slot.compare_exchange_strong(leaf, fresh, std::memory_order_acq_rel)) {
    os::release_sparse(fresh, leaf_entries * sizeof(page_entry));  // another thread won
    return leaf;
  }
  return fresh;
}

bool page_map::set(const void* p, std::size_t pages, page_entry first, bool same_for_all) noexcept {
  auto a = reinterpret_cast<std::uintptr_t>(p);
  for (std::size_t i = 0; i < pages; ++i, a += os::page_size) {
    page_entry* leaf = leaf_for(a);
    if (!leaf) return false;
    page_entry e = first;
    // Small slabs: every page carries its distance to the slab's first page.
    if (!same_for_all) e.bits += std::uint64_t(i) << 56;
    __atomic_store_n(&leaf[(a >> os::page_shift) & (leaf_entries - 1)].bits, e.bits, __ATOMIC_RELAXED);
  }
  return true;
}

}  // namespace pcm
