// What a report knows about a block: its record as the debug layer keeps it
// (src/debug/registry.hpp), or as the release library's guarded sampling
// fills it in for one report (src/guard). Here, not in src/debug/, because
// both libraries build the reporter.
#pragma once
#include <cstddef>
#include <cstdint>

namespace pcm {
// How a block was asked for (the front ends pass it down; src/heap_policy.hpp);
// the debug heap checks that it is given back the same way.
enum class request : std::uint8_t { malloc_family, new_scalar, new_array };
}  // namespace pcm

namespace pcm::debug {

// initialising: in the registry, not yet handed out (its fields and canaries
// are being written; allocate() publishes `live` last, with release order, so
// a thread checking at exit never reads a half-made record).
enum class block_state : std::uint8_t { initialising, live, quarantined };
inline block_state load_state(const block_state& s) noexcept {
  return block_state(__atomic_load_n(reinterpret_cast<const std::uint8_t*>(&s), __ATOMIC_ACQUIRE));
}
inline void publish_state(block_state& s, block_state value) noexcept {
  __atomic_store_n(reinterpret_cast<std::uint8_t*>(&s), std::uint8_t(value), __ATOMIC_RELEASE);
}

// One cache line: a free touches its record when the record is cold.
struct alignas(64) block_record {
  std::uintptr_t user = 0;        // the pointer the program got (key); 0: a free record
  std::size_t size = 0;           // bytes the program asked for
  void* raw = nullptr;            // what the core returned, or the guard mapping
  std::size_t raw_bytes = 0;      // usable bytes of raw (guard: whole mapping)
  std::uint32_t alloc_stack = 0;  // stack depot ids
  std::uint32_t free_stack = 0;
  std::int32_t alloc_thread = 0;
  std::int32_t free_thread = 0;
  block_record* next = nullptr;   // bucket chain, or the free list
  request kind = request::malloc_family;
  block_state state = block_state::initialising;
  bool guarded = false;           // on its own pages between guard pages
  bool reachable = false;         // leak scan mark
  bool hashed = false;            // in the bucket table (guarded blocks)
  std::uint8_t alignment_shift = 4;   // alignment = 1 << alignment_shift
  std::uint16_t stripe = 0;       // the registry stripe that carved it and locks it (never changes)
  std::size_t alignment() const { return std::size_t(1) << alignment_shift; }
};
static_assert(sizeof(block_record) == 64, "a record is one cache line");

}  // namespace pcm::debug
