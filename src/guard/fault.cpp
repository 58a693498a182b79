// A fault on a guarded sample's pages: reported in the debug library's format
// (src/report), then the process dies of the SIGSEGV it would have died of.
// Faults elsewhere, and SIGSEGVs sent by kill/raise/sigqueue, go to the handler
// that was there before ours, or to the default action. Installed only while
// guarded sampling is on.
#include <pthread.h>

#include <csignal>
#include <cstdint>
#include <cstdio>
#include <ucontext.h>

#include "guard/guarded_sample.hpp"
#include "trace/stack_trace.hpp"

namespace pcm::guard {
namespace {

struct sigaction previous_segv;

// The default action back, and the signal sent again: it stays blocked while
// this handler runs and is delivered as it returns, so the process dies of
// SIGSEGV whatever became of the page meanwhile (another thread may have made
// it accessible again by reusing the slot).
void die_by(int signal) {
  struct sigaction fallback {};
  fallback.sa_handler = SIG_DFL;
  sigemptyset(&fallback.sa_mask);
  sigaction(signal, &fallback, nullptr);
  raise(signal);
}

// Not ours: the handler that was there before ours has it, as the kernel would
// have run it (its mask blocked, its signal too unless SA_NODEFER; reset first
// under SA_RESETHAND). With no handler, a SIGSEGV that was sent (si_code <= 0:
// kill, raise, sigqueue) and was ignored stays ignored; any other ends the
// process by the default action (a real fault cannot be ignored).
void pass_on(int signal, siginfo_t* info, void* context) {
  const struct sigaction& previous = previous_segv;
  bool with_info = previous.sa_flags & SA_SIGINFO;
  // SIG_DFL and SIG_IGN are values, not functions, in either member.
  auto value = with_info ? reinterpret_cast<std::uintptr_t>(previous.sa_sigaction)
                         : reinterpret_cast<std::uintptr_t>(previous.sa_handler);
  bool ignored = value == reinterpret_cast<std::uintptr_t>(SIG_IGN);
  if (ignored && info->si_code <= 0) return;
  if (ignored || value == reinterpret_cast<std::uintptr_t>(SIG_DFL)) return die_by(signal);
  if (previous.sa_flags & SA_RESETHAND) {
    struct sigaction fallback {};
    fallback.sa_handler = SIG_DFL;
    sigemptyset(&fallback.sa_mask);
    sigaction(signal, &fallback, nullptr);
  }
  sigset_t mask = previous.sa_mask, saved;
  if (!(previous.sa_flags & SA_NODEFER)) sigaddset(&mask, signal);
  pthread_sigmask(SIG_BLOCK, &mask, &saved);
  if (previous.sa_flags & SA_NODEFER) {
    sigset_t own;
    sigemptyset(&own);
    sigaddset(&own, signal);
    pthread_sigmask(SIG_UNBLOCK, &own, nullptr);
  }
  if (with_info) previous.sa_sigaction(signal, info, context);
  else previous.sa_handler(signal);
  pthread_sigmask(SIG_SETMASK, &saved, nullptr);
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
  // Only a fault (si_code > 0) has an address in si_addr; a sent SIGSEGV is never ours.
  if (info->si_code <= 0 || !describe_fault(address, site)) return pass_on(signal, info, context);
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
  die_by(signal);
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
