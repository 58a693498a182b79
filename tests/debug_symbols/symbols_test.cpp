// Capture and symbolization of frames in the executable itself: names in call
// order, file:line against __LINE__ recorded beside each call, module offsets.
// What must be found depends on the flavour (no_malloc.hpp).
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <dlfcn.h>
#include <link.h>
#include <unistd.h>

#include <doctest/doctest.h>

#include "no_malloc.hpp"
#include "trace/stack_trace.hpp"
#include "trace/symbolize.hpp"

using debug_symbols_test::heap_forbidden_scope;
using pcm::debug::frame_info;

unsigned inner_line, middle_line, outer_line;   // lines of the calls in each

__attribute__((noinline)) unsigned inner_function(void** frames, unsigned max_frames) {
  heap_forbidden_scope forbidden;
  unsigned depth = pcm::debug::capture(frames, max_frames); inner_line = __LINE__;
  return depth;
}

__attribute__((noinline)) unsigned middle_function(void** frames, unsigned max_frames) {
  unsigned depth = inner_function(frames, max_frames); middle_line = __LINE__;
  return depth;
}

__attribute__((noinline)) unsigned outer_function(void** frames, unsigned max_frames) {
  unsigned depth = middle_function(frames, max_frames); outer_line = __LINE__;
  return depth;
}

namespace {

std::uintptr_t load_bias_of(const void* address) {
  Dl_info info;
  link_map* map = nullptr;
  if (!dladdr1(address, &info, reinterpret_cast<void**>(&map), RTLD_DL_LINKMAP) || !map) return 0;
  return map->l_addr;
}

const char* base_name(const char* path) {
  const char* slash = std::strrchr(path, '/');
  return slash ? slash + 1 : path;
}

void check_frame(const frame_info& f, const void* frame, const char* name, unsigned line) {
  INFO("frame ", frame, " function '", f.function, "' file '", f.file, "' line ", f.line);
  CHECK(f.address == frame);
  CHECK(std::strcmp(f.module, debug_symbols_test::executable_path()) == 0);
  CHECK(f.module_offset == reinterpret_cast<std::uintptr_t>(frame) - load_bias_of(frame));
  if (expect_names) CHECK(std::strstr(f.function, name) != nullptr);
  else CHECK(std::strstr(f.function, name) == nullptr);
  if (expect_lines) {
    CHECK(std::strcmp(base_name(f.file), "symbols_test.cpp") == 0);
    CHECK(f.line == line);
  } else {
    CHECK(f.file[0] == 0);
    CHECK(f.line == 0);
  }
}

}  // namespace

TEST_CASE("a captured stack names outer, middle and inner function with their lines") {
  void* frames[64];
  unsigned depth = outer_function(frames, 64);
  REQUIRE(depth >= 4);
  static frame_info info[64];
  {
    heap_forbidden_scope forbidden;
    pcm::debug::symbolize_stack(frames, depth, info);
  }
  check_frame(info[0], frames[0], "inner_function", inner_line);
  check_frame(info[1], frames[1], "middle_function", middle_line);
  check_frame(info[2], frames[2], "outer_function", outer_line);
  if (expect_names) CHECK(std::strstr(info[3].function, "outer_function") == nullptr);
  if (expect_names) CHECK(std::strcmp(info[0].function, "inner_function(void**, unsigned int)") == 0);   // demangled
  MESSAGE("load bias of the executable: ", reinterpret_cast<void*>(load_bias_of(frames[0])), " (nonzero: PIE)");

  // One frame at a time gives the same answers.
  for (unsigned i = 0; i < 3; ++i) {
    frame_info single;
    bool found;
    {
      heap_forbidden_scope forbidden;
      found = pcm::debug::symbolize(frames[i], single);
    }
    CHECK(found);
    CHECK(std::strcmp(single.function, info[i].function) == 0);
    CHECK(std::strcmp(single.file, info[i].file) == 0);
    CHECK(single.line == info[i].line);
    CHECK(single.module_offset == info[i].module_offset);
  }
}

