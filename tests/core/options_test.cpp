// PCMALLOC_CONF parsing (options.cpp) on its own: good strings, every key's
// bounds, unknown keys and bad values (counted, and named on stderr, which is
// captured through a pipe), empty strings and stray commas.
#include <cstring>
#include <string>
#include <unistd.h>

#include <doctest/doctest.h>

#include "options.hpp"

using namespace pcm;

namespace {

// Runs parse_options with file descriptor 2 redirected into a pipe.
struct parse_result {
  unsigned problems;
  std::string errors;
};
parse_result parse(const char* text, options& out) {
  int fds[2];
  REQUIRE(pipe(fds) == 0);
  int saved = dup(STDERR_FILENO);
  dup2(fds[1], STDERR_FILENO);
  close(fds[1]);
  unsigned problems = parse_options(text, out);
  dup2(saved, STDERR_FILENO);
  close(saved);
  std::string errors;
  char buffer[4096];
  for (ssize_t n; (n = read(fds[0], buffer, sizeof buffer)) > 0;) errors.append(buffer, std::size_t(n));
  close(fds[0]);
  return {problems, errors};
}
parse_result parse(const char* text) {
  options o;
  return parse(text, o);
}

bool same(const options& a, const options& b) {
  return a.arenas == b.arenas && a.percpu == b.percpu && a.cache_class_bytes == b.cache_class_bytes &&
         a.cache_max_objects == b.cache_max_objects && a.decay_ms == b.decay_ms && a.huge_pages == b.huge_pages &&
         a.stats_print == b.stats_print && a.stats_json == b.stats_json && a.guard == b.guard &&
         a.quarantine_bytes == b.quarantine_bytes && a.abort_on_error == b.abort_on_error &&
         a.error_exit_code == b.error_exit_code && a.leaks == b.leaks && a.report_json == b.report_json &&
         a.stack_depth == b.stack_depth && a.limit_bytes == b.limit_bytes && std::strcmp(a.report_file, b.report_file) == 0;
}
bool contains(const std::string& text, const char* part) { return text.find(part) != std::string::npos; }

}  // namespace

TEST_CASE("empty, null and comma-only strings change nothing and report nothing") {
  const options defaults;
  for (const char* text : {static_cast<const char*>(nullptr), "", ",", ",,,"}) {
    CAPTURE(text ? text : "(null)");
    options o;
    parse_result r = parse(text, o);
    CHECK(r.problems == 0);
    CHECK(r.errors.empty());
    CHECK(same(o, defaults));
  }
}

TEST_CASE("every key takes a good value") {
  options o;
  parse_result r = parse(
      "arenas:8,percpu:false,cache_class_bytes:1024,cache_max_objects:17,decay_ms:0,huge_pages:true,"
      "stats_print:1,stats_json:true,guard:1,quarantine_bytes:12345678901,abort_on_error:true,"
      "error_exit_code:255,leaks:0,report_json:1,stack_depth:64,limit_bytes:268435456,"
      "report_file:/tmp/report:1.txt", o);
  CHECK(r.problems == 0);
  CHECK(r.errors.empty());
  CHECK(o.arenas == 8);
  CHECK_FALSE(o.percpu);
  CHECK(o.cache_class_bytes == 1024);
  CHECK(o.cache_max_objects == 17);
  CHECK(o.decay_ms == 0);
  CHECK(o.huge_pages);
  CHECK(o.stats_print);
  CHECK(o.stats_json);
  CHECK(o.guard);
  CHECK(o.quarantine_bytes == 12345678901ull);
  CHECK(o.abort_on_error);
  CHECK(o.error_exit_code == 255);
  CHECK_FALSE(o.leaks);
  CHECK(o.report_json);
  CHECK(o.stack_depth == 64);
  CHECK(o.limit_bytes == 268435456ull);
  CHECK(std::string(o.report_file) == "/tmp/report:1.txt");   // the value runs to the comma
}

