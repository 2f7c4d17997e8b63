# SPDX-License-Identifier: MIT
"""Q4_K quantiser in numpy, writing ggml's block_q4_K layout exactly.

gguf-py can dequantise Q4_K but not quantise it, so the fixture generator
uses this.  A super-block holds 256 weights as 8 sub-blocks of 32:

    f16 d, f16 dmin, u8 scales[12], u8 qs[128]          (144 bytes)
    w = d * sc[j] * q - dmin * m[j]          q in 0..15, sc/m 6-bit

Each sub-block gets its own scale and min from its range (min clamped to
<= 0, as ggml's make_qkx quantisers do), the eight scales and mins are then
quantised to 6 bits against d = max(scale)/63 and dmin = max(min)/63.  The
quants are chosen against the *stored* (f16 and 6-bit rounded) scales, so
the rounding error is at most half a step.  This is simpler than ggml's
iterative search (slightly larger error) but the layout is identical;
check() verifies it with gguf.quants.dequantize, the format reference.
"""
import numpy as np

QK_K = 256
BLOCK_BYTES = 144


def _pack_scales(ls, lm):
    """6-bit scales/mins (n, 8) -> ggml's 12-byte packing (n, 12)."""
    n = ls.shape[0]
    out = np.zeros((n, 12), dtype=np.uint8)
    out[:, 0:4] = ls[:, 0:4] | ((ls[:, 4:8] >> 4) << 6)
    out[:, 4:8] = lm[:, 0:4] | ((lm[:, 4:8] >> 4) << 6)
    out[:, 8:12] = (ls[:, 4:8] & 0x0F) | ((lm[:, 4:8] & 0x0F) << 4)
    return out


def quantize_q4_k(x, _parts=None):
    """float array (..., k), k % 256 == 0 -> uint8 (..., k / 256 * 144)."""
    x = np.asarray(x, dtype=np.float32)
    if x.shape[-1] % QK_K:
        raise ValueError(f"Q4_K needs rows of a multiple of {QK_K}, "
                         f"got {x.shape[-1]}")
    lead = x.shape[:-1]
    blocks = x.reshape(-1, 8, 32)                      # (n, 8, 32)
    n = blocks.shape[0]

    mn = np.minimum(blocks.min(axis=2), 0.0)           # (n, 8), <= 0
    mx = blocks.max(axis=2)
    scale = (mx - mn) / 15.0                           # (n, 8), >= 0
    neg_min = -mn                                      # (n, 8), >= 0

    d = (scale.max(axis=1) / 63.0).astype(np.float16)  # (n,)
    dmin = (neg_min.max(axis=1) / 63.0).astype(np.float16)
    d32 = d.astype(np.float32)[:, None]
    dmin32 = dmin.astype(np.float32)[:, None]
    with np.errstate(divide="ignore", invalid="ignore"):
        ls = np.where(d32 > 0, np.rint(scale / d32), 0)
        lm = np.where(dmin32 > 0, np.rint(neg_min / dmin32), 0)
    ls = np.clip(ls, 0, 63).astype(np.uint8)
    lm = np.clip(lm, 0, 63).astype(np.uint8)

    sub_d = d32 * ls.astype(np.float32)                # (n, 8)
    sub_m = dmin32 * lm.astype(np.float32)
    with np.errstate(divide="ignore", invalid="ignore"):
        q = np.where(sub_d[..., None] > 0,
                     np.rint((blocks + sub_m[..., None]) / sub_d[..., None]),
                     0)
    q = np.clip(q, 0, 15).astype(np.uint8)             # (n, 8, 32)

    # 64 weights -> 32 bytes: sub-block 2i in the low nibbles, 2i+1 high.
    qs = (q[:, 0::2, :] | (q[:, 1::2, :] << 4)).reshape(n, 128)

    if _parts is not None:     # for check(): what the bytes must decode to
        _parts["expect"] = (sub_d[..., None] * q.astype(np.float32)
                            - sub_m[..., None]).reshape(x.shape)
    out = np.concatenate([
        d.reshape(n, 1).view(np.uint8),
        dmin.reshape(n, 1).view(np.uint8),
        _pack_scales(ls, lm),
        qs,
    ], axis=1)                                         # (n, 144)
    return out.reshape(*lead, x.shape[-1] // QK_K * BLOCK_BYTES)


def check(seed=0):
    """Round-trip random data through gguf-py's dequantiser; returns the
    relative RMS error.  Raises if the layout disagrees."""
    from gguf import GGMLQuantizationType, quants

    rng = np.random.default_rng(seed)
    x = rng.standard_normal((64, 512)).astype(np.float32)
    x[3] = np.abs(x[3])            # all-positive rows: min clamps to 0
    x[4] = -np.abs(x[4])
    x[5] = 0.0                     # all-zero row: d = dmin = 0
    x[6, :256] *= 1e-3             # sub-blocks of very different range
    parts = {}
    q = quantize_q4_k(x, parts)
    assert q.shape == (64, 2 * BLOCK_BYTES)
    y = quants.dequantize(q, GGMLQuantizationType.Q4_K)
    assert y.shape == x.shape
    # The packing must decode to exactly the values the quantiser chose.
    if not np.allclose(y, parts["expect"], rtol=1e-6, atol=1e-7):
        raise AssertionError("Q4_K packing disagrees with gguf-py")
    assert np.all(y[5] == 0)
    err = np.sqrt(np.mean((y - x) ** 2) / np.mean(x ** 2))
    # Each weight may be off by half a quant step plus the 6-bit rounding
    # of its sub-block's scale and min; for N(0,1) data this stays well
    # under 10% RMS.  A layout bug gives errors of order 100%.
    if not err < 0.1:
        raise AssertionError(f"Q4_K round trip error {err:.3f}")
    return float(err)


if __name__ == "__main__":
    print(f"Q4_K round trip relative RMS error: {check():.4f}")
