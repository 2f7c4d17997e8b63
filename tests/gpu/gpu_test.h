/* SPDX-License-Identifier: MIT */
/*
 * Shared by the GPU tests: random weights of every stored type, error
 * metrics, timers, an in-memory MoE model for op-level tests, and getting
 * the CUDA backend (or a reason to skip its checks).
 */
#ifndef EC_GPU_TEST_H
#define EC_GPU_TEST_H

#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "ec_backend.h"
#include "ec_backend_cuda.h"
#include "ec_error.h"
#include "ec_infer.h"
#include "ec_model.h"
#include "ec_tensor.h"
#include "ec_test.h"

struct gt_rng {
	uint64_t s;
};

static inline uint64_t gt_next(struct gt_rng *r)
{
	uint64_t z = (r->s += 0x9E3779B97F4A7C15ull);

	z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
	z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
	return z ^ (z >> 31);
}

/* uniform in [-a, a) */
static inline float gt_uniform(struct gt_rng *r, float a)
{
	return (float)((double)(gt_next(r) >> 11) / 9007199254740992.0 * 2.0 -
		       1.0) * a;
}

/* n random bytes, eight per draw */
static inline void gt_bytes(struct gt_rng *r, uint8_t *p, size_t n)
{
	while (n >= 8) {
		uint64_t v = gt_next(r);

		memcpy(p, &v, 8);
		p += 8;
		n -= 8;
	}
	if (n) {
		uint64_t v = gt_next(r);

		memcpy(p, &v, n);
	}
}

static inline uint16_t gt_f32_to_bf16(float f)
{
	uint32_t x;

	memcpy(&x, &f, 4);
	x += 0x7fff + ((x >> 16) & 1);	/* round to nearest even */
	return (uint16_t)(x >> 16);
}

/*
 * Random values of amplitude about `a` in `type`: n elements (a multiple
 * of the type's block) into dst, ec_dtype_bytes(type, n) bytes.  Quantised
 * blocks are valid and centred on zero.
 */
static inline void gt_fill(struct gt_rng *r, enum ec_dtype type, void *dst,
			   uint64_t n, float a)
{
	uint8_t *p = dst;
	uint64_t i, b;

	switch (type) {
	case EC_F32:
		for (i = 0; i < n; i++)
			((float *)dst)[i] = gt_uniform(r, a);
		break;
	case EC_F16:
		for (i = 0; i < n; i++)
			((uint16_t *)dst)[i] = ec_f32_to_f16(gt_uniform(r, a));
		break;
	case EC_BF16:
		for (i = 0; i < n; i++)
			((uint16_t *)dst)[i] = gt_f32_to_bf16(gt_uniform(r, a));
		break;
	case EC_Q8_0:
		for (b = 0; b < n / 32; b++, p += 34) {
			uint16_t d = ec_f32_to_f16(a / 127.0f);

			memcpy(p, &d, 2);
			gt_bytes(r, p + 2, 32);
			for (i = 0; i < 32; i++)	/* -127..127 */
				p[2 + i] = (uint8_t)(int8_t)((int)(p[2 + i] %
								   255) - 127);
		}
		break;
	case EC_Q4_K:
		for (b = 0; b < n / 256; b++, p += 144) {
			float df = a / (63.0f * 7.5f);
			uint16_t d = ec_f32_to_f16(df);
			uint16_t dm = ec_f32_to_f16(ec_f16_to_f32(d) * 7.5f);
			uint8_t sc[8], *q = p + 4;

			memcpy(p, &d, 2);
			memcpy(p + 2, &dm, 2);
			for (i = 0; i < 8; i++)
				sc[i] = (uint8_t)(32 + gt_next(r) % 32);
			/* m = sc: y = d * sc * (q - 7.5) */
			for (i = 0; i < 4; i++) {
				q[i] = (sc[i] & 63) | ((sc[i + 4] >> 4) << 6);
				q[i + 4] = (sc[i] & 63) |
					   ((sc[i + 4] >> 4) << 6);
				q[i + 8] = (sc[i + 4] & 0xF) |
					   ((sc[i + 4] & 0xF) << 4);
			}
			gt_bytes(r, p + 16, 128);
		}
		break;
	case EC_Q6_K:
		for (b = 0; b < n / 256; b++, p += 210) {
			uint16_t d = ec_f32_to_f16(a / (63.0f * 32.0f));

			gt_bytes(r, p, 192);
			for (i = 0; i < 16; i++)
				p[192 + i] = (uint8_t)(16 + gt_next(r) % 48);
			memcpy(p + 208, &d, 2);
		}
		break;
	}
}

