// Formatted text without the heap: lines are formatted into a stack buffer,
// collected in a 4 KiB buffer, and flushed to a file descriptor or copied into
// a caller's buffer (truncated, always NUL-terminated). Used for statistics and
// debug reports, which must work while the heap is broken.
#pragma once
#include <cstdarg>
#include <cstddef>
#include <cstdio>
#include <cstring>
#include <unistd.h>

#include "platform/platform.hpp"

namespace pcm {

// Accumulates formatted text; flushes to an fd or copies into a buffer.
class text_writer {
 public:
  // cppcheck-suppress uninitMemberVar ; buffer_ is written before it is read (used_ bytes)
  text_writer(int fd, char* out, std::size_t out_size) : fd_(fd), out_(out), out_size_(out_size) {}
  ~text_writer() { flush(); }
  __attribute__((format(printf, 2, 3))) void put(const char* format, ...) {
    va_list args;
    va_start(args, format);
    char line[512];
    int n = std::vsnprintf(line, sizeof line, format, args);
    va_end(args);
    if (n < 0) return;
    std::size_t length = std::size_t(n) < sizeof line ? std::size_t(n) : sizeof line - 1;
    if (used_ + length > sizeof buffer_) flush();
    std::memcpy(buffer_ + used_, line, length);
    used_ += length;
  }
  // A JSON string literal (quotes included), escaping what JSON requires.
  void put_json_string(const char* text) {
    put("\"");
    for (const char* c = text; c && *c; ++c) {
      unsigned char ch = static_cast<unsigned char>(*c);
      if (ch == '"' || ch == '\\') put("\\%c", ch);
      else if (ch < 0x20) put("\\u%04x", ch);
      else put("%c", ch);
    }
    put("\"");
  }
  std::size_t total() const { return total_ + used_; }
  bool failed() const { return failed_; }
  void flush() {
    if (fd_ >= 0) {
      if (!os::write_all(fd_, buffer_, used_)) failed_ = true;
    } else if (out_ && out_size_) {
      std::size_t room = total_ < out_size_ - 1 ? out_size_ - 1 - total_ : 0;
      std::size_t copy = used_ < room ? used_ : room;
      std::memcpy(out_ + total_, buffer_, copy);
      out_[total_ + copy] = 0;
    }
    total_ += used_;
    used_ = 0;
  }
 private:
  int fd_;
  char* out_;
  std::size_t out_size_;
  char buffer_[4096];
  std::size_t used_ = 0, total_ = 0;
  bool failed_ = false;
};

}  // namespace pcm
