#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""Write tiny safetensors files with the reference `safetensors` writer as
fuzz seeds.

They double as an independent check of the reader: tests/unit/
test_safetensors.c parses every seed.  Every seed holds 'seed.ramp', F32
torch shape [2, 3] = 0, 1, ..., 5; all_dtypes.safetensors also holds one
tensor per dtype named 'dtype.<DTYPE>' of shape [2] (BOOL/U8/I8/...: 1, 2).

Usage: build/venv/bin/python tests/fuzz/make_safetensors_seeds.py [OUTDIR]
"""
import os
import sys

import torch
from safetensors.torch import save_file

OUT = sys.argv[1] if len(sys.argv) > 1 else os.path.join(
    os.path.dirname(os.path.abspath(__file__)), "corpus", "safetensors")

DTYPES = {
    "F32": torch.float32, "F16": torch.float16, "BF16": torch.bfloat16,
    "F64": torch.float64, "I64": torch.int64, "I32": torch.int32,
    "I16": torch.int16, "I8": torch.int8, "U8": torch.uint8,
    "BOOL": torch.bool,
}


def ramp():
    return {"seed.ramp": torch.arange(6, dtype=torch.float32).reshape(2, 3)}


def main():
    os.makedirs(OUT, exist_ok=True)
    save_file(ramp(), os.path.join(OUT, "minimal.safetensors"))
    t = ramp()
    for name, dt in DTYPES.items():
        t["dtype." + name] = torch.tensor([1, 2]).to(dt)
    save_file(t, os.path.join(OUT, "all_dtypes.safetensors"))
    t = ramp()
    t["empty"] = torch.zeros(0, 4, dtype=torch.float16)
    t["scalar"] = torch.tensor(7.0)
    t["rank5"] = torch.ones(1, 1, 1, 2, 1)
    # a stacked expert tensor as transformers 5 holds them: [E, 2*ff, hidden]
    t["model.layers.0.mlp.experts.gate_up_proj"] = torch.arange(
        2 * 4 * 3, dtype=torch.float32).reshape(2, 4, 3).to(torch.bfloat16)
    save_file(t, os.path.join(OUT, "shapes.safetensors"),
              metadata={"format": "pt", "note": "seed"})


if __name__ == "__main__":
    main()
