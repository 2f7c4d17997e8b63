// SPDX-License-Identifier: MIT
/*
 * CPU backend: every op against a double-precision reference built on
 * ec_dequantize, for every weight type and every kernel set this CPU runs
 * (moe_ffn also against the per-expert path it replaces); plus the thread
 * pool, ISA selection, and an informational GEMV throughput.
 */
#include <math.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

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

static uint32_t rnd32(void)
{
	rng ^= rng << 13;
	rng ^= rng >> 7;
	rng ^= rng << 17;
	return (uint32_t)(rng >> 16);
}

/* uniform in [-1, 1) */
static float rndf(void)
{
	return (float)((int32_t)rnd32()) * (1.0f / 2147483648.0f);
}

static void fill(float *x, size_t n, float scale)
{
	for (size_t i = 0; i < n; i++)
		x[i] = rndf() * scale;
}

/* Random weights of `type`: plain types from U(-s, s), blocks of random
 * bytes (every byte pattern is a valid block) with sane f16 scales. */
static void make_weight(struct ec_tensor *t, enum ec_dtype type, uint32_t rows,
			uint32_t cols)
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
static void requantized(enum ec_dtype type, const float *x, uint32_t cols,
			float *out)
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

struct mm_ref {
	double *exact; /* (n, rows) W . x in double */
	double *qref;  /* (n, rows) W . requantised x in double */
	double *mag;   /* (n, rows) sum |w||x| (+ |min terms| for Q4_K) */
	double *qerr;  /* (n, rows) bound on |exact - qref| */
};

/*
 * Bound on the error of quantising the activations: a block of B values
 * with largest magnitude a is stored as d * q with d = a / 127 and q
 * rounded to nearest, so each |x - d q| <= d / 2 = a / 254 (up to f32
 * rounding of d and 1/d, < 1e-6 relative).  Hence |W.x - W.xq| <=
 * sum_j |w_j| * a(block of j) / 254.
 */
static void reference(const struct ec_tensor *w, const float *x, uint32_t n,
		      struct mm_ref *r)
{
	uint32_t cols = w->ne[0], rows = w->ne[1];
	uint32_t qb = w->type == EC_Q8_0			   ? 32
		      : (w->type == EC_Q4_K || w->type == EC_Q6_K) ? 256
								   : 0;
	uint64_t row_bytes = ec_tensor_row_bytes(w);
	float *wf = malloc(cols * sizeof(float));
	float *mins = calloc(cols, sizeof(float));
	float *xq = malloc(cols * sizeof(float));
	float *amax = malloc(cols * sizeof(float));
	uint8_t *tmp = malloc(row_bytes);

	r->exact = malloc((size_t)n * rows * sizeof(double));
	r->qref = malloc((size_t)n * rows * sizeof(double));
	r->mag = malloc((size_t)n * rows * sizeof(double));
	r->qerr = malloc((size_t)n * rows * sizeof(double));
	for (uint32_t row = 0; row < rows; row++) {
		const uint8_t *wr = (const uint8_t *)w->data + row * row_bytes;

		ec_dequantize(w->type, wr, wf, cols);
		if (w->type == EC_Q4_K) {
			/* -dmin * m per element: the block with qs zeroed */
			memcpy(tmp, wr, row_bytes);
			for (uint32_t b = 0; b < cols / 256; b++)
				memset(tmp + b * 144 + 16, 0, 128);
			ec_dequantize(EC_Q4_K, tmp, mins, cols);
		}
		for (uint32_t tok = 0; tok < n; tok++) {
			const float *xr = x + (size_t)tok * cols;
			double e = 0, q = 0, m = 0, b = 0;

			requantized(w->type, xr, cols, xq);
			for (uint32_t i = 0; qb && i < cols; i += qb) {
				float a = 0;

				for (uint32_t j = 0; j < qb; j++)
					a = fmaxf(a, fabsf(xr[i + j]));
				for (uint32_t j = 0; j < qb; j++)
					amax[i + j] = a;
			}
			for (uint32_t i = 0; i < cols; i++) {
				e += (double)wf[i] * xr[i];
				q += (double)wf[i] * xq[i];
				m += (fabs(wf[i]) + 2 * fabs(mins[i])) *
				     fabs(xr[i]);
				if (qb)
					b += fabs(wf[i]) * amax[i] / 254.0;
			}
			r->exact[(size_t)tok * rows + row] = e;
			r->qref[(size_t)tok * rows + row] = q;
			r->mag[(size_t)tok * rows + row] = m;
			r->qerr[(size_t)tok * rows + row] = b;
		}
	}
	free(wf);
	free(mins);
	free(xq);
	free(amax);
	free(tmp);
}

