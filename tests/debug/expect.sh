#!/usr/bin/env bash
# Run a program of the corpus under the debug library and check its report.
# Usage: expect.sh LIB PROGRAM CASE KIND CONF [CHECK...]
#   KIND   the report kind (use-after-free, ...), or "none" for a clean run:
#          exit status 0 and no report at all
#   CONF   PCMALLOC_CONF for the run
#   CHECK  status=N          exit status (default 23)
#          LABEL:FUNCTION    FUNCTION appears in the stack labelled LABEL
#                            (detected, allocated, freed, "returned to its pool at")
#          threads           every "expect-threads: TEXT" line the program
#                            printed must appear in the report's threads line
#          what=TEXT         the report's description contains TEXT
set -uo pipefail
lib=$1 program=$2 case=$3 kind=$4 conf=$5
shift 5
# The corpus checks what each report says and the run after it: keep going.
[[ $conf == *abort_on_error* ]] || conf="abort_on_error:false${conf:+,$conf}"
out=$(PCMALLOC_CONF="$conf" LD_PRELOAD="$lib" "$program" "$case" 2>&1)
status=$?
fail() { echo "FAILED: $*"; echo "--- output:"; echo "$out"; exit 1; }
if [[ $kind == none ]]; then
  [[ $status == 0 ]] || fail "expected a clean run, got status $status"
  grep -q "pcmalloc-debug" <<<"$out" && fail "expected no report"
  echo "ok: clean"
  exit 0
fi
want_status=23
grep -q "ERROR: pcmalloc-debug: $kind on" <<<"$out" || fail "no $kind report"
# The first report of that kind: from its ERROR line to the next ERROR line.
report=$(awk -v k="ERROR: pcmalloc-debug: $kind on" '
  index($0, k) { on = 1; print; next }
  on && /ERROR: pcmalloc-debug:/ { exit }
  on { print }' <<<"$out")
# label<TAB>function for every frame, by the stack it is printed under.
frames=$(awk '
  / are unreachable; allocated at:$/ { label = "allocated"; next }
  /^[a-z][a-z ]*:$/ { label = substr($0, 1, length($0) - 1); next }
  /^    #[0-9]+ 0x[0-9a-f]+ in / { sub(/^    #[0-9]+ 0x[0-9a-f]+ in /, ""); print label "\t" $0 }' <<<"$report")
for check in "$@"; do
  case $check in
    status=*) want_status=${check#status=} ;;
    what=*) grep -qF -- "${check#what=}" <<<"$report" || fail "the report does not say '${check#what=}'" ;;
    threads)
      expected=$(sed -n 's/^expect-threads: //p' <<<"$out")
      [[ -n $expected ]] || fail "the program printed no expect-threads line"
      line=$(grep -m1 "== threads: " <<<"$report")
      while IFS= read -r text; do
        grep -qF -- "$text" <<<"$line" || fail "threads line '$line' lacks '$text'"
      done <<<"$expected" ;;
    *:*)
      label=${check%%:*} function=${check#*:}
      grep -qF -- "$label	" <<<"$frames" || fail "no '$label' stack"
      awk -F'\t' -v l="$label" -v f="$function" '$1 == l && index($2, f) { found = 1 } END { exit !found }' <<<"$frames" ||
        fail "no frame in $function in the $label stack" ;;
    *) echo "expect.sh: unknown check '$check'"; exit 2 ;;
  esac
done
[[ $status == "$want_status" ]] || fail "expected exit status $want_status, got $status"
echo "ok: $kind"
