// Huge blocks (> 2 MiB) freed and allocated again: freed mappings are kept,
// pages resident, for up to decay_ms and reused by the next huge request or
// realloc growth, so a re-allocation does not fault its pages in again. The
// kept memory still goes back (pcm_purge at once, decay by itself), counts
// against limit_bytes and is given up when a mapping is refused, and the
// cache's lock survives fork.
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstring>
#include <thread>

#include <doctest/doctest.h>

#include "support.hpp"

using namespace api_test;

namespace {

long minor_faults() {
  rusage usage{};
  getrusage(RUSAGE_SELF, &usage);
  return usage.ru_minflt;
}

// Minor faults taken while writing all n bytes of p.
long faults_to_touch(void* p, std::size_t n) {
  long before = minor_faults();
  std::memset(p, 0x5a, n);
  return minor_faults() - before;
}

}  // namespace

TEST_CASE("a freed huge block's pages are reused without faulting them in again") {
  RELEASE_LIBRARY_ONLY("the huge-block cache");
  // 4 KiB pages only (huge blocks ask for transparent huge pages): a fault a page.
  REQUIRE(prctl(PR_SET_THP_DISABLE, 1, 0, 0, 0) == 0);
  pcm_purge();   // nothing kept from earlier cases
  const std::size_t n = 12 * MiB;
  void* first = malloc(n);
  REQUIRE(first);
  const long fresh = faults_to_touch(first, n);
  CHECK(fresh >= long(n / 4096));
  free(first);
  void* second = malloc(10 * MiB);   // smaller: fits in the kept range
  REQUIRE(second);
  CHECK(faults_to_touch(second, 10 * MiB) * 4 < fresh);
  check_block(second, 10 * MiB);
  free(second);
  void* third = malloc(14 * MiB);    // larger: the kept range grows by mremap, its old pages stay
  REQUIRE(third);
  CHECK(faults_to_touch(third, 14 * MiB) * 2 <= fresh);   // only the added 4 MiB are new
  free(third);
  prctl(PR_SET_THP_DISABLE, 0, 0, 0, 0);
}

TEST_CASE("calloc of a reused huge block reads as zeros") {
  for (std::size_t n : {3 * MiB, 9 * MiB, 20 * MiB}) {
    CAPTURE(n);
    void* dirty = malloc(n + 2 * MiB);
    REQUIRE(dirty);
    std::memset(dirty, 0xee, n + 2 * MiB);
    free(dirty);
    void* p = calloc(1, n);
    REQUIRE(p);
    CHECK(all_zero(p, n));
    free(p);
  }
}

TEST_CASE("realloc growth through kept ranges and mremap moves keeps the contents") {
  // Other huge blocks are freed between steps, so growth alternates between
  // copying into a kept range, moving pages by mremap, and growing in slack.
  void* p = malloc(3 * MiB);
  REQUIRE(p);
  std::size_t size = 3 * MiB;
  fill(p, size, 11);
  std::uint64_t seed = 11;
  for (int step = 0; step < 24; ++step) {
    CAPTURE(step);
    if (step % 3 == 0) free(opaque(malloc(size + (step % 2 ? 9 : 1) * MiB)));   // leaves a kept range
    std::size_t next = step % 5 == 4 ? size - size / 3 : size + size / 4 + 4096 * std::size_t(step);
    void* q = realloc(p, next);
    REQUIRE(q);
    std::size_t kept = next < size ? next : size;
    CHECK(first_mismatch(q, kept, seed) == kept);
    CHECK(pcm_owns(q) == 1);
    CHECK(pcm_usable_size(q) >= next);
    fill(q, next, ++seed);
    p = q;
    size = next;
  }
  free(p);
}

