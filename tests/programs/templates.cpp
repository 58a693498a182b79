// Compiled by g++ (with and without pcmalloc preloaded) in the "g++ templates"
// program test, then run. Written to make cc1plus work hard: variadic
// templates and fold expressions, std::variant/std::visit, std::tuple/apply,
// ranges pipelines, concepts, constexpr evaluation (std::vector and
// std::string in constant expressions), and the standard containers
// instantiated over many element types. The program's output is deterministic.
#include <algorithm>
#include <array>
#include <cstdint>
#include <deque>
#include <forward_list>
#include <functional>
#include <iostream>
#include <list>
#include <map>
#include <memory>
#include <numeric>
#include <optional>
#include <ranges>
#include <set>
#include <sstream>
#include <string>
#include <string_view>
#include <tuple>
#include <type_traits>
#include <unordered_map>
#include <unordered_set>
#include <utility>
#include <variant>
#include <vector>

namespace {

// ---- constexpr evaluation: the compiler runs these, the program checks them.
constexpr std::vector<int> primes_below(int limit) {
  std::vector<bool> composite(std::size_t(limit), false);
  std::vector<int> primes;
  for (int i = 2; i < limit; ++i) {
    if (composite[std::size_t(i)]) continue;
    primes.push_back(i);
    for (int j = i * i; j < limit; j += i) composite[std::size_t(j)] = true;
  }
  return primes;
}

constexpr int prime_count(int limit) { return int(primes_below(limit).size()); }
constexpr int prime_sum(int limit) {
  auto p = primes_below(limit);
  return std::accumulate(p.begin(), p.end(), 0);
}
static_assert(prime_count(100) == 25);

constexpr std::string spell(unsigned n) {
  constexpr std::string_view digits[] = {"zero", "one", "two", "three", "four",
                                         "five", "six", "seven", "eight", "nine"};
  if (n < 10) return std::string(digits[n]);
  return spell(n / 10) + "-" + std::string(digits[n % 10]);
}
constexpr std::size_t spelled_length(unsigned n) { return spell(n).size(); }

template <std::size_t N>
constexpr std::array<std::uint64_t, N> fibonacci_table() {
  std::array<std::uint64_t, N> t{};
  t[0] = 0;
  if constexpr (N > 1) t[1] = 1;
  for (std::size_t i = 2; i < N; ++i) t[i] = t[i - 1] + t[i - 2];
  return t;
}
constexpr auto fibonacci = fibonacci_table<90>();
static_assert(fibonacci[10] == 55);

constexpr std::uint64_t collatz_steps_total(std::uint64_t limit) {
  std::uint64_t total = 0;
  for (std::uint64_t n = 1; n < limit; ++n)
    for (std::uint64_t x = n; x != 1; ++total) x = x % 2 ? 3 * x + 1 : x / 2;
  return total;
}

// ---- variadic templates and folds.
template <typename... Ts>
struct type_list {
  static constexpr std::size_t size = sizeof...(Ts);
};

template <typename... Ts>
constexpr std::size_t total_size(type_list<Ts...>) { return (sizeof(Ts) + ... + 0); }

template <typename... Ts>
std::string join(std::string_view separator, const Ts&... parts) {
  std::ostringstream out;
  std::size_t i = 0;
  ((out << (i++ ? separator : "") << parts), ...);
  return out.str();
}

template <typename F, typename... Ts>
void for_each_arg(F&& f, Ts&&... args) { (f(std::forward<Ts>(args)), ...); }

template <std::size_t... I, typename Tuple>
auto reversed_impl(const Tuple& t, std::index_sequence<I...>) {
  return std::make_tuple(std::get<std::tuple_size_v<Tuple> - 1 - I>(t)...);
}
template <typename... Ts>
auto reversed(const std::tuple<Ts...>& t) { return reversed_impl(t, std::index_sequence_for<Ts...>{}); }

// ---- concepts.
template <typename T>
concept numeric = std::integral<T> || std::floating_point<T>;
template <typename T>
concept text = std::convertible_to<T, std::string_view>;

template <numeric T>
std::string describe(const T& v) { return "number:" + std::to_string(v); }
template <text T>
std::string describe(const T& v) { return "text:" + std::string(std::string_view(v)); }

// ---- deterministic data.
struct generator {
  std::uint64_t state;
  std::uint64_t next() {
    state = state * 6364136223846793005ull + 1442695040888963407ull;
    return state >> 33;
  }
  std::string word() {
    std::string s;
    for (auto n = 2 + next() % 9; n; --n) s += char('a' + next() % 26);
    return s;
  }
};

struct point {
  int x = 0, y = 0;
  auto operator<=>(const point&) const = default;
};
struct point_hash {
  std::size_t operator()(const point& p) const { return std::size_t(p.x) * 1000003u ^ std::size_t(p.y); }
};
std::ostream& operator<<(std::ostream& out, const point& p) { return out << '(' << p.x << ',' << p.y << ')'; }

// Makes a value of T from a number: one overload set for every element type.
template <typename T>
T make(generator& g) {
  if constexpr (std::is_same_v<T, std::string>) return g.word();
  else if constexpr (std::is_same_v<T, point>) return point{int(g.next() % 100), int(g.next() % 100)};
  else if constexpr (std::is_same_v<T, std::pair<int, std::string>>) return {int(g.next() % 50), g.word()};
  else if constexpr (std::is_same_v<T, std::vector<int>>) return std::vector<int>(g.next() % 5, int(g.next() % 10));
  else if constexpr (std::is_same_v<T, std::tuple<char, long, std::string>>)
    return {char('a' + g.next() % 26), long(g.next() % 1000), g.word()};
  else if constexpr (std::is_floating_point_v<T>) return T(g.next() % 10000) / T(8);
  else return T(g.next() % 1000);
}

// A checksum of any value: numbers, strings, pairs, tuples, containers.
template <typename T>
std::uint64_t digest(const T& v);
template <typename T>
concept iterable = requires(const T& t) { t.begin(); t.end(); } && !std::is_same_v<T, std::string>;

template <typename T>
std::uint64_t digest(const T& v) {
  if constexpr (std::is_same_v<T, std::string>) {
    std::uint64_t h = 1469598103934665603ull;
    for (char c : v) h = (h ^ std::uint8_t(c)) * 1099511628211ull;
    return h;
  } else if constexpr (std::is_same_v<T, point>) {
    return std::uint64_t(v.x) * 131 + std::uint64_t(v.y);
  } else if constexpr (std::is_arithmetic_v<T>) {
    return std::uint64_t(v * 3);
  } else if constexpr (iterable<T>) {
    std::uint64_t h = 7;
    for (const auto& e : v) h = h * 31 + digest(e);
    return h;
  } else {
    return std::apply([](const auto&... e) { return (std::uint64_t(17) * ... * (digest(e) | 1)); }, v);
  }
}

// Exercises the standard containers over one element type.
template <typename T>
std::string exercise(generator& g, int count) {
  std::vector<T> values;
  for (int i = 0; i < count; ++i) values.push_back(make<T>(g));
  std::deque<T> deque(values.begin(), values.end());
  std::list<T> list(values.rbegin(), values.rend());
  std::forward_list<T> forward(values.begin(), values.end());
  std::set<T> set(values.begin(), values.end());
  std::multiset<T> multi(values.begin(), values.end());
  std::map<T, int> counts;
  for (const auto& v : values) ++counts[v];
  list.sort();
  forward.sort();
  deque.erase(std::unique(deque.begin(), deque.end()), deque.end());
  std::uint64_t h = digest(values) ^ digest(set) ^ (digest(list) << 1) ^ (digest(forward) << 2);
  auto most = std::max_element(counts.begin(), counts.end(),
                               [](const auto& a, const auto& b) { return a.second < b.second; });
  return join(" ", values.size(), set.size(), multi.size(), deque.size(), most->second, h % 1000003);
}

template <typename T>
std::string exercise_hashed(generator& g, int count) {
  std::unordered_map<T, std::vector<int>, std::conditional_t<std::is_same_v<T, point>, point_hash, std::hash<T>>> index;
  std::unordered_set<T, std::conditional_t<std::is_same_v<T, point>, point_hash, std::hash<T>>> seen;
  for (int i = 0; i < count; ++i) {
    T v = make<T>(g);
    index[v].push_back(i);
    seen.insert(v);
  }
  std::size_t longest = 0;
  for (const auto& [k, positions] : index) longest = std::max(longest, positions.size());
  return join(" ", index.size(), seen.size(), longest);
}

template <typename... Ts>
void exercise_all(type_list<Ts...>, generator& g, int count, std::ostream& out) {
  ((out << "containers of " << sizeof(Ts) << "-byte type: " << exercise<Ts>(g, count) << '\n'), ...);
}

// ---- std::variant and visitors.
template <typename... Fs>
struct overloaded : Fs... {
  using Fs::operator()...;
};
template <typename... Fs>
overloaded(Fs...) -> overloaded<Fs...>;

using value = std::variant<int, double, std::string, point, std::vector<int>>;

struct shape_circle {
  double r;
};
struct shape_rect {
  double w, h;
};
struct shape_triangle {
  double a, b, c;
};
using shape = std::variant<shape_circle, shape_rect, shape_triangle>;

double area(const shape& s) {
  return std::visit(overloaded{
                        [](const shape_circle& c) { return 3.0 * c.r * c.r; },
                        [](const shape_rect& r) { return r.w * r.h; },
                        [](const shape_triangle& t) {
                          double p = (t.a + t.b + t.c) / 2;
                          return p * (p - t.a) * (p - t.b) * (p - t.c) > 0 ? p : 0.0;
                        },
                    },
                    s);
}

// A small expression tree on variants: evaluated recursively.
struct expression;
using expression_ptr = std::unique_ptr<expression>;
struct add {
  expression_ptr left, right;
};
struct multiply {
  expression_ptr left, right;
};
struct literal {
  long v;
};
struct expression {
  std::variant<literal, add, multiply> node;
};

expression_ptr build(generator& g, int depth) {
  auto e = std::make_unique<expression>();
  if (depth == 0 || g.next() % 5 == 0) e->node = literal{long(g.next() % 10)};
  else if (g.next() % 2) e->node = add{build(g, depth - 1), build(g, depth - 1)};
  else e->node = multiply{build(g, depth - 1), build(g, depth - 1)};
  return e;
}

long evaluate(const expression& e) {
  return std::visit(overloaded{
                        [](const literal& l) { return l.v; },
                        [](const add& a) { return (evaluate(*a.left) + evaluate(*a.right)) % 1000003; },
                        [](const multiply& m) { return (evaluate(*m.left) * evaluate(*m.right)) % 1000003; },
                    },
                    e.node);
}

}  // namespace

