// The debug layer's block registry: one record per block handed out (live) or
// held in quarantine, keyed by the user pointer. Out of band: an overflow can
// smash a block's neighbours but never its own record.
// Synchronisation: striped locks over a fixed bucket table; records come from
// per-stripe free lists carved from one sparse reservation (never from the heap
// under test), so every record lies in records_range() and for_each walks them
// in address order without touching the bucket table.
#pragma once
#include <cstddef>
#include <cstdint>

namespace pcm::debug {

// How a block was obtained; freeing it another way is a mismatch.
enum class alloc_kind : std::uint8_t { malloc_family, new_scalar, new_array };
enum class block_state : std::uint8_t { live, quarantined };

struct block_record {
  std::uintptr_t user = 0;        // the pointer the program got (key); 0: a free record
  std::size_t size = 0;           // bytes the program asked for
  std::size_t alignment = 0;
  void* raw = nullptr;            // what the core returned, or the guard mapping
  std::size_t raw_bytes = 0;      // usable bytes of raw (guard: whole mapping)
  std::uint32_t alloc_stack = 0;  // stack depot ids
  std::uint32_t free_stack = 0;
  std::int32_t alloc_thread = 0;
  std::int32_t free_thread = 0;
  alloc_kind kind = alloc_kind::malloc_family;
  block_state state = block_state::live;
  bool guarded = false;           // on its own pages between guard pages
  bool reachable = false;         // leak scan mark
  block_record* next = nullptr;   // bucket chain
};

class registry {
 public:
  static constexpr unsigned stripe_count = 1024;

  // Returns a zeroed record already keyed by `user`, or nullptr when out of memory.
  static block_record* insert(std::uintptr_t user) noexcept;
  // Look up and, under the same lock, move a live record to quarantine.
  // Returns the record (state as it was before) or nullptr.
  static block_record* find_for_free(std::uintptr_t user, block_state* previous) noexcept;
  static block_record* find(std::uintptr_t user) noexcept;
  static void erase(block_record* record) noexcept;
  // Every record in use, for reports and the leak scan (no lock: callers stop
  // the world or accept a racy view).
  template <class Visit>
  static void for_each(Visit visit) noexcept {
    block_record* end = records_end();
    for (block_record* r = records_begin(); r < end; ++r)
      if (r->user) visit(*r);
  }
  // The memory that holds the records: the leak scan must not take it for roots.
  static void records_range(std::uintptr_t* begin, std::uintptr_t* end) noexcept;
  // The record whose memory (the core block or guard mapping, redzones
  // included) contains address (slow: a scan; for reports only).
  static block_record* containing(std::uintptr_t address) noexcept;
  static std::size_t live_count() noexcept;
  // fork(): hold every stripe across it; the child forces them open.
  static void lock_all() noexcept;
  static void unlock_all(bool child) noexcept;

 private:
  static block_record* records_begin() noexcept;
  static block_record* records_end() noexcept;
};

}  // namespace pcm::debug
