#!/usr/bin/env bash
# The bundled model end to end: logits vs transformers on 64 tokens of a
# HumanEval prompt (prefill and decode), deterministic greedy generation,
# seeded sampling, and clear errors (no crash, ASan build) on bad input.
set -u
cd "$(dirname "$0")/../.."
cli=build/san/expertcache
[ -x "$cli" ] || cli=build/expertcache
py=build/venv/bin/python
pass=0 fail=0
ok() { pass=$((pass + 1)); echo "ok   - $*"; }
bad() { fail=$((fail + 1)); echo "FAIL - $*"; }
check() { local what=$1; shift; if "$@"; then ok "$what"; else bad "$what"; fi; }

model=$(ls models/*.gguf 2>/dev/null | head -n1)
if [ -z "$model" ] || [ ! -x "$cli" ] || [ ! -x "$py" ]; then
	bad "need models/*.gguf ($model), $cli and $py (make test builds them)"
	echo "$pass passed, $fail failed"; exit 1
fi
echo "# model $model, cli $cli"
tmp=$(mktemp -d build/test-run.XXXXXX)
trap 'rm -rf "$tmp"' EXIT

# 1. fidelity on the first HumanEval prompt
gzip -dc tests/fixtures/humaneval/HumanEval.jsonl.gz | head -n1 |
	$py -c 'import json,sys; sys.stdout.write(json.loads(sys.stdin.read())["prompt"])' >"$tmp/prompt.py"
"$cli" tokenize -m "$model" -f "$tmp/prompt.py" >"$tmp/ids.all" 2>"$tmp/err"
check "tokenize the HumanEval prompt" test -s "$tmp/ids.all"
tr ',' '\n' <"$tmp/ids.all" | head -n 64 | paste -sd, >"$tmp/ids"
n=$(tr ',' '\n' <"$tmp/ids" | wc -l)
check "prompt has 64 tokens (got $n)" test "$n" -eq 64
$py tests/run/bundled_ref.py "$model" "$tmp/ids" "$tmp/ref.npy" >"$tmp/ref.log" 2>&1 ||
	{ tail -n 20 "$tmp/ref.log"; bad "transformers reference"; }
for mode in prefill decode; do
	flag=; [ $mode = decode ] && flag=--decode
	if "$cli" logits -m "$model" --backend cpu --tokens "$(cat "$tmp/ids")" \
		--out "$tmp/$mode.npy" $flag 2>"$tmp/err"; then
		r=$($py tests/ref/compare_logits.py "$tmp/$mode.npy" "$tmp/ref.npy" 1e-3 2>&1)
		check "$mode logits vs transformers ($(echo "$r" | tail -n1))" \
			$py tests/ref/compare_logits.py "$tmp/$mode.npy" "$tmp/ref.npy" 1e-3
	else
		cat "$tmp/err"; bad "$mode logits"
	fi
done

# 2. greedy generation is deterministic; sampling reproducible with --seed
gen() { "$cli" run -m "$model" --backend cpu -p 'def add(a, b):' -n 24 "$@" 2>/dev/null; }
gen --temp 0 >"$tmp/g1"; gen --temp 0 >"$tmp/g2"
check "greedy output is non-empty" test -s "$tmp/g1"
check "greedy generation is deterministic" cmp -s "$tmp/g1" "$tmp/g2"
gen --temp 0 -t 1 >"$tmp/g3"
check "greedy generation does not depend on the thread count" cmp -s "$tmp/g1" "$tmp/g3"
gen --temp 0.9 --seed 7 >"$tmp/s1"; gen --temp 0.9 --seed 7 >"$tmp/s2"
check "sampling with --seed 7 is reproducible" cmp -s "$tmp/s1" "$tmp/s2"
for s in 1 2 3 4; do gen --temp 0.9 --seed $s; done >"$tmp/s3"
check "different seeds give different samples" \
	test "$(sort -u <(for s in 1 2 3 4; do gen --temp 0.9 --seed $s | md5sum; done) | wc -l)" -gt 1
"$cli" run -m "$model" --backend cpu -p 'x = 1' -n 8 --stats-json "$tmp/stats.json" >/dev/null 2>&1
check "--stats-json has the required fields" $py -c '
import json, sys
s = json.load(open(sys.argv[1]))
need = ["prompt_tokens", "generated_tokens", "prompt_tok_per_s",
        "decode_tok_per_s", "peak_rss_bytes"]
sys.exit(0 if all(k in s for k in need) and s["generated_tokens"] == 8 else 1)' "$tmp/stats.json"

# 3. bad input: a clear message, exit 1 or 2, never a crash (ASan build)
expect_error() {	# what, pattern, command...
	local what=$1 pat=$2; shift 2
	"$@" >"$tmp/out" 2>"$tmp/err"; local rc=$?
	if [ $rc -ge 1 ] && [ $rc -lt 128 ] && grep -qiE "$pat" "$tmp/err" &&
	   ! grep -q "Sanitizer" "$tmp/err"; then
		ok "$what (exit $rc: $(head -c 120 "$tmp/err" | tr '\n' ' '))"
	else
		bad "$what (exit $rc)"; sed 's/^/    # /' "$tmp/err" | head -n 5
	fi
}
expect_error "invalid UTF-8 prompt" "utf-8" "$cli" run -m "$model" -p $'abc\xff\xfe' -n 4
printf 'def f():\n    return "\xc3\x28"\n' >"$tmp/bad.py"
expect_error "invalid UTF-8 in a prompt file" "utf-8" "$cli" run -m "$model" -f "$tmp/bad.py" -n 4
expect_error "empty prompt" "empty" "$cli" run -m "$model" -p '' -n 4
: >"$tmp/empty.txt"
expect_error "empty prompt file" "empty" "$cli" run -m "$model" -f "$tmp/empty.txt" -n 4
expect_error "missing prompt file" "cannot read|no such" "$cli" run -m "$model" -f "$tmp/nope.txt"
head -c 20000 /dev/zero | tr '\0' 'a' | sed 's/a\{50\}/&\n/g' >"$tmp/long.txt"
expect_error "prompt longer than the context" "context" "$cli" run -m "$model" -f "$tmp/long.txt" -n 4 --ctx 64
expect_error "token id outside the vocabulary" "vocabulary|outside" "$cli" logits -m "$model" --tokens 1,99999999 --out "$tmp/x.npy"
expect_error "decode an unknown token id" "id|vocab" "$cli" tokenize -m "$model" --decode 1,99999999
expect_error "missing model" "no such file|cannot open" "$cli" run -m "$tmp/missing.gguf" -p x
expect_error "bad option value" "invalid|top-p" "$cli" run -m "$model" -p x --top-p 2
echo "$pass passed, $fail failed"
[ $fail -eq 0 ]
