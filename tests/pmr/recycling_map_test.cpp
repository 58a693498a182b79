// pcm::recycling_map: the semantics of the map it wraps (insert unless
// present, lookups, erase, operator[], try_emplace, insert_or_assign), nodes
// and string capacity kept across clear() so that a refill like the last one
// allocates nothing, the max_kept bound, and map_pool statistics as defined in
// map_pool.hpp (live = what a map used when it last went back).
#include <doctest/doctest.h>

#include <cstdint>
#include <map>
#include <memory_resource>
#include <set>
#include <string>
#include <string_view>
#include <unordered_map>

#include <pcmalloc/allocator.hpp>
#include <pcmalloc/map_pool.hpp>
#include <pcmalloc/pmr.hpp>

#include "support.hpp"

namespace {

using string_map = std::pmr::unordered_map<std::pmr::string, std::pmr::string>;
using ordered_string_map = std::pmr::map<std::pmr::string, std::pmr::string>;
using number_map = pcm::unordered_map<std::uint64_t, std::uint64_t>;

// Past the small-string buffer, so every key and value owns a block.
std::string key_text(int i) { return "header name number " + std::to_string(i); }
std::string value_text(int round, int i) {
  std::string v = "value of round " + std::to_string(round) + " entry " + std::to_string(i);
  v.resize(40, '.');
  return v;
}

template <class Map>
void fill(pcm::recycling_map<Map>& m, int round, int n) {
  for (int i = 0; i < n; ++i) m.emplace(key_text(i), value_text(round, i));
}
template <class Map>
bool holds(const pcm::recycling_map<Map>& m, int round, int n) {
  if (m.size() != std::size_t(n)) return false;
  for (int i = 0; i < n; ++i) {
    auto it = m.find(typename Map::key_type(key_text(i).c_str()));
    if (it == m.end() || std::string_view(it->second.data(), it->second.size()) != value_text(round, i)) return false;
  }
  return true;
}

std::set<const void*> node_addresses(const auto& m) {
  std::set<const void*> seen;
  for (const auto& entry : m) seen.insert(&entry);
  return seen;
}

}  // namespace

