// pcm::node_map and pcm::node_set against std::unordered_map and
// std::unordered_set: random operations (every insert, lookup and erase form,
// copies, moves, swaps, clear, reserve, rehash, shrink_to_fit), with numeric
// keys under good and deliberately bad hashes and string keys; keys that share
// a home group (overflow counts); pointers that survive index rebuilds; and the
// storage that the header documents, seen from addresses and from what the
// memory_resource is asked for.
#include <doctest/doctest.h>

#include <algorithm>
#include <cstdint>
#include <iterator>
#include <memory>
#include <memory_resource>
#include <random>
#include <set>
#include <ranges>
#include <stdexcept>
#include <string>
#include <type_traits>
#include <unordered_map>
#include <unordered_set>
#include <utility>
#include <vector>

#include <pcmalloc/node_map.hpp>

#include "node_map_support.hpp"
#include "support.hpp"

namespace {

using namespace node_map_test;

template <class Table, bool = is_map<Table>>
struct oracle_of {
  using type = std::unordered_set<typename Table::key_type>;
};
template <class Table>
struct oracle_of<Table, true> {
  using type = std::unordered_map<typename Table::key_type, typename Table::mapped_type>;
};

// One random run: every operation is applied to the table and to the oracle
// (the standard container), their answers compared, and every check_every
// operations their whole contents. Stops at the first difference.
template <class Table>
class differential {
  using key_type = typename Table::key_type;
  using value_type = typename Table::value_type;
  using oracle_type = typename oracle_of<Table>::type;
  static constexpr bool map = is_map<Table>;
  static constexpr int check_every = 499;

 public:
  differential(std::uint64_t seed, std::uint64_t key_range) : random_(seed), key_range_(key_range) {}

  // Empty when every operation agreed; else the first disagreement.
  std::string run(int operations) {
    for (operation_ = 0; operation_ < operations && failure_.empty(); ++operation_) {
      step();
      if (operation_ % check_every == 0) compare("the periodic comparison");
    }
    compare("the final comparison");
    return failure_;
  }

 private:
  void step() {
    switch (random_() % 40) {
      case 0: case 1: case 2: case 3: return insert();
      case 4: case 5: case 6: return emplace();
      case 7: case 8: return try_emplace();
      case 9: return insert_many();
      case 10: case 11: return insert_or_assign();
      case 12: case 13: return subscript();
      case 14: case 15: return at();
      case 16: case 17: case 18: case 19: return lookup();
      case 20: case 21: case 22: return erase_key();
      case 23: case 24: return erase_iterator();
      case 25: return erase_range();
      case 26: return erase_while_iterating();
      case 27: return storage();
      case 28: return copy_construct();
      case 29: return copy_assign();
      case 30: return move_around();
      case 31: return swap();
      case 32: return equality();
      case 33: if (random_() % 40 == 0) clear(); return;
      default: return lookup();
    }
  }

  void expect(bool ok, const std::string& what) {
    if (!ok && failure_.empty()) failure_ = "operation " + std::to_string(operation_) + ", " + doing_ + ": " + what;
  }
  void compare(const char* when) {
    doing_ = when;
    const std::string d = difference(table_, oracle_);
    expect(d.empty(), d);
  }

  key_type key() { return make<key_type>(random_() % key_range_); }
  auto mapped() { return make<typename Table::mapped_type>(random_() % 1000000); }
  value_type element() {
    if constexpr (map) return value_type(key(), mapped());
    else return key();
  }
  template <class Got, class Want>
  void same_insert(const Got& got, const Want& want) {
    expect(got.second == want.second, "inserted where std did not, or not where std did");
    expect(*got.first == *want.first, "the element the insert returns");
  }

