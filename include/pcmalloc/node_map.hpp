// pcm::node_map<K, V, Hash, Eq> and pcm::node_set<K, Hash, Eq>: hash
// containers with std::unordered_map's interface and its pointer stability,
// built for maps that a service fills and drops per request, and for
// long-lived maps under churn.
//
//   pcm::map_pool<pcm::node_map<std::pmr::string, std::pmr::string>> pool;
//   auto headers = pool.acquire();        // cleared, with its nodes, strings and index kept
//   headers->emplace("host", host);       // assigned into a kept node: nothing allocated
//
// Storage. Each element lives in a node (its full hash code, then the
// element) carved in sequence from node blocks that the container takes from
// its allocator: 8 nodes, then twice as many each time up to 8192, then 8192
// at a time. Elements inserted one after another sit side by side, so
// iterating a small map walks adjacent cache lines; a node never moves, so
// pointers and references to elements stay valid until the element is erased.
// Erased nodes go on a free list and are reused by the next insert.
//
// Index. An open-addressing table of 64-byte groups, each one cache line:
// 12 one-byte tags (7 bits of the hash code; 0 = empty), an overflow count
// (entries that probed past this group), and the 12 node numbers (32 bits).
// A lookup compares the 12 tags at once (SSE2), then the full hash code kept
// in the node, and only then calls Eq: a hit usually touches one index line
// and the node. Groups are probed triangularly from the home group; a lookup
// stops at the first group whose overflow count is 0, so erasing leaves no
// tombstones. The table grows (doubling) when size() would pass 10 of every
// 12 slots. Growing reads the hash codes kept in the nodes: Hash is called
// once per inserted element and never again.
//
// Reuse. clear() keeps the node blocks and the index. For element types whose
// value owns storage that assignment keeps (std::basic_string, std::vector:
// pcm::recycle::keeps_capacity), erased and cleared elements stay constructed,
// and the next inserts assign the new key and value into them, so a string
// reuses its capacity. Other types are destroyed on erase and clear, as the
// standard containers do (a shared_ptr value releases its object). Trivially
// destructible elements cost nothing to clear. shrink_to_fit() gives the
// memory back.
//
// Complexity (n = size(), g = index groups, u = nodes carved since the last
// clear, live or free): find, contains, count, at, emplace, try_emplace,
// insert, insert_or_assign, operator[], erase(key), erase(iterator): O(1)
// expected; growing the index O(u), amortised O(1) per insert. clear(): O(g)
// for trivially destructible or kept elements (the tags are zeroed, nothing per
// element), else O(u). Iteration: O(u) in all (free nodes are skipped).
// begin(): O(free nodes before the first live one).
//
// Iterators, pointers and references: inserting (and growing the index,
// reserve, rehash) invalidates none of them. erase invalidates those to the
// erased element only. clear(), shrink_to_fit(), assignment and swap
// invalidate all (as std does for assignment and clear; swap moves them to
// the other container in std, here they are invalidated). Iteration order is
// node order: insertion order until erased nodes are reused.
//
// Exceptions: if Hash, Eq, the allocator or a key or value constructor or
// assignment throws during an insert, the container is as it was (strong
// guarantee; a kept node that was being assigned keeps a valid, unspecified
// value and stays free). erase and clear do not throw (Eq may, in erase by
// key, before anything changes). Copy assignment gives the basic guarantee.
//
// Threads: like std::unordered_map, const calls may run concurrently; any
// mutating call needs the container to itself. The debug library reports a
// container used by two threads at once, or used after it went back to its
// map_pool (pcm::single_user_check).
#pragma once
#include <algorithm>
#include <bit>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <functional>
#include <initializer_list>
#include <iterator>
#include <memory>
#include <memory_resource>
#include <new>
#include <stdexcept>
#include <tuple>
#include <type_traits>
#include <utility>

#if defined(__SSE2__)
#include <emmintrin.h>
#endif

#include "recycle.hpp"
#include "single_user.hpp"

namespace pcm {
namespace node_table_detail {

using node_index = std::uint32_t;
inline constexpr node_index no_node = 0xFFFFFFFFu;
// Node numbers are 32 bits, and a free node's link is kept shifted left by one.
inline constexpr std::size_t max_nodes = 0x7FFFFFFFu;

// The hash code: Hash's value mixed by a folded 64x64->128 multiply, so that
// std::hash's identity on integers spreads over every bit. Bit 0 is clear in
// every live node's code (a free node's is set).
inline std::uint64_t hash_code(std::size_t h) noexcept {
  const unsigned __int128 product = static_cast<unsigned __int128>(h) * 0x9E3779B97F4A7C15ull;
  return (static_cast<std::uint64_t>(product) ^ static_cast<std::uint64_t>(product >> 64)) & ~std::uint64_t(1);
}
inline std::uint8_t tag_of(std::uint64_t code) noexcept { return static_cast<std::uint8_t>(0x80 | (code >> 1)); }
inline std::size_t home_of(std::uint64_t code, std::size_t mask) noexcept { return (code >> 8) & mask; }

// One cache line of the index.
struct alignas(64) group {
  static constexpr unsigned slots = 12;
  static constexpr unsigned max_load = 10;   // entries per group, on average, before the table grows
  std::uint8_t tags[slots];   // 0: empty; else 0x80 | 7 bits of the hash code
  std::uint8_t overflow;      // entries that probed past this group; sticks at 255
  std::uint8_t unused[3];
  node_index nodes[slots];

