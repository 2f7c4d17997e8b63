#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""Writes the bundled Hugging Face checkpoint as a llama.cpp-style GGUF.

Architecture "qwen3moe" with llama.cpp's key and tensor names (as in its
convert_hf_to_gguf.py / gguf-py constants): matrices F16, norms and the
router (ffn_gate_inp, as llama.cpp keeps it) F32, experts stacked per layer
as ffn_{gate,up,down}_exps with ggml shape {in, out, n_expert} (numpy
[E, out, in]); output.weight is omitted when the embedding is tied.  The
GPT-2/Qwen2 byte-level BPE tokenizer and Qwen3's chat template go inside.

The output depends only on the checkpoint: same input, same bytes.
"""
import argparse
import hashlib
import json
import os
import sys

import numpy as np
import torch

NAME = "expertcache tiny Qwen3-MoE (CPython stdlib)"


def tensor_plan(sd, cfg):
    """(gguf name, numpy array) in llama.cpp's order."""
    f16 = np.float16
    f32 = np.float32

    def get(name, dtype):
        t = sd[name].detach().to(torch.float32).cpu().numpy()
        out = t.astype(dtype)
        if dtype == f16 and not np.array_equal(out.astype(f32), t):
            sys.exit("export_gguf: %s is not exactly representable in F16"
                     % name)
        return np.ascontiguousarray(out)

    plan = [("token_embd.weight", get("model.embed_tokens.weight", f16))]
    inter = cfg.moe_intermediate_size
    for i in range(cfg.num_hidden_layers):
        p = "model.layers.%d." % i
        b = "blk.%d." % i
        gate_up = get(p + "mlp.experts.gate_up_proj", f16)   # [E, 2I, H]
        if gate_up.shape[1] != 2 * inter:
            sys.exit("export_gguf: layer %d: gate_up_proj has shape %s"
                     % (i, gate_up.shape))
        plan += [
            (b + "attn_norm.weight", get(p + "input_layernorm.weight", f32)),
            (b + "attn_q.weight", get(p + "self_attn.q_proj.weight", f16)),
            (b + "attn_k.weight", get(p + "self_attn.k_proj.weight", f16)),
            (b + "attn_v.weight", get(p + "self_attn.v_proj.weight", f16)),
            (b + "attn_output.weight",
             get(p + "self_attn.o_proj.weight", f16)),
            (b + "attn_q_norm.weight",
             get(p + "self_attn.q_norm.weight", f32)),
            (b + "attn_k_norm.weight",
             get(p + "self_attn.k_norm.weight", f32)),
            (b + "ffn_norm.weight",
             get(p + "post_attention_layernorm.weight", f32)),
            (b + "ffn_gate_inp.weight", get(p + "mlp.gate.weight", f32)),
            (b + "ffn_gate_exps.weight",
             np.ascontiguousarray(gate_up[:, :inter, :])),     # [E, I, H]
            (b + "ffn_up_exps.weight",
             np.ascontiguousarray(gate_up[:, inter:, :])),     # [E, I, H]
            (b + "ffn_down_exps.weight",
             get(p + "mlp.experts.down_proj", f16)),            # [E, H, I]
        ]
    plan.append(("output_norm.weight", get("model.norm.weight", f32)))
    if not cfg.tie_word_embeddings:
        plan.append(("output.weight", get("lm_head.weight", f16)))
    return plan


def tokenizer_fields(hf_dir):
    with open(os.path.join(hf_dir, "tokenizer.json"), encoding="utf-8") as fh:
        tj = json.load(fh)
    with open(os.path.join(hf_dir, "tokenizer_config.json"),
              encoding="utf-8") as fh:
        tc = json.load(fh)
    vocab = dict(tj["model"]["vocab"])
    special = {}
    for at in tj["added_tokens"]:
        vocab[at["content"]] = at["id"]
        special[at["id"]] = at["special"]
    n = max(vocab.values()) + 1
    tokens = [None] * n
    for t, i in vocab.items():
        if tokens[i] is not None:
            sys.exit("export_gguf: token id %d used twice" % i)
        tokens[i] = t
    if any(t is None for t in tokens):
        sys.exit("export_gguf: token ids are not contiguous")
    types = []
    for i in range(n):
        if i in special:
            types.append(3 if special[i] else 4)   # CONTROL / USER_DEFINED
        else:
            types.append(1)                         # NORMAL
    merges = [m if isinstance(m, str) else " ".join(m)
              for m in tj["model"]["merges"]]
    return tokens, types, merges, tc["chat_template"]


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--hf", default="build/bundled-hf")
    ap.add_argument("--out", default="models/tiny-qwen3moe-f16.gguf")
    ap.add_argument("--max-bytes", type=int, default=64 * 1000 * 1000)
    args = ap.parse_args()
    import gguf
    from transformers import Qwen3MoeForCausalLM

    model = Qwen3MoeForCausalLM.from_pretrained(args.hf,
                                                dtype=torch.float32)
    cfg = model.config
    sd = model.state_dict()
    tokens, types, merges, template = tokenizer_fields(args.hf)
    if len(tokens) != cfg.vocab_size:
        sys.exit("export_gguf: %d tokens but vocab_size %d"
                 % (len(tokens), cfg.vocab_size))
    head_dim = getattr(cfg, "head_dim", None) or \
        cfg.hidden_size // cfg.num_attention_heads

    tmp = args.out + ".tmp"
    w = gguf.GGUFWriter(tmp, "qwen3moe")
    w.add_name(NAME)
    w.add_description("Tiny Qwen3-MoE trained on the CPython 3.11 standard "
                      "library; test fixture for expertcache. See "
                      "models/README.md.")
    w.add_file_type(gguf.LlamaFileType.MOSTLY_F16)
    w.add_vocab_size(cfg.vocab_size)
    w.add_context_length(cfg.max_position_embeddings)
    w.add_embedding_length(cfg.hidden_size)
    w.add_feed_forward_length(cfg.intermediate_size)
    w.add_block_count(cfg.num_hidden_layers)
    w.add_head_count(cfg.num_attention_heads)
    w.add_head_count_kv(cfg.num_key_value_heads)
    w.add_key_length(head_dim)
    w.add_value_length(head_dim)
    w.add_rope_freq_base(float(cfg.rope_parameters["rope_theta"]))
    w.add_layer_norm_rms_eps(cfg.rms_norm_eps)
    w.add_expert_count(cfg.num_experts)
    w.add_expert_used_count(cfg.num_experts_per_tok)
    w.add_expert_feed_forward_length(cfg.moe_intermediate_size)
    w.add_expert_weights_norm(bool(cfg.norm_topk_prob))

    w.add_tokenizer_model("gpt2")
    w.add_tokenizer_pre("qwen2")
    w.add_token_list(tokens)
    w.add_token_types(types)
    w.add_token_merges(merges)
    w.add_bos_token_id(cfg.bos_token_id)
    w.add_eos_token_id(cfg.eos_token_id)
    w.add_pad_token_id(cfg.pad_token_id)
    w.add_add_bos_token(False)
    w.add_chat_template(template)

    for name, arr in tensor_plan(sd, cfg):
        w.add_tensor(name, arr)
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    size = os.path.getsize(tmp)
    if size > args.max_bytes:
        os.unlink(tmp)
        sys.exit("export_gguf: %d bytes, over the %d limit"
                 % (size, args.max_bytes))
    os.replace(tmp, args.out)
    h = hashlib.sha256()
    with open(args.out, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    print("wrote %s: %d bytes, sha256 %s" % (args.out, size, h.hexdigest()))


if __name__ == "__main__":
    main()
