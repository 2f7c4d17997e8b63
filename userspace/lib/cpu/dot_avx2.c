// SPDX-License-Identifier: MIT
/* AVX2 + FMA + F16C kernels (built with -mavx2 -mfma -mf16c). */
#include <immintrin.h>
#include <string.h>

#include "cpu/cpu.h"
#include "cpu/simd_x86.h"

static float dot_f32(uint32_t n, const void *wv, const void *xv)
{
	const float *w = wv, *x = xv;
	__m256 a0 = _mm256_setzero_ps(), a1 = _mm256_setzero_ps();
	__m256 a2 = _mm256_setzero_ps(), a3 = _mm256_setzero_ps();
	uint32_t i = 0;
	float s;

	for (; i + 32 <= n; i += 32) {
		a0 = _mm256_fmadd_ps(_mm256_loadu_ps(w + i),
				     _mm256_loadu_ps(x + i), a0);
		a1 = _mm256_fmadd_ps(_mm256_loadu_ps(w + i + 8),
				     _mm256_loadu_ps(x + i + 8), a1);
		a2 = _mm256_fmadd_ps(_mm256_loadu_ps(w + i + 16),
				     _mm256_loadu_ps(x + i + 16), a2);
		a3 = _mm256_fmadd_ps(_mm256_loadu_ps(w + i + 24),
				     _mm256_loadu_ps(x + i + 24), a3);
	}
	for (; i + 8 <= n; i += 8)
		a0 = _mm256_fmadd_ps(_mm256_loadu_ps(w + i),
				     _mm256_loadu_ps(x + i), a0);
	s = ec_hsum256(
	    _mm256_add_ps(_mm256_add_ps(a0, a1), _mm256_add_ps(a2, a3)));
	for (; i < n; i++)
		s = fmaf(w[i], x[i], s);
	return s;
}

static inline __m256 load_f16x8(const uint16_t *p)
{
	return _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)p));
}

static inline __m256 load_bf16x8(const uint16_t *p)
{
	__m256i v = _mm256_cvtepu16_epi32(_mm_loadu_si128((const __m128i *)p));

	return _mm256_castsi256_ps(_mm256_slli_epi32(v, 16));
}

#define DOT_HALF(name, load, scalar)                                           \
	static float name(uint32_t n, const void *wv, const void *xv)          \
	{                                                                      \
		const uint16_t *w = wv;                                        \
		const float *x = xv;                                           \
		__m256 a0 = _mm256_setzero_ps(), a1 = _mm256_setzero_ps();     \
		uint32_t i = 0;                                                \
		float s;                                                       \
									\
		for (; i + 16 <= n; i += 16) {                                 \
			a0 = _mm256_fmadd_ps(load(w + i),                      \
					     _mm256_loadu_ps(x + i), a0);      \
			a1 = _mm256_fmadd_ps(load(w + i + 8),                  \
					     _mm256_loadu_ps(x + i + 8), a1);  \
		}                                                              \
		for (; i + 8 <= n; i += 8)                                     \
			a0 = _mm256_fmadd_ps(load(w + i),                      \
					     _mm256_loadu_ps(x + i), a0);      \
		s = ec_hsum256(_mm256_add_ps(a0, a1));                         \
		for (; i < n; i++)                                             \
			s = fmaf(scalar(w[i]), x[i], s);                       \
		return s;                                                      \
	}

DOT_HALF(dot_f16, load_f16x8, _cvtsh_ss)
DOT_HALF(dot_bf16, load_bf16x8, ec_bf16_to_f32)

/*
 * sum(w * x) of one block in 8 lanes: |w| as unsigned times x with w's
 * sign (maddubs), exact since the activation never reaches -128: pairs stay
 * within 2 * 128 * 127.
 */
static inline __m256i q8_0_idot(const struct ec_block_q8_0 *w, const int8_t *xq)
{
	__m256i qw = _mm256_loadu_si256((const __m256i *)w->qs);
	__m256i qx = _mm256_loadu_si256((const __m256i *)xq);
	__m256i p16 =
	    _mm256_maddubs_epi16(_mm256_abs_epi8(qw), _mm256_sign_epi8(qx, qw));

	return _mm256_madd_epi16(p16, _mm256_set1_epi16(1));
}

/*
 * Eight blocks at a time: their integer dots are reduced to one vector of
 * eight sums, converted and scaled by the eight blocks' scales at once,
 * which keeps the per-block work small enough for the GEMV to run at
 * memory speed.
 */
