#!/usr/bin/env bash
# Under LD_PRELOAD the library is really in use: pcm_cache_mode is found, the
# block from malloc is pcmalloc's, and the cache mode is the one this
# environment calls for. Without the preload, none of it is there.
# Usage: preload_check.sh LIB PRELOAD_CHECK_EXE
set -euo pipefail
lib=$(realpath "$1") exe=$2

plain=$("$exe")
preloaded=$(LD_PRELOAD="$lib${LD_PRELOAD:+:$LD_PRELOAD}" "$exe")
printf 'plain:\n%s\npreloaded:\n%s\n' "$plain" "$preloaded"

if [[ ,${PCMALLOC_CONF:-}, =~ ,hardened:(true|1), ]]; then expected="per-thread (hardened)"
elif [[ ,${PCMALLOC_CONF:-}, =~ ,percpu:(false|0), ]]; then expected="per-thread"
elif grep -q '^glibc rseq: registered$' <<<"$preloaded"; then expected="per-cpu (rseq)"
else expected="per-thread"
fi

fail() { echo "FAIL: $*"; exit 1; }
grep -qx 'pcm_cache_mode: absent' <<<"$plain" || fail "pcm_cache_mode found without the preload"
grep -qx 'malloc from pcmalloc: yes' <<<"$preloaded" || fail "malloc under LD_PRELOAD is not pcmalloc's"
grep -qxF "pcm_cache_mode: $expected" <<<"$preloaded" || fail "cache mode is not '$expected'"
echo "ok: preloaded pcmalloc serves malloc, cache mode $expected"
