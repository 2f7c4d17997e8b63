#!/usr/bin/env bash
# CUDA backend: each kernel against its CPU reference, MoE/slot behaviour and
# whole-model GPU-vs-CPU logits (the CPU references always run; the GPU
# checks skip without a device unless EC_REQUIRE_GPU=1), and the CLI's
# fallback to the CPU when there is no driver.
set -u
cd "$(dirname "$0")/../.."
bindir=${EC_GPU_TEST_BIN:-build/san/tests/gpu}
[ -d "$bindir" ] || bindir=build/tests/gpu
cli=build/san/expertcache
[ -x "$cli" ] || cli=build/expertcache
tp=0 tf=0 ts=0

add() {	# add the counts of a closing line "N passed, N failed[, N skipped]"
	local p f s
	p=$(grep -oE '[0-9]+ passed' <<<"$1" | grep -oE '[0-9]+'); p=${p:-0}
	f=$(grep -oE '[0-9]+ failed' <<<"$1" | grep -oE '[0-9]+'); f=${f:-0}
	s=$(grep -oE '[0-9]+ skipped' <<<"$1" | grep -oE '[0-9]+'); s=${s:-0}
	tp=$((tp + p)); tf=$((tf + f)); ts=$((ts + s))
}

for t in test_cuda_ops test_cuda_route test_cuda_moe test_cuda_prefetch \
	test_cuda_host_tier test_cuda_model; do
	if [ ! -x "$bindir/$t" ]; then
		echo "$t: not built (make all)"
		tf=$((tf + 1))
		continue
	fi
	log=$(mktemp)
	"$bindir/$t" >"$log" 2>&1
	rc=$?
	last=$(grep -E '^[0-9]+ passed, [0-9]+ failed' "$log" | tail -n1)
	grep -vE '^[0-9]+ passed, [0-9]+ failed' "$log" | sed "s/^/$t: /"
	echo "$t: ${last:-no summary (exit $rc)}"
	add "$last"
	if [ $rc -ne 0 ] && [ $rc -ne 77 ] && ! grep -qE '[1-9][0-9]* failed' \
		<<<"$last"; then
		tf=$((tf + 1))	# crashed without a summary
	fi
	rm -f "$log"
done

# Without a driver, --backend cuda and auto say so in one line and go on.
model=tests/fuzz/corpus/gguf/tiny_qwen3moe.gguf
if ldconfig -p 2>/dev/null | grep -q 'libcuda\.so\.1'; then
	echo "SKIP: an NVIDIA driver is installed: no fallback to check"
	ts=$((ts + 1))
elif [ -x "$cli" ] && [ -f "$model" ]; then
	for b in cuda auto; do
		out=$(mktemp --suffix=.npy)
		err=$("$cli" logits -m "$model" --tokens 1,2,3 -o "$out" \
			--backend $b 2>&1 >/dev/null)
		rc=$?
		if [ $rc -eq 0 ] && [ "$err" = \
			"no NVIDIA driver found; using the CPU backend" ] &&
			[ -s "$out" ]; then
			tp=$((tp + 1))
		else
			echo "FAIL: --backend $b without a driver: exit $rc," \
				"stderr: $err"
			tf=$((tf + 1))
		fi
		rm -f "$out"
	done
	err=$("$cli" logits -m "$model" --tokens 1 -o /dev/null \
		--backend gpu 2>&1 >/dev/null)
	if [ $? -ne 0 ] && grep -q "expected cpu, cuda or auto" <<<"$err"; then
		tp=$((tp + 1))
	else
		echo "FAIL: --backend gpu accepted: $err"
		tf=$((tf + 1))
	fi
else
	echo "SKIP: no CLI or $model for the fallback check"
	ts=$((ts + 1))
fi

if [ $ts -gt 0 ]; then
	echo "$tp passed, $tf failed, $ts skipped"
else
	echo "$tp passed, $tf failed"
fi
[ $tf -eq 0 ] || exit 1
[ $tp -gt 0 ] || exit 77
exit 0
