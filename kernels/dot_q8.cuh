/* SPDX-License-Identifier: MIT */
/*
 * The integer arithmetic of the 8-bit-activation GEMV kernels, shared by the
 * GPU and by CPU tests: activation rounding exactly as the CPU backend does
 * it (userspace/lib/cpu/act_quant.c) and each lane's share of a weight
 * block's integer dot product against those activations, with the same
 * integers the CPU dot kernels form (userspace/lib/cpu/dot_generic.c).
 * Plain C that nvcc compiles for host and device, so a C test can check
 * every helper against the CPU backend bit for bit.
 *
 * A block of QK weights is split between G lanes ("lane gl of the block"):
 *   Q8_0  (34 bytes,  32 weights): G = 4, lane gl takes qs[8 gl, 8 gl + 8)
 *   Q4_K (144 bytes, 256 weights): G = 8, lane gl takes qs bytes
 *         [32 j + 16 h, +16), j = gl / 2, h = gl % 2: low nibbles are
 *         weights 64 j + 16 h + i, high nibbles 64 j + 32 + 16 h + i
 *   Q6_K (210 bytes, 256 weights): G = 8, lane gl takes half hh = gl / 4,
 *         positions l0 = 8 (gl % 4) .. l0 + 7 of all four quarters: weights
 *         128 hh + 32 q + l0 + i, q = 0..3
 * Summing a block's G lane integers gives the CPU kernel's block integers
 * (sumi, and for Q4_K the min term summ).
 *
 * The activation rounding needs IEEE division and reciprocal: the kernels
 * must not be built with --use_fast_math or -prec-div=false.
 */
#ifndef EC_KERNELS_DOT_Q8_CUH
#define EC_KERNELS_DOT_Q8_CUH

#include <math.h>
#include <stdint.h>
#include <string.h>

#ifdef __CUDACC__
#include <cuda_fp16.h>
#define EC_HD static __host__ __device__ __forceinline__
#else
#define EC_HD static inline
#endif

/*
 * EC_Q8_DEV: the device variants (wide loads, intrinsics), in device code
 * and in the CPU emulation of the kernels (kernels/emu provides the
 * intrinsics), so the emulation runs what the GPU runs; plain C (the CPU
 * tests) and nvcc's host pass get memcpy and portable arithmetic.
 */
#if defined(__CUDA_ARCH__) || defined(EC_CUDA_EMU)
#define EC_Q8_DEV 1
#endif

#define EC_Q8_0_G 4	/* lanes per Q8_0 block */
#define EC_QK_G 8	/* lanes per Q4_K / Q6_K block */

/* f16 bits to float (exact) */
EC_HD float ec_q8_h2f(uint16_t h)
{
#ifdef EC_Q8_DEV
	return __half2float(__ushort_as_half(h));
#else
	uint32_t s = (uint32_t)(h & 0x8000u) << 16, e = (h >> 10) & 0x1fu;
	uint32_t m = h & 0x3ffu, u;
	float f;

	if (e == 0) {		/* zero or subnormal: m * 2^-24, exact */
		f = (float)m * 5.9604644775390625e-8f;
		return s ? -f : f;
	}
	if (e == 31)
		u = s | 0x7f800000u | (m << 13);
	else
		u = s | ((e + 112) << 23) | (m << 13);
	memcpy(&f, &u, 4);
	return f;
#endif
}

/* c + the dot product of the four signed bytes of a and of b */
EC_HD int32_t ec_dp4a(uint32_t a, uint32_t b, int32_t c)
{
#ifdef EC_Q8_DEV
	return __dp4a((int)a, (int)b, c);
#else
	for (int i = 0; i < 4; i++)
		c += (int32_t)(int8_t)(a >> 8 * i) *
		     (int32_t)(int8_t)(b >> 8 * i);
	return c;
#endif
}

/*
 * n little-endian words from p, which need only be 2-byte aligned: on the
 * device two aligned loads and a byte permute per word (the word after
 * the last one needed is read too, so buffers carry 4 bytes of slack).
 */
