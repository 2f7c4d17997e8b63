// SPDX-License-Identifier: MIT
/* Activation formats of the dot kernels; rows quantised to int8 for them. */
#include <math.h>
#include <string.h>

#include "cpu/cpu.h"
#include "ec_error.h"

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

int ec_cpu_dot_of(const struct ec_cpu_kernels *k, uint32_t type,
		  ec_cpu_dot_fn *dot)
{
	switch (type) {
	case EC_F32:
		*dot = k->dot_f32;
		return EC_CPU_ACT_F32;
	case EC_F16:
		*dot = k->dot_f16;
		return EC_CPU_ACT_F32;
	case EC_BF16:
		*dot = k->dot_bf16;
		return EC_CPU_ACT_F32;
	case EC_Q8_0:
		*dot = k->dot_q8_0;
		return EC_CPU_ACT_Q8;
	case EC_Q4_K:
		*dot = k->dot_q4_k;
		return EC_CPU_ACT_Q8K;
	case EC_Q6_K:
		*dot = k->dot_q6_k;
		return EC_CPU_ACT_Q8K;
	}
	return -EC_EUNSUPPORTED;
}

size_t ec_cpu_act_row_bytes(int act, uint32_t n)
{
	switch (act) {
	case EC_CPU_ACT_Q8:
		return ec_cpu_q8_row_bytes(n);
	case EC_CPU_ACT_Q8K:
		return (size_t)n / EC_QK_K * sizeof(struct ec_cpu_q8k_block);
	}
	return (size_t)n * sizeof(float);
}

void ec_cpu_quantize_act(int act, uint32_t n, const float *x, void *dst)
{
	if (act == EC_CPU_ACT_Q8)
		ec_cpu_quantize_q8(n, x, dst);
	else if (act == EC_CPU_ACT_Q8K)
		ec_cpu_quantize_q8k(n, x, dst);
	else if (dst != x)
		memcpy(dst, x, (size_t)n * sizeof(float));
}