TEST_CASE("without addr2line, names come from the ELF symbol table, mangled, with an offset") {
  void* frames[64];
  unsigned depth = outer_function(frames, 64);
  REQUIRE(depth >= 3);
  frame_info info[3];
  {
    heap_forbidden_scope forbidden;
    pcm::debug::set_addr2line_path(nullptr);
    pcm::debug::symbolize_stack(frames, 3, info);
    pcm::debug::set_addr2line_path("/usr/bin/addr2line");
  }
  const char* names[] = {"_Z14inner_functionPPvj", "_Z15middle_functionPPvj", "_Z14outer_functionPPvj"};
  for (unsigned i = 0; i < 3; ++i) {
    INFO("function '", info[i].function, "'");
    CHECK(info[i].file[0] == 0);
    CHECK(std::strcmp(info[i].module, debug_symbols_test::executable_path()) == 0);
    if (expect_names) {
      CHECK(std::strcmp(info[i].function, names[i]) == 0);
      // The call sits past the prologue, well inside the function.
      CHECK(info[i].function_offset > 0);
      CHECK(info[i].function_offset < 256);
    } else {
      CHECK(info[i].function[0] == 0);
    }
  }
}

TEST_CASE("print_stack writes one line per frame, innermost first") {
  void* frames[64];
  unsigned depth = outer_function(frames, 64);
  static char text[16384];
  std::size_t length;
  {
    heap_forbidden_scope forbidden;
    length = pcm::debug::print_stack_to(text, sizeof text, frames, depth);
  }
  INFO(text);
  REQUIRE(length < sizeof text);
  CHECK(std::strlen(text) == length);
  CHECK(std::strncmp(text, "    #0 0x", 9) == 0);
  std::size_t lines = 0;
  for (const char* c = text; *c; ++c) lines += *c == '\n';
  CHECK(lines == depth);

  char module_part[128];
  std::snprintf(module_part, sizeof module_part, " (%s+0x", base_name(debug_symbols_test::executable_path()));
  CHECK(std::strstr(text, module_part) != nullptr);
  if (expect_names) {
    const char* inner = std::strstr(text, "#0 ");
    const char* middle = std::strstr(text, "in middle_function(void**, unsigned int)");
    const char* outer = std::strstr(text, "in outer_function(void**, unsigned int)");
    CHECK(std::strstr(inner, "in inner_function(void**, unsigned int)") != nullptr);
    REQUIRE(middle != nullptr);
    REQUIRE(outer != nullptr);
    CHECK(middle < outer);
  }
  if (expect_lines) {
    char location[64];
    std::snprintf(location, sizeof location, "symbols_test.cpp:%u (", inner_line);
    CHECK(std::strstr(text, location) != nullptr);
  } else if (expect_names) {
    CHECK(std::strstr(text, "in inner_function(void**, unsigned int)+0x") != nullptr);
  }

  // The same text to a file descriptor.
  int pipe_fds[2];
  REQUIRE(pipe(pipe_fds) == 0);
  {
    heap_forbidden_scope forbidden;
    pcm::debug::print_stack(pipe_fds[1], frames, depth);
  }
  close(pipe_fds[1]);
  static char piped[16384];
  std::size_t got = 0;
  for (ssize_t n; (n = read(pipe_fds[0], piped + got, sizeof piped - 1 - got)) > 0;) got += std::size_t(n);
  close(pipe_fds[0]);
  piped[got] = 0;
  CHECK(std::strcmp(piped, text) == 0);

  // A small buffer is truncated, NUL-terminated, and the full length reported.
  char small[32];
  std::size_t needed;
  {
    heap_forbidden_scope forbidden;
    needed = pcm::debug::print_stack_to(small, sizeof small, frames, depth);
  }
  CHECK(needed == length);
  CHECK(std::strlen(small) == sizeof small - 1);
}

TEST_CASE("addresses outside every module symbolize to nothing, without crashing") {
  int local = 0;
  void* frames[] = {nullptr, reinterpret_cast<void*>(1), reinterpret_cast<void*>(UINTPTR_MAX), &local};
  constexpr unsigned count = sizeof frames / sizeof frames[0];
  bool found[count];
  frame_info info[count];
  char text[1024];
  std::size_t length;
  {
    heap_forbidden_scope forbidden;
    for (unsigned i = 0; i < count; ++i) found[i] = pcm::debug::symbolize(frames[i], info[i]);
    length = pcm::debug::print_stack_to(text, sizeof text, frames, count);
  }
  for (unsigned i = 0; i < count; ++i) {
    CHECK_FALSE(found[i]);
    CHECK(info[i].module[0] == 0);
    CHECK(info[i].function[0] == 0);
  }
  INFO(text);
  CHECK(length == std::strlen(text));
  const char expected[] = "    #0 0x0\n    #1 0x1\n    #2 0xffffffffffffffff\n    #3 0x";
  CHECK(std::strncmp(text, expected, sizeof expected - 1) == 0);
}
