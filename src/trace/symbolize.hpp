// Symbolization without the heap: address -> module (dl_iterate_phdr), ELF symbol
// (.symtab, else .dynsym, of the module's file mapped read-only), and demangled
// name + file:line from one addr2line run per module per stack.
// Synchronisation: one mutex over the module cache and the scratch buffers; a
// thread that re-enters (a fault while symbolizing) gets module+offset only.
#pragma once
#include <cstddef>
#include <cstdint>

namespace pcm::debug {

// Empty strings and zeros mean "unknown".
struct frame_info {
  const void* address;
  char function[256];             // demangled from addr2line, else the ELF symbol (mangled)
  char file[256];                 // source file, from the debug info
  unsigned line;
  char module[256];               // path of the executable or shared object
  std::uintptr_t module_offset;   // address - load bias: what addr2line and the ELF tables use
  std::uintptr_t function_offset; // address - start of the ELF symbol (when one was found)
};

// Looks `address` up exactly as given (frames from capture() already point into
// the call instruction). Returns false when no loaded module contains it.
bool symbolize(const void* address, frame_info& out) noexcept;
// The same for a whole stack, with one addr2line run per module: out[0..depth).
void symbolize_stack(void* const* frames, unsigned depth, frame_info* out) noexcept;

// One line per frame:
//     #0 0x55d0c1a2b3c4 in parse_request(char const*) /src/server.cpp:42 (server+0x1b3c4)
void print_stack(int fd, void* const* frames, unsigned depth) noexcept;
// The same text into buffer (truncated, always NUL-terminated when size > 0);
// returns the length the whole text needs, like snprintf.
std::size_t print_stack_to(char* buffer, std::size_t size, void* const* frames, unsigned depth) noexcept;

// Which addr2line to run (default /usr/bin/addr2line); nullptr or "" for ELF
// symbols only. Copied; call it before reports start.
void set_addr2line_path(const char* path) noexcept;
// In a fork child: forget a lock that a vanished parent thread may have held.
void symbolize_after_fork_child() noexcept;

}  // namespace pcm::debug
