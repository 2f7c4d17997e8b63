#!/usr/bin/env bash
# `expertcache layout` end to end on the bundled model: trace -> profile ->
# layout; `run --ram-budget 25%` with and without `--layout` generates the
# same tokens, with one read request per expert load through the layout
# and fewer bytes per load; `bench` takes the same options; layouts of another model, corrupt or truncated
# ones are refused with messages naming the file; bad options are usage
# errors.
set -u
cd "$(dirname "$0")/../.."

cli=build/san/expertcache
[ -x "$cli" ] || cli=build/expertcache
pass=0 fail=0
ok() { pass=$((pass + 1)); }
bad() { fail=$((fail + 1)); echo "FAIL: $*" >&2; }
check() { local what=$1; shift; if "$@"; then ok; else bad "$what"; fi; }

model=${EXPERTCACHE_MODEL:-$(ls models/*.gguf 2>/dev/null | head -n 1)}
other=tests/fuzz/corpus/gguf/tiny_qwen3moe.gguf
if [ ! -x "$cli" ] || [ -z "$model" ] || [ ! -r "$model" ]; then
	echo "SKIP: needs the CLI (make) and a bundled model in models/" >&2
	echo "0 passed, 0 failed, 1 skipped"
	exit 77
fi
dir=build/test-data/layout-$$
mkdir -p "$dir"
trap 'rm -rf "$dir"' EXIT
prompt='def fibonacci(n):'

"$cli" run -m "$model" -p "$prompt" -n 24 --record-trace "$dir/t.jsonl" \
	>"$dir/ref.txt" 2>/dev/null
check "run --record-trace" test -s "$dir/t.jsonl"
"$cli" profile --from-trace "$dir/t.jsonl" --out "$dir/p.json" >/dev/null
check "profile" test -s "$dir/p.json"

out=$("$cli" layout -m "$model" --profile "$dir/p.json" \
	--trace "$dir/t.jsonl" --out "$dir/m.layout")
check "layout exits 0" test $? -eq 0
check "layout reports the co-activation span ($out)" \
	grep -q "co-activation: a token's experts of one layer span" <<<"$out"
check "no temporary file left" test ! -e "$dir/m.layout.tmp"

for mode in plain layout; do
	extra=()
	[ $mode = layout ] && extra=(--layout "$dir/m.layout")
	"$cli" run -m "$model" -p "$prompt" -n 24 --ram-budget 25% \
		"${extra[@]}" --stats-json "$dir/$mode.json" \
		>"$dir/$mode.txt" 2>"$dir/$mode.err"
	check "run --ram-budget 25% ($mode) exits 0" test $? -eq 0
	check "same greedy tokens as without a cache ($mode)" \
		cmp -s "$dir/ref.txt" "$dir/$mode.txt"
done
check "stderr names the layout" grep -q "experts read from layout" \
	"$dir/layout.err"
check "read requests and bytes per load" python3 - "$dir" <<'EOF'
import json, sys
d = sys.argv[1]
p = json.load(open(d + "/plain.json"))
l = json.load(open(d + "/layout.json"))
for s in (p, l):
    assert s["loads"] > 0 and s["expert_misses"] > 0, s
# one aligned extent per expert (experts < 1 MiB) vs gate, up, down apart
assert l["read_requests"] == l["loads"], l
assert p["read_requests"] >= 3 * p["loads"], p
assert l["bytes_read"] / l["loads"] < p["bytes_read"] / p["loads"], (l, p)
EOF

# bench takes the same storage options and reports the cache in --json
out=$("$cli" bench -m "$model" -p 2 -n 4 -t 1 --json --ram-budget 25% \
	--layout "$dir/m.layout" 2>/dev/null)
check "bench --ram-budget --layout: storage stats in --json" \
	python3 - "$out" <<'EOF'
import json, sys
s = json.loads(sys.argv[1])["storage"]
assert s["loads"] > 0 and s["read_requests"] == s["loads"], s
assert 0 <= s["hit_rate"] < 1 and s["cache_slots"] > 0, s
EOF

# --layout alone: a cache of every expert, still exact
"$cli" run -m "$model" -p "$prompt" -n 24 --layout "$dir/m.layout" \
	>"$dir/full.txt" 2>/dev/null
check "--layout without --ram-budget" cmp -s "$dir/ref.txt" "$dir/full.txt"

# the same model with 4 KiB appended is another file: its layout is refused
cp "$model" "$dir/grown.gguf"
head -c 4096 /dev/zero >>"$dir/grown.gguf"
err=$("$cli" run -m "$dir/grown.gguf" -p "$prompt" -n 2 --ram-budget 25% \
	--layout "$dir/m.layout" 2>&1 >/dev/null)
rc=$?
check "another model's layout: exit 1" test $rc -eq 1
check "another model's layout: says so ($err)" \
	grep -q "m.layout: made from another model" <<<"$err"
rm -f "$dir/grown.gguf"

cp "$dir/m.layout" "$dir/cut.layout"
truncate -s 1M "$dir/cut.layout"
err=$("$cli" run -m "$model" -p "$prompt" -n 2 --ram-budget 25% \
	--layout "$dir/cut.layout" 2>&1 >/dev/null)
check "truncated layout refused ($err)" grep -q "cut.layout: .*truncated" \
	<<<"$err"

cp "$dir/m.layout" "$dir/flip.layout"
printf '\x01' | dd of="$dir/flip.layout" bs=1 seek=200 conv=notrunc \
	status=none
err=$("$cli" run -m "$model" -p "$prompt" -n 2 --ram-budget 25% \
	--layout "$dir/flip.layout" 2>&1 >/dev/null)
check "corrupt index refused ($err)" grep -q "flip.layout: index checksum" \
	<<<"$err"

err=$("$cli" run -m "$model" -p "$prompt" -n 2 --ram-budget 25% \
	--layout "$dir/t.jsonl" 2>&1 >/dev/null)
check "not a layout file ($err)" grep -q "not an expertcache layout" \
	<<<"$err"

"$cli" layout -m "$model" --profile "$dir/p.json" >/dev/null 2>&1
check "layout without --out: usage error" test $? -eq 2
"$cli" layout -m "$model" --out "$dir/x.layout" >/dev/null 2>&1
check "layout without a profile or trace: usage error" test $? -eq 2
"$cli" layout -m "$model" --profile "$dir/p.json" --hot 150 \
	--out "$dir/x.layout" >/dev/null 2>&1
check "--hot 150: usage error" test $? -eq 2
if [ -r "$other" ]; then
	err=$("$cli" layout -m "$other" --profile "$dir/p.json" \
		--out "$dir/x.layout" 2>&1)
	check "profile of another shape refused ($err)" \
		grep -q "the profile is for" <<<"$err"
fi
check "nothing written on errors" test ! -e "$dir/x.layout"

echo "$pass passed, $fail failed"
[ "$fail" -eq 0 ]
