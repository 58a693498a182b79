// pcm::page_runs driven directly, over real 4 MiB chunks from the platform
// layer, against a model of every page kept here (clean, used, dirty): no
// overlap, alignment, the zeroed flag, in-place growth and shrinking, stats,
// decay purging and unmapping of wholly free chunks. The clock is the test's.
#include <algorithm>
#include <array>
#include <cstdint>
#include <cstring>
#include <map>
#include <random>
#include <set>
#include <sys/mman.h>
#include <vector>

#include <doctest/doctest.h>

#include "page_runs.hpp"

using namespace pcm;

namespace {

constexpr std::size_t page = os::page_size;

bool page_is_zero(std::uintptr_t a) {
  const auto* words = reinterpret_cast<const std::uint64_t*>(a);
  for (std::size_t i = 0; i < page / 8; ++i) if (words[i]) return false;
  return true;
}
// mincore fails with ENOMEM when any page of the range is not mapped.
bool is_mapped(std::uintptr_t a, std::size_t bytes) {
  std::vector<unsigned char> residency(bytes / page);
  return mincore(reinterpret_cast<void*>(a), bytes, residency.data()) == 0;
}

// What each page should be, by chunk base; the test's own account of the rules.
class page_model {
 public:
  enum class state : std::uint8_t { clean, used, dirty };
  struct chunk_state {
    std::array<state, chunk_pages> pages{};   // all clean: fresh mappings read as zero
    std::uint64_t dirty_since = 0;
    unsigned count(state s) const { return unsigned(std::count(pages.begin(), pages.end(), s)); }
  };

  // A run the allocator just handed out: check it against the model, then mark it used.
  void taken(const page_run& run, std::uint32_t align_pages) {
    const std::uintptr_t base = run.home->base, address = reinterpret_cast<std::uintptr_t>(run.address());
    CHECK(base % (2u << 20) == 0);   // chunks are 2 MiB aligned for huge pages
    CHECK(address % (std::uintptr_t(align_pages) * page) == 0);
    REQUIRE(run.pages >= 1);
    REQUIRE(run.first + run.pages <= chunk_pages);
    chunk_state& c = chunks_[base];   // a new chunk starts all clean
    bool all_clean = true;
    for (std::uint32_t i = run.first; i < run.first + run.pages; ++i) {
      REQUIRE(c.pages[i] != state::used);   // overlap with a live run
      all_clean &= c.pages[i] == state::clean;
    }
    CHECK(run.zeroed == all_clean);
    if (run.zeroed)
      for (std::uint32_t i = 0; i < run.pages; ++i) REQUIRE(page_is_zero(address + i * page));
    mark_used(c, run.first, run.pages);
    scribble(address, run.pages);
    if (c.count(state::dirty) == 0) c.dirty_since = 0;
  }
  void freed(const page_run& run, std::uint32_t first, std::uint32_t pages, std::uint64_t now) {
    chunk_state& c = chunks_.at(run.home->base);
    if (c.count(state::dirty) == 0) c.dirty_since = now;
    for (std::uint32_t i = first; i < first + pages; ++i) {
      REQUIRE(c.pages[i] == state::used);
      c.pages[i] = state::dirty;
    }
  }
  // Whether growing `run` to new_pages should succeed: the pages after it are free.
  bool can_grow(const page_run& run, std::uint32_t new_pages) const {
    if (run.first + new_pages > chunk_pages) return false;
    const chunk_state& c = chunks_.at(run.home->base);
    for (std::uint32_t i = run.first + run.pages; i < run.first + new_pages; ++i)
      if (c.pages[i] == state::used) return false;
    return true;
  }
  void grown(const page_run& run, std::uint32_t old_pages) {
    mark_used(chunks_.at(run.home->base), run.first + old_pages, run.pages - old_pages);
    scribble(reinterpret_cast<std::uintptr_t>(run.address()) + old_pages * page, run.pages - old_pages);
    chunk_state& c = chunks_.at(run.home->base);
    if (c.count(state::dirty) == 0) c.dirty_since = 0;
  }

