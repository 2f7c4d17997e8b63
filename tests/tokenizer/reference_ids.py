#!/usr/bin/env python3
"""Reference side of the tokenizer conformance test (Hugging Face tokenizers).

  cases   -- write the test cases as JSONL (one {"name", "text"} per line),
             the ids and decodes Hugging Face `tokenizers` gives for them,
             a tokenizer-only GGUF built from the same tokenizer.json,
             variants of tokenizer.json for other code paths, and a
             manifest: label, loader option, tokenizer file, file prefix
  compare -- compare `expertcache tokenize --jsonl` output with the
             reference: one line per failing check, then "N passed, N failed"
"""
import argparse
import gzip
import json
import random
import sys
import unicodedata


def multilingual_cases(path):
    """Cases of the sample: "=== NAME" header lines, text up to the newline
    before the next header (split on b"\\n" only: the text holds CR, NEL,
    U+2028 and friends)."""
    with open(path, "rb") as f:
        data = f.read().decode("utf-8")
    cases, name, lines = [], None, []
    for line in data.split("\n"):
        if line.startswith("=== "):
            if name is not None:
                cases.append((name, "\n".join(lines)))
            name, lines = line[4:], []
        elif name is not None:
            lines.append(line)
    if name is not None:
        # the file ends with the last case's text and its closing newline
        cases.append((name, "\n".join(lines[:-1] if lines and lines[-1] == ""
                                      else lines)))
    out = [("multilingual/" + n, t) for n, t in cases]
    out.append(("multilingual/whole-file", data))
    return out


def humaneval_cases(path):
    opener = gzip.open if path.endswith(".gz") else open
    with opener(path, "rt", encoding="utf-8") as f:
        rows = [json.loads(line) for line in f if line.strip()]
    return [("humaneval/" + r["task_id"], r["prompt"]) for r in rows]


def sweep_cases():
    """Every assigned code point (Python's Unicode database, not newer than
    the regex and normalization libraries), 48 to a case, each in a few
    contexts that exercise the pre-tokenizer's classes."""
    cps = [c for c in range(0x110000)
           if not 0xD800 <= c <= 0xDFFF
           and unicodedata.category(chr(c)) not in ("Cn", "Co", "Cs")]
    out = []
    for i in range(0, len(cps), 48):
        parts = []
        for c in cps[i:i + 48]:
            ch = chr(c)
            parts.append("a" + ch + " " + ch + ch + "1'" + ch + "s " + ch)
        out.append(("sweep/U+%04X" % cps[i], " ".join(parts) + "\n"))
    return out


BASE_POOL = (
    list("aZé'sStTlLdDmM \t\r\n0123456789.,!?-_()<>|/\\\"#")
    + ["  ", "\r\n", "\u00a0", "\u3000", "\u2028", "\x85", "\x0b", "\u180e",
       "\u0301", "\u0308", "\u200d", "\ufe0f", "ſ", "K", "İ", "ß", "中文",
       "日本", "한", "ع", "न्", "😀", "👨‍👩‍👧", "🇯🇵", "①", "½", "٣",
       "<|im_start|>", "<|im_end|>", "<|endoftext|>", "<|im_", "|>",
       "<think>", "</think>", "'RE", "'ll", "'VE"])

# Added tokens exercising every flag, for the "flags" variant.
FLAG_TOKENS = [
    {"content": "<mask>", "lstrip": True, "rstrip": True},
    {"content": "[L]", "lstrip": True},
    {"content": "[R]", "rstrip": True},
    {"content": "ony", "single_word": True},
    {"content": "<w>", "single_word": True, "lstrip": True},
    {"content": "Café", "normalized": True},
    {"content": "\u2126", "normalized": True},  # OHM SIGN: NFC is U+03A9
    {"content": "im_start", "normalized": True, "special": True},
    {"content": "<|im_start|>user"},       # longer than <|im_start|>
]
FLAG_POOL = BASE_POOL + [t["content"] for t in FLAG_TOKENS] + [
    "Cafe\u0301", "\u03a9", "Anthony", "_", "\u2000", "\t\t", "  "]


def random_cases(n, pool=BASE_POOL, seed=1234, tag="random"):
    """Random mixtures of the characters the regex alternatives care about."""
    rng = random.Random(seed)
    return [("%s/%d" % (tag, i),
             "".join(rng.choice(pool) for _ in range(rng.randint(1, 120))))
            for i in range(n)]


