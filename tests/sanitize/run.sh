#!/bin/bash
# The prefixed-API suites under sanitizers, in a build of their own.
#
#   tests/sanitize/run.sh SOURCE_ROOT WORK_DIR asan+ubsan|tsan
#
# Configures WORK_DIR/<kind> with -Doverride=false (libpcmalloc without
# malloc/operator new: the sanitizer runtimes interpose those), builds only the
# programs it runs, and runs them with every report fatal (halt_on_error, no
# recovery). Exit 0 when every program passed with no report, 77 when the
# compiler cannot build with that sanitizer, 1 otherwise.
#
# asan+ubsan: the core layer tests, the pmr suite (minus the cases that need
#   pcmalloc to be the process's malloc), the statistics struct and format
#   cases, and threads_test.
# tsan: the pmr suite's threaded cases and threads_test, each with per-CPU
#   caches (rseq) and with per-thread caches. The per-CPU caches pass blocks
#   between threads inside rseq asm that TSan cannot see; arenas/sanitizer.hpp
#   annotates those hand-overs (release before the push, acquire after the
#   pop), so both modes run: per-thread mode checks the rest of the allocator
#   with no annotation at all, per-CPU mode the rseq path with them.
set -uo pipefail
source_root=$(cd "$1" && pwd)
work=$2
kind=$3
mkdir -p "$work"
work=$(cd "$work" && pwd)
build=$work/$kind
CXX=${CXX:-c++}

case $kind in
  asan+ubsan) sanitize=address,undefined ;;
  tsan) sanitize=thread ;;
  *) echo "usage: $0 SOURCE_ROOT WORK_DIR asan+ubsan|tsan"; exit 2 ;;
esac

probe=$work/probe-$kind
echo 'int main() { return 0; }' >"$probe.cpp"
if ! "$CXX" -fsanitize=$sanitize "$probe.cpp" -o "$probe" 2>"$probe.log" || ! "$probe"; then
  echo "$CXX cannot build or run with -fsanitize=$sanitize: skipping"
  cat "$probe.log"
  exit 77
fi

# -O1 -g1: half the compile time of -O2 -g, still line numbers in reports.
flags="-fno-sanitize-recover=all -g1"
if [ ! -f "$build/build.ninja" ]; then
  meson setup "$build" "$source_root" \
    -Doverride=false -Db_sanitize=$sanitize -Db_lundef=false -Dbenchmarks=false \
    -Dbuildtype=plain -Doptimization=1 -Dwerror=false "-Dcpp_args=$flags" "-Dc_args=$flags" >"$work/setup-$kind.log" 2>&1 \
    || { cat "$work/setup-$kind.log"; exit 1; }
fi

core_tests="size_class cache_bin page_map page_runs options rseq"
if [ "$kind" = asan+ubsan ]; then
  targets="tests/pmr/pmr_test tests/sanitize/stats_test tests/sanitize/sanitize_threads_test"
  for t in $core_tests; do targets="$targets tests/core/${t}_test"; done
else
  targets="tests/pmr/pmr_test tests/sanitize/sanitize_threads_test"
fi
# shellcheck disable=SC2086
ninja -C "$build" $targets >"$work/ninja-$kind.log" 2>&1 || { tail -50 "$work/ninja-$kind.log"; exit 1; }

export ASAN_OPTIONS=halt_on_error=1:abort_on_error=0:detect_leaks=1:exitcode=66
export UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1
export TSAN_OPTIONS=halt_on_error=1:exitcode=66:second_deadlock_stack=1

# Cases left out (doctest filters: comma-separated wildcards). They call
# std::malloc/std::free on pcmalloc's blocks or count malloc calls, which need
# the override; or (reset frees everything) bound RSS, which shadow memory inflates.
pmr_left_out='*free() of an arena block*,*deallocating another arena*,*four threads allocate and free*,*reset frees everything*,*buffer pcmalloc handed out*,*inside a small block*'
stats_left_out='requests*,live and slab bytes*,large and huge blocks*'

programs=0 failed=0 cases=0
run() {   # run NAME ENV... -- PROGRAM ARGS...
  local name=$1; shift
  local env=()
  while [ "$1" != -- ]; do env+=("$1"); shift; done
  shift
  local log=$work/$kind-${name//[^A-Za-z0-9]/_}.log
  programs=$((programs + 1))
  if env "${env[@]}" "$@" >"$log" 2>&1 && ! grep -q 'Sanitizer\|runtime error' "$log"; then
    local n
    n=$(grep -o 'test cases: *[0-9]* *| *[0-9]* passed' "$log" | grep -o '[0-9]* passed' | grep -o '[0-9]*' || true)
    cases=$((cases + ${n:-0}))
    echo "ok    $name${n:+ ($n test cases)}"
  else
    failed=$((failed + 1))
    echo "FAIL  $name (log: $log)"
    grep -m5 -A20 'Sanitizer\|runtime error\|ERROR\|FAILED\|threads_test:' "$log" | head -60
  fi
}

if [ "$kind" = asan+ubsan ]; then
  for t in $core_tests; do run "core $t" -- "$build/tests/core/${t}_test"; done
  run "core rseq (glibc rseq off)" GLIBC_TUNABLES=glibc.pthread.rseq=0 -- "$build/tests/core/rseq_test"
  run "pmr" -- "$build/tests/pmr/pmr_test" "--test-case-exclude=$pmr_left_out"
  run "pmr (per-thread caches)" PCMALLOC_CONF=percpu:false -- "$build/tests/pmr/pmr_test" "--test-case-exclude=$pmr_left_out"
  run "stats struct and formats" -- "$build/tests/sanitize/stats_test" "--test-case-exclude=$stats_left_out"
  run "threads pass blocks" -- "$build/tests/sanitize/sanitize_threads_test" 3000
  run "threads pass blocks (per-thread caches)" PCMALLOC_CONF=percpu:false -- "$build/tests/sanitize/sanitize_threads_test" 3000
else
  for mode in per-cpu per-thread; do
    conf=()
    [ $mode = per-thread ] && conf=(PCMALLOC_CONF=percpu:false)
    # TSan's reports fail it (TSAN_OPTIONS exitcode=66), and so do the cases'
    # own assertions: none of them depends on timing.
    run "pmr threaded cases ($mode)" "${conf[@]}" -- "$build/tests/pmr/pmr_test" '--test-case=*thread*' \
      "--test-case-exclude=$pmr_left_out"
    run "threads pass blocks ($mode)" "${conf[@]}" -- "$build/tests/sanitize/sanitize_threads_test" 1500
  done
fi

echo "$kind: $programs programs, $cases doctest cases, $failed failed"
[ "$failed" -eq 0 ]
