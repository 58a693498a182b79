// local_resource (one thread): statistics, release and recycle, large requests
// passed upstream, alignment. scoped_resource: bump allocation, release()
// keeping up to retain_bytes of blocks for the next request.
#include <doctest/doctest.h>

#include <cstdint>
#include <memory_resource>
#include <random>
#include <set>
#include <string>
#include <vector>

#include <pcmalloc/pmr.hpp>

#include "support.hpp"

namespace {
using namespace pmr_test;
}

TEST_SUITE("pmr") {

TEST_CASE("local_resource: release() gives every block back upstream") {
  recording_resource upstream;
  pcm::pmr::local_resource local(&upstream);
  CHECK(local.upstream() == &upstream);
  CHECK(local.statistics().bytes_held == 0);
  std::vector<std::pair<void*, std::size_t>> blocks;
  std::mt19937 random(3);
  for (int i = 0; i < 5000; ++i) {
    std::size_t bytes = 1 + random() % 1024;
    void* p = local.allocate(bytes);
    stamp(p, bytes, std::uint64_t(i));
    blocks.push_back({p, bytes});
  }
  const pcm::pmr::local_statistics& s = local.statistics();
  CHECK(s.allocations == 5000);
  CHECK(s.reused == 0);
  CHECK(s.upstream_allocations == 0);
  CHECK(s.bytes_held > 0);
  CHECK(s.bytes_held == upstream.live_bytes());
  CHECK(s.bytes_live >= 5000 * 16);
  CHECK(s.bytes_live <= s.bytes_held);
  int overwritten = 0;
  for (std::size_t i = 0; i < blocks.size(); ++i) overwritten += !stamped(blocks[i].first, blocks[i].second, i);
  CHECK(overwritten == 0);
  // Blocks grow by doubling up to 64 KiB: few upstream requests.
  CHECK(upstream.allocations().size() <= 8 + s.bytes_held / pcm::pmr::local_resource::largest_block);
  for (const allocation_record& r : upstream.allocations()) CHECK(r.bytes <= pcm::pmr::local_resource::largest_block);
  // Half go back to the free lists and are reused.
  for (std::size_t i = 0; i < blocks.size(); i += 2) local.deallocate(blocks[i].first, blocks[i].second);
  for (std::size_t i = 0; i < blocks.size(); i += 2) blocks[i].first = local.allocate(blocks[i].second);
  CHECK(s.reused == 2500);
  local.release();
  CHECK(s.bytes_held == 0);
  CHECK(s.bytes_live == 0);
  CHECK(upstream.live_bytes() == 0);
  // Usable again after release.
  void* p = local.allocate(100);
  CHECK(p != nullptr);
  CHECK(s.bytes_held > 0);
}

TEST_CASE("local_resource: an upstream that throws leaves the statistics as they were") {
  // Counters moved before the block was carved once: every failed allocation
  // still added to bytes_live (map_pool sizes new maps and measures
  // fragmentation from it).
  struct failing : std::pmr::memory_resource {
    bool fail = false;
    void* do_allocate(std::size_t n, std::size_t a) override {
      if (fail) throw std::bad_alloc();
      return std::pmr::new_delete_resource()->allocate(n, a);
    }
    void do_deallocate(void* p, std::size_t n, std::size_t a) override {
      std::pmr::new_delete_resource()->deallocate(p, n, a);
    }
    bool do_is_equal(const memory_resource& o) const noexcept override { return this == &o; }
  } upstream;
  pcm::pmr::local_resource r(&upstream, 256);
  r.deallocate(r.allocate(24, 8), 24, 8);
  upstream.fail = true;
  std::size_t handed_out = 0, thrown = 0;
  std::vector<void*> live;
  for (int i = 0; i < 100; ++i) {
    try {
      live.push_back(r.allocate(i % 2 ? 64 : 24, i % 2 ? 16 : 8));   // both paths: word-granular and class
      ++handed_out;
    } catch (const std::bad_alloc&) {
      ++thrown;
    }
  }
  CHECK(thrown > 0);
  const pcm::pmr::local_statistics& s = r.statistics();
  CHECK(s.allocations == 1 + handed_out);
  CHECK(s.bytes_live <= handed_out * 64);   // class-rounded sizes of what was handed out, nothing more
  upstream.fail = false;
}

TEST_CASE("local_resource: requests above 1 KiB go upstream and are freed on release") {
  recording_resource upstream;
  {
    pcm::pmr::local_resource local(&upstream);
    const std::size_t sizes[] = {1025, 2000, 4096, 64 * KiB, MiB, 5 * MiB};
    std::vector<void*> kept;
    for (std::size_t bytes : sizes) {
      CAPTURE(bytes);
      std::size_t before = upstream.allocations().size();
      void* p = local.allocate(bytes);
      CHECK(upstream.allocations().size() == before + 1);
      CHECK(upstream.allocations().back().bytes >= bytes);
      CHECK(is_aligned(p, 16));
      stamp(p, bytes, bytes);
      kept.push_back(p);
    }
    CHECK(local.statistics().upstream_allocations == std::size(sizes));
    for (std::size_t i = 0; i < kept.size(); ++i) CHECK(stamped(kept[i], sizes[i], sizes[i]));
    // Deallocating one passes straight upstream.
    std::size_t deallocations = upstream.deallocations();
    local.deallocate(kept.back(), sizes[5]);
    CHECK(upstream.deallocations() == deallocations + 1);
    CHECK(local.statistics().bytes_held == upstream.live_bytes());
    // Over-aligned requests (above a cache line) take the same path, aligned.
    void* aligned = local.allocate(100, 4096);
    CHECK(is_aligned(aligned, 4096));
    CHECK(local.statistics().upstream_allocations == std::size(sizes) + 1);
    // The rest (never deallocated) go back on release.
    local.release();
    CHECK(local.statistics().bytes_held == 0);
    CHECK(upstream.live_bytes() == 0);
    // And on destruction.
    (void)local.allocate(3000);
    (void)local.allocate(10);
    CHECK(upstream.live_bytes() > 0);
  }
  CHECK(upstream.live_bytes() == 0);
}

TEST_CASE("local_resource: every object lies inside the block it was carved from") {
  // The smallest case: the default first block is 1 KiB, and a 1000-byte
  // request (class 1 KiB, cache-line aligned) is carved at its offset 64.
  {
    recording_resource upstream;
    pcm::pmr::local_resource local(&upstream);
    auto* p = static_cast<char*>(local.allocate(1000));
    const allocation_record& block = upstream.allocations().back();
    CAPTURE(block.bytes);
    CAPTURE(p - static_cast<char*>(block.pointer));
    CHECK(p + 1000 <= static_cast<char*>(block.pointer) + block.bytes);
  }
  // Every size and alignment as the first request of a fresh resource, whose first block is the smallest.
  for (std::size_t first_block : {std::size_t(256), std::size_t(1024)}) {
    int outside = 0;
    std::size_t first_outside = 0;
    for (std::size_t alignment : {std::size_t(16), std::size_t(64)}) {
      for (std::size_t bytes = 1; bytes <= pcm::pmr::local_resource::largest_local; ++bytes) {
        recording_resource upstream;
        pcm::pmr::local_resource local(&upstream, first_block);
        auto* p = static_cast<char*>(local.allocate(bytes, alignment));
        const allocation_record& block = upstream.allocations().back();
        auto* begin = static_cast<char*>(block.pointer);
        if (p < begin || p + bytes > begin + block.bytes) {
          if (!outside++) first_outside = bytes;
        }
      }
    }
    CAPTURE(first_block);
    CAPTURE(first_outside);
    CHECK(outside == 0);
  }
}

TEST_CASE("local_resource: alignments up to a cache line are honoured by local blocks") {
  pcm::pmr::local_resource local;
  int misaligned = 0;
  std::mt19937 random(5);
  for (int i = 0; i < 3000; ++i) {
    std::size_t alignment = std::size_t(1) << (random() % 7);   // 1 .. 64
    std::size_t bytes = 1 + random() % 1024;
    void* p = local.allocate(bytes, alignment);
    misaligned += !is_aligned(p, alignment);
    if (i % 3 == 0) local.deallocate(p, bytes, alignment);
  }
  CHECK(misaligned == 0);
  CHECK(local.statistics().upstream_allocations == 0);
  CHECK(local.statistics().reused > 0);
}

TEST_CASE("local_resource: recycle() forgets every object but keeps the newest block") {
  recording_resource upstream;
  pcm::pmr::local_resource local(&upstream, 4096);
  std::set<void*> first_round;
  for (int i = 0; i < 100; ++i) first_round.insert(local.allocate(32));
  (void)local.allocate(5000);   // an upstream request, freed by recycle()
  CHECK(local.statistics().bytes_held == 4096 + upstream.allocations().back().bytes);
  local.recycle();
  CHECK(local.statistics().bytes_live == 0);
  CHECK(local.statistics().bytes_held == 4096);
  CHECK(upstream.live_bytes() == 4096);
  int same = 0;
  for (int i = 0; i < 100; ++i) same += first_round.count(local.allocate(32));
  CHECK(same == 100);
  CHECK(local.statistics().bytes_held == 4096);
}

TEST_CASE("local_resource: first_block is clamped to [256 B, 64 KiB]") {
  recording_resource upstream;
  {
    pcm::pmr::local_resource tiny(&upstream, 1);
    (void)tiny.allocate(16);
    CHECK(upstream.allocations().back().bytes == 256);
  }
  {
    pcm::pmr::local_resource big(&upstream, 10 * MiB);
    (void)big.allocate(16);
    CHECK(upstream.allocations().back().bytes == pcm::pmr::local_resource::largest_block);
  }
  CHECK(upstream.live_bytes() == 0);
}

TEST_CASE("scoped_resource: release() keeps blocks and the next round reuses them") {
  pcm::pmr::scoped_resource scoped;
  auto round = [&scoped](unsigned seed) {
    std::mt19937 random(seed);
    void* first = nullptr;
    for (int i = 0; i < 400; ++i) {
      std::size_t bytes = i % 50 == 49 ? 8 * KiB : 8 + random() % 512;
      void* p = scoped.allocate(bytes, std::size_t(1) << (random() % 5));
      if (!first) first = p;
      stamp(p, bytes, i);
    }
    {
      std::pmr::vector<std::pmr::string> words(&scoped);
      for (int i = 0; i < 200; ++i) words.emplace_back(40, char('a' + i % 26));
    }
    scoped.release();
    return first;
  };
  void* first = round(1);
  const std::size_t held = scoped.bytes_held();
  CHECK(held > 0);
  CHECK(held <= scoped.retain_bytes);
  int same_first = 0, same_held = 0;
  for (int r = 0; r < 1000; ++r) {
    same_first += round(1) == first;
    same_held += scoped.bytes_held() == held;
  }
  CHECK(same_first == 1000);
  CHECK(same_held == 1000);
  // Rounds of different shapes: what is kept stays within retain_bytes.
  std::size_t most = 0;
  for (unsigned r = 0; r < 200; ++r) {
    round(r);
    most = std::max(most, scoped.bytes_held());
  }
  CHECK(most <= scoped.retain_bytes);
}

TEST_CASE("scoped_resource: blocks beyond retain_bytes go upstream") {
  recording_resource upstream;
  {
    pcm::pmr::scoped_resource scoped(4096, &upstream);
    scoped.retain_bytes = 64 * KiB;
    for (int i = 0; i < 1000; ++i) (void)scoped.allocate(1000);   // ~1 MiB in growing blocks
    CHECK(scoped.bytes_held() == upstream.live_bytes());
    CHECK(scoped.bytes_held() >= 1000 * 1000);
    scoped.release();
    CHECK(scoped.bytes_held() <= 64 * KiB);
    CHECK(scoped.bytes_held() == upstream.live_bytes());
    // A big request gets a block of its own, aligned as asked.
    void* big = scoped.allocate(3 * MiB, 4096);
    CHECK(is_aligned(big, 4096));
    stamp(big, 3 * MiB, 9);
    CHECK(stamped(big, 3 * MiB, 9));
    scoped.release();
    CHECK(scoped.bytes_held() <= 64 * KiB);
    CHECK(scoped.bytes_held() == upstream.live_bytes());
    (void)scoped.allocate(10);
  }
  CHECK(upstream.live_bytes() == 0);
}

// The header promises "up to retain_bytes of them; the rest go upstream":
// blocks kept from earlier rounds are trimmed too when retain_bytes is lowered.
TEST_CASE("scoped_resource: release() after lowering retain_bytes keeps at most retain_bytes") {
  recording_resource upstream;
  pcm::pmr::scoped_resource scoped(4096, &upstream);
  for (int i = 0; i < 100; ++i) (void)scoped.allocate(1000);
  scoped.release();   // keeps every block (well under the default 1 MiB)
  CHECK(scoped.bytes_held() > 0);
  scoped.retain_bytes = 0;
  scoped.release();
  CHECK(scoped.bytes_held() == 0);
  CHECK(upstream.live_bytes() == 0);
}

TEST_CASE("scoped_resource: deallocate does nothing until release") {
  pcm::pmr::scoped_resource scoped;
  void* a = scoped.allocate(64);
  scoped.deallocate(a, 64);
  void* b = scoped.allocate(64);
  CHECK(a != b);
  CHECK(scoped.is_equal(scoped));
  pcm::pmr::scoped_resource other;
  CHECK_FALSE(scoped.is_equal(other));
}

}  // TEST_SUITE