EC_HD void ec_ld_words(const uint8_t *p, int n, uint32_t *out)
{
#ifdef EC_Q8_DEV
	const uint32_t *a = (const uint32_t *)((uintptr_t)p & ~(uintptr_t)3);
	uint32_t sh = (uint32_t)(uintptr_t)p & 3, prev;

	if (!sh) {
		for (int i = 0; i < n; i++)
			out[i] = a[i];
		return;
	}
	prev = a[0];
	for (int i = 0; i < n; i++) {
		uint32_t next = a[i + 1];

		out[i] = __byte_perm(prev, next, 0x3210 + 0x1111 * sh);
		prev = next;
	}
#else
	memcpy(out, p, 4 * (size_t)n);
#endif
}

EC_HD uint16_t ec_ld_u16(const uint8_t *p)
{
#ifdef EC_Q8_DEV
	return *(const uint16_t *)p;
#else
	uint16_t v;

	memcpy(&v, p, 2);
	return v;
#endif
}

/* ------------------------------------------------------------------ */
/* Activation rounding (ec_cpu_quantize_q8 / ec_cpu_quantize_q8k)      */

/*
 * Scale of a block whose largest |x| is amax, and its reciprocal (0 for an
 * all-zero block).  amax is taken with `a > amax ? a : amax` from 0 (NaN
 * never wins), as the CPU does; max is exact, so any order gives the same.
 */
EC_HD float ec_act_scale(float amax, float *id)
{
	float d = amax / 127.0f;

	*id = d != 0.0f ? 1.0f / d : 0.0f;
	return d;
}

/*
 * round(x * id) to nearest even, clamped to [-127, 127]: lrintf and the
 * clamp of the CPU (a NaN product gives -127 there, as x86's lrintf
 * returns LONG_MIN for it; likewise here).
 */
EC_HD int ec_act_round(float x, float id)
{
	float r = rintf(x * id);

	if (r > 127.0f)
		return 127;
	if (r >= -127.0f)
		return (int)r;
	return -127;
}

/* ------------------------------------------------------------------ */
/* Q8_0 weights x Q8 activations                                       */

struct ec_wq8_0 {
	uint32_t q[2];		/* eight signed weights */
	float d;
};

struct ec_xq8_0 {
	uint32_t q[2];		/* the eight matching activations */
	float d;
};

/* lane gl's weights of the 34-byte block at blk */
EC_HD void ec_wq8_0_load(struct ec_wq8_0 *w, const uint8_t *blk, int gl)
{
	ec_ld_words(blk + 2 + 8 * gl, 2, w->q);
	w->d = ec_q8_h2f(ec_ld_u16(blk));
}

/* lane gl's activations of a block: qs its 32 values (8-byte aligned) */
EC_HD void ec_xq8_0_load(struct ec_xq8_0 *x, const int8_t *qs, float d,
			 int gl)
{
#ifdef EC_Q8_DEV
	uint2 v = *(const uint2 *)(qs + 8 * gl);

	x->q[0] = v.x;
	x->q[1] = v.y;
#else
	memcpy(x->q, qs + 8 * gl, 8);
#endif
	x->d = d;
}

EC_HD int32_t ec_q8_0_idot(const struct ec_wq8_0 *w, const struct ec_xq8_0 *x)
{
	return ec_dp4a(w->q[0], x->q[0], ec_dp4a(w->q[1], x->q[1], 0));
}

/* as dot_q8_0: isum * (d_w * d_x) */
EC_HD float ec_q8_0_fdot(const struct ec_wq8_0 *w, const struct ec_xq8_0 *x)
{
	return (float)ec_q8_0_idot(w, x) * (w->d * x->d);
}

/* ------------------------------------------------------------------ */
/* Q4_K weights x Q8_K activations                                     */

struct ec_wq4_k {
	uint32_t lo[4], hi[4];	/* 4-bit weights, one per byte */
	int32_t sc_lo, m_lo;	/* sub-block 2 j: scale, min */
	int32_t sc_hi, m_hi;	/* sub-block 2 j + 1 */
	float d, dmin;
};

struct ec_xq8_k4 {
	uint32_t lo[4], hi[4];	/* activations of the low, high weights */
	int32_t s_lo, s_hi;	/* their sums (the CPU's bsums) */
	float d;
};

