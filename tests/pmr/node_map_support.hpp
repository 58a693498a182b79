// Helpers of the pcm::node_map tests (node_map_*_test.cpp): keys and values
// made from numbers, weak hashes, and a full comparison of a node_map or
// node_set with a standard container holding what it should hold.
#pragma once
#include <cstddef>
#include <cstdint>
#include <iterator>
#include <memory>
#include <memory_resource>
#include <string>
#include <type_traits>

#include <pcmalloc/node_map.hpp>

namespace node_map_test {

// Text past the small-string buffer (every such string owns a block), of one
// length for every n below 10^6, so that any kept string fits any other.
inline std::string long_text(const char* what, std::uint64_t n) {
  std::string digits = std::to_string(n);
  return std::string(what) + " number " + std::string(6 - std::min<std::size_t>(6, digits.size()), '0') + digits;
}

// Keys and values made from numbers: the same number gives equal objects.
template <class T>
T make(std::uint64_t n) {
  if constexpr (std::is_integral_v<T>) return T(n);
  else if constexpr (std::is_same_v<T, std::shared_ptr<int>>) return std::make_shared<int>(int(n));
  else return T(long_text("node_map entry", n).c_str());
}

// Every key lands in one of seven hash codes: long probe chains, overflow
// counts that saturate, and Eq called on most candidates.
struct mod7_hash {
  std::size_t operator()(std::uint64_t key) const noexcept { return key % 7; }
};
// Every key shares one hash code.
struct constant_hash {
  std::size_t operator()(std::uint64_t) const noexcept { return 42; }
};

template <class Table>
inline constexpr bool is_map = requires { typename Table::mapped_type; };

// The element of a Table made from a number: (make<K>(n), make<V>(n)), or make<K>(n).
template <class Table>
typename Table::value_type element(std::uint64_t n) {
  if constexpr (is_map<Table>) return {make<typename Table::key_type>(n), make<typename Table::mapped_type>(n)};
  else return make<typename Table::key_type>(n);
}

template <class Element>
const auto& key_of(const Element& e) {
  if constexpr (requires { e.first; }) return e.first;
  else return e;
}

// Empty when `table` holds exactly what `expected` (a std::unordered_map or
// unordered_set) holds, seen both ways: by iterating the table (every element
// once, size() of them) and by looking up every expected key; else what
// differs first.
template <class Table, class Expected>
std::string difference(const Table& table, const Expected& expected) {
  if (table.size() != expected.size())
    return "size " + std::to_string(table.size()) + ", expected " + std::to_string(expected.size());
  if (table.empty() != expected.empty()) return "empty() disagrees with size()";
  std::size_t visited = 0;
  for (const auto& element : table) {
    ++visited;
    auto found = expected.find(key_of(element));
    if (found == expected.end()) return "iteration yields a key that should not be there";
    if (!(*found == element)) return "iteration yields a wrong value";
  }
  if (visited != table.size()) return "iteration visits " + std::to_string(visited) + " elements";
  if (std::distance(table.begin(), table.end()) != std::ptrdiff_t(table.size())) return "begin()..end() is not size() long";
  for (const auto& element : expected) {
    auto found = table.find(key_of(element));
    if (found == table.end()) return "find() misses a key that is there";
    if (!(*found == element)) return "find() gives a wrong value";
    if (!table.contains(key_of(element)) || table.count(key_of(element)) != 1) return "contains() or count() misses a key";
  }
  return {};
}

}  // namespace node_map_test
