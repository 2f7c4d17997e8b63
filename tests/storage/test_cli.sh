#!/usr/bin/env bash
# The storage commands end to end: replay (exact hit counts on a hand-made
# trace, text and JSON), profile -> plan, bench-io, and clear errors for bad
# input.  Needs the CLI (build/san/expertcache or build/expertcache).
set -u
cd "$(dirname "$0")/../.."

cli=build/san/expertcache
[ -x "$cli" ] || cli=build/expertcache
pass=0 fail=0
ok() { pass=$((pass + 1)); }
bad() { fail=$((fail + 1)); echo "FAIL: $*" >&2; }
check() { local what=$1; shift; if "$@"; then ok; else bad "$what"; fi; }

if [ ! -x "$cli" ]; then
	echo "SKIP: no CLI built (make)" >&2
	echo "0 passed, 0 failed, 1 skipped"
	exit 77
fi
dir=build/test-data/cli-$$
mkdir -p "$dir"
trap 'rm -rf "$dir"' EXIT

# "AAAABCBC" on layer 0 (one expert per token): with 2 slots LRU hits 5,
# LFU-DA 3, Belady 5 (see tests/unit/test_policies.c); layer 1 repeats
# expert 7 eight times: 7 hits for every policy.
t=$dir/t.jsonl
i=0
for e in 0 0 0 0 1 2 1 2; do
	echo "{\"problem_id\": 1, \"token_idx\": $i, \"layer\": 0, \"experts\": [$e]}"
	echo "{\"problem_id\": 1, \"token_idx\": $i, \"layer\": 1, \"experts\": [7], \"gating_probs\": [1.0]}"
	i=$((i + 1))
done >"$t"

out=$("$cli" replay --trace "$t" --slots-per-layer 2 --json)
check "replay --json exits 0" test $? -eq 0
check "replay JSON exact hits" python3 - "$out" <<'EOF'
import json, sys
r = json.loads(sys.argv[1])
p = r["policies"]
assert r["n_layer"] == 2 and r["n_expert"] == 8 and r["tokens"] == 8, r
assert p["lru"]["hits"] == 12 and p["lru"]["misses"] == 4, p["lru"]
assert p["lfu"]["hits"] == 10, p["lfu"]
assert p["belady"]["hits"] == 12, p["belady"]
assert p["lru"]["per_layer"][0]["hits"] == 5
assert p["lru"]["per_layer"][1]["hits"] == 7
assert abs(p["lru"]["hit_rate"] - 0.75) < 1e-12
for name in p:
    assert p["belady"]["hits"] >= p[name]["hits"], name
EOF

txt=$("$cli" replay --trace "$t" --capacity 25% --policy lru --warmup-tokens 4)
# counted from token 4: experts 1 and 2 of layer 0 miss once each
check "replay text: 4 slots after warm-up, 6 hits 2 misses" \
	grep -qE '^lru +75\.00% +6 +2$' <<<"$txt"
check "replay text names the cache" grep -q "cache: 4 slots" <<<"$txt"

"$cli" replay --trace "$t" >/dev/null 2>&1
check "replay without a capacity is a usage error" test $? -eq 2
"$cli" replay --trace "$t" --slots-per-layer 2 --policy fifo >/dev/null 2>&1
check "unknown policy is a usage error" test $? -eq 2

printf '{"token_idx": 0, "layer": 0, "experts": [1]}\n{"token_idx": 1, "layer": 0, "experts": "x"}\n' \
	>"$dir/bad.jsonl"
err=$("$cli" replay --trace "$dir/bad.jsonl" --slots-per-layer 1 2>&1)
rc=$?
check "malformed trace: exit 1" test $rc -eq 1
check "malformed trace: names line and field ($err)" \
	grep -q "bad.jsonl:2: 'experts'" <<<"$err"

"$cli" profile --from-trace "$t" --out "$dir/p.json" >/dev/null
check "profile exits 0" test $? -eq 0
check "profile counts" python3 - "$dir/p.json" <<'EOF'
import json, sys
p = json.load(open(sys.argv[1]))
assert p["format"] == "expertcache-profile" and p["version"] == 1
assert p["counts"][0][:3] == [4, 2, 2] and p["counts"][1][7] == 8, p["counts"]
assert p["last_seen"][0][0] == 3 and p["last_seen"][1][7] == 7
assert p["n_access"] == 16 and p["n_tokens"] == 8
EOF

# 3 experts of 1 MiB fit the 3M RAM budget; VRAM 1M takes the hottest per byte
"$cli" plan --profile "$dir/p.json" --vram-budget 1M --ram-budget 3M \
	--expert-bytes 1M --out "$dir/plan.json" >/dev/null
check "plan exits 0" test $? -eq 0
check "plan contents" python3 - "$dir/plan.json" <<'EOF'
import json, sys
p = json.load(open(sys.argv[1]))
assert p["vram"] == [[1, 7]], p["vram"]
assert p["ram"] == [[0, 0], [0, 1], [0, 2]], p["ram"]
assert p["ram_bytes"] == 3 << 20 and p["vram_bytes"] == 1 << 20
EOF
"$cli" plan --profile "$dir/p.json" --ram-budget 3M --out "$dir/x.json" \
	>/dev/null 2>&1
check "plan without sizes is a usage error" test $? -eq 2
"$cli" plan --profile "$dir/plan.json" --ram-budget 3M --expert-bytes 1M \
	--out "$dir/x.json" >/dev/null 2>&1
check "a plan is not a profile" test $? -eq 1

head -c $((8 << 20)) /dev/urandom >"$dir/io.bin"
out=$("$cli" bench-io "$dir/io.bin" --qd 4 --bs 64K --seconds 1 --json)
check "bench-io exits 0" test $? -eq 0
check "bench-io reports throughput" python3 - "$out" <<'EOF'
import json, sys
r = json.loads(sys.argv[1])
assert r["bytes"] > 0 and r["gbps"] > 0 and r["iops"] > 0, r
assert r["bs"] == 65536 and r["qd"] == 4
EOF
"$cli" bench-io "$dir/io.bin" --bs 1000 >/dev/null 2>&1
check "unaligned --bs is a usage error" test $? -eq 2

echo "$pass passed, $fail failed"
[ "$fail" -eq 0 ]
