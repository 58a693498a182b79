// Every standard container on every pcmalloc resource and allocator: fill with
// thousands of elements, erase half, check what is left, and check that the
// memory came from (and went back to) the resource under test.
#include <doctest/doctest.h>

#include <algorithm>
#include <charconv>
#include <deque>
#include <forward_list>
#include <functional>
#include <list>
#include <map>
#include <memory_resource>
#include <set>
#include <string>
#include <string_view>
#include <sys/mman.h>
#include <type_traits>
#include <unordered_map>
#include <unordered_set>
#include <vector>

#include <pcmalloc/allocator.hpp>
#include <pcmalloc/arena.hpp>
#include <pcmalloc/pmr.hpp>

#include "support.hpp"

namespace {

using namespace pmr_test;

constexpr int element_count = 4000;

// The same container templates over one allocator template.
template <template <class> class A>
struct family {
  template <class T> using vector = std::vector<T, A<T>>;
  template <class T> using deque = std::deque<T, A<T>>;
  template <class T> using list = std::list<T, A<T>>;
  template <class T> using forward_list = std::forward_list<T, A<T>>;
  template <class K, class V> using map = std::map<K, V, std::less<K>, A<std::pair<const K, V>>>;
  template <class K> using set = std::set<K, std::less<K>, A<K>>;
  template <class K, class V> using multimap = std::multimap<K, V, std::less<K>, A<std::pair<const K, V>>>;
  template <class K, class V>
  using unordered_map = std::unordered_map<K, V, std::hash<K>, std::equal_to<K>, A<std::pair<const K, V>>>;
  template <class K> using unordered_set = std::unordered_set<K, std::hash<K>, std::equal_to<K>, A<K>>;
  using string = std::basic_string<char, std::char_traits<char>, A<char>>;
};
using pmr_family = family<std::pmr::polymorphic_allocator>;
using pcm_family = family<pcm::allocator>;
using map_allocator_family = family<pcm::map_allocator>;

static_assert(std::is_same_v<pmr_family::vector<int>, std::pmr::vector<int>>);
static_assert(std::is_same_v<pmr_family::string, std::pmr::string>);
static_assert(std::is_same_v<map_allocator_family::unordered_map<int, int>, pcm::unordered_map<int, int>>);
static_assert(std::is_same_v<map_allocator_family::unordered_set<int>, pcm::unordered_set<int>>);

// A container on `resource` when its allocator can be built from one, else on its default allocator.
template <class C>
C make(std::pmr::memory_resource* resource) {
  if constexpr (std::is_constructible_v<typename C::allocator_type, std::pmr::memory_resource*>)
    return C(typename C::allocator_type(resource));
  else
    return C();
}

// Longer than the small-string buffer, so every element allocates too.
std::string text_of(int k) { return "element number " + std::to_string(k) + " of the container test"; }
bool even(int k) { return k % 2 == 0; }

// What the test case knows about its resource: how much it has handed out now
// (any unit, or nothing), and whether deallocation gives it back.
struct resource_probe {
  std::function<std::uint64_t()> in_use;
  bool returns_memory = true;
  bool whole_heap_blocks = false;   // allocations are pcmalloc blocks (pcm_owns holds)
};

// Checks around one container's life: memory in use grew while it was full,
// and (when the resource gives memory back) returned to where it was.
class usage_check {
 public:
  explicit usage_check(const resource_probe& probe) : probe_(probe), before_(probe.in_use ? probe.in_use() : 0) {}
  void filled() const {
    if (probe_.in_use) CHECK(probe_.in_use() > before_);
  }
  void destroyed() const {
    if (probe_.in_use && probe_.returns_memory) CHECK(probe_.in_use() == before_);
  }

