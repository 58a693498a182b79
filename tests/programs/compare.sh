# shellcheck shell=bash
# Sourced by the program tests. compare_runs LIB FUNCTION [ARGS...] runs the
# workload FUNCTION twice in the same fresh directory, first plainly, then with
# LIB preloaded, and fails unless the plain run succeeds and both runs print the
# same stdout and exit with the same status. stderr is shown only on failure.
#
# PCM_PROGRAM_FLAVOUR=debug (set by meson.build for libpcmalloc-debug.so) also
# fails the test when the debug library reported anything, from any process of
# the run (reports go to a file, so children whose stderr is discarded count),
# and makes by_size pick the smoke size: the debug library is several times
# slower. Leaks are errors there (leaks:true), unless the script sets
# debug_leaks=summary for a program that really leaks at exit (valgrind calls
# the same blocks "definitely lost"): then the scan still runs and its one-line
# summary is shown, not failed on. In every flavour the preloaded run must
# print no "pcmalloc:" line. PCM_PROGRAM_KEEP=1 keeps the work directory.
set -euo pipefail

program_work=$(mktemp -d "${TMPDIR:-/tmp}/pcm-programs.XXXXXX")
trap '[[ -n ${PCM_PROGRAM_KEEP:-} ]] || rm -rf "$program_work"' EXIT
program_flavour=${PCM_PROGRAM_FLAVOUR:-release}
debug_reports=$program_work/debug-reports.txt
debug_leaks=report
leak_summary='^pcmalloc-debug: [0-9]+ bytes leaked in '

# by_size FULL SMOKE: the workload size for this flavour.
by_size() {
  if [[ $program_flavour == debug ]]; then echo "$2"; else echo "$1"; fi
}

# plain CMD...: a helper of the workload (sort, sed, tail in a pipeline) runs
# without the preload, so only the program under test is checked.
plain() { env -u LD_PRELOAD "$@"; }

# run_once MODE LIB FUNCTION [ARGS...]: out, err and status land in $program_work/MODE.*
run_once() {
  local mode=$1 lib=$2
  shift 2
  rm -rf "$program_work/run"
  mkdir "$program_work/run"
  set +e
  (
    set -e
    cd "$program_work/run"
    if [[ $mode == preload ]]; then
      export LD_PRELOAD="$lib${LD_PRELOAD:+:$LD_PRELOAD}"
      if [[ $program_flavour == debug ]]; then
        local conf=report_file:$debug_reports
        if [[ $debug_leaks == report ]]; then conf+=,leaks:true; fi
        export PCMALLOC_CONF="${PCMALLOC_CONF:+$PCMALLOC_CONF,}$conf"
      fi
    fi
    "$@"
  ) >"$program_work/$mode.out" 2>"$program_work/$mode.err"
  echo $? >"$program_work/$mode.status"
  set -e
}

show_stderr() {
  if [[ -n ${PCM_PROGRAM_KEEP:-} ]]; then echo "--- kept: $program_work"; fi
  echo "--- stderr ($1 run, last 30 lines):"
  tail -n 30 "$program_work/$1.err"
}

# What the library itself said during the preloaded run: debug reports (in the
# report file or on stderr), warnings and errors. Empty when it said nothing.
library_said() {
  if [[ -s $debug_reports ]]; then cat "$debug_reports"; fi
  grep -E '^pcmalloc(-debug)?: |^==[0-9]+== ERROR: pcmalloc-debug' "$program_work/preload.err" || true
}
library_messages() {
  if [[ $debug_leaks == summary ]]; then library_said | grep -Ev "$leak_summary" || true
  else library_said
  fi
}

compare_runs() {
  local lib=$1
  shift
  run_once plain "$lib" "$@"
  run_once preload "$lib" "$@"
  local plain_status preload_status messages
  plain_status=$(<"$program_work/plain.status")
  preload_status=$(<"$program_work/preload.status")
  if [[ $plain_status != 0 || ! -s $program_work/plain.out ]]; then
    echo "FAIL: the plain run (no pcmalloc) exited $plain_status with $(wc -l <"$program_work/plain.out") lines: the test itself is broken"
    show_stderr plain
    return 1
  fi
  local how="LD_PRELOAD=$lib${PCMALLOC_CONF:+ PCMALLOC_CONF=$PCMALLOC_CONF}"
  if [[ $program_flavour == debug ]]; then how+=" (debug flavour, leaks: $debug_leaks)"; fi
  if [[ $preload_status != "$plain_status" ]] || ! cmp -s "$program_work/plain.out" "$program_work/preload.out"; then
    echo "FAIL under $how: exit status $preload_status (plain $plain_status)"
    echo "--- stdout diff (plain -> preloaded), first 40 lines:"
    diff -u "$program_work/plain.out" "$program_work/preload.out" | head -n 40 || true
    show_stderr preload
    library_messages | head -n 60
    return 1
  fi
  messages=$(library_messages)
  if [[ -n $messages ]]; then
    echo "FAIL under $how: same output and exit status, but the library reported (first 80 lines):"
    head -n 80 <<<"$messages"
    return 1
  fi
  echo "identical: $(wc -l <"$program_work/plain.out") lines of stdout, exit status $plain_status ($program_flavour flavour)"
  if [[ $program_flavour == debug ]]; then
    echo "debug library: no reports; leak summaries (leaks: $debug_leaks): $(library_said | grep -cE "$leak_summary" || true)"
    library_said | grep -E "$leak_summary" | sort | uniq -c | sort -rn | head -n 10 || true
  fi
  echo "--- stdout:"
  head -n 20 "$program_work/plain.out"
}
