// Forms of pcm::node_map's interface that std::unordered_map accepts and that
// must compile: meson compiles this file (-fsyntax-only) as a test of the pmr
// suite, so a form that does not compile fails that test, not the build.
//
// emplace(piecewise_construct, key tuple, value tuple) with tuples of one
// element or none: the usual way to build a key and a value in place; a
// node_set's emplace(args...) with several arguments for one key.
#include <string>
#include <tuple>
#include <utility>

#include <pcmalloc/node_map.hpp>

void piecewise_emplace() {
  pcm::node_map<int, int> numbers;
  numbers.emplace(std::piecewise_construct, std::forward_as_tuple(1), std::forward_as_tuple(2));
  numbers.emplace(std::piecewise_construct, std::forward_as_tuple(3), std::forward_as_tuple());
  pcm::node_map<std::string, std::string> texts;
  texts.emplace(std::piecewise_construct, std::forward_as_tuple("key"), std::forward_as_tuple(30, 'v'));
  texts.emplace(std::piecewise_construct, std::forward_as_tuple(20, 'k'), std::forward_as_tuple("value"));
}

void set_emplace_of_several_arguments() {
  pcm::node_set<std::string> texts;
  texts.emplace(20, 'k');   // std::string(20, 'k')
}
