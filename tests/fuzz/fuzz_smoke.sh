#!/usr/bin/env bash
# Fuzz smoke for one libFuzzer target: every seed of its corpus, then a short
# run.  Usage: fuzz_smoke.sh NAME MAX_LEN [extra libFuzzer flags...]
# (target build/fuzz/fuzz_NAME, seeds tests/fuzz/corpus/NAME).
# EC_FUZZ_SECONDS sets the run length (default 10); crashes are kept in
# build/fuzz/artifacts/.
set -u
cd "$(dirname "$0")/../.."
name=$1 max_len=$2
shift 2
bin=build/fuzz/fuzz_$name
seeds=tests/fuzz/corpus/$name
secs=${EC_FUZZ_SECONDS:-10}
if [ ! -x "$bin" ]; then
	echo "SKIP: $bin not built (make fuzz needs clang with libFuzzer)"
	echo "0 passed, 0 failed, 1 skipped"
	exit 77
fi
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
mkdir -p "$work/corpus" build/fuzz/artifacts
pass=0 fail=0

if "$bin" -runs=0 "$seeds" >"$work/log" 2>&1; then
	pass=$((pass + 1))
else
	fail=$((fail + 1))
	echo "FAIL: a seed in $seeds crashes fuzz_$name"
	tail -n 30 "$work/log"
fi

if "$bin" -max_total_time="$secs" -max_len="$max_len" \
	-artifact_prefix="build/fuzz/artifacts/$name-" "$@" \
	"$work/corpus" "$seeds" >"$work/log" 2>&1; then
	pass=$((pass + 1))
	grep -E '^Done [0-9]+ runs' "$work/log"
else
	fail=$((fail + 1))
	echo "FAIL: fuzz_$name found a crash (see build/fuzz/artifacts/)"
	tail -n 40 "$work/log"
fi
echo "$pass passed, $fail failed"
[ "$fail" -eq 0 ]