/*
 * Lane gl's weights from the block's first 16 bytes (hdr: d, dmin, the 12
 * scale bytes) and its 16 bytes of qs, as words.  The 6-bit scales and
 * mins of ggml's get_scale_min_k4 (ec_q4_k_scale_min), four per word:
 * sub-blocks 0-3 are the low 6 bits of bytes 0-3 (scales) and 4-7 (mins);
 * 4-7 the nibbles of bytes 8-11 with the top 2 bits of bytes 0-7.
 */
EC_HD void ec_wq4_k_set(struct ec_wq4_k *w, const uint32_t hdr[4],
			const uint32_t qs[4], int gl)
{
	uint32_t s0 = hdr[1], s1 = hdr[2], s2 = hdr[3];
	int j = gl >> 1, sh = 16 * (j & 1);
	uint32_t sc = j < 2 ? s0 & 0x3F3F3F3Fu
			    : (s2 & 0x0F0F0F0Fu) | ((s0 >> 2) & 0x30303030u);
	uint32_t mn = j < 2 ? s1 & 0x3F3F3F3Fu
			    : ((s2 >> 4) & 0x0F0F0F0Fu) |
				      ((s1 >> 2) & 0x30303030u);

	w->sc_lo = (int32_t)((sc >> sh) & 0xff);
	w->sc_hi = (int32_t)((sc >> (sh + 8)) & 0xff);
	w->m_lo = (int32_t)((mn >> sh) & 0xff);
	w->m_hi = (int32_t)((mn >> (sh + 8)) & 0xff);
	for (int i = 0; i < 4; i++) {
		w->lo[i] = qs[i] & 0x0F0F0F0Fu;
		w->hi[i] = (qs[i] >> 4) & 0x0F0F0F0Fu;
	}
	w->d = ec_q8_h2f((uint16_t)(hdr[0] & 0xffff));
	w->dmin = ec_q8_h2f((uint16_t)(hdr[0] >> 16));
}

/* the same from a 144-byte block at any 2-byte aligned address */
EC_HD void ec_wq4_k_load(struct ec_wq4_k *w, const uint8_t *blk, int gl)
{
	uint32_t hdr[4], qs[4];

	ec_ld_words(blk, 4, hdr);
	ec_ld_words(blk + 16 + 32 * (gl >> 1) + 16 * (gl & 1), 4, qs);
	ec_wq4_k_set(w, hdr, qs, gl);
}

/*
 * Lane gl's activations of a 256-block: qs (16-byte aligned), sums its 16
 * sums of 16, d its scale.
 */
EC_HD void ec_xq8_k4_load(struct ec_xq8_k4 *x, const int8_t *qs,
			  const int16_t *sums, float d, int gl)
{
	int e = 64 * (gl >> 1) + 16 * (gl & 1);

#ifdef EC_Q8_DEV
	uint4 a = *(const uint4 *)(qs + e), b = *(const uint4 *)(qs + e + 32);

	x->lo[0] = a.x, x->lo[1] = a.y, x->lo[2] = a.z, x->lo[3] = a.w;
	x->hi[0] = b.x, x->hi[1] = b.y, x->hi[2] = b.z, x->hi[3] = b.w;
#else
	memcpy(x->lo, qs + e, 16);
	memcpy(x->hi, qs + e + 32, 16);
#endif
	x->s_lo = sums[e / 16];
	x->s_hi = sums[e / 16 + 2];
	x->d = d;
}

/* sumi and summ of dot_q4_k, lane gl's share */
EC_HD void ec_q4_k_idot(const struct ec_wq4_k *w, const struct ec_xq8_k4 *x,
			int32_t *isum, int32_t *imin)
{
	int32_t lo = 0, hi = 0;

	for (int i = 0; i < 4; i++) {
		lo = ec_dp4a(w->lo[i], x->lo[i], lo);
		hi = ec_dp4a(w->hi[i], x->hi[i], hi);
	}
	*isum = w->sc_lo * lo + w->sc_hi * hi;
	*imin = w->m_lo * x->s_lo + w->m_hi * x->s_hi;
}

