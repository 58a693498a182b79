// A fault on a guarded sample's pages: reported in the debug library's format
// (src/report), then the process dies of the SIGSEGV it would have died of.
// Faults elsewhere go to the handler that was there before ours, or to the
// default action. Installed only while guarded sampling is on.
#include <csignal>
#include <cstdio>
#include <ucontext.h>

#include "guard/guarded_sample.hpp"
#include "trace/stack_trace.hpp"

namespace pcm::guard {
namespace {

struct sigaction previous_segv;

// Not ours: the previous handler has it; the default action (or an ignored
// SIGSEGV, which cannot be ignored for a real fault) comes back and the access
// runs again into it.
void pass_on(int signal, siginfo_t* info, void* context) {
  if (previous_segv.sa_flags & SA_SIGINFO) {
    if (previous_segv.sa_sigaction) return previous_segv.sa_sigaction(signal, info, context);
  } else if (previous_segv.sa_handler != SIG_DFL && previous_segv.sa_handler != SIG_IGN) {
    return previous_segv.sa_handler(signal);
  }
  struct sigaction fallback {};
  fallback.sa_handler = SIG_DFL;
  sigemptyset(&fallback.sa_mask);
  sigaction(signal, &fallback, nullptr);
}

const char* description(debug::error_kind kind) {
  switch (kind) {
    case debug::error_kind::use_after_free: return "of a freed block (guarded sample)";
    case debug::error_kind::heap_buffer_overflow: return "past the end of the block (guarded sample's guard page)";
    case debug::error_kind::heap_buffer_underflow: return "before the start of the block (guarded sample)";
    default: return "of a guarded sample's page that holds no block";
  }
}

void on_fault(int signal, siginfo_t* info, void* context) {
  fault_site site{};
  auto address = reinterpret_cast<std::uintptr_t>(info->si_addr);
  if (!describe_fault(address, site)) return pass_on(signal, info, context);
  void* frames[64];
  unsigned depth = debug::capture_from_context(context, frames, 64);
  bool write = false;
#if defined(__x86_64__)
  write = (static_cast<ucontext_t*>(context)->uc_mcontext.gregs[REG_ERR] & 2) != 0;
#endif
  char what[160];
  std::snprintf(what, sizeof what, "%s %s", write ? "write" : "read", description(site.kind));
  debug::report({site.kind, what, address, site.has_block ? &site.block : nullptr, 0, frames, depth});
  os::write_error("pcmalloc: stopping: the access cannot be resumed\n", 49);
  // The page stays inaccessible: returning runs the access again, into the
  // default action, and the process ends as it would have without us.
  struct sigaction fallback {};
  fallback.sa_handler = SIG_DFL;
  sigemptyset(&fallback.sa_mask);
  sigaction(signal, &fallback, nullptr);
}

}  // namespace

void install_fault_handler() noexcept {
  struct sigaction action {};
  action.sa_sigaction = on_fault;
  action.sa_flags = SA_SIGINFO | SA_ONSTACK;
  sigemptyset(&action.sa_mask);
  sigaction(SIGSEGV, &action, &previous_segv);
}

}  // namespace pcm::guard
