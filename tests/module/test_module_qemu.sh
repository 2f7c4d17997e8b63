#!/usr/bin/env bash
# test_module_qemu.sh - builds expertcache.ko and the static guest tests,
# boots Debian's kernel under QEMU and checks every result line, plus a kernel
# log free of BUG/WARNING/Oops/kmemleak and a clean module unload.
#   tests/module/test_module_qemu.sh [TEST]    (TEST: one name of the list)
# Exit 77 (skip) only when QEMU or a bootable kernel with headers is missing.
set -u
cd "$(dirname "$0")/../.."
only=${1:-}
out=build/module-tests/qemu

skip() {
	echo "module: skipped: $*"
	echo "0 passed, 0 failed, 1 skipped"
	exit 77
}
fail_early() {
	echo "FAIL - module: $*"
	echo "0 passed, 1 failed"
	exit 1
}

command -v qemu-system-x86_64 >/dev/null ||
	skip "qemu-system-x86_64 not installed (tools/install-deps.sh)"
kver=$(bash tools/qemu/kver.sh guest) ||
	skip "no /boot/vmlinuz-* with headers and virtio-blk modules" \
		"(linux-image-amd64, linux-headers-amd64)"
[ -r "/boot/vmlinuz-$kver" ] ||
	skip "/boot/vmlinuz-$kver is not readable by $(id -un)"
bb=$(command -v busybox) || skip "busybox not installed (busybox-static)"
ldd "$bb" >/dev/null 2>&1 && skip "$bb is not static (busybox-static)"

t0=$SECONDS
mkdir -p build/module-tests
if ! make -s --no-print-directory module-tests EC_GUEST_KVER="$kver" \
	>build/module-tests.log 2>&1; then
	tail -n 30 build/module-tests.log
	fail_early "build of module and guest tests (build/module-tests.log)"
fi
mkdir -p "$out"
rc=0
bash tools/qemu/run-guest.sh "$kver" \
	"build/module-tests/kmod-$kver/expertcache.ko" build/module-tests \
	"$out" "$only" || rc=$?
log=$out/console.log
echo "# guest $kver: qemu exit $rc after $((SECONDS - t0)) s (log: $log)"

passed=0 failed=0
check() {	# check OK NAME DETAIL
	if [ "$1" = 1 ]; then
		echo "ok - module: $2"
		passed=$((passed + 1))
	else
		echo "FAIL - module: $2${3:+: $3}"
		failed=$((failed + 1))
	fi
}

# Result lines of the guest programs, and their informational lines.
tr -d '\r' <"$log" >"$out/console.txt"
while IFS= read -r line; do
	case "$line" in
	"ok - "*) echo "$line"; passed=$((passed + 1)) ;;
	"FAIL - "*) echo "$line"; failed=$((failed + 1)) ;;
	"# "*) echo "$line" ;;
	esac
done <"$out/console.txt"

grep -q 'ECM-BOOTED' "$out/console.txt"
check $(( $? == 0 )) "guest booted"
grep -q 'ECM-INSMOD ok' "$out/console.txt"
check $(( $? == 0 )) "insmod expertcache.ko"

# Free memory (buddy + per-CPU lists, page cache dropped) after each test,
# against the value before the first: pools are 16-64 MiB, the slack covers
# slab growth and the trace ring buffer the first trace user allocates.
free_start=$(sed -n 's/.*ECM-FREE start \([0-9]*\).*/\1/p' "$out/console.txt")
free_slack_kb=8192
# Every listed test ran to its end with exit 0 (1 = it reported FAILs).
while read -r name limit cmd; do
	case "$name" in ''|'#'*) continue ;; esac
	[ -n "$only" ] && [ "$only" != "$name" ] && continue
	end=$(grep -m1 "^ECM-END $name " "$out/console.txt")
	erc=$(sed -n 's/.* rc=\([0-9]*\).*/\1/p' <<<"$end")
	secs=$(sed -n 's/.* secs=\([0-9]*\).*/\1/p' <<<"$end")
	if [ -z "$end" ]; then
		check 0 "$name ran" "no end marker (guest died or hung)"
	elif [ "$erc" = 124 ] || [ "$erc" = 143 ]; then
		check 0 "$name ran" "timed out after ${limit}s"
	elif [ "$erc" != 0 ] && [ "$erc" != 1 ]; then
		check 0 "$name ran" "exit $erc (crashed?)"
	else
		check 1 "$name ran (${secs}s)"
	fi
	free=$(sed -n "s/.*ECM-FREE $name \([0-9]*\).*/\1/p" "$out/console.txt")
	if [ -n "$free" ] && [ -n "$free_start" ] &&
	   [ "$free" -ge $((free_start - free_slack_kb)) ]; then
		check 1 "$name: free memory back to start ($free of $free_start kB)"
	else
		check 0 "$name: free memory back to start" \
			"${free:-?} kB after, ${free_start:-?} kB before"
	fi
done <tests/module/guest-tests.list

grep -q 'ECM-RMMOD ok' "$out/console.txt"
check $(( $? == 0 )) "rmmod expertcache (no pools or references left)"
grep -q 'ECM-ALL-DONE' "$out/console.txt"
check $(( $? == 0 )) "guest finished"

bad='BUG:|WARNING:|Oops|kmemleak|Call Trace|general protection fault'
bad="$bad|Kernel panic|refcount_t:|list_(add|del) corruption|Bad page"
bad="$bad|unable to handle|blocked for more than|soft lockup"
if grep -E "$bad" "$out/console.txt" >"$out/kernel-bad.txt"; then
	check 0 "kernel log clean" "$(head -c 2000 "$out/kernel-bad.txt")"
else
	check 1 "kernel log clean (no BUG/WARNING/Oops/kmemleak)"
fi

if [ $failed -gt 0 ]; then
	echo "# last console lines:"
	tail -n 40 "$out/console.txt" | sed 's/^/#   /'
fi
echo "$passed passed, $failed failed"
[ $failed -eq 0 ]
