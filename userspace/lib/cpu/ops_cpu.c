// SPDX-License-Identifier: MIT
/* Element-wise and per-row CPU ops: rmsnorm, bias, rope, silu, scaled add. */
#include <math.h>

#include "cpu/cpu.h"
#include "ec_model.h"

/*
 * These follow PyTorch's float32 arithmetic step by step (products rounded
 * before sums, no FMA contraction: this file is built without -mfma) so the
 * forward pass tracks Hugging Face transformers closely.
 */

/* Rows of an op are shared over the pool only when there is enough work */
#define PARALLEL_MIN_ELEMS (1u << 16)

typedef void (*row_fn)(const void *ctx, uint32_t row);

struct rows_task {
	row_fn fn;
	const void *ctx;
	uint32_t n, per_item;
};

static void rows_item(void *arg, uint32_t item)
{
	const struct rows_task *t = arg;
	uint32_t r1 = (item + 1) * t->per_item;

	for (uint32_t r = item * t->per_item; r < r1 && r < t->n; r++)
		t->fn(t->ctx, r);
}

/* Rows in groups of about PARALLEL_MIN_ELEMS / 4 elements */
static void for_rows(struct ec_cpu *cpu, uint32_t n, uint32_t dim, row_fn fn,
		     const void *ctx)
{
	struct rows_task t = {fn, ctx, n, n};
	uint64_t per = (PARALLEL_MIN_ELEMS / 4) / (dim ? dim : 1);

	if (n >= 2 && (uint64_t)n * dim >= PARALLEL_MIN_ELEMS) {
		t.per_item = per ? (uint32_t)per : 1;
		ec_cpu_pool_for(cpu->pool, (n + t.per_item - 1) / t.per_item,
				rows_item, &t);
	} else {
		rows_item(&t, 0);
	}
}

/* A plain-typed vector converted to f32 a chunk at a time */
#define VEC_CHUNK 256

static void vec_chunk(const struct ec_tensor *v, uint32_t i0, uint32_t len,
		      float *out)
{
	const struct ec_dtype_info *info = ec_dtype_info(v->type);

	ec_dequantize(v->type,
		      (const uint8_t *)v->data + i0 * info->block_bytes, out,
		      len);
}

struct norm_ctx {
	float *y;
	const float *x;
	const struct ec_tensor *w;
	uint32_t dim;
	float eps;
};

/* y = w * (x * 1/sqrt(mean(x^2) + eps)), as transformers' RMSNorm */
static void rmsnorm_row(const void *vctx, uint32_t r)
{
	const struct norm_ctx *c = vctx;
	const float *x = c->x + (size_t)r * c->dim;
	float *y = c->y + (size_t)r * c->dim;
	float wbuf[VEC_CHUNK], ms, scale;
	double ss = 0;

	for (uint32_t i = 0; i < c->dim; i++)
		ss += (double)x[i] * x[i];
	ms = (float)(ss / c->dim);
	scale = 1.0f / sqrtf(ms + c->eps);
	for (uint32_t i0 = 0; i0 < c->dim; i0 += VEC_CHUNK) {
		uint32_t len =
		    c->dim - i0 < VEC_CHUNK ? c->dim - i0 : VEC_CHUNK;

		vec_chunk(c->w, i0, len, wbuf);
		for (uint32_t i = 0; i < len; i++)
			y[i0 + i] = wbuf[i] * (x[i0 + i] * scale);
	}
}

void ec_cpu_rmsnorm(struct ec_cpu *cpu, float *y, const float *x,
		    const struct ec_tensor *w, uint32_t n, uint32_t dim,
		    float eps)
{
	struct norm_ctx c = {y, x, w, dim, eps};

	for_rows(cpu, n, dim, rmsnorm_row, &c);
}

struct bias_ctx {
	float *x;
	const struct ec_tensor *b;
	uint32_t dim;
};

static void bias_row(const void *vctx, uint32_t r)
{
	const struct bias_ctx *c = vctx;
	float *x = c->x + (size_t)r * c->dim;
	float bbuf[VEC_CHUNK];

	for (uint32_t i0 = 0; i0 < c->dim; i0 += VEC_CHUNK) {
		uint32_t len =
		    c->dim - i0 < VEC_CHUNK ? c->dim - i0 : VEC_CHUNK;

		vec_chunk(c->b, i0, len, bbuf);
		for (uint32_t i = 0; i < len; i++)
			x[i0 + i] += bbuf[i];
	}
}