  void insert() {
    const value_type e = element();
    const auto want = oracle_.insert(e);
    switch (random_() % 4) {
      case 0: doing_ = "insert(const value_type&)"; return same_insert(table_.insert(e), want);
      case 1: doing_ = "insert(value_type&&)"; return same_insert(table_.insert(value_type(e)), want);
      case 2:
        doing_ = "insert(hint, value)";
        expect(*table_.insert(table_.cbegin(), e) == *want.first, "the element insert(hint) returns");
        return;
      default:
        if constexpr (map) {
          doing_ = "insert(std::pair<K, V>&&)";
          return same_insert(table_.insert(std::pair<key_type, typename Table::mapped_type>(e.first, e.second)), want);
        } else {
          doing_ = "emplace_hint";
          expect(*table_.emplace_hint(table_.cend(), e) == *want.first, "the element emplace_hint returns");
        }
    }
  }

  void emplace() {
    const value_type e = element();
    const auto want = oracle_.insert(e);
    if constexpr (map) {
      // emplace(piecewise_construct, ...) with one-element tuples does not
      // compile (node_map_compile_test.cpp); with two, node_map_reuse_test.cpp.
      if (random_() % 2) {
        doing_ = "emplace(key, value)";
        return same_insert(table_.emplace(e.first, e.second), want);
      }
      doing_ = "emplace(pair)";
      same_insert(table_.emplace(e), want);
    } else {
      doing_ = "emplace(key)";
      same_insert(table_.emplace(e), want);
    }
  }

  void try_emplace() {
    if constexpr (map) {
      const key_type k = key();
      const auto v = mapped();
      if constexpr (std::is_same_v<typename Table::mapped_type, std::string>) {
        if (random_() % 3 == 0) {   // a value built from several arguments
          doing_ = "try_emplace(key, count, char)";
          const std::size_t length = random_() % 40;
          return same_insert(table_.try_emplace(k, length, 'x'), oracle_.try_emplace(k, length, 'x'));
        }
      }
      if (random_() % 2) {
        doing_ = "try_emplace(key, value)";
        return same_insert(table_.try_emplace(k, v), oracle_.try_emplace(k, v));
      }
      doing_ = "try_emplace(hint, key&&, value)";
      const auto want = oracle_.try_emplace(k, v);
      expect(*table_.try_emplace(table_.cbegin(), key_type(k), v) == *want.first, "the element try_emplace returns");
    } else {
      insert();
    }
  }

  // A range with repeated keys, or an initializer list.
  void insert_many() {
    std::vector<value_type> range;
    for (std::uint64_t n = random_() % 9; n > 0; --n) range.push_back(element());
    if (!range.empty() && random_() % 2) range.push_back(range.front());
    if (random_() % 2) {
      doing_ = "insert(first, last)";
      table_.insert(range.begin(), range.end());
      oracle_.insert(range.begin(), range.end());
    } else {
      doing_ = "insert(initializer_list)";
      const value_type a = element(), b = element();
      table_.insert({a, b, a});
      oracle_.insert({a, b, a});
    }
    expect(table_.size() == oracle_.size(), "size after the insert");
  }

  void insert_or_assign() {
    if constexpr (map) {
      doing_ = "insert_or_assign";
      const key_type k = key();
      const auto v = mapped();
      const auto want = oracle_.insert_or_assign(k, v);
      if (random_() % 2) same_insert(table_.insert_or_assign(k, v), want);
      else same_insert(table_.insert_or_assign(key_type(k), v), want);
    } else {
      erase_key();
    }
  }

  void subscript() {
    if constexpr (map) {
      doing_ = "operator[]";
      const key_type k = key();
      if (random_() % 2) {
        expect(table_[k] == oracle_[k], "the value operator[] gives");
      } else {
        const auto v = mapped();
        table_[key_type(k)] = v;
        oracle_[k] = v;
      }
      expect(table_.size() == oracle_.size(), "size after operator[]");
    } else {
      lookup();
    }
  }

  void at() {
    if constexpr (map) {
      doing_ = "at";
      const key_type k = key();
      const Table& constant = table_;
      const auto found = oracle_.find(k);
      if (found == oracle_.end()) {
        bool threw = false;
        try {
          (void)constant.at(k);
        } catch (const std::out_of_range&) {
          threw = true;
        }
        expect(threw, "at() of a missing key does not throw std::out_of_range");
        return;
      }
      expect(constant.at(k) == found->second, "the value const at() gives");
      const auto v = mapped();
      table_.at(k) = v;
      found->second = v;
    } else {
      lookup();
    }
  }

