// pcm::node_map's reuse of its storage: after clear() (or erase) a refill of
// the same shape allocates nothing, through every insert path; values that
// are not kept (shared_ptr) are released as std releases them; transparent
// lookups build no key; and a map_pool of node_maps hands back empty maps that
// refill without allocating.
#include <doctest/doctest.h>

#include <atomic>
#include <cstdint>
#include <functional>
#include <iterator>
#include <memory>
#include <memory_resource>
#include <set>
#include <stdexcept>
#include <string>
#include <string_view>
#include <tuple>
#include <utility>
#include <vector>

#include <pcmalloc/map_pool.hpp>
#include <pcmalloc/node_map.hpp>
#include <pcmalloc/pmr.hpp>

#include "node_map_support.hpp"
#include "support.hpp"

namespace {

using namespace node_map_test;
using text_map = pcm::node_map<std::pmr::string, std::pmr::string>;
using text_to_shared = pcm::node_map<std::pmr::string, std::shared_ptr<int>>;     // keys kept, values destroyed
using number_to_shared = pcm::node_map<std::uint64_t, std::shared_ptr<int>>;

// n keys and values, every key of one length and every value of another (past
// the small-string buffer), on the global resource: a map copies them into
// strings of its own.
struct entries {
  std::vector<std::pmr::string> keys, values;
  entries(int n, int round) {
    const std::string value_name = "value of round " + std::to_string(round % 10);
    for (int i = 0; i < n; ++i) {
      keys.emplace_back(long_text("header name", std::uint64_t(i)).c_str());
      values.emplace_back(long_text(value_name.c_str(), std::uint64_t(i)).c_str());
    }
  }
  template <class Insert>
  void put_into(text_map& m, Insert insert, std::size_t step = 1) const {
    for (std::size_t i = 0; i < keys.size(); i += step) insert(m, keys[i], values[i]);
  }
  bool held_by(const text_map& m) const {
    if (m.size() != keys.size()) return false;
    for (std::size_t i = 0; i < keys.size(); ++i) {
      const auto found = m.find(keys[i]);
      if (found == m.end() || found->second != values[i]) return false;
    }
    return true;
  }
};

using insert_path = void (*)(text_map&, const std::pmr::string&, const std::pmr::string&);
const std::pair<const char*, insert_path> insert_paths[] = {
    {"emplace", [](text_map& m, const std::pmr::string& k, const std::pmr::string& v) { m.emplace(k, v); }},
    {"try_emplace", [](text_map& m, const std::pmr::string& k, const std::pmr::string& v) { m.try_emplace(k, v); }},
    {"insert_or_assign",
     [](text_map& m, const std::pmr::string& k, const std::pmr::string& v) { m.insert_or_assign(k, v); }},
    {"operator[]", [](text_map& m, const std::pmr::string& k, const std::pmr::string& v) { m[k] = v; }},
    {"insert(value_type)",
     [](text_map& m, const std::pmr::string& k, const std::pmr::string& v) { m.insert(text_map::value_type(k, v)); }},
};

std::set<const void*> element_addresses(const text_map& m) {
  std::set<const void*> seen;
  for (const auto& e : m) seen.insert(&e);
  return seen;
}

// A key type that counts every object of it built (copies and moves too),
// with a hash and equality over std::string_view that say they are transparent.
struct counted_key {
  static inline int made = 0;
  std::string text;
  explicit counted_key(std::string_view t) : text(t) { ++made; }
  counted_key(const counted_key& o) : text(o.text) { ++made; }
  counted_key(counted_key&& o) noexcept : text(std::move(o.text)) { ++made; }
  counted_key& operator=(const counted_key&) = default;
  operator std::string_view() const noexcept { return text; }
};
struct text_hash {
  using is_transparent = void;
  std::size_t operator()(std::string_view s) const noexcept { return std::hash<std::string_view>()(s); }
};
struct text_equal {
  using is_transparent = void;
  bool operator()(std::string_view a, std::string_view b) const noexcept { return a == b; }
};
using transparent_map = pcm::node_map<counted_key, std::string, text_hash, text_equal>;

// Without is_transparent, only the key type itself looks up.
template <class Map>
concept finds_by_view = requires(Map& m, std::string_view k) { m.find(k); };
static_assert(!finds_by_view<pcm::node_map<std::string, int>>);
static_assert(finds_by_view<transparent_map>);

}  // namespace

