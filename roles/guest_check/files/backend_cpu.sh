#!/bin/sh
# SPDX-License-Identifier: GPL-2.0-or-later
# CPU time of a vhost-blk-user back end and of the vhost_blk kernel workers it owns:
#   backend_cpu.sh UNIT  ->  "DAEMON_TICKS WORKER_TICKS CLK_TCK"
# The module names its worker threads vhost-blk-<owner pid>.<n>; the owner is the back end.
set -eu
pid=$(systemctl show -p MainPID --value "$1")
[ "${pid:-0}" -gt 0 ] || { echo "backend_cpu.sh: $1 has no main process" >&2; exit 1; }
ticks() { sed 's/.*) //' "$1" | awk '{print $12 + $13}'; }
daemon=$(ticks "/proc/$pid/stat")
workers=0
for comm in /proc/[0-9]*/comm; do
  case "$(cat "$comm" 2>/dev/null)" in
    "vhost-blk-$pid."*) workers=$((workers + $(ticks "${comm%comm}stat" 2>/dev/null || echo 0))) ;;
  esac
done
echo "$daemon $workers $(getconf CLK_TCK)"
