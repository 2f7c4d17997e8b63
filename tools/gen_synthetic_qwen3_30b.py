#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""Writes a random Qwen3-30B-A3B-shaped GGUF (Q8_0) for benchmarks.

The defaults give Qwen3-30B-A3B's shapes (48 layers, 128 experts, top-8,
hidden 2048, expert width 768, 32 query / 4 KV heads of 128, vocab 151936):
about 32 GB.  The matmul weights are Q8_0 blocks made straight from random
bytes (int8 quants, f16 scales jittered around the value that gives each
matrix a 1/sqrt(fan_in) spread), streamed to disk in fixed-size chunks so
memory use stays at a few tens of MB whatever the size.  Norms are F32
close to 1; routers are F32 N(0, 1.5/sqrt(hidden)) so that routing spreads
over all experts.  Metadata and tensor names are llama.cpp's qwen3moe ones,
with a synthetic byte-level BPE vocabulary so llama.cpp loads it too.

For benchmarks only (not CI): the weights are noise, the text is nonsense.
`--layers 2` etc. make a small version; `--check` reads the result back with
gguf.GGUFReader and verifies every tensor's name, type, shape and spread.

    tools/gen_synthetic_qwen3_30b.py --out /data/qwen3-30b-synth.gguf
"""
import argparse
import sys

import numpy as np
import gguf
from gguf import GGMLQuantizationType as QT

Q8_BLOCK = 32
Q8_BYTES = 34
CHUNK_BLOCKS = 1 << 19          # 17 MB of Q8_0 per write
INT8_STD = 73.9                 # std of uniform random bytes as int8


def bytes_to_unicode():
    """GPT-2's reversible byte -> printable character map."""
    bs = (list(range(ord("!"), ord("~") + 1))
          + list(range(ord("\xa1"), ord("\xac") + 1))
          + list(range(ord("\xae"), ord("\xff") + 1)))
    cs = bs[:]
    n = 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + n)
            n += 1
    return dict(zip(bs, (chr(c) for c in cs)))


def vocabulary(n_vocab):
    """A well-formed byte-level BPE vocab: 256 byte tokens, 702 merged
    pairs of lowercase letters (and space + letter), filler, and Qwen's
    special tokens (at their real ids when the vocab is full size)."""
    b2u = bytes_to_unicode()
    tokens = [b2u[b] for b in range(256)]
    types = [gguf.TokenType.NORMAL] * 256
    merges = []
    letters = "abcdefghijklmnopqrstuvwxyz"
    for a in "Ġ" + letters:
        for b in letters:
            merges.append(f"{a} {b}")
            tokens.append(a + b)
            types.append(gguf.TokenType.NORMAL)
    specials = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]
    sp0 = 151643 if n_vocab >= 151646 else n_vocab - len(specials)
    if sp0 < len(tokens):
        raise SystemExit(f"--vocab {n_vocab} is too small (>= "
                         f"{len(tokens) + len(specials)})")
    while len(tokens) < n_vocab:
        i = len(tokens)
        if sp0 <= i < sp0 + len(specials):
            tokens.append(specials[i - sp0])
            types.append(gguf.TokenType.CONTROL)
        else:
            tokens.append(f"<|synthetic_{i}|>")
            types.append(gguf.TokenType.UNUSED)
    return tokens, types, merges, sp0


