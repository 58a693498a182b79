// The api suite's one main: doctest, plus helper modes that config_test.cpp
// re-executes this binary with (a child must start fresh to read its environment).
#define DOCTEST_CONFIG_IMPLEMENT
#include <doctest/doctest.h>

#include <cstdio>
#include <cstring>

#include <pcmalloc/pcmalloc.h>

#include "support.hpp"

int main(int argc, char** argv) {
  // Prints what the allocator chose at start-up, one value a line.
  if (argc == 2 && std::strcmp(argv[1], "--child=report-config") == 0) {
    std::printf("%s\n%u\n", pcm_cache_mode(), pcm_arena_count());
    return 0;
  }
  if (argc == 2 && std::strcmp(argv[1], "--child=purge-order") == 0) return api_test::purge_order_child();
  if (argc == 2 && std::strcmp(argv[1], "--child=explicit-arena-two-cpus") == 0)
    return api_test::explicit_arena_two_cpus_child();
  if (argc == 2 && std::strcmp(argv[1], "--child=huge-limit") == 0) return api_test::huge_limit_child();
  doctest::Context context(argc, argv);
  return context.run();
}
