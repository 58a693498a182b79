// The maps benchmark's command line: one run (`run`), or the comparison, which
// starts every variant as its own process, interleaved over rounds (the order
// rotates, as run.py does), checks that all print the same checksum, and prints
// medians, speedups, the map_pool statistics and the memory mode's bytes per
// element (which runs in maps_pcm: maps_memory.cpp).
#include "maps.hpp"

#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <map>
#include <string>
#include <string_view>
#include <vector>

extern char** environ;

namespace maps {
namespace {

const char* const usage_text =
    "usage:\n"
    "  maps [--rounds R] [--threads 1,2] [--requests N] [--ops N] [--keys K] [--sizes N,...]\n"
    "       [--only requests,churn,memory] [--variants LIST] [--mimalloc PATH|none] [--smoke] [--list]\n"
    "      compare every variant (each in its own process), interleaved over R rounds (default 5), then\n"
    "      the memory mode; defaults: 1M requests, churn 10M ops over 500k keys, memory at 1k and 1M\n"
    "      elements; --smoke: 20k requests, 200k ops over 20k keys, memory at 1k and 20k, 1 round\n"
    "      (checks the programs run and agree, in a few seconds)\n"
    "      --variants takes the names --list prints (new_delete alone: all three new_delete@...)\n"
    "  maps run requests|churn VARIANT THREADS N [KEYS]   (or: maps THREADS requests|churn VARIANT N [KEYS])\n"
    "      one run of one variant in this process (maps_pcm runs them all); N requests or ops\n"
    "  maps memory [--sizes 1000,1000000]\n"
    "      bytes per element (requested from the allocator) of pcm::node_map, absl::node_hash_map and\n"
    "      std::unordered_map<uint64_t, uint64_t> after N inserts (runs in maps_pcm)\n"
    "Numbers take a k, M or G suffix. Speedups are the reference's median time over the variant's.\n";

[[noreturn]] void usage_error(const std::string& message) {
  std::fprintf(stderr, "maps: %s\n%s", message.c_str(), usage_text);
  std::exit(2);
}

std::uint64_t number(const std::string& text) {
  char* end = nullptr;
  unsigned long long value = std::strtoull(text.c_str(), &end, 10);
  if (*end == 'k') { value *= 1000ull; ++end; }
  else if (*end == 'M') { value *= 1000000ull; ++end; }
  else if (*end == 'G') { value *= 1000000000ull; ++end; }
  if (end == text.c_str() || *end) usage_error("not a number: '" + text + "'");
  return value;
}

std::vector<std::string> split(const std::string& text) {
  std::vector<std::string> parts;
  std::size_t start = 0;
  while (start <= text.size()) {
    std::size_t comma = text.find(',', start);
    if (comma == std::string::npos) comma = text.size();
    if (comma > start) parts.push_back(text.substr(start, comma - start));
    start = comma + 1;
  }
  return parts;
}

// --sizes' list of element counts, each at least 1.
std::vector<std::uint64_t> sizes_from(const std::string& text) {
  std::vector<std::uint64_t> sizes;
  for (const auto& n : split(text)) sizes.push_back(std::max<std::uint64_t>(1, number(n)));
  if (sizes.empty()) usage_error("--sizes wants at least one size");
  return sizes;
}

bool find_variant(std::string_view name, variant& v) {
  for (int i = 0; i < static_cast<int>(variant::count); ++i)
    if (name == variant_table[i].name) {
      v = static_cast<variant>(i);
      return true;
    }
  return false;
}

// ---- the jobs of a comparison ----------------------------------------------

enum class binary { plain, pcm };
enum class preload { none, mimalloc };

struct job {
  std::string key;      // what --variants names
  std::string where;    // the malloc under it, as the tables show it after the variant's name
  binary program;
  preload library;
  variant v;

