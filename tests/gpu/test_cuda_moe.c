// SPDX-License-Identifier: MIT
/*
 * The routed-expert mixture (moe_ffn) and the VRAM slot manager: fused
 * decode kernels and the grouped prefill path in every weight-type pair,
 * against a double-precision reference (which is itself checked against
 * the CPU backend's generic per-expert path, also without a GPU).  Then
 * a budget of k + 1 slots against full residency: identical bits, the
 * expert source balanced (every get put back, gets == misses), evictions
 * inside one call, I/O errors and wrong-shaped experts reported.
 *
 * Quantised experts run on 8-bit activations by default (as the CPU
 * backend does): that path is compared with the CPU backend's own result
 * within MOE_Q8_TOL, and the exact path (exact_f32_act) with the double
 * reference within 2e-5.  MOE_Q8_TOL is looser than a single matmul's
 * 1e-5: the hidden state h is rounded to 8 bits again before down, and
 * an h value the two sides compute a few ulp apart can land on either
 * side of a rounding step (about 1e-3 of the output for one such value).
 */
#include "gpu_test.h"

#define N_EMBD 512
#define N_FF 256
#define N_EXP 16
#define TOPK 4
#define MAX_TOK 20
#define MOE_Q8_TOL 5e-3

struct csrc {
	struct gt_moe *g;
	int outstanding;
	uint64_t gets;
	int fail_layer, fail_expert;	/* -1: none */
	const struct ec_expert *bad;	/* returned instead, when set */
};

static int cs_get(void *priv, uint32_t l, uint32_t e,
		  const struct ec_expert **out)
{
	struct csrc *c = priv;

	c->gets++;
	if ((int)l == c->fail_layer && (int)e == c->fail_expert)
		return ec_err(-EIO, "test source: expert (%u, %u) unreadable",
			      l, e);
	c->outstanding++;
	*out = c->bad ? c->bad : &c->g->layers[l].experts[e];
	return 0;
}

static void cs_put(void *priv, uint32_t l, uint32_t e)
{
	((struct csrc *)priv)->outstanding--;
}

static struct ec_expert_source source(struct csrc *c)
{
	struct ec_expert_source s = { .get = cs_get, .put = cs_put,
				      .priv = c };

	return s;
}

/* distinct experts per token, weights summing to 1 */
static void route_random(struct gt_rng *r, uint32_t n, int32_t *ids,
			 float *w)
{
	for (uint32_t t = 0; t < n; t++) {
		float s = 0;

		for (uint32_t j = 0; j < TOPK; j++) {
			int32_t e;
			int dup;

			do {
				e = (int32_t)(gt_next(r) % N_EXP);
				dup = 0;
				for (uint32_t i = 0; i < j; i++)
					dup |= ids[t * TOPK + i] == e;
			} while (dup);
			ids[t * TOPK + j] = e;
			w[t * TOPK + j] = 0.1f + (gt_uniform(r, 1.0f) + 1.0f);
			s += w[t * TOPK + j];
		}
		for (uint32_t j = 0; j < TOPK; j++)
			w[t * TOPK + j] /= s;
	}
}

static int run_gpu(struct ec_backend *be, struct csrc *c, uint32_t layer,
		   const float *x, uint32_t n, const int32_t *ids,
		   const float *w, float *y)
{
	struct ec_expert_source s = source(c);
	float *dx = gt_up(be, x, (size_t)n * N_EMBD);
	float *dy = gt_up(be, NULL, (size_t)n * N_EMBD);
	int ret = be->ops->moe_ffn(be, dy, dx, n, layer, N_EXP, TOPK, ids, w,
				   &s);

	gt_down(be, y, dy, (size_t)n * N_EMBD);
	/* host copies are put back lazily; sync gives back the rest */
	be->ops->sync(be);
	be->ops->free(be, dx);
	be->ops->free(be, dy);
	return ret;
}

static int is_quant(enum ec_dtype t)
{
	return t == EC_Q8_0 || t == EC_Q4_K || t == EC_Q6_K;
}

/* The CUDA backend on f32 activations for quantised weights too */
static struct ec_backend *cuda_exact(const struct ec_model *m)
{
	struct ec_backend_cuda_params p = { .model = m,
					    .exact_f32_act = true };
	struct ec_backend *be = NULL;

