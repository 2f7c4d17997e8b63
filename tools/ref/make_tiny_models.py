#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""Builds the reference-fidelity fixtures: tiny random MoE models + logits.

For each architecture (Qwen3-MoE, Mixtral, OLMoE, Qwen2-MoE) a small model
is built from its transformers config class with a fixed seed, saved as a
float32 safetensors checkpoint, and written as GGUF the way llama.cpp's
converter would (F32, Q8_0, Q4_K; plus F16 for Mixtral).  Qwen3-MoE also
gets a sharded copy with a hub-style (pre-v5) config.json, and BF16 and F16
checkpoints.  The reference logits for every file come from transformers in
float32 with eager attention and eager experts, run on exactly the weights
the file holds (quantised GGUFs are dequantised with gguf-py and loaded back
into transformers).  Quantised GGUFs get a second reference with the 8-bit
activation rounding of llama.cpp-style integer matmuls (act_quant_sim).

Each file's token sequence is random but drawn one token at a time, and a
draw is redrawn when it would put a router of the file's reference model
near a tie or, for quantised files, a rounded activation near a rounding
boundary (docs/FIDELITY.md says why).  Everything lands under --out with a manifest.json that
tests/ref/test_fidelity.sh reads.  Deterministic: same inputs, same bytes.
"""
import argparse
import contextlib
import copy
import json
import math
import os
import shutil
import sys
import tempfile

import numpy as np
import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import act_quant_sim as sim                     # noqa: E402
import gguf_export                              # noqa: E402
import q4k_quant                                # noqa: E402
from transformers import DynamicCache           # noqa: E402

N_TOKENS = 24
F32_TOL = 1e-3          # engine in f32 vs transformers in f32
TOL_MULT = 4.0          # rounded ref: TOL_MULT x its f32-vs-f64 difference
ROUTER_GAP = 1e-3       # min gap between the k-th and (k+1)-th router logit


def rope(theta):
    return {"rope_theta": theta, "rope_type": "default"}


# Shapes: hidden 256 so Q4_K (rows of 256) applies to every matmul reading
# the hidden state; expert widths of 256 or 128 put ffn_down in Q4_K or in
# the Q8_0 fallback; Qwen3 has n_head*head_dim != hidden like the real one.
MODELS = {
    "qwen3moe": dict(
        cls="Qwen3Moe", seed=101, gguf=["f32", "q8_0", "q4_k"],
        extras=["sharded", "bf16", "f16"],
        cfg=dict(vocab_size=512, hidden_size=256, intermediate_size=512,
                 num_hidden_layers=3, num_attention_heads=4,
                 num_key_value_heads=2, head_dim=32, num_experts=16,
                 num_experts_per_tok=4, moe_intermediate_size=256,
                 norm_topk_prob=True, rms_norm_eps=1e-6,
                 max_position_embeddings=4096, rope_parameters=rope(1e6),
                 tie_word_embeddings=False, bos_token_id=1, eos_token_id=2)),
    "mixtral": dict(
        cls="Mixtral", seed=202, gguf=["f32", "f16", "q8_0", "q4_k"],
        extras=[],
        cfg=dict(vocab_size=320, hidden_size=256, intermediate_size=128,
                 num_hidden_layers=2, num_attention_heads=4,
                 num_key_value_heads=2, num_local_experts=8,
                 num_experts_per_tok=2, rms_norm_eps=1e-5,
                 max_position_embeddings=4096, rope_parameters=rope(1e6),
                 sliding_window=None, tie_word_embeddings=False,
                 bos_token_id=1, eos_token_id=2)),
    # llama.cpp's converter hard-codes OLMoE's rms eps to 1e-5: keep it so.
    "olmoe": dict(
        cls="Olmoe", seed=303, gguf=["f32", "q8_0", "q4_k"], extras=[],
        cfg=dict(vocab_size=384, hidden_size=256, intermediate_size=256,
                 num_hidden_layers=2, num_attention_heads=4,
                 num_key_value_heads=4, num_experts=16,
                 num_experts_per_tok=4, norm_topk_prob=False,
                 rms_norm_eps=1e-5, max_position_embeddings=4096,
                 rope_parameters=rope(1e4), clip_qkv=None,
                 tie_word_embeddings=True, pad_token_id=None,
                 bos_token_id=1, eos_token_id=2)),
    "qwen2moe": dict(
        cls="Qwen2Moe", seed=404, gguf=["f32", "q8_0", "q4_k"], extras=[],
        cfg=dict(vocab_size=448, hidden_size=256, intermediate_size=512,
                 num_hidden_layers=2, num_attention_heads=4,
                 num_key_value_heads=2, num_experts=8,
                 num_experts_per_tok=2, moe_intermediate_size=128,
                 shared_expert_intermediate_size=512, norm_topk_prob=False,
                 qkv_bias=True, use_sliding_window=False,
                 rms_norm_eps=1e-6, max_position_embeddings=4096,
                 rope_parameters=rope(1e6), tie_word_embeddings=False,
                 bos_token_id=1, eos_token_id=2)),
}


def classes(prefix):
    import transformers
    return (getattr(transformers, prefix + "Config"),
            getattr(transformers, prefix + "ForCausalLM"))


def init_weights(model, seed, tied):
    """Random weights with real spread: matrices N(0, gain/sqrt(fan_in)),
    norm weights 1 + N(0, 0.2), biases N(0, 0.3), so a wrong or missing
    norm, bias or scale shows in the logits."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in sorted(model.named_parameters()):
            if p.dim() == 1 and "norm" in name:
                p.copy_(1.0 + 0.2 * torch.randn(p.shape, generator=g))
            elif p.dim() == 1:
                p.copy_(0.3 * torch.randn(p.shape, generator=g))
            elif "embed_tokens" in name:
                # Tied: it is also the output head (logit std about 3).
                std = 3.0 / math.sqrt(p.shape[-1]) if tied else 1.0
                p.copy_(std * torch.randn(p.shape, generator=g))
            else:
                # Head: logit std about 3; routers: clear preferences.
                gain = (3.0 if "lm_head" in name else
                        2.0 if "mlp.gate." in name else 1.5)
                p.copy_(gain / math.sqrt(p.shape[-1])
                        * torch.randn(p.shape, generator=g))


