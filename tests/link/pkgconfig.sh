#!/usr/bin/env bash
# Build a C program from pcmalloc's uninstalled pkg-config file alone (as a user
# of the build tree would) and check that it runs on pcmalloc.
set -euo pipefail
build_root=$1 source=$2 cc=$3
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
export PKG_CONFIG_PATH="$build_root/meson-uninstalled"
flags=$(pkg-config --cflags --libs pcmalloc)
libdir=$(pkg-config --variable=prefix pcmalloc)
"$cc" -O2 "$source" $flags -Wl,-rpath,"$libdir" -o "$work/prog"
"$work/prog"