static inline double gt_max_abs(const float *a, size_t n)
{
	double m = 0;

	for (size_t i = 0; i < n; i++)
		m = fabs(a[i]) > m ? fabs(a[i]) : m;
	return m;
}

static inline double gt_max_diff(const float *a, const float *b, size_t n)
{
	double m = 0;

	for (size_t i = 0; i < n; i++) {
		double d = fabs((double)a[i] - (double)b[i]);

		if (d != d)
			return INFINITY;
		m = d > m ? d : m;
	}
	return m;
}

/* max |got - ref| relative to max |ref| */
static inline double gt_rel(const float *got, const float *ref, size_t n)
{
	double s = gt_max_abs(ref, n);

	return gt_max_diff(got, ref, n) / (s > 0 ? s : 1.0);
}

static inline double gt_now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec + ts.tv_nsec * 1e-9;
}

static inline const char *gt_type_name(enum ec_dtype t)
{
	const struct ec_dtype_info *i = ec_dtype_info(t);

	return i ? i->name : "?";
}

/* make test-gpu sets EC_REQUIRE_GPU=1: no device is then a failure. */
static inline int gt_require_gpu(void)
{
	const char *e = getenv("EC_REQUIRE_GPU");

	return e && *e && strcmp(e, "0");
}

/*
 * EC_GPU_EMU=1: the "GPU" is the CPU emulation (kernels/emu), thousands of
 * times slower; tests with long loops run fewer steps of the same checks.
 */
static inline int gt_emu(void)
{
	const char *e = getenv("EC_GPU_EMU");

	return e && *e && strcmp(e, "0");
}

/*
 * The CUDA backend for m, or NULL with why filled (the caller skips, or
 * fails under EC_REQUIRE_GPU).  Tests run from the repository root.
 */
static inline struct ec_backend *
gt_cuda_with(const struct ec_backend_cuda_params *p, char *why,
	     size_t why_len)
{
	struct ec_backend *be = NULL;

	setenv("EC_CUDA_LIB", "build/libexpertcache_cuda.so", 0);
	if (ec_backend_cuda_create(p, &be) < 0) {
		snprintf(why, why_len, "%s", ec_error_msg());
		return NULL;
	}
	return be;
}

static inline struct ec_backend *gt_cuda(const struct ec_model *m,
					 uint64_t budget, char *why,
					 size_t why_len)
{
	struct ec_backend_cuda_params p = { .model = m,
					    .vram_budget = budget };

	return gt_cuda_with(&p, why, why_len);
}

/* The backend's counters (zeros when it has none). */
static inline struct ec_cuda_stats gt_cuda_stats(struct ec_backend *be)
{
	struct ec_cuda_stats st;

	memset(&st, 0, sizeof(st));
	ec_backend_cuda_get_stats(be, &st);
	return st;
}

/* A device buffer holding host data, and back. */
static inline float *gt_up(struct ec_backend *be, const float *h, size_t n)
{
	float *d = be->ops->alloc(be, n);

	if (d && h)
		be->ops->from_host(be, d, h, n);
	return d;
}

static inline void gt_down(struct ec_backend *be, float *h, const float *d,
			   size_t n)
{
	be->ops->to_host(be, h, d, n);
}

/* ------------------------------------------------------------------ */
/* An in-memory single-purpose MoE model (no files) for op tests.      */

struct gt_moe {
	struct ec_model m;
	struct ec_layer *layers;
	struct ec_expert *experts;	/* [n_layer * n_expert] */
	void *data;			/* every expert's bytes */
	uint64_t expert_bytes;		/* gate + up + down of one */
};

static inline void gt_view(struct ec_tensor *t, enum ec_dtype type,
			   uint64_t cols, uint64_t rows, const void *data)
{
	memset(t, 0, sizeof(*t));
	t->type = type;
	t->n_dims = 2;
	t->ne[0] = cols;
	t->ne[1] = rows;
	t->ne[2] = t->ne[3] = 1;
	t->data = data;
	t->nbytes = ec_dtype_bytes(type, cols * rows);
}

