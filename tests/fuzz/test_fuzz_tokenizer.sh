#!/usr/bin/env bash
# Fuzz smoke for the tokenizer (encode, decode, stream-decode): every seed,
# then a short libFuzzer run.
# EC_FUZZ_SECONDS sets the run length (default 10); crashes are kept in
# build/fuzz/artifacts/.
set -u
cd "$(dirname "$0")/../.."
bin=build/fuzz/fuzz_tokenizer
seeds=tests/fuzz/corpus/tokenizer
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
	echo "FAIL: a seed in $seeds crashes the tokenizer"
	tail -n 30 "$work/log"
fi

if "$bin" -max_total_time="$secs" -max_len=4096 \
	-artifact_prefix=build/fuzz/artifacts/tokenizer- \
	"$work/corpus" "$seeds" >"$work/log" 2>&1; then
	pass=$((pass + 1))
	grep -E '^Done [0-9]+ runs' "$work/log"
else
	fail=$((fail + 1))
	echo "FAIL: fuzz_tokenizer found a crash (see build/fuzz/artifacts/)"
	tail -n 40 "$work/log"
fi
echo "$pass passed, $fail failed"
[ "$fail" -eq 0 ]
