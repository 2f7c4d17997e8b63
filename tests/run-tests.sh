#!/usr/bin/env bash
# Runs every test area and sums their closing lines.  Each test is a program
# (C binary or script) whose last line is "N passed, N failed[, N skipped]";
# exit 77 means skipped (it says why).  Usage: tests/run-tests.sh [FILTER]
set -u
cd "$(dirname "$0")/.."
filter=${1:-}
timeout_s=${EC_TEST_TIMEOUT:-900}
tp=0 tf=0 ts=0 bad=()

run_one() {
	local name=$1; shift
	[ -n "$filter" ] && [[ $name != *$filter* ]] && return
	local log; log=$(mktemp)
	local t0=$SECONDS
	timeout "$timeout_s" "$@" >"$log" 2>&1
	local rc=$?
	local last; last=$(grep -E '^([A-Za-z-]+: )?[0-9]+ passed, [0-9]+ failed' "$log" | tail -n1)
	local p f s
	p=$(grep -oE '[0-9]+ passed' <<<"$last" | grep -oE '[0-9]+'); p=${p:-0}
	f=$(grep -oE '[0-9]+ failed' <<<"$last" | grep -oE '[0-9]+'); f=${f:-0}
	s=$(grep -oE '[0-9]+ skipped' <<<"$last" | grep -oE '[0-9]+'); s=${s:-0}
	if [ $rc -ne 0 ] && [ $rc -ne 77 ] && [ "$f" -eq 0 ]; then
		f=1	# crashed or timed out without a summary
	fi
	tp=$((tp + p)); tf=$((tf + f)); ts=$((ts + s))
	local status=ok
	[ $rc -eq 77 ] && status=skip
	if [ $rc -ne 0 ] && [ $rc -ne 77 ]; then status="FAIL (exit $rc)"; bad+=("$name"); fi
	printf '%-36s %-14s %s (%ds)\n' "$name" "$status" "${last:-no summary}" $((SECONDS - t0))
	if [ "$status" != ok ]; then
		sed 's/^/    | /' "$log" | tail -n 40
	fi
	rm -f "$log"
}

# C unit tests, sanitized build when present.
bindir=build/san/tests
[ -d "$bindir" ] || bindir=build/tests
for t in "$bindir"/test_*; do
	[ -x "$t" ] || continue
	run_one "unit/$(basename "$t")" "$t"
done

# Script tests (reference fidelity, fuzz smoke, module, bpf, ...).  The
# reference ones first: they build the reference models (build/ref) that
# the GPU tests (on the emulation in CI) also check.
for t in tests/ref/test_*.sh tests/*/test_*.sh; do
	[ -f "$t" ] || continue
	case " ${done_scripts:-} " in *" $t "*) continue ;; esac
	done_scripts="${done_scripts:-} $t"
	run_one "${t#tests/}" bash "$t"
done

echo
if [ ${#bad[@]} -gt 0 ]; then
	echo "failed: ${bad[*]}"
fi
if [ $ts -gt 0 ]; then
	echo "$tp passed, $tf failed, $ts skipped"
else
	echo "$tp passed, $tf failed"
fi
[ $tf -eq 0 ] && [ ${#bad[@]} -eq 0 ]