def variant(tj, kind):
    """A copy of tokenizer.json changed to exercise another code path."""
    tj = json.loads(json.dumps(tj))
    if kind == "gpt2":
        tj["normalizer"] = None
        tj["pre_tokenizer"] = {"type": "ByteLevel", "add_prefix_space": False,
                               "trim_offsets": True, "use_regex": True}
    elif kind == "word":
        tj["pre_tokenizer"]["pretokenizers"][0]["pattern"] = {
            "Regex": r"\w+|[^\w\s]+|\s+(?!\S)|\s|\W"}
    elif kind == "flags":
        # ids as tokenizers assigns them (and writes them): a token already
        # in the vocabulary keeps its id, others come after the last one
        nid = max(a["id"] for a in tj["added_tokens"]) + 1
        for t in FLAG_TOKENS:
            i = tj["model"]["vocab"].get(t["content"])
            if i is None:
                i, nid = nid, nid + 1
            e = {"id": i, "content": t["content"], "single_word": False,
                 "lstrip": False, "rstrip": False, "normalized": False,
                 "special": False}
            e.update(t)
            tj["added_tokens"].append(e)
    return tj


def write_gguf(tok_json, path):
    """The same tokenizer as GGUF metadata, as llama.cpp's converter writes
    it: tokens by id (holes padded), merges "a b", types 3/4 for added."""
    import gguf
    with open(tok_json, encoding="utf-8") as f:
        tj = json.load(f)
    vocab = tj["model"]["vocab"]
    added = tj.get("added_tokens", [])
    n = max(list(vocab.values()) + [a["id"] for a in added]) + 1
    tokens = ["[PAD%d]" % i for i in range(n)]
    types = [gguf.TokenType.UNUSED] * n
    for s, i in vocab.items():
        tokens[i], types[i] = s, gguf.TokenType.NORMAL
    for a in added:
        tokens[a["id"]] = a["content"]
        types[a["id"]] = (gguf.TokenType.CONTROL if a["special"]
                          else gguf.TokenType.USER_DEFINED)
    merges = [m if isinstance(m, str) else " ".join(m)
              for m in tj["model"]["merges"]]
    w = gguf.GGUFWriter(path, "qwen3moe")
    w.add_tokenizer_model("gpt2")
    w.add_tokenizer_pre("qwen2")
    w.add_token_list(tokens)
    w.add_token_types(types)
    w.add_token_merges(merges)
    ids = {a["content"]: a["id"] for a in added}
    w.add_eos_token_id(ids["<|im_end|>"])
    w.add_pad_token_id(ids["<|endoftext|>"])
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()


def cmd_cases(a):
    from tokenizers import Tokenizer
    with open(a.tokenizer, encoding="utf-8") as f:
        tj = json.load(f)
    he = humaneval_cases(a.humaneval)
    ml = multilingual_cases(a.multilingual)
    rnd = random_cases(400)
    sweep = sweep_cases()
    flags = ["x <mask> y", "a\t<mask>\tb <mask><mask>", "  [L]  [R]  [L][R]",
             "ony Anthony ony, _ony ony_ 1ony", "<w> a<w> <w>b \u2000<w>\u2000",
             "Cafe\u0301 Café CaféCafe\u0301", "\u2126 \u03a9", "<|im_start|>user",
             "<|im_start|>users im_start <|im_start|>"]
    flags = [("flags/%d" % i, t) for i, t in enumerate(flags)]
    paths = {"qwen3": a.tokenizer}
    for kind in ("gpt2", "word", "flags"):
        paths[kind] = "%s/tokenizer-%s.json" % (a.out, kind)
        with open(paths[kind], "w", encoding="utf-8") as f:
            json.dump(variant(tj, kind), f, ensure_ascii=False)
    # label, loader, tokenizer file, cases, what decode(encode(text)) gives:
    # "nfc" NFC(text), "raw" text, False neither (added tokens strip spaces)
    runs = [
        ("json/humaneval", "--tokenizer", "qwen3", he, "nfc"),
        ("json/other", "--tokenizer", "qwen3", ml + rnd + sweep, "nfc"),
        ("gguf/humaneval", "-m", "gguf", he, "nfc"),
        ("gguf/other", "-m", "gguf", ml + rnd + sweep, "nfc"),
        ("gpt2-pretok/mixed", "--tokenizer", "gpt2", ml + rnd + he[:20],
         "raw"),
        ("word-regex/mixed", "--tokenizer", "word", ml + rnd + sweep, "nfc"),
        ("added-flags/mixed", "--tokenizer", "flags",
         ml + flags + random_cases(400, FLAG_POOL, 99, "random-flags"),
         False),
    ]
    write_gguf(a.tokenizer, "%s/tokenizer.gguf" % a.out)
    paths["gguf"] = "%s/tokenizer.gguf" % a.out
    toks = {}
    with open("%s/manifest.txt" % a.out, "w") as man:
        for label, loader, kind, cases, lossless in runs:
            src = "qwen3" if kind == "gguf" else kind
            if src not in toks:
                toks[src] = Tokenizer.from_file(paths[src])
            tok = toks[src]
            base = "%s/%s" % (a.out, label.replace("/", "."))
            with open(base + ".cases.jsonl", "w") as fc, \
                 open(base + ".expected.jsonl", "w") as fe:
                for name, text in cases:
                    ids = tok.encode(text, add_special_tokens=False).ids
                    dec = tok.decode(ids, skip_special_tokens=False)
                    fc.write(json.dumps({"name": name, "text": text}) + "\n")
                    fe.write(json.dumps({"name": name, "text": text,
                                         "ids": ids, "decoded": dec,
                                         "lossless": lossless}) + "\n")
            man.write("\t".join([label, loader, paths[kind], base]) + "\n")