def tensor_plan(a):
    """[(name, numpy-order shape, QT, fill)] in file order; fill is the
    weight std for Q8_0, ('norm',) or ('router', std) for F32."""
    hd, H = a.head_dim, a.hidden
    plan = [("token_embd.weight", (a.vocab, H), QT.Q8_0, 1.0)]
    for i in range(a.layers):
        b = f"blk.{i}."
        plan += [
            (b + "attn_norm.weight", (H,), QT.F32, "norm"),
            (b + "attn_q.weight", (a.heads * hd, H), QT.Q8_0, H ** -0.5),
            (b + "attn_k.weight", (a.kv_heads * hd, H), QT.Q8_0, H ** -0.5),
            (b + "attn_v.weight", (a.kv_heads * hd, H), QT.Q8_0, H ** -0.5),
            (b + "attn_output.weight", (H, a.heads * hd), QT.Q8_0,
             (a.heads * hd) ** -0.5),
            (b + "attn_q_norm.weight", (hd,), QT.F32, "norm"),
            (b + "attn_k_norm.weight", (hd,), QT.F32, "norm"),
            (b + "ffn_norm.weight", (H,), QT.F32, "norm"),
            (b + "ffn_gate_inp.weight", (a.experts, H), QT.F32, "router"),
            (b + "ffn_gate_exps.weight", (a.experts, a.ff, H), QT.Q8_0,
             H ** -0.5),
            (b + "ffn_up_exps.weight", (a.experts, a.ff, H), QT.Q8_0,
             H ** -0.5),
            (b + "ffn_down_exps.weight", (a.experts, H, a.ff), QT.Q8_0,
             a.ff ** -0.5),
        ]
    plan += [("output_norm.weight", (H,), QT.F32, "norm"),
             ("output.weight", (a.vocab, H), QT.Q8_0, H ** -0.5)]
    return plan


def nbytes(shape, qt):
    n = int(np.prod(shape))
    return n // Q8_BLOCK * Q8_BYTES if qt == QT.Q8_0 else n * 4


def write_q8_0(f, n_blocks, std, rng):
    """Random Q8_0 blocks, CHUNK_BLOCKS at a time: d = std/INT8_STD with
    +-25% jitter per block (f16), quants uniform random bytes."""
    base = std / INT8_STD
    done = 0
    while done < n_blocks:
        nb = min(CHUNK_BLOCKS, n_blocks - done)
        blk = np.empty((nb, Q8_BYTES), dtype=np.uint8)       # (nb, 34)
        d = (base * (0.75 + 0.5 * rng.random(nb))).astype(np.float16)
        blk[:, :2] = d.view(np.uint8).reshape(nb, 2)
        blk[:, 2:] = np.frombuffer(rng.bytes(nb * Q8_BLOCK),
                                   dtype=np.uint8).reshape(nb, Q8_BLOCK)
        blk.tofile(f)
        done += nb


def write_f32(f, shape, fill, hidden, rng):
    if fill == "norm":
        x = 1.0 + 0.02 * rng.standard_normal(shape)
    else:   # router: logits of std ~1.5 for unit-RMS input
        x = 1.5 / np.sqrt(hidden) * rng.standard_normal(shape)
    x.astype(np.float32).tofile(f)


def pad(f, align):
    n = (-f.tell()) % align
    if n:
        f.write(b"\0" * n)


