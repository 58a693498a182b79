#!/bin/bash
# Build a fuzz target with clang (libFuzzer + ASan + UBSan) and run it.
#
#   tests/fuzz/run.sh SOURCE_ROOT WORK_DIR [TARGET] [libFuzzer options...]
#
# TARGET: heap_fuzz (the default), node_map_fuzz or misuse_fuzz, built from
# TARGET.cpp.
# WORK_DIR/lib is a meson build of libpcmalloc.a with clang, -Doverride=false
# (the sanitizers keep malloc; the fuzzer calls pcm_* and pcm::), ASan+UBSan and
# libFuzzer's coverage, shared by the targets (built under a lock, so that two
# runs at once build it once); WORK_DIR/TARGET links it with TARGET.cpp. New
# inputs go to WORK_DIR/corpus (heap_fuzz), WORK_DIR/node_map_corpus or
# WORK_DIR/misuse_corpus; the seeds, only read, are the same folders under
# tests/fuzz.
# Without options: a smoke run of 60 s. A long run, for instance:
#   tests/fuzz/run.sh . build/fuzz -max_total_time=1200 -jobs=1
#   tests/fuzz/run.sh . build/fuzz node_map_fuzz -max_total_time=1200
# Exit: 0 clean, 77 when clang or libFuzzer is missing (meson: skipped), 1 when
# the fuzzer finds a crash, leak or timeout (crash-* / leak-* / timeout-* files
# in WORK_DIR). libFuzzer's own default for those is 77, which meson would
# count as a skip: it is set to 1 below.
set -euo pipefail
source_root=$(cd "$1" && pwd)
work=$2
shift 2
target=heap_fuzz
if [ $# -gt 0 ] && [[ $1 != -* ]]; then
  target=$1
  shift
fi
case $target in
  heap_fuzz) corpus=corpus ;;
  node_map_fuzz) corpus=node_map_corpus ;;
  misuse_fuzz) corpus=misuse_corpus ;;
  *) echo "run.sh: unknown target '$target'"; exit 2 ;;
esac
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
exec 9>"$work/lib.lock"
flock 9
if [ ! -f "$work/lib/build.ninja" ]; then
  CC=$CC CXX=$CXX "$meson" setup "$work/lib" "$source_root" \
    -Doverride=false -Dtests=false -Dbenchmarks=false \
    -Dbuildtype=plain -Doptimization=1 -Dwerror=false \
    -Db_sanitize=address,undefined -Db_lundef=false \
    "-Dcpp_args=-fsanitize=fuzzer-no-link $sanitize_flags" "-Dc_args=$sanitize_flags" >"$work/setup.log" \
    || { cat "$work/setup.log"; exit 1; }
fi
ninja -C "$work/lib" libpcmalloc.a >"$work/ninja.log" || { cat "$work/ninja.log"; exit 1; }
flock -u 9

"$CXX" -std=c++20 -g -O1 -fsanitize=fuzzer,address,undefined $sanitize_flags \
  -I "$source_root/include" "$source_root/tests/fuzz/$target.cpp" "$work/lib/libpcmalloc.a" \
  -pthread -lunwind -o "$work/$target.new"
mv "$work/$target.new" "$work/$target"

mkdir -p "$work/$corpus"
if [ $# -eq 0 ]; then set -- -max_total_time=60; fi
cd "$work"   # crash-*, leak-*, timeout-* and fuzz-*.log land here
export ASAN_OPTIONS=${ASAN_OPTIONS:-abort_on_error=0:detect_leaks=1}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-halt_on_error=1:print_stacktrace=1}
exec "$work/$target" -timeout=30 -rss_limit_mb=4096 -print_final_stats=1 -error_exitcode=1 -timeout_exitcode=1 "$@" \
  "$work/$corpus" "$source_root/tests/fuzz/$corpus"
