# SPDX-License-Identifier: MIT
"""Hugging Face MoE checkpoint <-> GGUF, the way llama.cpp's converter does it.

export_gguf() reads a checkpoint directory (config.json + *.safetensors, the
hub's per-expert tensor names) and writes a GGUF with llama.cpp's
architecture names, metadata keys and tensor names (gguf-py's TensorNameMap,
the table convert_hf_to_gguf.py uses), experts stacked into [E, out, in]
tensors, Mixtral's q/k rows permuted for llama's interleaved-pair RoPE, and
the 2-D weights stored as F32, F16, Q8_0 or Q4_K.  As in convert_hf_to_gguf
and llama-quantize: norms, biases and routers (ffn_gate_inp, and the shared
expert's sigmoid gate) always stay F32; a tensor whose rows do not fit the
requested block size falls back to Q8_0 (rows % 32 == 0) or else F32.

import_gguf() inverts all of it (dequantise with gguf-py, un-permute,
unstack) back to hub tensor names, so a reference can be computed by
transformers on exactly the weights a quantised file holds.
"""
import json
import os
import re

import numpy as np
import gguf
from gguf import GGMLQuantizationType as QT

from q4k_quant import quantize_q4_k

# HF model_type -> (gguf architecture, gguf.MODEL_ARCH)
ARCHS = {
    "qwen3_moe": ("qwen3moe", gguf.MODEL_ARCH.QWEN3MOE),
    "mixtral": ("llama", gguf.MODEL_ARCH.LLAMA),
    "olmoe": ("olmoe", gguf.MODEL_ARCH.OLMOE),
    "qwen2_moe": ("qwen2moe", gguf.MODEL_ARCH.QWEN2MOE),
}

QTYPES = {"f32": QT.F32, "f16": QT.F16, "q8_0": QT.Q8_0, "q4_k": QT.Q4_K}
FILE_TYPES = {  # general.file_type (llama_ftype)
    QT.F32: gguf.LlamaFileType.ALL_F32,
    QT.F16: gguf.LlamaFileType.MOSTLY_F16,
    QT.Q8_0: gguf.LlamaFileType.MOSTLY_Q8_0,
    QT.Q4_K: gguf.LlamaFileType.MOSTLY_Q4_K_M,
}

EXPERT_RE = re.compile(
    r"^model\.layers\.(\d+)\.(mlp|block_sparse_moe)\.experts\.(\d+)\."
    r"(\w+)\.weight$")


def load_config(hf_dir):
    with open(os.path.join(hf_dir, "config.json")) as f:
        return json.load(f)


def hparams(cfg):
    """The numbers the GGUF metadata needs, from a v5 or a legacy config."""
    rope = cfg.get("rope_parameters") or {}
    theta = rope.get("rope_theta", cfg.get("rope_theta", 10000.0))
    n_head = cfg["num_attention_heads"]
    n_expert = cfg.get("num_local_experts", cfg.get("num_experts"))
    hp = {
        "n_layer": cfg["num_hidden_layers"],
        "n_ctx": cfg["max_position_embeddings"],
        "n_embd": cfg["hidden_size"],
        "n_ff": cfg["intermediate_size"],
        "n_head": n_head,
        "n_head_kv": cfg.get("num_key_value_heads", n_head),
        "head_dim": cfg.get("head_dim") or cfg["hidden_size"] // n_head,
        "rope_theta": float(theta),
        "rms_eps": float(cfg["rms_norm_eps"]),
        "n_expert": n_expert,
        "n_expert_used": cfg["num_experts_per_tok"],
        "n_vocab": cfg["vocab_size"],
        # Mixtral's experts are intermediate_size wide and its top-k
        # weights are always renormalised.
        "n_ff_exp": cfg.get("moe_intermediate_size", cfg["intermediate_size"]),
        "n_ff_shexp": cfg.get("shared_expert_intermediate_size", 0),
        "norm_topk": bool(cfg.get("norm_topk_prob",
                                  cfg["model_type"] == "mixtral")),
    }
    return hp


