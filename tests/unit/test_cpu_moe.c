// SPDX-License-Identifier: MIT
/*
 * CPU backend moe_ffn, the fused routed-expert mixture, for every kernel
 * set and weight-type mix: against the per-expert path and a double
 * reference, the expert source's get/put protocol, and its errors.
 */
#include <errno.h>
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "cpu_test_util.h"

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

int main(void)
{
	if (!cpu_test_open())
		test_moe();
	cpu_test_close();
	return ec_test_done();
}