  // What the tables show for this job under workload w.
  std::string label(workload w) const {
    const variant_description& d = variant_info(v);
    return (w == workload::churn && d.churn_what ? d.churn_what : d.what) + where;
  }
};

std::vector<job> all_jobs() {
  std::vector<job> jobs = {
      {"new_delete@glibc", ", glibc", binary::plain, preload::none, variant::new_delete},
      {"new_delete@mimalloc", ", mimalloc (LD_PRELOAD)", binary::plain, preload::mimalloc, variant::new_delete},
      {"new_delete@pcmalloc", ", pcmalloc (linked)", binary::pcm, preload::none, variant::new_delete},
  };
  for (int i = 1; i < static_cast<int>(variant::count); ++i) {
    const variant_description& d = variant_table[i];
    std::string where = d.needs_pcm || static_cast<variant>(i) == variant::floor ? "" : ", glibc";
    jobs.push_back({d.name, where, d.needs_pcm ? binary::pcm : binary::plain, preload::none, static_cast<variant>(i)});
  }
  return jobs;
}

struct options {
  unsigned rounds = 5;
  std::vector<unsigned> threads = {1, 2};
  std::uint64_t requests = 1000000, ops = 10000000, keys = 500000;
  std::vector<workload> workloads = {workload::requests, workload::churn};
  bool memory = true;                                      // the memory mode after the tables
  std::vector<std::uint64_t> sizes = {1000, 1000000};     // its element counts (maps memory's default too)
  std::vector<std::string> only_variants;
  std::string mimalloc;   // "" = search, "none" = skip
};

std::string folder_of_this_program() {
  char path[4096];
  ssize_t n = readlink("/proc/self/exe", path, sizeof path - 1);
  if (n <= 0) return ".";
  path[n] = '\0';
  std::string text(path);
  return text.substr(0, text.rfind('/'));
}

bool exists(const std::string& path) { return access(path.c_str(), R_OK) == 0; }

std::string find_mimalloc() {
  for (const char* path : {"/usr/lib/x86_64-linux-gnu/libmimalloc.so.2", "/usr/lib/aarch64-linux-gnu/libmimalloc.so.2",
                           "/usr/lib64/libmimalloc.so.2", "/usr/lib/libmimalloc.so.2", "/usr/local/lib/libmimalloc.so.2"})
    if (exists(path)) return path;
  return {};
}

struct sample {
  bool ok = false;
  std::string error;
  std::map<std::string, std::string> fields;
  double ns(bool cpu) const { return std::strtod(fields.at(cpu ? "cpu_ns_per_op" : "ns_per_op").c_str(), nullptr); }
};

// Runs argv with LD_PRELOAD set to `library` (or unset) and collects its
// standard output in `text`. Returns what went wrong, or "" if it exited 0.
std::string run_program(const std::vector<std::string>& argv, const std::string& library, std::string& text) {
  std::vector<std::string> environment;
  for (char** e = environ; *e; ++e)
    if (std::strncmp(*e, "LD_PRELOAD=", 11) != 0) environment.emplace_back(*e);
  if (!library.empty()) environment.push_back("LD_PRELOAD=" + library);
  std::vector<char*> args, envp;
  for (const auto& a : argv) args.push_back(const_cast<char*>(a.c_str()));
  args.push_back(nullptr);
  for (auto& e : environment) envp.push_back(e.data());
  envp.push_back(nullptr);
  int out[2];
  if (pipe(out) != 0) return "pipe failed";
  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  posix_spawn_file_actions_adddup2(&actions, out[1], 1);
  posix_spawn_file_actions_addclose(&actions, out[0]);
  pid_t child;
  int failed = posix_spawn(&child, args[0], &actions, nullptr, args.data(), envp.data());
  posix_spawn_file_actions_destroy(&actions);
  close(out[1]);
  if (failed) {
    close(out[0]);
    return std::string("cannot start ") + args[0] + ": " + std::strerror(failed);
  }
  char buffer[4096];
  for (ssize_t n; (n = read(out[0], buffer, sizeof buffer)) != 0;) {
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) break;
    text.append(buffer, static_cast<std::size_t>(n));
  }
  close(out[0]);
  int status = 0;
  while (waitpid(child, &status, 0) < 0 && errno == EINTR) {}
  if (!WIFEXITED(status) || WEXITSTATUS(status) != 0)
    return WIFSIGNALED(status) ? "killed by signal " + std::to_string(WTERMSIG(status))
                               : "exit status " + std::to_string(WEXITSTATUS(status));
  return {};
}

// Runs argv (as run_program) and parses its result line.
sample spawn(const std::vector<std::string>& argv, const std::string& library) {
  sample s;
  std::string text;
  s.error = run_program(argv, library, text);
  if (!s.error.empty()) return s;
  std::size_t line = text.find("maps-");
  if (line == std::string::npos) {
    s.error = "no result line";
    return s;
  }
  std::string result = text.substr(line, text.find('\n', line) - line);
  for (std::size_t at = 0; at < result.size();) {
    std::size_t space = result.find(' ', at);
    if (space == std::string::npos) space = result.size();
    std::string token = result.substr(at, space - at);
    std::size_t equals = token.find('=');
    if (equals != std::string::npos) s.fields[token.substr(0, equals)] = token.substr(equals + 1);
    at = space + 1;
  }
  s.ok = s.fields.count("ns_per_op") && s.fields.count("cpu_ns_per_op") && s.fields.count("checksum");
  if (!s.ok) s.error = "incomplete result line";
  return s;
}

double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  std::size_t n = v.size();
  return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

std::string command_line(const std::vector<std::string>& argv, const std::string& library) {
  std::string text = library.empty() ? "" : "LD_PRELOAD=" + library + " ";
  for (const auto& a : argv) text += a + " ";
  return text;
}

void print_pool_table(const char* title, const std::vector<unsigned>& threads,
                      const std::map<unsigned, std::vector<sample>>& by_threads) {
  std::printf("\n%s\n  %-8s %16s %10s %14s %10s %10s %6s %7s\n", title, "threads", "steady hit rate", "hit rate",
              "fragmentation", "live KiB", "held KiB", "idle", "misses");
  for (unsigned t : threads) {
    auto found = by_threads.find(t);
    if (found == by_threads.end() || found->second.empty()) continue;
    // Statistics of the last good run (they barely move between rounds).
    const sample& s = found->second.back();
    auto field = [&](const char* key) { return std::strtod(s.fields.at(key).c_str(), nullptr); };
    std::printf("  %-8u %15.4f%% %9.4f%% %13.2f%% %10.1f %10.1f %6.0f %7.0f\n", t, 100 * field("steady_hit_rate"),
                100 * field("hit_rate"), 100 * field("fragmentation"), field("live_bytes") / 1024,
                field("held_bytes") / 1024, field("idle"), field("misses"));
  }
}

// Runs `maps_pcm memory --sizes ...` (node_map is only there) and prints its
// lines. Returns what went wrong, or "".
std::string memory_section(const std::string& maps_pcm, const std::vector<std::uint64_t>& sizes) {
  std::string list;
  for (std::uint64_t n : sizes) list += (list.empty() ? "" : ",") + std::to_string(n);
  std::vector<std::string> argv = {maps_pcm, "memory", "--sizes", list};
  std::printf("\nmemory: bytes per element of <uint64_t, uint64_t> maps\n");
  std::fflush(stdout);
  if (!exists(maps_pcm)) return "memory: " + maps_pcm + " not built";
  std::string text;
  std::string error = run_program(argv, "", text);
  std::fwrite(text.data(), 1, text.size(), stdout);
  return error.empty() ? error : "memory: " + error + "\n    reproduce: " + command_line(argv, "");
}

int compare(const options& o) {
  const std::string folder = folder_of_this_program();
  const std::string programs[] = {folder + "/maps", folder + "/maps_pcm"};
  std::string mimalloc = o.mimalloc == "none" ? "" : o.mimalloc.empty() ? find_mimalloc() : o.mimalloc;
  std::vector<job> jobs;
  for (const job& j : all_jobs()) {
    // --variants names a job (new_delete@glibc) or a variant (new_delete: all its jobs).
    auto named = [&](const std::string& name) { return name == j.key || name == variant_info(j.v).name; };
    if (!o.only_variants.empty() && std::none_of(o.only_variants.begin(), o.only_variants.end(), named)) continue;
    if (!exists(programs[static_cast<int>(j.program)])) {
      std::fprintf(stderr, "maps: warning: %s not built; skipping %s\n", programs[static_cast<int>(j.program)].c_str(),
                   j.key.c_str());
      continue;
    }
    if (std::string why = not_built(j.v); !why.empty()) {
      std::fprintf(stderr, "maps: warning: %s was not built (%s); skipping it\n", j.key.c_str(), why.c_str());
      continue;
    }
    if (j.library == preload::mimalloc && mimalloc.empty()) {
      std::fprintf(stderr, "maps: warning: libmimalloc.so.2 not found (apt-get install libmimalloc-dev); skipping %s\n",
                   j.key.c_str());
      continue;
    }
    jobs.push_back(j);
  }
  if (jobs.empty() && !o.workloads.empty()) usage_error("no variant left to run");

  struct cell {
    std::vector<sample> samples;
  };
  // [workload][threads][job index]
  std::map<int, std::map<unsigned, std::vector<cell>>> results;
  std::vector<std::string> failures;
  for (unsigned round = 0; round < o.rounds; ++round) {
    unsigned case_index = 0;
    for (workload w : o.workloads) {
      for (unsigned t : o.threads) {
        auto& cells = results[static_cast<int>(w)][t];
        cells.resize(jobs.size());
        const std::size_t shift = (round + case_index++) % jobs.size();
        for (std::size_t k = 0; k < jobs.size(); ++k) {
          std::size_t index = (k + shift) % jobs.size();
          const job& j = jobs[index];
          if (w == workload::churn && !variant_info(j.v).churn) continue;
          std::vector<std::string> argv = {programs[static_cast<int>(j.program)], "run",
                                           w == workload::requests ? "requests" : "churn", variant_info(j.v).name,
                                           std::to_string(t), std::to_string(w == workload::requests ? o.requests : o.ops),
                                           std::to_string(o.keys)};
          std::string library = j.library == preload::mimalloc ? mimalloc : "";
          sample s = spawn(argv, library);
          if (!s.ok) failures.push_back(j.key + ": " + s.error + "\n    reproduce: " + command_line(argv, library));
          else cells[index].samples.push_back(std::move(s));
        }
        std::fprintf(stderr, "maps: round %u/%u %s, %u thread(s) done\n", round + 1, o.rounds,
                     w == workload::requests ? "requests" : "churn", t);
      }
    }
  }

  bool targets_met = true;
  for (workload w : o.workloads) {
    const bool requests = w == workload::requests;
    const char* reference_key = requests ? "monotonic" : "new_delete@glibc";
    for (unsigned t : o.threads) {
      auto& cells = results[static_cast<int>(w)][t];
      // Checksums must agree across every variant and round.
      std::string checksum;
      for (std::size_t i = 0; i < jobs.size(); ++i)
        for (const sample& s : cells[i].samples) {
          if (checksum.empty()) checksum = s.fields.at("checksum");
          else if (s.fields.at("checksum") != checksum)
            failures.push_back(jobs[i].key + ": checksum " + s.fields.at("checksum") + " differs from " + checksum +
                               (requests ? " (requests" : " (churn") + ", " + std::to_string(t) + " threads)");
        }
      auto medians = [&](std::size_t i, bool cpu) {
        std::vector<double> ns;
        for (const sample& s : cells[i].samples) ns.push_back(s.ns(cpu));
        return median(ns);
      };
      double reference[2] = {0, 0};   // [cpu]
      for (std::size_t i = 0; i < jobs.size(); ++i)
        if (jobs[i].key == reference_key && !cells[i].samples.empty())
          for (bool cpu : {false, true}) reference[cpu] = medians(i, cpu);
      std::printf("\n%s, %u thread(s), %llu %s per run, median of %u round(s)\n", requests ? "requests" : "churn", t,
                  static_cast<unsigned long long>(requests ? o.requests : o.ops), requests ? "requests" : "ops",
                  o.rounds);
      std::printf("  %-48s %9s %9s %9s %9s\n", "variant", "cpu ns", "x ref", "wall ns", "x ref");
      double pool[2] = {0, 0};
      for (std::size_t i = 0; i < jobs.size(); ++i) {
        if (cells[i].samples.empty()) continue;
        double m[2] = {medians(i, false), medians(i, true)};
        if (jobs[i].v == variant::map_pool) pool[0] = m[0], pool[1] = m[1];
        std::string label = jobs[i].label(w);
        std::printf("  %-48s %9.1f %9.2f %9.1f %9.2f\n", label.c_str(), m[1], reference[1] > 0 ? reference[1] / m[1] : 0,
                    m[0], reference[0] > 0 ? reference[0] / m[0] : 0);
      }
      if (reference[1] > 0 && pool[1] > 0) {
        double speedup = reference[1] / pool[1], goal = requests ? 1.5 : 1.3;
        bool met = speedup >= goal;
        targets_met = targets_met && met;
        std::printf("  target: map_pool %.1fx faster than %s (cpu time): %s (%.3fx; wall time %.3fx)\n", goal,
                    reference_key, met ? "met" : "NOT met", speedup, reference[0] / pool[0]);
      }
    }
    if (requests) {
      for (variant v : {variant::map_pool, variant::map_pool_plain, variant::node_map_pool}) {
        std::map<unsigned, std::vector<sample>> pool_samples;
        for (unsigned t : o.threads) {
          auto& cells = results[static_cast<int>(w)][t];
          for (std::size_t i = 0; i < jobs.size(); ++i)
            if (jobs[i].v == v) pool_samples[t] = cells[i].samples;
        }
        if (pool_samples.empty()) continue;
        std::string title = std::string("requests: ") + variant_info(v).what +
                            " after the run (targets: steady hit rate >= 99%, fragmentation <= 10%)";
        print_pool_table(title.c_str(), o.threads, pool_samples);
      }
    }
  }
  if (o.memory) {
    std::string error = memory_section(programs[static_cast<int>(binary::pcm)], o.sizes);
    if (!error.empty()) failures.push_back(error);
  }
  std::printf("\ncpu ns: CPU time of all threads / requests (or ops), the cost of one on a core, robust on a busy\n"
              "machine; wall ns: wall time / requests (or ops) of all threads together. x ref: the reference's median\n"
              "(requests: std monotonic per request; churn: new/delete on glibc) over the variant's; > 1 is faster.\n");
  if (!failures.empty()) {
    std::fprintf(stderr, "\nmaps: %zu FAILURE(S):\n", failures.size());
    for (const auto& f : failures) std::fprintf(stderr, "  %s\n", f.c_str());
    return 1;
  }
  (void)targets_met;   // reported, never a failure: timings are no test
  return 0;
}

// args: WORKLOAD VARIANT THREADS N [KEYS] (after `run`).
int run_command(const std::vector<std::string>& args) {
  if (args.size() < 4 || args.size() > 5) usage_error("run wants: requests|churn VARIANT THREADS N [KEYS]");
  const std::string& name = args[0];
  if (name != "requests" && name != "churn") usage_error("unknown workload '" + name + "'");
  variant v;
  if (!find_variant(args[1], v)) usage_error("unknown variant '" + args[1] + "'");
  std::uint64_t threads = number(args[2]), total = number(args[3]), keys = args.size() > 4 ? number(args[4]) : 500000;
  if (threads < 1 || threads > 1024) usage_error("THREADS must be 1..1024");
  return run_one(name == "requests" ? workload::requests : workload::churn, v, static_cast<unsigned>(threads), total,
                 keys ? keys : 1);
}

// args: [--sizes LIST] (after `memory`). maps_pcm measures; maps asks maps_pcm.
int memory_command(const std::vector<std::string>& args) {
  std::vector<std::uint64_t> sizes = options().sizes;
  if (args.size() == 2 && args[0] == "--sizes") sizes = sizes_from(args[1]);
  else if (!args.empty()) usage_error("memory wants: [--sizes N,...]");
#ifdef MAPS_WITH_PCM
  return memory_report(sizes);
#else
  std::string error = memory_section(folder_of_this_program() + "/maps_pcm", sizes);
  if (!error.empty()) std::fprintf(stderr, "maps: %s\n", error.c_str());
  return error.empty() ? 0 : 1;
#endif
}

}  // namespace
}  // namespace maps