static void free_ref(struct mm_ref *r)
{
	free(r->exact);
	free(r->qref);
	free(r->mag);
	free(r->qerr);
}

/*
 * Tolerances, relative to m = sum |w_j x_j|:
 *  - plain types (F32/F16/BF16 weights, f32 activations): f32 FMA sums in
 *    a few interleaved accumulators, error ~ sqrt(cols) * 2^-24 * m;
 *    allowed 1e-5 * m.
 *  - quantised types against the same requantised activations (what the
 *    kernels compute exactly in integers, then scale in f32): 1e-5 * m.
 *  - quantised types against the exact activations: the bound above,
 *    times 1.01, plus 1e-5 * m.
 */
static void check_matmul(int isa, const struct ec_tensor *w, const float *x,
			 uint32_t n, int acc, const struct mm_ref *r)
{
	uint32_t rows = w->ne[1];
	const char *tn = ec_dtype_info(w->type)->name;
	int quant =
	    w->type == EC_Q8_0 || w->type == EC_Q4_K || w->type == EC_Q6_K;
	float *y = be[isa]->ops->alloc(be[isa], (size_t)n * rows);
	double worst_q = 0, worst_e = 0;
	int ret;

	for (size_t i = 0; i < (size_t)n * rows; i++)
		y[i] = acc ? (float)(i % 5) - 2.0f : NAN;
	ret = be[isa]->ops->matmul(be[isa], y, w, x, n, acc);
	EC_CHECK(ret == 0, "%s matmul %s: %s", isas[isa], tn, ec_error_msg());
	for (size_t i = 0; i < (size_t)n * rows; i++) {
		double got = y[i] - (acc ? (double)(i % 5) - 2.0 : 0.0);
		double tol = 1e-5 * r->mag[i] + 1e-30;
		double eq =
		    fabs(got - (quant ? r->qref[i] : r->exact[i])) / tol;
		double ee = fabs(got - r->exact[i]) / (1.01 * r->qerr[i] + tol);

		if (!(eq <= worst_q))
			worst_q = isnan(eq) ? INFINITY : eq;
		if (!(ee <= worst_e))
			worst_e = isnan(ee) ? INFINITY : ee;
	}
	EC_CHECK(worst_q <= 1.0,
		 "%s matmul %s [%u x %llu] n=%u acc=%d: "
		 "error %.3g of tolerance",
		 isas[isa], tn, rows, (unsigned long long)w->ne[0], n, acc,
		 worst_q);
	if (quant)
		EC_CHECK(worst_e <= 1.0,
			 "%s matmul %s [%u x %llu] n=%u: "
			 "error vs exact activations %.3g of the "
			 "quantisation bound",
			 isas[isa], tn, rows, (unsigned long long)w->ne[0], n,
			 worst_e);
	be[isa]->ops->free(be[isa], y);
}

static void test_matmul(void)
{
	static const enum ec_dtype types[] = {EC_F32,  EC_F16,	EC_BF16,
					      EC_Q8_0, EC_Q4_K, EC_Q6_K};
	static const uint32_t shapes[][2] = {
	    /* rows, cols */
	    {37, 256},
	    {768, 2048},
	    {2048, 768},
	    {5, 512},
	};
	static const uint32_t ns[] = {1, 7};

	for (size_t ti = 0; ti < 6; ti++) {
		for (size_t si = 0; si < 4; si++) {
			struct ec_tensor w;
			uint32_t rows = shapes[si][0], cols = shapes[si][1];
			float *x = malloc((size_t)7 * cols * sizeof(float));

			make_weight(&w, types[ti], rows, cols);
			/* varied magnitudes so blocks get different scales */
			for (uint32_t i = 0; i < 7 * cols; i++)
				x[i] = rndf() * (1 + (i / 32) % 7) *
				       (i % 97 == 0 ? 20 : 1);
			for (size_t k = 0; k < 2; k++) {
				struct mm_ref r;

				reference(&w, x, ns[k], &r);
				for (int isa = 0; isa < N_ISA; isa++)
					if (be[isa])
						check_matmul(
						    isa, &w, x, ns[k],
						    (int)((si + k) & 1), &r);
				free_ref(&r);
			}
			free((void *)w.data);
			free(x);
		}
	}
	EC_CHECK(!q8_bias_bad, "q8 activation biases (-16 * block sum)");
}

