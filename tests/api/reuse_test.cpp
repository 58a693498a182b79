// Freed memory comes back, and pcm_purge() reaches every CPU's cache: a free that silently went nowhere (a cache push
// that "succeeded" without storing, a batch lost between a bin and its arena)
// leaks without any other symptom, so these tests watch the slab memory the
// heap holds while blocks of every small class and of bursts bigger than a
// cache are allocated and freed many times over.
#include <sched.h>

#include <cstdio>
#include <string>
#include <vector>

#include <doctest/doctest.h>

#include "support.hpp"

namespace {

std::uint64_t small_slab_bytes() {
  pcm_stats s;
  pcm_stats_get(&s);
  return s.small_slab_bytes;
}

}  // namespace

TEST_CASE("pairs of malloc and free reuse the same memory") {
  std::uint64_t before = small_slab_bytes();
  for (std::size_t size : {16, 64, 256, 1024, 4096, 32768}) {
    CAPTURE(size);
    // 64 MiB of traffic per size: were frees lost, slabs would grow by as much.
    for (std::size_t i = 0; i < (std::size_t(64) << 20) / size; ++i) {
      void* p = malloc(size);
      REQUIRE(p != nullptr);
      static_cast<char*>(p)[0] = 1;
      free(p);
    }
  }
  CHECK(small_slab_bytes() < before + (std::uint64_t(4) << 20));
}

TEST_CASE("bursts larger than the caches cycle without growing the heap") {
  RELEASE_LIBRARY_ONLY("freed blocks wait in quarantine");
  std::vector<void*> blocks(5000);
  std::uint64_t after_first = 0;
  for (int round = 0; round < 200; ++round) {
    for (void*& p : blocks) {
      p = malloc(48);
      REQUIRE(p != nullptr);
    }
    for (std::size_t i = 0; i < blocks.size(); ++i) free(blocks[round % 2 ? blocks.size() - 1 - i : i]);
    if (round == 0) after_first = small_slab_bytes();
  }
  // 200 rounds of 5000 x 48 B = 48 MiB of traffic; one burst is 240 KiB.
  CHECK(small_slab_bytes() < after_first + (std::uint64_t(2) << 20));
}

namespace {
std::uint64_t cached_objects_of_size(std::size_t size) {
  pcm_stats s;
  pcm_stats_get(&s);
  std::uint64_t n = 0;
  for (unsigned c = 0; c < s.class_count; ++c)
    if (s.classes[c].size == size) n += s.classes[c].cached_objects;
  return n;
}
}  // namespace

TEST_CASE("pcm_purge empties the caches of every CPU, not only its own") {
  cpu_set_t allowed;
  REQUIRE(sched_getaffinity(0, sizeof allowed, &allowed) == 0);
  int first = -1, second = -1;
  for (int cpu = 0; cpu < CPU_SETSIZE && second < 0; ++cpu)
    if (CPU_ISSET(cpu, &allowed)) (first < 0 ? first : second) = cpu;
  if (second < 0 || std::string(pcm_cache_mode()).find("per-cpu") == std::string::npos) {
    MESSAGE("needs per-CPU caches and two CPUs");
    return;
  }
  auto pin = [](int cpu) {
    cpu_set_t one;
    CPU_ZERO(&one);
    CPU_SET(cpu, &one);
    REQUIRE(sched_setaffinity(0, sizeof one, &one) == 0);
  };
  // Leave 100 blocks of an otherwise unused size (880 B) in the second CPU's
  // cache, then purge from the first.
  pin(second);
  std::vector<void*> blocks(100);
  for (void*& p : blocks) p = malloc(880);
  for (void* p : blocks) free(p);
  CHECK(cached_objects_of_size(896) > 0);
  pin(first);
  pcm_purge();
  CHECK(cached_objects_of_size(896) == 0);
  cpu_set_t after, pinned;
  CPU_ZERO(&pinned);
  CPU_SET(first, &pinned);
  REQUIRE(sched_getaffinity(0, sizeof after, &after) == 0);
  CHECK(CPU_EQUAL(&after, &pinned) != 0);   // the purge gave the thread its affinity back
  REQUIRE(sched_setaffinity(0, sizeof allowed, &allowed) == 0);
}

// An object of another arena on top of this CPU's cache goes, when the cache
// drains, to its own arena's transfer stack; pcm_purge empties the stacks,
// which frees whole slabs, and must purge their arenas afterwards (it once
// purged arena by arena: pages an earlier arena got back stayed dirty). Run
// at the start of a fresh process (main.cpp, --child=purge-order): the exact
// cache and slab layout matters. Prints "dirty N", or "skip" without two CPUs
// and per-CPU caches.
int api_test::purge_order_child() {
  cpu_set_t allowed;
  if (sched_getaffinity(0, sizeof allowed, &allowed) != 0) return 2;
  int first = -1, second = -1;
  for (int cpu = 0; cpu < CPU_SETSIZE && second < 0; ++cpu)
    if (CPU_ISSET(cpu, &allowed)) (first < 0 ? first : second) = cpu;
  if (second < 0 || std::string(pcm_cache_mode()).find("per-cpu") == std::string::npos) {
    std::printf("skip\n");
    return 0;
  }
  auto pin = [](int cpu) {
    cpu_set_t one;
    CPU_ZERO(&one);
    CPU_SET(cpu, &one);
    return sched_setaffinity(0, sizeof one, &one) == 0;
  };
  constexpr std::size_t size = 64;   // one-page slabs: the objects sent home late span two
  if (!pin(second)) return 2;
  void* foreign = pcm_malloc(size);  // from the second CPU's arena
  if (!pin(first)) return 2;
  static void* blocks[8192];
  for (void*& p : blocks) p = pcm_malloc(size);
  pcm_thread_flush();
  // The cache (256 objects) becomes [192 of ours, foreign, 63 of ours]; the next
  // free drains the top 64, foreign first, to the foreign arena's transfer stack.
  for (std::size_t i = 0; i < 192; ++i) pcm_free(blocks[i]);
  pcm_free(foreign);
  for (std::size_t i = 192; i < 8192; ++i) pcm_free(blocks[i]);
  pcm_purge();
  pcm_stats s;
  pcm_stats_get(&s);
  std::printf("dirty %llu\n", static_cast<unsigned long long>(s.dirty_bytes));
  return 0;
}

TEST_CASE("one pcm_purge leaves no dirty page, even where a transfer stack sends a slab home late") {
  api_test::spawn_result r = api_test::spawn_self("--child=purge-order", {});
  CAPTURE(r.err);
  REQUIRE(WIFEXITED(r.wait_status));
  REQUIRE(WEXITSTATUS(r.wait_status) == 0);
  if (r.out == "skip\n") {
    MESSAGE("needs per-CPU caches and two CPUs");
    return;
  }
  CHECK(r.out == "dirty 0\n");
}
