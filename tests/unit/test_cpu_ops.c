// SPDX-License-Identifier: MIT
/*
 * CPU backend per-token ops for every kernel set: rmsnorm, rope,
 * attention (and its exp/dot/axpy building blocks), and the elementwise
 * silu_mul, add_scaled and add_bias, each against a double reference.
 */
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "cpu_test_util.h"

static double max_abs_diff(const float *a, const double *b, size_t n)
{
	double m = 0;

	for (size_t i = 0; i < n; i++) {
		double d = fabs(a[i] - b[i]);

		m = (d > m || isnan(d)) ? (isnan(d) ? INFINITY : d) : m;
	}
	return m;
}

static void test_rmsnorm(int isa)
{
	static const enum ec_dtype wt[] = {EC_F32, EC_F16, EC_BF16};
	const uint32_t n = 5, dim = 2048 + 40;
	struct ec_backend *b = be[isa];
	float *x = b->ops->alloc(b, n * dim), *y = b->ops->alloc(b, n * dim);
	double *ref = malloc(n * dim * sizeof(double));
	float *wf = malloc(dim * sizeof(float));

	fill(x, n * dim, 3.0f);
	for (int t = 0; t < 3; t++) {
		struct ec_tensor w;

		make_weight(&w, wt[t], 1, dim);
		w.n_dims = 1;
		ec_dequantize(wt[t], w.data, wf, dim);
		for (uint32_t r = 0; r < n; r++) {
			double ss = 0;

			for (uint32_t i = 0; i < dim; i++)
				ss += (double)x[r * dim + i] * x[r * dim + i];
			ss = 1 / sqrt(ss / dim + 1e-6);
			for (uint32_t i = 0; i < dim; i++)
				ref[r * dim + i] = wf[i] * x[r * dim + i] * ss;
		}
		/* one row (inline) and all rows (over the pool) */
		b->ops->rmsnorm(b, y, x, &w, 1, dim, 1e-6f);
		b->ops->rmsnorm(b, y + dim, x + dim, &w, n - 1, dim, 1e-6f);
		/* |y| ~ |w| <= 1/sqrt(dim): relative 1e-5 of that scale */
		EC_CHECK(max_abs_diff(y, ref, n * dim) <= 1e-5 / sqrt(dim) * 3,
			 "%s rmsnorm %s: max error %g", isas[isa],
			 ec_dtype_info(wt[t])->name,
			 max_abs_diff(y, ref, n * dim));
		free((void *)w.data);
	}
	b->ops->free(b, x);
	b->ops->free(b, y);
	free(ref);
	free(wf);
}

/* transformers' inv_freq and angle, both rounded to f32 as torch does */
static float hf_angle(int32_t pos, uint32_t i, uint32_t d, float theta)
{
	float inv = 1.0f / powf(theta, (float)(2 * i) / (float)d);

	return (float)pos * inv;
}

static void test_rope(int isa)
{
	const uint32_t n = 6, nh = 5, hd = 128;
	struct ec_backend *b = be[isa];
	int32_t pos[6] = {0, 1, 2, 17, 999, 40000};
	float *x = b->ops->alloc(b, n * nh * hd);
	float *y = b->ops->alloc(b, n * nh * hd);
	float *z = b->ops->alloc(b, n * nh * hd);
	double *ref = malloc(n * nh * hd * sizeof(double));
	const float theta[2] = {10000.0f, 1000000.0f};

	for (int ti = 0; ti < 2; ti++) {
		fill(x, n * nh * hd, 2.0f);
		for (uint32_t t = 0; t < n; t++) {
			for (uint32_t h = 0; h < nh; h++) {
				size_t o = (t * nh + h) * hd;

				for (uint32_t i = 0; i < hd / 2; i++) {
					double a =
					    hf_angle(pos[t], i, hd, theta[ti]);
					double x0 = x[o + i];
					double x1 = x[o + i + hd / 2];

					ref[o + i] = x0 * cos(a) - x1 * sin(a);
					ref[o + i + hd / 2] =
					    x1 * cos(a) + x0 * sin(a);
				}
			}
		}
		memcpy(y, x, n * nh * hd * sizeof(float));
		b->ops->rope(b, y, pos, n, nh, hd, theta[ti], EC_ROPE_NEOX);
		EC_CHECK(max_abs_diff(y, ref, n * nh * hd) <= 2e-6,
			 "%s rope neox theta %g: max error %g", isas[isa],
			 theta[ti], max_abs_diff(y, ref, n * nh * hd));
		/*
		 * NORM pairs (2i, 2i+1): interleave each head's halves, rotate
		 * NORM-style, and the result is the NEOX result interleaved --
		 * the permutation GGUF converters apply to llama q/k weights.
		 */
		for (uint32_t r = 0; r < n * nh; r++)
			for (uint32_t i = 0; i < hd / 2; i++) {
				z[r * hd + 2 * i] = x[r * hd + i];
				z[r * hd + 2 * i + 1] = x[r * hd + i + hd / 2];
			}
		b->ops->rope(b, z, pos, n, nh, hd, theta[ti], EC_ROPE_NORM);
		int same = 1;

		for (uint32_t r = 0; r < n * nh; r++)
			for (uint32_t i = 0; i < hd / 2; i++)
				same &= z[r * hd + 2 * i] == y[r * hd + i] &&
					z[r * hd + 2 * i + 1] ==
					    y[r * hd + i + hd / 2];
		EC_CHECK(same, "%s rope norm = interleaved neox", isas[isa]);
	}
	/* position 0 is the identity */
	fill(x, nh * hd, 1.0f);
	memcpy(y, x, nh * hd * sizeof(float));
	b->ops->rope(b, y, pos, 1, nh, hd, 10000.0f, EC_ROPE_NEOX);
	EC_CHECK(!memcmp(x, y, nh * hd * sizeof(float)), "rope at pos 0");
	b->ops->free(b, x);
	b->ops->free(b, y);
	b->ops->free(b, z);
	free(ref);
}

