#!/bin/sh
# SPDX-License-Identifier: GPL-2.0-or-later
# Build a busybox initramfs for a throwaway guest on a hypervisor (this role, the test harness's L2
# guests and molecule use it).
#   guest_initramfs.sh OUT.cpio.gz PAYLOAD.sh
# The guest boots the host's own kernel, loads the virtio modules of that kernel (-a: every name is a
# module; without it modprobe takes virtio_blk for a parameter of virtio_pci), runs PAYLOAD.sh,
# prints "VHOSTBLK-L2-DONE rc=<status>" on the console and powers off.
set -eu
out=$1
payload=$2
d=$(mktemp -d)
trap 'rm -rf "$d"' EXIT
mkdir -p "$d/bin" "$d/proc" "$d/sys" "$d/dev" "$d/lib/mod" "$d/tmp" "$d/mnt"
cp /bin/busybox "$d/bin/busybox"
: > "$d/modules.order"
for ko in $(modprobe --show-depends -a virtio_pci virtio_blk | awk '/^insmod/ {print $2}'); do
  name=$(basename "$ko")
  case "$name" in
    *.xz) xz -dc "$ko" > "$d/lib/mod/${name%.xz}"; name=${name%.xz} ;;
    *.zst) zstd -qdc "$ko" > "$d/lib/mod/${name%.zst}"; name=${name%.zst} ;;
    *) cp "$ko" "$d/lib/mod/" ;;
  esac
  grep -qx "$name" "$d/modules.order" || echo "$name" >> "$d/modules.order"
done
cat > "$d/init" <<'INIT'
#!/bin/busybox sh
/bin/busybox --install -s /bin
mount -t proc proc /proc; mount -t sysfs sys /sys; mount -t devtmpfs dev /dev
for m in $(cat /modules.order); do insmod /lib/mod/$m 2>/dev/null; done
sleep 1
sh /payload.sh
echo "VHOSTBLK-L2-DONE rc=$?"
sync
poweroff -f
INIT
chmod +x "$d/init"
cp "$payload" "$d/payload.sh"
(cd "$d" && find . | cpio -o -H newc --quiet | gzip -1) > "$out"