int main() {
  generator g{2024};
  std::cout << "constexpr: " << prime_count(5000) << " primes below 5000, sum " << prime_sum(5000)
            << ", fib(89) " << fibonacci[89] << ", spelled 907 '" << spell(907) << "' ("
            << spelled_length(123456) << " chars for 123456), collatz " << collatz_steps_total(3000) << '\n';
  constexpr int compiled_primes = prime_count(3000);
  constexpr auto compiled_collatz = collatz_steps_total(500);
  std::cout << "at compile time: " << compiled_primes << ' ' << compiled_collatz << '\n';

#ifdef PCM_SMOKE
  using element_types = type_list<int, std::string, point>;
#else
  using element_types = type_list<int, double, char, std::string, point, std::pair<int, std::string>,
                                  std::vector<int>, std::tuple<char, long, std::string>>;
#endif
  std::cout << element_types::size << " element types, " << total_size(element_types{}) << " bytes together\n";
  exercise_all(element_types{}, g, 3000, std::cout);
  std::cout << "hashed int: " << exercise_hashed<int>(g, 20000) << '\n';
  std::cout << "hashed string: " << exercise_hashed<std::string>(g, 20000) << '\n';
  std::cout << "hashed point: " << exercise_hashed<point>(g, 20000) << '\n';

  // Tuples: apply, reverse, folds over heterogeneous arguments.
  auto t = std::make_tuple(1, 2.5, std::string("three"), point{4, 4}, 'x');
  auto r = reversed(t);
  std::cout << "tuple: " << std::apply([](const auto&... e) { return join("|", e...); }, t) << " reversed: "
            << std::apply([](const auto&... e) { return join("|", e...); }, r) << '\n';
  std::vector<std::string> described;
  for_each_arg([&](const auto& v) { described.push_back(describe(v)); }, 7, 2.25, "eight", std::string("nine"));
  std::cout << "described: " << join(", ", described[0], described[1], described[2], described[3]) << '\n';

  // Variants.
  std::vector<value> values;
  for (int i = 0; i < 50000; ++i) {
    switch (g.next() % 5) {
      case 0: values.emplace_back(int(g.next() % 100)); break;
      case 1: values.emplace_back(double(g.next() % 100) / 4); break;
      case 2: values.emplace_back(g.word()); break;
      case 3: values.emplace_back(point{int(g.next() % 10), int(g.next() % 10)}); break;
      default: values.emplace_back(std::vector<int>(g.next() % 8, i % 7)); break;
    }
  }
  std::map<std::size_t, std::size_t> by_kind;
  double numeric_total = 0;
  std::size_t text_total = 0;
  for (const auto& v : values) {
    ++by_kind[v.index()];
    std::visit(overloaded{
                   [&](int x) { numeric_total += x; },
                   [&](double x) { numeric_total += x; },
                   [&](const std::string& s) { text_total += s.size(); },
                   [&](const point& p) { numeric_total += p.x * p.y; },
                   [&](const std::vector<int>& v) { text_total += v.size(); },
               },
               v);
  }
  std::cout << "variants:";
  for (auto [kind, n] : by_kind) std::cout << ' ' << kind << '=' << n;
  std::cout << " numeric " << numeric_total << " text " << text_total << '\n';

  std::vector<shape> shapes;
  for (int i = 0; i < 20000; ++i) {
    auto k = g.next() % 3;
    if (k == 0) shapes.emplace_back(shape_circle{double(g.next() % 20)});
    else if (k == 1) shapes.emplace_back(shape_rect{double(g.next() % 20), double(g.next() % 20)});
    else shapes.emplace_back(shape_triangle{double(3 + g.next() % 5), double(3 + g.next() % 5), double(3 + g.next() % 5)});
  }
  double total_area = 0;
  for (const auto& s : shapes) total_area += area(s);
  std::cout << "shapes: " << shapes.size() << " area " << total_area << '\n';

  long expressions = 0;
  for (int i = 0; i < 300; ++i) expressions = (expressions + evaluate(*build(g, 12))) % 1000003;
  std::cout << "expressions: " << expressions << '\n';

  // Ranges pipelines.
  std::vector<std::string> words;
  for (int i = 0; i < 40000; ++i) words.push_back(g.word());
  auto long_upper = words | std::views::filter([](const std::string& w) { return w.size() > 7; }) |
                    std::views::transform([](std::string w) {
                      std::ranges::transform(w, w.begin(), [](char c) { return char(c - 'a' + 'A'); });
                      return w;
                    }) |
                    std::views::take(5);
  std::cout << "ranges:";
  for (const auto& w : long_upper) std::cout << ' ' << w;
  std::cout << '\n';
  auto squares = std::views::iota(1, 2000) | std::views::filter([](int i) { return i % 3 == 0; }) |
                 std::views::transform([](int i) { return long(i) * i; }) | std::views::reverse;
  long square_sum = 0;
  for (long s : squares) square_sum += s;
  std::ranges::sort(words);
  auto [first, last] = std::ranges::unique(words);
  words.erase(first, last);
  auto lengths = words | std::views::transform(&std::string::size);
  std::map<std::size_t, int> histogram;
  for (auto n : lengths) ++histogram[n];
  std::cout << "squares " << square_sum << ", unique words " << words.size() << ", lengths";
  for (auto [n, c] : histogram) std::cout << ' ' << n << ':' << c;
  std::cout << '\n';
  std::string sentence = "the quick brown fox jumps over the lazy dog";
  std::vector<std::string> split_words;
  for (auto part : sentence | std::views::split(' ')) split_words.emplace_back(part.begin(), part.end());
  std::ranges::sort(split_words, std::greater<>());
  std::cout << "split: " << split_words.size() << " words, first " << split_words.front() << '\n';

  std::optional<point> found;
  for (int i = 0; i < 1000 && !found; ++i) {
    point p{int(g.next() % 50), int(g.next() % 50)};
    if (p.x == p.y) found = p;
  }
  std::cout << "optional: " << (found ? join("", *found) : std::string("none")) << '\n';
  return 0;
}
