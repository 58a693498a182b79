#include "report.hpp"

#include <cstdio>

#include "platform/platform.hpp"

namespace pcm::report {
namespace {
void emit(const char* prefix, const char* format, va_list args) noexcept {
  char line[512];
  int n = std::snprintf(line, sizeof line, "pcmalloc: %s", prefix);
  if (n < 0) n = 0;
  // NOLINTNEXTLINE(clang-analyzer-valist.Uninitialized): the callers va_start it; the analyser loses track.
  int m = std::vsnprintf(line + n, sizeof line - std::size_t(n) - 1, format, args);
  if (m < 0) m = 0;
  std::size_t length = std::size_t(n) + std::size_t(m);
  if (length > sizeof line - 2) length = sizeof line - 2;
  line[length++] = '\n';
  os::write_error(line, length);
}
}  // namespace

void warning(const char* format, ...) noexcept {
  va_list args;
  va_start(args, format);
  emit("warning: ", format, args);
  va_end(args);
}

void fatal(const char* format, ...) noexcept {
  va_list args;
  va_start(args, format);
  emit("error: ", format, args);
  va_end(args);
  os::abort_process();
}

}  // namespace pcm::report