	EC_CHECK(ec_backend_cuda_create(&p, &be) == 0, "exact cuda backend: "
		 "%s", ec_error_msg());
	return be;
}

static void test_pair(enum ec_dtype tgu, enum ec_dtype tdown)
{
	static const uint32_t ns[] = { 1, 3, MAX_TOK };
	const char *name = gt_type_name(tgu), *dname = gt_type_name(tdown);
	int quant = is_quant(tgu) || is_quant(tdown);
	struct gt_rng r = { 31 + tgu * 100 + tdown };
	struct ec_backend *full = NULL, *small = NULL, *exact = NULL;
	struct csrc ce;
	struct ec_cuda_stats st;
	struct csrc cf, cs;
	struct gt_moe g;
	float *x, *ref, *a, *b;
	int32_t ids[MAX_TOK * TOPK];
	float w[MAX_TOK * TOPK];
	char why[512];
	double e;
	int ret;

	if (gt_moe_create(&g, 2, N_EXP, TOPK, N_EMBD, N_FF, tgu, tdown,
			  r.s) < 0)
		return;
	x = gt_frand(&r, MAX_TOK * N_EMBD, 1.0f);
	ref = malloc(4 * MAX_TOK * N_EMBD);
	a = malloc(4 * MAX_TOK * N_EMBD);
	b = malloc(4 * MAX_TOK * N_EMBD);
	cf = (struct csrc){ .g = &g, .fail_layer = -1, .fail_expert = -1 };
	cs = cf;
	ce = cf;
	if (gt_gpu) {
		uint64_t slot = g.expert_bytes + 3 * 256;

		full = gt_cuda(&g.m, 0, why, sizeof(why));
		small = gt_cuda(&g.m, slot * (TOPK + 1), why, sizeof(why));
		EC_CHECK(full && small, "cuda backends for %s/%s: %s", name,
			 dname, why);
		if (small && !ec_backend_cuda_get_stats(small, &st))
			EC_CHECK(st.n_slots == TOPK + 1, "%u slots", st.n_slots);
		if (quant)
			exact = cuda_exact(&g.m);
	}
	for (size_t i = 0; i < 3; i++) {
		uint32_t n = ns[i];

		route_random(&r, n, ids, w);
		gt_moe_ref(&g, 1, x, n, TOPK, ids, w, ref);
		gt_cpu_moe(&g, 1, x, n, ids, w, a);
		EC_CHECK(gt_rel(a, ref, n * N_EMBD) <= (quant ? 3e-2 : 1e-5),
			 "cpu moe %s/%s n=%u: rel err %.3g", name, dname, n,
			 gt_rel(a, ref, n * N_EMBD));
		if (!full || !small)
			continue;
		/* quantised experts: 8-bit activations, as the CPU's (a) */
		ret = run_gpu(full, &cf, 1, x, n, ids, w, b);
		e = gt_rel(b, quant ? a : ref, n * N_EMBD);
		EC_CHECK(ret == 0 && e <= (quant ? MOE_Q8_TOL : 2e-5),
			 "cuda moe_ffn %s/%s n=%u: ret %d rel err %.3g against "
			 "the %s (%s)", name, dname, n, ret, e,
			 quant ? "cpu backend" : "reference", ec_error_msg());
		if (exact) {
			ret = run_gpu(exact, &ce, 1, x, n, ids, w, b);
			e = gt_rel(b, ref, n * N_EMBD);
			EC_CHECK(ret == 0 && e <= 2e-5, "cuda moe_ffn exact "
				 "%s/%s n=%u: ret %d rel err %.3g (%s)", name,
				 dname, n, ret, e, ec_error_msg());
		}
	}
	if (!full || !small)
		goto out;
	/* churn: k + 1 slots against everything resident, bit for bit */
	for (int it = 0; it < (gt_emu() ? 6 : 12); it++) {
		uint32_t n = ns[it % 3], layer = (uint32_t)it / 2 % 2;
		int r1, r2;

		route_random(&r, n, ids, w);
		r1 = run_gpu(full, &cf, layer, x, n, ids, w, a);
		r2 = run_gpu(small, &cs, layer, x, n, ids, w, b);
		EC_CHECK(r1 == 0 && r2 == 0 &&
			 !memcmp(a, b, 4 * n * N_EMBD),
			 "%s/%s step %d n=%u: full %d, k+1 slots %d, diff %.3g",
			 name, dname, it, n, r1, r2,
			 gt_max_diff(a, b, n * N_EMBD));
		EC_CHECK(cf.outstanding == 0 && cs.outstanding == 0,
			 "expert source unbalanced: %d %d", cf.outstanding,
			 cs.outstanding);
	}
	ec_backend_cuda_get_stats(small, &st);
	/* gt_moe's parts sit at 64-byte offsets as in a slot: one copy */
	EC_CHECK(st.h2d_copies == st.expert_misses && st.puts_pending == 0,
		 "%s/%s: %llu copies for %llu misses, %u puts pending", name,
		 dname, (unsigned long long)st.h2d_copies,
		 (unsigned long long)st.expert_misses, st.puts_pending);
	EC_CHECK(st.expert_misses == cs.gets && st.evictions > 0 &&
		 st.n_resident == TOPK + 1,
		 "%s/%s small budget: %llu misses, %llu gets, %llu evictions",
		 name, dname, (unsigned long long)st.expert_misses,
		 (unsigned long long)cs.gets, (unsigned long long)st.evictions);
	/* an unreadable expert: the error comes back, nothing leaks */
	route_random(&r, MAX_TOK, ids, w);
	cs.fail_layer = 0;
	cs.fail_expert = ids[TOPK * 7 + 1];
	ret = run_gpu(small, &cs, 0, x, MAX_TOK, ids, w, b);
	EC_CHECK(ret == -EIO && strstr(ec_error_msg(), "unreadable") &&
		 cs.outstanding == 0, "I/O error: ret %d, %d outstanding (%s)",
		 ret, cs.outstanding, ec_error_msg());
	cs.fail_layer = -1;
	if (quant)
		gt_cpu_moe(&g, 0, x, MAX_TOK, ids, w, ref);
	else
		gt_moe_ref(&g, 0, x, MAX_TOK, TOPK, ids, w, ref);
	ret = run_gpu(small, &cs, 0, x, MAX_TOK, ids, w, b);
	e = gt_rel(b, ref, MAX_TOK * N_EMBD);
	EC_CHECK(ret == 0 && e <= (quant ? MOE_Q8_TOL : 2e-5),
		 "after an I/O error: ret %d rel err %.3g", ret, e);
	/* an expert of the wrong shape is refused, not copied */
	{
		struct ec_expert bad = g.layers[0].experts[0];

		bad.w[EC_EXPERT_DOWN].nbytes /= 2;
		cs.bad = &bad;
		for (uint32_t j = 0; j < TOPK; j++)
			ids[j] = (int32_t)(N_EXP - 1 - j);
		ret = run_gpu(small, &cs, 1, x, 1, ids, w, b);
		EC_CHECK(ret == -EC_ESHAPE && cs.outstanding == 0,
			 "wrong-shaped expert: ret %d (%s)", ret,
			 ec_error_msg());
		cs.bad = NULL;
	}
out:
	if (exact)
		exact->ops->destroy(exact);
	if (full)
		full->ops->destroy(full);
	if (small)
		small->ops->destroy(small);
	free(x);
	free(ref);
	free(a);
	free(b);
	gt_moe_free(&g);
}

int main(void)
{
	struct gt_moe g;

	/* the default (8-bit) path is under test; the exact one by param */
	unsetenv("EC_CUDA_EXACT");
	if (gt_moe_create(&g, 1, 8, 2, 256, 256, EC_Q8_0, EC_Q8_0, 1) < 0 ||
	    gt_setup(&g.m) < 0)
		return 1;
	gt_gpu_ok("moe_ffn and VRAM slots");
	test_pair(EC_F32, EC_F32);
	test_pair(EC_F16, EC_F16);
	test_pair(EC_BF16, EC_BF16);
	test_pair(EC_Q8_0, EC_Q8_0);
	test_pair(EC_Q4_K, EC_Q6_K);
	test_pair(EC_Q6_K, EC_Q4_K);
	gt_teardown();
	gt_moe_free(&g);
	return ec_test_done();
}
