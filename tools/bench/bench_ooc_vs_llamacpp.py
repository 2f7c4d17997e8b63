#!/usr/bin/env python3
"""Out-of-memory decode speed: expertcache vs llama.cpp (mmap) under a cgroup.

Both engines run the same GGUF on the same pseudo-random token ids (a
--prompt batch, then --decode single-token steps, timed) with the same
threads, each inside its own cgroup v1 memory group limited to --limit
(default: a quarter of the model file).  llama.cpp (llama-cpp-python, built from source) uses its
default mmap, so the kernel pages weights in and out of the limit.
expertcache runs `expertcache bench --ram-budget B`: experts stream with
io_uring O_DIRECT into a pinned host tier of B bytes, sized to fit the limit
after the non-expert weights (read through the mapping) and a reserve.

The model file's page cache is dropped (posix_fadvise DONTNEED) before every
run, the engines alternate `--rounds` times, and each run's peak cgroup
usage is recorded.  `expertcache bench-io` on the model file (same request
size as the cache, 1 MiB, queue depth 32) gives the read bandwidth; bytes
read per token / bandwidth is the I/O-bound ceiling printed beside our
speed.  Needs root (cgroup v1 memory controller at /sys/fs/cgroup/memory).
Benchmark only: not part of `make test`.

  build/bench-venv/bin/python tools/bench/bench_ooc_vs_llamacpp.py \\
      MODEL.gguf [--threads 2] [--decode 16] [--rounds 3] [--json OUT]
"""
import argparse
import json
import os
import statistics
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from bench_cpu_vs_llamacpp import xorshift_ids  # noqa: E402

CG_ROOT = "/sys/fs/cgroup/memory"


def parse_size(s):
    units = {"k": 1 << 10, "m": 1 << 20, "g": 1 << 30, "t": 1 << 40}
    s = s.strip().lower().rstrip("b").rstrip("i")
    if s and s[-1] in units:
        return int(float(s[:-1]) * units[s[-1]])
    return int(s)


def gib(n):
    return f"{n / 2**30:.2f} GiB"


class Cgroup:
    """A fresh cgroup v1 memory group with a hard limit, removed on exit."""

    def __init__(self, name, limit):
        self.path = os.path.join(CG_ROOT, name)
        os.mkdir(self.path)
        self._write("memory.limit_in_bytes", str(limit))
        self.limit = int(self._read("memory.limit_in_bytes"))

    def _write(self, f, v):
        with open(os.path.join(self.path, f), "w") as fh:
            fh.write(v)

    def _read(self, f):
        with open(os.path.join(self.path, f)) as fh:
            return fh.read().strip()

    def run(self, cmd, timeout):
        """Run cmd inside the group: the shell joins it, then execs."""
        wrapped = ["sh", "-c", 'echo $$ > "$0/cgroup.procs" && exec "$@"',
                   self.path] + cmd
        p = subprocess.run(wrapped, capture_output=True, text=True,
                           timeout=timeout)
        return p

    def stats(self):
        oom = self._read("memory.oom_control")
        return {"limit": self.limit,
                "peak": int(self._read("memory.max_usage_in_bytes")),
                "failcnt": int(self._read("memory.failcnt")),
                "oom_kills": int(oom.split("oom_kill")[-1].split()[0])
                if "oom_kill " in oom else None}

    def remove(self):
        for _ in range(50):
            try:
                os.rmdir(self.path)
                return
            except OSError:
                time.sleep(0.1)


def drop_cache(path):
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
        os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
    finally:
        os.close(fd)


