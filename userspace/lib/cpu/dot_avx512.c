// SPDX-License-Identifier: MIT
/*
 * AVX-512 kernels (F, BW, VL, DQ; VNNI used when the CPU has it).  The
 * K-quant and attention kernels are the AVX2 ones: the first are bound by
 * unpacking, the others by memory, not by vector width.
 */
#include <immintrin.h>

#include "cpu/cpu.h"
#include "cpu/simd_x86.h"

static float dot_f32(uint32_t n, const void *wv, const void *xv)
{
	const float *w = wv, *x = xv;
	__m512 a0 = _mm512_setzero_ps(), a1 = _mm512_setzero_ps();
	__m512 a2 = _mm512_setzero_ps(), a3 = _mm512_setzero_ps();
	uint32_t i = 0;

	for (; i + 64 <= n; i += 64) {
		a0 = _mm512_fmadd_ps(_mm512_loadu_ps(w + i),
				     _mm512_loadu_ps(x + i), a0);
		a1 = _mm512_fmadd_ps(_mm512_loadu_ps(w + i + 16),
				     _mm512_loadu_ps(x + i + 16), a1);
		a2 = _mm512_fmadd_ps(_mm512_loadu_ps(w + i + 32),
				     _mm512_loadu_ps(x + i + 32), a2);
		a3 = _mm512_fmadd_ps(_mm512_loadu_ps(w + i + 48),
				     _mm512_loadu_ps(x + i + 48), a3);
	}
	for (; i + 16 <= n; i += 16)
		a0 = _mm512_fmadd_ps(_mm512_loadu_ps(w + i),
				     _mm512_loadu_ps(x + i), a0);
	if (i < n) {
		__mmask16 m = (__mmask16)((1u << (n - i)) - 1);

		a1 = _mm512_fmadd_ps(_mm512_maskz_loadu_ps(m, w + i),
				     _mm512_maskz_loadu_ps(m, x + i), a1);
	}
	return _mm512_reduce_add_ps(
	    _mm512_add_ps(_mm512_add_ps(a0, a1), _mm512_add_ps(a2, a3)));
}

static inline __m512 load_f16x16(__mmask16 m, const uint16_t *p)
{
	return _mm512_cvtph_ps(_mm256_maskz_loadu_epi16(m, p));
}

static inline __m512 load_bf16x16(__mmask16 m, const uint16_t *p)
{
	__m512i v = _mm512_cvtepu16_epi32(_mm256_maskz_loadu_epi16(m, p));

	return _mm512_castsi512_ps(_mm512_slli_epi32(v, 16));
}

#define DOT_HALF(name, load)                                                   \
	static float name(uint32_t n, const void *wv, const void *xv)          \
	{                                                                      \
		const uint16_t *w = wv;                                        \
		const float *x = xv;                                           \
		__m512 a0 = _mm512_setzero_ps(), a1 = _mm512_setzero_ps();     \
		uint32_t i = 0;                                                \
									\
		for (; i + 32 <= n; i += 32) {                                 \
			a0 = _mm512_fmadd_ps(load(0xffff, w + i),              \
					     _mm512_loadu_ps(x + i), a0);      \
			a1 = _mm512_fmadd_ps(load(0xffff, w + i + 16),         \
					     _mm512_loadu_ps(x + i + 16), a1); \
		}                                                              \
		for (; i < n; i += 16) {                                       \
			__mmask16 m = n - i >= 16                              \
					  ? 0xffff                             \
					  : (__mmask16)((1u << (n - i)) - 1);  \
									\
			a0 = _mm512_fmadd_ps(load(m, w + i),                   \
					     _mm512_maskz_loadu_ps(m, x + i),  \
					     a0);                              \
		}                                                              \
		return _mm512_reduce_add_ps(_mm512_add_ps(a0, a1));            \
	}

DOT_HALF(dot_f16, load_f16x16)
DOT_HALF(dot_bf16, load_bf16x16)

/*
 * Q8_0 with VNNI: (w + 128) is unsigned, so one vpdpbusd gives
 * sum((w + 128) * x) on top of its accumulator, which starts with each of
 * its 8 lanes at the block's bias, -16 * sum(x): the lanes add up to
 * exactly sum(w * x).  Blocks go eight at a time as in the AVX2 kernel.
 */
__attribute__((target("avx512vnni"))) static inline __m256i
q8_0_idot_vnni(const struct ec_block_q8_0 *w, const int8_t *xq,
	       const int32_t *bias)
{
	const __m256i flip = _mm256_set1_epi8((char)0x80);
	__m256i qw =
	    _mm256_xor_si256(_mm256_loadu_si256((const __m256i *)w->qs), flip);
	__m256i qx = _mm256_loadu_si256((const __m256i *)xq);

	return _mm256_dpbusd_epi32(_mm256_set1_epi32(*bias), qw, qx);
}

__attribute__((target("avx512vnni"))) static float
dot_q8_0_vnni(uint32_t n, const void *wv, const void *xv)
{
	const struct ec_block_q8_0 *w = wv;
	const int8_t *xq = xv;
	const float *xd = ec_cpu_q8_d(xv, n);
	const int32_t *xb = ec_cpu_q8_bias(xv, n);
	__m256 acc = _mm256_setzero_ps();
	uint32_t nb = n / EC_QK8_0, b = 0;

	for (; b + 8 <= nb; b += 8) {
		__m256i p[8];

#pragma GCC unroll 8
		for (int j = 0; j < 8; j++)
			p[j] = q8_0_idot_vnni(
			    w + b + j, xq + (b + j) * EC_QK8_0, xb + b + j);
		acc = _mm256_fmadd_ps(ec_q8_0_scales8(w + b, xd + b),
				      _mm256_cvtepi32_ps(ec_hsum8x8_epi32(p)),
				      acc);
	}
	for (; b < nb; b++)
		acc = _mm256_fmadd_ps(_mm256_set1_ps(_cvtsh_ss(w[b].d) * xd[b]),
				      _mm256_cvtepi32_ps(q8_0_idot_vnni(
					  w + b, xq + b * EC_QK8_0, xb + b)),
				      acc);
	return ec_hsum256(acc);
}

struct ec_cpu_kernels ec_cpu_kernels_avx512 = {
	.name = "avx512",
	.dot_f32 = dot_f32,
	.dot_f16 = dot_f16,
	.dot_bf16 = dot_bf16,
};

void ec_cpu_kernels_avx512_init(int have_vnni)
{
	ec_cpu_kernels_avx512.dot_q8_0 =
	    have_vnni ? dot_q8_0_vnni : ec_cpu_kernels_avx2.dot_q8_0;
	ec_cpu_kernels_avx512.dot_q4_k = ec_cpu_kernels_avx2.dot_q4_k;
	ec_cpu_kernels_avx512.dot_q6_k = ec_cpu_kernels_avx2.dot_q6_k;
	ec_cpu_kernels_avx512.dot_rows_f32 = ec_cpu_kernels_avx2.dot_rows_f32;
	ec_cpu_kernels_avx512.axpy_rows_f32 = ec_cpu_kernels_avx2.axpy_rows_f32;
	ec_cpu_kernels_avx512.exp_sum_f32 = ec_cpu_kernels_avx2.exp_sum_f32;
}
