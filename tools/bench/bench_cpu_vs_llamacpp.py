#!/usr/bin/env python3
"""Side-by-side CPU prefill/decode speed: expertcache vs llama.cpp.

Runs `expertcache bench --json` and llama.cpp (through llama-cpp-python,
built from source by pip) on the same GGUF, the same pseudo-random token ids,
the same thread count, alternating the two engines `--rounds` times so both
see the same machine state. Prints a table and the ratios; --json writes all
measurements. Benchmark only: not part of `make test`.

  build/bench-venv/bin/python tools/bench/bench_cpu_vs_llamacpp.py \
      MODEL.gguf [--threads 2] [--prompt 64] [--decode 32] [--rounds 3]
"""
import argparse
import json
import os
import subprocess
import sys
import time


def xorshift_ids(n, vocab, seed=1):
    """The same ids `expertcache bench --seed` draws."""
    mask = (1 << 64) - 1
    x = (seed * 0x9E3779B97F4A7C15 + 1) & mask
    out = []
    for _ in range(n):
        x ^= (x << 13) & mask
        x ^= x >> 7
        x ^= (x << 17) & mask
        out.append(x % vocab)
    return out


def bench_ours(cli, model, threads, n_p, n_d):
    cmd = [cli, "bench", "-m", model, "-p", str(n_p), "-n", str(n_d),
           "-t", str(threads), "--reps", "2", "--json"]
    out = subprocess.run(cmd, check=True, capture_output=True, text=True)
    return json.loads(out.stdout)


class LlamaBench:
    def __init__(self, model, threads, n_ctx):
        import llama_cpp
        self.llm = llama_cpp.Llama(model_path=model, n_threads=threads,
                                   n_threads_batch=threads, n_ctx=n_ctx,
                                   n_batch=512, use_mmap=True,
                                   verbose=False, logits_all=False)
        self.vocab = self.llm.n_vocab()

    def run(self, n_p, n_d):
        ids = xorshift_ids(n_p + n_d, self.vocab)
        self.llm.reset()
        t0 = time.perf_counter()
        self.llm.eval(ids[:n_p])
        tp = time.perf_counter() - t0
        t0 = time.perf_counter()
        for t in ids[n_p:]:
            self.llm.eval([t])
        td = time.perf_counter() - t0
        return {"prompt_tok_per_s": n_p / tp,
                "decode_tok_per_s": n_d / td if n_d else 0.0}


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("model")
    ap.add_argument("--cli", default="build/expertcache")
    ap.add_argument("--threads", type=int, default=os.cpu_count())
    ap.add_argument("--prompt", type=int, default=64)
    ap.add_argument("--decode", type=int, default=32)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--json", help="write all measurements here")
    a = ap.parse_args()

    lb = LlamaBench(a.model, a.threads, a.prompt + a.decode + 8)
    rows = []
    for r in range(a.rounds):
        ours = bench_ours(a.cli, a.model, a.threads, a.prompt, a.decode)
        theirs = lb.run(a.prompt, a.decode)
        rows.append({"round": r, "expertcache": ours, "llama.cpp": theirs})
        print(f"round {r}: expertcache prefill {ours['prompt_tok_per_s']:.2f} "
              f"decode {ours['decode_tok_per_s']:.2f} | llama.cpp prefill "
              f"{theirs['prompt_tok_per_s']:.2f} decode "
              f"{theirs['decode_tok_per_s']:.2f} tok/s", flush=True)

    def best(engine, key):
        return max(r[engine][key] for r in rows)

    res = {k: {"expertcache": best("expertcache", k),
               "llama.cpp": best("llama.cpp", k)}
           for k in ("prompt_tok_per_s", "decode_tok_per_s")}
    for k, v in res.items():
        v["ratio"] = v["expertcache"] / v["llama.cpp"]
        print(f"{k:18s} expertcache {v['expertcache']:9.2f}  llama.cpp "
              f"{v['llama.cpp']:9.2f}  ratio {v['ratio']:.2f}")
    if a.json:
        with open(a.json, "w") as f:
            json.dump({"model": a.model, "threads": a.threads,
                       "prompt": a.prompt, "decode": a.decode,
                       "rounds": rows, "best": res}, f, indent=1)


if __name__ == "__main__":
    sys.exit(main())
