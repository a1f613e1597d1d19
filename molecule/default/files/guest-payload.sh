# Runs inside a libvirt guest: its only disk, /dev/vda, is a vhost-blk disk (vhost-user or vhost-blk-pci).
test -b /dev/vda || { echo "NO-DISK: /dev/vda is not a block device"; exit 1; }
echo "QUEUES $(ls /sys/block/vda/mq | wc -l)"
dd if=/dev/urandom of=/tmp/pat bs=1M count=8 2>/dev/null
dd if=/tmp/pat of=/dev/vda bs=1M conv=fsync 2>/dev/null || exit 3
blockdev --flushbufs /dev/vda
echo 3 > /proc/sys/vm/drop_caches
echo "GUEST-SHA $(sha256sum /tmp/pat | cut -d' ' -f1)"
echo "READBACK-SHA $(dd if=/dev/vda bs=1M count=8 2>/dev/null | sha256sum | cut -d' ' -f1)"
echo "SERIAL $(cat /sys/block/vda/serial 2>/dev/null)"
