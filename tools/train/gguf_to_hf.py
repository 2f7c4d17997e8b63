#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""Rebuilds a Hugging Face folder from the shipped GGUF alone.

build/bundled-hf is not committed; reference tests that need a transformers
model can make one from models/tiny-qwen3moe-f16.gguf with this script.  The
GGUF's weights are bit-identical to the training checkpoint's (F16 there,
F16 or F32 here), so the folder written is the same model: configuration
from the GGUF keys, tokenizer from tokenizer.ggml.* with Qwen's pipeline,
chat template from tokenizer.chat_template.

  build/venv/bin/python tools/train/gguf_to_hf.py --out build/gguf-hf
"""
import argparse
import json
import os
import sys

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import make_hf  # noqa: E402
import verify_gguf  # noqa: E402


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--gguf", default="models/tiny-qwen3moe-f16.gguf")
    ap.add_argument("--out", default="build/gguf-hf")
    args = ap.parse_args()

    checks = verify_gguf.Checks()
    kv, tensors, _ = verify_gguf.read_gguf(args.gguf, checks)
    model = verify_gguf.model_from_gguf(kv, tensors, checks)
    if checks.failed:
        sys.exit("gguf_to_hf: %s: %d checks failed" % (args.gguf,
                                                        checks.failed))
    os.makedirs(args.out, exist_ok=True)
    half = model.to(torch.float16)
    half.tie_weights()
    half.generation_config.do_sample = False
    half.save_pretrained(args.out)
    tok = verify_gguf.tokenizer_from_gguf(kv)
    tok.save(os.path.join(args.out, "tokenizer.json"))
    with open(os.path.join(args.out, "tokenizer_config.json"), "w",
              encoding="utf-8") as fh:
        json.dump(make_hf.tokenizer_config(
            kv["tokenizer.chat_template"],
            kv["qwen3moe.context_length"]), fh, indent=1, ensure_ascii=False)
    print("wrote %s" % args.out)


if __name__ == "__main__":
    main()