  // Bit i set when tags[i] == tag (tag 0: the empty slots).
  unsigned match(std::uint8_t tag) const noexcept {
#if defined(__SSE2__)
    const __m128i line = _mm_load_si128(reinterpret_cast<const __m128i*>(tags));
    return static_cast<unsigned>(_mm_movemask_epi8(_mm_cmpeq_epi8(line, _mm_set1_epi8(static_cast<char>(tag))))) &
           ((1u << slots) - 1);
#else
    unsigned bits = 0;
    for (unsigned i = 0; i < slots; ++i) bits |= unsigned(tags[i] == tag) << i;
    return bits;
#endif
  }
  // Tags, overflow and the unused bytes: what clearing a group zeroes.
  static constexpr std::size_t header_bytes = 16;
};
static_assert(sizeof(group) == 64 && offsetof(group, nodes) == group::header_bytes);

// The index of a container that has none yet: every lookup misses here, and
// every insert grows the table before it writes.
alignas(64) inline constexpr group empty_group{};

// Node blocks: block b holds 8 << b nodes up to 8192 (b = 10), then 8192
// each. A node's number is (block << 13) | its offset in the block, so finding
// a node is a shift, a mask and one load whatever the block; the numbers a
// block does not fill are never used.
inline constexpr unsigned block_shift = 13;
inline constexpr node_index offset_mask = (1u << block_shift) - 1;
inline std::size_t block_of(node_index i) noexcept { return i >> block_shift; }
inline node_index offset_of(node_index i) noexcept { return i & offset_mask; }
inline node_index block_size(std::size_t block) noexcept {
  return block < block_shift - 3 ? 8u << block : 1u << block_shift;
}
// The number after i in carving order.
inline node_index next_number(node_index i) noexcept {
  return offset_of(i) + 1 < block_size(block_of(i)) ? i + 1 : (i | offset_mask) + 1;
}

// A node: the hash code, then the element. The code of a free node is
// (next free node << 1) | 1 (no_node ends the list).
template <class Value>
struct node {
  std::uint64_t code;
  alignas(Value) unsigned char storage[sizeof(Value)];
  Value* value() noexcept { return std::launder(reinterpret_cast<Value*>(storage)); }
  bool live() const noexcept { return !(code & 1); }
  node_index next_free() const noexcept { return static_cast<node_index>(code >> 1); }
};

// What the map and the set differ in: the element and its key.
template <class K, class V>
struct map_kind {
  using key_type = K;
  using mapped_type = V;
  using value_type = std::pair<const K, V>;
  static constexpr bool constant_elements = false;
  static const K& key(const value_type& v) noexcept { return v.first; }
  // A kept node's key takes a new value by assignment. The pair's key is
  // const to the container's users only; the node owns the object (as
  // std::unordered_map's node handles do for extract()).
  static K& kept_key(value_type& v) noexcept { return const_cast<K&>(v.first); }
};
template <class K>
struct set_kind {
  using key_type = K;
  using value_type = K;
  static constexpr bool constant_elements = true;
  static const K& key(const value_type& v) noexcept { return v; }
  static K& kept_key(value_type& v) noexcept { return v; }
};

template <class P>
concept two_element_tuple = requires { std::tuple_size<std::remove_cvref_t<P>>::value; } &&
                            (std::tuple_size<std::remove_cvref_t<P>>::value == 2);

// A key or value that may stay in a free node and take the next one by
// assignment: a capacity keeper, or plain data (trivially copyable and
// assignable, so assigning is constructing: no references, no const members,
// no atomics).
template <class T>
inline constexpr bool keepable = recycle::keeps_capacity_v<T> ||
                                 (std::is_trivially_copyable_v<T> && std::is_copy_assignable_v<T>);

}  // namespace node_table_detail

// The container both node_map and node_set are: Kind says what an element is.
template <class Kind, class Hash, class Eq, class Allocator>
class node_table {
 protected:
  using node = node_table_detail::node<typename Kind::value_type>;
  using group = node_table_detail::group;
  using node_index = node_table_detail::node_index;
  static constexpr node_index no_node = node_table_detail::no_node;
  // Where an element's number sits in the index: (group << 4) | slot. An
  // iterator from a lookup or an insert carries it, so erasing through it
  // needs no second probe (checked first: the index may have been rebuilt).
  static constexpr std::uint32_t no_slot = 0xFFFFFFFFu;
  static constexpr std::uint32_t slot_at(std::size_t g, unsigned slot) noexcept {
    return static_cast<std::uint32_t>(g << 4 | slot);
  }
  struct location {
    node_index index;   // no_node: absent
    node* node_at;
    std::uint32_t slot = no_slot;
  };

 public:
  using key_type = typename Kind::key_type;
  using value_type = typename Kind::value_type;
  using size_type = std::size_t;
  using difference_type = std::ptrdiff_t;
  using hasher = Hash;
  using key_equal = Eq;
  using allocator_type = Allocator;
  using reference = value_type&;
  using const_reference = const value_type&;
  using pointer = typename std::allocator_traits<Allocator>::pointer;
  using const_pointer = typename std::allocator_traits<Allocator>::const_pointer;

 protected:
  static constexpr bool transparent = requires {
    typename Hash::is_transparent;
    typename Eq::is_transparent;
  };
  // A key argument that lookups can use as it is: the key type itself, or
  // anything a transparent Hash and Eq take.
  template <class A>
  static constexpr bool lookup_key = std::is_same_v<std::remove_cvref_t<A>, key_type> ||
                                     (transparent && std::is_invocable_v<const Hash&, const A&> &&
                                      std::is_invocable_v<const Eq&, const key_type&, const A&>);
  template <class A>
  static constexpr bool transparent_key = transparent && lookup_key<A> && !std::is_same_v<std::remove_cvref_t<A>, key_type>;
  // Elements kept constructed when erased or cleared (see the file comment).
  static constexpr bool keeps_elements = [] {
    if constexpr (std::is_trivially_destructible_v<value_type>) return false;
    else if constexpr (requires { typename Kind::mapped_type; })
      return node_table_detail::keepable<key_type> && node_table_detail::keepable<typename Kind::mapped_type>;
    else return recycle::keeps_capacity_v<key_type>;
  }();
  static constexpr bool destroys_on_erase = !keeps_elements && !std::is_trivially_destructible_v<value_type>;

  using traits = std::allocator_traits<Allocator>;
  using node_allocator = typename traits::template rebind_alloc<node>;
  using group_allocator = typename traits::template rebind_alloc<group>;
  using block_list_allocator = typename traits::template rebind_alloc<node*>;

  static constexpr single_user_texts misuse_texts{
      "a pcm::node_map or node_set was used after it went back to its map_pool",
      "a pcm::node_map or node_set was used by two threads at once"};