static inline int gt_moe_create(struct gt_moe *g, uint32_t n_layer,
				uint32_t n_expert, uint32_t k, uint32_t n_embd,
				uint32_t n_ff, enum ec_dtype tgu,
				enum ec_dtype tdown, uint64_t seed)
{
	struct gt_rng r = { seed };
	uint64_t gb = ec_dtype_bytes(tgu, (uint64_t)n_embd * n_ff);
	uint64_t db = ec_dtype_bytes(tdown, (uint64_t)n_embd * n_ff);
	uint8_t *p;

	memset(g, 0, sizeof(*g));
	g->expert_bytes = 2 * gb + db;
	g->layers = calloc(n_layer, sizeof(*g->layers));
	g->experts = calloc((size_t)n_layer * n_expert, sizeof(*g->experts));
	g->data = malloc(g->expert_bytes * n_layer * n_expert);
	if (!g->layers || !g->experts || !g->data)
		return -ENOMEM;
	p = g->data;
	for (uint32_t l = 0; l < n_layer; l++) {
		g->layers[l].experts = g->experts + (size_t)l * n_expert;
		for (uint32_t e = 0; e < n_expert; e++) {
			struct ec_expert *x = &g->layers[l].experts[e];

			gt_fill(&r, tgu, p, (uint64_t)n_embd * n_ff,
				sqrtf(3.0f / n_embd));
			gt_view(&x->w[EC_EXPERT_GATE], tgu, n_embd, n_ff, p);
			p += gb;
			gt_fill(&r, tgu, p, (uint64_t)n_embd * n_ff, 1.0f);
			gt_view(&x->w[EC_EXPERT_UP], tgu, n_embd, n_ff, p);
			p += gb;
			gt_fill(&r, tdown, p, (uint64_t)n_embd * n_ff,
				sqrtf(3.0f / n_ff));
			gt_view(&x->w[EC_EXPERT_DOWN], tdown, n_ff, n_embd, p);
			p += db;
		}
	}
	g->m.hp.n_layer = n_layer;
	g->m.hp.n_embd = n_embd;
	g->m.hp.n_expert = n_expert;
	g->m.hp.n_expert_used = k;
	g->m.hp.n_ff_exp = n_ff;
	g->m.layers = g->layers;
	return 0;
}


static inline void gt_moe_free(struct gt_moe *g)
{
	free(g->layers);
	free(g->experts);
	free(g->data);
}

/*
 * Reference of one routed-expert mixture in double precision from the
 * exactly dequantised weights: y (n, n_embd).  Each expert is dequantised
 * once for all the tokens that chose it.
 */
static inline void gt_moe_ref(const struct gt_moe *g, uint32_t layer,
			      const float *x, uint32_t n, uint32_t k,
			      const int32_t *ids, const float *w, float *y)
{
	const struct ec_hparams *hp = &g->m.hp;
	uint32_t E = hp->n_embd, F = hp->n_ff_exp;
	float *wg = malloc(sizeof(float) * E * F);
	float *wu = malloc(sizeof(float) * E * F);
	float *wd = malloc(sizeof(float) * E * F);
	double *h = malloc(sizeof(double) * F);
	double *acc = calloc((size_t)n * E, sizeof(double));

	for (uint32_t e = 0; e < hp->n_expert; e++) {
		const struct ec_expert *ex = &g->layers[layer].experts[e];
		int loaded = 0;

		for (uint32_t p = 0; p < n * k; p++) {
			const float *xt = x + (size_t)(p / k) * E;
			double *at = acc + (size_t)(p / k) * E;

			if (ids[p] != (int32_t)e)
				continue;
			if (!loaded) {
				ec_dequantize(ex->w[0].type, ex->w[0].data, wg,
					      (uint64_t)E * F);
				ec_dequantize(ex->w[1].type, ex->w[1].data, wu,
					      (uint64_t)E * F);
				ec_dequantize(ex->w[2].type, ex->w[2].data, wd,
					      (uint64_t)E * F);
				loaded = 1;
			}
			for (uint32_t f = 0; f < F; f++) {
				double a = 0, b = 0;

				for (uint32_t i = 0; i < E; i++) {
					a += (double)wg[(size_t)f * E + i] * xt[i];
					b += (double)wu[(size_t)f * E + i] * xt[i];
				}
				h[f] = a / (1.0 + exp(-a)) * b;
			}
			for (uint32_t i = 0; i < E; i++) {
				double s = 0;

				for (uint32_t f = 0; f < F; f++)
					s += (double)wd[(size_t)i * F + f] * h[f];
				at[i] += w[p] * s;
			}
		}
	}
	for (size_t i = 0; i < (size_t)n * E; i++)
		y[i] = (float)acc[i];
	free(wg);
	free(wu);
	free(wd);
	free(h);
	free(acc);
}