def llama_child(model, threads, n_p, n_d):
    """Runs inside the cgroup: load with mmap, eval, print one JSON line."""
    import llama_cpp
    t0 = time.perf_counter()
    llm = llama_cpp.Llama(model_path=model, n_threads=threads,
                          n_threads_batch=threads, n_ctx=n_p + n_d + 8,
                          n_batch=512, use_mmap=True, verbose=False)
    load_s = time.perf_counter() - t0
    ids = xorshift_ids(n_p + n_d, llm.n_vocab())
    t0 = time.perf_counter()
    llm.eval(ids[:n_p])
    tp = time.perf_counter() - t0
    steps = []
    for t in ids[n_p:]:
        t0 = time.perf_counter()
        llm.eval([t])
        steps.append(time.perf_counter() - t0)
    td = sum(steps)
    print(json.dumps({"load_s": load_s, "prompt_s": tp, "decode_s": td,
                      "decode_tok_per_s": n_d / td,
                      "step_s": steps}), flush=True)


def run_llama(a, cg):
    cmd = [sys.executable, os.path.abspath(__file__), "--llama-child",
           a.model, "--threads", str(a.threads), "--prompt", str(a.prompt),
           "--decode", str(a.decode)]
    p = cg.run(cmd, a.timeout)
    if p.returncode:
        return {"error": f"exit {p.returncode}: {p.stderr[-400:]}"}
    return json.loads(p.stdout.strip().splitlines()[-1])


def run_ours(a, cg, budget):
    cmd = [a.cli, "bench", "-m", a.model, "-p", str(a.prompt), "-n",
           str(a.decode), "-t", str(a.threads), "--json", "--ram-budget",
           str(budget)] + a.ours_args.split()
    p = cg.run(cmd, a.timeout)
    if p.returncode:
        return {"error": f"exit {p.returncode}: {p.stderr[-400:]}"}
    r = json.loads(p.stdout.strip().splitlines()[-1])
    st = r.get("storage", {})   # the decode steps only
    n_tok = a.decode
    r["bytes_per_token"] = st.get("bytes_read", 0) / n_tok
    r["requests_per_token"] = st.get("read_requests", 0) / n_tok
    r["hit_rate"] = st.get("hit_rate")
    return r


