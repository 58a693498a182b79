// Stack capture (libunwind's local unwinder) and the stack depot, which keeps
// each distinct stack once and names it by a 32-bit id. No heap anywhere.
// Synchronisation: capture touches only the calling thread; the depot is lock-free
// (records are immutable once published by a CAS on their bucket), so saves and
// loads work from any thread, a signal handler, or a forked child.
#pragma once
#include <cstddef>
#include <cstdint>

namespace pcm::debug {

// Frames hold call-site addresses: a return address minus one (inside the call
// instruction), so that symbolizing a frame gives the line of the call. A frame
// interrupted by a signal (frame 0 of capture_from_context) holds the exact pc.
inline constexpr unsigned max_stack_depth = 256;   // deeper stacks are truncated

// The calling thread's stack; frames[0] is in capture's caller, after `skip`
// further frames are dropped (a caller that tail-calls capture has no frame).
// Returns the number of frames written; 0 when re-entered on this thread (a
// signal handler interrupting a capture, or libunwind allocating inside one).
unsigned capture(void** frames, unsigned max_frames, unsigned skip = 0) noexcept;

// The stack of a thread stopped by a signal, from the handler's third argument
// (a ucontext_t*): frames[0] is the interrupted instruction.
unsigned capture_from_context(void* ucontext, void** frames, unsigned max_frames) noexcept;

// Stores the stack once and returns its id; the same frames always give the same
// id. 0 for an empty stack or when the depot's memory is exhausted.
std::uint32_t stack_depot_save(void* const* frames, unsigned depth) noexcept;
// Copies at most max_frames frames of stack `id`; returns how many (0: unknown id).
unsigned stack_depot_load(std::uint32_t id, void** frames, unsigned max_frames) noexcept;

struct stack_depot_usage {
  std::size_t stacks;   // distinct stacks stored
  std::size_t bytes;    // memory mapped for them (tables included)
};
stack_depot_usage stack_depot_stats() noexcept;

}  // namespace pcm::debug
