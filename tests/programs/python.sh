#!/usr/bin/env bash
# python3 with PYTHONMALLOC=malloc (every object from malloc) running dicts.py.
# Usage: python.sh LIB PYTHON3 DICTS_PY
set -euo pipefail
# shellcheck source=compare.sh
source "$(dirname "$0")/compare.sh"
lib=$(realpath "$1") python=$2 script=$3

workload() {
  PYTHONMALLOC=malloc PYTHONHASHSEED=0 PYTHONDONTWRITEBYTECODE=1 "$python" "$script"
}
compare_runs "$lib" workload
