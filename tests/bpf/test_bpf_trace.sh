#!/usr/bin/env bash
# BPF probes and tools against real runs (needs root; skips with the reason
# otherwise): `expertcache trace` routed counts == the runtime's own
# counters per (layer, expert), also as `bpftool map dump pinned` prints
# them; cache hit/miss/load/evict/prefetch counts == the cache's; block
# layer bytes of the engine's O_DIRECT reads within 1% of its bytes_read;
# --pid, --cgroup and command targets; detach leaves nothing behind; a
# second trace works; profile --from-bpf; top; the unprivileged message.
set -u
cd "$(dirname "$0")/../.."

pass=0 fail=0 skip=0
ok() { echo "ok   - $*"; pass=$((pass + 1)); }
bad() { echo "FAIL - $*"; fail=$((fail + 1)); }
skp() { echo "skip - $*"; skip=$((skip + 1)); }
check() { local what=$1; shift; if "$@"; then ok "$what"; else bad "$what"; fi; }
finish() {
	echo "$pass passed, $fail failed, $skip skipped"
	[ $fail -eq 0 ] || exit 1
	[ $pass -gt 0 ] || exit 77
	exit 0
}
skip_all() { echo "skip - $*"; echo "0 passed, 0 failed, 1 skipped"; exit 77; }

CLI=build/san/expertcache
[ -x "$CLI" ] || CLI=build/expertcache
WL=build/san/tests/tools/bpf_workload
[ -x "$WL" ] || WL=build/tests/tools/bpf_workload
PY=build/venv/bin/python
[ -x "$PY" ] || PY=python3
PIN=/sys/fs/bpf/expertcache
BPFTOOL=$(command -v bpftool || echo /usr/sbin/bpftool)
export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1}

[ -x "$CLI" ] || skip_all "no $CLI: run make first"
[ -x "$WL" ] || skip_all "no $WL: run make first"
[ "$(id -u)" -eq 0 ] || skip_all "BPF tests need root (sudo make test)"
[ -r /sys/kernel/btf/vmlinux ] || skip_all "kernel without BTF (/sys/kernel/btf/vmlinux)"
mountpoint -q /sys/fs/bpf || mount -t bpf bpf /sys/fs/bpf ||
	skip_all "cannot mount bpffs on /sys/fs/bpf"
[ -d /sys/kernel/tracing/events ] || mount -t tracefs tracefs /sys/kernel/tracing 2>/dev/null
if "$CLI" trace --duration 0.1 --no-block 2>&1 | grep -q "built without BPF"; then
	skip_all "$CLI was built without BPF support (clang/bpftool/libbpf-dev missing)"
fi