def generate(a):
    if a.hidden % Q8_BLOCK or a.ff % Q8_BLOCK or \
            (a.heads * a.head_dim) % Q8_BLOCK:
        raise SystemExit("hidden, ff and heads*head-dim must be multiples "
                         f"of {Q8_BLOCK} for Q8_0")
    w = gguf.GGUFWriter(a.out, "qwen3moe")
    w.add_name(f"synthetic-qwen3moe-{a.layers}x{a.experts}")
    w.add_description("random weights for benchmarks; not a language model")
    w.add_block_count(a.layers)
    w.add_context_length(a.ctx)
    w.add_embedding_length(a.hidden)
    w.add_feed_forward_length(6144)     # Qwen3-30B-A3B's dense width
    w.add_head_count(a.heads)
    w.add_head_count_kv(a.kv_heads)
    w.add_key_length(a.head_dim)
    w.add_value_length(a.head_dim)
    w.add_rope_freq_base(1e6)
    w.add_layer_norm_rms_eps(1e-6)
    w.add_expert_count(a.experts)
    w.add_expert_used_count(a.used)
    w.add_expert_feed_forward_length(a.ff)
    w.add_expert_weights_norm(True)
    w.add_file_type(gguf.LlamaFileType.MOSTLY_Q8_0)
    w.add_quantization_version(gguf.GGML_QUANT_VERSION)
    tokens, types, merges, sp0 = vocabulary(a.vocab)
    w.add_tokenizer_model("gpt2")
    w.add_tokenizer_pre("qwen2")
    w.add_token_list(tokens)
    w.add_token_types(types)
    w.add_token_merges(merges)
    w.add_eos_token_id(sp0 + 2)
    w.add_pad_token_id(sp0)
    w.add_add_bos_token(False)

    plan = tensor_plan(a)
    for name, shape, qt, _ in plan:
        if qt == QT.Q8_0:
            bshape = shape[:-1] + (shape[-1] // Q8_BLOCK * Q8_BYTES,)
            w.add_tensor_info(name, bshape, np.dtype(np.uint8),
                              nbytes(shape, qt), raw_dtype=qt)
        else:
            w.add_tensor_info(name, shape, np.dtype(np.float32),
                              nbytes(shape, qt))
    total = sum(nbytes(s, q) for _, s, q, _ in plan)
    print(f"{a.out}: {len(plan)} tensors, {total / 2**30:.2f} GiB of "
          f"weights", flush=True)
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_ti_data_to_file()
    f = w.fout[0]
    align = w.data_alignment
    for i, (name, shape, qt, fill) in enumerate(plan):
        rng = np.random.default_rng([a.seed, i])
        pad(f, align)
        if qt == QT.Q8_0:
            write_q8_0(f, int(np.prod(shape)) // Q8_BLOCK, fill, rng)
        else:
            write_f32(f, shape, fill, a.hidden, rng)
        if name.endswith("ffn_down_exps.weight"):
            print(f"  {name.split('.')[1]}/{a.layers} layers", flush=True)
    pad(f, align)
    w.close()
    return plan


def check(a, plan):
    """Read the file back: names, types, shapes, and weight spreads."""
    r = gguf.GGUFReader(a.out)
    if r.fields["general.architecture"].contents() != "qwen3moe":
        raise SystemExit("check: general.architecture is not qwen3moe")
    got = {t.name: t for t in r.tensors}
    if len(got) != len(plan):
        raise SystemExit(f"check: {len(got)} tensors, want {len(plan)}")
    for name, shape, qt, fill in plan:
        t = got[name]
        tshape = tuple(int(x) for x in reversed(t.shape.tolist()))
        if t.tensor_type != qt or tshape != shape:
            raise SystemExit(f"check: {name}: {t.tensor_type.name} "
                             f"{tshape}, want {qt.name} {shape}")
        # Dequantise a slice (the last rows) and check its spread.
        flat = np.asarray(t.data).reshape(-1, np.asarray(t.data).shape[-1])
        x = gguf.quants.dequantize(flat[-4:], qt).astype(np.float64)
        if fill == "norm":
            ok = abs(x.mean() - 1) < 0.05
        elif fill == "router":
            ok = abs(x.std() * np.sqrt(a.hidden) / 1.5 - 1) < 0.2
        else:
            ok = abs(x.std() / fill - 1) < 0.2
        if not ok or not np.all(np.isfinite(x)):
            raise SystemExit(f"check: {name}: mean {x.mean():.3g} std "
                             f"{x.std():.3g}")
    n_tok = len(r.fields["tokenizer.ggml.tokens"].data)
    if n_tok != a.vocab:
        raise SystemExit(f"check: {n_tok} tokens, want {a.vocab}")
    print(f"check: {len(plan)} tensors and {n_tok} tokens read back by "
          f"gguf.GGUFReader, types, shapes and spreads as written")


def main():
    ap = argparse.ArgumentParser(
        description=__doc__.split("\n")[1],
        formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    ap.add_argument("--out", required=True, help="output .gguf path")
    ap.add_argument("--layers", type=int, default=48)
    ap.add_argument("--experts", type=int, default=128)
    ap.add_argument("--used", type=int, default=8, help="experts per token")
    ap.add_argument("--hidden", type=int, default=2048)
    ap.add_argument("--ff", type=int, default=768, help="expert width")
    ap.add_argument("--heads", type=int, default=32)
    ap.add_argument("--kv-heads", type=int, default=4)
    ap.add_argument("--head-dim", type=int, default=128)
    ap.add_argument("--vocab", type=int, default=151936)
    ap.add_argument("--ctx", type=int, default=40960,
                    help="context_length metadata")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--check", action="store_true",
                    help="read the file back and verify it")
    a = ap.parse_args()
    if a.used > a.experts or a.heads % a.kv_heads:
        ap.error("need --used <= --experts and --heads divisible by "
                 "--kv-heads")
    plan = generate(a)
    if a.check:
        check(a, plan)
    return 0


if __name__ == "__main__":
    sys.exit(main())
