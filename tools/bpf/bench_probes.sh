#!/usr/bin/env bash
# Decode speed with the BPF probes attached vs detached, side by side:
# alternating runs of the same command, traced and untraced, medians and
# their ratio.  Needs root.  Usage:
#   tools/bpf/bench_probes.sh [MODEL] [ROUNDS] [DECODE_TOKENS]
# Two configurations: `expertcache bench` (weights from the file mapping:
# route_batch fires once per layer and token) and bpf_workload with every
# expert cached (route_batch plus a hit probe per routed expert).
set -eu
cd "$(dirname "$0")/../.."
MODEL=${1:-$(ls models/*.gguf | head -n1)}
ROUNDS=${2:-7}
NDEC=${3:-256}
CLI=build/expertcache
WL=build/tests/tools/bpf_workload
PY=build/venv/bin/python
[ -x "$PY" ] || PY=python3
[ "$(id -u)" -eq 0 ] || { echo "needs root" >&2; exit 1; }

decode_rate() {	# reads JSON lines on stdin, prints decode_tok_per_s
	grep '^{' | "$PY" -c 'import json,sys; print(json.loads(sys.stdin.readline())["decode_tok_per_s"])'
}

run_cfg() {	# name cmd...
	local name=$1; shift
	local det=() att=() r a b
	for r in $(seq "$ROUNDS"); do
		if [ $((r % 2)) -eq 1 ]; then
			a=$("$@" | decode_rate)
			b=$("$CLI" trace --no-block -- "$@" 2>/dev/null | decode_rate)
		else
			b=$("$CLI" trace --no-block -- "$@" 2>/dev/null | decode_rate)
			a=$("$@" | decode_rate)
		fi
		det+=("$a"); att+=("$b")
		printf '  %-26s round %d: detached %8.1f tok/s, attached %8.1f tok/s\n' \
			"$name" "$r" "$a" "$b"
	done
	"$PY" - "$name" "${det[*]}" "${att[*]}" <<'EOF'
import statistics, sys
name, d, a = sys.argv[1], list(map(float, sys.argv[2].split())), \
    list(map(float, sys.argv[3].split()))
md, ma = statistics.median(d), statistics.median(a)
print("%s: median detached %.1f tok/s, attached %.1f tok/s, ratio %.3f"
      % (name, md, ma, ma / md))
EOF
}

echo "# $(date -u +%Y-%m-%dT%H:%MZ) $(uname -r) $(nproc) cpus, model $MODEL"
run_cfg "bench (mmap weights)" "$CLI" bench -m "$MODEL" -t 1 -p 16 -n "$NDEC" --json
run_cfg "cache, all experts hit" "$WL" "$MODEL" --slots 100000 -p 16 -n "$NDEC"
