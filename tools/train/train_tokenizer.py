#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""Trains the bundled model's byte-level BPE tokenizer (Qwen2 style).

Pre-tokenizer, normalizer and decoder are copied from Qwen3's own
tokenizer.json (the Split regex + ByteLevel(use_regex=False), NFC, ByteLevel),
so the GGUF can say tokenizer.ggml.pre = "qwen2".  BPE merges are learnt from
the training split only (OUT/train.txt of prepare_data.py, split back into
files at <|endoftext|>); the three special tokens are appended after the
learnt vocabulary, as Qwen does.  Training is deterministic: the same input
gives a byte-identical tokenizer.json (checked by --check-determinism).
"""
import argparse
import hashlib
import json
import os
import sys

from tokenizers import Regex, Tokenizer, decoders, models, normalizers
from tokenizers import pre_tokenizers, trainers

QWEN3_TOKENIZER = "/work/shared/fixtures/qwen3-tokenizer/tokenizer.json"
SPECIALS = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]


def load_qwen(path):
    """Qwen's tokenizer.json and the Split pattern of its pre-tokenizer."""
    with open(path, encoding="utf-8") as fh:
        tj = json.load(fh)
    pre = tj["pre_tokenizer"]
    if pre.get("type") != "Sequence":
        sys.exit("train_tokenizer: %s: pre_tokenizer is not a Sequence" % path)
    for p in pre["pretokenizers"]:
        if p.get("type") == "Split":
            return tj, p["pattern"]["Regex"]
    sys.exit("train_tokenizer: %s: no Split pre-tokenizer" % path)


def align_with_qwen(tok, qwen):
    """Copies the pipeline pieces the Python API does not expose fully
    (decoder and post-processor flags, BPE affixes) from Qwen's file, so
    that everything but the vocabulary and merges is Qwen's own."""
    tj = json.loads(tok.to_str())
    for k in ("normalizer", "pre_tokenizer", "post_processor", "decoder"):
        tj[k] = qwen[k]
    for k in ("continuing_subword_prefix", "end_of_word_suffix",
              "ignore_merges", "byte_fallback", "fuse_unk", "dropout"):
        tj["model"][k] = qwen["model"][k]
    return Tokenizer.from_str(json.dumps(tj, ensure_ascii=False))


def build(qwen, regex, files_text, vocab_size):
    tok = Tokenizer(models.BPE(unk_token=None, fuse_unk=False,
                               byte_fallback=False))
    tok.normalizer = normalizers.NFC()
    tok.pre_tokenizer = pre_tokenizers.Sequence([
        pre_tokenizers.Split(Regex(regex), behavior="isolated",
                             invert=False),
        pre_tokenizers.ByteLevel(add_prefix_space=False, trim_offsets=False,
                                 use_regex=False),
    ])
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size - len(SPECIALS),
        min_frequency=2,
        show_progress=False,
        special_tokens=[],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
    )
    tok.train_from_iterator(files_text, trainer=trainer,
                            length=len(files_text))
    tok.add_special_tokens(SPECIALS)
    return align_with_qwen(tok, qwen)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", default="build/train",
                    help="folder holding train.txt (default %(default)s)")
    ap.add_argument("--out", default="build/train/tokenizer.json")
    ap.add_argument("--vocab-size", type=int, default=16000,
                    help="total, special tokens included (default 16000)")
    ap.add_argument("--qwen3-tokenizer", default=QWEN3_TOKENIZER)
    ap.add_argument("--check-determinism", action="store_true",
                    help="train twice and fail if the results differ")
    args = ap.parse_args()

    qwen, regex = load_qwen(args.qwen3_tokenizer)
    with open(os.path.join(args.data, "train.txt"), encoding="utf-8",
              newline="") as fh:
        files_text = [t for t in fh.read().split(SPECIALS[0]) if t]
    tok = build(qwen, regex, files_text, args.vocab_size)
    js = tok.to_str(pretty=True)
    if args.check_determinism:
        again = build(qwen, regex, files_text, args.vocab_size)
        again = again.to_str(pretty=True)
        if again != js:
            sys.exit("train_tokenizer: two runs gave different tokenizers")
        print("determinism check: two runs identical")
    if tok.get_vocab_size() != args.vocab_size:
        sys.exit("train_tokenizer: got %d tokens, wanted %d (corpus too "
                 "small?)" % (tok.get_vocab_size(), args.vocab_size))
    for i, s in enumerate(SPECIALS):
        want = args.vocab_size - len(SPECIALS) + i
        if tok.token_to_id(s) != want:
            sys.exit("train_tokenizer: %s has id %s, want %d"
                     % (s, tok.token_to_id(s), want))
    os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
    with open(args.out, "w", encoding="utf-8") as fh:
        fh.write(js)
    print("wrote %s: %d tokens, sha256 %s" % (
        args.out, tok.get_vocab_size(),
        hashlib.sha256(js.encode("utf-8")).hexdigest()))


if __name__ == "__main__":
    main()