/* as dot_q4_k: d_x * (d * sumi - dmin * summ) */
EC_HD float ec_q4_k_fdot(const struct ec_wq4_k *w, const struct ec_xq8_k4 *x)
{
	int32_t isum, imin;

	ec_q4_k_idot(w, x, &isum, &imin);
	return x->d * (w->d * (float)isum - w->dmin * (float)imin);
}

/* ------------------------------------------------------------------ */
/* Q6_K weights x Q8_K activations                                     */

struct ec_wq6_k {
	uint32_t q[4][2];	/* 6-bit weights (0..63, less 32) by quarter */
	int32_t sc[4];		/* each quarter's sub-block scale */
	float d;
};

struct ec_xq8_k6 {
	uint32_t q[4][2];	/* activations per quarter */
	int32_t s32[4];		/* 32 * their sum: the offset's share */
	float d;
};

/* lane gl's weights of the 210-byte block at blk (2-byte aligned) */
EC_HD void ec_wq6_k_load(struct ec_wq6_k *w, const uint8_t *blk, int gl)
{
	int hh = gl >> 2, l0 = 8 * (gl & 3);
	uint32_t a[2], b[2], h[2], s[2];

	ec_ld_words(blk + 64 * hh + l0, 2, a);
	ec_ld_words(blk + 64 * hh + 32 + l0, 2, b);
	ec_ld_words(blk + 128 + 32 * hh + l0, 2, h);
	ec_ld_words(blk + 192 + 8 * hh, 2, s);
	for (int i = 0; i < 2; i++) {
		w->q[0][i] = (a[i] & 0x0F0F0F0Fu) | ((h[i] & 0x03030303u) << 4);
		w->q[1][i] = (b[i] & 0x0F0F0F0Fu) |
			     (((h[i] >> 2) & 0x03030303u) << 4);
		w->q[2][i] = ((a[i] >> 4) & 0x0F0F0F0Fu) |
			     (((h[i] >> 4) & 0x03030303u) << 4);
		w->q[3][i] = ((b[i] >> 4) & 0x0F0F0F0Fu) |
			     (((h[i] >> 6) & 0x03030303u) << 4);
	}
	/* quarter q's sub-block is 8 hh + 2 q + l0 / 16: byte 2 q + l0 / 16
	 * of the half's 8 scales */
	for (int q = 0; q < 4; q++)
		w->sc[q] = (int8_t)(s[q >> 1] >>
				    8 * (2 * (q & 1) + (l0 >> 4)));
	w->d = ec_q8_h2f(ec_ld_u16(blk + 208));
}

/* lane gl's activations of a 256-block (qs 16-byte aligned) */
EC_HD void ec_xq8_k6_load(struct ec_xq8_k6 *x, const int8_t *qs, float d,
			  int gl)
{
	int e = 128 * (gl >> 2) + 8 * (gl & 3);

	for (int q = 0; q < 4; q++) {
#ifdef EC_Q8_DEV
		uint2 v = *(const uint2 *)(qs + e + 32 * q);

		x->q[q][0] = v.x;
		x->q[q][1] = v.y;
#else
		memcpy(x->q[q], qs + e + 32 * q, 8);
#endif
		x->s32[q] = ec_dp4a(0x20202020u, x->q[q][0],
				    ec_dp4a(0x20202020u, x->q[q][1], 0));
	}
	x->d = d;
}

/* sumi of dot_q6_k, lane gl's share: sum sc * ((q - 32) . x) */
EC_HD int32_t ec_q6_k_idot(const struct ec_wq6_k *w,
			   const struct ec_xq8_k6 *x)
{
	int32_t s = 0;

	for (int q = 0; q < 4; q++)
		s += w->sc[q] * (ec_dp4a(w->q[q][0], x->q[q][0],
					 ec_dp4a(w->q[q][1], x->q[q][1], 0)) -
				 x->s32[q]);
	return s;
}

/* as dot_q6_k: d_x * d * sumi */
EC_HD float ec_q6_k_fdot(const struct ec_wq6_k *w, const struct ec_xq8_k6 *x)
{
	return x->d * w->d * (float)ec_q6_k_idot(w, x);
}

#endif