static void test_matmul_errors(void)
{
	struct ec_tensor w;
	float x[64], y[4];

	make_weight(&w, EC_Q8_0, 2, 64);
	w.ne[0] = 48; /* not whole blocks */
	EC_CHECK(be[0]->ops->matmul(be[0], y, &w, x, 1, 0) == -EC_ESHAPE,
		 "matmul rejects a partial-block row");
	w.ne[0] = 64;
	w.type = 2; /* Q4_0 */
	EC_CHECK(be[0]->ops->matmul(be[0], y, &w, x, 1, 0) ==
			 -EC_EUNSUPPORTED &&
		     strstr(ec_error_msg(), "type"),
		 "matmul rejects an unsupported type");
	free((void *)w.data);
}

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

/*
 * moe_ffn: the routed-expert mixture in one call, against the per-expert
 * path forward.c runs without it (gather, gate, up, silu_mul, down,
 * scatter_add through the same backend: the same arithmetic and order of
 * sums, so the same bits, whatever order the source hands experts out in)
 * and against a double reference (weights dequantised, activations
 * requantised as the kernels see them).
 */
#define MOE_N_EXPERT 10
#define MOE_LAYER 3

/* An expert source over an array, checking the get/put protocol */
struct moe_src {
	const struct ec_expert *ex;
	int gets, puts, held, bad;
	int fail_at;	  /* get of this expert fails (-1: none) */
	int with_resident; /* experts e % 3 == 1 are "not resident" */
	int max_held;	  /* most experts held at once */
};

static int moe_not_resident(const struct moe_src *s, uint32_t e)
{
	return s->with_resident && e % 3 == 1;
}

static int moe_src_get(void *priv, uint32_t layer, uint32_t e,
		       const struct ec_expert **out)
{
	struct moe_src *s = priv;

	if (layer != MOE_LAYER || e >= MOE_N_EXPERT)
		s->bad++;
	/* a cache with one free slot would wait forever here */
	if (moe_not_resident(s, e) && s->held)
		s->bad++;
	if ((int)e == s->fail_at)
		return ec_err(-EIO, "test source: expert %u unreadable", e);
	s->gets++;
	s->held++;
	s->max_held = s->held > s->max_held ? s->held : s->max_held;
	*out = &s->ex[e];
	return 0;
}

static void moe_src_put(void *priv, uint32_t layer, uint32_t e)
{
	struct moe_src *s = priv;

	s->puts++;
	s->held--;
}

static int moe_src_resident(void *priv, uint32_t layer, uint32_t e)
{
	return !moe_not_resident(priv, e);
}

static struct ec_expert_source moe_source(struct moe_src *s)
{
	struct ec_expert_source src = {.get = moe_src_get,
				       .put = moe_src_put,
				       .priv = s};

	if (s->with_resident)
		src.resident = moe_src_resident;
	return src;
}

/* forward.c's path without moe_ffn: one expert at a time */
static void moe_generic(struct ec_backend *b, float *y, const float *x,
			uint32_t n, uint32_t k, const int32_t *ids,
			const float *w, const struct ec_expert *ex,
			uint32_t d_embd, uint32_t d_ff)
{
	float *xg = b->ops->alloc(b, (size_t)n * d_embd);
	float *g = b->ops->alloc(b, (size_t)n * d_ff);
	float *u = b->ops->alloc(b, (size_t)n * d_ff);
	float *d = b->ops->alloc(b, (size_t)n * d_embd);
	int32_t idx[64];
	float sc[64];

	memset(y, 0, (size_t)n * d_embd * sizeof(float));
	for (uint32_t e = 0; e < MOE_N_EXPERT; e++) {
		uint32_t m = 0;

		for (uint32_t p = 0; p < n * k; p++) {
			if (ids[p] != (int32_t)e)
				continue;
			idx[m] = (int32_t)(p / k);
			sc[m++] = w[p];
		}
		if (!m)
			continue;
		b->ops->gather(b, xg, x, idx, m, d_embd);
		b->ops->matmul(b, g, &ex[e].w[EC_EXPERT_GATE], xg, m, 0);
		b->ops->matmul(b, u, &ex[e].w[EC_EXPERT_UP], xg, m, 0);
		b->ops->silu_mul(b, g, u, m, d_ff);
		b->ops->matmul(b, d, &ex[e].w[EC_EXPERT_DOWN], g, m, 0);
		b->ops->scatter_add(b, y, d, idx, sc, m, d_embd);
	}
	b->ops->free(b, xg);
	b->ops->free(b, g);
	b->ops->free(b, u);
	b->ops->free(b, d);
}

/* Dequantised experts for the double reference */
struct moe_deq {
	float *w[MOE_N_EXPERT][EC_EXPERT_NPARTS];
};

