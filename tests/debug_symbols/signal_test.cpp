// capture_from_context: a SIGSEGV handler unwinds from the signal's ucontext, so
// frame 0 is the faulting instruction and frame 1 its caller. The test maps its
// own PROT_NONE page (tests may call mmap; src/ may not).
#include <csetjmp>
#include <csignal>
#include <cstdint>
#include <cstring>
#include <sys/mman.h>
#include <ucontext.h>

#include <doctest/doctest.h>

#include "no_malloc.hpp"
#include "trace/stack_trace.hpp"
#include "trace/symbolize.hpp"

using debug_symbols_test::heap_forbidden_scope;
using pcm::debug::frame_info;

unsigned fault_line, fault_call_line;

__attribute__((noinline)) void fault_function(volatile int* target) {
  fault_line = __LINE__; *target = 42;
}

__attribute__((noinline)) void call_fault_function(volatile int* target) {
  fault_call_line = __LINE__; fault_function(target);   // one line: the call never returns
}

namespace {

sigjmp_buf resume_point;
void* fault_frames[64];
unsigned fault_depth = 0;
void* fault_pc = nullptr;
char handler_text[8192];

void on_fault(int, siginfo_t*, void* context) {
  {
    heap_forbidden_scope forbidden;
    fault_depth = pcm::debug::capture_from_context(context, fault_frames, 64);
    // Symbolizing from the handler works too: addr2line runs without fork handlers.
    pcm::debug::print_stack_to(handler_text, sizeof handler_text, fault_frames, fault_depth);
  }
#if defined(__x86_64__)
  fault_pc = reinterpret_cast<void*>(static_cast<ucontext_t*>(context)->uc_mcontext.gregs[REG_RIP]);
#endif
  siglongjmp(resume_point, 1);
}

}  // namespace

TEST_CASE("a fault's stack starts at the faulting instruction") {
  void* page = mmap(nullptr, 4096, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  REQUIRE(page != MAP_FAILED);
  struct sigaction action = {}, previous = {};
  action.sa_sigaction = on_fault;
  action.sa_flags = SA_SIGINFO;
  sigemptyset(&action.sa_mask);
  REQUIRE(sigaction(SIGSEGV, &action, &previous) == 0);
  bool faulted = false;
  if (sigsetjmp(resume_point, 1) == 0) call_fault_function(static_cast<volatile int*>(page));
  else faulted = true;
  sigaction(SIGSEGV, &previous, nullptr);
  munmap(page, 4096);
  REQUIRE(faulted);
  REQUIRE(fault_depth >= 3);
#if defined(__x86_64__)
  CHECK(fault_frames[0] == fault_pc);
#endif
  frame_info info[2];
  {
    heap_forbidden_scope forbidden;
    pcm::debug::symbolize_stack(fault_frames, 2, info);
  }
  INFO(handler_text);
  CHECK(std::strcmp(info[0].module, debug_symbols_test::executable_path()) == 0);
  if (expect_names) {
    CHECK(std::strstr(info[0].function, "fault_function") != nullptr);
    CHECK(std::strstr(info[0].function, "call_fault_function") == nullptr);
    CHECK(std::strstr(info[1].function, "call_fault_function") != nullptr);
    CHECK(std::strstr(handler_text, "#0 ") != nullptr);
    CHECK(std::strstr(handler_text, "fault_function(int volatile*)") != nullptr);
  }
  if (expect_lines) {
    CHECK(info[0].line == fault_line);
    CHECK(info[1].line == fault_call_line);
  }
}