def first_diff(x, y):
    for i, (p, q) in enumerate(zip(x, y)):
        if p != q:
            return i
    return min(len(x), len(y))


def cmd_compare(a):
    passed = failed = 0
    shown = 0

    def fail(msg):
        nonlocal failed, shown
        failed += 1
        shown += 1
        if shown <= a.max_report:
            print("FAIL " + msg)
        elif shown == a.max_report + 1:
            print("(further failures not shown)")

    with open(a.expected) as f:
        exp = [json.loads(line) for line in f]
    try:
        with open(a.actual) as f:
            act = [json.loads(line) for line in f if line.strip()]
    except (OSError, ValueError) as e:
        act = []
        fail("%s: cannot read %s: %s" % (a.label, a.actual, e))
    if len(act) != len(exp):
        fail("%s: %d results for %d cases" % (a.label, len(act), len(exp)))
    for e, r in zip(exp, act):
        name = "%s %s" % (a.label, e["name"])
        ids, want = r.get("ids") or [], e["ids"]
        if ids == want:
            passed += 1
        else:
            i = first_diff(ids, want)
            fail("%s: ids differ at position %d of %d/%d: expected %s, got "
                 "%s" % (name, i, len(want), len(ids), want[i:i + 4],
                         ids[i:i + 4]))
        # the round trip: decode(encode(x)) == HF's decode (== NFC(x) unless
        # added tokens strip whitespace)
        dec = r.get("decoded") or ""
        nfc = e["decoded"]
        if e["lossless"] == "nfc":
            nfc = unicodedata.normalize("NFC", e["text"])
        elif e["lossless"]:
            nfc = e["text"]
        if dec == e["decoded"] and dec == nfc:
            passed += 1
        else:
            i = first_diff(dec, nfc)
            fail("%s: decode(encode(text)) differs at char %d: expected "
                 "%r, got %r" % (name, i, nfc[i:i + 12], dec[i:i + 12]))
    print("%s: %d passed, %d failed" % (a.label, passed, failed))
    return 1 if failed else 0


def main():
    p = argparse.ArgumentParser(description=__doc__)
    sub = p.add_subparsers(dest="cmd", required=True)
    c = sub.add_parser("cases")
    c.add_argument("--tokenizer", required=True)
    c.add_argument("--humaneval", required=True)
    c.add_argument("--multilingual", required=True)
    c.add_argument("--out", required=True)
    c = sub.add_parser("compare")
    c.add_argument("--expected", required=True)
    c.add_argument("--actual", required=True)
    c.add_argument("--label", required=True)
    c.add_argument("--max-report", type=int, default=50)
    a = p.parse_args()
    if a.cmd == "cases":
        cmd_cases(a)
        return 0
    return cmd_compare(a)


if __name__ == "__main__":
    sys.exit(main())
