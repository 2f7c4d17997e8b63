#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""Tokenises the train/val splits into the folder that travels to the GPU.

Reads DATA/train.txt, DATA/val.txt (prepare_data.py) and the tokenizer
(train_tokenizer.py); each file is encoded on its own and followed by the
<|endoftext|> id.  Writes OUT/train.npy and OUT/val.npy (uint16 token
streams), a copy of tokenizer.json and OUT/meta.json with counts and hashes.
"""
import argparse
import hashlib
import json
import os
import shutil
import sys

import numpy as np
from tokenizers import Tokenizer

EOT = "<|endoftext|>"


def sha256_file(path):
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", default="build/train")
    ap.add_argument("--tokenizer", default="build/train/tokenizer.json")
    ap.add_argument("--out", default=".carry/train")
    args = ap.parse_args()

    tok = Tokenizer.from_file(args.tokenizer)
    eot = tok.token_to_id(EOT)
    if eot is None or tok.get_vocab_size() > 65535:
        sys.exit("tokenize_data: %s: no %s or vocabulary too large for "
                 "uint16" % (args.tokenizer, EOT))
    os.makedirs(args.out, exist_ok=True)
    meta = {"tokenizer_sha256": sha256_file(args.tokenizer),
            "vocab_size": tok.get_vocab_size(), "eot_id": eot}
    for split in ("train", "val"):
        with open(os.path.join(args.data, split + ".txt"),
                  encoding="utf-8", newline="") as fh:
            docs = [d for d in fh.read().split(EOT) if d]
        ids = []
        for enc in tok.encode_batch(docs, add_special_tokens=False):
            ids.extend(enc.ids)
            ids.append(eot)
        arr = np.asarray(ids, dtype=np.uint16)
        path = os.path.join(args.out, split + ".npy")
        np.save(path, arr)
        nbytes = sum(len(d.encode("utf-8")) for d in docs)
        meta[split] = {"docs": len(docs), "tokens": int(arr.size),
                       "bytes": nbytes,
                       "bytes_per_token": round(nbytes / arr.size, 3),
                       "sha256": sha256_file(path)}
    shutil.copyfile(args.tokenizer, os.path.join(args.out, "tokenizer.json"))
    with open(os.path.join(args.out, "meta.json"), "w") as fh:
        json.dump(meta, fh, indent=1)
    print(json.dumps(meta, indent=1))


if __name__ == "__main__":
    main()
