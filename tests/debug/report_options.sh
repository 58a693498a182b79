#!/usr/bin/env bash
# The debug library's report options on the C corpus (c_bugs): report_json
# (parsed with python3's json, fields checked), report_file, abort_on_error,
# error_exit_code, and leaks as a note or as reports.
# Usage: report_options.sh LIB C_BUGS
set -uo pipefail
lib=$1 program=$2
command -v python3 >/dev/null || { echo "python3 not found"; exit 77; }
work=$(mktemp -d "${TMPDIR:-/tmp}/pcm-debug-report.XXXXXX")
trap 'rm -rf "$work"' EXIT
fail() { echo "FAILED: $*"; exit 1; }
run() {   # run CONF CASE: stdout, stderr, status into $work/out, err, status
  local conf=$1
  [[ $conf == *abort_on_error* ]] || conf="abort_on_error:false,$conf"   # the default stops at the first
  PCMALLOC_CONF="$conf" LD_PRELOAD="$lib" "$program" "$2" >"$work/out" 2>"$work/err"
  echo $? >"$work/status"
}

# JSON into a file: cross-thread double free (made T1, freed T2, again on T3).
run "report_json:true,report_file:$work/report.json,leaks:false" 11
[[ $(<"$work/status") == 23 ]] || fail "json run: status $(<"$work/status")"
grep -q "ERROR" "$work/err" && fail "json run: a text report went to stderr"
python3 - "$work/report.json" "$work/out" <<'PY' || fail "json report"
import json, re, sys
reports = [json.loads(line) for line in open(sys.argv[1])]
ids = re.search(r"detected in T(\d+), allocated by T(\d+), freed by T(\d+)", open(sys.argv[2]).read())
assert ids, "the program printed no thread ids"
detected, allocated, freed = map(int, ids.groups())
r = [x for x in reports if x.get("error") == "double-free"]
assert len(r) == 1, f"one double-free report expected: {reports}"
r = r[0]
assert r["threads"] == {"detected": detected, "allocated": allocated, "freed": freed}, r["threads"]
assert r["block"]["size"] == 40 and r["block"]["offset"] == 0, r["block"]
assert r["address"] == r["block"]["address"]
assert "already freed" in r["what"]
def functions(label):
    return [f["function"] for f in r["stacks"][label]]
for label, name in (("detected", "c_release_again"), ("allocated", "c_make"), ("freed", "c_release")):
    assert any(name in f for f in functions(label)), (label, functions(label))
for frame in r["stacks"]["detected"]:
    assert frame["pc"].startswith("0x") and frame["module"] and frame["module_offset"].startswith("0x"), frame
print("json: ok")
PY

# Leaks: strict reports as JSON, or one note (and the status left alone).
run "report_json:true,report_file:$work/leaks.json,leaks:true" 10
[[ $(<"$work/status") == 23 ]] || fail "strict leak run: status $(<"$work/status")"
python3 - "$work/leaks.json" <<'PY' || fail "json leak report"
import json, sys
reports = [json.loads(line) for line in open(sys.argv[1])]
leaks = [r for r in reports if r.get("error") == "memory-leak"]
assert len(leaks) == 1 and leaks[0]["leaked_blocks"] == 1 and leaks[0]["leaked_bytes"] == 48, reports
assert any("c_make" in f["function"] for f in leaks[0]["stacks"]["allocated"])
print("json leaks: ok")
PY
PCMALLOC_CONF="report_json:true,report_file:$work/note.json" LD_PRELOAD="$lib" "$program" 10 >/dev/null 2>&1
[[ $? == 0 ]] || fail "a leak without leaks:true changed the exit status"
python3 -c 'import json, sys; n = [json.loads(l) for l in open(sys.argv[1])]; assert len(n) == 1 and "48 bytes leaked in 1 blocks" in n[0]["note"], n' \
  "$work/note.json" || fail "leak note"

# abort_on_error: the first of two errors stops the program.
run "abort_on_error:true,leaks:false" 16
[[ $(<"$work/status") == 134 ]] || fail "abort_on_error: status $(<"$work/status")"
[[ $(grep -c "ERROR: pcmalloc-debug" "$work/err") == 1 ]] || fail "abort_on_error: not exactly one report"
grep -q "stopping at the first error" "$work/err" || fail "abort_on_error: no stop message"
grep -q "^done" "$work/out" && fail "abort_on_error: the program went on"
# Without it, both errors are reported and the program finishes.
run "leaks:false" 16
[[ $(<"$work/status") == 23 && $(grep -c "ERROR: pcmalloc-debug" "$work/err") == 2 ]] || fail "two errors: $(cat "$work/err")"
grep -q "^done 16" "$work/out" || fail "the program did not go on after its errors"

# error_exit_code
run "error_exit_code:42,leaks:false" 2
[[ $(<"$work/status") == 42 ]] || fail "error_exit_code: status $(<"$work/status")"
echo "report options: ok"
