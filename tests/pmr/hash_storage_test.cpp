// Where hash maps' memory lands: local_resource packs nodes built in sequence
// and reuses a map's erased nodes for that map; bucket arrays start on a cache
// line (map_allocator asks for it; pcmalloc's classes above 224 B give it anyway).
#include <doctest/doctest.h>

#include <algorithm>
#include <array>
#include <cstdint>
#include <map>
#include <memory_resource>
#include <random>
#include <set>
#include <string>
#include <unordered_map>
#include <vector>

#include <pcmalloc/allocator.hpp>
#include <pcmalloc/arena.hpp>
#include <pcmalloc/pmr.hpp>

#include "support.hpp"

namespace {

using namespace pmr_test;

// The pcmalloc class size that a request of `bytes` is rounded to.
std::size_t class_size(std::size_t bytes) {
  void* p = pcm_malloc(bytes);
  std::size_t size = pcm_usable_size(p);
  pcm_free(p);
  return size;
}

// The size of the map's node: its most frequent single allocation.
std::size_t node_bytes(const recording_resource& recorder) {
  std::map<std::size_t, int> counts;
  for (const allocation_record& r : recorder.allocations()) ++counts[r.bytes];
  return std::max_element(counts.begin(), counts.end(), [](auto& a, auto& b) { return a.second < b.second; })->first;
}

// What local_resource carves for a request (pmr.hpp): 8-byte steps up to
// fine_limit when aligned to 8 or less, else pcmalloc's class size.
std::size_t local_size(std::size_t bytes, std::size_t alignment) {
  if (bytes <= pcm::pmr::local_resource::fine_limit && alignment <= 8) return (bytes + 7) / 8 * 8;
  return class_size(bytes);
}

template <class Map, class MakeKey>
void check_nodes_in_sequence(MakeKey make_key) {
  constexpr int count = 3000;
  pcm::pmr::local_resource local;
  recording_resource recorder(&local);   // sees the map's requests; memory still comes from `local`
  Map m(&recorder);
  std::vector<const char*> elements;     // in insertion order
  for (int k = 0; k < count; ++k) {
    auto [it, inserted] = m.emplace(make_key(k), typename Map::mapped_type{});
    REQUIRE(inserted);
    elements.push_back(reinterpret_cast<const char*>(&*it));
  }
  const std::size_t bytes = node_bytes(recorder);
  std::size_t alignment = 0;
  for (const allocation_record& r : recorder.allocations())
    if (r.bytes == bytes) alignment = r.alignment;
  const std::size_t stride = local_size(bytes, alignment);
  CAPTURE(node_bytes(recorder));
  CAPTURE(stride);
  int adjacent = 0;
  for (std::size_t i = 1; i < elements.size(); ++i) adjacent += elements[i] - elements[i - 1] == std::ptrdiff_t(stride);
  CAPTURE(adjacent);
  CHECK(adjacent >= (count - 1) * 9 / 10);
  CHECK(local.statistics().reused == 0);
}

}  // namespace

