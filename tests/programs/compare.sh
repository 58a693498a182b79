# shellcheck shell=bash
# Sourced by the program tests. compare_runs LIB FUNCTION [ARGS...] runs the
# workload FUNCTION twice in the same fresh directory, first plainly, then with
# LIB preloaded, and fails unless the plain run succeeds and both runs print the
# same stdout and exit with the same status. stderr is shown only on failure.
set -euo pipefail

program_work=$(mktemp -d "${TMPDIR:-/tmp}/pcm-programs.XXXXXX")
trap 'rm -rf "$program_work"' EXIT

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
    if [[ $mode == preload ]]; then export LD_PRELOAD="$lib${LD_PRELOAD:+:$LD_PRELOAD}"; fi
    "$@"
  ) >"$program_work/$mode.out" 2>"$program_work/$mode.err"
  echo $? >"$program_work/$mode.status"
  set -e
}

show_stderr() {
  echo "--- stderr ($1 run, last 30 lines):"
  tail -n 30 "$program_work/$1.err"
}

compare_runs() {
  local lib=$1
  shift
  run_once plain "$lib" "$@"
  run_once preload "$lib" "$@"
  local plain_status preload_status
  plain_status=$(<"$program_work/plain.status")
  preload_status=$(<"$program_work/preload.status")
  if [[ $plain_status != 0 || ! -s $program_work/plain.out ]]; then
    echo "FAIL: the plain run (no pcmalloc) exited $plain_status with $(wc -l <"$program_work/plain.out") lines: the test itself is broken"
    show_stderr plain
    return 1
  fi
  if [[ $preload_status != "$plain_status" ]] || ! cmp -s "$program_work/plain.out" "$program_work/preload.out"; then
    echo "FAIL under LD_PRELOAD=$lib${PCMALLOC_CONF:+ PCMALLOC_CONF=$PCMALLOC_CONF}: exit status $preload_status (plain $plain_status)"
    echo "--- stdout diff (plain -> preloaded), first 40 lines:"
    diff -u "$program_work/plain.out" "$program_work/preload.out" | head -n 40 || true
    show_stderr preload
    return 1
  fi
  echo "identical: $(wc -l <"$program_work/plain.out") lines of stdout, exit status $plain_status"
  echo "--- stdout:"
  head -n 20 "$program_work/plain.out"
}
