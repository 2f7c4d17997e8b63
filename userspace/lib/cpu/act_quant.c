// SPDX-License-Identifier: MIT
/* Quantising activation rows to int8 for the integer matmul kernels. */
#include <math.h>
#include <string.h>

#include "cpu/cpu.h"

/* Nearest int, ties to even (like _mm256_cvtps_epi32), clamped to int8. */
static inline int8_t to_q8(float v)
{
	long q = lrintf(v);

	return q > 127 ? 127 : q < -127 ? -127 : (int8_t)q;
}

/* Largest |x| of n values; NaN propagates (and then quantises to zero). */
static float amax_of(const float *x, uint32_t n)
{
	float amax = 0.0f;

	for (uint32_t j = 0; j < n; j++) {
		float a = fabsf(x[j]);

		amax = a > amax ? a : amax;
	}
	return amax;
}

/* Symmetric: d = amax / 127, q = round(x / d), |q| <= 127 (as ggml) */
void ec_cpu_quantize_q8(uint32_t n, const float *x, void *row)
{
	int8_t *qs = row;
	float *dd = (float *)(qs + n);
	int32_t *bias = (int32_t *)(dd + n / EC_QK8_0);

	for (uint32_t i = 0; i < n / EC_QK8_0; i++, x += EC_QK8_0) {
		float d = amax_of(x, EC_QK8_0) / 127.0f;
		float id = d ? 1.0f / d : 0.0f;
		int32_t sum = 0;

		for (int j = 0; j < EC_QK8_0; j++) {
			int8_t q = to_q8(x[j] * id);

			qs[i * EC_QK8_0 + j] = q;
			sum += q;
		}
		dd[i] = d;
		bias[i] = -16 * sum;
	}
}

void ec_cpu_quantize_q8k(uint32_t n, const float *x, struct ec_cpu_q8k_block *y)
{
	for (uint32_t i = 0; i < n / EC_QK_K; i++, x += EC_QK_K) {
		float d = amax_of(x, EC_QK_K) / 127.0f;
		float id = d ? 1.0f / d : 0.0f;

		for (int j = 0; j < EC_QK_K; j++)
			y[i].qs[j] = to_q8(x[j] * id);
		for (int j = 0; j < EC_QK_K / 16; j++) {
			int sum = 0;

			for (int l = 0; l < 16; l++)
				sum += y[i].qs[j * 16 + l];
			y[i].bsums[j] = (int16_t)sum;
		}
		y[i].d = d;
	}
}
