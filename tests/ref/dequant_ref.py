# SPDX-License-Identifier: MIT
"""Checks ec_dequantize (via the dequant_dump tool) against gguf-py.

Random blocks of every supported type are written to a file, dequantised by
our C code and by gguf.quants.dequantize, and compared bit for bit (a
difference of at most 1 ulp is tolerated and reported).  F16/BF16 cover every
bit pattern (subnormals, inf, nan); F32 -> F16 rounding is checked against
numpy's astype(float16).  Prints "N passed, N failed".
"""
import os
import subprocess
import sys
import tempfile

import numpy as np
from gguf import GGMLQuantizationType as QT
from gguf import quants

BLOCK = {  # name: (qtype, elems per block, bytes per block)
    "Q8_0": (QT.Q8_0, 32, 34),
    "Q4_K": (QT.Q4_K, 256, 144),
    "Q6_K": (QT.Q6_K, 256, 210),
}

passed = failed = 0


def check(ok, what):
    global passed, failed
    if ok:
        passed += 1
    else:
        failed += 1
        print("FAIL:", what)


def run_tool(tool, tmp, tname, raw):
    src = os.path.join(tmp, "in.bin")
    dst = os.path.join(tmp, "out.bin")
    with open(src, "wb") as f:
        f.write(raw.tobytes())
    subprocess.run([tool, tname, src, dst], check=True)
    return np.fromfile(dst, dtype=np.float32 if tname != "F32_TO_F16"
                       else np.uint16)


def ulp_diff(a, b):
    """Distance in units in the last place between f32 arrays (nan == nan)."""
    ai = a.view(np.int32).astype(np.int64)
    bi = b.view(np.int32).astype(np.int64)
    # map sign-magnitude to a monotonic integer line
    ai = np.where(ai < 0, -(ai & 0x7FFFFFFF), ai)
    bi = np.where(bi < 0, -(bi & 0x7FFFFFFF), bi)
    d = np.abs(ai - bi)
    both_nan = np.isnan(a) & np.isnan(b)
    return np.where(both_nan, 0, d)


def compare(name, ours, ref):
    ref = np.ascontiguousarray(ref, dtype=np.float32).reshape(-1)
    if ours.shape != ref.shape:
        check(False, f"{name}: {ours.size} values, expected {ref.size}")
        return
    d = ulp_diff(ours, ref)
    worst = int(d.max()) if d.size else 0
    exact = int((d == 0).sum())
    if worst:
        i = int(d.argmax())
        print(f"{name}: {d.size - exact} of {d.size} values differ "
              f"(max {worst} ulp at {i}: ours {ours[i]!r} gguf {ref[i]!r})")
    check(worst <= 1, f"{name}: max difference {worst} ulp")


def finite_f16(rng, n):
    """Random finite f16 bit patterns (normal and subnormal, both signs)."""
    h = rng.integers(0, 1 << 16, size=n, dtype=np.uint32).astype(np.uint16)
    exp = (h >> 10) & 0x1F
    h = np.where(exp == 0x1F, h & 0xBFFF, h)  # inf/nan -> finite
    return h.astype(np.uint16)


def random_blocks(rng, tname, nblocks):
    _, _, bsize = BLOCK[tname]
    raw = rng.integers(0, 256, size=(nblocks, bsize), dtype=np.uint16)
    raw = raw.astype(np.uint8)
    if tname in ("Q8_0", "Q4_K"):
        # d (and dmin for Q4_K) lead the block
        nscale = 1 if tname == "Q8_0" else 2
        raw[:, : 2 * nscale] = finite_f16(rng, nblocks * nscale).view(
            np.uint8).reshape(nblocks, 2 * nscale)
    else:  # Q6_K: d is the last two bytes
        raw[:, -2:] = finite_f16(rng, nblocks).view(np.uint8).reshape(
            nblocks, 2)
    return raw


def main():
    tool = sys.argv[1]
    rng = np.random.default_rng(1234)
    with tempfile.TemporaryDirectory() as tmp:
        for tname, (qtype, _, _) in BLOCK.items():
            for trial in range(4):
                raw = random_blocks(rng, tname, 64 + trial)
                ours = run_tool(tool, tmp, tname, raw)
                ref = quants.dequantize(raw.reshape(-1), qtype)
                compare(f"{tname} trial {trial}", ours, ref)
            # small scales: products land in the f32 subnormal range
            raw = random_blocks(rng, tname, 16)
            tiny = np.full(16, 0x0001, dtype=np.uint16).view(np.uint8)
            if tname == "Q6_K":
                raw[:, -2:] = tiny.reshape(16, 2)
            else:
                raw[:, 0:2] = tiny.reshape(16, 2)
            compare(f"{tname} tiny d", run_tool(tool, tmp, tname, raw),
                    quants.dequantize(raw.reshape(-1), qtype))

        every = np.arange(1 << 16, dtype=np.uint32).astype(np.uint16)
        compare("F16 all patterns", run_tool(tool, tmp, "F16", every),
                quants.dequantize(every.view(np.uint8), QT.F16))
        compare("BF16 all patterns", run_tool(tool, tmp, "BF16", every),
                quants.dequantize(every.view(np.uint8), QT.BF16))
        f32 = rng.integers(0, 1 << 32, size=4096, dtype=np.uint64)
        f32 = f32.astype(np.uint32).view(np.float32)
        compare("F32 copy", run_tool(tool, tmp, "F32", f32), f32)

        # F32 -> F16: every f16 value, midpoints between neighbours (ties),
        # values just either side of them, and random bit patterns.
        vals = every.view(np.float16).astype(np.float32)
        vals = vals[np.isfinite(vals)]
        vals = np.sort(vals)
        mids = ((vals[:-1].astype(np.float64) + vals[1:]) / 2).astype(
            np.float32)
        near = np.concatenate([np.nextafter(mids, np.float32(np.inf)),
                               np.nextafter(mids, np.float32(-np.inf))])
        rnd = rng.integers(0, 1 << 32, size=1 << 16, dtype=np.uint64)
        rnd = rnd.astype(np.uint32).view(np.float32)
        extra = np.array([65504, 65519.99, 65520, 65536, 1e10, np.inf,
                          -np.inf, np.nan, 2.0 ** -25, 2.0 ** -24,
                          1.5 * 2.0 ** -25, 2.0 ** -26, 0.0, -0.0],
                         dtype=np.float32)
        src = np.concatenate([vals, mids, near, rnd, extra]).astype(
            np.float32)
        ours = run_tool(tool, tmp, "F32_TO_F16", src)
        with np.errstate(over="ignore"):
            ref = src.astype(np.float16).view(np.uint16)
        nan_ok = np.isnan(src) & ((ours & 0x7C00) == 0x7C00) & (
            (ours & 0x3FF) != 0)
        bad = (ours != ref) & ~nan_ok
        if bad.any():
            i = int(np.argmax(bad))
            print(f"F32->F16: {int(bad.sum())} wrong, e.g. {src[i]!r} -> "
                  f"{ours[i]:#06x}, numpy {ref[i]:#06x}")
        check(not bad.any(), "F32 -> F16 rounding")

    print(f"{passed} passed, {failed} failed")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