def read_safetensors(hf_dir):
    """All tensors of a (possibly sharded) checkpoint as float32 numpy."""
    import torch
    from safetensors import safe_open

    out = {}
    for fn in sorted(os.listdir(hf_dir)):
        if not fn.endswith(".safetensors"):
            continue
        with safe_open(os.path.join(hf_dir, fn), framework="pt") as f:
            for k in f.keys():
                out[k] = f.get_tensor(k).to(torch.float32).numpy()
    if not out:
        raise FileNotFoundError(f"{hf_dir}: no *.safetensors")
    return out


def llama_permute(w, n_head):
    """convert_hf_to_gguf's LlamaModel.permute: HF's rotate-half row order
    -> the interleaved pairs llama.cpp's rope expects."""
    return (w.reshape(n_head, 2, w.shape[0] // n_head // 2, *w.shape[1:])
            .swapaxes(1, 2).reshape(w.shape))


def llama_unpermute(w, n_head):
    return (w.reshape(n_head, w.shape[0] // n_head // 2, 2, *w.shape[1:])
            .swapaxes(1, 2).reshape(w.shape))


def _merged_expert_name(model_type, bid, part):
    # The names convert_hf_to_gguf hands to map_tensor_name after stacking.
    if model_type == "mixtral":
        return f"layers.{bid}.feed_forward.experts.{part}.weight"
    return f"model.layers.{bid}.mlp.experts.{part}.weight"


def to_gguf_tensors(cfg, hf):
    """Hub tensors -> [(gguf name, float32 array)] in llama.cpp's layout."""
    arch, march = ARCHS[cfg["model_type"]]
    hp = hparams(cfg)
    tmap = gguf.get_tensor_name_map(march, hp["n_layer"])
    experts = {}    # (bid, part) -> {xid: array}
    out = []
    for name in sorted(hf, key=_sort_key):
        w = hf[name]
        m = EXPERT_RE.match(name)
        if m:
            bid, xid, part = int(m.group(1)), int(m.group(3)), m.group(4)
            experts.setdefault((bid, part), {})[xid] = w
            continue
        if cfg["model_type"] == "mixtral":
            if name.endswith(("q_proj.weight", "q_proj.bias")):
                w = llama_permute(w, hp["n_head"])
            elif name.endswith(("k_proj.weight", "k_proj.bias")):
                w = llama_permute(w, hp["n_head_kv"])
        gname = tmap.get_name(name, try_suffixes=(".weight", ".bias"))
        if gname is None:
            raise ValueError(f"cannot map tensor {name!r} for {arch}")
        out.append((gname, w))
    for (bid, part), per in sorted(experts.items()):
        if sorted(per) != list(range(hp["n_expert"])):
            raise ValueError(f"layer {bid} {part}: experts {sorted(per)}")
        stacked = np.stack([per[x] for x in range(hp["n_expert"])])
        merged = _merged_expert_name(cfg["model_type"], bid, part)
        gname = tmap.get_name(merged, try_suffixes=(".weight",))
        if gname is None:
            raise ValueError(f"cannot map tensor {merged!r} for {arch}")
        out.append((gname, stacked))
    return sorted(out, key=lambda t: _sort_key(t[0]))


def _sort_key(name):
    """Layer order, then name: token_embd, blk.0.*, ..., output*."""
    m = re.search(r"(?:layers|blk)\.(\d+)\.", name)
    if m:
        return (1, int(m.group(1)), name)
    return (0 if "embd" in name or "embed" in name else 2, 0, name)


def tensor_qtype(gname, shape, want):
    """The type a tensor is stored as when `want` is requested."""
    always_f32 = (gname.endswith(("_norm.weight", ".bias"))
                  or ".ffn_gate_inp" in gname)  # routers, incl. _shexp
    if len(shape) <= 1 or always_f32 or want == QT.F32:
        return QT.F32
    row = shape[-1]
    if want == QT.Q4_K and row % 256 == 0:
        return QT.Q4_K
    if want in (QT.Q4_K, QT.Q8_0):
        return QT.Q8_0 if row % 32 == 0 else QT.F32
    return want


def encode(w, qt):
    if qt == QT.F32:
        return w.astype(np.float32)
    if qt == QT.F16:
        return w.astype(np.float16)
    if qt == QT.Q4_K:
        return quantize_q4_k(w)
    return gguf.quants.quantize(w.astype(np.float32), qt)


def export_gguf(hf_dir, path, want="f32", name=None):
    """Write hf_dir's weights to `path`; returns {gguf name: QT}."""
    cfg = load_config(hf_dir)
    hf = read_safetensors(hf_dir)
    arch, _ = ARCHS[cfg["model_type"]]
    hp = hparams(cfg)
    qwant = QTYPES[want]

    w = gguf.GGUFWriter(path, arch)
    w.add_name(name or os.path.basename(os.path.normpath(hf_dir)))
    w.add_block_count(hp["n_layer"])
    w.add_context_length(hp["n_ctx"])
    w.add_embedding_length(hp["n_embd"])
    w.add_feed_forward_length(hp["n_ff"])
    w.add_head_count(hp["n_head"])
    w.add_head_count_kv(hp["n_head_kv"])
    w.add_key_length(hp["head_dim"])
    w.add_value_length(hp["head_dim"])
    w.add_rope_freq_base(hp["rope_theta"])
    w.add_layer_norm_rms_eps(hp["rms_eps"])
    w.add_expert_count(hp["n_expert"])
    w.add_expert_used_count(hp["n_expert_used"])
    w.add_expert_feed_forward_length(hp["n_ff_exp"])
    if hp["n_ff_shexp"]:
        w.add_expert_shared_feed_forward_length(hp["n_ff_shexp"])
    w.add_expert_weights_norm(hp["norm_topk"])
    if arch == "llama":  # LlamaModel.set_gguf_parameters adds these
        w.add_vocab_size(hp["n_vocab"])
        w.add_rope_dimension_count(hp["head_dim"])
    for key, tok in (("bos", cfg.get("bos_token_id")),
                     ("eos", cfg.get("eos_token_id"))):
        if isinstance(tok, int):
            w.add_uint32(f"tokenizer.ggml.{key}_token_id", tok)
    w.add_file_type(FILE_TYPES[qwant])
    if qwant not in (QT.F32, QT.F16):
        w.add_quantization_version(gguf.GGML_QUANT_VERSION)

    types = {}
    for gname, t in to_gguf_tensors(cfg, hf):
        qt = tensor_qtype(gname, t.shape, qwant)
        data = encode(t, qt)
        if qt in (QT.F32, QT.F16):
            w.add_tensor(gname, data)
        else:
            w.add_tensor(gname, data, raw_dtype=qt)
        types[gname] = qt
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    return types


def import_gguf(path, cfg, hub_names):
    """GGUF -> {hub name: float32 array} for the names in `hub_names`
    (the original checkpoint's), dequantised, un-permuted and unstacked."""
    hp = hparams(cfg)
    reader = gguf.GGUFReader(path)
    tensors = {}
    for t in reader.tensors:
        shape = tuple(int(x) for x in reversed(t.shape.tolist()))
        data = gguf.quants.dequantize(t.data, t.tensor_type)
        tensors[t.name] = np.asarray(data, dtype=np.float32).reshape(shape)

    # Forward-map the hub names to find where each one went.
    _, march = ARCHS[cfg["model_type"]]
    tmap = gguf.get_tensor_name_map(march, hp["n_layer"])
    out = {}
    for name in hub_names:
        m = EXPERT_RE.match(name)
        if m:
            bid, xid, part = int(m.group(1)), int(m.group(3)), m.group(4)
            merged = _merged_expert_name(cfg["model_type"], bid, part)
            gname = tmap.get_name(merged, try_suffixes=(".weight",))
            out[name] = tensors[gname][xid].copy()
            continue
        gname = tmap.get_name(name, try_suffixes=(".weight", ".bias"))
        w = tensors[gname]
        if cfg["model_type"] == "mixtral":
            if name.endswith(("q_proj.weight", "q_proj.bias")):
                w = llama_unpermute(w, hp["n_head"])
            elif name.endswith(("k_proj.weight", "k_proj.bias")):
                w = llama_unpermute(w, hp["n_head_kv"])
        out[name] = np.ascontiguousarray(w)
    return out, {t.name: t.tensor_type for t in reader.tensors}