static float dot_q8_0(uint32_t n, const void *wv, const void *xv)
{
	const struct ec_block_q8_0 *w = wv;
	const int8_t *xq = xv;
	const float *xd = ec_cpu_q8_d(xv, n);
	__m256 acc = _mm256_setzero_ps();
	uint32_t nb = n / EC_QK8_0, b = 0;

	for (; b + 8 <= nb; b += 8) {
		__m256i p[8];

#pragma GCC unroll 8
		for (int j = 0; j < 8; j++)
			p[j] = q8_0_idot(w + b + j, xq + (b + j) * EC_QK8_0);
		acc = _mm256_fmadd_ps(ec_q8_0_scales8(w + b, xd + b),
				      _mm256_cvtepi32_ps(ec_hsum8x8_epi32(p)),
				      acc);
	}
	for (; b < nb; b++)
		acc = _mm256_fmadd_ps(
		    _mm256_set1_ps(_cvtsh_ss(w[b].d) * xd[b]),
		    _mm256_cvtepi32_ps(q8_0_idot(w + b, xq + b * EC_QK8_0)),
		    acc);
	return ec_hsum256(acc);
}

/* Broadcast 16-bit lane k of each 128-bit half */
static inline __m256i bcast_i16(__m256i v, int k)
{
	return _mm256_shuffle_epi8(
	    v, _mm256_set1_epi16((short)(((2 * k + 1) << 8) | (2 * k))));
}

/* The 8 scales then the 8 mins of a Q4_K block as bytes (ggml's unpack) */
static inline __m128i q4_k_scales_mins(const uint8_t *scales)
{
	const uint32_t kmask1 = 0x3f3f3f3f, kmask2 = 0x0f0f0f0f;
	const uint32_t kmask3 = 0x03030303;
	uint32_t u[4], aux;

	memcpy(u, scales, 12);
	u[3] = ((u[2] >> 4) & kmask2) | (((u[1] >> 6) & kmask3) << 4);
	aux = u[1] & kmask1;
	u[1] = (u[2] & kmask2) | (((u[0] >> 6) & kmask3) << 4);
	u[2] = aux;
	u[0] &= kmask1;
	return _mm_set_epi32(u[3], u[2], u[1], u[0]);
}

static float dot_q4_k(uint32_t n, const void *wv, const void *xv)
{
	const struct ec_block_q4_k *w = wv;
	const struct ec_cpu_q8k_block *x = xv;
	const __m256i m4 = _mm256_set1_epi8(0xF);
	__m256 acc = _mm256_setzero_ps();
	__m128 acc_m = _mm_setzero_ps();

	for (uint32_t i = 0; i < n / EC_QK_K; i++) {
		const float d = x[i].d * _cvtsh_ss(w[i].d);
		const float dmin = -x[i].d * _cvtsh_ss(w[i].dmin);
		const uint8_t *q4 = w[i].qs;
		const int8_t *q8 = x[i].qs;
		__m256i sm =
		    _mm256_cvtepu8_epi16(q4_k_scales_mins(w[i].scales));
		__m256i bs = _mm256_loadu_si256((const __m256i *)x[i].bsums);
		/* sums of the activation per sub-block of 32 */
		__m128i s32 = _mm_hadd_epi16(_mm256_castsi256_si128(bs),
					     _mm256_extracti128_si256(bs, 1));
		__m128i prod =
		    _mm_madd_epi16(_mm256_extracti128_si256(sm, 1), s32);
		__m128i sc128 = _mm256_castsi256_si128(sm);
		__m256i scales = _mm256_set_m128i(sc128, sc128);
		__m256i sumi = _mm256_setzero_si256();

		acc_m = _mm_fmadd_ps(_mm_set1_ps(dmin), _mm_cvtepi32_ps(prod),
				     acc_m);
		for (int j = 0; j < EC_QK_K / 64; j++) {
			__m256i bits = _mm256_loadu_si256((const __m256i *)q4);
			__m256i lo = _mm256_and_si256(bits, m4);
			__m256i hi =
			    _mm256_and_si256(_mm256_srli_epi16(bits, 4), m4);
			__m256i xl = _mm256_loadu_si256((const __m256i *)q8);
			__m256i xh =
			    _mm256_loadu_si256((const __m256i *)(q8 + 32));
			__m256i pl = _mm256_maddubs_epi16(lo, xl);
			__m256i ph = _mm256_maddubs_epi16(hi, xh);

			pl = _mm256_madd_epi16(bcast_i16(scales, 2 * j), pl);
			ph =
			    _mm256_madd_epi16(bcast_i16(scales, 2 * j + 1), ph);
			sumi = _mm256_add_epi32(sumi, _mm256_add_epi32(pl, ph));
			q4 += 32;
			q8 += 64;
		}
		acc = _mm256_fmadd_ps(_mm256_set1_ps(d),
				      _mm256_cvtepi32_ps(sumi), acc);
	}
	return ec_hsum256(acc) + ec_hsum128(acc_m);
}

/*
 * Q6_K: maddubs on the unsigned 6-bit values, then subtract 32 * sum(x) per
 * sub-block of 16 using the activation's bsums.
 */
