// Guarded sampling (release library; PCMALLOC_CONF=guard_sample_rate:N): about
// one allocation in N is put on pages of its own, in a slot of one reserved
// region. A slot is `slot_data_bytes` of data pages followed by a guard page
// (the region starts with one more). The block ends where its alignment lets it
// end nearest the slot's guard page, so an overflow faults at once; the slot's
// pages below the block's first page stay inaccessible, so an underflow that
// leaves that page faults too. A freed block's pages become inaccessible and
// the slot waits in a FIFO behind every other free slot before it is used
// again, so a use after free faults for as long as possible. When every slot
// is live, allocations are served plainly. The region is entered in the page
// map (page_entry::guarded_class): its blocks' frees reach the core's slow
// path and the hooks here, and no other free pays anything.
// Synchronisation: one lock over the slots' states and the FIFO, taken twice
// per guarded block; a slot's fields are written before its pointer escapes
// and read without the lock by the fault handler (fault.cpp).
#pragma once
#include <cstddef>
#include <cstdint>

#include "platform/platform.hpp"
#include "report/reporter.hpp"

namespace pcm::guard {

// The largest block guarded (larger ones are served plainly): a slot's data.
inline constexpr std::size_t slot_data_bytes = 4 * os::page_size;
// Slots in the region. Each is at most three kernel mappings (inaccessible
// pages, the block's pages, the guard page): 1024 slots stay well below the
// kernel's 65530 (vm.max_map_count), which the rest of the process needs.
inline constexpr std::uint32_t slot_count = 1024;

// Whether this allocation is to be guarded (sampling's countdown ran out):
// draws the thread's next countdown, geometric with mean guard_sample_rate.
// A thread's first call only seeds it.
bool take_turn() noexcept;
// A guarded block of `size` bytes at `alignment` (zeroed: a slot's pages are
// given back to the kernel at each free), or nullptr when it cannot be guarded
// (size 0 or above slot_data_bytes, alignment above a page, no free slot).
[[gnu::noinline]] void* allocate(std::size_t size, std::size_t alignment) noexcept;

// What a fault at `address` hit, for the fault handler: false when the address
// is not in the region. `block` is filled in when a slot's block is involved.
struct fault_site {
  debug::error_kind kind;
  bool has_block;
  debug::block_record block;
};
bool describe_fault(std::uintptr_t address, fault_site& out) noexcept;

// fault.cpp: the SIGSEGV handler, installed when guarded sampling starts.
void install_fault_handler() noexcept;

}  // namespace pcm::guard