static void moe_deq_make(struct moe_deq *q, const struct ec_expert *ex)
{
	for (int e = 0; e < MOE_N_EXPERT; e++) {
		for (int p = 0; p < EC_EXPERT_NPARTS; p++) {
			const struct ec_tensor *t = &ex[e].w[p];
			size_t cnt = t->ne[0] * t->ne[1];

			q->w[e][p] = malloc(cnt * sizeof(float));
			ec_dequantize(t->type, t->data, q->w[e][p], cnt);
		}
	}
}

static void moe_deq_free(struct moe_deq *q)
{
	for (int e = 0; e < MOE_N_EXPERT; e++)
		for (int p = 0; p < EC_EXPERT_NPARTS; p++)
			free(q->w[e][p]);
}

/*
 * ref (n, d_embd) in double and its tolerance tol: h is rounded to f32 and
 * requantised for down, where the kernels' f32 h (off by ~1e-6) can round
 * one value a quantum apart, so per pair 1e-5 of sum |w| |down| |h| plus
 * two quanta (amax(h) / 127) of the row's largest |down| weight.
 */
static void moe_reference(const struct moe_deq *q, const struct ec_expert *ex,
			  const float *x, uint32_t n, uint32_t k,
			  const int32_t *ids, const float *w, uint32_t d_embd,
			  uint32_t d_ff, double *ref, double *tol)
{
	float *xg = malloc(d_embd * sizeof(float));
	float *xu = malloc(d_embd * sizeof(float));
	float *h = malloc(d_ff * sizeof(float));
	float *hq = malloc(d_ff * sizeof(float));

	for (size_t i = 0; i < (size_t)n * d_embd; i++)
		ref[i] = tol[i] = 0;
	for (uint32_t p = 0; p < n * k; p++) {
		uint32_t t = p / k, e = (uint32_t)ids[p];
		const float *gw = q->w[e][EC_EXPERT_GATE];
		const float *uw = q->w[e][EC_EXPERT_UP];
		const float *dw = q->w[e][EC_EXPERT_DOWN];
		double amax = 0;

		requantized(ex[e].w[EC_EXPERT_GATE].type, x + t * d_embd,
			    d_embd, xg);
		requantized(ex[e].w[EC_EXPERT_UP].type, x + t * d_embd, d_embd,
			    xu);
		for (uint32_t r = 0; r < d_ff; r++) {
			double g = 0, u = 0;

			for (uint32_t c = 0; c < d_embd; c++) {
				g += (double)gw[r * d_embd + c] * xg[c];
				u += (double)uw[r * d_embd + c] * xu[c];
			}
			h[r] = (float)(g / (1 + exp(-g)) * u);
		}
		requantized(ex[e].w[EC_EXPERT_DOWN].type, h, d_ff, hq);
		for (uint32_t c = 0; c < d_ff; c++)
			amax = fmax(amax, fabs(h[c]));
		if (ex[e].w[EC_EXPERT_DOWN].type == EC_F32 ||
		    ex[e].w[EC_EXPERT_DOWN].type == EC_F16 ||
		    ex[e].w[EC_EXPERT_DOWN].type == EC_BF16)
			amax = 0; /* h is not requantised */
		for (uint32_t r = 0; r < d_embd; r++) {
			double d = 0, m = 0, wmax = 0;

			for (uint32_t c = 0; c < d_ff; c++) {
				d += (double)dw[r * d_ff + c] * hq[c];
				m += fabs(dw[r * d_ff + c]) * fabs(h[c]);
				wmax = fmax(wmax, fabs(dw[r * d_ff + c]));
			}
			ref[t * d_embd + r] += w[p] * d;
			tol[t * d_embd + r] +=
			    fabs(w[p]) * (1e-5 * m + 2 * amax / 127 * wmax);
		}
	}
	free(xg);
	free(xu);
	free(h);
	free(hq);
}

/* k distinct experts per token, positive weights */
static void moe_route(uint32_t n, uint32_t k, int32_t *ids, float *w)
{
	for (uint32_t t = 0; t < n; t++) {
		for (uint32_t j = 0; j < k; j++) {
			int32_t e;
			uint32_t i;

			do {
				e = (int32_t)(rnd32() % MOE_N_EXPERT);
				for (i = 0; i < j && ids[t * k + i] != e; i++)
					;
			} while (i < j);
			ids[t * k + j] = e;
			w[t * k + j] = 0.05f + (rndf() + 1) / 2;
		}
	}
}

struct moe_case {
	const char *name;
	enum ec_dtype type[EC_EXPERT_NPARTS];
	uint32_t d_embd, d_ff;
};

