// Reusing a kept object by assignment: what recycling_map and node_map do
// with the keys and values of erased or cleared entries, so that a string or
// vector keeps its capacity and the next entry of the same size allocates
// nothing.
#pragma once
#include <cstddef>
#include <cstring>
#include <functional>
#include <string>
#include <string_view>
#include <type_traits>
#include <utility>
#include <vector>

namespace pcm::recycle {

// A type whose value lives in storage it owns and keeps across assignment,
// and that owns nothing else: std::basic_string, and std::vector of plain
// data. Worth keeping constructed when its entry goes away. Other types with
// a destructor (a shared_ptr, a vector of unique_ptrs, a file handle) are
// destroyed as the standard containers destroy them: keeping them would keep
// what they own alive. Specialise for your own types.
template <class T>
struct keeps_capacity : std::false_type {};
template <class C, class Traits, class Allocator>
struct keeps_capacity<std::basic_string<C, Traits, Allocator>> : std::true_type {};
template <class E, class Allocator>
struct keeps_capacity<std::vector<E, Allocator>> : std::bool_constant<std::is_trivially_copyable_v<E>> {};
template <class T>
inline constexpr bool keeps_capacity_v = keeps_capacity<T>::value;

// Copies n bytes that do not overlap, inline: a header or a short value is
// copied by a few 16- or 8-byte moves (the last one overlapping) instead of a
// call into the C library's memcpy, which costs more than the copy at these
// sizes. Longer text goes to memcpy.
[[gnu::always_inline]] inline void copy_short(void* to, const void* from, std::size_t n) noexcept {
  auto* d = static_cast<unsigned char*>(to);
  const auto* s = static_cast<const unsigned char*>(from);
  if (n > 64) {
    std::memcpy(d, s, n);
  } else if (n >= 16) {
    for (std::size_t i = 0; i + 16 < n; i += 16) std::memcpy(d + i, s + i, 16);
    std::memcpy(d + n - 16, s + n - 16, 16);
  } else if (n >= 8) {
    std::memcpy(d, s, 8);
    std::memcpy(d + n - 8, s + n - 8, 8);
  } else if (n >= 4) {
    std::memcpy(d, s, 4);
    std::memcpy(d + n - 4, s + n - 4, 4);
  } else {
    for (std::size_t i = 0; i < n; ++i) d[i] = s[i];
  }
}

// target = source, where target is a string and source text that fits its
// capacity: the length is set first (nothing to do when it is the same, as
// for a header name or a fixed-width value refilled per request; a longer one
// fills the new tail, which the copy then overwrites), then the text is
// copied over the string's own characters. No allocation, none of assign()'s
// general path (aliasing, replace). Text inside target itself takes the
// general path. Strong guarantee where target's own assignment gives it (the
// fast path cannot throw).
// may_alias false: the caller knows the text cannot lie inside target (see
// assign_unaliased), and the check is left out.
template <bool may_alias, class T, class Source>
[[gnu::always_inline]] inline void assign_text(T& target, Source&& source) {
  if constexpr (requires { typename T::traits_type; target.capacity(); target.resize(0); }) {
    using view = std::basic_string_view<typename T::value_type, typename T::traits_type>;
    if constexpr (std::is_convertible_v<const Source&, view>) {
      const view text = source;
      const auto* own = target.data();
      const bool inside = may_alias && !std::less<>()(text.data(), own) &&
                          !std::less<>()(own + target.capacity(), text.data());
      if (text.size() <= target.capacity() && !inside) {
        if (text.size() != target.size()) target.resize(text.size());   // within capacity: no allocation
        if constexpr (std::is_trivially_copyable_v<typename T::value_type>)
          copy_short(target.data(), text.data(), text.size() * sizeof(typename T::value_type));
        else
          T::traits_type::copy(target.data(), text.data(), text.size());
        return;
      }
    }
  }
  if constexpr (std::is_assignable_v<T&, Source&&>) target = std::forward<Source>(source);
  else target = T(std::forward<Source>(source));   // e.g. a string from a string_view (explicit)
}
template <class T, class Source>
[[gnu::always_inline]] inline void assign(T& target, Source&& source) {
  assign_text<true>(target, std::forward<Source>(source));
}
// For a target that no one may refer to any more, so that no valid source
// text lies inside it: node_map's kept elements (erase and clear invalidate
// every reference into them, as std's do). Two instructions less a string.
template <class T, class Source>
[[gnu::always_inline]] inline void assign_unaliased(T& target, Source&& source) {
  assign_text<false>(target, std::forward<Source>(source));
}

// A kept object made empty for operator[]: emptied in place where it can be
// (a string keeps its capacity), else value-initialised.
template <class T>
void reset(T& v) {
  if constexpr (requires { v.clear(); }) v.clear();
  else v = T();
}

}  // namespace pcm::recycle
