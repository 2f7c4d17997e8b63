/* SPDX-License-Identifier: MIT */
/*
 * What the CPU backend tests share: the kernel sets and their backends
 * (be[]), a fixed-seed generator, random activations and weights of every
 * type, and activations requantised as the integer kernels see them.
 */
#ifndef EC_CPU_TEST_UTIL_H
#define EC_CPU_TEST_UTIL_H

#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cpu/cpu.h"
#include "ec_error.h"
#include "ec_infer.h"
#include "ec_model.h"
#include "ec_test.h"

static const char *const isas[] = {"generic", "avx2", "avx512"};
#define N_ISA 3
static struct ec_backend *be[N_ISA]; /* NULL where the CPU lacks it */
#define N_THREADS 3		     /* so row counts rarely divide evenly */

static uint64_t rng = 0x9e3779b97f4a7c15ull;

static inline uint32_t rnd32(void)
{
	rng ^= rng << 13;
	rng ^= rng >> 7;
	rng ^= rng << 17;
	return (uint32_t)(rng >> 16);
}

/* uniform in [-1, 1) */
static inline float rndf(void)
{
	return (float)((int32_t)rnd32()) * (1.0f / 2147483648.0f);
}

static inline void fill(float *x, size_t n, float scale)
{
	for (size_t i = 0; i < n; i++)
		x[i] = rndf() * scale;
}

/* Random weights of `type`: plain types from U(-s, s), blocks of random
 * bytes (every byte pattern is a valid block) with sane f16 scales. */
static inline void make_weight(struct ec_tensor *t, enum ec_dtype type,
			       uint32_t rows, uint32_t cols)
{
	const struct ec_dtype_info *info = ec_dtype_info(type);
	uint64_t row_bytes = ec_dtype_bytes(type, cols);
	uint8_t *p = malloc(rows * row_bytes);
	float s = 1.0f / sqrtf((float)cols);

	memset(t, 0, sizeof(*t));
	t->type = type;
	t->n_dims = 2;
	t->ne[0] = cols;
	t->ne[1] = rows;
	t->ne[2] = t->ne[3] = 1;
	t->data = p;
	t->nbytes = rows * row_bytes;
	for (uint64_t i = 0; i < t->nbytes; i++)
		p[i] = (uint8_t)rnd32();
	for (uint64_t e = 0; e < (uint64_t)rows * cols / info->block_elems;
	     e++) {
		uint8_t *b = p + e * info->block_bytes;
		float f = rndf() * s;
		uint16_t h;
		uint32_t u;

		switch (type) {
		case EC_F32:
			memcpy(b, &f, 4);
			break;
		case EC_F16:
			h = ec_f32_to_f16(f);
			memcpy(b, &h, 2);
			break;
		case EC_BF16:
			memcpy(&u, &f, 4);
			h = u >> 16;
			memcpy(b, &h, 2);
			break;
		case EC_Q8_0: /* d */
			h = ec_f32_to_f16(s * (1.5f + rndf()) / 127);
			memcpy(b, &h, 2);
			break;
		case EC_Q4_K: /* d, dmin: values ~ d * 63 * 15 - dmin * 63 */
			h = ec_f32_to_f16(s * (1.5f + rndf()) / 500);
			memcpy(b, &h, 2);
			h = ec_f32_to_f16(s * (1.5f + rndf()) / 60);
			memcpy(b + 2, &h, 2);
			break;
		case EC_Q6_K: /* d at the end: values ~ d * 128 * 32 */
			h = ec_f32_to_f16(s * (1.5f + rndf()) / 4096);
			memcpy(b + 208, &h, 2);
			break;
		}
	}
}

static int q8_bias_bad; /* rows whose block biases were wrong */

/* f32 values of an activation row as the integer kernels see it */
static inline void requantized(enum ec_dtype type, const float *x,
			       uint32_t cols, float *out)
{
	if (type == EC_Q8_0) {
		int8_t *q = malloc(ec_cpu_q8_row_bytes(cols));
		const float *d = ec_cpu_q8_d(q, cols);
		const int32_t *bias = ec_cpu_q8_bias(q, cols);
		int bias_ok = 1;

		ec_cpu_quantize_q8(cols, x, q);
		for (uint32_t i = 0; i < cols; i++)
			out[i] = d[i / 32] * q[i];
		for (uint32_t b = 0; b < cols / 32; b++) {
			int32_t sum = 0;

			for (int j = 0; j < 32; j++)
				sum += q[32 * b + j];
			bias_ok &= bias[b] == -16 * sum;
		}
		q8_bias_bad += !bias_ok;
		free(q);
	} else if (type == EC_Q4_K || type == EC_Q6_K) {
		struct ec_cpu_q8k_block *q = malloc(cols / 256 * sizeof(*q));

		ec_cpu_quantize_q8k(cols, x, q);
		for (uint32_t i = 0; i < cols; i++)
			out[i] = q[i / 256].d * q[i / 256].qs[i % 256];
		free(q);
	} else {
		memcpy(out, x, cols * sizeof(float));
	}
}

/*
 * be[i] for every kernel set this CPU runs (N_THREADS threads each).
 * Creating them is checked, and counted as passed, once: by
 * test_cpu_pool.  Here a failure still counts as one, and that kernel
 * set's tests do not run.  Returns 0 when the generic set exists.
 */
static inline int cpu_test_open(void)
{
	for (int i = 0; i < N_ISA; i++) {
		if (!ec_cpu_isa_supported(isas[i])) {
			fprintf(stderr,
				"%s kernels not tested: this CPU "
				"lacks the instructions\n",
				isas[i]);
			continue;
		}
		if (ec_backend_cpu_create_isa(N_THREADS, isas[i], &be[i])) {
			be[i] = NULL;
			ec_test_failed++;
			fprintf(stderr, "FAIL %s:%d: create %s: %s\n", __FILE__,
				__LINE__, isas[i], ec_error_msg());
		}
	}
	return be[0] ? 0 : -1;
}

static inline void cpu_test_close(void)
{
	for (int i = 0; i < N_ISA; i++) {
		if (be[i])
			be[i]->ops->destroy(be[i]);
		be[i] = NULL;
	}
}

#endif