/* One routing of one case: what moe_ffn must give */
struct moe_want {
	const struct ec_expert *ex;
	const float *x;	    /* (n, d_embd) */
	uint32_t n, k;
	const int32_t *ids; /* (n, k) */
	const float *w;	    /* (n, k) */
	const double *ref;  /* (n, d_embd), NULL: no double reference */
	const double *tol;  /* (n, d_embd) */
};

static void check_moe(int isa, const struct moe_case *c,
		      const struct moe_want *m, int with_resident)
{
	struct ec_backend *b = be[isa];
	size_t len = (size_t)m->n * c->d_embd;
	float *want = malloc(len * sizeof(float));
	float *got = malloc(len * sizeof(float));
	struct moe_src s = {.ex = m->ex, .fail_at = -1};
	struct ec_expert_source src;
	uint32_t n_diff = 0, n_res = 0;
	double worst = 0;
	int ret;

	s.with_resident = with_resident;
	src = moe_source(&s);
	moe_generic(b, want, m->x, m->n, m->k, m->ids, m->w, m->ex, c->d_embd,
		    c->d_ff);
	for (size_t i = 0; i < len; i++)
		got[i] = NAN;
	ret = b->ops->moe_ffn(b, got, m->x, m->n, MOE_LAYER, MOE_N_EXPERT,
			      m->k, m->ids, m->w, &src);
	EC_CHECK(ret == 0 && !s.bad && s.gets == s.puts && !s.held,
		 "%s moe_ffn %s n=%u k=%u: ret %d (%s), %d protocol errors, "
		 "%d gets %d puts",
		 isas[isa], c->name, m->n, m->k, ret,
		 ret ? ec_error_msg() : "ok", s.bad, s.gets, s.puts);
	for (size_t i = 0; i < len; i++) {
		double e;

		/* the same sums: the same bits */
		n_diff += got[i] != want[i];
		if (!m->ref)
			continue;
		e = fabs(got[i] - m->ref[i]) / (m->tol[i] + 1e-30);
		if (!(e <= worst))
			worst = isnan(e) ? INFINITY : e;
	}
	EC_CHECK(!n_diff,
		 "%s moe_ffn %s n=%u k=%u%s: %u of %zu values differ from the "
		 "per-expert path",
		 isas[isa], c->name, m->n, m->k,
		 with_resident ? " (experts to load)" : "", n_diff, len);
	EC_CHECK(worst <= 1.0,
		 "%s moe_ffn %s n=%u k=%u: %.3g of the tolerance vs the double "
		 "reference",
		 isas[isa], c->name, m->n, m->k, worst);
	/* the resident experts run together: all held at once */
	for (uint32_t e = 0; e < MOE_N_EXPERT; e++) {
		for (uint32_t p = 0; p < m->n * m->k; p++) {
			if (m->ids[p] == (int32_t)e) {
				n_res += !moe_not_resident(&s, e);
				break;
			}
		}
	}
	EC_CHECK(s.max_held >= (int)n_res,
		 "%s moe_ffn %s n=%u k=%u: %d experts held at most, of %u "
		 "resident",
		 isas[isa], c->name, m->n, m->k, s.max_held, n_res);
	free(want);
	free(got);
}

static void test_moe_case(const struct moe_case *c)
{
	const uint32_t ns[] = {1, 3, 17}, max_n = 17, D = c->d_embd;
	const uint32_t F = c->d_ff;
	struct ec_expert ex[MOE_N_EXPERT];
	struct moe_deq deq;
	float *x = malloc((size_t)max_n * D * sizeof(float));
	double *ref = malloc((size_t)max_n * D * sizeof(double));
	double *tol = malloc((size_t)max_n * D * sizeof(double));
	int32_t ids[17 * 8];
	float w[17 * 8];

	for (int e = 0; e < MOE_N_EXPERT; e++) {
		make_weight(&ex[e].w[EC_EXPERT_GATE], c->type[0], F, D);
		make_weight(&ex[e].w[EC_EXPERT_UP], c->type[1], F, D);
		make_weight(&ex[e].w[EC_EXPERT_DOWN], c->type[2], D, F);
	}
	moe_deq_make(&deq, ex);
	for (size_t i = 0; i < (size_t)max_n * D; i++)
		x[i] = rndf() * (1 + (i / 32) % 5) * (i % 61 == 0 ? 8 : 1);
	for (uint32_t ni = 0; ni < 3; ni++) {
		for (uint32_t k = 1; k <= 8; k++) {
			struct moe_want m = {ex, x, ns[ni], k, ids, w,
					     NULL, tol};

			moe_route(m.n, k, ids, w);
			/* the double reference for some k: it is slow */
			if (k == 1 || k == 3 || k == 8) {
				moe_reference(&deq, ex, x, m.n, k, ids, w, D,
					      F, ref, tol);
				m.ref = ref;
			}
			/* every other case with experts to load */
			for (int isa = 0; isa < N_ISA; isa++)
				if (be[isa])
					check_moe(isa, c, &m, (k + ni) & 1);
		}
	}
	moe_deq_free(&deq);
	for (int e = 0; e < MOE_N_EXPERT; e++)
		for (int p = 0; p < EC_EXPERT_NPARTS; p++)
			free((void *)ex[e].w[p].data);
	free(x);
	free(ref);
	free(tol);
}

