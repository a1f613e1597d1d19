#!/bin/sh
# SPDX-License-Identifier: GPL-2.0-or-later
# Runs as root inside virtme-ng on the debug kernel (tests/host/test_debug_kernel.py):
#   debug_kernel_guest.sh OUT MODULE FUZZ_CASES RACEFUZZ_SECONDS
# self-test, lifecycle fuzzer, ring fuzzer; then rmmod, a kmemleak scan and the kernel log, into OUT.
out=$1 module=$2 cases=$3 seconds=$4
exerciser() {
    name=$1
    shift
    start=$(date +%s)
    VHOST_BLK_UAPI_HEADER=$REPO/kmod-src/include/uapi/linux/vhost_blk.h PYTHONPATH=$REPO/tools \
        python3 -m vhostblk "$@" --json > "$out/$name.json" 2> "$out/$name.err"
    echo "$? $(( $(date +%s) - start ))" > "$out/$name.rc"
    dmesg > "$out/dmesg.txt"                 # so far, in case the next step never ends
}
REPO=$(cd "$(dirname "$0")/../.." && pwd)
mountpoint -q /sys/kernel/debug || mount -t debugfs none /sys/kernel/debug
mountpoint -q /sys/fs/cgroup || mount -t cgroup2 none /sys/fs/cgroup
uname -r > "$out/release"
echo clear > /sys/kernel/debug/kmemleak     # what boot leaked is not ours
insmod "$module" || { echo "insmod $module failed" > "$out/fail"; exit 1; }
truncate -s 64M /var/tmp/st.img
exerciser selftest selftest --file /var/tmp/st.img --size 64M --queues 2
truncate -s 16M /var/tmp/rf.img
exerciser racefuzz racefuzz --file /var/tmp/rf.img --seconds "$seconds" --progress 60
exerciser fuzz fuzz --cases "$cases" --file /var/tmp/fz.img --progress 60
rmmod vhost_blk || echo "rmmod vhost_blk failed" > "$out/fail"
sleep 6                                      # kmemleak reports objects older than 5 s
echo scan > /sys/kernel/debug/kmemleak
echo scan > /sys/kernel/debug/kmemleak
cat /sys/kernel/debug/kmemleak > "$out/kmemleak.txt"
dmesg > "$out/dmesg.txt"
