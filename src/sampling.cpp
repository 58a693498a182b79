// The sampled slow path (see sampling.hpp): which sampler's countdown ran out
// decides the kind of sample. The profiler's comes first (its estimates are
// unbiased only if it never skips one): an allocation whose byte countdown
// runs out is the profiler's, and is not charged to the guard's countdown
// (`due` stops before it), which moves the next guarded allocation one later;
// guarded sampling is random in any case.
#include "sampling.hpp"

#include <cstring>

#include "guard/guarded_sample.hpp"
#include "profile/sampler.hpp"

namespace pcm::sampling {

bool enabled = false;
__thread countdowns countdown __attribute__((tls_model("initial-exec"))) = {};

namespace {
bool profile_on = false, guard_on = false;

void* plain(std::size_t size, std::size_t alignment, bool zero) noexcept {
  if (zero) return pcm::allocate_zeroed(1, size);
  return alignment <= 16 ? pcm::allocate(size) : pcm::allocate_aligned(alignment, size);
}

// Whose turn it is; a countdown of a sampler that is off is pushed out of reach.
enum class turn { none, profile, guard };
turn whose_turn() noexcept {
  if (!profile_on && countdown.bytes_until_profile < 0) {
    // A thread's first allocation: the profiler's countdown starts at 0 and
    // stopped `due` before the guard's was charged.
    countdown.bytes_until_profile = never;
    --countdown.allocations_until_guard;
  }
  if (!guard_on) countdown.allocations_until_guard = never;
  if (countdown.bytes_until_profile < 0) return turn::profile;
  if (countdown.allocations_until_guard < 0 && guard::take_turn()) return turn::guard;
  return turn::none;
}
}  // namespace

void turn_on_profile() noexcept { profile_on = enabled = true; }
void turn_on_guard() noexcept { guard_on = enabled = true; }

namespace {
// A sample of one kind or the other (profiled, guarded), or a plain block.
[[gnu::noinline]] void* sampled(std::size_t size, std::size_t alignment, bool zero) noexcept {
  switch (whose_turn()) {
    case turn::profile: return profile::allocate(size, alignment, zero);
    case turn::guard:
      if (void* p = guard::allocate(size, alignment)) return p;   // (zeroed pages: see guarded_sample.hpp)
      break;
    case turn::none: break;
  }
  return plain(size, alignment, zero);
}

[[gnu::noinline]] void* sampled_reallocate(void* p, std::size_t size) noexcept {
  switch (whose_turn()) {
    case turn::profile: return profile::reallocate(p, size);
    case turn::guard:
      if (!p || size == 0) break;
      // p checked before a slot is taken: a freed or foreign pointer is reported
      // as a realloc's (a freed guarded block: realloc-of-freed, with its stacks).
      if (std::size_t old_size = detail::usable_size_for(p, "realloc"); void* q = guard::allocate(size, 16)) {
        std::memcpy(q, p, old_size < size ? old_size : size);
        pcm::deallocate(p);
        return q;
      }
      break;
    case turn::none: break;
  }
  return pcm::reallocate(p, size);
}
}  // namespace

void* allocate(std::size_t size) noexcept {
  if (due(size)) [[unlikely]] return sampled(size, 16, false);
  return pcm::allocate(size);
}

void* allocate_aligned(std::size_t alignment, std::size_t size) noexcept {
  if (alignment && !(alignment & (alignment - 1)) && due(size)) [[unlikely]] return sampled(size, alignment, false);
  return pcm::allocate_aligned(alignment, size);
}

void* allocate_zeroed(std::size_t count, std::size_t size) noexcept {
  std::size_t total;
  if (!__builtin_mul_overflow(count, size, &total) && due(total)) [[unlikely]] return sampled(total, 16, true);
  return pcm::allocate_zeroed(count, size);
}

void* reallocate(void* p, std::size_t size) noexcept {
  if (due(size)) [[unlikely]] return sampled_reallocate(p, size);
  return pcm::reallocate(p, size);
}

}  // namespace pcm::sampling