 public:
  // ---- iterators -------------------------------------------------------------
  template <bool Const>
  class basic_iterator {
   public:
    using iterator_category = std::forward_iterator_tag;
    using value_type = typename Kind::value_type;
    using difference_type = std::ptrdiff_t;
    using pointer = std::conditional_t<Const, const value_type*, value_type*>;
    using reference = std::conditional_t<Const, const value_type&, value_type&>;

    basic_iterator() noexcept = default;
    template <bool C = Const, class = std::enable_if_t<C>>
    basic_iterator(const basic_iterator<false>& other) noexcept
        : node_(other.node_), index_(other.index_), slot_(other.slot_), table_(other.table_) {}

    reference operator*() const noexcept { return *node_->value(); }
    pointer operator->() const noexcept { return node_->value(); }
    basic_iterator& operator++() noexcept {
      slot_ = no_slot;
      do {
        index_ = node_table_detail::next_number(index_);
        if (index_ >= table_->used_) {
          node_ = nullptr;
          return *this;
        }
        node_ = node_table_detail::offset_of(index_) == 0 ? table_->node_at(index_) : node_ + 1;
      } while (!node_->live());
      return *this;
    }
    basic_iterator operator++(int) noexcept {
      basic_iterator before = *this;
      ++*this;
      return before;
    }
    friend bool operator==(const basic_iterator& a, const basic_iterator& b) noexcept { return a.node_ == b.node_; }

   private:
    friend class node_table;
    template <bool>
    friend class basic_iterator;
    basic_iterator(const node_table* table, node_index index, node* at, std::uint32_t slot = no_slot) noexcept
        : node_(at), index_(index), slot_(slot), table_(table) {}
    basic_iterator(const node_table* table, node_index index) noexcept
        : basic_iterator(table, index, table->node_at(index)) {}

    node* node_ = nullptr;   // nullptr: end()
    node_index index_ = 0;
    std::uint32_t slot_ = no_slot;   // where index_ sits in the index, if known
    const node_table* table_ = nullptr;
  };
  using const_iterator = basic_iterator<true>;
  // A set's elements are its keys: its iterators give const access only.
  using iterator = std::conditional_t<Kind::constant_elements, const_iterator, basic_iterator<false>>;

  // ---- construction ----------------------------------------------------------
  node_table() : node_table(Allocator()) {}
  explicit node_table(const Allocator& a) : node_table(0, Hash(), Eq(), a) {}
  explicit node_table(size_type expected, const Hash& h = Hash(), const Eq& e = Eq(), const Allocator& a = Allocator())
      : allocator_(a), hash_(h), eq_(e) {
    if (expected) build([&] { reserve(expected); });
  }
  template <class It>
  node_table(It first, It last, size_type expected = 0, const Hash& h = Hash(), const Eq& e = Eq(),
             const Allocator& a = Allocator())
      : node_table(expected, h, e, a) {
    build([&] { insert(first, last); });
  }
  node_table(std::initializer_list<value_type> list, size_type expected = 0, const Hash& h = Hash(),
             const Eq& e = Eq(), const Allocator& a = Allocator())
      : node_table(list.begin(), list.end(), expected, h, e, a) {}

  node_table(const node_table& other)
      : node_table(other, traits::select_on_container_copy_construction(other.allocator_)) {}
  node_table(const node_table& other, const Allocator& a) : allocator_(a), hash_(other.hash_), eq_(other.eq_) {
    build([&] { copy_elements(other); });
  }
  node_table(node_table&& other) noexcept
      : allocator_(std::move(other.allocator_)), hash_(std::move(other.hash_)), eq_(std::move(other.eq_)) {
    steal(other);
  }
  node_table(node_table&& other, const Allocator& a) : allocator_(a), hash_(other.hash_), eq_(other.eq_) {
    if (allocator_ == other.allocator_) steal(other);
    else build([&] { move_elements(other); });
  }
  ~node_table() { free_storage(); }

  node_table& operator=(const node_table& other) {
    if (this == &other) return *this;
    single_user_scope scope(debug_, user_check_, this, sizeof *this, misuse_texts);
    if constexpr (traits::propagate_on_container_copy_assignment::value) {
      if (allocator_ != other.allocator_) {
        free_storage();
        reset_storage();
        allocator_ = other.allocator_;
      }
    }
    hash_ = other.hash_;
    eq_ = other.eq_;
    clear_elements();
    copy_elements(other);
    return *this;
  }
  node_table& operator=(node_table&& other) noexcept(traits::propagate_on_container_move_assignment::value ||
                                                     traits::is_always_equal::value) {
    if (this == &other) return *this;
    single_user_scope scope(debug_, user_check_, this, sizeof *this, misuse_texts);
    hash_ = std::move(other.hash_);
    eq_ = std::move(other.eq_);
    if (traits::propagate_on_container_move_assignment::value || allocator_ == other.allocator_) {
      free_storage();
      if constexpr (traits::propagate_on_container_move_assignment::value) allocator_ = std::move(other.allocator_);
      steal(other);
    } else {
      clear_elements();
      move_elements(other);
    }
    return *this;
  }
  node_table& operator=(std::initializer_list<value_type> list) {
    clear();
    insert(list);
    return *this;
  }

  // The allocators must be equal (or propagate on swap), as for std containers.
  void swap(node_table& other) noexcept {
    single_user_scope scope(debug_, user_check_, this, sizeof *this, misuse_texts);
    using std::swap;
    if constexpr (traits::propagate_on_container_swap::value) swap(allocator_, other.allocator_);
    swap(hash_, other.hash_);
    swap(eq_, other.eq_);
    swap_storage(other);
  }
  friend void swap(node_table& a, node_table& b) noexcept { a.swap(b); }

  // ---- iteration and size ------------------------------------------------------
  iterator begin() noexcept { return first_live<iterator>(); }
  const_iterator begin() const noexcept { return first_live<const_iterator>(); }
  const_iterator cbegin() const noexcept { return begin(); }
  iterator end() noexcept { return {}; }
  const_iterator end() const noexcept { return {}; }
  const_iterator cend() const noexcept { return {}; }