def load_hf(path):
    from transformers import AutoModelForCausalLM
    m = AutoModelForCausalLM.from_pretrained(
        path, dtype=torch.float32, attn_implementation="eager",
        experts_implementation="eager")
    return m.eval()


def forward(model, tokens, rounding=None, ggml=False, cache=None,
            probe=None):
    """Run `tokens` (after `cache`'s, if given) -> (logits (n, vocab),
    [router logits (n, n_expert)] per layer, the updated cache).
    rounding: [(param, QT)] to round activations as act_quant_sim does
    (ggml: ggml's variant); probe collects rounding-boundary margins."""
    routers = []
    hooks = [mod.register_forward_hook(
        lambda _m, _i, out: routers.append(out[0].detach().float().clone()))
        for name, mod in model.named_modules() if name.endswith("mlp.gate")]
    ctx = (sim.rounded_activations(rounding, ggml, probe)
           if rounding is not None else contextlib.nullcontext())
    try:
        with torch.no_grad(), ctx:
            ids = torch.tensor([tokens], dtype=torch.long)
            out = model(ids, past_key_values=cache,
                        use_cache=cache is not None)
    finally:
        for h in hooks:
            h.remove()
    return (out.logits[0].float().numpy(), [r.numpy() for r in routers],
            out.past_key_values)


def legacy_config(cfg):
    """A v5 config.json rewritten the way hub checkpoints spell it."""
    c = dict(cfg)
    rp = c.pop("rope_parameters", None) or {}
    c["rope_theta"] = rp.get("rope_theta", 10000.0)
    c["rope_scaling"] = None
    if "num_local_experts" in c and c["model_type"] != "mixtral":
        c["num_experts"] = c.pop("num_local_experts")
    if "dtype" in c:
        c["torch_dtype"] = c.pop("dtype")
    return c