TEST_CASE("kept huge memory goes back on pcm_purge and by decay") {
  RELEASE_LIBRARY_ONLY("the huge-block cache");
  pcm_purge();
  const std::size_t before = resident_bytes();
  std::vector<void*> blocks;
  for (int i = 0; i < 8; ++i) {
    void* p = malloc(std::size_t(5 + i) * MiB);
    REQUIRE(p);
    touch_pages(p, std::size_t(5 + i) * MiB);
    blocks.push_back(p);
  }
  for (void* p : blocks) free(p);
  const std::size_t kept = resident_bytes();
  CHECK(kept <= before + 24 * MiB);   // the cache is bounded (16 MiB), not all 68 MiB stay
  pcm_purge();
  CHECK(resident_bytes() <= before + 4 * MiB);

  void* p = malloc(14 * MiB);
  REQUIRE(p);
  touch_pages(p, 14 * MiB);
  free(p);
  CHECK(resident_bytes() >= before + 12 * MiB);   // kept: this check is what makes the next one mean something
  std::this_thread::sleep_for(std::chrono::milliseconds(800));   // > decay (500 ms) + one tick
  free(opaque(malloc(100 * KiB)));                                 // a slow path ticks the decay clock
  free(opaque(malloc(3 * MiB)));
  CHECK(resident_bytes() <= before + 8 * MiB);
}

TEST_CASE("kept huge memory counts against limit_bytes and is given up when refused") {
  RELEASE_LIBRARY_ONLY("the huge-block cache");
  spawn_result r = spawn_self("--child=huge-limit", {"PCMALLOC_CONF=limit_bytes:67108864"});
  INFO(r.err);
  CHECK(WIFEXITED(r.wait_status));
  CHECK(WEXITSTATUS(r.wait_status) == 0);
  CHECK(r.out == "ok\n");
}

TEST_CASE("fork while other threads allocate and free huge blocks") {
  std::atomic<bool> stop{false};
  std::vector<std::thread> workers;
  for (int t = 0; t < 2; ++t)
    workers.emplace_back([&stop, t] {
      for (std::size_t i = 0; !stop.load(std::memory_order_relaxed); ++i) {
        std::size_t n = (3 + (i * 7 + std::size_t(t)) % 13) * MiB;
        void* p = malloc(n);
        if (p) touch_pages(p, n);
        p = realloc(p, n + 5 * MiB);
        free(p);
      }
    });
  for (int i = 0; i < 20; ++i) {
    child_result child = run_in_child([] {
      for (std::size_t n = 3 * MiB; n <= 30 * MiB; n += 3 * MiB) {
        void* p = malloc(n);
        if (!p) _exit(3);
        touch_pages(p, n);
        p = realloc(p, n * 2);
        if (!p) _exit(4);
        free(p);
      }
      pcm_purge();
      _exit(0);
    }, 20);
    CHECK(child.exited);
    CHECK(child.status == 0);
  }
  stop.store(true);
  for (auto& w : workers) w.join();
}

namespace api_test {
// --child=huge-limit, under limit_bytes of 64 MiB: kept ranges count as
// mapped, yet never make a request fail that their release would satisfy.
int huge_limit_child() {
  void* blocks[3];
  for (void*& p : blocks) {   // 3 x 16 MiB mapped and freed: the cache keeps one (its cap)
    p = malloc(16 * MiB);
    if (!p) return 10;
    touch_pages(p, 16 * MiB);
  }
  for (void* p : blocks) free(p);
  // 44 MiB fits beside the program's other mappings only once the kept range is unmapped.
  void* big = malloc(44 * MiB);
  if (!big) return 11;
  touch_pages(big, 44 * MiB);
  free(big);   // over the cap: unmapped at once
  // The limit still holds: nothing beyond 64 MiB, kept ranges or not.
  if (void* too_big = malloc(66 * MiB)) { free(too_big); return 12; }
  // Large blocks (arena chunks) while a kept range holds the room they need.
  void* kept = malloc(16 * MiB);
  if (!kept) return 13;
  touch_pages(kept, 16 * MiB);
  free(kept);
  std::vector<void*> large;
  for (int i = 0; i < 40; ++i) {
    void* p = malloc(1 * MiB);
    if (!p) return 14;
    large.push_back(p);
  }
  for (void* p : large) free(p);
  std::printf("ok\n");
  return 0;
}
}  // namespace api_test