  bool empty() const noexcept { return size_ == 0; }
  size_type size() const noexcept { return size_; }
  static constexpr size_type max_size() noexcept { return node_table_detail::max_nodes; }

  // ---- lookup --------------------------------------------------------------------
  // Each takes a key_type, or (with a transparent Hash and Eq) anything they take.
  iterator find(const key_type& key) { return find_as<iterator>(key); }
  const_iterator find(const key_type& key) const { return find_as<const_iterator>(key); }
  template <class K>
    requires transparent_key<K>
  iterator find(const K& key) {
    return find_as<iterator>(key);
  }
  template <class K>
    requires transparent_key<K>
  const_iterator find(const K& key) const {
    return find_as<const_iterator>(key);
  }
  bool contains(const key_type& key) const { return contains_as(key); }
  template <class K>
    requires transparent_key<K>
  bool contains(const K& key) const {
    return contains_as(key);
  }
  size_type count(const key_type& key) const { return contains_as(key) ? 1 : 0; }
  template <class K>
    requires transparent_key<K>
  size_type count(const K& key) const {
    return contains_as(key) ? 1 : 0;
  }
  std::pair<iterator, iterator> equal_range(const key_type& key) { return range_of(find(key)); }
  std::pair<const_iterator, const_iterator> equal_range(const key_type& key) const { return range_of(find(key)); }
  template <class K>
    requires transparent_key<K>
  std::pair<iterator, iterator> equal_range(const K& key) {
    return range_of(find(key));
  }
  template <class K>
    requires transparent_key<K>
  std::pair<const_iterator, const_iterator> equal_range(const K& key) const {
    return range_of(find(key));
  }

  // ---- insertion -----------------------------------------------------------------
  std::pair<iterator, bool> insert(const value_type& v) { return emplace(v); }
  std::pair<iterator, bool> insert(value_type&& v) { return emplace(std::move(v)); }
  template <class P>
    requires std::is_constructible_v<value_type, P&&>
  std::pair<iterator, bool> insert(P&& v) {
    return emplace(std::forward<P>(v));
  }
  iterator insert(const_iterator, const value_type& v) { return emplace(v).first; }
  iterator insert(const_iterator, value_type&& v) { return emplace(std::move(v)).first; }
  template <class It>
  void insert(It first, It last) {
    for (; first != last; ++first) emplace(*first);
  }
  void insert(std::initializer_list<value_type> list) { insert(list.begin(), list.end()); }
  template <class... Args>
  iterator emplace_hint(const_iterator, Args&&... args) {
    return emplace(std::forward<Args>(args)...).first;
  }

  // ---- erasure -------------------------------------------------------------------
  iterator erase(const_iterator position) noexcept {
    single_user_scope scope(debug_, user_check_, this, sizeof *this, misuse_texts);
    iterator next(this, position.index_, position.node_);
    ++next;
    remove(position.node_, position.index_, position.slot_);
    return next;
  }
  iterator erase(iterator position) noexcept
    requires(!std::is_same_v<iterator, const_iterator>)
  {
    return erase(const_iterator(position));
  }
  iterator erase(const_iterator first, const_iterator last) noexcept {
    while (first != last) first = erase(first);
    return first == end() ? end() : iterator(this, first.index_);
  }
  size_type erase(const key_type& key) { return erase_as(key); }
  template <class K>
    requires transparent_key<K>
  size_type erase(const K& key) {
    return erase_as(key);
  }

  // Empties the container and keeps its storage (see the file comment).
  void clear() noexcept {
    single_user_scope scope(debug_, user_check_, this, sizeof *this, misuse_texts);
    clear_elements();
  }

  // ---- index and storage ---------------------------------------------------------
  // Room for n elements without growing the index or taking a node block.
  void reserve(size_type n) {
    single_user_scope scope(debug_, user_check_, this, sizeof *this, misuse_texts);
    if (n > max_size()) throw std::length_error("pcm::node_map: reserve() beyond max_size()");
    grow_index_for(n);
    reserve_nodes(static_cast<node_index>(n));
  }
  // An index of at least n slots (and enough for size()).
  void rehash(size_type n) {
    single_user_scope scope(debug_, user_check_, this, sizeof *this, misuse_texts);
    if (n > max_size()) throw std::length_error("pcm::node_map: rehash() beyond max_size()");
    const size_type groups = std::max<size_type>((n + group::slots - 1) / group::slots, 1);
    rebuild_index(std::max(std::bit_ceil(groups), groups_for(size_)));
  }
  // Empty: gives every block, kept element and the index back. Otherwise the
  // index shrinks to what size() needs (nodes stay where they are).
  void shrink_to_fit() {
    single_user_scope scope(debug_, user_check_, this, sizeof *this, misuse_texts);
    if (size_ == 0) {
      free_storage();
      reset_storage();
    } else if (groups_for(size_) < mask_ + 1) {
      rebuild_index(groups_for(size_));
    }
  }

  size_type bucket_count() const noexcept { return groups_ == empty_index() ? 0 : (mask_ + 1) * group::slots; }
  float load_factor() const noexcept { return bucket_count() ? float(size_) / float(bucket_count()) : 0.0f; }
  static constexpr float max_load_factor() noexcept { return float(group::max_load) / float(group::slots); }
  // Nodes in the blocks taken so far (live, free, kept or not yet used).
  size_type node_capacity() const noexcept { return node_capacity_; }

  hasher hash_function() const { return hash_; }
  key_equal key_eq() const { return eq_; }
  allocator_type get_allocator() const noexcept { return allocator_; }

  // map_pool's debug hooks: while parked, any use is reported.
  void debug_park(unsigned returned_at) noexcept {
    if (debug_) [[unlikely]] user_check_.park(returned_at);
  }
  void debug_unpark() noexcept {
    if (debug_) [[unlikely]] user_check_.unpark();
  }

  friend bool operator==(const node_table& a, const node_table& b) {
    if (a.size() != b.size()) return false;
    for (const value_type& v : a) {
      auto found = b.find(Kind::key(v));
      if (found == b.end() || !(*found == v)) return false;
    }
    return true;
  }