  void lookup() {
    doing_ = "find, contains, count, equal_range";
    const key_type k = key();
    const Table& constant = table_;
    const bool there = oracle_.count(k) == 1;
    const auto found = table_.find(k);
    expect(there == (found != table_.end()), "find()");
    expect(there == (constant.find(k) != constant.end()), "const find()");
    expect(there == table_.contains(k), "contains()");
    expect(table_.count(k) == (there ? 1 : 0), "count()");
    if (there) expect(*found == *oracle_.find(k), "the element find() gives");
    const auto [first, last] = table_.equal_range(k);
    expect(first == found, "equal_range().first is not find()");
    expect(std::distance(first, last) == (there ? 1 : 0), "the length of equal_range()");
    const auto [cfirst, clast] = constant.equal_range(k);
    expect(std::distance(cfirst, clast) == (there ? 1 : 0), "the length of const equal_range()");
  }

  void erase_key() {
    doing_ = "erase(key)";
    const key_type k = key();
    expect(table_.erase(k) == oracle_.erase(k), "the count erase(key) returns");
  }

  // erase(iterator) returns the element after the erased one; the iterator
  // may have been taken before other inserts or a rehash (which keep it valid).
  void erase_iterator() {
    doing_ = "erase(iterator)";
    const key_type k = key();
    auto it = table_.find(k);
    if (it == table_.end()) return;
    switch (random_() % 4) {
      case 0:
        doing_ = "erase(iterator) after inserts";
        for (std::uint64_t n = random_() % 30; n > 0; --n) {
          const value_type e = element();
          table_.insert(e);
          oracle_.insert(e);
        }
        break;
      case 1:
        doing_ = "erase(iterator) after rehash";
        table_.rehash(random_() % (4 * table_.size() + 64));
        break;
      default: break;
    }
    const auto next = std::next(it);
    expect(table_.erase(it) == next, "the iterator erase() returns is not the next element");
    oracle_.erase(k);
  }

  void erase_range() {
    doing_ = "erase(first, last)";
    auto first = table_.find(key());
    if (first == table_.end()) return;
    auto last = first;
    std::vector<key_type> erased;
    for (std::uint64_t n = random_() % 6; n > 0 && last != table_.end(); --n, ++last) erased.push_back(key_of(*last));
    const bool to_end = last == table_.end();
    const auto after = table_.erase(typename Table::const_iterator(first), typename Table::const_iterator(last));
    expect(after == last, "erase(first, last) does not return last");
    expect(!to_end || after == table_.end(), "erase(first, end()) does not return end()");
    for (const key_type& k : erased) oracle_.erase(k);
  }

  // it = erase(it) over the whole table, as std::erase_if does it.
  void erase_while_iterating() {
    doing_ = "erase while iterating";
    const std::size_t modulus = 2 + random_() % 5, remainder = random_() % modulus;
    const auto doomed = [&](const auto& e) { return std::hash<key_type>()(key_of(e)) % modulus == remainder; };
    std::size_t visited = 0;
    const std::size_t size = table_.size();
    for (auto it = table_.begin(); it != table_.end(); ++visited) {
      if (doomed(*it)) it = table_.erase(it);
      else ++it;
    }
    expect(visited == size, "iterating while erasing skips or repeats elements");
    std::erase_if(oracle_, doomed);
  }

  void clear() {
    doing_ = "clear";
    table_.clear();
    oracle_.clear();
    expect(table_.empty() && table_.begin() == table_.end(), "not empty after clear()");
  }