void ec_cpu_add_bias(struct ec_cpu *cpu, float *x, const struct ec_tensor *b,
		     uint32_t n, uint32_t dim)
{
	struct bias_ctx c = {x, b, dim};

	for_rows(cpu, n, dim, bias_row, &c);
}

struct rope_ctx {
	float *x;	       /* (n, n_heads * head_dim) */
	const int32_t *pos;    /* (n) */
	const float *inv_freq; /* (head_dim / 2) */
	uint32_t n_heads, head_dim;
	int style;
};

/*
 * transformers: inv_freq = 1 / theta^(arange(0, d, 2) / d) in float32,
 * angle = pos * inv_freq (one rounded product), cos/sin of that in float32,
 * then x * cos + rotate(x) * sin.
 */
static void rope_row(const void *vctx, uint32_t r)
{
	const struct rope_ctx *c = vctx;
	uint32_t half = c->head_dim / 2;
	float cs[EC_CPU_MAX_HEAD_DIM / 2], sn[EC_CPU_MAX_HEAD_DIM / 2];
	float p = (float)c->pos[r];

	for (uint32_t i = 0; i < half; i++) {
		float angle = p * c->inv_freq[i];

		cs[i] = cosf(angle);
		sn[i] = sinf(angle);
	}
	for (uint32_t h = 0; h < c->n_heads; h++) {
		float *v = c->x + ((size_t)r * c->n_heads + h) * c->head_dim;
		/* pair i is (v[i*a], v[i*a + b]) */
		uint32_t a = c->style == EC_ROPE_NORM ? 2 : 1;
		uint32_t b = c->style == EC_ROPE_NORM ? 1 : half;

		for (uint32_t i = 0; i < half; i++) {
			float x0 = v[i * a], x1 = v[i * a + b];
			float p00 = x0 * cs[i], p11 = x1 * sn[i];
			float p10 = x1 * cs[i], p01 = x0 * sn[i];

			v[i * a] = p00 - p11;
			v[i * a + b] = p10 + p01;
		}
	}
}

void ec_cpu_rope(struct ec_cpu *cpu, float *x, const int32_t *pos, uint32_t n,
		 uint32_t n_heads, uint32_t head_dim, float theta, int style)
{
	struct rope_ctx c = {x, pos, cpu->inv_freq, n_heads, head_dim, style};

	if (head_dim < 2 || head_dim % 2 || head_dim > EC_CPU_MAX_HEAD_DIM)
		return;
	if (cpu->rope_theta != theta || cpu->rope_dim != head_dim) {
		for (uint32_t i = 0; i < head_dim / 2; i++) {
			float e = (float)(2 * i) / (float)head_dim;

			cpu->inv_freq[i] = 1.0f / powf(theta, e);
		}
		cpu->rope_theta = theta;
		cpu->rope_dim = head_dim;
	}
	for_rows(cpu, n, n_heads * head_dim, rope_row, &c);
}

struct silu_ctx {
	float *g;
	const float *u;
	uint32_t dim;
};

static void silu_row(const void *vctx, uint32_t r)
{
	const struct silu_ctx *c = vctx;
	float *g = c->g + (size_t)r * c->dim;
	const float *u = c->u + (size_t)r * c->dim;

	for (uint32_t i = 0; i < c->dim; i++)
		g[i] = g[i] / (1.0f + expf(-g[i])) * u[i];
}

void ec_cpu_silu_mul(struct ec_cpu *cpu, float *g, const float *u, uint32_t n,
		     uint32_t dim)
{
	struct silu_ctx c = {g, u, dim};

	for_rows(cpu, n, dim, silu_row, &c);
}

struct scaled_ctx {
	float *y;
	const float *x;
	const float *scale;
	uint32_t dim;
};

/* (s * x) is rounded before the add, like torch's expert-output scaling */
static void scaled_row(const void *vctx, uint32_t r)
{
	const struct scaled_ctx *c = vctx;
	float *y = c->y + (size_t)r * c->dim;
	const float *x = c->x + (size_t)r * c->dim;
	float s = c->scale ? c->scale[r] : 1.0f;

	for (uint32_t i = 0; i < c->dim; i++)
		y[i] += s * x[i];
}

void ec_cpu_add_scaled(struct ec_cpu *cpu, float *y, const float *x,
		       const float *scale, uint32_t n, uint32_t dim)
{
	struct scaled_ctx c = {y, x, scale, dim};

	for_rows(cpu, n, dim, scaled_row, &c);
}