  // ---- emplace ---------------------------------------------------------------------
  // emplace(key, value...), emplace(pair), emplace(piecewise_construct, ...):
  // the key is hashed and looked up before any element is built.
  template <class... Args>
  [[gnu::always_inline]] std::pair<iterator, bool> emplace(Args&&... args) {
    if constexpr (!is_map) {
      // A set's element is its key: one argument is looked up as it is;
      // several build the key first, as std's emplace builds the element.
      if constexpr (sizeof...(Args) == 1) return emplace_key(std::forward<Args>(args)...);
      else return emplace_key(key_type(std::forward<Args>(args)...));
    } else if constexpr (sizeof...(Args) == 1 && (pair_like<Args> && ...)) {
      return emplace_pair(std::forward<Args>(args)...);
    } else if constexpr (piecewise<Args...>()) {
      return emplace_piecewise(std::forward<Args>(args)...);
    } else {
      return emplace_key(std::forward<Args>(args)...);
    }
  }

 protected:
  iterator iterator_at(location at) noexcept { return iterator(this, at.index, at.node_at, at.slot); }

  template <class It, class K>
  It find_as(const K& key) const {
    look();
    const location found = locate(key, code_of(key));
    return found.index == no_node ? It() : It(this, found.index, found.node_at, found.slot);
  }
  template <class K>
  bool contains_as(const K& key) const {
    look();
    return locate(key, code_of(key)).index != no_node;
  }
  template <class It>
  static std::pair<It, It> range_of(It found) {
    return {found, found == It() ? found : std::next(found)};
  }
  template <class K>
  size_type erase_as(const K& key) {
    single_user_scope scope(debug_, user_check_, this, sizeof *this, misuse_texts);
    const location found = locate(key, code_of(key));
    if (found.index == no_node) return 0;
    remove(found.node_at, found.index, found.slot);
    return 1;
  }

  static constexpr bool is_map = requires { typename Kind::mapped_type; };
  // A pair or any two-element tuple-like argument: emplace(pair) splits it.
  // (A concept: its size is checked before std::get<1> is ever named.)
  template <class P>
  static constexpr bool pair_like = node_table_detail::two_element_tuple<P>;
  template <class... A>
  static constexpr bool piecewise() {
    if constexpr (sizeof...(A) == 3)
      return std::is_same_v<std::remove_cvref_t<std::tuple_element_t<0, std::tuple<A...>>>, std::piecewise_construct_t>;
    else
      return false;
  }

  template <class P>
  std::pair<iterator, bool> emplace_pair(P&& p) {
    return emplace_key(std::get<0>(std::forward<P>(p)), std::get<1>(std::forward<P>(p)));
  }
  template <class Tag, class KeyArgs, class ValueArgs>
  std::pair<iterator, bool> emplace_piecewise(Tag&&, KeyArgs&& key_args, ValueArgs&& value_args) {
    key_type key = std::make_from_tuple<key_type>(std::forward<KeyArgs>(key_args));
    return std::apply(
        [&](auto&&... v) { return emplace_key(std::move(key), std::forward<decltype(v)>(v)...); },
        std::forward<ValueArgs>(value_args));
  }

  // The one door for inserting: key (as given) and the value's arguments.
  template <class K, class... Rest>
  [[gnu::always_inline]] std::pair<iterator, bool> emplace_key(K&& key, Rest&&... rest) {
    if constexpr (lookup_key<K>) {
      single_user_scope scope(debug_, user_check_, this, sizeof *this, misuse_texts);
      const std::uint64_t code = code_of(key);
      if (const location found = locate(key, code); found.index != no_node)
        return {iterator_at(found), false};
      return {iterator_at(insert_new(code, std::forward<K>(key), std::forward<Rest>(rest)...)), true};
    } else {
      key_type made(std::forward<K>(key));   // a key of another type, not usable for lookups as it is
      return emplace_key(std::move(made), std::forward<Rest>(rest)...);
    }
  }

  // ---- the index -------------------------------------------------------------------
  template <class K>
  std::uint64_t code_of(const K& key) const {
    return node_table_detail::hash_code(static_cast<std::size_t>(hash_(key)));
  }

  // Inlined: an insert's miss in an uncrowded group (the common case) is a
  // few instructions; an out-of-line call would cost as much again.
  template <class K>
  [[gnu::always_inline]] location locate(const K& key, std::uint64_t code) const {
    const std::uint8_t tag = node_table_detail::tag_of(code);
    std::size_t g = node_table_detail::home_of(code, mask_);
    for (std::size_t step = 0;;) {
      const group& here = groups_[g];
      for (unsigned bits = here.match(tag); bits; bits &= bits - 1) {
        const node_index i = here.nodes[std::countr_zero(bits)];
        node* n = node_at(i);
        if (n->code == code && eq_(Kind::key(*n->value()), key)) [[likely]]
          return {i, n, slot_at(g, static_cast<unsigned>(std::countr_zero(bits)))};
      }
      if (!here.overflow || step == mask_) [[likely]] return {no_node, nullptr};
      g = (g + ++step) & mask_;
    }
  }

  // Writes (code, i) into the first free slot from the home group on; the
  // groups passed count it in their overflow. The table has room (size <
  // max load).
  [[gnu::always_inline]] static std::uint32_t place(group* groups, std::size_t mask, std::uint64_t code,
                                                    node_index i) noexcept {
    std::size_t g = node_table_detail::home_of(code, mask);
    for (std::size_t step = 0;; g = (g + ++step) & mask) {
      group& here = groups[g];
      if (const unsigned empty = here.match(0)) {
        const unsigned slot = static_cast<unsigned>(std::countr_zero(empty));
        here.tags[slot] = node_table_detail::tag_of(code);
        here.nodes[slot] = i;
        return slot_at(g, slot);
      }
      if (here.overflow != 255) ++here.overflow;
    }
  }