TEST_SUITE("pmr") {

// Kept nodes are taken in an order of their own, so a key may land in a node
// whose string was shorter: that string grows once (to at least twice its
// length), and after a few refills of the same shape none allocates again.
TEST_CASE_TEMPLATE("recycling_map: refills like the last ones reuse nodes and strings, allocating nothing", Map,
                   string_map, ordered_string_map) {
  pmr_test::recording_resource recorder;
  pcm::recycling_map<Map> m(&recorder);
  fill(m, 1, 50);
  CHECK(holds(m, 1, 50));
  const auto first_nodes = node_addresses(m);
  const std::size_t first_allocations = recorder.allocations().size();
  m.clear();
  CHECK(m.empty());
  CHECK(m.kept() == 50);
  CHECK(m.find(typename Map::key_type(key_text(3).c_str())) == m.end());
  for (int round = 2; round < 6; ++round) {
    fill(m, round, 50);
    CHECK(holds(m, round, 50));
    CHECK(node_addresses(m) == first_nodes);
    m.clear();
  }
  // Strings that grew, at most one per key and refill: far fewer than a new map's.
  CHECK(recorder.allocations().size() - first_allocations < 50);
  const std::size_t before = recorder.allocations().size();
  const std::size_t freed_before = recorder.deallocations();
  for (int round = 6; round < 10; ++round) {
    fill(m, round, 50);
    CHECK(holds(m, round, 50));
    CHECK(node_addresses(m) == first_nodes);
    m.clear();
  }
  CHECK(recorder.allocations().size() == before);
  CHECK(recorder.deallocations() == freed_before);
}

TEST_CASE("recycling_map: the wrapped map's insert semantics") {
  pcm::recycling_map<string_map> m(pcm::pmr::global_resource());
  fill(m, 1, 10);
  m.clear();
  SUBCASE("emplace leaves a present key alone, and keeps the node it did not use") {
    CHECK(m.emplace("k", "first").second);
    auto [it, inserted] = m.emplace("k", "second");
    CHECK_FALSE(inserted);
    CHECK(it->second == "first");
    CHECK(m.size() == 1);
    CHECK(m.kept() == 9);
  }
  SUBCASE("try_emplace and insert_or_assign") {
    CHECK(m.try_emplace("k", "first").second);
    CHECK_FALSE(m.try_emplace("k", "second").second);
    CHECK(m.find("k")->second == "first");
    CHECK_FALSE(m.insert_or_assign("k", "third").second);
    CHECK(m.find("k")->second == "third");
    CHECK(m.insert_or_assign("j", "fourth").second);
    CHECK(m.size() == 2);
  }
  SUBCASE("operator[] gives a kept node an empty value") {
    std::pmr::string& v = m["fresh"];
    CHECK(v.empty());
    v = "set";
    CHECK(m["fresh"] == "set");
    CHECK(m.size() == 1);
  }
  SUBCASE("erase keeps the node for the next insert") {
    m.emplace("a", "1");
    m.emplace("b", "2");
    const std::size_t kept = m.kept();
    CHECK(m.erase(std::pmr::string("a")) == 1);
    CHECK(m.erase(std::pmr::string("a")) == 0);
    CHECK(m.kept() == kept + 1);
    auto it = m.find("b");
    auto next = m.erase(it);
    CHECK(next == m.end());
    CHECK(m.empty());
    CHECK(m.kept() == kept + 2);
  }
  SUBCASE("longer text than a kept string holds, and text copied from another entry") {
    std::string long_value(300, 'x');
    m.emplace("long", long_value);
    CHECK(std::string_view(m.find("long")->second) == long_value);
    std::pmr::string& source = m.find("long")->second;
    m.emplace("copy", std::string_view(source).substr(10, 50));
    CHECK(std::string_view(m.find("copy")->second) == std::string(50, 'x'));
  }
}

TEST_CASE("recycling_map: numbers, and the max_kept bound") {
  pcm::recycling_map<number_map> m(pcm::pmr::global_resource());
  m.max_kept = 10;
  for (std::uint64_t i = 0; i < 100; ++i) m.emplace(i, i * 3);
  CHECK(m.size() == 100);
  m.clear();
  CHECK(m.empty());
  CHECK(m.kept() == 10);
  for (std::uint64_t i = 0; i < 20; ++i) m.emplace(i + 1000, i);
  CHECK(m.size() == 20);
  CHECK(m.kept() == 0);
  CHECK(m.find(std::uint64_t(1005))->second == 5);
  m.shrink();
  CHECK(m.kept() == 0);
}

TEST_CASE("map_pool of recycling_map: a returned map refills from its own kept nodes") {
  pcm::map_pool<pcm::recycling_map<string_map>> pool;
  std::size_t allocations = 0;
  for (int round = 0; round < 20; ++round) {
    auto h = pool.acquire();
    CHECK(h->empty());
    auto* local = dynamic_cast<pcm::pmr::local_resource*>(h->get_allocator().resource());
    REQUIRE(local != nullptr);
    fill(*h, round, 30);
    CHECK(holds(*h, round, 30));
    if (round == 5) allocations = local->statistics().allocations;
    if (round > 5) CHECK(local->statistics().allocations == allocations);
  }
  pcm::map_pool_statistics s = pool.statistics();
  CHECK(s.misses == 1);
  CHECK(s.live_bytes > 30 * 2 * 40);   // the kept nodes and their strings
  CHECK(s.live_bytes <= s.held_bytes);
  // No bound on fragmentation here: this first map outgrew its first block
  // (1 KiB, doubling), so its last block is partly empty (about half).
}

TEST_CASE_TEMPLATE("map_pool statistics: live bytes are what each map used when it went back", Map, string_map,
                   number_map) {
  pcm::map_pool<Map> pool;
  std::size_t used = 0;
  {
    auto h = pool.acquire();
    for (int i = 0; i < 200; ++i) {
      if constexpr (std::is_integral_v<typename Map::key_type>) h->emplace(std::uint64_t(i), std::uint64_t(i));
      else h->emplace(key_text(i), value_text(0, i));
    }
    auto* local = dynamic_cast<pcm::pmr::local_resource*>(h->get_allocator().resource());
    REQUIRE(local != nullptr);
    used = local->statistics().bytes_live;
    // A map in use is not read: the figures stay those of its creation.
    CHECK(pool.statistics().live_bytes < used);
  }
  pcm::map_pool_statistics s = pool.statistics();
  CHECK(s.live_bytes == used);
  CHECK(s.held_bytes >= used);
  CHECK(s.fragmentation() == doctest::Approx(1.0 - double(used) / double(s.held_bytes)));
}

}  // TEST_SUITE
