#!/usr/bin/env bash
# Reference fidelity: `expertcache logits` on tiny random Qwen3-MoE, Mixtral,
# OLMoE and Qwen2-MoE models (safetensors, sharded, BF16/F16, GGUF F32/F16/
# Q8_0/Q4_K) against Hugging Face transformers, prefill and decode.
# Fixtures come from tools/ref/make_tiny_models.py and are rebuilt when the
# generator is newer than build/ref/.stamp.  See docs/FIDELITY.md.
set -u
cd "$(dirname "$0")/../.."

ref_dir=${EC_REF_DIR:-build/ref}
py=build/venv/bin/python
pass=0 fail=0

die() {
	echo "FAIL: $*"
	echo "0 passed, 1 failed"
	exit 1
}

# A missing venv or CLI is a failure, not a skip: `make test` makes both.
if [ ! -x "$py" ] || ! "$py" -c 'import torch, transformers, gguf' \
	2>/dev/null; then
	die "no reference venv with torch, transformers and gguf at $py" \
	    "(make venv)"
fi
cli=build/san/expertcache
[ -x "$cli" ] || cli=build/expertcache
[ -x "$cli" ] || die "no expertcache CLI in build/san or build (make all)"

stamp=$ref_dir/.stamp
if [ ! -f "$stamp" ] || [ ! -f "$ref_dir/manifest.json" ] ||
	[ -n "$(find tools/ref -name '*.py' -newer "$stamp")" ]; then
	echo "generating fixtures in $ref_dir"
	log=$(mktemp)
	if ! "$py" tools/ref/make_tiny_models.py --out "$ref_dir" -q \
		>"$log" 2>&1; then
		tail -n 30 "$log"
		rm -f "$log"
		die "tools/ref/make_tiny_models.py failed"
	fi
	rm -f "$log"
fi

# One line per case: name, model, tokens, then ref/tol pairs (tab separated)
cases=$("$py" - "$ref_dir/manifest.json" <<'EOF'
import json, os, sys
path = sys.argv[1]
base = os.path.dirname(path)
for c in json.load(open(path))["cases"]:
    refs = []
    for r in c["refs"]:
        refs += [os.path.join(base, r["ref"]), repr(r["tol"])]
    print("\t".join([c["name"], os.path.join(base, c["model"]),
                     c["tokens"]] + refs))
EOF
) || die "cannot read $ref_dir/manifest.json"
[ -n "$cases" ] || die "$ref_dir/manifest.json lists no cases"

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

while IFS=$'\t' read -r name model tokens refs_tols; do
	read -r -a refs <<<"${refs_tols//$'\t'/ }"
	for mode in prefill decode; do
		flag=
		[ "$mode" = decode ] && flag=--decode
		got=$tmp/got.npy
		rm -f "$got"
		if ! timeout 300 "$cli" logits -m "$model" --tokens "$tokens" \
			--out "$got" $flag >"$tmp/log" 2>&1; then
			printf 'FAIL %-28s %-7s expertcache: %s\n' "$name" "$mode" \
				"$(tail -n 1 "$tmp/log")"
			fail=$((fail + 1))
			continue
		fi
		if res=$("$py" tests/ref/compare_logits.py "$got" "${refs[@]}" \
			2>&1); then
			printf 'ok   %-28s %-7s %s\n' "$name" "$mode" "$res"
			pass=$((pass + 1))
		else
			printf 'FAIL %-28s %-7s %s\n' "$name" "$mode" "$res"
			fail=$((fail + 1))
		fi
	done
done <<<"$cases"

echo "$pass passed, $fail failed"
[ "$fail" -eq 0 ]
