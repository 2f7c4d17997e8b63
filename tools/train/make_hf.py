#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""Turns a training run's output into a standard Hugging Face checkpoint.

Reads RUN/config.json and RUN/model-*.safetensors (train_moe.py), loads them
into a stock transformers Qwen3MoeForCausalLM (strictly: every tensor must be
present and used; the tied lm_head is the embedding), and writes OUT with
save_pretrained (F16 safetensors), tokenizer.json, a tokenizer_config.json
carrying Qwen3's chat template, generation_config.json and the run's
log.json.  Reloads OUT with from_pretrained and checks that every tensor is
bit-identical and the logits agree.
"""
import argparse
import copy
import glob
import json
import os
import shutil
import sys

import torch
from safetensors.torch import load_file

QWEN3_TOKENIZER_CONFIG = \
    "/work/shared/fixtures/qwen3-tokenizer/tokenizer_config.json"
EOT, IM_START, IM_END = "<|endoftext|>", "<|im_start|>", "<|im_end|>"


def load_run(run):
    from transformers import Qwen3MoeConfig, Qwen3MoeForCausalLM
    config = Qwen3MoeConfig.from_json_file(os.path.join(run, "config.json"))
    state = {}
    shards = sorted(glob.glob(os.path.join(run, "model-*.safetensors")))
    if not shards:
        sys.exit("make_hf: %s: no model-*.safetensors" % run)
    for sh in shards:
        for k, v in load_file(sh).items():
            if k in state:
                sys.exit("make_hf: %s: tensor %s twice" % (sh, k))
            state[k] = v
    # Keep the model in float32 (the F16 values convert exactly); casting
    # the module to float16 would also round its RoPE inv_freq buffer.
    model = Qwen3MoeForCausalLM(config)
    state = {k: v.float() for k, v in state.items()}
    missing, unexpected = model.load_state_dict(state, strict=False)
    missing = [m for m in missing if m != "lm_head.weight"]
    if missing or unexpected:
        sys.exit("make_hf: %s: missing %s, unexpected %s"
                 % (run, missing, unexpected))
    model.tie_weights()
    if model.lm_head.weight.data_ptr() != \
            model.model.embed_tokens.weight.data_ptr():
        sys.exit("make_hf: lm_head is not tied to the embedding")
    return model.eval()


def tokenizer_config(chat_template, ctx):
    return {
        "tokenizer_class": "Qwen2Tokenizer",
        "add_bos_token": False,
        "add_prefix_space": False,
        "bos_token": None,
        "eos_token": EOT,
        "pad_token": EOT,
        "unk_token": None,
        "additional_special_tokens": [IM_START, IM_END],
        "clean_up_tokenization_spaces": False,
        "errors": "replace",
        "model_max_length": ctx,
        "split_special_tokens": False,
        "chat_template": chat_template,
    }


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--run", default="build/train-run")
    ap.add_argument("--tokenizer", default=".carry/train/tokenizer.json")
    ap.add_argument("--out", default="build/bundled-hf")
    ap.add_argument("--qwen3-tokenizer-config",
                    default=QWEN3_TOKENIZER_CONFIG)
    args = ap.parse_args()
    from transformers import AutoTokenizer, Qwen3MoeForCausalLM

    model = load_run(args.run)
    with open(args.qwen3_tokenizer_config, encoding="utf-8") as fh:
        template = json.load(fh)["chat_template"]
    if os.path.isdir(args.out):
        shutil.rmtree(args.out)
    os.makedirs(args.out)
    model.generation_config.do_sample = False
    model.generation_config.bos_token_id = model.config.bos_token_id
    model.generation_config.eos_token_id = model.config.eos_token_id
    model.generation_config.pad_token_id = model.config.pad_token_id
    # Saved as F16 (the training output's precision) from a float16 copy;
    # only the non-persistent RoPE buffer of that copy is rounded.
    half = copy.deepcopy(model).to(torch.float16)
    half.tie_weights()
    half.save_pretrained(args.out)
    shutil.copyfile(args.tokenizer, os.path.join(args.out, "tokenizer.json"))
    with open(os.path.join(args.out, "tokenizer_config.json"), "w",
              encoding="utf-8") as fh:
        json.dump(tokenizer_config(template,
                                   model.config.max_position_embeddings),
                  fh, indent=1, ensure_ascii=False)
    for extra in ("log.json",):
        if os.path.exists(os.path.join(args.run, extra)):
            shutil.copyfile(os.path.join(args.run, extra),
                            os.path.join(args.out, extra))

    # The saved folder must reload to the very same model and tokenizer.
    again = Qwen3MoeForCausalLM.from_pretrained(
        args.out, dtype=torch.float32).eval()
    for k, v in model.state_dict().items():
        if not torch.equal(v, again.state_dict()[k]):
            sys.exit("make_hf: %s: tensor %s changed on reload"
                     % (args.out, k))
    tok = AutoTokenizer.from_pretrained(args.out)
    from tokenizers import Tokenizer
    raw = Tokenizer.from_file(args.tokenizer)
    sample = "def fibonacci(n):\n    return n if n < 2 else fib(n - 1)\n" \
             "# héllo 中文 <|im_start|>user\n"
    if tok(sample)["input_ids"] != raw.encode(sample).ids:
        sys.exit("make_hf: AutoTokenizer and tokenizer.json disagree")
    ids = torch.tensor([raw.encode(sample).ids])
    with torch.no_grad():
        a = model(input_ids=ids).logits
        b = again(input_ids=ids).logits
    # Same weights; only the order of float operations may differ.
    diff = float((a - b).abs().max())
    if diff > 1e-4:
        sys.exit("make_hf: logits differ by %g after reload" % diff)
    print("wrote %s (%s params); reload and tokenizer checks passed"
          % (args.out, sum(p.numel() for p in model.parameters())))


if __name__ == "__main__":
    main()
