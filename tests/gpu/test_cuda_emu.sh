#!/usr/bin/env bash
# The CUDA backend executed on the CPU emulation of CUDA (kernels/emu, no GPU
# needed): the emulation's self-test in both stream modes and its sanitizer
# probes, every GPU test binary with a GPU required (EC_REQUIRE_GPU=1), the
# shapes the tests shrink for the emulation (EC_GPU_EMU=1) and lazy streams
# (EC_EMU_DEFER=1, so a missing wait gives wrong results), the CLI end to
# end (also on the reference models against transformers when tools/ref
# built them), and the loader refusing an emulated plugin it was not asked
# for.
# Uses the sanitized build (make SAN=1 all) when it is there.
set -u
cd "$(dirname "$0")/../.."
b=build/san
[ -x $b/emu/emu_selftest ] && [ -f $b/emu/libexpertcache_cuda.so ] &&
	[ -d $b/tests/gpu ] || b=build
plugin=$PWD/$b/emu/libexpertcache_cuda.so
cli=$b/expertcache
tp=0 tf=0 ts=0
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

pass() { tp=$((tp + 1)); }
fail() { echo "FAIL: $*"; tf=$((tf + 1)); }

add() {	# add the counts of a closing line "N passed, N failed[, N skipped]"
	local p f s
	p=$(grep -oE '[0-9]+ passed' <<<"$1" | grep -oE '[0-9]+'); p=${p:-0}
	f=$(grep -oE '[0-9]+ failed' <<<"$1" | grep -oE '[0-9]+'); f=${f:-0}
	s=$(grep -oE '[0-9]+ skipped' <<<"$1" | grep -oE '[0-9]+'); s=${s:-0}
	tp=$((tp + p)); tf=$((tf + f)); ts=$((ts + s))
}

# run NAME CMD...: a program closing with "N passed, N failed"
run() {
	local name=$1 log rc last t0=$SECONDS
	shift
	log=$tmp/log
	"$@" >"$log" 2>&1
	rc=$?
	last=$(grep -E '^[0-9]+ passed, [0-9]+ failed' "$log" | tail -n1)
	grep -vE '^[0-9]+ passed, [0-9]+ failed' "$log" | sed "s/^/$name: /"
	echo "$name: ${last:-no summary (exit $rc)} ($((SECONDS - t0))s)"
	add "$last"
	if [ $rc -ne 0 ] && ! grep -qE '[1-9][0-9]* failed' <<<"$last"; then
		tf=$((tf + 1))	# crashed without a summary
	fi
}

if [ ! -f "$plugin" ] || [ ! -x $b/emu/emu_selftest ]; then
	echo "$plugin: not built (make all)"
	echo "0 passed, 1 failed"
	exit 1
fi
echo "emulated plugin: $plugin"

run selftest $b/emu/emu_selftest
run selftest-deferred env EC_EMU_DEFER=1 $b/emu/emu_selftest

# The sanitizers see into kernels: each probe must be stopped by them.
if [ $b = build/san ]; then
	for p in "oob-global:heap-buffer-overflow" \
		 "oob-shared:out of bounds|global-buffer-overflow" \
		 "oob-shared-template:insufficient space|global-buffer-overflow" \
		 "oob-local:insufficient space|stack-buffer-overflow" \
		 "misaligned:misaligned address"; do
		out=$($b/emu/emu_selftest "${p%%:*}" 2>&1)
		if [ $? -ne 0 ] && grep -qE "${p#*:}" <<<"$out"; then
			pass
		else
			fail "sanitizers missed the ${p%%:*} probe: $out"
		fi
	done
else
	echo "SKIP: sanitizer probes need the SAN=1 build"
	ts=$((ts + 1))
fi

export EC_CUDA_LIB=$plugin EC_REQUIRE_GPU=1 EC_GPU_EMU=1 EC_EMU_DEFER=1
for t in $b/tests/gpu/test_cuda_*; do
	[ -x "$t" ] || continue
	run "$(basename "$t")" "$t"
done