  // purge(now, decay): which bytes should go, then which chunks should be unmapped.
  void purged(page_runs& runs, std::uint64_t now, std::uint64_t decay, std::size_t reported) {
    std::set<std::uintptr_t> held, empty;
    runs.for_each_chunk([&](const chunk& c) { held.insert(c.base); });
    std::size_t expected = 0;
    for (auto& [base, c] : chunks_) {
      unsigned dirty = c.count(state::dirty);
      if (dirty == 0 || (decay != 0 && now - c.dirty_since < decay)) continue;
      for (std::uint32_t i = 0; i < chunk_pages; ++i)
        if (c.pages[i] == state::dirty) {
          c.pages[i] = state::clean;
          if (held.count(base)) REQUIRE(page_is_zero(base + i * page));   // purged memory reads zero
        }
      c.dirty_since = 0;
      expected += std::size_t(dirty) * page;
    }
    CHECK(reported == expected);
    // Wholly free, clean chunks: exactly one is kept, the others are unmapped.
    for (auto& [base, c] : chunks_)
      if (c.count(state::clean) == chunk_pages) empty.insert(base);
    unsigned kept_empty = 0;
    for (auto it = chunks_.begin(); it != chunks_.end();) {
      if (held.count(it->first)) { kept_empty += empty.count(it->first); ++it; continue; }
      CHECK(empty.count(it->first) == 1);   // only wholly free, clean chunks may go
      CHECK_FALSE(is_mapped(it->first, chunk_bytes));
      it = chunks_.erase(it);
    }
    CHECK(kept_empty == (empty.empty() ? 0u : 1u));
  }

  // Stats and each chunk's counters agree with the model.
  void check(const page_runs& runs) const {
    std::size_t used = 0, dirty = 0;
    for (auto& [base, c] : chunks_) { used += c.count(state::used); dirty += c.count(state::dirty); }
    CHECK(runs.stats().active == used * page);
    CHECK(runs.stats().dirty == dirty * page);
    CHECK(runs.stats().mapped == chunks_.size() * chunk_bytes);
    std::size_t seen = 0;
    runs.for_each_chunk([&](const chunk& c) {
      ++seen;
      auto it = chunks_.find(c.base);
      REQUIRE(it != chunks_.end());
      CHECK(c.free_pages == chunk_pages - it->second.count(state::used));
      CHECK(c.dirty_pages == it->second.count(state::dirty));
    });
    CHECK(seen == chunks_.size());
  }
  std::size_t chunk_count() const { return chunks_.size(); }

 private:
  static void mark_used(chunk_state& c, std::uint32_t first, std::uint32_t pages) {
    for (std::uint32_t i = first; i < first + pages; ++i) c.pages[i] = state::used;
  }
  // Write to every page, so that reuse without purging can be seen.
  static void scribble(std::uintptr_t address, std::uint32_t pages) {
    for (std::uint32_t i = 0; i < pages; ++i) {
      std::memset(reinterpret_cast<void*>(address + i * page), 0xa5, 64);
      std::memset(reinterpret_cast<void*>(address + (i + 1) * page - 64), 0x5a, 64);
    }
  }
  std::map<std::uintptr_t, chunk_state> chunks_;
};

// page_runs and its model, side by side.
struct harness {
  page_runs runs;
  page_model model;
  std::uint64_t now = 1000;

  page_run allocate(std::uint32_t pages, std::uint32_t align_pages = 1) {
    page_run run;
    REQUIRE(runs.allocate(pages, align_pages, &run));
    CHECK(run.pages == pages);
    model.taken(run, align_pages);
    return run;
  }
  void release(const page_run& run) {
    model.freed(run, run.first, run.pages, now);
    runs.release(run, now);
  }
  bool grow(page_run& run, std::uint32_t new_pages) {
    const bool expected = model.can_grow(run, new_pages);
    const std::uint32_t old_pages = run.pages;
    const bool grew = runs.grow_in_place(run, new_pages);
    CHECK(grew == expected);
    if (grew) {
      CHECK(run.pages == new_pages);
      model.grown(run, old_pages);
    } else {
      CHECK(run.pages == old_pages);
    }
    return grew;
  }
  void shrink(page_run& run, std::uint32_t new_pages) {
    model.freed(run, run.first + new_pages, run.pages - new_pages, now);
    runs.shrink_in_place(run, new_pages, now);
    CHECK(run.pages == new_pages);
  }
  std::size_t purge(std::uint64_t decay) {
    std::size_t purged = runs.purge(now, decay);
    model.purged(runs, now, decay, purged);
    return purged;
  }
  ~harness() { runs.release_all(); }
};

}  // namespace