int main(int argc, char** argv) {
  using namespace maps;
  if (argc > 1 && std::string_view(argv[1]) == "run") return run_command({argv + 2, argv + argc});
  if (argc > 1 && std::string_view(argv[1]) == "memory") return memory_command({argv + 2, argv + argc});
  // THREADS WORKLOAD VARIANT N [KEYS]: THREADS first, as run.py starts every workload program.
  if (argc > 4 && argv[1][0] >= '0' && argv[1][0] <= '9') {
    std::vector<std::string> args(argv + 2, argv + argc);
    args.insert(args.begin() + 2, argv[1]);
    return run_command(args);
  }
  options o;
  for (int i = 1; i < argc; ++i) {
    std::string_view arg = argv[i];
    auto value = [&]() -> std::string {
      if (i + 1 >= argc) usage_error(std::string(arg) + " wants a value");
      return argv[++i];
    };
    if (arg == "--rounds") o.rounds = static_cast<unsigned>(std::max<std::uint64_t>(1, number(value())));
    else if (arg == "--threads") {
      o.threads.clear();
      for (const auto& t : split(value())) o.threads.push_back(static_cast<unsigned>(std::max<std::uint64_t>(1, number(t))));
    } else if (arg == "--requests") o.requests = number(value());
    else if (arg == "--ops") o.ops = number(value());
    else if (arg == "--keys") o.keys = std::max<std::uint64_t>(1, number(value()));
    else if (arg == "--sizes") o.sizes = sizes_from(value());
    else if (arg == "--only") {
      o.workloads.clear();
      o.memory = false;
      for (const auto& w : split(value())) {
        if (w == "requests") o.workloads.push_back(workload::requests);
        else if (w == "churn") o.workloads.push_back(workload::churn);
        else if (w == "memory") o.memory = true;
        else usage_error("unknown workload '" + w + "'");
      }
    } else if (arg == "--variants") o.only_variants = split(value());
    else if (arg == "--mimalloc") o.mimalloc = value();
    else if (arg == "--smoke") {
      o.rounds = 1;
      o.requests = 20000;
      o.ops = 200000;
      o.keys = 20000;
      o.sizes = {1000, 20000};
    } else if (arg == "--list") {
      for (const auto& j : all_jobs()) {
        std::string why = not_built(j.v);
        std::printf("%-22s %s%s\n", j.key.c_str(), j.label(workload::requests).c_str(),
                    why.empty() ? "" : ("  (not built: " + why + ")").c_str());
      }
      return 0;
    } else if (arg == "--help" || arg == "-h") {
      std::printf("%s", usage_text);
      return 0;
    } else usage_error("unknown argument '" + std::string(arg) + "'");
  }
  if (o.threads.empty() || (o.workloads.empty() && !o.memory)) usage_error("nothing to run");
  return compare(o);
}