  // Takes node i (with this code) out of the index.
  // Takes node i (with this code) out of the index; `hint` is where it was
  // found, if known and still true.
  void unplace(std::uint64_t code, node_index i, std::uint32_t hint) noexcept {
    if (hint != no_slot && (hint >> 4) <= mask_) {
      group& here = groups_[hint >> 4];
      if (here.tags[hint & 15] && here.nodes[hint & 15] == i) return clear_slot(code, hint >> 4, hint & 15);
    }
    const std::uint8_t tag = node_table_detail::tag_of(code);
    std::size_t g = node_table_detail::home_of(code, mask_);
    for (std::size_t step = 0;; g = (g + ++step) & mask_) {
      const group& here = groups_[g];
      for (unsigned bits = here.match(tag); bits; bits &= bits - 1) {
        const unsigned slot = static_cast<unsigned>(std::countr_zero(bits));
        if (here.nodes[slot] == i) return clear_slot(code, g, slot);
      }
    }
  }
  void clear_slot(std::uint64_t code, std::size_t g, unsigned slot) noexcept {
    groups_[g].tags[slot] = 0;
    // The groups before this one counted the entry as passing them.
    std::size_t back = node_table_detail::home_of(code, mask_);
    for (std::size_t s = 0; back != g; back = (back + ++s) & mask_)
      if (groups_[back].overflow != 255) --groups_[back].overflow;
  }

  static std::size_t groups_for(size_type n) noexcept {
    return n ? std::bit_ceil((n + group::max_load - 1) / group::max_load) : 0;
  }
  static group* empty_index() noexcept { return const_cast<group*>(&node_table_detail::empty_group); }

  void grow_index_for(size_type n) {
    const std::size_t wanted = groups_for(n);
    if (wanted > (groups_ == empty_index() ? 0 : mask_ + 1)) rebuild_index(wanted);
  }

  // A new table of `groups` groups holding every live node (their kept codes).
  void rebuild_index(std::size_t groups) {
    if (groups == 0) return;
    group_allocator ga(allocator_);
    group* fresh = std::allocator_traits<group_allocator>::allocate(ga, groups);   // may throw: nothing changed
    for (std::size_t g = 0; g < groups; ++g) std::memset(static_cast<void*>(fresh + g), 0, group::header_bytes);
    for_each_node([&](node* n, node_index i) {
      if (n->live()) place(fresh, groups - 1, n->code, i);
    });
    free_index();
    groups_ = fresh;
    mask_ = groups - 1;
    max_load_ = groups * group::max_load;
  }
  void free_index() noexcept {
    if (groups_ == empty_index()) return;
    group_allocator ga(allocator_);
    std::allocator_traits<group_allocator>::deallocate(ga, groups_, mask_ + 1);
  }

  // ---- nodes -----------------------------------------------------------------------
  node* node_at(node_index i) const noexcept {
    return blocks_[node_table_detail::block_of(i)] + node_table_detail::offset_of(i);
  }
  template <class F>
  void for_each_node(F&& f) const {
    for (node_index i = 0; i < used_; i = node_table_detail::next_number(i)) f(node_at(i), i);
  }
  template <class It>
  It first_live() const noexcept {
    look();
    if (used_ == 0) return It();
    It it(this, 0);
    if (!it.node_->live()) ++it;
    return it;
  }

  // The carving cursor reached the end of its block (or has none): it moves
  // to the next block, taken from the allocator if not there yet. used_ is
  // then that block's first number; within a block carving only increments
  // both (the numbers past a short block's end are never used, and every walk
  // over the numbers, for_each_node and the iterators, skips them).
  void next_carving_block() {
    const node_index next = used_ == 0 ? 0 : ((used_ - 1) | node_table_detail::offset_mask) + 1;
    if (next >= max_size()) throw std::length_error("pcm::node_map: more than max_size() elements");
    const std::size_t block = node_table_detail::block_of(next);
    if (block == block_count_) add_block();   // may throw: nothing changed
    used_ = next;
    carve_ = blocks_[block];
    carve_end_ = carve_ + node_table_detail::block_size(block);
  }

  // Blocks until node_capacity_ >= n.
  void reserve_nodes(node_index n) {
    while (node_capacity_ < n) add_block();
  }
  void add_block() {
    if (block_count_ == block_slots_) {
      const std::size_t slots = block_slots_ ? 2 * block_slots_ : 4;
      block_list_allocator la(allocator_);
      node** list = std::allocator_traits<block_list_allocator>::allocate(la, slots);
      if (block_count_) std::memcpy(list, blocks_, block_count_ * sizeof(node*));
      if (blocks_) std::allocator_traits<block_list_allocator>::deallocate(la, blocks_, block_slots_);
      blocks_ = list;
      block_slots_ = slots;
    }
    const node_index size = node_table_detail::block_size(block_count_);
    node_allocator na(allocator_);
    blocks_[block_count_] = std::allocator_traits<node_allocator>::allocate(na, size);
    ++block_count_;
    node_capacity_ += size;
  }

  // Builds (key, rest...) in a free node, then links it: nothing changes if
  // anything throws. Returns where the node is. The insert path (emplace_key,
  // insert_new, fill, place) is inlined into the caller: as calls, their
  // prologues and epilogues cost a third of a pooled map's insert; growing the
  // index and taking a block stay out of line.
  template <class K, class... Rest>
  [[gnu::always_inline]] location insert_new(std::uint64_t code, K&& key, Rest&&... rest) {
    if (size_ >= max_load_) [[unlikely]] rebuild_index(groups_ == empty_index() ? 1 : 2 * (mask_ + 1));
    const bool reuse = free_ != no_node;
    if (!reuse && carve_ == carve_end_) [[unlikely]] next_carving_block();
    const node_index i = reuse ? free_ : used_;
    node* n = reuse ? node_at(i) : carve_;
    fill(n, i, std::forward<K>(key), std::forward<Rest>(rest)...);
    if (reuse) {
      free_ = n->next_free();
    } else {
      ++carve_;
      ++used_;
    }
    n->code = code;
    const std::uint32_t slot = place(groups_, mask_, code, i);
    ++size_;
    return {i, n, slot};
  }