TEST_SUITE("pmr") {

TEST_CASE("local_resource: nodes of a map built in sequence sit next to each other") {
  SUBCASE("int -> int") {
    check_nodes_in_sequence<std::pmr::unordered_map<int, int>>([](int k) { return k; });
  }
  SUBCASE("uint64_t -> 40 bytes") {
    check_nodes_in_sequence<std::pmr::unordered_map<std::uint64_t, std::array<char, 40>>>(
        [](int k) { return std::uint64_t(k) * 977; });
  }
  SUBCASE("short pmr::string -> int (hash cached in the node)") {
    check_nodes_in_sequence<std::pmr::unordered_map<std::pmr::string, int>>(
        [](int k) { return std::pmr::string(std::to_string(k * 10 + 7)); });
  }
  SUBCASE("pcm::unordered_map (map_allocator) int -> int") {
    check_nodes_in_sequence<pcm::unordered_map<int, int>>([](int k) { return k; });
  }
}

TEST_CASE("local_resource: a map's erased nodes are reused by the same map") {
  pcm::pmr::local_resource local;
  std::pmr::unordered_map<int, std::uint64_t> m(&local);
  constexpr int count = 4000, erased = 1000;
  for (int k = 0; k < count; ++k) m.emplace(k, std::uint64_t(k) * 3);
  std::mt19937 random(7);
  std::vector<int> keys(count);
  for (int k = 0; k < count; ++k) keys[k] = k;
  std::shuffle(keys.begin(), keys.end(), random);
  keys.resize(erased);
  std::set<const void*> freed;
  for (int k : keys) {
    freed.insert(&*m.find(k));
    m.erase(k);
  }
  const std::size_t reused_before = local.statistics().reused;
  const std::size_t held_before = local.statistics().bytes_held;
  int recycled = 0;
  for (int i = 0; i < erased; ++i) {
    auto [it, inserted] = m.emplace(count + i, std::uint64_t(i));
    REQUIRE(inserted);
    recycled += freed.count(&*it) == 1;
  }
  CHECK(recycled == erased);
  CHECK(local.statistics().reused - reused_before >= std::size_t(erased));
  CHECK(local.statistics().bytes_held == held_before);
  for (int k = 0; k < count + erased; ++k) {
    bool gone = std::find(keys.begin(), keys.end(), k) != keys.end();
    REQUIRE(m.count(k) == (gone ? 0u : 1u));
  }
}

TEST_CASE("pcm::unordered_map: bucket arrays start on a cache line, on every resource") {
  pcm::arena a;
  pcm::pmr::arena_resource on_arena(a);
  pcm::pmr::local_resource local;
  std::pmr::memory_resource* resources[] = {pcm::pmr::global_resource(), &on_arena, &local};
  for (std::pmr::memory_resource* resource : resources) {
    recording_resource recorder(resource);
    {
      pcm::unordered_map<std::uint64_t, std::uint64_t> m(&recorder);
      for (std::uint64_t k = 0; k < 20000; ++k) m.emplace(k, k);
      pcm::unordered_set<int> s(&recorder);
      for (int k = 0; k < 3000; ++k) s.insert(k);
    }
    const std::size_t node = node_bytes(recorder);
    int arrays = 0, misaligned = 0, wrong_request = 0;
    for (const allocation_record& r : recorder.allocations()) {
      if (r.alignment != 64) {
        // Only nodes ask for their natural alignment.
        wrong_request += r.alignment > 16;
        continue;
      }
      ++arrays;
      misaligned += !is_aligned(r.pointer, 64);
    }
    CAPTURE(node);
    CHECK(arrays >= 8);   // a dozen rehashes of the map, more of the set
    CHECK(misaligned == 0);
    CHECK(wrong_request == 0);
    CHECK(recorder.live_bytes() == 0);
  }
}

TEST_CASE("std::pmr::unordered_map on arena_resource: bucket arrays of 29 and more buckets are 64-byte aligned") {
  RELEASE_LIBRARY_ONLY("the size classes' alignment");
  pcm::arena a;
  pcm::pmr::arena_resource on_arena(a);
  std::pmr::memory_resource* resources[] = {pcm::pmr::global_resource(), &on_arena};
  for (std::pmr::memory_resource* resource : resources) {
    recording_resource recorder(resource);
    {
      std::pmr::unordered_map<int, int> m(&recorder);
      for (int k = 0; k < 20000; ++k) m.emplace(k, k);
    }
    int arrays = 0, misaligned = 0;
    for (const allocation_record& r : recorder.allocations()) {
      if (r.bytes < 232 || r.bytes % 8 != 0) continue;
      ++arrays;
      misaligned += !is_aligned(r.pointer, 64);
    }
    CHECK(arrays >= 6);
    CHECK(misaligned == 0);
  }
}

TEST_CASE("arena_resource: every request of 232 bytes and more lands on a 64-byte boundary") {
  RELEASE_LIBRARY_ONLY("the size classes' alignment");
  // Why bucket arrays line up without asking: every class above 224 B is a multiple of 64.
  pcm::arena a;
  pcm::pmr::arena_resource on_arena(a);
  std::pmr::memory_resource* resources[] = {pcm::pmr::global_resource(), &on_arena};
  for (std::pmr::memory_resource* resource : resources) {
    int misaligned = 0;
    for (std::size_t bytes = 232; bytes <= 40 * KiB; bytes += bytes < 4 * KiB ? 8 : 72) {
      void* p = resource->allocate(bytes, alignof(void*));
      misaligned += !is_aligned(p, 64);
      CHECK(class_size(bytes) % 64 == 0);
      resource->deallocate(p, bytes, alignof(void*));
    }
    CHECK(misaligned == 0);
  }
}

}  // TEST_SUITE
