#!/usr/bin/env bash
# Tokenizer conformance: `expertcache tokenize` must give the ids Hugging Face
# `tokenizers` gives (Qwen3 tokenizer.json, add_special_tokens=False) on all
# HumanEval prompts, a multilingual sample, random mixtures and a sweep of
# every assigned code point, loaded from tokenizer.json and from GGUF
# metadata; decode(encode(x)) must give NFC(x) back; and the 164 HumanEval
# prompts must encode in well under a second.
set -u
cd "$(dirname "$0")/../.."
py=build/venv/bin/python
cli=build/san/expertcache
[ -x "$cli" ] || cli=build/expertcache
out=build/tokenizer-test
ref=tests/tokenizer/reference_ids.py

die() {
	echo "FAIL: $*"
	echo "0 passed, 1 failed"
	exit 1
}

[ -x "$py" ] || die "no Python venv at $py (run 'make venv')"
"$py" -c 'import tokenizers, gguf' 2>/dev/null ||
	die "$py lacks the tokenizers/gguf packages (run 'make venv')"
[ -x "$cli" ] || die "no CLI at build/san/expertcache or build/expertcache"
mkdir -p "$out"
gunzip -c tests/fixtures/qwen3-tokenizer/tokenizer.json.gz \
	>"$out/tokenizer.json" || die "cannot unpack the tokenizer fixture"
"$py" "$ref" cases --tokenizer "$out/tokenizer.json" \
	--humaneval tests/fixtures/humaneval/HumanEval.jsonl.gz \
	--multilingual tests/fixtures/multilingual.txt --out "$out" ||
	die "reference generation failed"

pass=0 fail=0
# manifest: label, loader option, tokenizer file, file prefix
while IFS=$'\t' read -r label opt file base; do
	"$cli" tokenize "$opt" "$file" -v --jsonl "$base.cases.jsonl" \
		>"$base.out" 2>"$base.err" ||
		{ echo "FAIL $label: CLI exited $?:"; tail -n5 "$base.err"; }
	line=$("$py" "$ref" compare --label "$label" \
		--expected "$base.expected.jsonl" --actual "$base.out" |
		tee /dev/stderr | tail -n1)
	p=$(grep -oE '[0-9]+ passed' <<<"$line" | grep -oE '[0-9]+')
	f=$(grep -oE '[0-9]+ failed' <<<"$line" | grep -oE '[0-9]+')
	pass=$((pass + ${p:-0}))
	fail=$((fail + ${f:-1}))
done <"$out/manifest.txt" 2>&1

# Speed: the 164 HumanEval prompts, as the CLI's own timer measured them.
ms=$(grep -oE 'tokens in [0-9.]+ ms' "$out/json.humaneval.err" |
	grep -oE '[0-9.]+' | head -n1)
if [ -n "$ms" ] && awk -v t="$ms" 'BEGIN { exit !(t < 1000) }'; then
	echo "ok   speed: HumanEval encoded in $ms ms ($cli)"
	pass=$((pass + 1))
else
	echo "FAIL speed: HumanEval encode took ${ms:-?} ms (limit 1000)"
	fail=$((fail + 1))
fi

# Bad input: invalid UTF-8 is an error naming the byte offset, exit 1.
msg=$(printf 'ab\xffcd' | "$cli" tokenize --tokenizer "$out/tokenizer.json" \
	-f - 2>&1 >/dev/null)
rc=$?
if [ $rc -eq 1 ] && grep -q 'offset 2' <<<"$msg"; then
	pass=$((pass + 1))
else
	echo "FAIL invalid UTF-8: exit $rc, message: $msg"
	fail=$((fail + 1))
fi

echo "$pass passed, $fail failed"
[ $fail -eq 0 ]
