#!/bin/sh
# SPDX-License-Identifier: GPL-2.0-or-later
# Host facts for the benchmark's result document, as JSON (read-only).
set -u
model=$(awk -F': *' '/^model name/ {print $2; exit}' /proc/cpuinfo | tr -d '"\\')
virt=$(systemd-detect-virt 2>/dev/null || true)
qemu=$(command -v qemu-system-x86_64 || true)
uring=false
[ -n "$qemu" ] && ldd "$qemu" 2>/dev/null | grep -q liburing && uring=true
user=false
command -v vhost-blk-user >/dev/null 2>&1 && systemctl cat vhost-blk-user@.service >/dev/null 2>&1 && user=true
printf '{"kernel": "%s", "ncpu": %s, "cpu_model": "%s", "virt": "%s", "qemu_io_uring": %s, "vhost_blk_user": %s}\n' \
  "$(uname -r)" "$(nproc)" "$model" "${virt:-none}" "$uring" "$user"
