// Compiled by g++ (with and without pcmalloc preloaded) in the g++ program
// test, then run. Plenty of template instantiation for cc1plus to allocate
// through; the program's own output is deterministic.
#include <algorithm>
#include <cstdint>
#include <iostream>
#include <map>
#include <memory>
#include <numeric>
#include <sstream>
#include <string>
#include <unordered_map>
#include <vector>

namespace {

std::uint64_t next(std::uint64_t& state) {
  state = state * 6364136223846793005ull + 1442695040888963407ull;
  return state >> 33;
}

template <typename Key, typename Value, template <typename...> class Map>
struct counter {
  Map<Key, Value> counts;
  void add(const Key& k, Value v) { counts[k] += v; }
  template <typename F>
  Value fold(F f) const {
    Value total{};
    for (const auto& [k, v] : counts) total = f(total, k, v);
    return total;
  }
};

template <typename... Ts>
std::string join(const Ts&... parts) {
  std::ostringstream out;
  ((out << parts << '/'), ...);
  return out.str();
}

struct shape {
  virtual ~shape() = default;
  virtual std::int64_t area() const = 0;
};
struct rect : shape {
  std::int64_t w, h;
  rect(std::int64_t w_, std::int64_t h_) : w(w_), h(h_) {}
  std::int64_t area() const override { return w * h; }
};
struct square : rect {
  explicit square(std::int64_t s) : rect(s, s) {}
};

std::string word(std::uint64_t& state) {
  std::string s;
  for (auto n = 2 + next(state) % 10; n; --n) s += char('a' + next(state) % 26);
  return s;
}

}  // namespace

int main() {
  std::uint64_t state = 42;
  std::vector<std::string> words;
  for (int i = 0; i < 50000; ++i) words.push_back(word(state));

  counter<std::string, long, std::map> ordered;
  counter<std::string, long, std::unordered_map> hashed;
  for (const auto& w : words) {
    ordered.add(w.substr(0, 3), long(w.size()));
    hashed.add(w, 1);
  }
  auto sum = [](long t, const std::string& k, long v) { return t + v * long(k.size()); };
  std::cout << "ordered " << ordered.counts.size() << ' ' << ordered.fold(sum) << '\n';
  std::cout << "hashed " << hashed.counts.size() << ' ' << hashed.fold(sum) << '\n';

  std::map<std::string, std::vector<int>> index;
  for (int i = 0; i < int(words.size()); ++i) index[words[i].substr(0, 2)].push_back(i);
  std::vector<std::pair<std::size_t, std::string>> sizes;
  for (auto& [k, v] : index) sizes.emplace_back(v.size(), k);
  std::sort(sizes.begin(), sizes.end(), std::greater<>());
  for (int i = 0; i < 5; ++i) std::cout << join(sizes[i].second, sizes[i].first) << '\n';

  std::vector<std::unique_ptr<shape>> shapes;
  for (int i = 0; i < 20000; ++i) {
    if (next(state) % 2) shapes.push_back(std::make_unique<rect>(next(state) % 100, next(state) % 100));
    else shapes.push_back(std::make_unique<square>(next(state) % 100));
  }
  std::int64_t area = 0;
  for (const auto& s : shapes) area += s->area();
  std::sort(words.begin(), words.end());
  words.erase(std::unique(words.begin(), words.end()), words.end());
  std::cout << "area " << area << " unique " << words.size() << " first " << words.front()
            << " last " << words.back() << '\n';
  return 0;
}