def save_state(state, cfg_dir, out_dir):
    """Write a hub-format state dict beside a copy of cfg_dir's config."""
    from safetensors.numpy import save_file
    os.makedirs(out_dir, exist_ok=True)
    save_file({k: np.ascontiguousarray(v) for k, v in state.items()},
              os.path.join(out_dir, "model.safetensors"),
              metadata={"format": "pt"})
    shutil.copy(os.path.join(cfg_dir, "config.json"), out_dir)


class RefSet:
    """One reference model and the fixture files it is the reference for.
    rounding_of(model) -> [(param, QT)]: how an integer-matmul engine
    rounds each matmul's activations for these files (None: it does not,
    as for f32/f16/bf16 weights)."""

    def __init__(self, key, model, rounding_of, cases):
        self.key, self.model, self.rounding_of = key, model, rounding_of
        self.rounding = rounding_of(model) if rounding_of else None
        self.cases = cases      # [(case name, model path)]


def build_arch(arch, spec, out, tmp, log):
    """Write every file of one architecture under out/arch; returns that
    directory, the reference sets and the transformers config."""
    d = os.path.join(out, arch)
    if os.path.isdir(d):
        shutil.rmtree(d)
    os.makedirs(d)
    cfg_cls, lm_cls = classes(spec["cls"])
    config = cfg_cls(**spec["cfg"])
    torch.manual_seed(spec["seed"])
    model = lm_cls(config).eval()
    tied = bool(spec["cfg"].get("tie_word_embeddings"))
    init_weights(model, spec["seed"], tied)

    hf_dir = os.path.join(d, "hf")
    model.save_pretrained(hf_dir, safe_serialization=True)
    ref_model = load_hf(hf_dir)
    probe_ids = list(range(1, 9))
    a = forward(model, probe_ids)[0]
    b = forward(ref_model, probe_ids)[0]
    if sim.max_abs(a, b) > 1e-5:
        raise AssertionError(f"{arch}: reloaded checkpoint differs "
                             f"({sim.max_abs(a, b):.2e})")
    refsets = [RefSet("hf", ref_model, None, [("hf", hf_dir)])]
    hub = gguf_export.read_safetensors(hf_dir)
    cfg = gguf_export.load_config(hf_dir)

    if "sharded" in spec["extras"]:
        sd = os.path.join(d, "hf-sharded")
        model.save_pretrained(sd, safe_serialization=True,
                              max_shard_size="10MB")
        with open(os.path.join(sd, "config.json"), "w") as f:
            json.dump(legacy_config(cfg), f, indent=2, sort_keys=True)
        shards = [f for f in os.listdir(sd) if f.endswith(".safetensors")]
        c = forward(load_hf(sd), probe_ids)[0]
        if len(shards) < 2 or sim.max_abs(b, c) != 0.0:
            raise AssertionError(f"{arch}: sharded copy ({len(shards)} "
                                 f"shards) differs by {sim.max_abs(b, c)}")
        refsets[0].cases.append(("hf-sharded", sd))
    for dt in ("bf16", "f16"):
        if dt not in spec["extras"]:
            continue
        hd = os.path.join(d, "hf-" + dt)
        copy.deepcopy(model).to(getattr(torch, {"bf16": "bfloat16",
                                                "f16": "float16"}[dt])) \
            .save_pretrained(hd, safe_serialization=True)
        refsets.append(RefSet("hf-" + dt, load_hf(hd), None,
                              [("hf-" + dt, hd)]))

    for q in spec["gguf"]:
        path = os.path.join(d, f"{arch}-{q}.gguf")
        gguf_export.export_gguf(hf_dir, path, q, name=f"tiny-{arch}")
        state, types = gguf_export.import_gguf(path, cfg, list(hub))
        if q == "f32":
            bad = [k for k in hub if not np.array_equal(hub[k], state[k])]
            if bad:
                raise AssertionError(f"{path}: F32 round trip differs: {bad}")
            refsets[0].cases.append((f"{q}.gguf", path))
            continue
        deq = os.path.join(tmp, f"{arch}-{q}")
        save_state(state, hf_dir, deq)
        rounding_of = None
        if any(sim.rounder(t) for t in types.values()):
            rounding_of = (lambda mm, t=types:
                           sim.gguf_param_types(mm, t, tied))
        refsets.append(RefSet(q, load_hf(deq), rounding_of,
                              [(f"{q}.gguf", path)]))
        counts = {}
        for t in types.values():
            counts[t.name] = counts.get(t.name, 0) + 1
        log(f"  {os.path.basename(path)}: tensor types {counts}")
    return d, refsets, config


