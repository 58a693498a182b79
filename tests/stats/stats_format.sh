#!/usr/bin/env bash
# PCMALLOC_CONF=stats_print / stats_json print at exit; the JSON parses.
set -euo pipefail
lib=$1
out=$(PCMALLOC_CONF=stats_print:true LD_PRELOAD="$lib" sort --version 2>&1 >/dev/null)
grep -q "pcmalloc statistics: cache mode" <<<"$out"
json=$(PCMALLOC_CONF=stats_json:true LD_PRELOAD="$lib" sort --version 2>&1 >/dev/null)
python3 -c 'import json,sys; d=json.loads(sys.argv[1]); assert d["classes"] and "resident_bytes" in d' "$json"
echo "stats at exit: ok"
