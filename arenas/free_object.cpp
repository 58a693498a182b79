#include "free_object.hpp"

#include "report.hpp"

namespace pcm::free_marks {

std::uintptr_t secret = 0;

void double_free(const char* operation, const void* p) noexcept {
  fatal("%s(%p): double free: the block is already free", operation, p);
}

void written_after_free(const char* operation, const void* p) noexcept {
  fatal("%s: heap corruption: the free block at %p was written after it was freed "
        "(a use after free, or an overflow from the block below it)", operation, p);
}

void corrupted_link(const void* object, std::uintptr_t link) noexcept {
  fatal("malloc: heap corruption: the free-list link in the free block at %p was overwritten "
        "(it decodes to %#lx, not a block of its slab: a use after free or an overflow)",
        object, static_cast<unsigned long>(link));
}

}  // namespace pcm::free_marks