static void test_attention_case(int isa, uint32_t pos0, uint32_t n, uint32_t nh,
				uint32_t nkv, uint32_t hd)
{
	struct ec_backend *b = be[isa];
	uint32_t ctx = pos0 + n, group = nh / nkv;
	float *q = b->ops->alloc(b, n * nh * hd);
	float *k = b->ops->alloc(b, ctx * nkv * hd);
	float *v = b->ops->alloc(b, ctx * nkv * hd);
	float *out = b->ops->alloc(b, n * nh * hd);
	double *ref = calloc(n * nh * hd, sizeof(double));
	double *s = malloc(ctx * sizeof(double));

	/* large scores, so the softmax needs its max subtraction */
	fill(q, n * nh * hd, 4.0f);
	fill(k, ctx * nkv * hd, 4.0f);
	fill(v, ctx * nkv * hd, 1.0f);
	for (uint32_t t = 0; t < n; t++) {
		for (uint32_t h = 0; h < nh; h++) {
			const float *qr = q + (t * nh + h) * hd;
			double m = -INFINITY, sum = 0;

			for (uint32_t j = 0; j <= pos0 + t; j++) {
				const float *kr =
				    k + (j * nkv + h / group) * hd;
				double d = 0;

				for (uint32_t i = 0; i < hd; i++)
					d += (double)qr[i] * kr[i];
				s[j] = d / sqrt(hd);
				m = fmax(m, s[j]);
			}
			for (uint32_t j = 0; j <= pos0 + t; j++)
				sum += s[j] = exp(s[j] - m);
			for (uint32_t j = 0; j <= pos0 + t; j++) {
				const float *vr =
				    v + (j * nkv + h / group) * hd;

				for (uint32_t i = 0; i < hd; i++)
					ref[(t * nh + h) * hd + i] +=
					    s[j] / sum * vr[i];
			}
		}
	}
	b->ops->attention(b, out, q, k, v, pos0, n, nh, nkv, hd);
	/* outputs are convex combinations of values in [-1, 1] */
	EC_CHECK(max_abs_diff(out, ref, n * nh * hd) <= 1e-5,
		 "%s attention pos0=%u n=%u heads %u/%u dim %u: max error %g",
		 isas[isa], pos0, n, nh, nkv, hd,
		 max_abs_diff(out, ref, n * nh * hd));
	b->ops->free(b, q);
	b->ops->free(b, k);
	b->ops->free(b, v);
	b->ops->free(b, out);
	free(ref);
	free(s);
}

static void test_attention(int isa)
{
	test_attention_case(isa, 0, 1, 4, 4, 64);      /* one key */
	test_attention_case(isa, 40, 1, 8, 2, 128);    /* decode, GQA 4 */
	test_attention_case(isa, 0, 7, 8, 2, 64);      /* prefill */
	test_attention_case(isa, 300, 7, 6, 3, 128);   /* > 1 key chunk */
	test_attention_case(isa, 1000, 3, 32, 4, 128); /* Qwen3-30B heads */
	test_attention_case(isa, 130, 1, 64, 1, 64);   /* MQA: split group */
	test_attention_case(isa, 20, 2, 16, 1, 256);   /* wide heads */
	test_attention_case(isa, 5, 1, 12, 2, 80);     /* group 6, dim 80 */
}