  void storage() {
    switch (random_() % 3) {
      case 0:
        doing_ = "reserve";
        table_.reserve(random_() % (2 * table_.size() + 64));
        break;
      case 1: {
        doing_ = "rehash";
        table_.rehash(random_() % (4 * table_.size() + 64));
        break;
      }
      default: doing_ = "shrink_to_fit"; table_.shrink_to_fit(); break;
    }
    expect(table_.bucket_count() * table_.max_load_factor() >= float(table_.size()), "an index too small for size()");
    expect(table_.load_factor() <= table_.max_load_factor(), "load_factor() above max_load_factor()");
  }

  // A small table of other elements, and the oracle for it.
  std::pair<Table, oracle_type> other_table() {
    std::pair<Table, oracle_type> other;
    for (std::uint64_t n = random_() % 20; n > 0; --n) {
      const value_type e = element();
      other.first.insert(e);
      other.second.insert(e);
    }
    return other;
  }

  // The copy carries on as the table (the original is dropped).
  void copy_construct() {
    doing_ = "copy construction";
    Table copy(table_);
    expect(copy == table_, "a copy is not == the original");
    expect(difference(copy, oracle_).empty(), "a copy holds something else");
    table_.swap(copy);
  }

  // A table with other contents takes the table's, then moves back.
  void copy_assign() {
    doing_ = "copy assignment";
    auto [other, ignored] = other_table();
    other = table_;
    expect(difference(other, oracle_).empty(), "copy assignment");
    doing_ = "move assignment";
    table_ = std::move(other);
  }

  void move_around() {
    doing_ = "move construction";
    Table moved(std::move(table_));
    expect(difference(moved, oracle_).empty(), "the moved-to table");
    table_ = std::move(moved);
    doing_ = "move assignment back";
    expect(difference(table_, oracle_).empty(), "after moving back");
    doing_ = "self-assignment";
    Table& self = table_;
    table_ = self;
  }

  void swap() {
    doing_ = "swap";
    auto [other, other_oracle] = other_table();
    using std::swap;
    swap(table_, other);
    expect(difference(table_, other_oracle).empty(), "swapped in");
    expect(difference(other, oracle_).empty(), "swapped out");
    table_.swap(other);
  }

  // == holds for the same contents in another order, and not for others.
  void equality() {
    doing_ = "operator==";
    const Table rebuilt(oracle_.begin(), oracle_.end());
    expect(rebuilt == table_ && table_ == rebuilt, "the same elements inserted in another order are not ==");
    if (table_.empty()) return;
    Table changed(table_);
    if constexpr (map) changed.begin()->second = make<typename Table::mapped_type>(1000000 + random_() % 1000);
    else changed.erase(changed.begin());
    expect(!(changed == table_) && !(table_ == changed), "different contents are ==");
  }

