#include "base.hpp"

#include <cstdint>

#include "platform/platform.hpp"

namespace pcm::base {
namespace {
constexpr std::size_t block_size = 1 << 20;
mutex base_lock;
std::uintptr_t cursor = 0, limit = 0;
std::size_t mapped = 0;
}  // namespace

void* allocate(std::size_t size) noexcept {
  size = (size + 63) & ~std::size_t(63);
  lock_guard guard(base_lock);
  if (cursor + size > limit) {
    std::size_t bytes = size > block_size ? os::round_to_pages(size) : block_size;
    void* block = os::map(bytes);
    if (!block) return nullptr;
    mapped += bytes;
    cursor = reinterpret_cast<std::uintptr_t>(block);
    limit = cursor + bytes;
  }
  void* result = reinterpret_cast<void*>(cursor);
  cursor += size;
  return result;  // fresh mapped memory is already zero
}

std::size_t mapped_bytes() noexcept {
  lock_guard guard(base_lock);
  return mapped;
}

void lock_for_fork() noexcept { base_lock.lock(); }
void unlock_after_fork(bool child) noexcept {
  if (child) base_lock.reset_after_fork(); else base_lock.unlock();
}

}  // namespace pcm::base