TEST_CASE("trailing and doubled commas are harmless; the last value of a key wins") {
  options o;
  CHECK(parse("arenas:3,", o).problems == 0);
  CHECK(o.arenas == 3);
  CHECK(parse(",,decay_ms:7,,huge_pages:1,,", o).problems == 0);
  CHECK(o.decay_ms == 7);
  CHECK(o.huge_pages);
  CHECK(parse("arenas:1,arenas:2", o).problems == 0);
  CHECK(o.arenas == 2);
}

TEST_CASE("an unknown key is counted, named on stderr, and the rest still applies") {
  options o;
  parse_result r = parse("arenas:5,no_such_key:1,decay_ms:9", o);
  CHECK(r.problems == 1);
  CHECK(contains(r.errors, "unknown"));
  CHECK(contains(r.errors, "'no_such_key'"));
  CHECK(o.arenas == 5);
  CHECK(o.decay_ms == 9);
  // Names match whole, not by prefix, and are case sensitive.
  for (const char* text : {"arena:1", "arenasx:1", "ARENAS:1", " arenas:1", "decay:5"}) {
    CAPTURE(text);
    r = parse(text);
    CHECK(r.problems == 1);
    CHECK(contains(r.errors, "unknown"));
  }
  r = parse("first_bad:1,second_bad:2,third_bad");
  CHECK(r.problems == 3);
  CHECK(contains(r.errors, "'first_bad'"));
  CHECK(contains(r.errors, "'second_bad'"));
  CHECK(contains(r.errors, "'third_bad'"));
}

TEST_CASE("bad values are counted, named with their key, and leave the field alone") {
  const options defaults;
  struct bad { const char* text; const char* key; };
  for (bad b : {bad{"arenas:abc", "'arenas'"}, bad{"arenas:", "'arenas'"}, bad{"arenas", "'arenas'"},
                bad{"arenas:-1", "'arenas'"}, bad{"arenas: 3", "'arenas'"}, bad{"arenas:4097", "'arenas'"},
                bad{"percpu:yes", "'percpu'"}, bad{"percpu:2", "'percpu'"}, bad{"percpu:", "'percpu'"},
                bad{"cache_max_objects:4097", "'cache_max_objects'"}, bad{"stack_depth:65", "'stack_depth'"},
                bad{"error_exit_code:256", "'error_exit_code'"}, bad{"cache_class_bytes:1073741825", "'cache_class_bytes'"},
                bad{"decay_ms:1e3", "'decay_ms'"}, bad{"decay_ms:99999999999999999999", "'decay_ms'"},
                bad{"report_file:", "'report_file'"}}) {
    CAPTURE(b.text);
    options o;
    parse_result r = parse(b.text, o);
    CHECK(r.problems == 1);
    CHECK(contains(r.errors, "bad value"));
    CHECK(contains(r.errors, b.key));
    CHECK(same(o, defaults));
  }
}

TEST_CASE("numeric limits are inclusive") {
  options o;
  CHECK(parse("arenas:4096,cache_max_objects:4096,stack_depth:64,error_exit_code:0,cache_class_bytes:1073741824", o).problems == 0);
  CHECK(o.arenas == 4096);
  CHECK(o.cache_class_bytes == 1u << 30);
  CHECK(parse("decay_ms:9999999999999999999", o).problems == 0);   // 19 digits: the longest accepted
  CHECK(o.decay_ms == 9999999999999999999ull);
}

TEST_CASE("report_file takes up to 255 characters") {
  options o;
  std::string name(255, 'x');
  CHECK(parse(("report_file:" + name).c_str(), o).problems == 0);
  CHECK(std::string(o.report_file) == name);
  parse_result r = parse(("report_file:" + name + "y").c_str(), o);
  CHECK(r.problems == 1);
  CHECK(std::string(o.report_file) == name);   // unchanged
}
