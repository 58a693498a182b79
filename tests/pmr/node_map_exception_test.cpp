// pcm::node_map's exception guarantees: a Hash or Eq that throws, key and
// value copies and assignments that throw, and a memory_resource that fails,
// each on the first, second, ... call of an operation, until the operation
// gets through. After every throw the map holds exactly what it held before
// (strong guarantee for inserts, erase, reserve, rehash; the basic one for
// copy assignment), still works, and in the end every object built was
// destroyed and every byte given back.
#include <doctest/doctest.h>

#include <cstddef>
#include <functional>
#include <map>
#include <memory_resource>
#include <new>
#include <string>
#include <utility>
#include <vector>

#include <pcmalloc/node_map.hpp>
#include <pcmalloc/pmr.hpp>

namespace {

// ---- faults ----------------------------------------------------------------------

enum class site { none, hash, equal, key_copy, key_assign, value_copy, value_assign, allocation };
const char* name_of(site s) {
  const char* names[] = {"none", "hash", "equal", "key copy", "key assignment", "value copy", "value assignment",
                         "allocation"};
  return names[int(s)];
}

struct injected_fault {};

// One armed site at a time: its n-th call from now throws.
struct fault {
  static inline site armed = site::none;
  static inline long left = 0;
  static void arm(site s, long n) {
    armed = s;
    left = n;
  }
  static void disarm() { armed = site::none; }
  static bool fires(site s) { return s == armed && --left == 0; }
  static void at(site s) {
    if (fires(s)) throw injected_fault();
  }
};

// Whether f() threw (an injected fault or bad_alloc) with site s armed to fire
// at its n-th call.
template <class F>
bool throws_at(site s, long n, F f) {
  bool threw = false;
  fault::arm(s, n);
  try {
    f();
  } catch (const injected_fault&) {
    threw = true;
  } catch (const std::bad_alloc&) {
    threw = true;
  }
  fault::disarm();
  return threw;
}

// A memory_resource that throws std::bad_alloc where the allocation site fires
// (unless it may not fail), and counts what is outstanding. Memory from
// pcmalloc's global resource.
class failing_resource final : public std::pmr::memory_resource {
 public:
  explicit failing_resource(bool may_fail = true) noexcept : may_fail_(may_fail) {}
  std::size_t live_bytes() const noexcept { return live_bytes_; }

 private:
  void* do_allocate(std::size_t bytes, std::size_t alignment) override {
    if (may_fail_ && fault::fires(site::allocation)) throw std::bad_alloc();
    void* p = pcm::pmr::global_resource()->allocate(bytes, alignment);
    live_bytes_ += bytes;
    return p;
  }
  void do_deallocate(void* p, std::size_t bytes, std::size_t alignment) override {
    live_bytes_ -= bytes;
    pcm::pmr::global_resource()->deallocate(p, bytes, alignment);
  }
  bool do_is_equal(const std::pmr::memory_resource& other) const noexcept override { return this == &other; }
  bool may_fail_;
  std::size_t live_bytes_ = 0;
};

// ---- tracked keys and values ----------------------------------------------------

// Objects alive now, of every tracked type.
inline long tracked_objects = 0;

// A number that counts its objects, and whose copies (Copy) and assignments
// (Assign) may throw; moves never do. Keepable: it has capacity() and clear(),
// so node_map keeps it constructed across erase and clear (recycle.hpp) and
// assigns the next element into it.
template <site Copy, site Assign, bool Keepable>
class tracked {
 public:
  tracked() : tracked(0) {}
  tracked(int v) : v_(v) { ++tracked_objects; }
  tracked(const tracked& o) : v_(o.v_) {
    fault::at(Copy);
    ++tracked_objects;
  }
  tracked(tracked&& o) noexcept : v_(o.v_) { ++tracked_objects; }
  tracked& operator=(const tracked& o) {
    fault::at(Assign);
    v_ = o.v_;
    return *this;
  }
  tracked& operator=(tracked&& o) {
    fault::at(Assign);
    v_ = o.v_;
    return *this;
  }
  ~tracked() {
    --tracked_objects;
    v_ = -1;
  }
  int value() const noexcept { return v_; }
  friend bool operator==(const tracked&, const tracked&) = default;

  std::size_t capacity() const noexcept
    requires Keepable
  {
    return 0;
  }
  void clear() noexcept
    requires Keepable
  {
    v_ = 0;
  }