/* ------------------------------------------------------------------ */
/* The backends under test, shared by each test binary's functions.    */

static struct ec_backend *gt_cpu, *gt_gpu;
static char gt_gpu_why[512];
static void *gt_kept[512];	/* weights stay alive: the GPU caches them by
				   host address */
static int gt_n_kept;

static inline void *gt_keep(size_t n)
{
	void *p = malloc(n);

	if (p && gt_n_kept < 512)
		gt_kept[gt_n_kept++] = p;
	return p;
}

static inline float *gt_frand(struct gt_rng *r, size_t n, float a)
{
	float *f = malloc(n * sizeof(float));

	for (size_t i = 0; f && i < n; i++)
		f[i] = gt_uniform(r, a);
	return f;
}

/* Is there a GPU to check `what` on?  Skips (or fails when required). */
static inline int gt_gpu_ok(const char *what)
{
	if (gt_gpu)
		return 1;
	if (gt_require_gpu())
		EC_CHECK(0, "%s: no CUDA backend: %s", what, gt_gpu_why);
	else
		EC_SKIP("%s on CUDA: %s", what, gt_gpu_why);
	return 0;
}

/* CPU backend and, when possible, the CUDA backend sized for m. */
static inline int gt_setup(const struct ec_model *m)
{
	if (ec_backend_cpu_create(2, &gt_cpu) < 0) {
		fprintf(stderr, "cpu backend: %s\n", ec_error_msg());
		return -1;
	}
	gt_gpu = gt_cuda(m, 0, gt_gpu_why, sizeof(gt_gpu_why));
	return 0;
}

static inline void gt_teardown(void)
{
	if (gt_gpu)
		gt_gpu->ops->destroy(gt_gpu);
	if (gt_cpu)
		gt_cpu->ops->destroy(gt_cpu);
	while (gt_n_kept)
		free(gt_kept[--gt_n_kept]);
}

/*
 * y (n, n_embd) of one layer of g by the CPU backend's generic expert path
 * (as forward.c runs it without moe_ffn): the reference of the fused
 * kernels.  ids/w: (n, n_expert_used) routing.
 */
static inline void gt_cpu_moe(const struct gt_moe *g, uint32_t layer,
			      const float *x, uint32_t n, const int32_t *ids,
			      const float *w, float *y)
{
	struct ec_backend *be = gt_cpu;
	uint32_t D = g->m.hp.n_embd, F = g->m.hp.n_ff_exp;
	uint32_t k = g->m.hp.n_expert_used;
	float *xg = malloc(4 * (size_t)n * D), *gg = malloc(4 * (size_t)n * F);
	float *u = malloc(4 * (size_t)n * F), *d = malloc(4 * (size_t)n * D);
	int32_t *tok = malloc(4 * (size_t)n);
	float *ws = malloc(4 * (size_t)n);

	memset(y, 0, 4 * (size_t)n * D);
	for (uint32_t e = 0; e < g->m.hp.n_expert; e++) {
		const struct ec_expert *ex = &g->layers[layer].experts[e];
		uint32_t m = 0;

		for (uint32_t p = 0; p < n * k; p++)
			if (ids[p] == (int32_t)e) {
				tok[m] = (int32_t)(p / k);
				ws[m++] = w[p];
			}
		if (!m)
			continue;
		be->ops->gather(be, xg, x, tok, m, D);
		be->ops->matmul(be, gg, &ex->w[EC_EXPERT_GATE], xg, m, 0);
		be->ops->matmul(be, u, &ex->w[EC_EXPERT_UP], xg, m, 0);
		be->ops->silu_mul(be, gg, u, m, F);
		be->ops->matmul(be, d, &ex->w[EC_EXPERT_DOWN], gg, m, 0);
		be->ops->scatter_add(be, y, d, tok, ws, m, D);
	}
	free(xg);
	free(gg);
	free(u);
	free(d);
	free(tok);
	free(ws);
}

#endif