/* Bad ids, a failing source and a mis-shaped expert: errors, all put */
static void test_moe_errors(void)
{
	struct ec_backend *b = be[0];
	struct ec_expert ex[MOE_N_EXPERT];
	const uint32_t D = 64, F = 96, n = 2, k = 3;
	float x[2 * 64], y[2 * 64];
	int32_t ids[6] = {0, 4, 9, 2, 4, 7};
	float w[6] = {0.2f, 0.3f, 0.5f, 0.1f, 0.6f, 0.3f};
	struct moe_src s = {.ex = ex, .fail_at = -1};
	struct ec_expert_source src = moe_source(&s);
	int ret;

	for (int e = 0; e < MOE_N_EXPERT; e++) {
		make_weight(&ex[e].w[EC_EXPERT_GATE], EC_Q8_0, F, D);
		make_weight(&ex[e].w[EC_EXPERT_UP], EC_Q8_0, F, D);
		make_weight(&ex[e].w[EC_EXPERT_DOWN], EC_Q8_0, D, F);
	}
	fill(x, n * D, 1.0f);
	ids[4] = MOE_N_EXPERT;
	ret = b->ops->moe_ffn(b, y, x, n, MOE_LAYER, MOE_N_EXPERT, k, ids, w,
			      &src);
	EC_CHECK(ret == -EC_EINVAL && strstr(ec_error_msg(), "expert id 10") &&
		     !s.gets,
		 "moe_ffn rejects expert id %u of %u", MOE_N_EXPERT,
		 MOE_N_EXPERT);
	ids[4] = 4;
	ret = b->ops->moe_ffn(b, y, x, n, MOE_LAYER, MOE_N_EXPERT, 0, ids, w,
			      &src);
	EC_CHECK(ret == -EC_EINVAL, "moe_ffn rejects top 0");

	for (int with_res = 0; with_res < 2; with_res++) {
		s = (struct moe_src){.ex = ex, .fail_at = 7,
				     .with_resident = with_res};
		src = moe_source(&s);
		ret = b->ops->moe_ffn(b, y, x, n, MOE_LAYER, MOE_N_EXPERT, k,
				      ids, w, &src);
		EC_CHECK(ret == -EIO && strstr(ec_error_msg(), "unreadable") &&
			     s.gets == s.puts && !s.held,
			 "moe_ffn passes a source error on, every expert put "
			 "(resident hook %d: ret %d, %d gets %d puts)",
			 with_res, ret, s.gets, s.puts);
	}

	ex[4].w[EC_EXPERT_DOWN].ne[0] = 64; /* down [64, 64]: not n_ff */
	ex[4].w[EC_EXPERT_DOWN].ne[1] = 64 * 96 / 64;
	s = (struct moe_src){.ex = ex, .fail_at = -1};
	src = moe_source(&s);
	ret = b->ops->moe_ffn(b, y, x, n, MOE_LAYER, MOE_N_EXPERT, k, ids, w,
			      &src);
	EC_CHECK(ret == -EC_ESHAPE && strstr(ec_error_msg(), "expert 4 down") &&
		     s.gets == s.puts && !s.held,
		 "moe_ffn rejects a mis-shaped expert, every expert put "
		 "(ret %d: %s)",
		 ret, ec_error_msg());
	ex[4].w[EC_EXPERT_DOWN].ne[0] = F;
	ex[4].w[EC_EXPERT_DOWN].ne[1] = D;
	ex[9].w[EC_EXPERT_UP].type = 2; /* Q4_0 */
	ret = b->ops->moe_ffn(b, y, x, n, MOE_LAYER, MOE_N_EXPERT, k, ids, w,
			      &src);
	EC_CHECK(ret == -EC_EUNSUPPORTED && strstr(ec_error_msg(), "up") &&
		     s.gets == s.puts && !s.held,
		 "moe_ffn rejects an unsupported type (ret %d: %s)", ret,
		 ec_error_msg());
	ex[9].w[EC_EXPERT_UP].type = EC_Q8_0;
	for (int e = 0; e < MOE_N_EXPERT; e++)
		for (int p = 0; p < EC_EXPERT_NPARTS; p++)
			free((void *)ex[e].w[p].data);
}

