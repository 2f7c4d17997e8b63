#!/usr/bin/env bash
# run-guest.sh - boots Debian's kernel under QEMU (TCG) with an initramfs of
# busybox, virtio-blk, expertcache.ko and the static test programs, and writes
# the serial console to a log.  Used by tests/module/test_module_qemu.sh.
#
#   run-guest.sh KVER KO TESTDIR OUTDIR [ONLY]
#     KVER     kernel version (/boot/vmlinuz-KVER, /lib/modules/KVER)
#     KO       expertcache.ko built for KVER
#     TESTDIR  static programs, a `list` (name timeout command) and disk.img
#     OUTDIR   gets root/, initrd.gz and console.log
#     ONLY     run just this test of the list
# Exit: QEMU's status; 124 when the guest ran past $EC_QEMU_TIMEOUT (300 s).
set -eu
kver=$1 ko=$2 testdir=$3 out=$4 only=${5:-}
timeout_s=${EC_QEMU_TIMEOUT:-300}
here=$(cd "$(dirname "$0")" && pwd)
mods=/lib/modules/$kver/kernel/drivers

rm -rf "$out/root"
mkdir -p "$out/root"/{bin,dev,proc,sys,tmp,lib/modules,tests}
root=$out/root
install -m 0755 "$here/guest-init.sh" "$root/init"
install -m 0755 "$(command -v busybox)" "$root/bin/busybox"
install -m 0644 "$ko" "$root/expertcache.ko"

# virtio-blk and what it needs, decompressed: busybox insmod reads plain ELF.
for m in virtio/virtio virtio/virtio_ring virtio/virtio_pci_legacy_dev \
	 virtio/virtio_pci_modern_dev virtio/virtio_pci block/virtio_blk; do
	name=$(basename "$m")
	src=$(ls "$mods/$m".ko* 2>/dev/null | head -n1 || true)
	[ -n "$src" ] || continue	# built into this kernel
	case "$src" in
	*.ko.xz) xz -dc "$src" >"$root/lib/modules/$name.ko" ;;
	*.ko.zst) zstd -qdc "$src" >"$root/lib/modules/$name.ko" ;;
	*.ko.gz) gzip -dc "$src" >"$root/lib/modules/$name.ko" ;;
	*) cp "$src" "$root/lib/modules/$name.ko" ;;
	esac
done

for f in "$testdir"/*; do
	case "$(basename "$f")" in
	disk.img|*.o|*.h|*.d) ;;
	list) cp "$f" "$root/tests/list" ;;
	*) [ -f "$f" ] && [ -x "$f" ] && cp "$f" "$root/tests/" ;;
	esac
done

(cd "$root" && find . | cpio -o -H newc --owner=0:0 --quiet) |
	gzip -1 >"$out/initrd.gz"

append="console=ttyS0 panic=-1 oops=panic quiet"
[ -n "$only" ] && append="$append ecm_only=$only"
rc=0
timeout --kill-after=10 "$timeout_s" \
	qemu-system-x86_64 -accel tcg -m 1024 -smp 2 -nic none \
	-nographic -no-reboot \
	-object memory-backend-ram,id=m0,size=512M \
	-numa node,nodeid=0,memdev=m0,cpus=0 \
	-object memory-backend-ram,id=m1,size=512M \
	-numa node,nodeid=1,memdev=m1,cpus=1 \
	-kernel "/boot/vmlinuz-$kver" -initrd "$out/initrd.gz" \
	-drive "file=$testdir/disk.img,format=raw,if=virtio,readonly=on" \
	-append "$append" </dev/null >"$out/console.log" 2>&1 || rc=$?
exit $rc
