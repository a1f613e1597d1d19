#!/bin/sh
# SPDX-License-Identifier: GPL-2.0-or-later
# Pack host tools for a throwaway guest: guest_tools.sh OUT.tar TOOL...
# The tar holds bin/ (the tools), lib/ (every library ldd lists, dereferenced) and interp (the path
# of the dynamic loader the binaries name). It is attached to the guest as a read-only raw disk;
# the guest extracts it into its tmpfs with busybox tar (no filesystem module needed).
set -eu
out=$1
shift
d=$(mktemp -d)
trap 'rm -rf "$d"' EXIT
mkdir -p "$d/bin" "$d/lib"
for tool in "$@"; do
  path=$(command -v "$tool") || { echo "guest_tools.sh: $tool is not installed" >&2; exit 1; }
  case "$path" in
    /*) ;;
    *) echo "guest_tools.sh: $tool is not a program (a shell builtin?)" >&2; exit 1 ;;
  esac
  cp -L "$path" "$d/bin/"
  deps=$(ldd "$path")
  if echo "$deps" | grep -q "not found"; then
    echo "guest_tools.sh: $tool: libraries not found:" >&2
    echo "$deps" | grep "not found" >&2
    exit 1
  fi
  echo "$deps" | awk '$2 == "=>" && $3 ~ /^\// {print $3} $1 ~ /^\// {print $1}' | while read -r lib; do
    cp -L "$lib" "$d/lib/"
  done
  echo "$deps" | awk '$1 ~ /^\// && $1 ~ /ld-linux/ {print $1}' > "$d/interp"
done
test -s "$d/interp" || { echo "guest_tools.sh: no dynamic loader found" >&2; exit 1; }
tar -cf "$out.tmp" -C "$d" bin lib interp
mv "$out.tmp" "$out"