TYPE_TO_STRING(text_to_shared);
TYPE_TO_STRING(number_to_shared);

TEST_SUITE("pmr") {

TEST_CASE("node_map: after clear() or erase, a refill of the same shape allocates nothing, through every insert path") {
  constexpr int count = 300;
  for (const auto& path : insert_paths) {
    CAPTURE(path.first);
    const insert_path insert = path.second;
    pmr_test::recording_resource recorder;
    text_map m{text_map::allocator_type(&recorder)};
    const entries first(count, 1);
    first.put_into(m, insert);
    REQUIRE(first.held_by(m));
    CHECK(recorder.allocations().size() >= 2 * count);   // every string has a block of its own
    CHECK(m.begin()->second.get_allocator().resource() == &recorder);
    const std::set<const void*> nodes = element_addresses(m);
    const std::size_t allocations = recorder.allocations().size(), deallocations = recorder.deallocations();
    for (int round = 2; round < 6; ++round) {
      m.clear();
      CHECK(m.empty());
      CHECK(m.begin() == m.end());
      CHECK_FALSE(m.contains(first.keys[0]));
      const entries refill(count, round);
      refill.put_into(m, insert);
      CHECK(refill.held_by(m));
      CHECK(element_addresses(m) == nodes);
    }
    // Every other entry erased, then put back with other values.
    for (std::size_t i = 0; i < first.keys.size(); i += 2) CHECK(m.erase(first.keys[i]) == 1);
    const entries again(count, 7);
    again.put_into(m, [](text_map& map, const auto& k, const auto& v) { map.insert_or_assign(k, v); }, 2);
    CHECK(m.size() == count);
    CHECK(element_addresses(m) == nodes);
    CHECK(recorder.allocations().size() == allocations);
    CHECK(recorder.deallocations() == deallocations);
  }
}

TEST_CASE("node_map: after shrink_to_fit() on an empty map, its resource holds nothing of it") {
  pmr_test::recording_resource recorder;
  text_map m{text_map::allocator_type(&recorder)};
  entries(100, 1).put_into(m, insert_paths[0].second);
  m.clear();
  CHECK(recorder.live_bytes() > 0);   // the kept nodes, strings and index
  m.shrink_to_fit();
  CHECK(recorder.live_bytes() == 0);
  CHECK(m.bucket_count() == 0);
  const entries refill(100, 2);
  refill.put_into(m, insert_paths[0].second);
  CHECK(refill.held_by(m));
}

// A value type that keeps no capacity is destroyed when its element goes,
// as std::unordered_map destroys it: a shared_ptr lets its object go.
TEST_CASE_TEMPLATE("node_map: values that are not kept are released by erase, clear, assignment and destruction",
                   Table, text_to_shared, number_to_shared) {
  using key_type = typename Table::key_type;
  const auto owned = std::make_shared<int>(7);
  {
    Table m;
    for (std::uint64_t n = 0; n < 20; ++n) m.emplace(make<key_type>(n), owned);
    CHECK(owned.use_count() == 21);
    CHECK(m.erase(make<key_type>(0)) == 1);
    CHECK(owned.use_count() == 20);
    m.erase(m.begin());
    CHECK(owned.use_count() == 19);
    m.erase(m.begin(), std::next(m.begin(), 3));
    CHECK(owned.use_count() == 16);
    m.insert_or_assign(make<key_type>(19), std::make_shared<int>(8));
    m[make<key_type>(18)] = nullptr;
    m.at(make<key_type>(17)).reset();
    CHECK(owned.use_count() == 13);
    Table copy(m);
    CHECK(owned.use_count() == 25);
    copy = Table();
    CHECK(owned.use_count() == 13);
    m.clear();
    CHECK(owned.use_count() == 1);
    for (std::uint64_t n = 0; n < 10; ++n) m.try_emplace(make<key_type>(n), owned);   // into the cleared nodes
    CHECK(owned.use_count() == 11);
    for (std::uint64_t n = 0; n < 5; ++n) m.erase(make<key_type>(n));
    CHECK(owned.use_count() == 6);
  }
  CHECK(owned.use_count() == 1);
}

TEST_CASE("node_map: emplace(piecewise_construct, ...) with two-element tuples builds key and value in place") {
  pcm::node_map<std::string, std::string> m;
  auto [it, inserted] = m.emplace(std::piecewise_construct, std::forward_as_tuple(20, 'k'), std::forward_as_tuple(30, 'v'));
  CHECK(inserted);
  CHECK(it->first == std::string(20, 'k'));
  CHECK(it->second == std::string(30, 'v'));
  CHECK_FALSE(m.emplace(std::piecewise_construct, std::forward_as_tuple(20, 'k'), std::forward_as_tuple(3, 'w')).second);
  CHECK(m.at(std::string(20, 'k')) == std::string(30, 'v'));
}

// Lookups by std::string_view, const char* or std::string build no key; an
// insert by one of them builds exactly one (the element's).
TEST_CASE("node_map: transparent lookups and inserts build no temporary key") {
  transparent_map m;
  for (std::uint64_t n = 0; n < 50; ++n) m.emplace(counted_key(long_text("key", n)), long_text("value", n));
  const std::string present = long_text("key", 7), absent = long_text("key", 99);
  const std::string_view present_view = present, absent_view = absent;
  const char* const present_text = present.c_str();
  const transparent_map& constant = m;
  const int made = counted_key::made;

  CHECK(m.find(present_view)->second == long_text("value", 7));
  CHECK(m.find(present_text) != m.end());
  CHECK(m.find(present) != m.end());
  CHECK(constant.find(present_view) != constant.end());
  CHECK(m.find(absent_view) == m.end());
  CHECK(m.contains(present_text));
  CHECK_FALSE(m.contains(absent_view));
  CHECK(m.count(present_view) == 1);
  CHECK(m.count(absent.c_str()) == 0);
  CHECK(std::distance(m.equal_range(present_view).first, m.equal_range(present_view).second) == 1);
  CHECK(constant.equal_range(absent_view).first == constant.end());
  CHECK(m.at(present_view) == long_text("value", 7));
  CHECK(constant.at(present_text) == long_text("value", 7));
  CHECK_THROWS_AS((void)m.at(absent_view), std::out_of_range);
  CHECK_THROWS_AS((void)constant.at(absent.c_str()), std::out_of_range);
  CHECK_FALSE(m.try_emplace(present_view, "ignored").second);
  CHECK(m[present_text] == long_text("value", 7));
  CHECK_FALSE(m.insert_or_assign(present_view, "assigned").second);
  CHECK(m.at(present_view) == "assigned");
  CHECK(m.erase(absent_view) == 0);
  CHECK(m.erase(present_text) == 1);
  CHECK(m.size() == 49);
  CHECK(counted_key::made == made);

  const std::string other = long_text("key", 100), third = long_text("key", 101);
  CHECK(m.try_emplace(absent_view, "fresh").second);
  CHECK(counted_key::made == made + 1);
  m[std::string_view(other)] = "by operator[]";
  CHECK(counted_key::made == made + 2);
  CHECK(m.insert_or_assign(third.c_str(), "by insert_or_assign").second);
  CHECK(counted_key::made == made + 3);
  CHECK(m.at(absent) == "fresh");
  CHECK(m.at(other) == "by operator[]");
  CHECK(m.at(third) == "by insert_or_assign");
  CHECK(m.size() == 52);
}

TEST_CASE("map_pool of node_map: a returned map comes back empty and refills without allocating") {
  pcm::map_pool<text_map> pool;
  constexpr int count = 200, rounds = 20;
  const text_map* first = nullptr;
  std::size_t allocations = 0;
  for (int round = 0; round < rounds; ++round) {
    CAPTURE(round);
    auto h = pool.acquire();
    REQUIRE(h.pooled());
    CHECK(h->empty());
    CHECK(h->begin() == h->end());
    auto* local = dynamic_cast<pcm::pmr::local_resource*>(h->get_allocator().resource());
    REQUIRE(local != nullptr);
    if (round == 0) first = h.get();
    CHECK(h.get() == first);
    const entries e(count, round);
    e.put_into(*h, insert_paths[round % std::size(insert_paths)].second);
    CHECK(e.held_by(*h));
    CHECK(h->begin()->second.get_allocator().resource() == local);
    if (round == 0) allocations = local->statistics().allocations;
    CHECK(local->statistics().allocations == allocations);
  }
  const pcm::map_pool_statistics s = pool.statistics();
  CHECK(s.acquires == rounds);
  CHECK(s.releases == rounds);
  CHECK(s.misses == 1);
  CHECK(s.hits == rounds - 1);
  CHECK(s.outstanding == 0);
  CHECK(s.idle == 1);
  CHECK(s.hit_rate() == doctest::Approx(double(rounds - 1) / rounds));
  CHECK(s.live_bytes > count * 2 * 30);   // the kept nodes and their strings
  CHECK(s.live_bytes <= s.held_bytes);
}

// Found by review: only strings, vectors of plain data and plain data stay in
// free nodes; anything else is destroyed on erase and clear, as std does.
TEST_CASE("node_map: a vector of owners is destroyed on erase and clear, not kept") {
  auto object = std::make_shared<int>(7);
  pcm::node_map<std::string, std::vector<std::shared_ptr<int>>> m;
  m.emplace("a", std::vector<std::shared_ptr<int>>{object});
  m.erase("a");
  CHECK(object.use_count() == 1);
  m.emplace("b", std::vector<std::shared_ptr<int>>{object});
  m.clear();
  CHECK(object.use_count() == 1);
}

TEST_CASE("node_map: a reused node builds a reference value anew instead of assigning through it") {
  int x = 1, y = 2;
  pcm::node_map<std::string, std::tuple<int&>> m;
  m.emplace("a", std::tie(x));
  m.erase("a");
  m.emplace("b", std::tie(y));
  CHECK(x == 1);
  CHECK(&std::get<0>(m.at("b")) == &y);
}

TEST_CASE("node_map: values that cannot be assigned (atomics, const members) work as with std") {
  struct fixed {
    const int value;
  };
  pcm::node_map<std::string, std::atomic<int>> counters;
  counters["a"]++;
  counters.erase("a");
  counters["a"]++;
  CHECK(counters["a"].load() == 1);
  pcm::node_map<int, fixed> constants;
  constants.try_emplace(1, fixed{5});
  constants.erase(1);
  constants.try_emplace(2, fixed{6});
  CHECK(constants.at(2).value == 6);
}

// What node_map assigns into a kept string with (recycle::assign_unaliased,
// no check for text inside the target): every length the fast path copies in
// its own way, shorter, equal and longer than before, and past the capacity.
TEST_CASE("recycle::assign_unaliased: a kept string takes any text, keeping its capacity when it fits") {
  pmr_test::recording_resource recorder;
  std::pmr::string kept(std::string(64, 'x'), &recorder);
  const char* storage = kept.data();
  const std::size_t capacity = kept.capacity();
  std::string source;
  for (std::size_t n : {64, 40, 17, 16, 15, 9, 8, 7, 4, 3, 1, 0, 33, 64}) {
    source.assign(n, 'a');
    for (std::size_t i = 0; i < n; ++i) source[i] = static_cast<char>('a' + i % 26);
    pcm::recycle::assign_unaliased(kept, std::string_view(source));
    CHECK(std::string_view(kept) == source);
    CHECK(kept.data() == storage);
    CHECK(kept.capacity() == capacity);
  }
  source.assign(capacity + 1, 'z');
  pcm::recycle::assign_unaliased(kept, std::string_view(source));
  CHECK(std::string_view(kept) == source);
  CHECK(kept.get_allocator().resource() == &recorder);
}

}  // TEST_SUITE