static float dot_q6_k(uint32_t n, const void *wv, const void *xv)
{
	const struct ec_block_q6_k *w = wv;
	const struct ec_cpu_q8k_block *x = xv;
	const __m256i m4 = _mm256_set1_epi8(0xF), m2 = _mm256_set1_epi8(3);
	__m256 acc = _mm256_setzero_ps();

	for (uint32_t i = 0; i < n / EC_QK_K; i++) {
		const float d = x[i].d * _cvtsh_ss(w[i].d);
		const uint8_t *ql = w[i].ql, *qh = w[i].qh;
		const int8_t *q8 = x[i].qs;
		__m128i sc8 = _mm_loadu_si128((const __m128i *)w[i].scales);
		__m256i bs = _mm256_loadu_si256((const __m256i *)x[i].bsums);
		__m256i corr = _mm256_madd_epi16(_mm256_cvtepi8_epi16(sc8), bs);
		__m256i sumi = _mm256_setzero_si256();

		for (int j = 0; j < 2; j++) {
			__m256i b1 = _mm256_loadu_si256((const __m256i *)ql);
			__m256i b2 =
			    _mm256_loadu_si256((const __m256i *)(ql + 32));
			__m256i bh = _mm256_loadu_si256((const __m256i *)qh);
			__m256i q[4];

			q[0] = _mm256_or_si256(
			    _mm256_and_si256(b1, m4),
			    _mm256_slli_epi16(_mm256_and_si256(bh, m2), 4));
			q[1] = _mm256_or_si256(
			    _mm256_and_si256(b2, m4),
			    _mm256_slli_epi16(
				_mm256_and_si256(_mm256_srli_epi16(bh, 2), m2),
				4));
			q[2] = _mm256_or_si256(
			    _mm256_and_si256(_mm256_srli_epi16(b1, 4), m4),
			    _mm256_slli_epi16(
				_mm256_and_si256(_mm256_srli_epi16(bh, 4), m2),
				4));
			q[3] = _mm256_or_si256(
			    _mm256_and_si256(_mm256_srli_epi16(b2, 4), m4),
			    _mm256_slli_epi16(
				_mm256_and_si256(_mm256_srli_epi16(bh, 6), m2),
				4));
			for (int k = 0; k < 4; k++) {
				/* scales of sub-blocks 8j+2k and 8j+2k+1 */
				int s = 8 * j + 2 * k;
				__m128i shuf = _mm_set_epi64x(
				    0x0101010101010101ll * (s + 1),
				    0x0101010101010101ll * s);
				__m256i sc = _mm256_cvtepi8_epi16(
				    _mm_shuffle_epi8(sc8, shuf));
				__m256i xv8 = _mm256_loadu_si256(
				    (const __m256i *)(q8 + 32 * k));
				__m256i p = _mm256_maddubs_epi16(q[k], xv8);

				sumi = _mm256_add_epi32(
				    sumi, _mm256_madd_epi16(sc, p));
			}
			ql += 64;
			qh += 32;
			q8 += 128;
		}
		sumi = _mm256_sub_epi32(sumi, _mm256_slli_epi32(corr, 5));
		acc = _mm256_fmadd_ps(_mm256_set1_ps(d),
				      _mm256_cvtepi32_ps(sumi), acc);
	}
	return ec_hsum256(acc);
}

/* Four rows at a time, so x is loaded once per four products */
static void dot_rows_f32(uint32_t n, const float *x, const float *rows,
			 size_t stride, uint32_t n_rows, float *out)
{
	uint32_t r = 0;

	for (; r + 4 <= n_rows; r += 4) {
		const float *p = rows + r * stride;
		__m256 a[4];
		uint32_t i = 0;
		__m128 s;
		float o[4];

		for (int k = 0; k < 4; k++)
			a[k] = _mm256_setzero_ps();
		for (; i + 8 <= n; i += 8) {
			__m256 xv = _mm256_loadu_ps(x + i);

#pragma GCC unroll 4
			for (int k = 0; k < 4; k++)
				a[k] = _mm256_fmadd_ps(
					_mm256_loadu_ps(p + k * stride + i), xv,
					a[k]);
		}
		/* lanes of a0..a3 summed pairwise, then the two halves */
		a[0] = _mm256_hadd_ps(_mm256_hadd_ps(a[0], a[1]),
				      _mm256_hadd_ps(a[2], a[3]));
		s = _mm_add_ps(_mm256_castps256_ps128(a[0]),
			       _mm256_extractf128_ps(a[0], 1));
		_mm_storeu_ps(o, s);
		for (int k = 0; k < 4; k++) {
			for (uint32_t j = i; j < n; j++)
				o[k] = fmaf(p[k * stride + j], x[j], o[k]);
			out[r + k] = o[k];
		}
	}
	for (; r < n_rows; r++)
		out[r] = dot_f32(n, rows + r * stride, x);
}