 private:
  const resource_probe& probe_;
  std::uint64_t before_;
};

// The k of text_of(k).
template <class String>
int number_in(const String& s) {
  std::string_view digits = std::string_view(s.data(), s.size()).substr(15);
  int k = -1;
  std::from_chars(digits.data(), digits.data() + digits.size(), k);
  return k;
}

template <class String>
bool same_text(const String& s, int k) {
  return std::string_view(s.data(), s.size()) == text_of(k);
}

// vector, deque, list: elements are strings; erase the odd ones.
template <class C>
void exercise_sequence(std::pmr::memory_resource* resource, const resource_probe& probe) {
  usage_check usage(probe);
  {
    C c = make<C>(resource);
    for (int k = 0; k < element_count; ++k) c.emplace_back(text_of(k).c_str());
    usage.filled();
    std::erase_if(c, [](const auto& s) { return !even(number_in(s)); });
    REQUIRE(c.size() == element_count / 2);
    int k = 0, wrong = 0;
    for (const auto& s : c) wrong += !same_text(s, k), k += 2;
    CHECK(wrong == 0);
  }
  usage.destroyed();
}

template <class F>
void exercise_forward_list(std::pmr::memory_resource* resource, const resource_probe& probe) {
  using C = typename F::template forward_list<typename F::string>;
  usage_check usage(probe);
  {
    C c = make<C>(resource);
    auto tail = c.before_begin();
    for (int k = 0; k < element_count; ++k) tail = c.emplace_after(tail, text_of(k).c_str());
    usage.filled();
    int k = 0;
    c.remove_if([&k](const auto&) { return !even(k++); });
    int wrong = 0, count = 0;
    k = 0;
    for (const auto& s : c) wrong += !same_text(s, k), k += 2, ++count;
    CHECK(count == element_count / 2);
    CHECK(wrong == 0);
  }
  usage.destroyed();
}

// map, multimap, unordered_map: int -> string; erase the odd keys.
template <class C>
void exercise_map(std::pmr::memory_resource* resource, const resource_probe& probe) {
  usage_check usage(probe);
  {
    C c = make<C>(resource);
    for (int k = 0; k < element_count; ++k) c.emplace(k, text_of(k).c_str());
    usage.filled();
    for (int k = 1; k < element_count; k += 2) CHECK(c.erase(k) == 1);
    REQUIRE(c.size() == element_count / 2);
    int wrong = 0;
    for (int k = 0; k < element_count; ++k) {
      auto it = c.find(k);
      if (even(k)) wrong += it == c.end() || !same_text(it->second, k);
      else wrong += it != c.end();
    }
    CHECK(wrong == 0);
  }
  usage.destroyed();
}

// set, unordered_set: ints; erase the odd ones.
template <class C>
void exercise_set(std::pmr::memory_resource* resource, const resource_probe& probe) {
  usage_check usage(probe);
  {
    C c = make<C>(resource);
    for (int k = 0; k < element_count; ++k) c.insert(k * 7);
    usage.filled();
    std::erase_if(c, [](int v) { return (v / 7) % 2 != 0; });
    REQUIRE(c.size() == element_count / 2);
    int wrong = 0;
    for (int k = 0; k < element_count; ++k) wrong += (c.count(k * 7) == 1) != even(k);
    CHECK(wrong == 0);
  }
  usage.destroyed();
}

template <class F>
void exercise_string(std::pmr::memory_resource* resource, const resource_probe& probe) {
  using S = typename F::string;
  usage_check usage(probe);
  {
    S s = make<S>(resource);
    for (int k = 0; k < element_count * 4; ++k) s.push_back(char('a' + k % 26));
    usage.filled();
    s.erase(0, s.size() / 2);
    REQUIRE(s.size() == std::size_t(element_count) * 2);
    int wrong = 0;
    for (std::size_t i = 0; i < s.size(); ++i) wrong += s[i] != char('a' + (i + element_count * 2) % 26);
    CHECK(wrong == 0);
  }
  usage.destroyed();
}

// A vector of ints whose buffer is checked to be a pcmalloc block.
template <class F>
void exercise_flat_vector(std::pmr::memory_resource* resource, const resource_probe& probe) {
  using V = typename F::template vector<int>;
  usage_check usage(probe);
  {
    V v = make<V>(resource);
    for (int k = 0; k < element_count; ++k) v.push_back(k);
    usage.filled();
    if (probe.whole_heap_blocks) CHECK(pcm_owns(v.data()) == 1);
    std::erase_if(v, [](int k) { return !even(k); });
    REQUIRE(v.size() == element_count / 2);
    int wrong = 0;
    for (std::size_t i = 0; i < v.size(); ++i) wrong += v[i] != int(2 * i);
    CHECK(wrong == 0);
  }
  usage.destroyed();
}

template <class F>
void exercise_all(std::pmr::memory_resource* resource, const resource_probe& probe) {
  using string = typename F::string;
  INFO("vector");
  exercise_flat_vector<F>(resource, probe);
  exercise_sequence<typename F::template vector<string>>(resource, probe);
  INFO("deque");
  exercise_sequence<typename F::template deque<string>>(resource, probe);
  INFO("list");
  exercise_sequence<typename F::template list<string>>(resource, probe);
  INFO("forward_list");
  exercise_forward_list<F>(resource, probe);
  INFO("map");
  exercise_map<typename F::template map<int, string>>(resource, probe);
  INFO("multimap");
  exercise_map<typename F::template multimap<int, string>>(resource, probe);
  INFO("unordered_map");
  exercise_map<typename F::template unordered_map<int, string>>(resource, probe);
  INFO("set");
  exercise_set<typename F::template set<int>>(resource, probe);
  INFO("unordered_set");
  exercise_set<typename F::template unordered_set<int>>(resource, probe);
  INFO("string");
  exercise_string<F>(resource, probe);
}

// The pmr containers and pcm::unordered_map / unordered_set (map_allocator) on one resource.
void exercise_resource(std::pmr::memory_resource* resource, const resource_probe& probe) {
  exercise_all<pmr_family>(resource, probe);
  INFO("pcm::unordered_map");
  exercise_map<pcm::unordered_map<int, std::string>>(resource, probe);
  INFO("pcm::unordered_set");
  exercise_set<pcm::unordered_set<int>>(resource, probe);
}

// An arena's objects and bytes in the program's hands (cached objects are free).
resource_probe arena_probe(pcm::arena& a) {
  if (debug_library()) return {{}, true, true};   // freed blocks wait in quarantine, and leave it as others arrive
  return {[&a] {
            pcm::arena_statistics s = a.statistics();
            return (s.small_objects - s.cached_objects) + s.large_bytes;
          },
          true, true};
}

void exercise_arena(pcm::arena& a) {
  pcm::pmr::arena_resource resource(a);
  CHECK(resource.arena() == &a);
  exercise_resource(&resource, arena_probe(a));
  INFO("map_allocator containers, every one");
  exercise_all<map_allocator_family>(&resource, arena_probe(a));
  if (debug_library()) return;
  pcm::arena_statistics s = a.statistics();
  CHECK(s.small_objects == s.cached_objects);
  CHECK(s.large_bytes == 0);
}

}  // namespace

