// std::pmr resources on the core: arena_resource (global heap or pcm::arena),
// local_resource (single-threaded free lists over blocks), scoped_resource
// (bump allocation, released at once, blocks recycled).
#include "pcmalloc/pmr.hpp"

#include <new>

#include "heap_policy.hpp"
#include "size_class.hpp"

namespace pcm {

// ---- single_user_check ------------------------------------------------------

bool single_user_check::enter(const void* object, std::size_t size, const single_user_texts& texts) noexcept {
  int me = pcm_debug_thread(), seen = 0;
  if (user_.compare_exchange_strong(seen, me, std::memory_order_acquire)) return true;
  if (seen != me) report(seen, object, size, texts);
  return false;
}

void single_user_check::look(const void* object, std::size_t size, const single_user_texts& texts) const noexcept {
  int seen = user_.load(std::memory_order_acquire);
  if (seen != 0 && seen != pcm_debug_thread()) report(seen, object, size, texts);
}

void single_user_check::park(unsigned returned_at) noexcept {
  parked_at_ = returned_at;
  user_.store(-1, std::memory_order_release);
}

void single_user_check::report(int seen, const void* object, std::size_t size,
                               const single_user_texts& texts) const noexcept {
  if (seen == -1) pcm_debug_report(PCM_DEBUG_USE_AFTER_RETURN, object, size, parked_at_, 0, texts.used_after_return);
  else pcm_debug_report(PCM_DEBUG_CROSS_THREAD_USE, object, size, 0, seen, texts.used_by_two_threads);
}

}  // namespace pcm

