// Reporting without the heap: formats into a stack buffer and writes it with
// one raw write, so it works while the heap is broken or being initialised.
// pcm::fatal() is the single way out for heap corruption and invalid pointers.
#pragma once
#include <cstdarg>

namespace pcm::report {

void warning(const char* format, ...) noexcept __attribute__((format(printf, 1, 2)));
[[noreturn]] void fatal(const char* format, ...) noexcept __attribute__((format(printf, 1, 2)));

}  // namespace pcm::report

namespace pcm {
using report::fatal;
}
