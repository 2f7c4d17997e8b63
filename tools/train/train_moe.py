#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""Trains the bundled Qwen3-MoE model on the tokenised CPython stdlib.

Input: DATA/train.npy, DATA/val.npy, DATA/tokenizer.json, DATA/meta.json
(tokenize_data.py).  Output in OUT: model-0000N.safetensors (F16 weights of
the step with the lowest validation loss, split into shards under 15 MB so
they can come back from the GPU machine; the tied lm_head is left out),
config.json and log.json (losses, learning rate, throughput, routing
statistics, versions).

AdamW, linear warm-up then cosine decay, fixed seeds (initialisation: torch
seed; batches: numpy generator seeded by (seed, step)).  --max-minutes is a
hard wall-clock budget: the step count is reduced early in the run if the
measured speed says it will not fit (the log says so), and the run saves and
exits cleanly before the budget ends in any case.

  GPU: python3 tools/train/train_moe.py --device cuda --max-minutes 9 \\
           --steps 808 --eval-every 50
  CPU: python3 tools/train/train_moe.py --device cpu --threads 2 \\
           --max-minutes 90 --steps 600 --batch-size 8 --warmup 50 \\
           --eval-windows 16 --final-eval-windows 64
"""
import argparse
import json
import math
import os
import platform
import sys
import time

import numpy as np
import torch
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import moe_common  # noqa: E402

SHARD_BYTES = 15 * 1000 * 1000


def parse_args():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", default=".carry/train")
    ap.add_argument("--out", default="build/train-run")
    ap.add_argument("--device", default="cuda", choices=["cuda", "cpu"])
    ap.add_argument("--experts-impl", default="auto",
                    choices=["auto", "dense", "sparse", "hf"],
                    help="auto: dense on cuda, sparse on cpu")
    ap.add_argument("--threads", type=int, default=0,
                    help="CPU threads (0: torch default)")
    ap.add_argument("--seed", type=int, default=1234)
    ap.add_argument("--steps", type=int, default=2000)
    ap.add_argument("--batch-size", type=int, default=64)
    ap.add_argument("--ctx", type=int, default=512)
    ap.add_argument("--lr", type=float, default=3e-3)
    ap.add_argument("--min-lr-frac", type=float, default=0.1)
    ap.add_argument("--warmup", type=int, default=100)
    ap.add_argument("--weight-decay", type=float, default=0.1)
    ap.add_argument("--grad-clip", type=float, default=1.0)
    ap.add_argument("--aux-coef", type=float, default=0.001)
    ap.add_argument("--eval-every", type=int, default=100)
    ap.add_argument("--eval-windows", type=int, default=0,
                    help="val windows per periodic eval (0: all)")
    ap.add_argument("--final-eval-windows", type=int, default=0,
                    help="val windows for the final eval and routing "
                    "statistics (0: all)")
    ap.add_argument("--log-every", type=int, default=10)
    ap.add_argument("--save-every-eval", action="store_true",
                    help="also save the best weights so far (and the log) "
                    "after each evaluation that improves on them, so a run "
                    "killed from outside still leaves a checkpoint")
    ap.add_argument("--max-minutes", type=float, default=9.0)
    ap.add_argument("--arch", default="",
                    help="JSON overrides of moe_common.DEFAULT_ARCH")
    return ap.parse_args()


def lr_at(step, total, args):
    if step < args.warmup:
        return args.lr * (step + 1) / args.warmup
    p = min(1.0, (step - args.warmup) / max(1, total - args.warmup))
    lo = args.lr * args.min_lr_frac
    return lo + 0.5 * (args.lr - lo) * (1 + math.cos(math.pi * p))


def get_batch(train, step, args):
    rng = np.random.default_rng([args.seed, step])
    starts = rng.integers(0, train.size - args.ctx - 1, size=args.batch_size)
    idx = starts[:, None] + np.arange(args.ctx + 1)[None, :]
    return torch.from_numpy(train[idx].astype(np.int64))   # (B, ctx+1)


def val_windows(val, ctx, n):
    """Non-overlapping windows of ctx+1 tokens; n > 0 takes n evenly
    spaced ones (the same every time)."""
    total = (val.size - 1) // ctx
    idx = np.arange(total)
    if 0 < n < total:
        idx = np.linspace(0, total - 1, n).round().astype(np.int64)
    starts = idx * ctx
    w = starts[:, None] + np.arange(ctx + 1)[None, :]
    return torch.from_numpy(val[w].astype(np.int64))        # (W, ctx+1)


def autocast(device):
    if device == "cuda":
        return torch.autocast("cuda", dtype=torch.bfloat16)
    return torch.autocast("cpu", enabled=False)


@torch.no_grad()
def evaluate(model, blocks, windows, bs, device, stats=None):
    model.eval()
    tot, n = 0.0, 0
    for i in range(0, windows.shape[0], bs):
        b = windows[i:i + bs].to(device)
        with autocast(device):
            logits = model(input_ids=b[:, :-1], use_cache=False).logits
        loss = F.cross_entropy(logits.float().reshape(-1, logits.shape[-1]),
                               b[:, 1:].reshape(-1), reduction="sum")
        tot += float(loss)
        n += b[:, 1:].numel()
        if stats is not None:
            stats.add(blocks, b.shape[0], b.shape[1] - 1)
    model.train()
    return tot / n


def save_checkpoint(state, config, args, log):
    from safetensors.torch import save_file
    os.makedirs(args.out, exist_ok=True)
    names = sorted(nm for nm in state
                   if not (config.tie_word_embeddings
                           and nm == "lm_head.weight"))
    shards, cur, cur_bytes = [], [], 0
    for nm in names:
        nb = state[nm].numel() * 2
        if cur and cur_bytes + nb > SHARD_BYTES:
            shards.append(cur)
            cur, cur_bytes = [], 0
        cur.append(nm)
        cur_bytes += nb
    shards.append(cur)
    for i, group in enumerate(shards):
        tensors = {nm: state[nm].to(torch.float16).contiguous().cpu()
                   for nm in group}
        save_file(tensors, os.path.join(
            args.out, "model-%05d.safetensors" % (i + 1)),
            metadata={"format": "pt"})
    config.to_json_file(os.path.join(args.out, "config.json"))
    log["shards"] = len(shards)
    with open(os.path.join(args.out, "log.json"), "w") as fh:
        json.dump(log, fh, indent=1)


def main():
    args = parse_args()
    t_start = time.time()
    deadline = t_start + args.max_minutes * 60
    import transformers
    from transformers import Qwen3MoeForCausalLM

    if args.device == "cuda" and not torch.cuda.is_available():
        sys.exit("train_moe: --device cuda but no CUDA device")
    if args.threads:
        torch.set_num_threads(args.threads)
    impl = args.experts_impl
    if impl == "auto":
        impl = "dense" if args.device == "cuda" else "sparse"
    torch.backends.cuda.matmul.allow_tf32 = True
    torch.backends.cudnn.allow_tf32 = True

    with open(os.path.join(args.data, "meta.json")) as fh:
        meta = json.load(fh)
    train = np.load(os.path.join(args.data, "train.npy"))
    val = np.load(os.path.join(args.data, "val.npy"))
    arch = json.loads(args.arch) if args.arch else {}
    if args.ctx > moe_common.DEFAULT_ARCH["max_position_embeddings"]:
        arch.setdefault("max_position_embeddings", args.ctx)
    config = moe_common.make_config(meta["vocab_size"], meta["eot_id"],
                                    args.aux_coef, arch)
    torch.manual_seed(args.seed)
    np.random.seed(args.seed)
    model = Qwen3MoeForCausalLM(config)
    model.to(args.device)
    model.train()
    blocks = moe_common.patch_moe(model, impl)
    n_params = sum(p.numel() for p in model.parameters())

    decay, no_decay = [], []
    for nm, p in model.named_parameters():
        (decay if p.dim() >= 2 else no_decay).append(p)
    opt = torch.optim.AdamW(
        [{"params": decay, "weight_decay": args.weight_decay},
         {"params": no_decay, "weight_decay": 0.0}],
        lr=args.lr, betas=(0.9, 0.95), eps=1e-8,
        fused=(args.device == "cuda"))

    eval_w = val_windows(val, args.ctx, args.eval_windows)
    all_w = val_windows(val, args.ctx, args.final_eval_windows)
    eval_bs = args.batch_size
    dev_name = (torch.cuda.get_device_name(0) if args.device == "cuda"
                else "%s, %d threads" % (platform.processor() or
                                         platform.machine(),
                                         torch.get_num_threads()))
    log = {"args": vars(args), "experts_impl": impl, "device": dev_name,
           "versions": {"torch": torch.__version__,
                        "transformers": transformers.__version__,
                        "python": platform.python_version()},
           "data": meta, "n_params": n_params,
           "train": [], "eval": [], "notes": []}
    print("params %d, train tokens %d, val tokens %d, device %s, experts %s"
          % (n_params, train.size, val.size, dev_name, impl), flush=True)

    total = args.steps
    best = (float("inf"), -1, None)
    t_step_sum, t_step_n = 0.0, 0
    t_eval = 0.0
    tokens_seen = 0
    step = 0
    final_reserve = 20.0 if args.device == "cuda" else 300.0
    while step <= total:
        if step % args.eval_every == 0 or step == total:
            te = time.time()
            vl = evaluate(model, blocks, eval_w, eval_bs, args.device)
            t_eval = time.time() - te
            log["eval"].append({"step": step, "val_loss": round(vl, 5),
                                "tokens": tokens_seen,
                                "elapsed_s": round(time.time() - t_start,
                                                   1)})
            print("eval step %d val_loss %.4f ppl %.2f (%.1fs)"
                  % (step, vl, math.exp(vl), t_eval), flush=True)
            if vl < best[0]:
                best = (vl, step, {k: v.detach().clone()
                                   for k, v in model.state_dict().items()})
                if args.save_every_eval and step > 0:
                    log["best_step"] = step
                    save_checkpoint(best[2], config, args, log)
        if step == total:
            break
        if time.time() > deadline - final_reserve - t_eval:
            log["notes"].append("stopped by the deadline at step %d of %d"
                                % (step, total))
            print(log["notes"][-1], flush=True)
            break

        t0 = time.time()
        lr = lr_at(step, total, args)
        for g in opt.param_groups:
            g["lr"] = lr
        batch = get_batch(train, step, args)
        if args.device == "cuda":
            batch = batch.pin_memory().to("cuda", non_blocking=True)
        with autocast(args.device):
            logits = model(input_ids=batch[:, :-1], use_cache=False).logits
        ce = F.cross_entropy(logits.float().reshape(-1, logits.shape[-1]),
                             batch[:, 1:].reshape(-1))
        aux = moe_common.aux_loss(blocks)
        loss = ce + args.aux_coef * aux
        opt.zero_grad(set_to_none=True)
        loss.backward()
        gnorm = torch.nn.utils.clip_grad_norm_(model.parameters(),
                                               args.grad_clip)
        opt.step()
        tokens_seen += batch.shape[0] * args.ctx
        step += 1

        if step % args.log_every == 0 or step == 1:
            ce_v, aux_v = ce.item(), aux.item()
            gn = gnorm.item()
            dt = time.time() - t0
            log["train"].append({"step": step, "loss": round(ce_v, 5),
                                 "aux": round(aux_v, 5), "lr": lr,
                                 "grad_norm": round(gn, 4)})
            if step % (args.log_every * 5) == 0 or step == 1:
                el = time.time() - t_start
                print("step %d loss %.4f aux %.4f lr %.2e gnorm %.3f "
                      "%.0f tok/s elapsed %.0fs" %
                      (step, ce_v, aux_v, lr, gn,
                       batch.shape[0] * args.ctx / max(dt, 1e-9), el),
                      flush=True)
        if args.device == "cuda" and step % args.log_every == 0:
            torch.cuda.synchronize()
        dt = time.time() - t0
        if step > 5:          # skip warm-up steps (allocator, kernels)
            t_step_sum += dt
            t_step_n += 1
        if t_step_n == 20 or (t_step_n > 20 and t_step_n % 200 == 0):
            per = t_step_sum / t_step_n
            per_eval = t_eval / args.eval_every
            left = deadline - time.time() - final_reserve - 2 * t_eval
            fit = step + int(0.95 * left / (per + per_eval))
            if fit < total and step < total * 0.2:
                note = ("measured %.3fs/step: steps reduced from %d to %d "
                        "to fit --max-minutes" % (per, total, fit))
                log["notes"].append(note)
                print(note, flush=True)
                total = max(step + 1, fit)
    if args.device == "cuda":
        torch.cuda.synchronize()
    train_wall = time.time() - t_start

    model.load_state_dict(best[2])
    stats = moe_common.RoutingStats(config.num_hidden_layers,
                                    config.num_experts,
                                    config.num_experts_per_tok)
    final_val = evaluate(model, blocks, all_w, eval_bs, args.device, stats)
    log.update({
        "steps_planned": args.steps, "steps_done": step,
        "steps_schedule": total, "best_step": best[1],
        "tokens_seen": tokens_seen,
        "tokens_per_step": args.batch_size * args.ctx,
        "train_wall_s": round(train_wall, 1),
        "final_val_loss": round(final_val, 5),
        "final_val_ppl": round(math.exp(final_val), 3),
        "val_tokens_scored": int(all_w[:, 1:].numel()),
        "routing_val": stats.summary(),
    })
    print("best step %d: val loss %.4f ppl %.2f on %d tokens; %d steps, "
          "%d tokens seen, %.0fs" % (best[1], final_val, math.exp(final_val),
                                     all_w[:, 1:].numel(), step, tokens_seen,
                                     train_wall), flush=True)
    for ly in log["routing_val"]["layers"]:
        print("layer %d: top-10%% share %.3f (uniform %.3f), entropy %.3f "
              "of max, reuse %.3f (independent %.3f)"
              % (ly["layer"], ly["top10pct_share"],
                 log["routing_val"]["uniform_top10pct_share"],
                 ly["entropy_norm"], ly["reuse_next_token"],
                 ly["reuse_if_independent"]), flush=True)
    if args.device == "cuda":
        log["peak_gpu_mem_gib"] = round(
            torch.cuda.max_memory_allocated() / 2**30, 2)
    log["total_wall_s"] = round(time.time() - t_start, 1)
    save_checkpoint(best[2], config, args, log)
    print("saved to %s in %.0fs total" % (args.out, time.time() - t_start),
          flush=True)


if __name__ == "__main__":
    main()