static void test_moe(void)
{
	static const struct moe_case cases[] = {
	    {"f32", {EC_F32, EC_F32, EC_F32}, 160, 224},
	    {"f16", {EC_F16, EC_F16, EC_F16}, 160, 224},
	    {"bf16", {EC_BF16, EC_BF16, EC_BF16}, 160, 224},
	    {"q8_0", {EC_Q8_0, EC_Q8_0, EC_Q8_0}, 256, 352},
	    {"q4_k", {EC_Q4_K, EC_Q4_K, EC_Q4_K}, 256, 512},
	    {"q6_k", {EC_Q6_K, EC_Q6_K, EC_Q6_K}, 512, 256},
	    /* Q4_K_M's experts; and every activation format at once */
	    {"q4_k/q4_k/q6_k", {EC_Q4_K, EC_Q4_K, EC_Q6_K}, 256, 512},
	    {"q8_0/q6_k/bf16", {EC_Q8_0, EC_Q6_K, EC_BF16}, 256, 256},
	};

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
		test_moe_case(&cases[i]);
	test_moe_errors();
}

struct pool_probe {
	_Atomic uint32_t hits[64];
	_Atomic uint64_t sum;
};

static void probe_item(void *arg, uint32_t i)
{
	struct pool_probe *p = arg;

	atomic_fetch_add(&p->hits[i], 1);
	atomic_fetch_add(&p->sum, i + 1);
}

/* An item that takes 0.3 ms: the caller outlasts its spin and sleeps */
static void slow_item(void *arg, uint32_t i)
{
	struct timespec ts = {0, 300000};

	nanosleep(&ts, NULL);
	probe_item(arg, i);
}

static void test_pool(void)
{
	struct ec_cpu_pool *pool;
	struct pool_probe probe;
	uint64_t want = 0;
	int ok = 1;

	/*
	 * No spinning: workers fall asleep between runs (and are woken
	 * through the condvar) or join late; each item must still run
	 * exactly once per loop and every loop wait for its joined workers.
	 */
	setenv("EC_CPU_SPIN_US", "0", 1);
	EC_CHECK(ec_cpu_pool_create(4, &pool) == 0, "pool create");
	unsetenv("EC_CPU_SPIN_US");
	memset(&probe, 0, sizeof(probe));
	for (uint32_t i = 0; i < 3000; i++) {
		uint32_t n_items = 1 + i % 64;

		ec_cpu_pool_for(pool, n_items, probe_item, &probe);
		want += (uint64_t)n_items * (n_items + 1) / 2;
		ok &= atomic_load(&probe.sum) == want;
		if (i % 500 == 0) { /* let the workers fall asleep */
			struct timespec ts = {0, 2000000};

			nanosleep(&ts, NULL);
		}
	}
	for (uint32_t t = 0; t < 64; t++) {
		/* item t ran in every loop with more than t items */
		uint32_t loops = 0;

		for (uint32_t i = 0; i < 3000; i++)
			loops += 1 + i % 64 > t;
		ok &= atomic_load(&probe.hits[t]) == loops;
	}
	EC_CHECK(ok && ec_cpu_pool_size(pool) == 4,
		 "3000 parallel loops: every item ran exactly once, each loop "
		 "complete on return");
	ec_cpu_pool_for(pool, 0, probe_item, &probe);
	EC_CHECK(atomic_load(&probe.sum) == want, "empty loop runs nothing");
	ec_cpu_pool_destroy(pool);

	/* slow items: joined workers finish after the caller's spin */
	EC_CHECK(ec_cpu_pool_create(3, &pool) == 0, "pool create");
	memset(&probe, 0, sizeof(probe));
	want = 0;
	ok = 1;
	for (uint32_t i = 0; i < 40; i++) {
		uint32_t n_items = 2 + i % 7;

		ec_cpu_pool_for(pool, n_items, slow_item, &probe);
		want += (uint64_t)n_items * (n_items + 1) / 2;
		ok &= atomic_load(&probe.sum) == want;
	}
	EC_CHECK(ok, "40 loops of slow items: each loop complete on return");
	ec_cpu_pool_destroy(pool);

	EC_CHECK(ec_cpu_pool_create(0, &pool) == -EC_EINVAL,
		 "pool of 0 threads rejected");
}