/* The attention building blocks of each kernel set, against double */
static void test_attention_kernels(int isa)
{
	const struct ec_cpu_kernels *k;
	float x[1000], rows[13 * 150], out[13], y[150];
	double worst = 0, ref[150];

	EC_CHECK(ec_cpu_kernels_select(isas[isa], &k) == 0, "select %s",
		 isas[isa]);
	/* exp over [-104, 0] (into the flush-to-zero range) and odd sizes */
	for (uint32_t n = 1; n <= 1000; n += 333) {
		double sum = 0;
		float got;

		for (uint32_t j = 0; j < n; j++)
			x[j] = 3.0f - 104.0f * j / n;
		got = k->exp_sum_f32(n, x, 3.0f);
		for (uint32_t j = 0; j < n; j++) {
			double e = exp((double)(3.0f - 104.0f * j / n) - 3.0);
			/* 2 ulp; values below 2^-126 may flush to zero */
			double err = fabs(x[j] - e) / (e * 2.4e-7 + 1.2e-38);

			worst = fmax(worst, err);
			sum += e;
		}
		EC_CHECK(fabs(got - sum) <= 1e-6 * sum, "%s exp sum n=%u",
			 isas[isa], n);
	}
	EC_CHECK(worst <= 1.0, "%s exp within 2 ulp (%.3g of bound)",
		 isas[isa], worst);

	/* 13 rows of 150 with stride 150, then 11 rows of 80 within them */
	fill(rows, 13 * 150, 1.0f);
	fill(x, 150, 1.0f);
	for (uint32_t t = 0; t < 2; t++) {
		uint32_t n = t ? 80 : 150, nr = t ? 11 : 13;
		double w = 0;

		k->dot_rows_f32(n, x, rows, 150, nr, out);
		for (uint32_t r = 0; r < nr; r++) {
			double d = 0, m = 0;

			for (uint32_t i = 0; i < n; i++) {
				d += (double)x[i] * rows[r * 150 + i];
				m += fabs((double)x[i] * rows[r * 150 + i]);
			}
			w = fmax(w, fabs(out[r] - d) / (1e-6 * m));
		}
		EC_CHECK(w <= 1.0, "%s dot_rows n=%u rows=%u: %.3g of bound",
			 isas[isa], n, nr, w);

		fill(y, n, 1.0f);
		for (uint32_t i = 0; i < n; i++) {
			ref[i] = y[i];
			for (uint32_t r = 0; r < nr; r++)
				ref[i] += (double)x[r] * rows[r * 150 + i];
		}
		k->axpy_rows_f32(n, x, rows, 150, nr, y);
		EC_CHECK(max_abs_diff(y, ref, n) <= 1e-5, "%s axpy_rows n=%u "
			 "rows=%u: max error %g", isas[isa], n, nr,
			 max_abs_diff(y, ref, n));
	}
}

static void test_elementwise(int isa)
{
	const uint32_t n = 7, dim = 10000; /* 70000: over the pool */
	struct ec_backend *b = be[isa];
	float *g = b->ops->alloc(b, n * dim), *u = b->ops->alloc(b, n * dim);
	float *y = b->ops->alloc(b, n * dim);
	double *ref = malloc(n * dim * sizeof(double));
	float scale[7] = {0.5f, -1.0f, 2.0f, 0.0f, 0.25f, 1.0f, -3.0f};
	struct ec_tensor bias;
	float *bf = malloc(dim * sizeof(float));

	fill(g, n * dim, 12.0f);
	fill(u, n * dim, 2.0f);
	for (uint32_t i = 0; i < n * dim; i++)
		ref[i] = g[i] / (1 + exp(-(double)g[i])) * u[i];
	b->ops->silu_mul(b, g, u, n, dim);
	EC_CHECK(max_abs_diff(g, ref, n * dim) <= 1e-5 * 24,
		 "%s silu_mul: max error %g", isas[isa],
		 max_abs_diff(g, ref, n * dim));

	for (int with_scale = 0; with_scale < 2; with_scale++) {
		fill(y, n * dim, 1.0f);
		for (uint32_t i = 0; i < n * dim; i++)
			ref[i] =
			    y[i] + (with_scale ? scale[i / dim] : 1.0) * u[i];
		b->ops->add_scaled(b, y, u, with_scale ? scale : NULL, n, dim);
		EC_CHECK(max_abs_diff(y, ref, n * dim) <= 1e-6 * 8,
			 "%s add_scaled (scale %d): max error %g", isas[isa],
			 with_scale, max_abs_diff(y, ref, n * dim));
	}

	make_weight(&bias, EC_BF16, 1, dim);
	bias.n_dims = 1;
	ec_dequantize(EC_BF16, bias.data, bf, dim);
	fill(y, n * dim, 1.0f);
	for (uint32_t i = 0; i < n * dim; i++)
		ref[i] = (double)y[i] + bf[i % dim];
	b->ops->add_bias(b, y, &bias, n, dim);
	EC_CHECK(max_abs_diff(y, ref, n * dim) <= 1e-6 * 2,
		 "%s add_bias: max error %g", isas[isa],
		 max_abs_diff(y, ref, n * dim));
	free((void *)bias.data);
	free(bf);
	b->ops->free(b, g);
	b->ops->free(b, u);
	b->ops->free(b, y);
	free(ref);
}

int main(void)
{
	if (!cpu_test_open()) {
		for (int isa = 0; isa < N_ISA; isa++) {
			if (!be[isa])
				continue;
			test_rmsnorm(isa);
			test_rope(isa);
			test_attention_kernels(isa);
			test_attention(isa);
			test_elementwise(isa);
		}
	}
	cpu_test_close();
	return ec_test_done();
}
