#!/usr/bin/env bash
# Run a buggy program under the debug library and check the report: its kind,
# a function name in the stack, and the exit status (23 when errors were found).
set -uo pipefail
lib=$1 program=$2 case=$3 kind=$4 function=$5 conf=${6:-}
out=$(PCMALLOC_CONF="$conf" LD_PRELOAD="$lib" "$program" "$case" 2>&1)
status=$?
fail() { echo "FAILED: $*"; echo "$out"; exit 1; }
if [[ $kind == none ]]; then
  [[ $status == 0 ]] || fail "expected a clean run, got status $status"
  grep -q "ERROR: pcmalloc-debug" <<<"$out" && fail "expected no report"
  exit 0
fi
[[ $status == 23 ]] || fail "expected exit status 23, got $status"
grep -q "ERROR: pcmalloc-debug: $kind on" <<<"$out" || fail "no $kind report"
grep -q "in $function" <<<"$out" || fail "no frame in $function"
echo "ok: $kind"
