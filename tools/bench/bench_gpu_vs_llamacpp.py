#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""GPU prefill and decode: expertcache vs llama.cpp at the same VRAM budget.

Both engines run the same synthetic Qwen3-30B-A3B-shaped GGUF (written by
build/tests/gpu/synth_gguf when missing: 48 layers, 128 experts, top-8,
Q4_K gate/up, Q6_K down, a vocabulary llama.cpp accepts) on one GPU.  For
each budget B (% of the expert bytes that may live in VRAM):

* expertcache: `expertcache bench --backend cuda --vram-budget B%`: every
  expert computes on the GPU; experts outside the VRAM slots are copied
  from host RAM (the page-cached model mapping) when routed.
* llama.cpp: `llama-bench -ngl 99 --n-cpu-moe N` with N = the layers whose
  experts stay in host RAM, round(L * (100 - B) / 100): the way llama.cpp
  users fit a large MoE on a small GPU (experts of those layers computed
  by the CPU; non-expert weights on the GPU).  At 100% N = 0.

Prefill: P prompt tokens.  Decode: N single-token steps after the prompt
(llama-bench `-d P`: generation at depth P, like ours).  Best of --reps for
ours, llama-bench's mean of --reps for llama.cpp (its stddev is printed).
Prints a Markdown table and writes JSON with every raw result.  Benchmark
only: not part of `make test`.  On the device machine in one command:

    tools/gpu/on-device.sh vs-llama
"""
import argparse
import json
import os
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(
    os.path.abspath(__file__))))


def run(cmd, timeout, env=None):
    t0 = time.time()
    p = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout,
                       env=env)
    if p.returncode != 0:
        sys.stderr.write(f"$ {' '.join(cmd)}\n{p.stdout[-2000:]}"
                         f"{p.stderr[-4000:]}\n")
        raise SystemExit(f"failed (exit {p.returncode}): {cmd[0]}")
    return p.stdout, time.time() - t0


def ensure_model(path, layers):
    if os.path.exists(path):
        return
    tool = os.path.join(ROOT, "build/tests/gpu/synth_gguf")
    print(f"writing {path} ({layers} layers) ...", flush=True)
    _, dt = run([tool, path, "--layers", str(layers)], 3600)
    print(f"  {os.path.getsize(path) / 1e9:.1f} GB in {dt:.0f} s",
          flush=True)


def ours(a, pct):
    cmd = [os.path.join(ROOT, "build/expertcache"), "bench", "-m", a.model,
           "-p", str(a.prompt), "-n", str(a.decode), "--reps", str(a.reps),
           "--backend", "cuda", "--vram-budget", f"{pct}%", "--json"]
    cmd += a.ours_args
    out, _ = run(cmd, a.timeout)
    j = json.loads(out.strip().splitlines()[-1])
    if not j.get("backend", "").startswith("cuda"):
        raise SystemExit(f"expertcache did not run on the GPU: {j}")
    return j


def llama(a, n_cpu_moe):
    exe = os.path.join(a.llama_bin, "llama-bench")
    env = dict(os.environ)
    env["LD_LIBRARY_PATH"] = a.llama_bin + ":" + env.get("LD_LIBRARY_PATH",
                                                          "")
    base = [exe, "-m", a.model, "-ngl", "99", "-ncmoe", str(n_cpu_moe),
            "-r", str(a.reps), "-t", str(a.threads), "-o", "json"]
    pp, _ = run(base + ["-p", str(a.prompt), "-n", "0"], a.timeout, env)
    tg, _ = run(base + ["-p", "0", "-n", str(a.decode), "-d",
                        str(a.prompt)], a.timeout, env)
    return json.loads(pp)[0], json.loads(tg)[0]


def main():
    ap = argparse.ArgumentParser(
        description=__doc__.split("\n")[0],
        formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    ap.add_argument("--model", default=os.path.join(
        os.environ.get("EC_BENCH_DIR", "/tmp"), "ec-qwen3-30b-vocab.gguf"))
    ap.add_argument("--layers", type=int, default=48,
                    help="layers of the model written when missing")
    ap.add_argument("--llama-bin", default=os.path.join(
        ROOT, "build/llama-cuda/bin"), help="folder with llama-bench")
    ap.add_argument("--budgets", default="100,50,25,10")
    ap.add_argument("-p", "--prompt", type=int, default=128)
    ap.add_argument("-n", "--decode", type=int, default=32)
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--threads", type=int, default=os.cpu_count(),
                    help="llama.cpp CPU threads (experts on the CPU)")
    ap.add_argument("--timeout", type=int, default=900)
    ap.add_argument("--json", dest="json_out",
                    default=os.path.join(os.environ.get("OUT", "/tmp"),
                                         "bench-gpu-vs-llamacpp.json"))
    ap.add_argument("ours_args", nargs="*",
                    help="extra `expertcache bench` options after --")
    a = ap.parse_args()
    ensure_model(a.model, a.layers)
    info, _ = run([os.path.join(ROOT, "build/expertcache"), "inspect",
                   "--json", a.model], 120)
    layers = json.loads(info)["layers"]
    rows, raw = [], []
    for pct in [int(x) for x in a.budgets.split(",")]:
        ncmoe = round(layers * (100 - pct) / 100)
        o = ours(a, pct)
        lp, lt = llama(a, ncmoe)
        raw.append({"budget_pct": pct, "n_cpu_moe": ncmoe, "ours": o,
                    "llama_pp": lp, "llama_tg": lt})
        rows.append((pct, ncmoe, o["prompt_tok_per_s"], lp["avg_ts"],
                     lp["stddev_ts"], o["decode_tok_per_s"], lt["avg_ts"],
                     lt["stddev_ts"]))
        print(f"{pct}%: ours {o['prompt_tok_per_s']:.1f} / "
              f"{o['decode_tok_per_s']:.1f} tok/s, llama.cpp "
              f"{lp['avg_ts']:.1f} / {lt['avg_ts']:.1f}", flush=True)
    print()
    print(f"model {a.model}; prefill {a.prompt} tokens, decode {a.decode} "
          f"at depth {a.prompt}; llama.cpp threads {a.threads}")
    print()
    print("| VRAM budget | llama.cpp --n-cpu-moe | prefill ours | "
          "prefill llama.cpp | ratio | decode ours | decode llama.cpp | "
          "ratio |")
    print("|---|---|---|---|---|---|---|---|")
    for pct, nc, op, lp, lps, od, ld, lds in rows:
        print(f"| {pct}% | {nc} | {op:.1f} | {lp:.1f} ± {lps:.1f} | "
              f"{op / lp:.2f} | {od:.2f} | {ld:.2f} ± {lds:.2f} | "
              f"{od / ld:.2f} |")
    with open(a.json_out, "w") as f:
        json.dump(raw, f, indent=1)
    print(f"\nraw results: {a.json_out}")


if __name__ == "__main__":
    main()