def bench_io(a):
    cmd = [a.cli, "bench-io", a.model, "--qd", "32", "--bs", "1M",
           "--seconds", str(a.io_seconds), "--json"]
    out = subprocess.run(cmd, check=True, capture_output=True, text=True)
    return json.loads(out.stdout)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("model")
    ap.add_argument("--cli", default="build/expertcache")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--prompt", type=int, default=1)
    ap.add_argument("--decode", type=int, default=16)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--limit", help="cgroup memory limit (default: a "
                    "quarter of the model file)")
    ap.add_argument("--reserve", default="384M", help="memory left for "
                    "our process besides the non-expert weights and the "
                    "host tier (KV, activations, code)")
    ap.add_argument("--ram-budget", help="expertcache --ram-budget "
                    "(default: limit - non-expert bytes - reserve)")
    ap.add_argument("--ours-args", default="", help="extra expertcache "
                    "bench options, e.g. '--prefetch 8'")
    ap.add_argument("--io-seconds", type=int, default=5)
    ap.add_argument("--timeout", type=int, default=3600)
    ap.add_argument("--json", help="write all measurements here")
    ap.add_argument("--llama-child", action="store_true",
                    help=argparse.SUPPRESS)
    a = ap.parse_args()
    if a.llama_child:
        return llama_child(a.model, a.threads, a.prompt, a.decode)

    info = json.loads(subprocess.run([a.cli, "inspect", "--json", a.model],
                                     check=True, capture_output=True,
                                     text=True).stdout)
    size = os.path.getsize(a.model)
    limit = parse_size(a.limit) if a.limit else size // 4
    non_expert = info["total_bytes"] - info["total_expert_bytes"]
    budget = (parse_size(a.ram_budget) if a.ram_budget else
              limit - non_expert - parse_size(a.reserve))
    if budget < info["bytes_per_expert"]:
        sys.exit(f"the limit {gib(limit)} leaves no room for experts "
                 f"({gib(non_expert)} non-expert weights)")
    print(f"model {a.model}: {gib(size)}, {info['layers']} layers x "
          f"{info['experts_per_layer']} experts (top-{info['experts_used']}"
          f"), experts {gib(info['total_expert_bytes'])}, non-expert "
          f"{gib(non_expert)}")
    print(f"cgroup limit {gib(limit)}; expertcache --ram-budget "
          f"{gib(budget)} ({100 * budget / info['total_expert_bytes']:.1f}% "
          f"of expert bytes); threads {a.threads}; {a.prompt} prompt + "
          f"{a.decode} decode tokens; {a.rounds} rounds", flush=True)

    io = [bench_io(a)]
    rows = []
    for r in range(a.rounds):
        row = {"round": r}
        order = ("expertcache", "llama.cpp") if r % 2 == 0 else \
            ("llama.cpp", "expertcache")
        for eng in order:
            drop_cache(a.model)
            cg = Cgroup(f"ec-ooc-{os.getpid()}-{r}-{eng[0]}", limit)
            try:
                res = (run_ours(a, cg, budget) if eng == "expertcache"
                       else run_llama(a, cg))
                res["cgroup"] = cg.stats()
            finally:
                cg.remove()
            row[eng] = res
            if "error" in res:
                print(f"round {r}: {eng}: {res['error']}", flush=True)
                continue
            extra = ""
            if eng == "expertcache":
                extra = (f", hit rate {res['hit_rate']:.3f}, "
                         f"{res['bytes_per_token'] / 2**20:.1f} MiB and "
                         f"{res['requests_per_token']:.1f} requests read "
                         f"per token")
            print(f"round {r}: {eng:11s} decode "
                  f"{res['decode_tok_per_s']:.3f} tok/s, peak "
                  f"{gib(res['cgroup']['peak'])}{extra}", flush=True)
        rows.append(row)
    io.append(bench_io(a))

    def med(eng, key):
        v = [r[eng][key] for r in rows if key in r[eng]]
        return statistics.median(v) if v else float("nan")

    ours, theirs = med("expertcache", "decode_tok_per_s"), \
        med("llama.cpp", "decode_tok_per_s")
    ratios = [r["expertcache"]["decode_tok_per_s"] /
              r["llama.cpp"]["decode_tok_per_s"] for r in rows
              if "decode_tok_per_s" in r["expertcache"] and
              "decode_tok_per_s" in r["llama.cpp"]]
    gbps = statistics.median(x["gbps"] for x in io)
    bpt = med("expertcache", "bytes_per_token")
    ceiling = gbps * 1e9 / bpt if bpt > 0 else float("inf")
    res = {"expertcache_decode_tok_per_s": ours,
           "llama_cpp_decode_tok_per_s": theirs,
           "ratio_of_medians": ours / theirs,
           "ratio_per_round": ratios,
           "hit_rate": med("expertcache", "hit_rate"),
           "bytes_per_token": bpt,
           "requests_per_token": med("expertcache", "requests_per_token"),
           "read_gbps_bench_io": gbps,
           "io_bound_ceiling_tok_per_s": ceiling}
    print(f"\ndecode tok/s (median of {a.rounds}): expertcache {ours:.3f}, "
          f"llama.cpp {theirs:.3f}, ratio {ours / theirs:.2f}x (per round "
          f"{', '.join(f'{x:.2f}' for x in ratios)})")
    print(f"expertcache: hit rate {res['hit_rate']:.3f}, "
          f"{bpt / 2**20:.1f} MiB read per token, bench-io {gbps:.2f} GB/s"
          f" -> I/O-bound ceiling {ceiling:.3f} tok/s "
          f"({100 * ours / ceiling:.0f}% of it)")
    if a.json:
        with open(a.json, "w") as f:
            json.dump({"model": a.model, "model_bytes": size,
                       "inspect": info, "limit": limit, "ram_budget": budget,
                       "threads": a.threads, "prompt": a.prompt,
                       "decode": a.decode, "ours_args": a.ours_args,
                       "bench_io": io, "rounds": rows, "summary": res}, f,
                      indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
