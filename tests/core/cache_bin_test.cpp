// cache.hpp's bins driven against a fake layer below (STYLE.md habit 7): batch
// sizes, capacity bounds, which objects a drain gives back, and the counters.
// The fake hands out addresses of an array's elements; nothing is allocated.
#include <algorithm>
#include <cstdint>
#include <random>
#include <set>
#include <vector>

#include <doctest/doctest.h>

#include "cache.hpp"

using namespace pcm;

namespace {

// The layer below a bin: refill hands out distinct fake objects (up to
// `available`), drain records what comes back. Counts every call.
struct fake_source {
  std::vector<char> objects = std::vector<char>(1 << 16);
  std::size_t next = 0;
  std::size_t available = ~std::size_t(0);
  unsigned refill_calls = 0, drain_calls = 0;
  std::vector<unsigned> refill_requests, drain_sizes;
  std::vector<void*> drained;

  unsigned refill(unsigned cls, void** out, unsigned n) {
    ++refill_calls;
    refill_requests.push_back(n);
    last_class = cls;
    unsigned given = 0;
    while (given < n && available > 0 && next < objects.size()) { out[given++] = &objects[next++]; --available; }
    return given;
  }
  void drain(void* const* batch, unsigned n) {
    ++drain_calls;
    drain_sizes.push_back(n);
    drained.insert(drained.end(), batch, batch + n);
  }
  void* object(std::size_t i) { return &objects[i]; }
  unsigned last_class = 0;
};

// A bin over its own slots, with guard slots past the capacity that must stay untouched.
struct test_bin {
  static constexpr unsigned guard = 8;
  std::vector<void*> storage;
  cache_bin bin;
  explicit test_bin(unsigned capacity) : storage(capacity + guard, nullptr), bin{0, capacity, storage.data(), 0, 0} {}
  bool guards_intact() const {
    return std::all_of(storage.end() - guard, storage.end(), [](void* p) { return p == nullptr; });
  }
  std::vector<void*> contents() const { return std::vector<void*>(bin.slots, bin.slots + bin.count); }
};

void* token(std::uintptr_t i) { return reinterpret_cast<void*>(0x10000 + 16 * i); }

}  // namespace

TEST_CASE("batch_for: half the capacity, at least 1, at most 64") {
  auto batch = [](std::uint32_t capacity) { return batch_for(cache_bin{0, capacity, nullptr, 0, 0}); };
  CHECK(batch(0) == 1);
  CHECK(batch(1) == 1);
  CHECK(batch(2) == 1);
  CHECK(batch(3) == 1);
  CHECK(batch(10) == 5);
  CHECK(batch(128) == 64);
  CHECK(batch(129) == 64);
  CHECK(batch(4096) == 64);
}

TEST_CASE("cache_capacity: bounded by bytes and by count, never below 4") {
  for (unsigned cls = first_class; cls < cache_bins; ++cls) {
    const std::uint32_t size = size_classes[cls].size;
    CAPTURE(size);
    std::uint32_t n = cache_capacity(cls, 64 * 1024, 256);
    CHECK(n >= 4);
    CHECK(n <= 256);
    if (n > 4) CHECK(std::uint64_t(n) * size <= 64 * 1024);
    CHECK(cache_capacity(cls, 0, 256) == 4);
    CHECK(cache_capacity(cls, 1u << 30, 7) == 7);
  }
  CHECK(cache_capacity(first_class, 64 * 1024, 256) == 256);
  CHECK(cache_capacity(first_class, 1024, 256) == 64);
}

TEST_CASE("bin_pop / bin_push: a bounded stack that counts hits and frees") {
  test_bin t(5);
  CHECK(bin_pop(t.bin) == nullptr);
  CHECK(t.bin.hits == 0);
  for (unsigned i = 0; i < 5; ++i) CHECK(bin_push(t.bin, token(i)));
  CHECK(t.bin.count == 5);
  CHECK(t.bin.frees == 5);
  CHECK_FALSE(bin_push(t.bin, token(99)));   // full: the caller's slow path takes over
  CHECK(t.bin.frees == 5);
  CHECK(t.bin.count == 5);
  CHECK(t.guards_intact());
  for (unsigned i = 5; i-- > 0;) CHECK(bin_pop(t.bin) == token(i));   // newest first
  CHECK(bin_pop(t.bin) == nullptr);
  CHECK(t.bin.hits == 5);
  CHECK(t.bin.count == 0);
}

TEST_CASE("a bin that is not set up (capacity 0) takes nothing") {
  cache_bin bin{0, 0, nullptr, 0, 0};
  CHECK_FALSE(bin_push(bin, token(1)));
  CHECK(bin_pop(bin) == nullptr);
  CHECK(bin.frees == 0);
  CHECK(bin.hits == 0);
  // The slow path still frees the object: it goes straight to the source.
  fake_source source;
  bin_drain_and_push(bin, token(1), source);
  CHECK(std::count(source.drained.begin(), source.drained.end(), token(1)) == 1);
  CHECK(bin.count == 0);
  fake_source refill_source;
  void* p = bin_refill(bin, first_class, refill_source);
  CHECK(p == refill_source.object(0));
  CHECK(refill_source.refill_requests == std::vector<unsigned>{1});
  CHECK(bin.count == 0);
}

