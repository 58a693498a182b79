// Helpers shared by the pmr suite: a recording memory_resource, patterned
// blocks, process RSS, and a forked child for deliberate misuse. The recording
// resource is single-threaded like the containers it watches; the rest keep no state.
#pragma once
#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory_resource>
#include <optional>
#include <string>
#include <vector>

#include <pcmalloc/pmr.hpp>

#include "support/support.hpp"

namespace pmr_test {

// Shared with tests/api (tests/support/support.hpp).
using test_support::debug_library, test_support::KiB, test_support::MiB, test_support::is_aligned, test_support::pointer_text,
    test_support::child_result;

struct allocation_record {
  std::size_t bytes = 0;
  std::size_t alignment = 0;
  void* pointer = nullptr;
};

// Forwards to `upstream` and remembers every allocation; live_bytes() is what
// was allocated through it and not yet deallocated.
class recording_resource final : public std::pmr::memory_resource {
 public:
  explicit recording_resource(std::pmr::memory_resource* upstream = pcm::pmr::global_resource()) noexcept
      : upstream_(upstream) {}
  const std::vector<allocation_record>& allocations() const noexcept { return allocations_; }
  std::size_t live_bytes() const noexcept { return live_bytes_; }
  std::size_t deallocations() const noexcept { return deallocations_; }
  void forget() { allocations_.clear(); }

 private:
  void* do_allocate(std::size_t bytes, std::size_t alignment) override;
  void do_deallocate(void* p, std::size_t bytes, std::size_t alignment) override;
  bool do_is_equal(const std::pmr::memory_resource& other) const noexcept override { return this == &other; }

  std::pmr::memory_resource* upstream_;
  std::vector<allocation_record> allocations_;
  std::size_t live_bytes_ = 0;
  std::size_t deallocations_ = 0;
};

// Writes a seed-dependent word at the start, the end and every 4 KiB of
// [p, p + n): cheap for megabyte blocks, still catches overlapping blocks.
void stamp(void* p, std::size_t n, std::uint64_t seed) noexcept;
bool stamped(const void* p, std::size_t n, std::uint64_t seed) noexcept;

std::size_t resident_bytes();   // RSS, from /proc/self/statm

// test_support::run_in_child (fork, collect stderr and the wait status) with a
// 20 s alarm by default; a child that cannot be started gives a result that
// neither exited nor was signalled, so the caller's checks fail.
child_result run_in_child(const std::function<void()>& body, unsigned alarm_seconds = 20);

// pcm_stats_get(), called in a forked child (which sees this process's heap as
// it is now) under an alarm: if the statistics walk never returns, the caller's
// check fails instead of the whole suite hanging. nullopt when it did not return.
std::optional<pcm_stats> statistics_via_child(unsigned alarm_seconds = 10);

}  // namespace pmr_test
