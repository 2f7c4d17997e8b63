#!/usr/bin/env python3
"""transformers' float32 logits for the bundled GGUF model on token ids.

The model is rebuilt from the GGUF with transformers' Qwen3MoeForCausalLM
(tools/train/verify_gguf.py, the same code the model card's checks use), run
with eager attention in float32.

  bundled_ref.py MODEL.gguf IDS_FILE OUT.npy
"""
import os
import sys

import numpy as np
import torch

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)),
                                "..", "..", "tools", "train"))
import verify_gguf  # noqa: E402


def main():
    gguf_path, ids_path, out = sys.argv[1:4]
    ids = [int(x) for x in open(ids_path).read().strip().split(",")]
    checks = verify_gguf.Checks()
    kv, tensors, _ = verify_gguf.read_gguf(gguf_path, checks)
    model = verify_gguf.model_from_gguf(kv, tensors, checks).float()
    if checks.failed:
        sys.exit("bundled_ref: %d GGUF checks failed" % checks.failed)
    model.config._attn_implementation = "eager"
    with torch.no_grad():
        logits = model(torch.tensor([ids])).logits[0]
    np.save(out, logits.numpy().astype(np.float32))


if __name__ == "__main__":
    main()