 private:
  int v_;
};

struct tracked_hash {
  template <class K>
  std::size_t operator()(const K& k) const {
    fault::at(site::hash);
    return std::hash<int>()(k.value());
  }
};
struct tracked_equal {
  template <class K>
  bool operator()(const K& a, const K& b) const {
    fault::at(site::equal);
    return a == b;
  }
};

template <bool Keepable>
using tracked_map = pcm::node_map<tracked<site::key_copy, site::key_assign, Keepable>,
                                  tracked<site::value_copy, site::value_assign, Keepable>, tracked_hash, tracked_equal>;
using destroyed_map = tracked_map<false>;   // elements destroyed on erase and clear
using kept_map = tracked_map<true>;         // elements kept and assigned into

template <class Map>
typename Map::allocator_type on(failing_resource& r) {
  return typename Map::allocator_type(&r);
}

// What a map holds, as numbers; checked both ways (iteration and lookups).
using contents = std::map<int, int>;
template <class Map>
contents contents_of(const Map& m) {
  contents c;
  for (const auto& e : m) c.emplace(e.first.value(), e.second.value());
  bool found_all = c.size() == m.size();
  for (const auto& [k, v] : c) found_all = found_all && m.find(k) != m.end() && m.find(k)->second.value() == v;
  if (!found_all) c.emplace(-1, -1);   // never a real entry
  return c;
}

// The ways a map may be laid out before the operation: a fresh one; one that
// was filled further and cleared (kept nodes, for kept_map); one with erased
// nodes on its free list.
enum class layout { fresh, after_clear, after_erase };

template <class Map>
void fill(Map& m, int size, layout how) {
  if (how == layout::after_clear) {
    for (int k = 0; k < size + 9; ++k) m.emplace(1000 + k, k);
    m.clear();
  }
  for (int k = 0; k < size; ++k) m.emplace(k, k * 10);
  if (how == layout::after_erase) {
    for (int k = 0; k < size + 9; ++k) m.emplace(2000 + k, k);
    for (int k = 0; k < size + 9; ++k) m.erase(2000 + k);
  }
}

// An operation on a map of `size` elements (keys 0..size-1, values k * 10),
// and the contents it leaves when it gets through.
template <class Map>
struct operation {
  const char* name;
  std::function<void(Map&)> run;
  std::function<contents(contents)> expected;
};

template <class Map>
std::vector<operation<Map>> operations(int size) {
  using key = typename Map::key_type;
  using value = typename Map::mapped_type;
  const auto with = [](int k, int v) {
    return [k, v](contents c) {
      c.insert_or_assign(k, v);
      return c;
    };
  };
  const auto unchanged = [](contents c) { return c; };
  const int fresh = 500, present = size / 2;
  return {
      {"emplace(const key&, const value&)", [=](Map& m) { const key k(fresh); const value v(7); m.emplace(k, v); },
       with(fresh, 7)},
      {"insert(const value_type&)",
       [=](Map& m) { const typename Map::value_type e(fresh, 7); m.insert(e); }, with(fresh, 7)},
      {"try_emplace(const key&, const value&)",
       [=](Map& m) { const key k(fresh); const value v(7); m.try_emplace(k, v); }, with(fresh, 7)},
      {"insert_or_assign(const key&, const value&), a new key",
       [=](Map& m) { const key k(fresh); const value v(7); m.insert_or_assign(k, v); }, with(fresh, 7)},
      {"insert_or_assign(const key&, const value&), a present key",
       [=](Map& m) { const key k(present); const value v(7); if (m.contains(k)) m.insert_or_assign(k, v); },
       [=](contents c) { if (c.count(present)) c[present] = 7; return c; }},
      {"operator[](const key&)", [=](Map& m) { const key k(fresh); m[k]; }, with(fresh, 0)},
      {"erase(const key&)", [=](Map& m) { const key k(present); m.erase(k); },
       [=](contents c) { c.erase(present); return c; }},
      {"find(const key&)", [=](Map& m) { const key k(present); (void)m.find(k); }, unchanged},
      {"reserve(1000)", [](Map& m) { m.reserve(1000); }, unchanged},
      {"rehash(1000)", [](Map& m) { m.rehash(1000); }, unchanged},
  };
}

// Every site, every operation, every layout and size: the operation throws
// on its 1st, 2nd, ... call of the site until it gets through.
template <class Map>
void sweep_strong_guarantee() {
  const site sites[] = {site::hash, site::equal, site::key_copy, site::key_assign,
                        site::value_copy, site::value_assign, site::allocation};
  // Sizes at which the next insert grows the index (10), takes a node block
  // (8, 24) or also grows the block list (120).
  for (int size : {0, 8, 10, 24, 120}) {
    for (layout how : {layout::fresh, layout::after_clear, layout::after_erase}) {
      for (const operation<Map>& op : operations<Map>(size)) {
        for (site s : sites) {
          CAPTURE(size);
          CAPTURE(int(how));
          CAPTURE(op.name);
          CAPTURE(name_of(s));
          failing_resource resource;
          {
            for (long n = 1;; ++n) {
              Map m(on<Map>(resource));
              fill(m, size, how);
              const contents before = contents_of(m);
              const bool threw = throws_at(s, n, [&] { op.run(m); });
              if (!threw) {
                CHECK(contents_of(m) == op.expected(before));
                break;
              }
              REQUIRE(contents_of(m) == before);
              // Still usable.
              CHECK(m.emplace(900, 9).second);
              CHECK(m.erase(900) == 1);
              CHECK(contents_of(m) == before);
            }
          }
          CHECK(resource.live_bytes() == 0);
          CHECK(tracked_objects == 0);
          tracked_objects = 0;
        }
      }
    }
  }
}

// Sets the default memory_resource for the scope (plain copy construction
// of a pmr container allocates from it).
struct default_resource_scope {
  explicit default_resource_scope(std::pmr::memory_resource* r) : before(std::pmr::set_default_resource(r)) {}
  ~default_resource_scope() { std::pmr::set_default_resource(before); }
  std::pmr::memory_resource* before;
};

// Copies of `source` (on a resource that never fails) by copy(source, stable,
// target), where target is the resource the copy allocates from (also the
// default resource, for plain copy construction): a fault at the 1st, 2nd,
// ... call of site s until a copy gets through. What a copy built before its
// throw must be destroyed and given back: the objects and bytes left over,
// summed over every throw, must be none.
template <class Map, class Copy>
void check_copies_leak_nothing(site s, Copy copy) {
  CAPTURE(name_of(s));
  failing_resource stable(false), target;
  default_resource_scope scope(&target);
  Map source(on<Map>(stable));
  fill(source, 40, layout::after_erase);
  const contents before = contents_of(source);
  long leaked_objects = 0, throws = 0;
  std::size_t leaked_bytes = 0;
  for (long n = 1;; ++n, ++throws) {
    const long objects = tracked_objects;
    const std::size_t bytes = target.live_bytes() + stable.live_bytes();
    const bool threw = throws_at(s, n, [&] { copy(source, stable, target); });
    leaked_objects += tracked_objects - objects;
    leaked_bytes += target.live_bytes() + stable.live_bytes() - bytes;
    if (!threw) break;
  }
  CAPTURE(throws);
  CHECK(contents_of(source) == before);
  CHECK(leaked_objects == 0);
  CHECK(leaked_bytes == 0);
  tracked_objects = 0;
}

}  // namespace

