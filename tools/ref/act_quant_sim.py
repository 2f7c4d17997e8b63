# SPDX-License-Identifier: MIT
"""Simulates 8-bit activation rounding inside a transformers run.

An engine that multiplies by Q8_0/Q4_K weights the way llama.cpp does first
rounds each activation row to 8 bits: Q8_0 blocks of 32 for Q8_0 weights,
Q8_K blocks of 256 for K-quants.  Inside `rounded_activations(...)` every
F.linear whose weight lies in a registered parameter sees its input rounded
like that, so transformers computes what such an engine should compute.

Rounding is discontinuous: an element sitting on a rounding boundary (x/d
an odd multiple of 1/2) goes either way under f32 noise, and the one-step
change it makes flips further boundaries downstream, until the whole
result differs by the full rounding noise.  So the same probe reports how
close every rounded element came to a boundary, letting the fixture
generator choose inputs on which rounding is stable.
"""
import contextlib

import numpy as np
import torch
import torch.nn.functional as F
from gguf import GGMLQuantizationType as QT

# An element is "clear" of a rounding boundary when its distance to it, in
# quantisation steps, is at least BOUNDARY_STEPS + BOUNDARY_REL * |x/d|.
# f32 error in an activation is relative to its block's scale, not to the
# element: between f32 and f64 runs of the same rounded model it was a
# median 1e-5 and at most 1.5e-4 steps over 120k rounded elements, plus a
# relative part (from d) of about 1e-7.  An engine's f32 error is of the
# same size, so this margin is the worst case seen, with room to spare;
# a flip then needs an element that is both within the margin of a
# boundary and in the far tail of the error.
BOUNDARY_STEPS = 2e-4
BOUNDARY_REL = 1e-6


def _q8_units(x, block, ggml):
    """x -> (t, d) per block: t = x/d in quantisation steps, d the scale.
    expertcache: d = amax/127 (f32) for Q8_0 and Q8_K.  ggml: Q8_0 keeps d
    as f16 (the rounding still uses the f32 1/d); Q8_K uses -127/max of
    the signed extreme, which rounds the same way."""
    b = x.reshape(-1, block)
    d = b.abs().amax(dim=1, keepdim=True) / 127.0
    inv = torch.where(d > 0, 1.0 / d, torch.zeros_like(d))
    t = b * inv
    if ggml and block == 32:
        d = d.to(torch.float16).to(x.dtype)
    return t, d


class NearBoundary(Exception):
    """Raised inside a forward pass when an element is not clear."""


def _rounder(block, ggml):
    def fn(x, probe):
        shp = x.shape
        t, d = _q8_units(x, block, ggml)
        q = torch.clamp(torch.round(t), -127.0, 127.0)   # ties to even
        if probe is not None:
            dist = 0.5 - (t - torch.round(t)).abs()       # to x.5
            ratio = float((dist / (BOUNDARY_STEPS
                                   + BOUNDARY_REL * t.abs())).min())
            if probe and probe[0] == "raise" and ratio < 1.0:
                raise NearBoundary()
            probe.append(ratio)
        return (q * d).reshape(shp)
    return fn


def rounder(qt, ggml=False):
    """The activation rounding for a matmul with `qt` weights, or None
    (f32/f16/bf16 weights take f32 activations in expertcache)."""
    if qt == QT.Q8_0:
        return _rounder(32, ggml)
    if qt in (QT.Q4_K, QT.Q6_K):
        return _rounder(256, ggml)
    return None


@contextlib.contextmanager
def rounded_activations(params, ggml=False, probe=None):
    """params: [(torch parameter, QT)].  Patches F.linear while active.
    probe: a list that receives, per rounded matmul, the smallest ratio of
    an element's distance to its rounding boundary to the margin above:
    an element is clear when that is >= 1.  A probe that starts
    with "raise" makes the first element that is not clear raise
    NearBoundary instead, ending the forward pass early."""
    spans = []
    for p, qt in params:
        start = p.data_ptr()
        spans.append((start, start + p.numel() * p.element_size(),
                      rounder(qt, ggml)))
    orig = F.linear

    def linear(x, w, b=None):
        ptr = w.data_ptr()
        for start, end, fn in spans:
            if start <= ptr < end:
                if fn is not None:
                    x = fn(x, probe)
                break
        return orig(x, w, b)

    F.linear = linear
    try:
        yield
    finally:
        F.linear = orig


def gguf_name_of(param_name, tied):
    """In-memory transformers parameter name -> the GGUF tensor holding it
    (experts are fused gate_up_proj / down_proj in transformers 5)."""
    n = param_name
    if n == "lm_head.weight":
        return "token_embd.weight" if tied else "output.weight"
    if n == "model.embed_tokens.weight":
        return "token_embd.weight"
    parts = n.split(".")
    if parts[:2] != ["model", "layers"]:
        return None
    table = {
        "self_attn.q_proj.weight": "attn_q",
        "self_attn.k_proj.weight": "attn_k",
        "self_attn.v_proj.weight": "attn_v",
        "self_attn.o_proj.weight": "attn_output",
        "mlp.gate.weight": "ffn_gate_inp",
        "mlp.experts.gate_up_proj": "ffn_gate_exps",  # gate and up share
        "mlp.experts.down_proj": "ffn_down_exps",
        "mlp.shared_expert.gate_proj.weight": "ffn_gate_shexp",
        "mlp.shared_expert.up_proj.weight": "ffn_up_shexp",
        "mlp.shared_expert.down_proj.weight": "ffn_down_shexp",
        "mlp.shared_expert_gate.weight": "ffn_gate_inp_shexp",
    }
    rest = ".".join(parts[3:])
    if rest not in table:
        return None
    return f"blk.{parts[2]}.{table[rest]}.weight"


def gguf_param_types(model, types, tied):
    """[(param, QT)] for the matmul weights of `model`, typed as in the GGUF
    whose tensor types are `types` ({gguf name: QT})."""
    out = []
    for name, p in model.named_parameters():
        g = gguf_name_of(name, tied)
        if g is not None and p.dim() >= 2:
            if g not in types:
                raise KeyError(f"{name}: {g} not in the GGUF")
            out.append((p, types[g]))
    return out


def max_abs(a, b):
    return float(np.max(np.abs(np.asarray(a) - np.asarray(b))))