  // Makes node i hold (key, rest...): by assignment into a kept element, else
  // by construction through the allocator (uses-allocator construction for
  // pmr keys and values).
  template <class K, class... Rest>
  [[gnu::always_inline]] void fill(node* n, node_index i, K&& key, Rest&&... rest) {
    if constexpr (keeps_elements) {
      if (i < constructed_) {
        value_type& v = *n->value();
        // v is a free node's: no valid reference into it is left.
        recycle::assign_unaliased(Kind::kept_key(v), std::forward<K>(key));
        if constexpr (requires { typename Kind::mapped_type; }) {
          using mapped = typename Kind::mapped_type;
          if constexpr (sizeof...(Rest) == 0) recycle::reset(v.second);
          else if constexpr (sizeof...(Rest) == 1) recycle::assign_unaliased(v.second, std::forward<Rest>(rest)...);
          else v.second = mapped(std::forward<Rest>(rest)...);
        }
        return;
      }
    }
    if constexpr (requires { typename Kind::mapped_type; })
      traits::construct(allocator_, n->value(), std::piecewise_construct, std::forward_as_tuple(std::forward<K>(key)),
                        std::forward_as_tuple(std::forward<Rest>(rest)...));
    else
      traits::construct(allocator_, n->value(), std::forward<K>(key));
    if constexpr (keeps_elements) constructed_ = node_table_detail::next_number(i);   // kept: the numbers below
  }

  // Node i leaves the container: out of the index, onto the free list.
  void remove(node* n, node_index i, std::uint32_t slot) noexcept {
    unplace(n->code, i, slot);
    if constexpr (destroys_on_erase) traits::destroy(allocator_, n->value());
    n->code = (std::uint64_t(free_) << 1) | 1;
    free_ = i;
    --size_;
  }

  void clear_elements() noexcept {
    if constexpr (destroys_on_erase)
      for_each_node([&](node* n, node_index) {
        if (n->live()) traits::destroy(allocator_, n->value());
      });
    if (groups_ != empty_index())
      for (std::size_t g = 0; g <= mask_; ++g) std::memset(static_cast<void*>(groups_ + g), 0, group::header_bytes);
    used_ = 0;
    // Carving starts again at the first node (no block: at the first insert).
    carve_ = block_count_ ? blocks_[0] : nullptr;
    carve_end_ = block_count_ ? carve_ + node_table_detail::block_size(0) : nullptr;
    free_ = no_node;
    size_ = 0;
  }

  // A constructor's work: if it throws, what was built is destroyed and given
  // back here, and the container is left empty: the destructor does not run
  // after a throw from a constructor, but does after one from a delegating
  // constructor's body (the range constructor).
  template <class Work>
  void build(Work&& work) {
    try {
      work();
    } catch (...) {
      free_storage();
      reset_storage();
      throw;
    }
  }

  // Destroys every element (live or kept) and gives every block back.
  void free_storage() noexcept {
    if constexpr (keeps_elements) {
      for (node_index i = 0; i < constructed_; i = node_table_detail::next_number(i))
        traits::destroy(allocator_, node_at(i)->value());
    } else if constexpr (destroys_on_erase) {
      for_each_node([&](node* n, node_index) {
        if (n->live()) traits::destroy(allocator_, n->value());
      });
    }
    node_allocator na(allocator_);
    for (std::size_t b = 0; b < block_count_; ++b)
      std::allocator_traits<node_allocator>::deallocate(na, blocks_[b], node_table_detail::block_size(b));
    if (blocks_) {
      block_list_allocator la(allocator_);
      std::allocator_traits<block_list_allocator>::deallocate(la, blocks_, block_slots_);
    }
    free_index();
  }
  void reset_storage() noexcept {
    groups_ = empty_index();
    mask_ = 0;
    max_load_ = 0;
    size_ = 0;
    blocks_ = nullptr;
    block_count_ = block_slots_ = 0;
    node_capacity_ = used_ = constructed_ = 0;
    carve_ = carve_end_ = nullptr;
    free_ = no_node;
  }
  void steal(node_table& other) noexcept {
    groups_ = other.groups_;
    mask_ = other.mask_;
    max_load_ = other.max_load_;
    size_ = other.size_;
    blocks_ = other.blocks_;
    block_count_ = other.block_count_;
    block_slots_ = other.block_slots_;
    node_capacity_ = other.node_capacity_;
    used_ = other.used_;
    constructed_ = other.constructed_;
    carve_ = other.carve_;
    carve_end_ = other.carve_end_;
    free_ = other.free_;
    other.reset_storage();
  }
  void swap_storage(node_table& other) noexcept {
    using std::swap;
    swap(groups_, other.groups_);
    swap(mask_, other.mask_);
    swap(max_load_, other.max_load_);
    swap(size_, other.size_);
    swap(blocks_, other.blocks_);
    swap(block_count_, other.block_count_);
    swap(block_slots_, other.block_slots_);
    swap(node_capacity_, other.node_capacity_);
    swap(used_, other.used_);
    swap(constructed_, other.constructed_);
    swap(carve_, other.carve_);
    swap(carve_end_, other.carve_end_);
    swap(free_, other.free_);
  }
  // Copies other's elements in its node order, with their hash codes (Hash is
  // not called). Basic guarantee: what was copied before a throw stays.
  void copy_elements(const node_table& other) {
    grow_index_for(size_ + other.size_);
    other.for_each_node([&](node* n, node_index) {
      if (!n->live()) return;
      const value_type& v = *n->value();
      if constexpr (requires { typename Kind::mapped_type; }) insert_new(n->code, v.first, v.second);
      else insert_new(n->code, v);
    });
  }
  void move_elements(node_table& other) {
    grow_index_for(size_ + other.size_);
    other.for_each_node([&](node* n, node_index) {
      if (!n->live()) return;
      value_type& v = *n->value();
      if constexpr (requires { typename Kind::mapped_type; })
        insert_new(n->code, std::move(Kind::kept_key(v)), std::move(v.second));
      else insert_new(n->code, std::move(v));
    });
    other.clear_elements();
  }

  // Debug library: lookups may run beside each other, not beside a mutation.
  void look() const noexcept {
    if (debug_) [[unlikely]] user_check_.look(this, sizeof *this, misuse_texts);
  }