# The CLI end to end: logits on the emulated GPU against the CPU backend.
model=tests/fuzz/corpus/gguf/tiny_qwen3moe.gguf
if [ -x "$cli" ] && [ -f "$model" ]; then
	err=$("$cli" logits -m $model --tokens 1,2,3,4 -o $tmp/gpu.npy \
		--backend cuda 2>&1 >/dev/null)
	rc=$?
	EC_CUDA_LIB= "$cli" logits -m $model --tokens 1,2,3,4 \
		-o $tmp/cpu.npy --backend cpu >/dev/null 2>&1
	diff=$(python3 - "$tmp/gpu.npy" "$tmp/cpu.npy" <<'EOF' 2>&1
import struct, sys
def load(p):
    d = open(p, "rb").read()
    n = struct.unpack("<H", d[8:10])[0]
    body = d[10 + n:]
    return struct.unpack("<%df" % (len(body) // 4), body)
a, b = load(sys.argv[1]), load(sys.argv[2])
print(max(abs(x - y) for x, y in zip(a, b)) if len(a) == len(b) and a
      else "shape")
EOF
)
	if [ $rc -eq 0 ] && grep -q "CPU emulation of CUDA" <<<"$err" &&
		awk -v d="$diff" 'BEGIN { exit !(d + 0 == d && d <= 1e-3) }'
	then
		pass
	else
		fail "CLI on the emulation: exit $rc, max |GPU - CPU| $diff," \
			"stderr: $err"
	fi
else
	echo "SKIP: no CLI or $model for the end-to-end check"
	ts=$((ts + 1))
fi

# Experts streamed through the expert cache (--ram-budget) go to VRAM from
# the registered host tier: no copy staged as pageable.
big=models/tiny-qwen3moe-f16.gguf
if [ -x "$cli" ] && [ -f "$big" ]; then
	err=$("$cli" run -m $big --backend cuda --vram-budget 25% \
		--ram-budget 50% -p "def f(x):" -n 8 \
		--stats-json $tmp/run.json 2>&1 >/dev/null)
	rc=$?
	got=$(python3 -c 'import json, sys
c = json.load(open(sys.argv[1]))["cuda"]
print(c["h2d_bytes"], c["h2d_pageable"], c["host_tier_bytes"])' \
		$tmp/run.json 2>&1)
	if [ $rc -eq 0 ] && awk -v g="$got" 'BEGIN { split(g, v, " ");
		exit !(v[1] > 0 && v[2] == 0 && v[3] > 0) }'; then
		pass
	else
		fail "CLI --ram-budget on the emulation: exit $rc," \
			"h2d_bytes h2d_pageable host_tier_bytes: $got, $err"
	fi
else
	echo "SKIP: no CLI or $big for the host-tier check"
	ts=$((ts + 1))
fi

# The reference models (tools/ref, when built): the CLI on the emulated
# GPU against transformers' logits, each case within its tolerance of one
# of its references (f32 or 8-bit activations, whichever path it takes).
py=build/venv/bin/python
if [ -x "$cli" ] && [ -f build/ref/manifest.json ] && [ -x $py ]; then
	out=$($py - "$cli" "$tmp/ref.npy" <<'PY' 2>&1
import json, subprocess, sys
import numpy as np
cli, out = sys.argv[1], sys.argv[2]
m = json.load(open("build/ref/manifest.json"))
bad = 0
for c in m["cases"]:
    r = subprocess.run([cli, "logits", "-m", "build/ref/" + c["model"],
                        "--tokens", c["tokens"], "-o", out,
                        "--backend", "cuda"], capture_output=True, text=True)
    refs = c.get("refs") or [{"ref": c.get("ref"), "tol": c.get("tol")}]
    if r.returncode:
        print("%s: exit %d: %s" % (c["name"], r.returncode, r.stderr[-300:]))
        bad += 1
        continue
    got = np.load(out)
    err = [float(abs(got - np.load("build/ref/" + f["ref"])).max()) / f["tol"]
           for f in refs]
    if min(err) > 1:
        print("%s: %.3g times the tolerance" % (c["name"], min(err)))
        bad += 1
print("cases %d bad %d" % (len(m["cases"]), bad))
PY
)
	if grep -qE "^cases [1-9][0-9]* bad 0$" <<<"$out"; then
		pass
	else
		fail "reference models on the emulation: $out"
	fi
else
	echo "SKIP: no build/ref (tools/ref) or venv for the reference models"
	ts=$((ts + 1))
fi

# Never by accident: an emulated plugin beside the executable is refused
# even where a driver library loads (a stub libcuda.so.1 here).
if [ -x "$cli" ] && [ -f "$model" ] && command -v cc >/dev/null; then
	mkdir -p $tmp/bin $tmp/lib
	cp "$cli" $tmp/bin/expertcache
	cp "$plugin" $tmp/bin/libexpertcache_cuda.so
	echo 'int ec_stub_libcuda;' >$tmp/stub.c
	if cc -shared -fPIC -o $tmp/lib/libcuda.so.1 $tmp/stub.c; then
		err=$(env -u EC_CUDA_LIB LD_LIBRARY_PATH=$tmp/lib \
			$tmp/bin/expertcache logits -m $model --tokens 1 \
			-o $tmp/auto.npy --backend auto 2>&1 >/dev/null)
		rc=$?
		if [ $rc -eq 0 ] && grep -q "loaded only when EC_CUDA_LIB" \
			<<<"$err" && grep -q "using the CPU backend" <<<"$err"
		then
			pass
		else
			fail "emulated plugin beside the CLI: exit $rc: $err"
		fi
	else
		fail "cannot build a stub libcuda.so.1"
	fi
else
	echo "SKIP: no CLI, model or C compiler for the loader check"
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
