// Error reports: one per detected bug, as text (in the spirit of
// AddressSanitizer's) or as one JSON object per line, to stderr or the
// report_file. Both libraries build it: the debug layer's reports, and the
// release library's guarded samples (src/guard), read the same. Never
// allocates; reports are serialised by one lock.
#pragma once
#include <cstddef>
#include <cstdint>

#include "report/block_record.hpp"

namespace pcm::debug {

enum class error_kind : std::uint8_t {
  use_after_free,         // a freed block was written (found on eviction, at exit, or by a guard page)
  use_after_return,       // a pooled object (map_pool map) was used after it went back
  double_free,
  invalid_free,           // stack, global, interior pointer, foreign memory
  realloc_of_freed,
  heap_buffer_overflow,
  heap_buffer_underflow,
  alloc_dealloc_mismatch, // malloc/delete, new/free, new[]/delete, ...
  sized_delete_mismatch,  // sized delete with the wrong size
  memory_leak,
  cross_thread_use,       // a single-thread object used by two threads at once
  wild_access,            // a fault outside any block (guard mode)
};

const char* name_of(error_kind kind) noexcept;

struct error_report {
  error_kind kind;
  const char* what = "";                // one line saying what happened
  std::uintptr_t address = 0;           // the address involved
  const block_record* block = nullptr;  // the block involved, if any
  std::int32_t other_thread = 0;        // cross-thread use: the thread seen first
  void* const* frames = nullptr;        // where it was detected (nullptr: capture here)
  unsigned depth = 0;
  std::size_t leak_count = 0;           // memory_leak: blocks and bytes with this stack
  std::size_t leak_bytes = 0;
  std::uint32_t extra_stack = 0;        // another stack worth showing (e.g. where an object was returned)
  const char* extra_label = nullptr;
  std::size_t object_size = 0;          // objects that are not heap blocks (pooled maps, resources)
  bool counts = true;                   // false: shown, but not an error for the exit status
};

// Print and count; the debug library then aborts when abort_on_error is set
// (the release library's callers stop the process themselves).
void report(const error_report& r) noexcept;
std::uint64_t errors_reported() noexcept;
std::int32_t current_thread() noexcept;   // kernel thread id, cached
// The calling thread's stack from the library's entry point outwards (the
// program's frames only, however the library's own frames were inlined or
// tail-called), at most stack_depth frames; capture_program: at most `limit`.
// Both need find_own_code() (or prepare_reports()) first.
unsigned capture_here(void** frames, unsigned max) noexcept;
unsigned capture_program(void** frames, unsigned limit) noexcept;
// Where this library's code lies (once; before capture_program is used).
void find_own_code() noexcept;
// A line of text to the report output (stderr's duplicate or the report_file).
void report_note(const char* text, std::size_t length) noexcept;
// The calling thread's stack (as capture_here) saved in the stack depot: its id.
std::uint32_t save_here() noexcept;
// At start-up: duplicate the report descriptor, find our own code, warm libunwind.
void prepare_reports() noexcept;
// fork handlers (debug_heap.cpp calls them from its own).
void reports_fork_prepare() noexcept;
void reports_fork_parent() noexcept;
void reports_fork_child() noexcept;

}  // namespace pcm::debug