TEST_CASE("bin_refill: asks for one batch, returns the first object, keeps the rest") {
  test_bin t(10);
  fake_source source;
  void* p = bin_refill(t.bin, 7, source);
  CHECK(source.last_class == 7);
  CHECK(source.refill_calls == 1);
  CHECK(source.refill_requests == std::vector<unsigned>{5});
  CHECK(p == source.object(0));
  CHECK(t.bin.count == 4);
  CHECK(t.bin.hits == 0);    // a miss is not a hit
  CHECK(t.bin.frees == 0);   // nor is a refill a free
  for (std::size_t i = 4; i >= 1; --i) CHECK(bin_pop(t.bin) == source.object(i));

  SUBCASE("a source that runs dry gives nothing and leaves the bin alone") {
    source.available = 0;
    CHECK(bin_refill(t.bin, 7, source) == nullptr);
    CHECK(t.bin.count == 0);
  }
  SUBCASE("a source that gives fewer than asked") {
    source.available = 3;
    CHECK(bin_refill(t.bin, 7, source) == source.object(5));
    CHECK(t.contents() == std::vector<void*>{source.object(6), source.object(7)});
  }
}

TEST_CASE("bin_refill into an empty bin never writes past its capacity, for every capacity") {
  for (unsigned capacity = 1; capacity <= 300; ++capacity) {
    CAPTURE(capacity);
    test_bin t(capacity);
    fake_source source;
    REQUIRE(bin_refill(t.bin, first_class, source) != nullptr);
    CHECK(source.refill_requests.back() == batch_for(t.bin));
    CHECK(t.bin.count == batch_for(t.bin) - 1);
    CHECK(t.bin.count <= capacity);
    CHECK(t.guards_intact());
  }
}

TEST_CASE("bin_drain_and_push: drains one batch of the oldest, keeps the newest, then pushes") {
  test_bin t(10);
  fake_source source;
  for (unsigned i = 0; i < 10; ++i) REQUIRE(bin_push(t.bin, token(i)));
  bin_drain_and_push(t.bin, token(10), source);
  CHECK(source.drain_calls == 1);
  CHECK(source.drained == std::vector<void*>{token(0), token(1), token(2), token(3), token(4)});
  CHECK(t.contents() == std::vector<void*>{token(5), token(6), token(7), token(8), token(9), token(10)});
  CHECK(t.bin.frees == 11);
  CHECK(t.guards_intact());
  CHECK(bin_pop(t.bin) == token(10));   // the object just freed is the warmest

  SUBCASE("capacity 1: the one cached object goes, the new one stays") {
    test_bin one(1);
    REQUIRE(bin_push(one.bin, token(1)));
    fake_source s;
    bin_drain_and_push(one.bin, token(2), s);
    CHECK(s.drained == std::vector<void*>{token(1)});
    CHECK(one.contents() == std::vector<void*>{token(2)});
    CHECK(one.guards_intact());
  }
  SUBCASE("large capacity: the batch is capped at 64") {
    test_bin big(256);
    for (unsigned i = 0; i < 256; ++i) REQUIRE(bin_push(big.bin, token(i)));
    fake_source s;
    bin_drain_and_push(big.bin, token(256), s);
    REQUIRE(s.drained.size() == 64);
    for (unsigned i = 0; i < 64; ++i) CHECK(s.drained[i] == token(i));
    CHECK(big.bin.count == 256 - 64 + 1);
    CHECK(big.bin.slots[0] == token(64));
    CHECK(big.bin.slots[big.bin.count - 1] == token(256));
  }
}

TEST_CASE("bin_flush: everything back to the source, oldest first; nothing to do when empty") {
  test_bin t(8);
  fake_source source;
  bin_flush(t.bin, source);
  CHECK(source.drain_calls == 0);
  for (unsigned i = 0; i < 6; ++i) REQUIRE(bin_push(t.bin, token(i)));
  bin_flush(t.bin, source);
  CHECK(source.drain_calls == 1);
  CHECK(source.drained == std::vector<void*>{token(0), token(1), token(2), token(3), token(4), token(5)});
  CHECK(t.bin.count == 0);
  CHECK(bin_pop(t.bin) == nullptr);
}

// The way heap.cpp uses a thread's bin: pop, else refill; push, else drain and
// push. Whatever the order, no object is lost or handed out twice.
TEST_CASE("random use against a model: every object in exactly one place") {
  std::mt19937 random(12345);
  for (unsigned capacity : {1u, 2u, 3u, 4u, 7u, 16u, 64u, 129u, 256u}) {
    CAPTURE(capacity);
    test_bin t(capacity);
    fake_source source;
    std::vector<void*> held;                 // objects the "program" has
    std::uint64_t pops = 0, pushes = 0;
    for (unsigned step = 0; step < 20000; ++step) {
      if (held.empty() || (random() % 2 && held.size() < 2000)) {
        void* p = bin_pop(t.bin);
        if (p) ++pops; else p = bin_refill(t.bin, first_class, source);
        REQUIRE(p != nullptr);
        held.push_back(p);
      } else {
        std::size_t i = random() % held.size();
        void* p = held[i];
        held[i] = held.back();
        held.pop_back();
        if (bin_push(t.bin, p)) ++pushes; else bin_drain_and_push(t.bin, p, source);
      }
      REQUIRE(t.bin.count <= capacity);
    }
    CHECK(t.guards_intact());
    CHECK(t.bin.hits == pops);
    CHECK(t.bin.frees >= pushes);   // plus the pushes after a drain
    std::multiset<void*> everywhere(held.begin(), held.end());
    everywhere.insert(t.bin.slots, t.bin.slots + t.bin.count);
    everywhere.insert(source.drained.begin(), source.drained.end());
    CHECK(everywhere.size() == source.next);            // every object handed out is somewhere
    CHECK(std::set<void*>(everywhere.begin(), everywhere.end()).size() == everywhere.size());   // once
  }
}
