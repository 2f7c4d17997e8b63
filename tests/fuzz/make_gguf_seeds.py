#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""Write tiny GGUF files with gguf-py (llama.cpp's own writer) as fuzz seeds.

They double as an independent check of the reader: tests/unit/test_gguf.c
parses every seed, and test_model_gguf.c loads tiny_qwen3moe.gguf, whose key
and tensor names come from gguf-py's constants rather than from our code.
Every seed holds 'seed.ramp', F32 [3, 2] (ggml order) = 0, 1, ..., 5.

Usage: build/venv/bin/python tests/fuzz/make_gguf_seeds.py [OUTDIR]
"""
import os
import sys

import numpy as np
import gguf
from gguf import GGUFValueType as VT
from gguf import GGMLQuantizationType as QT
from gguf import MODEL_TENSOR as MT

OUT = sys.argv[1] if len(sys.argv) > 1 else os.path.join(
    os.path.dirname(os.path.abspath(__file__)), "corpus", "gguf")

# tiny_qwen3moe hyper-parameters (test_model_gguf.c checks these)
N_LAYER, N_EMBD, N_HEAD, N_HEAD_KV, HEAD_DIM = 2, 8, 2, 1, 4
N_EXPERT, N_USED, N_FF, N_VOCAB = 4, 2, 6, 10


def ramp(w):
    w.add_tensor("seed.ramp", np.arange(6, dtype=np.float32).reshape(2, 3))


def write(w, path):
    w.write_header_to_file(path=path)
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()


def minimal():
    w = gguf.GGUFWriter(None, "seed")
    ramp(w)
    write(w, os.path.join(OUT, "minimal.gguf"))


def all_types():
    w = gguf.GGUFWriter(None, "seed")
    w.add_uint8("s.u8", 200)
    w.add_int8("s.i8", -5)
    w.add_uint16("s.u16", 60000)
    w.add_int16("s.i16", -30000)
    w.add_uint32("s.u32", 4000000000)
    w.add_int32("s.i32", -2000000000)
    w.add_float32("s.f32", 1.5)
    w.add_bool("s.bool", True)
    w.add_string("s.str", "hello")
    w.add_uint64("s.u64", 1 << 40)
    w.add_int64("s.i64", -(1 << 40))
    w.add_float64("s.f64", 2.25)
    w.add_key_value("a.i32", [-1, 7, 9], VT.ARRAY, sub_type=VT.INT32)
    w.add_key_value("a.f32", [0.5, -2.0], VT.ARRAY, sub_type=VT.FLOAT32)
    w.add_key_value("a.u8", [1, 2, 3], VT.ARRAY, sub_type=VT.UINT8)
    w.add_key_value("a.str", ["x", "", "yz"], VT.ARRAY, sub_type=VT.STRING)
    ramp(w)
    w.add_tensor("t.f16", np.linspace(-1, 1, 16, dtype=np.float16))
    bf16 = (np.linspace(-2, 2, 8, dtype=np.float32).view(np.uint32) >> 16)
    w.add_tensor("t.bf16", bf16.astype(np.uint16), raw_dtype=QT.BF16)
    q = gguf.quants.quantize(
        np.linspace(-1, 1, 64, dtype=np.float32).reshape(2, 32), QT.Q8_0)
    w.add_tensor("t.q8_0", q, raw_dtype=QT.Q8_0)
    write(w, os.path.join(OUT, "all_types.gguf"))


def align64():
    w = gguf.GGUFWriter(None, "seed")
    w.add_custom_alignment(64)
    ramp(w)
    w.add_tensor("t.b", np.ones((3,), dtype=np.float32))
    write(w, os.path.join(OUT, "align64.gguf"))


def tiny_qwen3moe():
    rng = np.random.default_rng(0)

    def t(kind, shape, bid=None):
        name = gguf.TENSOR_NAMES[kind]
        name = (name.format(bid=bid) if bid is not None else name)
        w.add_tensor(name + ".weight",
                     rng.standard_normal(shape).astype(np.float32))

    w = gguf.GGUFWriter(None, "qwen3moe")
    w.add_block_count(N_LAYER)
    w.add_context_length(128)
    w.add_embedding_length(N_EMBD)
    w.add_head_count(N_HEAD)
    w.add_head_count_kv(N_HEAD_KV)
    w.add_key_length(HEAD_DIM)
    w.add_value_length(HEAD_DIM)
    w.add_rope_freq_base(1000000.0)
    w.add_layer_norm_rms_eps(1e-6)
    w.add_expert_count(N_EXPERT)
    w.add_expert_used_count(N_USED)
    w.add_expert_feed_forward_length(N_FF)
    w.add_token_list([f"t{i}" for i in range(N_VOCAB)])
    w.add_bos_token_id(1)
    w.add_eos_token_id(2)
    ramp(w)
    # numpy shapes are (outer, ..., inner): reversed ggml order
    t(MT.TOKEN_EMBD, (N_VOCAB, N_EMBD))
    t(MT.OUTPUT_NORM, (N_EMBD,))
    t(MT.OUTPUT, (N_VOCAB, N_EMBD))
    for b in range(N_LAYER):
        t(MT.ATTN_NORM, (N_EMBD,), b)
        t(MT.ATTN_Q, (N_HEAD * HEAD_DIM, N_EMBD), b)
        t(MT.ATTN_K, (N_HEAD_KV * HEAD_DIM, N_EMBD), b)
        t(MT.ATTN_V, (N_HEAD_KV * HEAD_DIM, N_EMBD), b)
        t(MT.ATTN_OUT, (N_EMBD, N_HEAD * HEAD_DIM), b)
        t(MT.ATTN_Q_NORM, (HEAD_DIM,), b)
        t(MT.ATTN_K_NORM, (HEAD_DIM,), b)
        t(MT.FFN_NORM, (N_EMBD,), b)
        t(MT.FFN_GATE_INP, (N_EXPERT, N_EMBD), b)
        t(MT.FFN_GATE_EXP, (N_EXPERT, N_FF, N_EMBD), b)
        t(MT.FFN_UP_EXP, (N_EXPERT, N_FF, N_EMBD), b)
        t(MT.FFN_DOWN_EXP, (N_EXPERT, N_EMBD, N_FF), b)
    write(w, os.path.join(OUT, "tiny_qwen3moe.gguf"))


def main():
    os.makedirs(OUT, exist_ok=True)
    minimal()
    all_types()
    align64()
    tiny_qwen3moe()


if __name__ == "__main__":
    main()