/* 64 columns of y stay in registers while every row is added in */
static void axpy_rows_f32(uint32_t n, const float *a, const float *rows,
			  size_t stride, uint32_t n_rows, float *y)
{
	uint32_t c = 0;

	for (; c + 64 <= n; c += 64) {
		__m256 acc[8];

#pragma GCC unroll 8
		for (int k = 0; k < 8; k++)
			acc[k] = _mm256_loadu_ps(y + c + 8 * k);
		for (uint32_t r = 0; r < n_rows; r++) {
			const float *p = rows + r * stride + c;
			__m256 av = _mm256_broadcast_ss(a + r);

#pragma GCC unroll 8
			for (int k = 0; k < 8; k++)
				acc[k] = _mm256_fmadd_ps(
					av, _mm256_loadu_ps(p + 8 * k), acc[k]);
		}
#pragma GCC unroll 8
		for (int k = 0; k < 8; k++)
			_mm256_storeu_ps(y + c + 8 * k, acc[k]);
	}
	for (; c + 8 <= n; c += 8) {
		__m256 acc = _mm256_loadu_ps(y + c);

		for (uint32_t r = 0; r < n_rows; r++)
			acc = _mm256_fmadd_ps(_mm256_broadcast_ss(a + r),
					      _mm256_loadu_ps(rows + r * stride +
							      c),
					      acc);
		_mm256_storeu_ps(y + c, acc);
	}
	for (; c < n; c++) {
		float v = y[c];

		for (uint32_t r = 0; r < n_rows; r++)
			v = fmaf(a[r], rows[r * stride + c], v);
		y[c] = v;
	}
}

/*
 * exp(x) for x <= 88.37 (Cephes' expf): x = k ln2 + r, |r| <= ln2 / 2,
 * exp(r) by a degree-7 polynomial, times 2^k through the exponent bits;
 * below -87.33 (where 2^k would leave the normal range) it returns 0.
 * Within 2 ulp of the correctly rounded value.
 */
static inline __m256 exp256(__m256 x)
{
	const __m256 log2e = _mm256_set1_ps(1.44269504088896341f);
	const __m256 c1 = _mm256_set1_ps(0.693359375f);
	const __m256 c2 = _mm256_set1_ps(-2.12194440e-4f);
	__m256 under = _mm256_cmp_ps(x, _mm256_set1_ps(-87.3365478515625f),
				     _CMP_LT_OQ);
	__m256 k, r, p, r2;
	__m256i e;

	x = _mm256_min_ps(x, _mm256_set1_ps(88.3762626647949f));
	k = _mm256_round_ps(_mm256_mul_ps(x, log2e),
			    _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
	r = _mm256_fnmadd_ps(k, c1, x);
	r = _mm256_fnmadd_ps(k, c2, r);
	p = _mm256_set1_ps(1.9875691500e-4f);
	p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.3981999507e-3f));
	p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(8.3334519073e-3f));
	p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(4.1665795894e-2f));
	p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.6666665459e-1f));
	p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(5.0000001201e-1f));
	r2 = _mm256_mul_ps(r, r);
	p = _mm256_fmadd_ps(p, r2, _mm256_add_ps(r, _mm256_set1_ps(1.0f)));
	e = _mm256_slli_epi32(
		_mm256_add_epi32(_mm256_cvtps_epi32(k), _mm256_set1_epi32(127)),
		23);
	p = _mm256_mul_ps(p, _mm256_castsi256_ps(e));
	return _mm256_andnot_ps(under, p);
}

static float exp_sum_f32(uint32_t n, float *x, float m)
{
	__m256 mv = _mm256_set1_ps(m), acc = _mm256_setzero_ps();
	uint32_t j = 0;
	float sum;

	for (; j + 8 <= n; j += 8) {
		__m256 v = exp256(_mm256_sub_ps(_mm256_loadu_ps(x + j), mv));

		_mm256_storeu_ps(x + j, v);
		acc = _mm256_add_ps(acc, v);
	}
	sum = ec_hsum256(acc);
	for (; j < n; j++) {
		x[j] = expf(x[j] - m);
		sum += x[j];
	}
	return sum;
}

const struct ec_cpu_kernels ec_cpu_kernels_avx2 = {
	.name = "avx2",
	.dot_f32 = dot_f32,
	.dot_f16 = dot_f16,
	.dot_bf16 = dot_bf16,
	.dot_q8_0 = dot_q8_0,
	.dot_q4_k = dot_q4_k,
	.dot_q6_k = dot_q6_k,
	.dot_rows_f32 = dot_rows_f32,
	.axpy_rows_f32 = axpy_rows_f32,
	.exp_sum_f32 = exp_sum_f32,
};