def routers_clear(k, routers):
    """Every layer's k-th and (k+1)-th router logit (one row) differ by at
    least ROUTER_GAP, so f32 noise cannot change the chosen experts."""
    for r in routers:
        row = np.sort(r[-1])[::-1]
        if row[k - 1] - row[k] < ROUTER_GAP:
            return False
    return True


def pick_tokens(rs, vocab, k, seed, n):
    """Random tokens in [2, vocab), drawn one position at a time for the
    files of reference set `rs`; a draw is redrawn if a router of its
    reference model comes near a tie or, when the engine rounds
    activations for these files, a rounded activation near a rounding
    boundary.  Each draw runs one step on KV caches of the accepted
    prefix."""
    rng = np.random.default_rng(seed)
    tokens, redrawn = [], 0
    runs = [True, False] if rs.rounding else [False]   # rounded first
    caches = {r: DynamicCache(config=rs.model.config) for r in runs}
    while len(tokens) < n:
        for _ in range(20 * vocab):
            tok = int(rng.integers(2, vocab))
            new = {}
            for rounded in runs:
                try:
                    _, routers, new[rounded] = forward(
                        rs.model, [tok], rs.rounding if rounded else None,
                        cache=copy.deepcopy(caches[rounded]),
                        probe=["raise"] if rounded else None)
                except sim.NearBoundary:
                    break
                if not routers_clear(k, routers):
                    break
            else:
                tokens.append(tok)
                caches = new
                break
            redrawn += 1
        else:
            raise RuntimeError(f"{rs.key}: no token keeps routers and "
                               f"rounding clear after {tokens}")
    return tokens, redrawn


def stable_on_prefill(rs, tokens):
    """pick_tokens checked one-token steps; the references are full
    prefills, whose f32 values differ slightly.  Require every rounded
    element to stay clear by half the margin there, in f32 and f64."""
    if rs.rounding is None:
        return True
    m64 = copy.deepcopy(rs.model).double()
    for m, rounding in ((rs.model, rs.rounding), (m64, rs.rounding_of(m64))):
        probe = []
        forward(m, tokens, rounding, probe=probe)
        if min(probe) < 0.5:
            return False
    return True


def round_tol(x):
    """Round up to one significant digit, e.g. 0.0123 -> 0.02."""
    e = math.floor(math.log10(x))
    return math.ceil(x / 10 ** e - 1e-9) * 10 ** e


