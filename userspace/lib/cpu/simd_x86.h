/* SPDX-License-Identifier: MIT */
/* Horizontal-sum helpers shared by the x86 SIMD kernel files. */
#ifndef EC_SIMD_X86_H
#define EC_SIMD_X86_H

#include <immintrin.h>
#include <math.h>

#include "quant.h"

static inline float ec_hsum128(__m128 v)
{
	v = _mm_add_ps(v, _mm_movehl_ps(v, v));
	v = _mm_add_ss(v, _mm_movehdup_ps(v));
	return _mm_cvtss_f32(v);
}

static inline float ec_hsum256(__m256 v)
{
	return ec_hsum128(
	    _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1)));
}

/*
 * The helpers below need AVX2 and F16C; only files built with them
 * (dot_avx2.c, dot_avx512.c) may use them.
 */
#ifdef __AVX2__
/* Lane i of the result: the sum of the eight lanes of p[i] */
static inline __m256i ec_hsum8x8_epi32(const __m256i p[8])
{
	__m256i h01 = _mm256_hadd_epi32(p[0], p[1]);
	__m256i h23 = _mm256_hadd_epi32(p[2], p[3]);
	__m256i h45 = _mm256_hadd_epi32(p[4], p[5]);
	__m256i h67 = _mm256_hadd_epi32(p[6], p[7]);
	__m256i h0123 = _mm256_hadd_epi32(h01, h23);
	__m256i h4567 = _mm256_hadd_epi32(h45, h67);

	return _mm256_add_epi32(_mm256_permute2x128_si256(h0123, h4567, 0x20),
				_mm256_permute2x128_si256(h0123, h4567, 0x31));
}

/* w.d * x.d for the eight Q8_0 blocks at w (f16 scales 34 bytes apart) */
static inline __m256 ec_q8_0_scales8(const struct ec_block_q8_0 *w,
				     const float *xd)
{
	__m128i h = _mm_setr_epi16(w[0].d, w[1].d, w[2].d, w[3].d, w[4].d,
				   w[5].d, w[6].d, w[7].d);

	return _mm256_mul_ps(_mm256_cvtph_ps(h), _mm256_loadu_ps(xd));
}
#endif

#endif