TYPE_TO_STRING(destroyed_map);
TYPE_TO_STRING(kept_map);

TEST_SUITE("pmr") {

TEST_CASE_TEMPLATE("node_map: an insert, erase, lookup, reserve or rehash that throws leaves the map as it was", Map,
                   destroyed_map, kept_map) {
  tracked_objects = 0;
  sweep_strong_guarantee<Map>();
}

// Copy assignment gives the basic guarantee: after a throw the target holds
// some consistent contents (here: those of source it copied so far, or its
// own), works, and nothing leaks.
TEST_CASE_TEMPLATE("node_map: a copy assignment that throws leaves a working map and leaks nothing", Map,
                   destroyed_map, kept_map) {
  tracked_objects = 0;
  for (site s : {site::key_copy, site::value_copy, site::key_assign, site::value_assign, site::allocation}) {
    CAPTURE(name_of(s));
    failing_resource resource;
    {
      Map source(on<Map>(resource));
      fill(source, 40, layout::after_erase);
      const contents wanted = contents_of(source);
      for (long n = 1;; ++n) {
        Map target(on<Map>(resource));
        fill(target, 30, layout::after_clear);
        const bool threw = throws_at(s, n, [&] { target = source; });
        const contents now = contents_of(target);
        CHECK(now.count(-1) == 0);   // consistent: iteration and lookups agree
        CHECK(contents_of(source) == wanted);
        if (!threw) {
          CHECK(now == wanted);
          break;
        }
        for (const auto& [k, v] : now) CHECK((wanted.count(k) ? wanted.at(k) : k * 10) == v);
        CHECK(target.emplace(900, 9).second);
      }
    }
    CHECK(resource.live_bytes() == 0);
    CHECK(tracked_objects == 0);
    tracked_objects = 0;
  }
}

// A constructor that throws runs no destructor: whatever the copy or move
// built before the throw must be freed by the constructor itself.
TEST_CASE_TEMPLATE("node_map: a copy or move construction that throws leaks nothing", Map, destroyed_map, kept_map) {
  tracked_objects = 0;
  const site copy_sites[] = {site::key_copy, site::value_copy, site::allocation};
  SUBCASE("copy construction") {
    for (site s : copy_sites)
      check_copies_leak_nothing<Map>(s, [](const Map& source, auto&, auto&) { Map copy(source); });
  }
  SUBCASE("copy construction with an allocator") {
    for (site s : copy_sites)
      check_copies_leak_nothing<Map>(s, [](const Map& source, auto&, auto& target) { Map copy(source, on<Map>(target)); });
  }
  SUBCASE("move construction onto another resource") {
    check_copies_leak_nothing<Map>(site::allocation, [](const Map& source, auto& stable, auto& target) {
      Map from(source, on<Map>(stable));
      Map moved(std::move(from), on<Map>(target));
    });
  }
  SUBCASE("range construction") {
    for (site s : copy_sites)
      check_copies_leak_nothing<Map>(s, [](const Map& source, auto&, auto& target) {
        Map copy(source.begin(), source.end(), 0, tracked_hash(), tracked_equal(), on<Map>(target));
      });
  }
}

}  // TEST_SUITE