  Table table_;
  oracle_type oracle_;
  std::mt19937_64 random_;
  std::uint64_t key_range_;
  int operation_ = 0;
  std::string doing_;
  std::string failure_;
};

template <class Table>
void run_differential(int operations_per_run) {
  // Small key ranges revisit keys (hits, erases, overwrites); large ones grow the table.
  const std::uint64_t key_ranges[] = {16, 300, 3000};
  for (std::uint64_t seed = 1; seed <= 4; ++seed) {
    for (std::uint64_t range : key_ranges) {
      CAPTURE(seed);
      CAPTURE(range);
      differential<Table> run(seed * 7919 + range, range);
      CHECK(run.run(operations_per_run) == "");
    }
  }
}

using number_map = pcm::node_map<std::uint64_t, std::uint64_t>;
using colliding_map = pcm::node_map<std::uint64_t, std::string, mod7_hash>;   // values kept on erase
using string_map = pcm::node_map<std::string, std::uint64_t>;
using shared_map = pcm::node_map<std::uint64_t, std::shared_ptr<int>, mod7_hash>;   // values destroyed on erase
using pmr_string_map = pcm::node_map<std::pmr::string, std::pmr::string>;
using colliding_set = pcm::node_set<std::uint64_t, mod7_hash>;
using string_set = pcm::node_set<std::string>;

// Forward iterators (a map's converts to its const_iterator, and the two
// compare), sized forward ranges, moves that cannot throw.
static_assert(std::forward_iterator<number_map::iterator> && std::forward_iterator<number_map::const_iterator>);
static_assert(std::forward_iterator<string_set::iterator>);
static_assert(std::ranges::forward_range<const string_map> && std::ranges::sized_range<string_map>);
static_assert(std::is_convertible_v<number_map::iterator, number_map::const_iterator>);
static_assert(!std::is_convertible_v<number_map::const_iterator, number_map::iterator>);
static_assert(std::equality_comparable_with<number_map::iterator, number_map::const_iterator>);
static_assert(std::is_nothrow_move_constructible_v<string_map>);

std::uintptr_t address(const void* p) { return reinterpret_cast<std::uintptr_t>(p); }

// The addresses of the elements with these keys.
template <class Table, class Keys>
std::vector<std::uintptr_t> addresses_of(const Table& table, const Keys& keys) {
  std::vector<std::uintptr_t> seen;
  for (const auto& k : keys) seen.push_back(address(&*table.find(k)));
  return seen;
}

// Increasing by one stride, at least an element wide.
template <class Table>
bool side_by_side(const std::vector<std::uintptr_t>& a) {
  for (std::size_t i = 1; i < a.size(); ++i)
    if (a[i] <= a[0] || a[i] - a[i - 1] != a[1] - a[0]) return false;
  return a.size() < 2 || a[1] - a[0] >= sizeof(typename Table::value_type);
}

// One allocation the resource handed out that holds [first, last).
bool inside_one_allocation(const pmr_test::recording_resource& recorder, std::uintptr_t first, std::uintptr_t last) {
  return std::any_of(recorder.allocations().begin(), recorder.allocations().end(), [&](const auto& r) {
    return address(r.pointer) <= first && last <= address(r.pointer) + r.bytes;
  });
}

}  // namespace

TYPE_TO_STRING(number_map);
TYPE_TO_STRING(colliding_map);
TYPE_TO_STRING(string_map);
TYPE_TO_STRING(shared_map);
TYPE_TO_STRING(pmr_string_map);
TYPE_TO_STRING(colliding_set);
TYPE_TO_STRING(string_set);
TYPE_TO_STRING(constant_hash);
TYPE_TO_STRING(mod7_hash);

