# SPDX-License-Identifier: MIT
"""Compares engine logits with reference logits.

usage: compare_logits.py GOT.npy REF.npy TOL

Both are float32 [n_tokens, vocab] .npy files.  Passes when the shapes
match, every value is finite and max |got - ref| <= TOL.  Prints one line:
the max difference, where it is, and how many argmaxes agree; exit 0 on
pass, 1 on mismatch, 2 on unreadable input.
"""
import sys

import numpy as np


def main(argv):
    if len(argv) != 4:
        print(__doc__.strip().split("\n")[2], file=sys.stderr)
        return 2
    try:
        got = np.load(argv[1], allow_pickle=False)
        ref = np.load(argv[2], allow_pickle=False)
        tol = float(argv[3])
    except (OSError, ValueError) as e:
        print(f"cannot read input: {e}")
        return 2
    if got.dtype != np.float32:
        print(f"got dtype {got.dtype}, want float32")
        return 1
    if got.shape != ref.shape:
        print(f"shape {got.shape}, want {ref.shape}")
        return 1
    if not np.all(np.isfinite(got)):
        bad = np.argwhere(~np.isfinite(got))[0]
        print(f"non-finite value at token {bad[0]}, id {bad[1]}")
        return 1
    diff = np.abs(got.astype(np.float64) - ref.astype(np.float64))
    t, v = np.unravel_index(int(np.argmax(diff)), diff.shape)
    worst = float(diff[t, v])
    agree = int(np.sum(np.argmax(got, axis=1) == np.argmax(ref, axis=1)))
    # Per-token worst error, to tell "one position wrong" from "all wrong".
    per_tok = diff.max(axis=1)
    first_bad = int(np.argmax(per_tok > tol)) if worst > tol else -1
    msg = (f"max|d|={worst:.3e} (tol {tol:.0e}) at token {t} id {v}, "
           f"argmax {agree}/{got.shape[0]}")
    if first_bad >= 0:
        msg += f", first bad token {first_bad}"
    print(msg)
    return 0 if worst <= tol else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv))
