#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""Draws the loss curves of training runs (log.json of train_moe.py).

The first --log is the shipped run (solid lines); any further ones are drawn
as dashed validation curves for comparison.  Also prints a Markdown table of
the first run's validation loss every --table-every steps.
"""
import argparse
import json
import math

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402


def smooth(xs, k):
    out, acc = [], []
    for x in xs:
        acc.append(x)
        if len(acc) > k:
            acc.pop(0)
        out.append(sum(acc) / len(acc))
    return out


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--log", action="append", required=True,
                    help="LABEL=path/to/log.json (repeatable)")
    ap.add_argument("--out", default="models/loss.png")
    ap.add_argument("--table-every", type=int, default=100)
    args = ap.parse_args()

    fig, ax = plt.subplots(figsize=(8, 4.8), dpi=100)
    first = None
    for i, spec in enumerate(args.log):
        label, path = spec.split("=", 1)
        with open(path) as fh:
            log = json.load(fh)
        tps = log["tokens_per_step"]
        ev = log["eval"]
        if i == 0:
            first = log
            tr = log["train"]
            ax.plot([t["step"] * tps / 1e6 for t in tr],
                    smooth([t["loss"] for t in tr], 5),
                    color="C0", lw=1.2, label="%s: train" % label)
            ax.plot([e["step"] * tps / 1e6 for e in ev],
                    [e["val_loss"] for e in ev], color="C1", lw=1.8,
                    marker="o", ms=3, label="%s: validation" % label)
            b = log["best_step"]
            ax.axvline(b * tps / 1e6, color="grey", lw=0.8, ls=":")
        else:
            ax.plot([e["step"] * tps / 1e6 for e in ev],
                    [e["val_loss"] for e in ev], color="C%d" % (i + 1),
                    lw=1.2, ls="--", label="%s: validation" % label)
    ax.set_xlabel("training tokens (millions)")
    ax.set_ylabel("cross-entropy (nats/token)")
    ax.set_ylim(1.0, 6.0)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    ax.set_title("tiny Qwen3-MoE on the CPython 3.11 stdlib")
    fig.tight_layout()
    fig.savefig(args.out, metadata={"Software": None})
    print("wrote %s" % args.out)

    print("| step | tokens (M) | train loss | val loss | val ppl |")
    print("|---:|---:|---:|---:|---:|")
    tr = {t["step"]: t["loss"] for t in first["train"]}
    tps = first["tokens_per_step"]
    for e in first["eval"]:
        s = e["step"]
        if s % args.table_every and s != first["eval"][-1]["step"]:
            continue
        near = [k for k in tr if abs(k - s) <= 5]
        tl = ("%.3f" % tr[min(near, key=lambda k: abs(k - s))]
              if near else "")
        print("| %d | %.1f | %s | %.3f | %.2f |" % (
            s, s * tps / 1e6, tl, e["val_loss"], math.exp(e["val_loss"])))


if __name__ == "__main__":
    main()
