// Frames outside the executable: inside libc (a qsort comparator's caller) and
// inside a shared object of ours built with -g (names, lines, offsets from its
// own load base).
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <dlfcn.h>
#include <link.h>

#include <doctest/doctest.h>

#include "no_malloc.hpp"
#include "trace/stack_trace.hpp"
#include "trace/symbolize.hpp"

extern "C" unsigned call_through_library(unsigned (*callback)(void**, unsigned), void** frames, unsigned max_frames);
extern "C" unsigned callback_line;

using debug_symbols_test::heap_forbidden_scope;
using pcm::debug::frame_info;

namespace {

void* comparator_frames[64];
unsigned comparator_depth = 0;

int compare_and_capture(const void* a, const void* b) {
  if (!comparator_depth) {
    heap_forbidden_scope forbidden;
    comparator_depth = pcm::debug::capture(comparator_frames, 64);
  }
  return *static_cast<const int*>(a) - *static_cast<const int*>(b);
}

unsigned capture_for_library(void** frames, unsigned max_frames) {
  heap_forbidden_scope forbidden;
  return pcm::debug::capture(frames, max_frames);
}

const char* base_name(const char* path) {
  const char* slash = std::strrchr(path, '/');
  return slash ? slash + 1 : path;
}

}  // namespace

TEST_CASE("the caller of a qsort comparator is in libc") {
  int values[] = {5, 3, 9, 1, 7};
  std::qsort(values, 5, sizeof values[0], compare_and_capture);
  REQUIRE(comparator_depth >= 3);
  frame_info info[3];
  {
    heap_forbidden_scope forbidden;
    pcm::debug::symbolize_stack(comparator_frames, 3, info);
  }
  INFO("frame 1: '", info[1].function, "' in ", info[1].module);
  CHECK(std::strcmp(info[0].module, debug_symbols_test::executable_path()) == 0);
  if (expect_names) CHECK(std::strstr(info[0].function, "compare_and_capture") != nullptr);
  CHECK(std::strncmp(base_name(info[1].module), "libc.so", 7) == 0);
  Dl_info dl;
  link_map* map = nullptr;
  REQUIRE(dladdr1(comparator_frames[1], &dl, reinterpret_cast<void**>(&map), RTLD_DL_LINKMAP));
  CHECK(info[1].module_offset == reinterpret_cast<std::uintptr_t>(comparator_frames[1]) - map->l_addr);
}

TEST_CASE("frames in a shared object name the object, its function and line") {
  void* frames[64];
  unsigned depth = call_through_library(capture_for_library, frames, 64);
  REQUIRE(depth >= 3);
  static frame_info info[64];
  static char text[16384];
  {
    heap_forbidden_scope forbidden;
    pcm::debug::symbolize_stack(frames, depth, info);
    pcm::debug::print_stack_to(text, sizeof text, frames, depth);
  }
  INFO(text);
  CHECK(std::strcmp(base_name(info[1].module), "libdebug_symbols_callback.so") == 0);
  CHECK(std::strcmp(info[1].function, "call_through_library") == 0);
  CHECK(std::strcmp(base_name(info[1].file), "callback_library.cpp") == 0);
  CHECK(info[1].line == callback_line);
  Dl_info dl;
  link_map* map = nullptr;
  REQUIRE(dladdr1(frames[1], &dl, reinterpret_cast<void**>(&map), RTLD_DL_LINKMAP));
  CHECK(map->l_addr != 0);
  CHECK(info[1].module_offset == reinterpret_cast<std::uintptr_t>(frames[1]) - map->l_addr);
  // Frames on either side are in the executable, in one stack with one addr2line per module.
  CHECK(std::strcmp(info[0].module, debug_symbols_test::executable_path()) == 0);
  CHECK(std::strcmp(info[2].module, debug_symbols_test::executable_path()) == 0);
  char location[64];
  std::snprintf(location, sizeof location, "callback_library.cpp:%u (libdebug_symbols_callback.so+0x", callback_line);
  CHECK(std::strstr(text, location) != nullptr);
}