MODEL=$(ls models/*.gguf 2>/dev/null | head -n1)
[ -n "$MODEL" ] || MODEL=tests/fuzz/corpus/gguf/tiny_qwen3moe.gguf
TMP=$(mktemp -d /tmp/ec-bpf-test.XXXXXX)
bgpids=()
cleanup() {
	for p in "${bgpids[@]}"; do kill "$p" 2>/dev/null; done
	[ -n "${CG:-}" ] && rmdir "$CG" 2>/dev/null
	rm -rf "$TMP"
}
trap cleanup EXIT
"$CLI" trace --unpin >/dev/null 2>&1
echo "# model $MODEL, cli $CLI"

# Compare one (n_layer, n_expert) grid of a trace --json with a runtime JSON.
same_grid() {	# trace.json field runtime.json field
	"$PY" - "$@" <<'EOF'
import json, sys
t = json.load(open(sys.argv[1]))[sys.argv[2]]
r = json.load(open(sys.argv[3]))[sys.argv[4]]
if t != r:
    print("    bpf    ", t)
    print("    runtime", r)
    sys.exit(1)
EOF
}

# A dump of expert_counts as bpftool prints it (BTF keys) == runtime counts.
dump_matches() {	# dump.txt runtime.json
	"$PY" - "$@" <<'EOF'
import json, sys
entries = json.load(open(sys.argv[1]))
r = json.load(open(sys.argv[2]))
grid = [[0] * r["n_expert"] for _ in range(r["n_layer"])]
for e in entries:
    k = e["key"]
    if set(k) != {"layer", "expert"}:
        sys.exit("key is not {layer, expert}: %r" % k)
    grid[k["layer"]][k["expert"]] = e["value"]["routed"]
if grid != r["routed_counts"]:
    print("    dump   ", grid)
    print("    runtime", r["routed_counts"])
    sys.exit(1)
EOF
}

nothing_left() {	# no pinned maps, no programs of ours loaded
	[ ! -e "$PIN/expert_counts" ] && [ ! -e "$PIN/block_latency" ] &&
		! "$BPFTOOL" prog show 2>/dev/null | grep -qE 'ec_route_chunk|ec_rq_issue'
}

# 1. Routed counts of a real `expertcache bench` run, pinned and dumped.
"$CLI" trace --pin --json "$TMP/t1.json" -- "$CLI" bench -m "$MODEL" \
	-p 24 -n 40 --reps 2 --stats-json "$TMP/s1.json" >"$TMP/out1" 2>&1
check "trace -- bench: exits 0" [ $? -eq 0 ]
check "routed counts == runtime counters per (layer, expert)" \
	same_grid "$TMP/t1.json" routed "$TMP/s1.json" routed_counts
"$BPFTOOL" map dump pinned "$PIN/expert_counts" >"$TMP/dump1.txt" 2>&1
check "bpftool map dump pinned expert_counts: {layer, expert} keys, same counts" \
	dump_matches "$TMP/dump1.txt" "$TMP/s1.json"
check "tokens counted == tokens evaluated" "$PY" -c "
import json, sys
t = json.load(open('$TMP/t1.json')); s = json.load(open('$TMP/s1.json'))
sys.exit(t['n_tokens'] != s['routed_tokens'] or t['dropped'] != 0)"
"$CLI" profile --from-bpf --pinned --out "$TMP/p1.json" >"$TMP/pout1" 2>&1 ||
	sed 's/^/    | /' "$TMP/pout1"
check "profile --from-bpf --pinned == runtime counters" "$PY" -c "
import json, sys
p = json.load(open('$TMP/p1.json')); s = json.load(open('$TMP/s1.json'))
sys.exit(p['format'] != 'expertcache-profile' or
         p['counts'] != s['routed_counts'] or
         p['n_tokens'] != s['routed_tokens'])"
"$CLI" trace --unpin >/dev/null 2>&1
check "trace --unpin removes the pinned maps" nothing_left

# 1a. A real `expertcache run` of the bundled model through the expert
# cache (O_DIRECT reads, prefetch): everything == its own --stats-json.
"$CLI" trace --pin --json "$TMP/ta.json" -- "$CLI" run -m "$MODEL" \
	-p 'def fibonacci(n):' -n 32 --ram-budget 25% --prefetch 4 \
	--stats-json "$TMP/sa.json" >"$TMP/outa" 2>&1
check "trace -- run --ram-budget: exits 0" [ $? -eq 0 ]
check "run: routed counts == its --stats-json per (layer, expert)" \
	same_grid "$TMP/ta.json" routed "$TMP/sa.json" routed_counts
check "run: hits, misses, bytes, prefetches == its --stats-json" \
	"$PY" - "$TMP/ta.json" "$TMP/sa.json" <<'EOF'
import json, sys
t = json.load(open(sys.argv[1])); r = json.load(open(sys.argv[2]))
tot = lambda f: sum(map(sum, t[f]))
got = (tot("hits"), tot("misses"), tot("load_bytes"), tot("loads"),
       tot("prefetch_issued"), tot("prefetch_used"))
want = (r["expert_hits"], r["expert_misses"], r["bytes_read"], r["loads"],
        r["prefetch_issued"], r["prefetch_used"])
print("    # hits, misses, bytes, loads, prefetch issued/used:", got)
sys.exit(got != want or not r["prefetch_issued"])
EOF
check "run: block-layer plain-read bytes within 1% of its bytes_read" \
	"$PY" - "$TMP/ta.json" "$TMP/sa.json" <<'EOF'
import json, sys
t = json.load(open(sys.argv[1])); r = json.load(open(sys.argv[2]))
blk = sum(d["direct_bytes"] for d in t["block"]); eng = r["bytes_read"]
print("    # block %d, engine %d: %+.3f%%" % (blk, eng, 100.0 * (blk - eng) / eng))
sys.exit(abs(blk - eng) > 0.01 * eng)
EOF
"$CLI" profile --from-stats "$TMP/sa.json" --out "$TMP/pa1.json" >/dev/null 2>&1
"$CLI" profile --from-bpf --pinned --out "$TMP/pa2.json" >/dev/null 2>&1
check "profile --from-stats (no BPF) == profile --from-bpf: counts, tokens" \
	"$PY" -c "
import json, sys
a = json.load(open('$TMP/pa1.json')); b = json.load(open('$TMP/pa2.json'))
sys.exit(a['counts'] != b['counts'] or a['n_tokens'] != b['n_tokens'])"
"$CLI" trace --unpin >/dev/null 2>&1

# 1c. run --on-miss substitute: the substitute probe, routing after it.
"$CLI" trace --no-block --json "$TMP/tc.json" -- "$CLI" run -m "$MODEL" \
	-p 'def f(x):' -n 16 --ram-budget 25% --on-miss substitute \
	--stats-json "$TMP/sc.json" >/dev/null 2>&1
check "run --on-miss substitute: substitutions and routing == --stats-json" \
	"$PY" -c "
import json, sys
t = json.load(open('$TMP/tc.json')); s = json.load(open('$TMP/sc.json'))
n = sum(map(sum, t['substituted']))
print('    # substitutions', n)
sys.exit(n != s['substitutions'] or not n or t['routed'] != s['routed_counts'])"

# 1b. A prefill chunk of 600 tokens: 6 x 2400 routing decisions in one
# probe (the BPF side copies them in pieces of 2048).
"$CLI" trace --no-block --json "$TMP/t1b.json" -- "$WL" "$MODEL" --slots 0 \
	-p 600 -n 4 --batch 600 >"$TMP/o1b" 2>&1
grep '^{' "$TMP/o1b" >"$TMP/r1b.json"
check "one probe with 2400 pairs: routed == runtime" \
	same_grid "$TMP/t1b.json" routed "$TMP/r1b.json" routed
check "... and one probe for the whole prefill chunk (5 chunks in all)" "$PY" -c "
import json, sys
t = json.load(open('$TMP/t1b.json'))
sys.exit(t['route_chunks'] != 5)"

# 2. Without --pin nothing stays; a second trace works and starts from zero.
"$CLI" trace --json "$TMP/t2.json" -- "$CLI" bench -m "$MODEL" -p 8 -n 16 \
	--stats-json "$TMP/s2.json" >"$TMP/out2" 2>&1
check "second trace: exits 0" [ $? -eq 0 ]
check "second trace: counts == runtime (nothing carried over)" \
	same_grid "$TMP/t2.json" routed "$TMP/s2.json" routed_counts
check "detach leaves no pinned maps and no programs" nothing_left

# 3. --pid on a running process, through the expert cache (O_DIRECT).
"$WL" "$MODEL" --slots 24 -p 16 -n 48 --prefetch --wait >"$TMP/w3.json" &
wl=$!
bgpids+=($wl)
for _ in $(seq 100); do grep -q ready "$TMP/w3.json" && break; sleep 0.1; done
"$CLI" trace --pid "$wl" --json "$TMP/t3.json" >"$TMP/out3" 2>"$TMP/err3" &
tr=$!
bgpids+=($tr)
for _ in $(seq 200); do grep -q probing "$TMP/err3" && break; sleep 0.1; done
kill -USR1 "$wl"
wait "$wl"
wait "$tr"
check "trace --pid: ends with the process, exits 0" [ $? -eq 0 ]
sed -n 2p "$TMP/w3.json" >"$TMP/r3.json"
check "--pid: routed == runtime" same_grid "$TMP/t3.json" routed "$TMP/r3.json" routed
check "--pid: hits, misses, loads, evictions, prefetches, bytes == the cache's" \
	"$PY" - "$TMP/t3.json" "$TMP/r3.json" <<'EOF'
import json, sys
t = json.load(open(sys.argv[1])); r = json.load(open(sys.argv[2]))
tot = lambda f: sum(map(sum, t[f]))
got = {"hits": tot("hits"), "misses": tot("misses"), "loads": tot("loads"),
       "evictions": tot("evictions"), "bytes_read": tot("load_bytes"),
       "prefetch_issued": tot("prefetch_issued"),
       "prefetch_used": tot("prefetch_used")}
want = {k: r[k] for k in got}
host = t["tiers"]["host"]
if got != want or host["bytes"] != r["bytes_read"] or host["loads"] != r["loads"]:
    print("    bpf    ", got, host["bytes"])
    print("    runtime", want)
    sys.exit(1)
if not r["loads"] or not r["hits"] or not r["evictions"]:
    sys.exit("workload did not exercise the cache")
EOF
if grep -q '"direct": true' "$TMP/r3.json"; then
	check "block layer: plain-read bytes within 1% of the engine's bytes_read" \
		"$PY" - "$TMP/t3.json" "$TMP/r3.json" <<'EOF'
import json, sys
t = json.load(open(sys.argv[1])); r = json.load(open(sys.argv[2]))
blk = sum(d["direct_bytes"] for d in t["block"])
eng = r["bytes_read"]
print("    # block %d bytes (all bios %d, requests %d), engine %d: %+.3f%%"
      % (blk, sum(d["bio_bytes"] for d in t["block"]),
         sum(d["bytes"] for d in t["block"]), eng, 100.0 * (blk - eng) / eng))
sys.exit(abs(blk - eng) > 0.01 * eng)
EOF
	check "io_uring: read bytes == the engine's bytes_read" \
		"$PY" - "$TMP/t3.json" "$TMP/r3.json" <<'EOF'
import json, sys
t = json.load(open(sys.argv[1])); r = json.load(open(sys.argv[2]))
rd = sum(o["bytes"] for o in t["io_uring"] if o["name"] in ("READ", "READ_FIXED"))
print("    # io_uring reads %d bytes, engine %d" % (rd, r["bytes_read"]))
sys.exit(rd != r["bytes_read"])
EOF
else
	skp "block layer bytes: the model's file system has no O_DIRECT"
fi

# 3b. --light: no hit probe; hits derived as lookups - misses, still exact.
"$CLI" trace --light --no-block --json "$TMP/t3b.json" -- "$WL" "$MODEL" \
	--slots 24 -p 16 -n 32 >"$TMP/o3b" 2>"$TMP/err3b"
check "--light: exits 0, hit probe not attached" \
	test $? -eq 0 -a -n "$(grep -o '(route_chunk miss ' "$TMP/err3b")"
grep '^{' "$TMP/o3b" >"$TMP/r3b.json"
check "--light: derived hits and misses == the cache's" \
	"$PY" - "$TMP/t3b.json" "$TMP/r3b.json" <<'EOF'
import json, sys
t = json.load(open(sys.argv[1])); r = json.load(open(sys.argv[2]))
got = (sum(map(sum, t["hits"])), sum(map(sum, t["misses"])), t["hits_derived"])
if got != (r["hits"], r["misses"], True) or not r["hits"]:
    print("    bpf", got, "runtime", r["hits"], r["misses"])
    sys.exit(1)
EOF

# 4. --cgroup: only the process inside the cgroup is counted.
CG2=$(awk '$3 == "cgroup2" { print $2; exit }' /proc/mounts)
if [ -n "$CG2" ] && mkdir "$CG2/ec-bpf-test-$$" 2>/dev/null; then
	CG=$CG2/ec-bpf-test-$$
	"$CLI" trace --cgroup "$CG" --binary "$WL" --no-block \
		--json "$TMP/t4.json" >/dev/null 2>"$TMP/err4" &
	tr=$!
	bgpids+=($tr)
	for _ in $(seq 200); do grep -q probing "$TMP/err4" && break; sleep 0.1; done
	"$WL" "$MODEL" --slots 0 -p 8 -n 8 >/dev/null	# outside: not counted
	sh -c "echo \$\$ >$CG/cgroup.procs && exec $WL $MODEL --slots 0 -p 4 -n 12" \
		>"$TMP/r4.json"
	kill -INT "$tr"
	wait "$tr"
	check "--cgroup: trace exits 0 on Ctrl-C" [ $? -eq 0 ]
	check "--cgroup: counts only the process in the cgroup" \
		same_grid "$TMP/t4.json" routed "$TMP/r4.json" routed
else
	skp "--cgroup: no writable cgroup v2 hierarchy"
fi

# 5. top: frames with tokens/s and per-layer hot experts.
"$CLI" top --count 2 --interval 0.5 --no-clear -- "$CLI" bench -m "$MODEL" \
	-p 8 -n 100000 >"$TMP/top.txt" 2>&1
check "top: two frames with tokens/s and the layers" \
	[ "$(grep -c 'tokens/s' "$TMP/top.txt")" -eq 2 -a \
	  "$(grep -cE '^ +0  e[0-9]+' "$TMP/top.txt")" -eq 2 ]
check "top: non-zero token rate while the model runs" \
	grep -qE '^[1-9][0-9.]* tokens/s' "$TMP/top.txt"
check "top: leaves nothing behind" nothing_left

# 6. Without privileges: a clear reason and the fix.
if command -v setpriv >/dev/null; then
	setpriv --reuid=65534 --regid=65534 --clear-groups --inh-caps=-all \
		"$(realpath "$CLI")" trace --duration 1 >"$TMP/np.txt" 2>&1
	rc=$?
	check "unprivileged: fails, says it needs root and how to fix it" \
		test $rc -ne 0 -a "$(grep -c 'needs root' "$TMP/np.txt")" -ge 1 \
		-a "$(grep -c 'sudo' "$TMP/np.txt")" -ge 1
	sed 's/^/    # /' "$TMP/np.txt"
else
	skp "unprivileged message: no setpriv"
fi

finish