TEST_SUITE("pmr") {

TEST_CASE("containers on the global arena_resource") {
  pcm::pmr::arena_resource global;
  CHECK(global.arena() == nullptr);
  CHECK(global.is_equal(*pcm::pmr::global_resource()));
  exercise_resource(&global, {nullptr, true, true});
  exercise_resource(pcm::pmr::global_resource(), {nullptr, true, true});
  exercise_all<map_allocator_family>(pcm::pmr::global_resource(), {nullptr, true, true});
}

TEST_CASE("containers on an arena_resource over a pcm::arena") {
  pcm::arena a;
  exercise_arena(a);
}

TEST_CASE("containers on an arena_resource over a pcm::arena in a caller's std::vector<std::byte>") {
  std::vector<std::byte> buffer(8 * MiB);
  pcm::arena a(buffer.data(), buffer.size());
  exercise_arena(a);
  CHECK(a.statistics().mapped_bytes <= buffer.size());
}

TEST_CASE("containers on an arena_resource over a pcm::arena in mmap'd memory") {
  const std::size_t bytes = 8 * MiB;
  void* memory = mmap(nullptr, bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  REQUIRE(memory != MAP_FAILED);
  {
    pcm::arena a(memory, bytes);
    exercise_arena(a);
    CHECK(a.statistics().mapped_bytes == bytes);
  }
  munmap(memory, bytes);
}

TEST_CASE("arena_resource equality follows the arena") {
  pcm::arena a, b;
  pcm::pmr::arena_resource on_a(a), also_on_a(a), on_b(b), global;
  CHECK(on_a.is_equal(also_on_a));
  CHECK_FALSE(on_a.is_equal(on_b));
  CHECK_FALSE(on_a.is_equal(global));
  CHECK(global.is_equal(*pcm::pmr::global_resource()));
  pcm::pmr::local_resource local;
  CHECK_FALSE(global.is_equal(local));
  // Equal resources may free each other's memory: a container moved between them keeps its nodes.
  std::pmr::vector<int> v(&on_a);
  v.assign(1000, 7);
  const int* data = v.data();
  std::pmr::vector<int> w(std::move(v), &also_on_a);
  CHECK(w.data() == data);
}

TEST_CASE("containers on a local_resource") {
  pcm::pmr::local_resource local;
  resource_probe probe{[&local] { return std::uint64_t(local.statistics().bytes_live); }, true, false};
  exercise_resource(&local, probe);
  INFO("map_allocator containers, every one");
  exercise_all<map_allocator_family>(&local, probe);
  CHECK(local.statistics().bytes_live == 0);
  CHECK(local.statistics().reused > 0);
  local.release();
  CHECK(local.statistics().bytes_held == 0);
}

TEST_CASE("containers on a scoped_resource") {
  pcm::pmr::scoped_resource scoped;
  // Nothing to measure per container: blocks are kept, and a container may fit in one already held.
  exercise_resource(&scoped, {nullptr, false, false});
  CHECK(scoped.bytes_held() > 0);
  scoped.release();
  // A second request reuses the kept blocks.
  std::size_t held = scoped.bytes_held();
  CHECK(held > 0);
  exercise_resource(&scoped, {nullptr, false, false});
  scoped.release();
  CHECK(scoped.bytes_held() <= std::max(held, scoped.retain_bytes));
}

TEST_CASE("std containers with pcm::allocator<T>") {
  exercise_all<pcm_family>(nullptr, {nullptr, true, true});
  // Over-aligned element types take the aligned path.
  struct alignas(64) line { int value; };
  std::vector<line, pcm::allocator<line>> lines(1000);
  CHECK(is_aligned(lines.data(), 64));
  CHECK(pcm_owns(lines.data()) == 1);
  CHECK(pcm::allocator<int>() == pcm::allocator<long>());
}

TEST_CASE("make_default makes pcmalloc std::pmr's default resource") {
  std::pmr::memory_resource* original = std::pmr::get_default_resource();
  std::pmr::memory_resource* previous = pcm::pmr::make_default();
  CHECK(previous == original);
  CHECK(std::pmr::get_default_resource() == pcm::pmr::global_resource());
  CHECK(pcm::pmr::global_resource() == pcm::pmr::global_resource());
  {
    std::pmr::vector<int> v;
    CHECK(v.get_allocator().resource() == pcm::pmr::global_resource());
    v.assign(5000, 3);
    CHECK(pcm_owns(v.data()) == 1);
    pcm::unordered_map<int, int> m;
    CHECK(m.get_allocator().resource() == pcm::pmr::global_resource());
  }
  // Twice is harmless; the second call reports pcmalloc as the previous default.
  CHECK(pcm::pmr::make_default() == pcm::pmr::global_resource());
  std::pmr::set_default_resource(previous);
  CHECK(std::pmr::get_default_resource() == original);
}

}  // TEST_SUITE
