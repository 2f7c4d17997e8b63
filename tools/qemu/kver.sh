#!/usr/bin/env bash
# kver.sh - picks a kernel version to build expertcache.ko for.
#   kver.sh host   the running kernel if its headers are installed, else the
#                  newest kernel with headers (what `make module` builds for)
#   kver.sh guest  the newest kernel with an image in /boot, headers and the
#                  virtio-blk modules (what the QEMU test boots)
# Prints nothing and exits 1 when there is none.
set -u
mode=${1:-host}
have_headers() { [ -f "/lib/modules/$1/build/Makefile" ]; }
versions() { ls /lib/modules 2>/dev/null | sort -V -r; }

if [ "$mode" = host ]; then
	r=$(uname -r)
	if have_headers "$r"; then echo "$r"; exit 0; fi
	for v in $(versions); do
		have_headers "$v" && { echo "$v"; exit 0; }
	done
	exit 1
fi
for v in $(versions); do
	have_headers "$v" || continue
	[ -r "/boot/vmlinuz-$v" ] || continue
	ls /lib/modules/"$v"/kernel/drivers/block/virtio_blk.ko* \
		>/dev/null 2>&1 || continue
	echo "$v"
	exit 0
done
exit 1
