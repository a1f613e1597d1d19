#!/bin/sh
# SPDX-License-Identifier: GPL-2.0-or-later
# What a benchmark backing is and whether anything uses it (read-only):
#   backing_check.sh PATH  ->  lines "kind file|block|missing|other", "size BYTES", "real PATH",
#                              "owner UID GID MODE" and one "busy REASON" line per use found
set -u
p=$1
if [ ! -e "$p" ]; then echo "kind missing"; exit 0; fi
real=$(readlink -f "$p")
echo "real $real"
echo "owner $(stat -L -c '%u %g %a' "$real")"
if [ -b "$real" ]; then
  echo "kind block"
  echo "size $(lsblk -bdno SIZE "$real")"
  findmnt -rn -S "$real" -o TARGET | while read -r m; do echo "busy mounted on $m"; done
  lsblk -nrpo NAME,MOUNTPOINT "$real" 2>/dev/null | while read -r name mnt; do
    [ -n "${mnt:-}" ] && echo "busy $name is mounted on $mnt"
  done
  lsblk -nrpo NAME "$real" 2>/dev/null | tail -n +2 | while read -r part; do echo "busy has the partition or holder $part"; done
  name=$(basename "$real")
  for h in /sys/class/block/"$name"/holders/*; do
    [ -e "$h" ] && echo "busy held by $(basename "$h")"
  done
  awk 'NR > 1 {print $1}' /proc/swaps | while read -r s; do
    [ "$(readlink -f "$s")" = "$real" ] && echo "busy used as swap"
  done
elif [ -f "$real" ]; then
  echo "kind file"
  echo "size $(stat -c %s "$real")"
  losetup -j "$real" 2>/dev/null | while read -r l; do echo "busy backs the loop device ${l%%:*}"; done
  awk 'NR > 1 {print $1}' /proc/swaps | while read -r s; do
    [ "$(readlink -f "$s")" = "$real" ] && echo "busy used as swap"
  done
else
  echo "kind other"
  exit 0
fi
for fd in /proc/[0-9]*/fd/*; do
  [ "$(readlink "$fd" 2>/dev/null)" = "$real" ] || continue
  pid=${fd#/proc/}
  pid=${pid%%/*}
  echo "busy open by process $pid ($(cat /proc/"$pid"/comm 2>/dev/null))"
done | sort -u
exit 0
