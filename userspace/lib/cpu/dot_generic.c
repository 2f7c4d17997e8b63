// SPDX-License-Identifier: MIT
/* Portable C kernels: the reference every SIMD kernel set must agree with. */
#include <math.h>

#include "cpu/cpu.h"

/* f32 products of f32 inputs are exact in double: sum them there */
static float dot_f32(uint32_t n, const void *wv, const void *xv)
{
	const float *w = wv, *x = xv;
	double s0 = 0, s1 = 0, s2 = 0, s3 = 0;
	uint32_t i = 0;

	for (; i + 4 <= n; i += 4) {
		s0 += (double)w[i] * x[i];
		s1 += (double)w[i + 1] * x[i + 1];
		s2 += (double)w[i + 2] * x[i + 2];
		s3 += (double)w[i + 3] * x[i + 3];
	}
	for (; i < n; i++)
		s0 += (double)w[i] * x[i];
	return (float)((s0 + s1) + (s2 + s3));
}

static float dot_f16(uint32_t n, const void *wv, const void *xv)
{
	const uint16_t *w = wv;
	const float *x = xv;
	double s = 0;

	for (uint32_t i = 0; i < n; i++)
		s += (double)ec_f16_to_f32(w[i]) * x[i];
	return (float)s;
}

static float dot_bf16(uint32_t n, const void *wv, const void *xv)
{
	const uint16_t *w = wv;
	const float *x = xv;
	double s = 0;

	for (uint32_t i = 0; i < n; i++)
		s += (double)ec_bf16_to_f32(w[i]) * x[i];
	return (float)s;
}

static float dot_q8_0(uint32_t n, const void *wv, const void *xv)
{
	const struct ec_block_q8_0 *w = wv;
	const int8_t *xq = xv;
	const float *xd = ec_cpu_q8_d(xv, n);
	float sum = 0.0f;

	for (uint32_t i = 0; i < n / EC_QK8_0; i++) {
		int32_t isum = 0;

		for (int j = 0; j < EC_QK8_0; j++)
			isum += w[i].qs[j] * xq[i * EC_QK8_0 + j];
		sum += (float)isum * (ec_f16_to_f32(w[i].d) * xd[i]);
	}
	return sum;
}

/*
 * Q4_K: w = d * sc * q - dmin * m per sub-block of 32, so
 * w.x = dx * (d * sum(sc * q.qx) - dmin * sum(m * sum(qx))).
 */
static float dot_q4_k(uint32_t n, const void *wv, const void *xv)
{
	const struct ec_block_q4_k *w = wv;
	const struct ec_cpu_q8k_block *x = xv;
	float sum = 0.0f;

	for (uint32_t i = 0; i < n / EC_QK_K; i++) {
		const uint8_t *q4 = w[i].qs;
		const int8_t *q8 = x[i].qs;
		int32_t sumi = 0, summ = 0;

		for (int j = 0; j < EC_QK_K / 64; j++) {
			uint8_t sc_lo, m_lo, sc_hi, m_hi;
			int32_t lo = 0, hi = 0;

			ec_q4_k_scale_min(2 * j, w[i].scales, &sc_lo, &m_lo);
			ec_q4_k_scale_min(2 * j + 1, w[i].scales, &sc_hi,
					  &m_hi);
			for (int l = 0; l < 32; l++) {
				lo += (q4[l] & 0xF) * q8[l];
				hi += (q4[l] >> 4) * q8[l + 32];
			}
			sumi += sc_lo * lo + sc_hi * hi;
			summ +=
			    m_lo * (x[i].bsums[4 * j] + x[i].bsums[4 * j + 1]);
			summ += m_hi *
				(x[i].bsums[4 * j + 2] + x[i].bsums[4 * j + 3]);
			q4 += 32;
			q8 += 64;
		}
		sum += x[i].d * (ec_f16_to_f32(w[i].d) * sumi -
				 ec_f16_to_f32(w[i].dmin) * summ);
	}
	return sum;
}

/* Q6_K: w = d * sc * (q - 32) per sub-block of 16 */
static float dot_q6_k(uint32_t n, const void *wv, const void *xv)
{
	const struct ec_block_q6_k *w = wv;
	const struct ec_cpu_q8k_block *x = xv;
	float sum = 0.0f;

	for (uint32_t i = 0; i < n / EC_QK_K; i++) {
		const uint8_t *ql = w[i].ql, *qh = w[i].qh;
		const int8_t *q8 = x[i].qs, *sc = w[i].scales;
		int8_t q[EC_QK_K];
		int32_t sumi = 0;

		for (int h = 0; h < 2; h++) {
			int8_t *qq = q + 128 * h;

			for (int l = 0; l < 32; l++) {
				qq[l] =
				    ((ql[l] & 0xF) | ((qh[l] & 3) << 4)) - 32;
				qq[l + 32] = ((ql[l + 32] & 0xF) |
					      (((qh[l] >> 2) & 3) << 4)) -
					     32;
				qq[l + 64] =
				    ((ql[l] >> 4) | (((qh[l] >> 4) & 3) << 4)) -
				    32;
				qq[l + 96] = ((ql[l + 32] >> 4) |
					      (((qh[l] >> 6) & 3) << 4)) -
					     32;
			}
			ql += 64;
			qh += 32;
		}
		for (int j = 0; j < EC_QK_K / 16; j++) {
			int32_t s = 0;

			for (int l = 0; l < 16; l++)
				s += q[16 * j + l] * q8[16 * j + l];
			sumi += sc[j] * s;
		}
		sum += x[i].d * ec_f16_to_f32(w[i].d) * sumi;
	}
	return sum;
}

static void dot_rows_f32(uint32_t n, const float *x, const float *rows,
			 size_t stride, uint32_t n_rows, float *out)
{
	for (uint32_t r = 0; r < n_rows; r++)
		out[r] = dot_f32(n, rows + r * stride, x);
}

static void axpy_rows_f32(uint32_t n, const float *a, const float *rows,
			  size_t stride, uint32_t n_rows, float *y)
{
	for (uint32_t r = 0; r < n_rows; r++)
		for (uint32_t i = 0; i < n; i++)
			y[i] += a[r] * rows[r * stride + i];
}

static float exp_sum_f32(uint32_t n, float *x, float m)
{
	float sum = 0.0f;

	for (uint32_t j = 0; j < n; j++) {
		x[j] = expf(x[j] - m);
		sum += x[j];
	}
	return sum;
}

const struct ec_cpu_kernels ec_cpu_kernels_generic = {
	.name = "generic",
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
