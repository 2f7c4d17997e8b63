#!/bin/busybox sh
# guest-init.sh - /init of the module test guest: loads virtio-blk and
# expertcache.ko, runs each test in /tests/list with a timeout, prints the
# kernel log after each, unloads the module and powers off.  The host parses
# the ECM-* markers (tools/qemu/run-guest.sh, tests/module/).
/bin/busybox --install -s /bin
export PATH=/bin:/tests
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev
mount -t tmpfs tmpfs /tmp
mount -t debugfs debugfs /sys/kernel/debug
mount -t tracefs tracefs /sys/kernel/tracing
mount -t cgroup2 cgroup2 /sys/fs/cgroup
echo "ECM-BOOTED $(uname -r) cpus=$(nproc)"

# Load order from dependencies: retry until a pass makes no progress.
pending=$(ls /lib/modules/*.ko 2>/dev/null)
while [ -n "$pending" ]; do
	left=
	for m in $pending; do
		insmod "$m" 2>/dev/null || left="$left $m"
	done
	[ "$left" = "$(echo $pending | sed 's/^/ /')" ] && break
	pending=$(echo $left)
done
[ -n "$pending" ] && echo "ECM-MODULES not loaded: $pending"
i=0
while [ ! -b /dev/vda ] && [ $i -lt 50 ]; do sleep 0.1; i=$((i + 1)); done
[ -b /dev/vda ] && echo "ECM-DISK /dev/vda" || echo "ECM-DISK missing"

# Boot messages are not ours; keep them out of the checked log.
dmesg -c >/tmp/boot.log
if insmod /expertcache.ko; then
	echo "ECM-INSMOD ok"
else
	echo "ECM-INSMOD FAIL"
fi
dmesg -c | sed 's/^/K: /'

# Free pages as the allocator holds them: buddy lists + per-CPU lists.
free_kb() {
	sync
	echo 3 >/proc/sys/vm/drop_caches
	awk '/pages free/ { s += $3 } /count:/ { s += $2 } END { print s * 4 }' \
		/proc/zoneinfo
}
echo "ECM-FREE start $(free_kb)"

only=$(sed -n 's/.*ecm_only=\([^ ]*\).*/\1/p' /proc/cmdline)
while read -r name limit cmd; do
	case "$name" in ''|'#'*) continue ;; esac
	[ -n "$only" ] && [ "$only" != "$name" ] && continue
	echo "ECM-BEGIN $name"
	t0=$(cut -d. -f1 /proc/uptime)
	# shellcheck disable=SC2086
	timeout "$limit" $cmd </dev/null
	rc=$?
	echo "ECM-END $name rc=$rc secs=$(( $(cut -d. -f1 /proc/uptime) - t0 ))"
	echo "ECM-FREE $name $(free_kb)"
	dmesg -c | sed 's/^/K: /'
done </tests/list

if rmmod expertcache; then
	echo "ECM-RMMOD ok"
else
	echo "ECM-RMMOD FAIL"
fi
dmesg -c | sed 's/^/K: /'
echo "ECM-ALL-DONE"
sync
poweroff -f
