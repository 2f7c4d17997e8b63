#!/usr/bin/env bash
# Decode speed with the BPF probes attached vs detached, side by side in one
# process: bpf_workload --soak decodes for a while in blocks of 32 tokens and
# labels each block by whether a tracer was attached all through it (the
# route_chunk semaphore); meanwhile this script attaches `expertcache trace
# --pid` and detaches again every WINDOW seconds.  Blocks of the same
# process, interleaved, so machine noise hits both sides alike.  Needs root.
#
#   tools/bpf/bench_probes.sh [MODEL] [SECONDS per config] [WINDOW]
#
# Configurations: weights from the file mapping (what `expertcache run`
# does by default: route_chunk fires once per decoded token); every
# expert in the host-tier cache, traced by default (plus a hit probe per
# expert lookup) and with `trace --light` (hits derived, no hit probe).
# Also prints the cost of one probe firing (a tight loop, attached).
# CPU=N pins the workload to CPU N (taskset); the tracer stays off it (it
# loads, reads and prints while its probes are still attached).
set -eu
cd "$(dirname "$0")/../.."
MODEL=${1:-$(ls models/*.gguf | head -n1)}
SECS=${2:-60}
WIN=${3:-2}
CLI=build/expertcache
WL=build/tests/tools/bpf_workload
PY=build/venv/bin/python
[ -x "$PY" ] || PY=python3
[ "$(id -u)" -eq 0 ] || { echo "needs root" >&2; exit 1; }
PIN=()
[ -n "${CPU:-}" ] && PIN=(taskset -c "$CPU")
TMP=$(mktemp -d)
trap 'rm -rf "$TMP"' EXIT

soak_cfg() {	# name "trace options" workload options...
	local name=$1 topts=$2; shift 2
	"${PIN[@]}" "$WL" "$MODEL" -p 16 -n 256 --soak "$SECS" "$@" \
		>"$TMP/blocks" &
	local wl=$!
	sleep 1
	while kill -0 "$wl" 2>/dev/null; do
		sleep "$WIN"
		"$CLI" trace --pid "$wl" --no-block $topts \
			--duration "$WIN" >/dev/null 2>&1 || true
	done
	wait "$wl" || true
	"$PY" - "$name" "$TMP/blocks" <<'EOF'
import json, statistics, sys
name, path = sys.argv[1], sys.argv[2]
b = [json.loads(l) for l in open(path)]
on = [x["tok_per_s"] for x in b if x["attached"] == 1]
off = [x["tok_per_s"] for x in b if x["attached"] == 0]
if len(on) < 5 or len(off) < 5:
    sys.exit("%s: too few blocks (%d attached, %d detached)"
             % (name, len(on), len(off)))
mon, moff = statistics.median(on), statistics.median(off)
print("%-26s %4d blocks detached: median %7.1f tok/s | %4d attached: "
      "median %7.1f tok/s | ratio %.3f (means: %.3f)"
      % (name, len(off), moff, len(on), mon, mon / moff,
         statistics.mean(on) / statistics.mean(off)))
EOF
}

echo "# $(date -u +%Y-%m-%dT%H:%MZ) $(uname -r), $(nproc) cpus," \
     "$(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //')," \
     "model $MODEL, ${SECS} s per config, ${WIN} s windows"
for o in "" --light; do
	"${PIN[@]}" "$CLI" trace --no-block $o -- "$WL" --probe-loop 300000 \
		2>/dev/null | grep '^{' | sed "s/^/probe cost attached (trace $o): /"
done
"${PIN[@]}" "$WL" --probe-loop 3000000 | sed "s/^/probe cost detached: /"
soak_cfg "mmap weights (run default)" "" --slots 0
soak_cfg "cache, every expert hits" "" --slots 100000
soak_cfg "cache, all hit, --light" "--light" --slots 100000