  // The index (empty_group until the first insert or reserve).
  group* groups_ = empty_index();
  std::size_t mask_ = 0;           // groups - 1
  std::size_t max_load_ = 0;       // size at which the index grows
  std::size_t size_ = 0;
  // The nodes: blocks_[b] holds block_size(b) nodes; the numbers below used_
  // were carved since the last clear; with keeps_elements, those below
  // constructed_ hold elements. carve_ is node used_ and carve_end_ the end of
  // its block (equal: take the next block first), so carving a node is a
  // pointer increment, not a number-to-address lookup (about 20 of a pooled
  // insert's instructions).
  node** blocks_ = nullptr;
  node* carve_ = nullptr;
  node* carve_end_ = nullptr;
  std::size_t block_count_ = 0, block_slots_ = 0;
  node_index node_capacity_ = 0;
  node_index used_ = 0;
  node_index constructed_ = 0;
  node_index free_ = no_node;      // the free list (through the nodes' codes)
  [[no_unique_address]] Allocator allocator_;
  [[no_unique_address]] Hash hash_;
  [[no_unique_address]] Eq eq_;
  bool debug_ = single_user_check::enabled();
  mutable single_user_check user_check_;
};

template <class K, class V, class Hash = std::hash<K>, class Eq = std::equal_to<K>,
          class Allocator = std::pmr::polymorphic_allocator<std::pair<const K, V>>>
class node_map : public node_table<node_table_detail::map_kind<K, V>, Hash, Eq, Allocator> {
  using base = node_table<node_table_detail::map_kind<K, V>, Hash, Eq, Allocator>;
  template <class A>
  static constexpr bool transparent_key = base::template transparent_key<A>;

 public:
  using mapped_type = V;
  using typename base::const_iterator;
  using typename base::iterator;
  using typename base::key_type;
  using base::base;
  using base::operator=;
  node_map() = default;
  friend void swap(node_map& a, node_map& b) noexcept { a.swap(b); }

  // The value is built (from args) only when the key is absent. These and
  // insert_or_assign are inlined, as emplace is: out of line, each returned
  // its (iterator, bool) through memory and the caller could not drop the
  // iterator it ignores; under churn (maps churn node_map) inlining
  // insert_or_assign took 23 instructions off an operation (137 -> 114) and
  // about a quarter of its time.
  template <class... Args>
  [[gnu::always_inline]] std::pair<iterator, bool> try_emplace(const key_type& key, Args&&... args) {
    return this->emplace_key(key, std::forward<Args>(args)...);
  }
  template <class... Args>
  [[gnu::always_inline]] std::pair<iterator, bool> try_emplace(key_type&& key, Args&&... args) {
    return this->emplace_key(std::move(key), std::forward<Args>(args)...);
  }
  template <class K2, class... Args>
    requires(transparent_key<K2> && !std::is_convertible_v<K2 &&, const_iterator>)
  [[gnu::always_inline]] std::pair<iterator, bool> try_emplace(K2&& key, Args&&... args) {
    return this->emplace_key(std::forward<K2>(key), std::forward<Args>(args)...);
  }
  template <class K2, class... Args>
  iterator try_emplace(const_iterator, K2&& key, Args&&... args) {
    return try_emplace(std::forward<K2>(key), std::forward<Args>(args)...).first;
  }

  template <class M>
  [[gnu::always_inline]] std::pair<iterator, bool> insert_or_assign(const key_type& key, M&& value) {
    return assign_as(key, std::forward<M>(value));
  }
  template <class M>
  [[gnu::always_inline]] std::pair<iterator, bool> insert_or_assign(key_type&& key, M&& value) {
    return assign_as(std::move(key), std::forward<M>(value));
  }
  template <class K2, class M>
    requires transparent_key<K2>
  [[gnu::always_inline]] std::pair<iterator, bool> insert_or_assign(K2&& key, M&& value) {
    return assign_as(std::forward<K2>(key), std::forward<M>(value));
  }

  V& operator[](const key_type& key) { return try_emplace(key).first->second; }
  V& operator[](key_type&& key) { return try_emplace(std::move(key)).first->second; }
  template <class K2>
    requires transparent_key<K2>
  V& operator[](K2&& key) {
    return try_emplace(std::forward<K2>(key)).first->second;
  }

  V& at(const key_type& key) { return at_as(*this, key); }
  const V& at(const key_type& key) const { return at_as(*this, key); }
  template <class K2>
    requires transparent_key<K2>
  V& at(const K2& key) {
    return at_as(*this, key);
  }
  template <class K2>
    requires transparent_key<K2>
  const V& at(const K2& key) const {
    return at_as(*this, key);
  }

 private:
  template <class K2, class M>
  [[gnu::always_inline]] std::pair<iterator, bool> assign_as(K2&& key, M&& value) {
    single_user_scope scope(this->debug_, this->user_check_, this, sizeof *this, base::misuse_texts);
    const std::uint64_t code = this->code_of(key);
    if (const auto found = this->locate(key, code); found.index != base::no_node) {
      found.node_at->value()->second = std::forward<M>(value);
      return {this->iterator_at(found), false};
    }
    return {this->iterator_at(this->insert_new(code, std::forward<K2>(key), std::forward<M>(value))), true};
  }
  template <class Self, class K2>
  static auto& at_as(Self& self, const K2& key) {
    auto found = self.find(key);
    if (found == self.end()) throw std::out_of_range("pcm::node_map::at: no such key");
    return found->second;
  }
};

template <class K, class Hash = std::hash<K>, class Eq = std::equal_to<K>,
          class Allocator = std::pmr::polymorphic_allocator<K>>
class node_set : public node_table<node_table_detail::set_kind<K>, Hash, Eq, Allocator> {
  using base = node_table<node_table_detail::set_kind<K>, Hash, Eq, Allocator>;

 public:
  using base::base;
  using base::operator=;
  node_set() = default;
  friend void swap(node_set& a, node_set& b) noexcept { a.swap(b); }
};

}  // namespace pcm