TEST_CASE("fresh pages are zeroed; reused dirty pages are not; purged pages are again") {
  harness h;
  page_run a = h.allocate(3);
  CHECK(a.zeroed);
  h.model.check(h.runs);
  h.release(a);
  h.model.check(h.runs);
  page_run b = h.allocate(3);   // first fit: the same, dirty pages
  CHECK(b.address() == a.address());
  CHECK_FALSE(b.zeroed);
  h.release(b);
  CHECK(h.purge(0) == 3 * page);
  CHECK(h.runs.stats().purged_total == 3 * page);
  h.model.check(h.runs);
  page_run c = h.allocate(3);
  CHECK(c.address() == a.address());
  CHECK(c.zeroed);   // and the model checked that it reads zero
  page_run d = h.allocate(2);   // fresh pages after c's
  CHECK(d.zeroed);
  h.model.check(h.runs);
}

TEST_CASE("a run over both dirty and clean pages is not zeroed") {
  harness h;
  page_run a = h.allocate(2);
  h.release(a);
  page_run b = h.allocate(4);   // pages 0-1 dirty, 2-3 fresh
  CHECK(b.address() == a.address());
  CHECK_FALSE(b.zeroed);
  h.model.check(h.runs);
}

TEST_CASE("decay: dirty since t; purge(t + decay - 1) keeps them, purge(t + decay) gives them back") {
  harness h;
  const std::uint64_t decay = 500, t = h.now;
  page_run keep = h.allocate(1);   // keeps the chunk in use, so it is not unmapped
  page_run a = h.allocate(8);
  h.release(a);
  h.now = t + decay - 1;
  CHECK(h.purge(decay) == 0);
  CHECK(h.runs.stats().dirty == 8 * page);
  h.now = t + decay;
  CHECK(h.purge(decay) == 8 * page);
  CHECK(h.runs.stats().dirty == 0);
  h.model.check(h.runs);

  SUBCASE("the oldest dirty page sets the clock: later frees do not restart it") {
    page_run b = h.allocate(2), c = h.allocate(2);
    const std::uint64_t t2 = h.now;
    h.release(b);
    h.now = t2 + decay - 10;
    h.release(c);
    h.now = t2 + decay;
    CHECK(h.purge(decay) == 4 * page);
  }
  SUBCASE("decay 0 purges at once") {
    page_run b = h.allocate(5);
    h.release(b);
    CHECK(h.purge(0) == 5 * page);
  }
  h.model.check(h.runs);
  h.release(keep);
}

TEST_CASE("grow_in_place into free pages only; shrink_in_place leaves dirty pages") {
  harness h;
  page_run a = h.allocate(4), b = h.allocate(4);
  REQUIRE(b.first == a.first + 4);
  CHECK_FALSE(h.grow(a, 5));   // b is in the way
  h.release(b);
  CHECK(h.grow(a, 8));         // into b's (dirty) pages
  CHECK(h.grow(a, 20));        // and past them into fresh ones
  h.model.check(h.runs);
  h.shrink(a, 2);
  CHECK(h.runs.stats().active == 2 * page);
  CHECK(h.runs.stats().dirty == 18 * page);
  h.model.check(h.runs);
  CHECK(h.grow(a, 10));
  h.model.check(h.runs);

  SUBCASE("not past the chunk's end") {
    page_run last = h.allocate(chunk_pages - 10 - 10, 1);   // the rest of the chunk but 10 pages
    page_run tail = h.allocate(10);
    CHECK(tail.first + 10 == chunk_pages);
    CHECK_FALSE(h.grow(tail, 11));
    h.model.check(h.runs);
    h.release(last);
    h.release(tail);
  }
  h.release(a);
  h.model.check(h.runs);
}

TEST_CASE("alignment: every power of two up to 2 MiB (the chunk alignment)") {
  harness h;
  std::vector<page_run> live;
  for (std::uint32_t align = 1; align <= 512; align *= 2)
    for (std::uint32_t pages : {1u, 3u, align, align + 1})
      if (pages <= chunk_pages) live.push_back(h.allocate(pages, align));
  h.model.check(h.runs);
  for (const page_run& run : live) h.release(run);
  h.model.check(h.runs);
}

