#!/bin/bash
# Build heap_fuzz with clang (libFuzzer + ASan + UBSan) and run it.
#
#   tests/fuzz/run.sh SOURCE_ROOT WORK_DIR [libFuzzer options...]
#
# WORK_DIR/lib is a meson build of libpcmalloc.a with clang, -Doverride=false
# (the sanitizers keep malloc; the fuzzer calls pcm_* and pcm::), ASan+UBSan and
# libFuzzer's coverage; WORK_DIR/heap_fuzz links it with heap_fuzz.cpp. New
# inputs go to WORK_DIR/corpus; tests/fuzz/corpus seeds it and is only read.
# Without options: a smoke run of 60 s. A long run, for instance:
#   tests/fuzz/run.sh . build/fuzz -max_total_time=1200 -jobs=1
# Exit: 0 clean, 77 when clang or libFuzzer is missing (meson: skipped), 1 when
# the fuzzer finds a crash, leak or timeout (crash-* / leak-* / timeout-* files
# in WORK_DIR). libFuzzer's own default for those is 77, which meson would
# count as a skip: it is set to 1 below.
set -euo pipefail
source_root=$(cd "$1" && pwd)
work=$2
shift 2
mkdir -p "$work"
work=$(cd "$work" && pwd)

CC=${CC_FUZZ:-clang}
CXX=${CXX_FUZZ:-clang++}
if ! command -v "$CXX" >/dev/null || ! command -v "$CC" >/dev/null; then
  echo "$CXX / $CC not found: skipping"
  exit 77
fi
probe=$work/probe.cpp
echo 'extern "C" int LLVMFuzzerTestOneInput(const unsigned char*, unsigned long) { return 0; }' >"$probe"
if ! "$CXX" -fsanitize=fuzzer,address,undefined "$probe" -o "$work/probe" 2>"$work/probe.log"; then
  echo "$CXX cannot build a libFuzzer target with ASan+UBSan (libclang-rt missing?): skipping"
  cat "$work/probe.log"
  exit 77
fi

meson=${MESON:-meson}
sanitize_flags='-fno-sanitize-recover=all -g1'
if [ ! -f "$work/lib/build.ninja" ]; then
  CC=$CC CXX=$CXX "$meson" setup "$work/lib" "$source_root" \
    -Doverride=false -Dtests=false -Dbenchmarks=false \
    -Dbuildtype=plain -Doptimization=1 -Dwerror=false \
    -Db_sanitize=address,undefined -Db_lundef=false \
    "-Dcpp_args=-fsanitize=fuzzer-no-link $sanitize_flags" "-Dc_args=$sanitize_flags" >"$work/setup.log" \
    || { cat "$work/setup.log"; exit 1; }
fi
ninja -C "$work/lib" libpcmalloc.a >"$work/ninja.log" || { cat "$work/ninja.log"; exit 1; }

"$CXX" -std=c++20 -g -O1 -fsanitize=fuzzer,address,undefined $sanitize_flags \
  -I "$source_root/include" "$source_root/tests/fuzz/heap_fuzz.cpp" "$work/lib/libpcmalloc.a" \
  -pthread -o "$work/heap_fuzz.new"
mv "$work/heap_fuzz.new" "$work/heap_fuzz"

mkdir -p "$work/corpus"
if [ $# -eq 0 ]; then set -- -max_total_time=60; fi
cd "$work"   # crash-*, leak-*, timeout-* and fuzz-*.log land here
export ASAN_OPTIONS=${ASAN_OPTIONS:-abort_on_error=0:detect_leaks=1}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-halt_on_error=1:print_stacktrace=1}
exec "$work/heap_fuzz" -timeout=30 -rss_limit_mb=4096 -print_final_stats=1 -error_exitcode=1 -timeout_exitcode=1 "$@" \
  "$work/corpus" "$source_root/tests/fuzz/corpus"
