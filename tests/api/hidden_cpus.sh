#!/bin/bash
# A process started on CPU 1 with /sys/devices/system/cpu hidden, so that
# pcmalloc cannot read the possible CPU ids and counts the affinity mask (1),
# uses an explicit arena from CPUs 0 and 1. Its per-CPU cache sets must be sized
# by CPU id, not by that count (they once were: CPU 1's set lay past the one
# allocated, over CPU 0's slots, and the process crashed).
# Needs two CPUs and a private mount namespace (CAP_SYS_ADMIN); exit 77 (skip)
# without them.
#   tests/api/hidden_cpus.sh API_TEST
set -u
api_test=$1
[ "$(nproc --all)" -ge 2 ] || { echo "needs two CPUs: skipping"; exit 77; }
unshare -m true 2>/dev/null || { echo "unshare -m is not permitted here: skipping"; exit 77; }
command -v taskset >/dev/null || { echo "taskset not found: skipping"; exit 77; }
exec unshare -m sh -c 'mount -t tmpfs none /sys/devices/system/cpu && exec taskset -c 1 "$0" --child=explicit-arena-two-cpus' "$api_test"
