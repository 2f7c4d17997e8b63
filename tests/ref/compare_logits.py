# SPDX-License-Identifier: MIT
"""Compares engine logits with reference logits.

usage: compare_logits.py GOT.npy REF.npy TOL [REF2.npy TOL2 ...]

All are float32 [n_tokens, vocab] .npy files.  GOT passes against a
reference when the shapes match, every value is finite and
max |got - ref| <= tol.  With several references (one per legitimate way
of computing a quantised file, see docs/FIDELITY.md) GOT must match one of
them.  Prints one line; exit 0 on a match, 1 on none, 2 on unusable input.
"""
import sys

import numpy as np


def compare(got, ref, tol):
    """-> (ok, description) for one reference."""
    if got.shape != ref.shape:
        return False, f"shape {got.shape}, want {ref.shape}"
    diff = np.abs(got.astype(np.float64) - ref.astype(np.float64))
    t, v = np.unravel_index(int(np.argmax(diff)), diff.shape)
    worst = float(diff[t, v])
    agree = int(np.sum(np.argmax(got, axis=1) == np.argmax(ref, axis=1)))
    msg = (f"max|d| {worst:.2e} (tol {tol:.0e}) at token {t} id {v}, "
           f"argmax {agree}/{got.shape[0]}")
    if worst > tol:
        # Tells "one position went wrong" from "everything is wrong".
        first = int(np.argmax(diff.max(axis=1) > tol))
        msg += f", first bad token {first}"
    return worst <= tol, msg


def label(path):
    return "8-bit act" if path.endswith("-actq.npy") else "f32 act"


def main(argv):
    if len(argv) < 4 or len(argv) % 2:
        print(__doc__.strip().split("\n")[2], file=sys.stderr)
        return 2
    try:
        got = np.load(argv[1], allow_pickle=False)
        refs = [(p, np.load(p, allow_pickle=False), float(t))
                for p, t in zip(argv[2::2], argv[3::2])]
    except (OSError, ValueError) as e:
        print(f"cannot read input: {e}")
        return 2
    if got.dtype != np.float32 or got.ndim != 2:
        print(f"got {got.dtype} array of shape {got.shape}, want float32 "
              f"[n_tokens, vocab]")
        return 1
    if not np.all(np.isfinite(got)):
        bad = np.argwhere(~np.isfinite(got))[0]
        print(f"non-finite value at token {bad[0]}, id {bad[1]}")
        return 1
    results = [(label(p),) + compare(got, ref, tol) for p, ref, tol in refs]
    match = [r for r in results if r[1]]
    if match:
        print(f"{match[0][2]} [{match[0][0]}]")
        return 0
    print("; ".join(f"{r[2]} [{r[0]}]" for r in results))
    return 1


if __name__ == "__main__":
    sys.exit(main(sys.argv))