TEST_CASE("wholly free chunks beyond one are unmapped by purge; dirty ones wait for their decay") {
  harness h;
  page_run a = h.allocate(chunk_pages), b = h.allocate(chunk_pages), c = h.allocate(chunk_pages);
  CHECK(h.runs.stats().mapped == 3 * chunk_bytes);
  h.release(a);
  h.release(b);
  h.release(c);
  h.now += 10;
  CHECK(h.purge(1000) == 0);   // still dirty within the decay: nothing unmapped
  CHECK(h.runs.stats().mapped == 3 * chunk_bytes);
  CHECK(h.purge(0) == 3 * chunk_bytes);   // the model checks that two are unmapped
  CHECK(h.runs.stats().mapped == chunk_bytes);
  CHECK(h.model.chunk_count() == 1);
  h.model.check(h.runs);
  page_run d = h.allocate(chunk_pages);   // the kept chunk, clean
  CHECK(d.zeroed);
  CHECK(h.runs.stats().mapped == chunk_bytes);
  h.release(d);
}

TEST_CASE("random runs, alignments, growth, shrinking, releases and purges against the model") {
  harness h;
  std::mt19937 random(2024);
  std::vector<page_run> live;
  std::size_t live_pages = 0;
  auto pick = [&]() -> std::size_t { return random() % live.size(); };
  for (unsigned step = 0; step < 4000; ++step) {
    h.now += random() % 40;
    const unsigned op = random() % 100;
    if (op < 40 && live_pages < 6 * chunk_pages) {
      const unsigned kind = random() % 20;
      std::uint32_t pages = kind < 14 ? 1 + random() % 16 : kind < 19 ? 1 + random() % 300 : chunk_pages - random() % 8;
      std::uint32_t align = 1u << (random() % 10);   // 1 .. 512 pages
      live.push_back(h.allocate(pages, align));
      live_pages += pages;
    } else if (op < 70 && !live.empty()) {
      std::size_t i = pick();
      h.release(live[i]);
      live_pages -= live[i].pages;
      live[i] = live.back();
      live.pop_back();
    } else if (op < 80 && !live.empty()) {
      page_run& run = live[pick()];
      std::uint32_t old_pages = run.pages;
      if (h.grow(run, run.pages + 1 + random() % 32)) live_pages += run.pages - old_pages;
    } else if (op < 88 && !live.empty()) {
      page_run& run = live[pick()];
      if (run.pages > 1) {
        std::uint32_t new_pages = 1 + random() % (run.pages - 1);
        live_pages -= run.pages - new_pages;
        h.shrink(run, new_pages);
      }
    } else if (op < 93) {
      h.purge(random() % 2 ? 0 : 1 + random() % 400);
    }
    if (step % 50 == 0) h.model.check(h.runs);
  }
  for (const page_run& run : live) h.release(run);
  h.purge(0);
  h.model.check(h.runs);
  CHECK(h.runs.stats().active == 0);
  CHECK(h.runs.stats().mapped == chunk_bytes);
}

TEST_CASE("caller memory: carved into chunks, never purged nor unmapped, no growth beyond it") {
  const std::size_t bytes = chunk_bytes + 64 * page;
  void* memory = os::map(bytes);
  REQUIRE(memory);
  {
    page_runs runs;
    runs.can_grow = false;
    REQUIRE(runs.add_region(memory, bytes));
    CHECK(runs.stats().mapped == bytes);
    std::vector<std::uint32_t> usable;
    runs.for_each_chunk([&](const chunk& c) { usable.push_back(c.usable_pages); CHECK(c.caller_memory); });
    std::sort(usable.begin(), usable.end());
    CHECK(usable == std::vector<std::uint32_t>{64, chunk_pages});
    page_run whole, small, none;
    REQUIRE(runs.allocate(chunk_pages, 1, &whole));
    REQUIRE(runs.allocate(64, 1, &small));
    CHECK_FALSE(runs.allocate(1, 1, &none));   // full, and may not map more
    CHECK_FALSE(runs.grow_in_place(small, 65));   // past the region's end
    std::memset(small.address(), 0x77, 64 * page);
    runs.release(small, 1);
    CHECK(runs.purge(1, 0) == 0);   // caller memory is never purged
    CHECK(static_cast<unsigned char*>(small.address())[0] == 0x77);
    runs.release(whole, 1);
    runs.purge(1, 0);
    CHECK(runs.stats().mapped == bytes);
    runs.release_all();
    CHECK(is_mapped(reinterpret_cast<std::uintptr_t>(memory), bytes));   // still the caller's
  }
  os::unmap(memory, bytes);
}
