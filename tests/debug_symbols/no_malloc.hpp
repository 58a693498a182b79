// The heap guard of the debug_symbols tests: no_malloc.cpp interposes the malloc
// family in this executable; inside a heap_forbidden scope any call aborts.
// It can also play the debug heap: capture a stack inside every malloc.
// Thread-local: each thread forbids only its own heap use.
#pragma once

namespace debug_symbols_test {

extern __thread int heap_forbidden;

struct heap_forbidden_scope {
  heap_forbidden_scope() { ++heap_forbidden; }
  ~heap_forbidden_scope() { --heap_forbidden; }
  heap_forbidden_scope(const heap_forbidden_scope&) = delete;
  heap_forbidden_scope& operator=(const heap_forbidden_scope&) = delete;
};

// When set, every malloc in this thread records its stack in the depot (as the
// debug heap does) and leaves the id in last_malloc_stack.
extern __thread int capture_in_malloc;
extern __thread unsigned last_malloc_stack;

// The running executable's real path.
const char* executable_path();

}  // namespace debug_symbols_test

#ifndef FLAVOUR
#define FLAVOUR 0
#endif
// What the flavour should find in the executable itself.
constexpr bool expect_names = FLAVOUR != 2;   // .symtab present
constexpr bool expect_lines = FLAVOUR == 0;   // DWARF present