static void test_create(void)
{
	struct ec_backend *b;
	float *p;

	setenv("EC_CPU_ISA", "generic", 1);
	EC_CHECK(ec_backend_cpu_create(2, &b) == 0 &&
		     !strcmp(ec_backend_cpu_isa(b), "generic"),
		 "EC_CPU_ISA=generic selects the portable kernels");
	b->ops->destroy(b);
	setenv("EC_CPU_ISA", "sse9", 1);
	EC_CHECK(ec_backend_cpu_create(2, &b) == -EC_EINVAL &&
		     strstr(ec_error_msg(), "sse9"),
		 "unknown EC_CPU_ISA rejected");
	unsetenv("EC_CPU_ISA");

	EC_CHECK(ec_backend_cpu_create(0, &b) == 0, "default threads");
	printf("default kernel set: %s\n", ec_backend_cpu_isa(b));
	EC_CHECK(!strcmp(ec_backend_cpu_isa(b),
			 ec_cpu_isa_supported("avx512") ? "avx512"
			 : ec_cpu_isa_supported("avx2") ? "avx2"
							: "generic"),
		 "best kernel set by default");
	for (size_t n = 1; n < 200; n += 37) {
		p = b->ops->alloc(b, n);
		EC_CHECK(p && ((uintptr_t)p & 63) == 0, "alloc 64-aligned");
		p[n - 1] = 1; /* the whole size is usable (ASan checks) */
		b->ops->free(b, p);
	}
	b->ops->destroy(b);

	for (int i = 0; i < N_ISA; i++) {
		if (!ec_cpu_isa_supported(isas[i])) {
			EC_CHECK(ec_backend_cpu_create_isa(1, isas[i], &b) ==
				     -EC_EUNSUPPORTED,
				 "%s refused on a CPU without it", isas[i]);
			EC_SKIP("%s kernels: this CPU lacks the instructions",
				isas[i]);
			continue;
		}
		EC_CHECK(
		    ec_backend_cpu_create_isa(N_THREADS, isas[i], &be[i]) == 0,
		    "create %s: %s", isas[i], ec_error_msg());
	}
}

static double now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec + ts.tv_nsec * 1e-9;
}

/*
 * Information only: GB/s of Q8_0 weight bytes for y = W x, W [768, 2048]
 * (an expert's gate), n = 1: one hot matrix (cache), then 64 matrices in
 * turn (108 MB, from memory, as expert weights are).
 */
static void bench_q8_0(void)
{
#if defined(__SANITIZE_ADDRESS__)
	printf("throughput: skipped in the sanitizer build\n");
	return;
#endif
	const uint32_t rows = 768, cols = 2048, n_mat = 64;
	struct ec_tensor w[64];
	float x[2048], y[768];

	for (uint32_t m = 0; m < n_mat; m++)
		make_weight(&w[m], EC_Q8_0, rows, cols);
	fill(x, cols, 1.0f);
	for (int isa = 0; isa < N_ISA; isa++) {
		for (uint32_t threads = 1; threads <= 2; threads++) {
			struct ec_backend *b;
			double gbs[2];

			if (!be[isa] ||
			    ec_backend_cpu_create_isa(threads, isas[isa], &b))
				continue;
			for (int cold = 0; cold < 2; cold++) {
				double t0 = now_s(), t;
				uint64_t bytes = 0;
				uint32_t it = 0;

				do {
					const struct ec_tensor *wm =
					    &w[cold ? it % n_mat : 0];

					b->ops->matmul(b, y, wm, x, 1, 0);
					bytes += wm->nbytes;
					it++;
				} while ((t = now_s() - t0) < 0.25);
				gbs[cold] = bytes / t / 1e9;
			}
			printf("throughput %-7s %u thread(s): Q8_0 768x2048 "
			       "n=1: %.1f GB/s hot, %.1f GB/s from memory\n",
			       isas[isa], threads, gbs[0], gbs[1]);
			b->ops->destroy(b);
		}
	}
	for (uint32_t m = 0; m < n_mat; m++)
		free((void *)w[m].data);
}

int main(void)
{
	test_pool();
	test_create();
	if (!be[0])
		return ec_test_done();
	test_matmul_errors();
	test_matmul();
	for (int isa = 0; isa < N_ISA; isa++) {
		if (!be[isa])
			continue;
		test_rmsnorm(isa);
		test_rope(isa);
		test_attention_kernels(isa);
		test_attention(isa);
		test_elementwise(isa);
	}
	test_moe();
	bench_q8_0();
	for (int isa = 0; isa < N_ISA; isa++)
		if (be[isa])
			be[isa]->ops->destroy(be[isa]);
	return ec_test_done();
}
