#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""Checks the shipped GGUF against the Hugging Face checkpoint it came from.

1. Reads the GGUF with gguf.GGUFReader and checks the qwen3moe keys.
2. Rebuilds a transformers Qwen3MoeForCausalLM from the GGUF alone
   (configuration from its keys, weights dequantised to float32) and
   compares its logits with the checkpoint's on validation windows.
3. Rebuilds the tokenizer from tokenizer.ggml.{tokens,merges} with the Qwen2
   pre-tokenizer and checks it encodes the validation files exactly as
   tokenizer.json does.
4. Checks that the training-time expert implementations (moe_common dense
   and sparse) give the same logits as transformers' own.
5. Validation loss in float32 of the GGUF model, routing statistics on the
   validation set and on HumanEval prompts, and greedy samples.

Writes a JSON report (default build/bundled-hf/verify.json); exits non-zero
if a check fails.
"""
import argparse
import gzip
import json
import math
import os
import sys

import numpy as np
import torch
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import moe_common  # noqa: E402

ARCH = "qwen3moe"
REQUIRED_KEYS = [
    "general.architecture", ARCH + ".block_count", ARCH + ".context_length",
    ARCH + ".embedding_length", ARCH + ".feed_forward_length",
    ARCH + ".attention.head_count", ARCH + ".attention.head_count_kv",
    ARCH + ".attention.key_length", ARCH + ".attention.value_length",
    ARCH + ".rope.freq_base", ARCH + ".attention.layer_norm_rms_epsilon",
    ARCH + ".expert_count", ARCH + ".expert_used_count",
    ARCH + ".expert_feed_forward_length", ARCH + ".expert_weights_norm",
    "tokenizer.ggml.model", "tokenizer.ggml.pre", "tokenizer.ggml.tokens",
    "tokenizer.ggml.token_type", "tokenizer.ggml.merges",
    "tokenizer.ggml.bos_token_id", "tokenizer.ggml.eos_token_id",
    "tokenizer.ggml.padding_token_id", "tokenizer.chat_template",
]
PROMPTS = [
    "def fibonacci(n):",
    "def fibonacci(n):\n",
    "import os\nimport sys\n\n\ndef main():",
    "class Stack:\n    \"\"\"A last-in, first-out stack.\"\"\"\n\n"
    "    def __init__(self):",
    "def is_prime(n):\n    \"\"\"Return True if n is a prime number.\"\"\"\n",
    "    def __repr__(self):",
]
QWEN3_TOKENIZER = "/work/shared/fixtures/qwen3-tokenizer/tokenizer.json"
HUMANEVAL = "/work/shared/fixtures/humaneval/HumanEval.jsonl.gz"


class Checks:
    def __init__(self):
        self.results = []

    def check(self, ok, what):
        self.results.append({"ok": bool(ok), "what": what})
        print("%s: %s" % ("ok  " if ok else "FAIL", what), flush=True)

    @property
    def failed(self):
        return sum(1 for r in self.results if not r["ok"])


def field_value(reader, key):
    f = reader.fields[key]
    if len(f.types) == 1:
        return f.contents()
    return f.contents()          # arrays come back as lists


def read_gguf(path, checks):
    from gguf import GGUFReader
    from gguf.quants import dequantize
    r = GGUFReader(path)
    kv = {}
    for k in r.fields:
        if k.startswith("GGUF."):
            continue
        kv[k] = field_value(r, k)
    for k in REQUIRED_KEYS:
        checks.check(k in kv, "GGUF has key %s" % k)
    checks.check(kv.get("general.architecture") == ARCH,
                 "general.architecture is %s" % ARCH)
    checks.check(kv.get("tokenizer.ggml.model") == "gpt2" and
                 kv.get("tokenizer.ggml.pre") == "qwen2",
                 "tokenizer.ggml.model gpt2, pre qwen2")
    tensors = {}
    types = {}
    for t in r.tensors:
        arr = dequantize(t.data, t.tensor_type)
        shape = tuple(int(x) for x in reversed(t.shape.tolist()))
        tensors[t.name] = torch.from_numpy(
            np.asarray(arr, dtype=np.float32).reshape(shape).copy())
        types[t.name] = t.tensor_type.name
    return kv, tensors, types


def config_from_gguf(kv):
    from transformers import Qwen3MoeConfig
    a = ARCH + "."
    n_vocab = len(kv["tokenizer.ggml.tokens"])
    return Qwen3MoeConfig(
        vocab_size=n_vocab,
        hidden_size=kv[a + "embedding_length"],
        intermediate_size=kv[a + "feed_forward_length"],
        num_hidden_layers=kv[a + "block_count"],
        num_attention_heads=kv[a + "attention.head_count"],
        num_key_value_heads=kv[a + "attention.head_count_kv"],
        head_dim=kv[a + "attention.key_length"],
        max_position_embeddings=kv[a + "context_length"],
        rms_norm_eps=float(kv[a + "attention.layer_norm_rms_epsilon"]),
        rope_parameters={"rope_type": "default",
                         "rope_theta": float(kv[a + "rope.freq_base"])},
        tie_word_embeddings=True,
        num_experts=kv[a + "expert_count"],
        num_experts_per_tok=kv[a + "expert_used_count"],
        moe_intermediate_size=kv[a + "expert_feed_forward_length"],
        norm_topk_prob=bool(kv[a + "expert_weights_norm"]),
        decoder_sparse_step=1, mlp_only_layers=[],
        bos_token_id=kv["tokenizer.ggml.bos_token_id"],
        eos_token_id=kv["tokenizer.ggml.eos_token_id"],
        pad_token_id=kv["tokenizer.ggml.padding_token_id"],
    )


def model_from_gguf(kv, t, checks):
    from transformers import Qwen3MoeForCausalLM
    cfg = config_from_gguf(kv)
    cfg.tie_word_embeddings = "output.weight" not in t
    sd = {"model.embed_tokens.weight": t["token_embd.weight"],
          "model.norm.weight": t["output_norm.weight"]}
    if "output.weight" in t:
        sd["lm_head.weight"] = t["output.weight"]
    for i in range(cfg.num_hidden_layers):
        p, b = "model.layers.%d." % i, "blk.%d." % i
        sd.update({
            p + "input_layernorm.weight": t[b + "attn_norm.weight"],
            p + "self_attn.q_proj.weight": t[b + "attn_q.weight"],
            p + "self_attn.k_proj.weight": t[b + "attn_k.weight"],
            p + "self_attn.v_proj.weight": t[b + "attn_v.weight"],
            p + "self_attn.o_proj.weight": t[b + "attn_output.weight"],
            p + "self_attn.q_norm.weight": t[b + "attn_q_norm.weight"],
            p + "self_attn.k_norm.weight": t[b + "attn_k_norm.weight"],
            p + "post_attention_layernorm.weight": t[b + "ffn_norm.weight"],
            p + "mlp.gate.weight": t[b + "ffn_gate_inp.weight"],
            p + "mlp.experts.gate_up_proj": torch.cat(
                [t[b + "ffn_gate_exps.weight"], t[b + "ffn_up_exps.weight"]],
                dim=1),
            p + "mlp.experts.down_proj": t[b + "ffn_down_exps.weight"],
        })
    model = Qwen3MoeForCausalLM(cfg)
    missing, unexpected = model.load_state_dict(sd, strict=False)
    missing = [m for m in missing if m != "lm_head.weight"]
    used = {"token_embd.weight", "output_norm.weight", "output.weight"}
    used |= {"blk.%d.%s.weight" % (i, n) for i in range(cfg.num_hidden_layers)
             for n in ("attn_norm", "attn_q", "attn_k", "attn_v",
                       "attn_output", "attn_q_norm", "attn_k_norm",
                       "ffn_norm", "ffn_gate_inp", "ffn_gate_exps",
                       "ffn_up_exps", "ffn_down_exps")}
    stray = sorted(set(t) - used)
    checks.check(not missing and not unexpected and not stray,
                 "every GGUF tensor maps onto a model parameter "
                 "(missing %s, unexpected %s, unused GGUF tensors %s)"
                 % (missing, unexpected, stray))
    model.tie_weights()
    return model.eval()


def tokenizer_from_gguf(kv):
    from tokenizers import Tokenizer
    with open(QWEN3_TOKENIZER, encoding="utf-8") as fh:
        qwen = json.load(fh)
    toks = kv["tokenizer.ggml.tokens"]
    types = kv["tokenizer.ggml.token_type"]
    vocab = {t: i for i, t in enumerate(toks) if types[i] == 1}
    added = [{"id": i, "content": toks[i], "single_word": False,
              "lstrip": False, "rstrip": False, "normalized": False,
              "special": types[i] == 3}
             for i in range(len(toks)) if types[i] != 1]
    tj = {"version": "1.0", "truncation": None, "padding": None,
          "added_tokens": added,
          "normalizer": qwen["normalizer"],
          "pre_tokenizer": qwen["pre_tokenizer"],
          "post_processor": qwen["post_processor"],
          "decoder": qwen["decoder"],
          "model": dict(qwen["model"], vocab=vocab,
                        merges=[m.split(" ") for m in
                                kv["tokenizer.ggml.merges"]])}
    return Tokenizer.from_str(json.dumps(tj, ensure_ascii=False))


def val_windows(val, ctx, n):
    total = (val.size - 1) // ctx
    idx = np.arange(total)
    if 0 < n < total:
        idx = np.linspace(0, total - 1, n).round().astype(np.int64)
    w = (idx * ctx)[:, None] + np.arange(ctx + 1)[None, :]
    return torch.from_numpy(val[w].astype(np.int64))


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--gguf", default="models/tiny-qwen3moe-f16.gguf")
    ap.add_argument("--hf", default="build/bundled-hf")
    ap.add_argument("--data", default=".carry/train")
    ap.add_argument("--text", default="build/train",
                    help="folder with val.txt (prepare_data.py)")
    ap.add_argument("--out", default="build/bundled-hf/verify.json")
    ap.add_argument("--logit-windows", type=int, default=4)
    ap.add_argument("--loss-windows", type=int, default=0,
                    help="val windows for the float32 loss (0: all)")
    ap.add_argument("--max-new-tokens", type=int, default=80)
    ap.add_argument("--threads", type=int, default=0)
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    from tokenizers import Tokenizer
    from transformers import Qwen3MoeForCausalLM

    checks = Checks()
    report = {"gguf": args.gguf, "bytes": os.path.getsize(args.gguf)}
    kv, tensors, types = read_gguf(args.gguf, checks)
    report["tensor_types"] = sorted(set(types.values()))
    report["metadata"] = {k: v for k, v in kv.items()
                          if not k.startswith("tokenizer.ggml.")
                          and k != "tokenizer.chat_template"}
    ref = Qwen3MoeForCausalLM.from_pretrained(args.hf,
                                              dtype=torch.float32).eval()
    ref.set_experts_implementation("eager")
    gm = model_from_gguf(kv, tensors, checks)
    gm.set_experts_implementation("eager")
    ctx = ref.config.max_position_embeddings
    checks.check(ref.config.to_diff_dict().get("vocab_size") ==
                 gm.config.vocab_size and
                 ref.config.num_experts == gm.config.num_experts,
                 "configuration rebuilt from GGUF keys matches config.json")
    report["n_params"] = sum(p.numel() for p in gm.parameters())

    # Weights: every GGUF tensor equals the checkpoint's, exactly.
    rsd, gsd = ref.state_dict(), gm.state_dict()
    worst = max(float((rsd[k] - gsd[k]).abs().max()) for k in rsd)
    checks.check(worst == 0.0, "GGUF weights equal the checkpoint's "
                 "(max abs diff %g)" % worst)

    # Tokenizer rebuilt from the GGUF vs tokenizer.json.
    tj_tok = Tokenizer.from_file(os.path.join(args.hf, "tokenizer.json"))
    gg_tok = tokenizer_from_gguf(kv)
    with open(os.path.join(args.text, "val.txt"), encoding="utf-8",
              newline="") as fh:
        docs = [d for d in fh.read().split("<|endoftext|>") if d]
    same = all(a.ids == b.ids for a, b in zip(
        tj_tok.encode_batch(docs), gg_tok.encode_batch(docs)))
    checks.check(same, "tokenizer rebuilt from GGUF encodes the %d "
                 "validation files like tokenizer.json" % len(docs))
    with open(QWEN3_TOKENIZER, encoding="utf-8") as fh:
        qwen_regex = json.load(fh)["pre_tokenizer"]
    checks.check(json.loads(tj_tok.to_str())["pre_tokenizer"] == qwen_regex,
                 "pre-tokenizer is Qwen2's (Split regex + ByteLevel)")

    # Logits: GGUF model vs checkpoint.
    val = np.load(os.path.join(args.data, "val.npy"))
    lw = val_windows(val, ctx, args.logit_windows)[:, :-1]
    with torch.no_grad():
        lr_ = ref(input_ids=lw).logits
        lg = gm(input_ids=lw).logits
    diff = float((lr_ - lg).abs().max())
    agree = float((lr_.argmax(-1) == lg.argmax(-1)).float().mean())
    checks.check(diff < 1e-3 and agree == 1.0,
                 "GGUF logits equal the checkpoint's on %d x %d tokens "
                 "(max abs diff %.3g, argmax agreement %.4f)"
                 % (lw.shape[0], lw.shape[1], diff, agree))
    report["logits_max_abs_diff"] = diff

    # Training-time expert implementations vs transformers' own.
    for impl in ("sparse", "dense"):
        moe_common.patch_moe(gm, impl)
        with torch.no_grad():
            li = gm(input_ids=lw).logits
        d = float((li - lg).abs().max())
        checks.check(d < 1e-3, "moe_common %s experts match transformers "
                     "(max abs diff %.3g)" % (impl, d))
    blocks = moe_common.patch_moe(gm, "hf")

    # float32 validation loss and routing statistics.
    cfg = gm.config
    stats = moe_common.RoutingStats(cfg.num_hidden_layers, cfg.num_experts,
                                    cfg.num_experts_per_tok)
    vw = val_windows(val, ctx, args.loss_windows)
    tot, n = 0.0, 0
    with torch.no_grad():
        for i in range(0, vw.shape[0], 8):
            b = vw[i:i + 8]
            lo = gm(input_ids=b[:, :-1]).logits
            tot += float(F.cross_entropy(lo.reshape(-1, lo.shape[-1]),
                                         b[:, 1:].reshape(-1),
                                         reduction="sum"))
            n += b[:, 1:].numel()
            stats.add(blocks, b.shape[0], b.shape[1] - 1)
    report["val_loss_f32"] = round(tot / n, 5)
    report["val_ppl_f32"] = round(math.exp(tot / n), 3)
    report["val_tokens_scored"] = n
    report["routing_val"] = stats.summary()
    print("float32 val loss %.4f (ppl %.2f) on %d tokens"
          % (tot / n, math.exp(tot / n), n), flush=True)

    # Routing on HumanEval prompts (what the expert-cache work replays).
    if os.path.exists(HUMANEVAL):
        he = moe_common.RoutingStats(cfg.num_hidden_layers,
                                     cfg.num_experts,
                                     cfg.num_experts_per_tok)
        with gzip.open(HUMANEVAL, "rt", encoding="utf-8") as fh:
            probs = [json.loads(line)["prompt"] for line in fh]
        with torch.no_grad():
            for p in probs:
                ids = tj_tok.encode(p).ids[-ctx:]
                gm(input_ids=torch.tensor([ids]))
                he.add(blocks, 1, len(ids))
        report["routing_humaneval_prompts"] = he.summary()
        report["humaneval_prompts"] = len(probs)

    # Greedy samples from the GGUF-built model.
    for blk in blocks:
        blk.ec_record = False
    samples = []
    eot = cfg.eos_token_id
    for p in PROMPTS:
        ids = torch.tensor([tj_tok.encode(p).ids])
        with torch.no_grad():
            out = gm.generate(ids, max_new_tokens=args.max_new_tokens,
                              do_sample=False, eos_token_id=eot,
                              pad_token_id=eot)
        text = tj_tok.decode(out[0].tolist(), skip_special_tokens=False)
        samples.append({"prompt": p, "output": text})
        print("---- %r\n%s" % (p, text), flush=True)
    report["samples"] = samples
    report["checks"] = checks.results
    os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
    with open(args.out, "w", encoding="utf-8") as fh:
        json.dump(report, fh, indent=1, ensure_ascii=False)
    print("%d passed, %d failed" % (len(checks.results) - checks.failed,
                                    checks.failed))
    sys.exit(1 if checks.failed else 0)


if __name__ == "__main__":
    main()