def reference_cases(rs, arch, d, out, tokens, hf_model, log):
    """Save rs's reference logits and return its manifest cases.

    Every case gets the f32-activation reference, tolerance F32_TOL.  Files
    an integer-matmul engine reads with rounded activations also get the
    rounded reference, tolerance TOL_MULT x how far the same rounded run
    moves when computed in float64 (with the inputs kept clear of rounding
    boundaries that is f32 accumulation noise, so at most F32_TOL)."""
    plain = forward(rs.model, tokens)[0]
    m64 = copy.deepcopy(rs.model).double()
    plain64 = forward(m64, tokens)[0]
    refs = [{"ref": f"ref-{rs.key}.npy", "tol": F32_TOL,
             "method": "f32 activations"}]
    np.save(os.path.join(d, refs[0]["ref"]), plain.astype(np.float32))
    msg = f"f32 vs f64 {sim.max_abs(plain, plain64):.1e}"
    spread = 0.0
    if rs.rounding is not None:
        actq = forward(rs.model, tokens, rs.rounding)[0]
        actq64 = forward(m64, tokens, rs.rounding_of(m64))[0]
        ggml = forward(rs.model, tokens, rs.rounding, ggml=True)[0]
        spread = sim.max_abs(actq, plain)
        var = sim.max_abs(actq, actq64)
        tol = max(F32_TOL, round_tol(TOL_MULT * var))
        refs.append({"ref": f"ref-{rs.key}-actq.npy", "tol": tol,
                     "method": "8-bit activations"})
        np.save(os.path.join(d, refs[1]["ref"]), actq.astype(np.float32))
        msg += (f"; 8-bit activations move logits {spread:.2e}, "
                f"f32 vs f64 {var:.1e} -> tol {tol:.0e}; ggml's f16 "
                f"Q8_0 scales move them {sim.max_abs(actq, ggml):.1e}")
    shift = sim.max_abs(plain, forward(hf_model, tokens)[0])
    log(f"  {rs.key:8s} logit std {plain.std():.2f}, {msg}, "
        f"|ref - f32 model| {shift:.2e}")
    cases = []
    for name, path in rs.cases:
        cases.append({
            "name": f"{arch}/{name}",
            "model": os.path.relpath(path, out),
            "tokens": ",".join(map(str, tokens)),
            "refs": [dict(r, ref=os.path.relpath(os.path.join(d, r["ref"]),
                                                 out)) for r in refs],
            "rounding_spread": spread,
            "shift_from_f32": shift,
        })
    return cases


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--out", default="build/ref")
    ap.add_argument("--only", help="comma-separated architectures")
    ap.add_argument("-q", "--quiet", action="store_true")
    args = ap.parse_args()
    log = (lambda *a: None) if args.quiet else print
    torch.set_num_threads(min(2, os.cpu_count() or 1))

    err = q4k_quant.check()
    log(f"Q4_K quantiser: layout matches gguf-py, rel. RMS error {err:.3f}")
    out = os.path.abspath(args.out)
    os.makedirs(out, exist_ok=True)
    stamp = os.path.join(out, ".stamp")
    if os.path.exists(stamp):
        os.unlink(stamp)
    archs = args.only.split(",") if args.only else list(MODELS)
    cases = []
    with tempfile.TemporaryDirectory(prefix="ec-ref-") as tmp:
        for arch in archs:
            spec = MODELS[arch]
            log(f"{arch}:")
            d, refsets, config = build_arch(arch, spec, out, tmp, log)
            k = config.num_experts_per_tok
            for rs in refsets:
                for attempt in range(5):
                    tokens, redrawn = pick_tokens(
                        rs, config.vocab_size, k,
                        spec["seed"] + 7919 * attempt, N_TOKENS)
                    if stable_on_prefill(rs, tokens):
                        break
                    log(f"  {rs.key}: rounding not stable on prefill, "
                        f"drawing again")
                else:
                    raise RuntimeError(f"{arch}/{rs.key}: no stable tokens")
                with open(os.path.join(d, f"tokens-{rs.key}.txt"), "w") as f:
                    f.write(",".join(map(str, tokens)) + "\n")
                log(f"  {rs.key}: {redrawn} draws rejected")
                cases += reference_cases(rs, arch, d, out, tokens,
                                         refsets[0].model, log)
    with open(os.path.join(out, "manifest.json"), "w") as f:
        json.dump({"cases": cases, "n_tokens": N_TOKENS}, f, indent=1)
    with open(stamp, "w") as f:
        f.write("ok\n")
    log(f"{len(cases)} cases in {os.path.join(out, 'manifest.json')}")


if __name__ == "__main__":
    main()