TEST_SUITE("pmr") {

TEST_CASE_TEMPLATE("node_map: random operations agree with std::unordered_map", Table, number_map, colliding_map,
                   string_map, shared_map) {
  run_differential<Table>(6000);
}

TEST_CASE_TEMPLATE("node_set: random operations agree with std::unordered_set", Table, colliding_set, string_set) {
  run_differential<Table>(5000);
}

// Overflow counts: the entries past a full home group are found through its
// count, erasing some of them (or the ones in the group) keeps the rest
// reachable, and a lookup of a missing key ends.
TEST_CASE_TEMPLATE("node_map: many keys with one home group, some erased, the rest looked up", Hash, constant_hash,
                   mod7_hash) {
  pcm::node_map<std::uint64_t, std::uint64_t, Hash> m;
  constexpr std::uint64_t count = 1500;
  const auto holds_exactly = [&](auto present) {
    std::size_t wrong = 0, expected_size = 0;
    for (std::uint64_t k = 0; k < count + 100; ++k) {
      const bool want = k < count && present(k);
      expected_size += want;
      const auto it = m.find(k);
      wrong += want != (it != m.end()) || want != m.contains(k) || (want && it->second != k * 3 + 1);
    }
    return wrong == 0 && m.size() == expected_size;
  };
  for (std::uint64_t k = 0; k < count; ++k) REQUIRE(m.emplace(k, k * 3 + 1).second);
  CHECK(holds_exactly([](std::uint64_t) { return true; }));
  // The first ones inserted sit in the home group; the later ones probed past it.
  for (std::uint64_t k = 0; k < count; k += 2) CHECK(m.erase(k) == 1);
  CHECK(holds_exactly([](std::uint64_t k) { return k % 2 == 1; }));
  for (std::uint64_t k = count - 1; k > count / 2; k -= 2) CHECK(m.erase(k) == 1);
  CHECK(holds_exactly([](std::uint64_t k) { return k % 2 == 1 && k <= count / 2; }));
  // Back in, into the freed slots.
  for (std::uint64_t k = 0; k < count; ++k) m.try_emplace(k, k * 3 + 1);
  CHECK(holds_exactly([](std::uint64_t) { return true; }));
  for (std::uint64_t k = count; k-- > 0;) m.erase(k);
  CHECK(m.empty());
  CHECK(holds_exactly([](std::uint64_t) { return false; }));
}

TEST_CASE("node_map: a home group that overflows by a few, emptied in different orders") {
  // Keys below 30 share a hash code; the others spread.
  struct few_collide {
    std::size_t operator()(std::uint64_t k) const noexcept { return k < 30 ? 0 : k; }
  };
  for (int order = 0; order < 3; ++order) {
    CAPTURE(order);
    pcm::node_map<std::uint64_t, std::uint64_t, few_collide> m;
    std::unordered_map<std::uint64_t, std::uint64_t> oracle;
    for (std::uint64_t k = 0; k < 400; ++k) {
      m.emplace(k, k);
      oracle.emplace(k, k);
    }
    // The colliding keys in insertion order, reverse order, or every third.
    std::vector<std::uint64_t> doomed;
    for (std::uint64_t k = 0; k < 30; ++k) doomed.push_back(order == 1 ? 29 - k : k);
    if (order == 2) std::erase_if(doomed, [](std::uint64_t k) { return k % 3 != 0; });
    for (std::size_t i = 0; i < doomed.size(); ++i) {
      CHECK(m.erase(doomed[i]) == 1);
      oracle.erase(doomed[i]);
      CHECK(difference(m, oracle) == "");
    }
    for (std::uint64_t k = 0; k < 30; ++k) {
      m.insert_or_assign(k, k + 1);
      oracle.insert_or_assign(k, k + 1);
    }
    CHECK(difference(m, oracle) == "");
  }
}

// The element a pointer was taken to keeps its address and its value through
// every later insert, index rebuild, reserve, rehash and other erase.
TEST_CASE_TEMPLATE("node_map: pointers and references survive inserts, rebuilds and other erases", Table, number_map,
                   colliding_map, string_map, pmr_string_map, string_set) {
  Table m;
  std::vector<std::uint64_t> watched;
  std::vector<const typename Table::value_type*> pointers;
  std::vector<typename Table::iterator> iterators;
  for (std::uint64_t n = 0; n < 100; ++n) {
    auto [it, inserted] = m.insert(element<Table>(n));
    REQUIRE(inserted);
    if (n % 3 == 0) {
      watched.push_back(n);
      pointers.push_back(&*it);
      iterators.push_back(it);
    }
  }
  const auto still_there = [&] {
    std::size_t wrong = 0;
    for (std::size_t i = 0; i < watched.size(); ++i) {
      const auto found = m.find(key_of(element<Table>(watched[i])));
      wrong += found == m.end() || &*found != pointers[i] || !(*pointers[i] == element<Table>(watched[i])) ||
               iterators[i] != found;
    }
    return wrong == 0;
  };
  const auto insert_range = [&](std::uint64_t first, std::uint64_t last) {
    for (std::uint64_t n = first; n < last; ++n) m.insert(element<Table>(n));
  };
  const auto erase_range = [&](std::uint64_t first, std::uint64_t last, std::uint64_t step) {
    for (std::uint64_t n = first; n < last; n += step) m.erase(key_of(element<Table>(n)));
  };
  insert_range(1000, 21000);   // many index rebuilds and node blocks
  CHECK(still_there());
  m.reserve(60000);
  CHECK(still_there());
  m.rehash(300000);
  CHECK(still_there());
  erase_range(1000, 21000, 2);
  erase_range(1, 100, 3);
  CHECK(still_there());
  insert_range(30000, 50000);   // into the erased nodes first, then new ones
  CHECK(still_there());
  m.rehash(0);
  CHECK(still_there());
  CHECK(m.size() == 100 - 33 + 10000 + 20000);
  // Erased through the iterators the inserts returned, long before all this.
  for (const auto& it : iterators) m.erase(it);
  CHECK(m.size() == 100 - 33 - 34 + 10000 + 20000);
  std::size_t wrong = 0;
  for (std::uint64_t n : watched) wrong += m.contains(key_of(element<Table>(n)));
  for (std::uint64_t n = 30000; n < 50000; n += 7) wrong += !m.contains(key_of(element<Table>(n)));
  CHECK(wrong == 0);
}

// As std::unordered_set::emplace: the key is built from all the arguments.
TEST_CASE("node_set: emplace(args...) builds the key from all its arguments") {
  struct vector_hash {
    std::size_t operator()(const std::vector<int>& v) const noexcept {
      std::size_t h = v.size();
      for (int x : v) h = h * 31 + std::size_t(x);
      return h;
    }
  };
  pcm::node_set<std::vector<int>, vector_hash> s;
  const auto [it, inserted] = s.emplace(3, 7);   // std::vector<int>(3, 7): {7, 7, 7}
  CHECK(inserted);
  CHECK(*it == std::vector<int>{7, 7, 7});
  CHECK(s.contains(std::vector<int>{7, 7, 7}));
  CHECK_FALSE(s.contains(std::vector<int>{0, 0, 0}));
  CHECK_FALSE(s.emplace(3, 7).second);
  CHECK(s.emplace(2, 7).second);
  CHECK(s.size() == 2);
}

// rehash(n): "an index of at least n slots", as std's bucket_count() >= n.
TEST_CASE("node_map: rehash(n) makes bucket_count() at least n") {
  std::vector<std::size_t> short_of_n;
  for (std::size_t n = 1; n <= 2000; ++n) {
    number_map m;
    for (std::uint64_t k = 0; k < n % 50; ++k) m.emplace(k, k);
    m.rehash(n);
    if (m.bucket_count() < n) short_of_n.push_back(n);
    CHECK(m.size() == n % 50);
  }
  CAPTURE(short_of_n.size());
  CHECK_MESSAGE(short_of_n.empty(), "first n with bucket_count() < n after rehash(n): ",
                short_of_n.empty() ? 0 : short_of_n.front());
}

// reserve(n): room for n elements without another allocation.
TEST_CASE_TEMPLATE("node_map: after reserve(n), n inserts allocate nothing", Table, number_map, colliding_set) {
  for (std::size_t n : {1u, 7u, 8u, 9u, 10u, 11u, 100u, 1000u, 20000u}) {
    CAPTURE(n);
    pmr_test::recording_resource recorder;
    Table m{typename Table::allocator_type(&recorder)};
    m.reserve(n);
    CHECK(m.bucket_count() * m.max_load_factor() >= float(n));
    CHECK(m.node_capacity() >= n);
    const std::size_t allocations = recorder.allocations().size();
    for (std::uint64_t k = 0; k < n; ++k) m.insert(element<Table>(k));
    CHECK(m.size() == n);
    CHECK(recorder.allocations().size() == allocations);
  }
}

// Elements inserted one after another into a fresh map sit side by side, in
// the first node block (8 nodes) and in the second (16); iteration follows
// insertion order; the index is 64-byte groups of 12 slots on 64-byte
// boundaries.
TEST_CASE_TEMPLATE("node_map: nodes inserted in sequence are contiguous; the index is cache-line aligned", Table,
                   number_map, string_map, string_set) {
  pmr_test::recording_resource recorder;
  Table m{typename Table::allocator_type(&recorder)};
  std::vector<typename Table::key_type> keys;
  for (std::uint64_t n = 0; n < 24; ++n) {
    keys.push_back(key_of(element<Table>(n * 1009 + 5)));
    m.insert(element<Table>(n * 1009 + 5));
  }
  const std::vector<std::uintptr_t> nodes = addresses_of(m, keys);
  const std::vector<std::uintptr_t> first_block(nodes.begin(), nodes.begin() + 8), second_block(nodes.begin() + 8, nodes.end());
  CHECK(side_by_side<Table>(first_block));
  CHECK(side_by_side<Table>(second_block));
  CHECK(first_block[1] - first_block[0] == second_block[1] - second_block[0]);
  CHECK(inside_one_allocation(recorder, first_block.front(), first_block.back() + sizeof(typename Table::value_type)));
  CHECK(inside_one_allocation(recorder, second_block.front(), second_block.back() + sizeof(typename Table::value_type)));
  std::vector<typename Table::key_type> in_order;
  for (const auto& e : m) in_order.push_back(key_of(e));
  CHECK(in_order == keys);

  m.reserve(5000);   // a new index: 512 groups
  std::size_t index_allocations = 0, misaligned = 0;
  std::size_t last_index_bytes = 0;
  for (const pmr_test::allocation_record& r : recorder.allocations()) {
    if (r.alignment != 64) continue;
    ++index_allocations;
    misaligned += address(r.pointer) % 64 != 0 || r.bytes % 64 != 0;
    last_index_bytes = r.bytes;
  }
  CHECK(index_allocations >= 2);   // grown while filling, then reserved
  CHECK(misaligned == 0);
  CHECK(last_index_bytes / 64 * 12 == m.bucket_count());
  CHECK(m.bucket_count() * m.max_load_factor() >= 5000.0f);
}

// Carving (the cursor over the current node block): across the short blocks
// (8, 16, ... 4096 nodes) into the full ones (8192), then again after clear():
// the k-th insert after clear() takes the k-th node of the first filling, no
// block is taken twice, and iteration is insertion order; erased nodes are
// taken again before carving goes on.
TEST_CASE_TEMPLATE("node_map: carving crosses node blocks, and restarts at the first node after clear()", Table,
                   number_map, string_map) {
  pmr_test::recording_resource recorder;
  Table m{typename Table::allocator_type(&recorder)};
  constexpr std::uint64_t count = 8 + 16 + 32 + 64 + 128 + 256 + 512 + 1024 + 2048 + 4096 + 8192 + 100;
  std::vector<const void*> first_nodes;
  for (std::uint64_t n = 0; n < count; ++n) first_nodes.push_back(&*m.insert(element<Table>(n)).first);
  CHECK(m.node_capacity() == count - 100 + 8192);
  const std::size_t allocations = recorder.allocations().size();
  m.clear();
  std::size_t moved = 0, out_of_order = 0;
  for (std::uint64_t n = 0; n < count; ++n) moved += &*m.insert(element<Table>(n + count)).first != first_nodes[n];
  std::uint64_t expected = count;
  for (const auto& e : m) out_of_order += !(e == element<Table>(expected++));
  CHECK(moved == 0);
  CHECK(out_of_order == 0);
  CHECK(expected == 2 * count);
  CHECK(recorder.allocations().size() == allocations);   // no block and no index taken again
  // Erase three, insert four: three reuse the erased nodes, the fourth is carved next.
  for (std::uint64_t n : {count + 3, count + 5000, 2 * count - 1}) CHECK(m.erase(key_of(element<Table>(n))) == 1);
  std::set<const void*> reused;
  for (std::uint64_t n = 0; n < 3; ++n) reused.insert(&*m.insert(element<Table>(3 * count + n)).first);
  CHECK(reused == std::set<const void*>{first_nodes[3], first_nodes[5000], first_nodes[count - 1]});
  CHECK(&*m.insert(element<Table>(4 * count)).first == static_cast<const void*>(
                                                          static_cast<const char*>(first_nodes[count - 1]) +
                                                          (static_cast<const char*>(first_nodes[count - 2]) -
                                                           static_cast<const char*>(first_nodes[count - 3]))));
  CHECK(m.size() == count + 1);
}

}  // TEST_SUITE