namespace pcm::pmr {
namespace {

std::size_t align_up(std::size_t n, std::size_t alignment) { return (n + alignment - 1) & ~(alignment - 1); }
char* align_up(char* p, std::size_t alignment) {
  return reinterpret_cast<char*>(align_up(reinterpret_cast<std::uintptr_t>(p), alignment));
}

}  // namespace

// ---- arena_resource ---------------------------------------------------------

void* arena_resource::do_allocate(std::size_t bytes, std::size_t alignment) {
  void* p;
  if (arena_) p = arena_->allocate(bytes, alignment);
  else if (alignment <= 16) p = heap_policy::allocate(bytes, request::malloc_family);
  else p = heap_policy::allocate_aligned(alignment, bytes, request::malloc_family);
  if (!p) [[unlikely]] throw std::bad_alloc();
  return p;
}

void arena_resource::do_deallocate(void* p, std::size_t bytes, std::size_t) {
  if (arena_) arena_->deallocate(p);
  else heap_policy::deallocate_sized(p, bytes, request::malloc_family);
}

bool arena_resource::do_is_equal(const std::pmr::memory_resource& other) const noexcept {
  auto* o = dynamic_cast<const arena_resource*>(&other);
  return o && o->arena_ == arena_;
}

std::pmr::memory_resource* global_resource() noexcept {
  static arena_resource global;
  return &global;
}

std::pmr::memory_resource* make_default() noexcept { return std::pmr::set_default_resource(global_resource()); }

// ---- local_resource ---------------------------------------------------------

// Debug library: marks the resource as used by this thread for the length of
// one call, and reports a parked resource or a second thread inside.
constexpr single_user_texts local_resource_texts{
    "a container was used after it went back to its pool (its local_resource is parked)",
    "a pcm::pmr::local_resource was used by two threads at once"};

struct exclusive_use : single_user_scope {
  explicit exclusive_use(local_resource& r)
      : single_user_scope(heap_policy::debug, r.user_check_, &r, sizeof r, local_resource_texts) {}
};

void local_resource::debug_park(unsigned returned_at) noexcept {
  if constexpr (heap_policy::debug) user_check_.park(returned_at);
}
void local_resource::debug_unpark() noexcept {
  if constexpr (heap_policy::debug) user_check_.unpark();
}

static_assert(class_to_size(first_class + 19) == local_resource::largest_local, "class_count covers 1 KiB");

void* local_resource::carve(std::size_t size, std::size_t alignment) {
  char* p = align_up(cursor_, alignment);
  if (!cursor_ || p + size > limit_) [[unlikely]] {
    // Blocks are cache-line aligned; a 16-byte header links them.
    // Big enough for this object whatever the block schedule says.
    std::size_t fits = align_up(sizeof(block) + alignment + size, cache_line);
    std::size_t bytes = next_block_ > fits ? next_block_ : fits;
    auto* b = static_cast<block*>(upstream_->allocate(bytes, cache_line));
    if (next_block_ < largest_block) next_block_ *= 2;
    b->next = blocks_;
    b->bytes = bytes;
    blocks_ = b;
    stats_.bytes_held += bytes;
    cursor_ = reinterpret_cast<char*>(b + 1);
    limit_ = reinterpret_cast<char*>(b) + bytes;
    p = align_up(cursor_, alignment);
  }
  cursor_ = p + size;
  return p;
}

void* local_resource::do_allocate(std::size_t bytes, std::size_t alignment) {
  [[maybe_unused]] exclusive_use use(*this);
  if (bytes <= fine_limit && alignment <= 8) [[likely]] {
    // Word-granular classes: a 24-byte hash node takes 24 bytes, not 32.
    unsigned cls = fine_class(bytes);
    std::size_t size = fine_size(cls);
    void* p;
    if (free_node* n = fine_[cls]) {
      fine_[cls] = n->next;
      stats_.reused++;
      p = n;
    } else {
      p = carve(size, 8);   // may throw (upstream): nothing counted then
    }
    stats_.allocations++;
    stats_.bytes_live += size;
    return p;
  }
  if (bytes <= largest_local && alignment <= cache_line) [[likely]] {
    unsigned cls = alignment <= 16 ? size_to_class(bytes) : aligned_small_class(bytes, alignment);
    std::size_t size = class_to_size(cls);
    void* p;
    if (free_node* n = free_[cls]) {
      free_[cls] = n->next;
      stats_.reused++;
      p = n;
    } else {
      // Objects are carved at their class size; alignment is the request's (or
      // the largest power of two dividing the class, up to a cache line), so an
      // aligned request is honoured and freed objects fit every later request of
      // the same class.
      std::size_t natural = size & (~size + 1);
      p = carve(size, natural > cache_line ? cache_line : (natural < alignment ? alignment : natural));
    }
    stats_.allocations++;
    stats_.bytes_live += size;
    return p;
  }
  std::size_t header = align_up(sizeof(large), alignment < 16 ? 16 : alignment);
  std::size_t total;
  if (__builtin_add_overflow(header, bytes, &total)) throw std::bad_alloc();   // no upstream can give that
  auto* l = static_cast<large*>(upstream_->allocate(total, alignment < 16 ? 16 : alignment));
  l->bytes = header + bytes;
  l->alignment = alignment < 16 ? 16 : alignment;
  l->prev = nullptr;
  l->next = large_;
  if (large_) large_->prev = l;
  large_ = l;
  stats_.upstream_allocations++;
  stats_.bytes_live += bytes;
  stats_.bytes_held += l->bytes;
  return reinterpret_cast<char*>(l) + header;
}

void local_resource::do_deallocate(void* p, std::size_t bytes, std::size_t alignment) {
  [[maybe_unused]] exclusive_use use(*this);
  if (bytes <= fine_limit && alignment <= 8) [[likely]] {
    unsigned cls = fine_class(bytes);
    auto* n = static_cast<free_node*>(p);
    n->next = fine_[cls];
    fine_[cls] = n;
    stats_.bytes_live -= fine_size(cls);
    return;
  }
  if (bytes <= largest_local && alignment <= cache_line) [[likely]] {
    unsigned cls = alignment <= 16 ? size_to_class(bytes) : aligned_small_class(bytes, alignment);
    auto* n = static_cast<free_node*>(p);
    n->next = free_[cls];
    free_[cls] = n;
    stats_.bytes_live -= class_to_size(cls);
    return;
  }
  std::size_t header = align_up(sizeof(large), alignment < 16 ? 16 : alignment);
  auto* l = reinterpret_cast<large*>(static_cast<char*>(p) - header);
  if (l->prev) l->prev->next = l->next; else large_ = l->next;
  if (l->next) l->next->prev = l->prev;
  stats_.bytes_live -= bytes;
  stats_.bytes_held -= l->bytes;
  upstream_->deallocate(l, l->bytes, l->alignment);
}

void local_resource::recycle() noexcept {
  for (auto& head : free_) head = nullptr;
  for (auto& head : fine_) head = nullptr;
  while (large* l = large_) {
    large_ = l->next;
    stats_.bytes_held -= l->bytes;
    upstream_->deallocate(l, l->bytes, l->alignment);
  }
  // Keep the newest block to carve from; return the others.
  if (blocks_) {
    while (block* older = blocks_->next) {
      blocks_->next = older->next;
      stats_.bytes_held -= older->bytes;
      upstream_->deallocate(older, older->bytes, cache_line);
    }
    cursor_ = reinterpret_cast<char*>(blocks_ + 1);
    limit_ = reinterpret_cast<char*>(blocks_) + blocks_->bytes;
  }
  stats_.bytes_live = 0;
}

void local_resource::release() noexcept {
  recycle();
  if (blocks_) {
    stats_.bytes_held -= blocks_->bytes;
    upstream_->deallocate(blocks_, blocks_->bytes, cache_line);
    blocks_ = nullptr;
  }
  cursor_ = limit_ = nullptr;
}

// ---- scoped_resource --------------------------------------------------------

void* scoped_resource::grow(std::size_t bytes, std::size_t alignment) {
  std::size_t needed;
  if (__builtin_add_overflow(align_up(sizeof(block), alignment), bytes, &needed) || needed > SIZE_MAX - 4096)
    throw std::bad_alloc();   // no upstream can give that
  block* b = nullptr;
  // A kept block that is big enough, else a new one (growing geometrically).
  for (block** link = &spare_; *link; link = &(*link)->next) {
    if ((*link)->bytes >= needed) { b = *link; *link = b->next; break; }
  }
  if (!b) {
    std::size_t size = next_block_ > needed ? next_block_ : align_up(needed, 4096);
    b = static_cast<block*>(upstream_->allocate(size, cache_line));
    b->bytes = size;
    held_ += size;
    if (next_block_ < (std::size_t(1) << 20)) next_block_ *= 2;
  }
  b->next = used_;
  used_ = b;
  cursor_ = reinterpret_cast<char*>(b) + sizeof(block);
  limit_ = reinterpret_cast<char*>(b) + b->bytes;
  char* p = align_up(cursor_, alignment);
  cursor_ = p + bytes;
  return p;
}

void* scoped_resource::do_allocate(std::size_t bytes, std::size_t alignment) {
  char* p = align_up(cursor_, alignment);
  // Compared as sizes: p + bytes could wrap around for an impossible request.
  if (cursor_ && p <= limit_ && bytes <= std::size_t(limit_ - p)) [[likely]] {
    cursor_ = p + bytes;
    return p;
  }
  return grow(bytes, alignment);
}

void scoped_resource::release() noexcept {
  // Blocks kept from earlier rounds count first against retain_bytes (it may
  // have been lowered since), then this round's.
  std::size_t kept = 0;
  for (block** link = &spare_; *link;) {
    block* b = *link;
    if (kept + b->bytes <= retain_bytes) {
      kept += b->bytes;
      link = &b->next;
    } else {
      *link = b->next;
      held_ -= b->bytes;
      upstream_->deallocate(b, b->bytes, cache_line);
    }
  }
  while (block* b = used_) {
    used_ = b->next;
    if (kept + b->bytes <= retain_bytes) {
      b->next = spare_;
      spare_ = b;
      kept += b->bytes;
    } else {
      held_ -= b->bytes;
      upstream_->deallocate(b, b->bytes, cache_line);
    }
  }
  cursor_ = limit_ = nullptr;
}

scoped_resource::~scoped_resource() {
  retain_bytes = 0;
  release();   // with nothing to retain, every block goes upstream
}

}  // namespace pcm::pmr
