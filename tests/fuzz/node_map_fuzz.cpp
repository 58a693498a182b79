// libFuzzer target: pcm::node_map<uint64_t, std::string> under a weak hash
// (key % m, with m from the input's first byte: 1 puts every key on one hash
// code), driven by operations decoded from the input and mirrored on
// std::unordered_map. Every answer (inserted or not, the element returned,
// the count erased, the iterator after an erase, a lookup, at()'s throw) is
// compared, the touched key after every operation, and the whole contents
// (iteration and lookups both ways) every few operations and at the end.
// Two maps, so that copies, moves and swaps go between them. Any mismatch
// aborts. Built by run.sh (node_map_fuzz) like heap_fuzz.
#include <fuzzer/FuzzedDataProvider.h>

#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <iterator>
#include <stdexcept>
#include <string>
#include <unordered_map>
#include <utility>
#include <vector>

#include <pcmalloc/node_map.hpp>

namespace {

struct weak_hash {
  std::uint64_t modulus = 7;
  std::size_t operator()(std::uint64_t key) const noexcept { return key % modulus; }
};
using table = pcm::node_map<std::uint64_t, std::string, weak_hash>;
using mirror = std::unordered_map<std::uint64_t, std::string>;

std::size_t operation_number = 0;

[[noreturn]] void fail(const char* what) {
  std::fprintf(stderr, "node_map_fuzz: %s (operation %zu)\n", what, operation_number);
  std::abort();
}
void expect(bool ok, const char* what) {
  if (!ok) fail(what);
}

// The key in both, with the same value, or in neither.
void check_key(const table& t, const mirror& m, std::uint64_t key) {
  const auto found = t.find(key);
  const auto want = m.find(key);
  expect((found == t.end()) == (want == m.end()), "find() disagrees");
  expect(t.contains(key) == (want != m.end()) && t.count(key) == m.count(key), "contains() or count() disagrees");
  const std::string* value = want == m.end() ? nullptr : &want->second;
  if (value) expect(found->second == *value, "find() gives another value");
  try {
    const std::string& got = t.at(key);
    expect(value && got == *value, "at() gives another value, or does not throw for a missing key");
  } catch (const std::out_of_range&) {
    expect(!value, "at() throws for a present key");
  }
}

void check_all(const table& t, const mirror& m) {
  expect(t.size() == m.size() && t.empty() == m.empty(), "sizes differ");
  std::size_t visited = 0;
  for (const auto& [key, value] : t) {
    ++visited;
    const auto want = m.find(key);
    expect(want != m.end() && want->second == value, "iteration yields an element std does not hold");
  }
  expect(visited == t.size(), "iteration visits another number of elements than size()");
  for (const auto& [key, value] : m) {
    const auto found = t.find(key);
    expect(found != t.end() && found->second == value, "an element std holds is not found");
  }
}

template <class Got, class Want>
void same_insert(const Got& got, const Want& want) {
  expect(got.second == want.second, "inserted where std did not, or not where std did");
  expect(got.first->first == want.first->first && got.first->second == want.first->second,
         "the element an insert returns");
}

struct world {
  table tables[2];
  mirror mirrors[2];
  explicit world(std::uint64_t modulus) : tables{table(0, weak_hash{modulus}), table(0, weak_hash{modulus})} {}
};

// Mostly small keys (revisited: hits, erases, overwrites), sometimes any.
std::uint64_t decode_key(FuzzedDataProvider& in) {
  const std::uint8_t b = in.ConsumeIntegral<std::uint8_t>();
  return b < 224 ? b % 96 : in.ConsumeIntegral<std::uint64_t>();
}
// Empty, short (in the string's own buffer) or long (a block of its own).
std::string decode_value(FuzzedDataProvider& in) {
  const std::size_t length = in.ConsumeIntegralInRange<std::size_t>(0, 48);
  return std::string(length, char('a' + in.ConsumeIntegral<std::uint8_t>() % 26));
}

void run_one(world& w, FuzzedDataProvider& in) {
  const std::uint8_t op = in.ConsumeIntegral<std::uint8_t>();
  const unsigned which = op >> 7;
  table& t = w.tables[which];
  mirror& m = w.mirrors[which];
  table& other_table = w.tables[1 - which];
  mirror& other_mirror = w.mirrors[1 - which];
  const std::uint64_t key = decode_key(in);
  switch (op % 20) {
    case 0: case 1: {
      const std::string v = decode_value(in);
      same_insert(t.emplace(key, v), m.emplace(key, v));
      break;
    }
    case 2: {
      const std::string v = decode_value(in);
      same_insert(t.try_emplace(key, v), m.try_emplace(key, v));
      break;
    }
    case 3: {
      const std::string v = decode_value(in);
      same_insert(t.insert_or_assign(key, v), m.insert_or_assign(key, v));
      break;
    }
    case 4: {
      const std::string v = decode_value(in);
      t[key] = v;
      m[key] = v;
      break;
    }
    case 5: {
      const std::pair<const std::uint64_t, std::string> e(key, decode_value(in));
      same_insert(t.insert(e), m.insert(e));
      break;
    }
    case 6: case 7: expect(t.erase(key) == m.erase(key), "erase(key) returns another count"); break;
    case 8: {   // erase(iterator) returns the next element
      const auto it = t.find(key);
      if (it == t.end()) break;
      const auto next = std::next(it);
      expect(t.erase(it) == next, "erase(iterator) does not return the next element");
      m.erase(key);
      break;
    }
    case 9: {   // erase(first, last) over up to 7 elements
      auto first = t.find(key);
      if (first == t.end()) break;
      auto last = first;
      for (std::size_t n = in.ConsumeIntegralInRange<std::size_t>(0, 7); n > 0 && last != t.end(); --n, ++last)
        m.erase(last->first);
      expect(t.erase(first, last) == last, "erase(first, last) does not return last");
      break;
    }
    case 10: {   // it = erase(it) over the whole map
      const std::uint64_t modulus = 2 + in.ConsumeIntegralInRange<std::uint64_t>(0, 5);
      for (auto it = t.begin(); it != t.end();) it = it->first % modulus == key % modulus ? t.erase(it) : std::next(it);
      std::erase_if(m, [&](const auto& e) { return e.first % modulus == key % modulus; });
      check_all(t, m);
      break;
    }
    case 11: if (key % 8 == 0) { t.clear(); m.clear(); } break;
    case 12: t.reserve(key % 3000); break;
    case 13: t.rehash(key % 5000); break;
    case 14: t.shrink_to_fit(); break;
    case 15:
      other_table = t;
      other_mirror = m;
      check_all(other_table, other_mirror);
      break;
    case 16:
      if (key % 2) {
        other_table = std::move(t);
        other_mirror = std::move(m);
        m.clear();
        t.clear();   // a moved-from map is valid: cleared, it is empty
      } else {
        t.swap(other_table);
        m.swap(other_mirror);
      }
      check_all(other_table, other_mirror);
      break;
    case 17: {
      table copy(t);
      expect(copy == t, "a copy is not == the original");
      t = std::move(copy);
      break;
    }
    case 18: {
      const std::vector<std::pair<std::uint64_t, std::string>> range = {{key, decode_value(in)}, {key + 1, decode_value(in)}};
      t.insert(range.begin(), range.end());
      m.insert(range.begin(), range.end());
      check_key(t, m, key + 1);
      break;
    }
    default: break;   // a lookup only
  }
  check_key(t, m, key);
  expect(t.size() == m.size(), "sizes differ");
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  FuzzedDataProvider in(data, size);
  world w(1 + in.ConsumeIntegral<std::uint8_t>() % 64);
  for (operation_number = 0; in.remaining_bytes() > 0; ++operation_number) {
    run_one(w, in);
    if (operation_number % 16 == 0) check_all(w.tables[0], w.mirrors[0]);
  }
  for (int i = 0; i < 2; ++i) check_all(w.tables[i], w.mirrors[i]);
  return 0;
}
