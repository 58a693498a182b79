// The debug layer's block registry: one record per block handed out (live) or
// held in quarantine. Out of band: an overflow can smash a block's neighbours
// but never its own record. A plain block finds its record through a pointer
// in its own left redzone (validated with records_contain and the record's
// user field: see debug_heap.cpp); only guarded blocks, whose redzone may be
// inaccessible, are also keyed by user pointer in a hash table.
// Synchronisation: striped locks (by user pointer) over a fixed bucket table
// and the state of the records; records come from per-stripe free lists carved
// from one sparse reservation (never from the heap under test), so every record
// lies in records_range() and for_each walks them in address order.
#pragma once
#include <cstddef>
#include <cstdint>

#include "report/block_record.hpp"

namespace pcm::debug {


class registry {
 public:
  static constexpr unsigned stripe_count = 1024;
  static_assert(stripe_count <= 65536, "block_record::stripe is 16 bits");

  // Returns a zeroed record for `user` (in the bucket table when `hashed`),
  // or nullptr when out of memory.
  static block_record* insert(std::uintptr_t user, bool hashed) noexcept;
  // Look up a hashed record and, under the same lock, move it to quarantine.
  // Returns the record (state as it was before) or nullptr.
  static block_record* find_for_free(std::uintptr_t user, block_state* previous) noexcept;
  // The same for a record found another way: false when it is not (or no
  // longer) the record of `user`.
  static bool claim_for_free(block_record* record, std::uintptr_t user, block_state* previous) noexcept;
  // Hashed records only.
  static block_record* find(std::uintptr_t user) noexcept;
  // `candidate` as a record when it is the address of a carved record (in use
  // or not: callers check its fields), else nullptr. Never dereferences it.
  static block_record* record_at(std::uintptr_t candidate) noexcept;
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
