// Impossible requests: every entry point reports them (NULL + ENOMEM, an error
// code, std::bad_alloc or nullptr) and leaves existing blocks untouched.
#include <cerrno>
#include <cstdint>
#include <new>

#include <doctest/doctest.h>

#include "support.hpp"

using namespace api_test;

namespace {
const std::size_t impossible[] = {SIZE_MAX, SIZE_MAX - 4096, std::size_t(PTRDIFF_MAX), std::size_t(1) << 62};

// errno must be ENOMEM after a call that returned `p` == NULL.
void check_enomem(void* p) {
  CHECK(p == nullptr);
  CHECK(errno == ENOMEM);
}

int handler_calls = 0;
void uninstalling_handler() {   // gives up on the third call
  if (++handler_calls == 3) std::set_new_handler(nullptr);
}
void throwing_handler() {
  ++handler_calls;
  throw std::bad_alloc();
}
}  // namespace

TEST_CASE("impossible sizes fail with ENOMEM in every C entry point") {
  for (std::size_t size : impossible) {
    const std::size_t n = opaque(size);
    CAPTURE(n);
    errno = 0; check_enomem(malloc(n));
    errno = 0; check_enomem(calloc(1, n));
    errno = 0; check_enomem(realloc(nullptr, n));
    errno = 0; check_enomem(aligned_alloc(4096, n));
    errno = 0; check_enomem(aligned_alloc(64, n));
    errno = 0; check_enomem(memalign(64 * KiB, n));
    errno = 0; check_enomem(valloc(n));
    errno = 0; check_enomem(pvalloc(n));
    errno = 0; check_enomem(pcm_malloc(n));
    errno = 0; check_enomem(pcm_calloc(n, 1));
    errno = 0; check_enomem(pcm_aligned_alloc(4096, n));
    errno = 0; check_enomem(pcm_memalign(8, n));
    errno = 0; check_enomem(pcm_valloc(n));
    errno = 0; check_enomem(pcm_pvalloc(n));
  }
}

TEST_CASE("calloc and reallocarray overflow fail with ENOMEM") {
  errno = 0; check_enomem(calloc(opaque(SIZE_MAX / 2), 3));
  errno = 0; check_enomem(calloc(3, opaque(SIZE_MAX / 2)));
  errno = 0; check_enomem(calloc(opaque(std::size_t(1) << 32), std::size_t(1) << 32));
  errno = 0; check_enomem(pcm_calloc(opaque(SIZE_MAX / 2), 3));
  errno = 0; check_enomem(reallocarray(nullptr, opaque(SIZE_MAX / 2), 3));
  errno = 0; check_enomem(pcm_reallocarray(nullptr, opaque(SIZE_MAX / 2), 3));
}

TEST_CASE("a failed realloc leaves the old block valid") {
  for (std::size_t n : {std::size_t(100), 100 * KiB, 8 * MiB}) {
    CAPTURE(n);
    void* p = malloc(n);
    REQUIRE(p);
    fill(p, n, n);
    errno = 0; check_enomem(realloc(p, opaque(SIZE_MAX)));
    errno = 0; check_enomem(realloc(p, opaque(SIZE_MAX - 4096)));
    errno = 0; check_enomem(reallocarray(p, opaque(SIZE_MAX / 2), 3));
    errno = 0; check_enomem(pcm_realloc(p, opaque(std::size_t(PTRDIFF_MAX))));
    CHECK(pcm_owns(p) == 1);
    CHECK(intact(p, n, n));
    free(p);
  }
}

TEST_CASE("posix_memalign reports ENOMEM and leaves errno alone") {
  int dummy;
  void* out = &dummy;
  errno = 4321;
  CHECK(posix_memalign(&out, 64, opaque(SIZE_MAX)) == ENOMEM);
  CHECK(pcm_posix_memalign(&out, 4096, opaque(SIZE_MAX)) == ENOMEM);
  CHECK(errno == 4321);
  CHECK(out == &dummy);
}

TEST_CASE("operator new throws std::bad_alloc for impossible sizes") {
  const std::size_t n = opaque(SIZE_MAX);
  CHECK_THROWS_AS(::operator delete(::operator new(n)), std::bad_alloc);
  CHECK_THROWS_AS(::operator delete[](::operator new[](n)), std::bad_alloc);
  CHECK_THROWS_AS(::operator delete(::operator new(n, std::align_val_t(64)), std::align_val_t(64)), std::bad_alloc);
  CHECK_THROWS_AS(::operator delete[](::operator new[](n, std::align_val_t(4096)), std::align_val_t(4096)), std::bad_alloc);
  CHECK_THROWS_AS(::operator delete(::operator new(opaque(std::size_t(PTRDIFF_MAX)))), std::bad_alloc);
}

TEST_CASE("nothrow operator new returns nullptr for impossible sizes") {
  const std::size_t n = opaque(SIZE_MAX);
  CHECK(::operator new(n, std::nothrow) == nullptr);
  CHECK(::operator new[](n, std::nothrow) == nullptr);
  CHECK(::operator new(n, std::align_val_t(64), std::nothrow) == nullptr);
  CHECK(::operator new[](n, std::align_val_t(64), std::nothrow) == nullptr);
}

TEST_CASE("the new_handler is called until it gives up, then bad_alloc") {
  const std::size_t n = opaque(SIZE_MAX);
  handler_calls = 0;
  std::set_new_handler(uninstalling_handler);
  CHECK_THROWS_AS(::operator delete(::operator new(n)), std::bad_alloc);
  CHECK(handler_calls == 3);

  handler_calls = 0;
  std::set_new_handler(uninstalling_handler);
  CHECK_THROWS_AS(::operator delete[](::operator new[](n, std::align_val_t(256)), std::align_val_t(256)), std::bad_alloc);
  CHECK(handler_calls == 3);

  handler_calls = 0;
  std::set_new_handler(uninstalling_handler);
  CHECK(::operator new(n, std::nothrow) == nullptr);
  CHECK(handler_calls == 3);

  handler_calls = 0;
  std::set_new_handler(throwing_handler);   // a handler that throws: nothrow forms turn it into nullptr
  CHECK(::operator new(n, std::nothrow) == nullptr);
  CHECK(::operator new(n, std::align_val_t(64), std::nothrow) == nullptr);
  CHECK(handler_calls == 2);
  CHECK_THROWS_AS(::operator delete(::operator new(n)), std::bad_alloc);
  CHECK(handler_calls == 3);
  std::set_new_handler(nullptr);

  void* p = ::operator new(100);   // and ordinary requests still work
  CHECK(pcm_owns(p) == 1);
  ::operator delete(p);
}
