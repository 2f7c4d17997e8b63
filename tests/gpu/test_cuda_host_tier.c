// SPDX-License-Identifier: MIT
/*
 * Expert copies from the storage cache's host tier by DMA: the cache's
 * expert source names its host tier (host_regions), the CUDA backend
 * page-locks it with cudaHostRegister, and no expert copy is staged as
 * pageable memory.
 *
 * A synthetic GGUF (under build/: O_DIRECT needs a real disk) runs
 * through the expert cache at a RAM budget of 25% of the expert bytes and
 * a VRAM budget of 25%: logits of a prefill and decode steps bit-identical
 * to full residency on the model mapping; h2d_pageable 0 and the host
 * tier registered once (not per miss); the same cache through a source
 * without the hook copies every expert as pageable (the behaviour before)
 * and the backend releases the registration when the source changes; a
 * source again registers again.  An in-memory source checks the refusals:
 * a region CUDA refuses (already registered) is noted, not an error; a
 * new generation of the same range registers again; no_host_register
 * registers nothing and says why.
 */
#define _GNU_SOURCE
#include <unistd.h>

#include "ec_cache.h"
#include "storage_fixture.h"
#include "synth_model.h"

#define N_PROMPT 12
#define N_DEC 6
#define N_EXP 16
#define TOPK 4

static struct ec_backend *cuda_be(const struct ec_model *m, uint64_t budget,
				  bool no_register, char *why, size_t len)
{
	struct ec_backend_cuda_params p = { .model = m, .vram_budget = budget,
					    .no_host_register = no_register };

	return gt_cuda_with(&p, why, len);
}


/* (N_PROMPT + N_DEC, vocab) logits: a prefill, then decode steps */
static int run(const struct ec_model *m, struct ec_backend *be,
	       const struct ec_expert_source *src, const int32_t *tok,
	       float *logits)
{
	struct ec_ctx_params cp = { .n_ctx = 64, .n_batch = 64 };
	uint32_t V = m->hp.n_vocab;
	struct ec_ctx *c = NULL;
	int ret;

	ret = ec_ctx_create(m, be, &cp, &c);
	if (ret < 0)
		return ret;
	if (src)
		ec_ctx_set_expert_source(c, src);
	ret = ec_ctx_eval(c, tok, N_PROMPT, logits, 1);
	for (uint32_t i = 0; ret >= 0 && i < N_DEC; i++)
		ret = ec_ctx_eval(c, tok + N_PROMPT + i, 1,
				  logits + (size_t)(N_PROMPT + i) * V, 0);
	if (ret < 0)
		fprintf(stderr, "forward pass: %s\n", ec_error_msg());
	/* the backend forgets nothing here: it sees the next source at its
	 * next expert copy */
	ec_ctx_free(c);
	return ret;
}

struct fixture {
	struct ec_model *m;
	int32_t tok[N_PROMPT + N_DEC];
	float *ref;		/* full residency on the model mapping */
	float *got;
	size_t n_logits;
	uint64_t quarter;	/* 25% of the expert bytes, >= top-k + 1 */
};

static void check_logits(struct fixture *f, int ret, const char *what)
{
	EC_CHECK(ret == 0 && !memcmp(f->ref, f->got, f->n_logits * 4),
		 "%s: forward %d, max |diff| %.3g against full residency",
		 what, ret, ret == 0 ? gt_max_diff(f->ref, f->got,
						   f->n_logits) : 0.0);
}

/* The expert cache's own source, with and without the hook. */
static void through_cache(struct fixture *f, const char *model)
{
	struct ec_cache_params cp = { .ram_budget = f->quarter };
	struct ec_expert_source src, plain;
	struct ec_cache_stats cs;
	struct ec_cache_info info;
	struct ec_cuda_stats st;
	struct ec_backend *be = NULL;
	struct ec_cache *c = NULL;
	uint64_t tier_bytes;
	char why[512];
	void *base;
	int ret;

	be = cuda_be(f->m, f->quarter, false, why, sizeof(why));
	EC_CHECK(be, "cuda backend at 25%%: %s", why);
	ret = be ? ec_cache_create(f->m, &cp, &c) : -1;
	EC_CHECK(!be || ret == 0, "%s: cache at 25%%: %s", model,
		 ec_error_msg());
	if (ret < 0)
		goto out;
	ec_cache_get_info(c, &info);
	ec_host_tier_region(ec_cache_host_tier(c), &base, &tier_bytes);
	ec_cache_expert_source(c, &src);
	EC_CHECK(src.host_regions, "the cache's source has host_regions");

	/* 1. the hooked source: DMA from the registered host tier */
	ret = run(f->m, be, &src, f->tok, f->got);
	check_logits(f, ret, "cache 25% + VRAM 25%");
	st = gt_cuda_stats(be);
	ec_cache_get_stats(c, &cs);
	EC_CHECK(st.expert_misses > 0 && st.h2d_bytes > 0 && cs.evictions > 0,
		 "experts streamed: %llu VRAM misses, %llu bytes, %llu host "
		 "evictions", (unsigned long long)st.expert_misses,
		 (unsigned long long)st.h2d_bytes,
		 (unsigned long long)cs.evictions);
	EC_CHECK(st.h2d_pageable == 0, "hooked source: %llu of %llu bytes "
		 "copied as pageable", (unsigned long long)st.h2d_pageable,
		 (unsigned long long)st.h2d_bytes);
	EC_CHECK(st.host_tier_bytes == tier_bytes && tier_bytes > 0 &&
		 st.host_tier_regions == 1 && st.host_tier_refused == 0 &&
		 !st.host_tier_refusal[0],
		 "host tier registered: %llu of %llu bytes, %u regions, %u "
		 "refused (%s)", (unsigned long long)st.host_tier_bytes,
		 (unsigned long long)tier_bytes, st.host_tier_regions,
		 st.host_tier_refused, st.host_tier_refusal);
	EC_CHECK(st.host_tier_registrations == 1,
		 "registered once for %llu misses, not %u times",
		 (unsigned long long)st.expert_misses,
		 st.host_tier_registrations);
	printf("%s host tier (%s, %llu bytes): %llu misses, %llu bytes to "
	       "VRAM, %llu pageable, registered %u time(s)\n", model,
	       info.tier.kind, (unsigned long long)tier_bytes,
	       (unsigned long long)st.expert_misses,
	       (unsigned long long)st.h2d_bytes,
	       (unsigned long long)st.h2d_pageable,
	       st.host_tier_registrations);

	/* 2. the same cache without the hook: as before, all pageable */
	plain = src;
	plain.host_regions = NULL;
	ec_backend_cuda_reset_stats(be);
	ret = run(f->m, be, &plain, f->tok, f->got);
	check_logits(f, ret, "plain source");
	st = gt_cuda_stats(be);
	EC_CHECK(st.h2d_bytes > 0 && st.h2d_pageable == st.h2d_bytes,
		 "plain source: %llu of %llu bytes pageable",
		 (unsigned long long)st.h2d_pageable,
		 (unsigned long long)st.h2d_bytes);
	EC_CHECK(st.host_tier_bytes == 0 && st.host_tier_regions == 0 &&
		 st.host_tier_refused == 0,
		 "a source without regions releases the registration: %llu "
		 "bytes, %u regions left",
		 (unsigned long long)st.host_tier_bytes, st.host_tier_regions);

	/* 3. the hooked source again: registered again, DMA again */
	ec_backend_cuda_reset_stats(be);
	ret = run(f->m, be, &src, f->tok, f->got);
	check_logits(f, ret, "hooked source again");
	st = gt_cuda_stats(be);
	EC_CHECK(st.h2d_bytes > 0 && st.h2d_pageable == 0 &&
		 st.host_tier_bytes == tier_bytes &&
		 st.host_tier_registrations == 2,
		 "hooked again: %llu pageable, %llu registered, %u "
		 "registrations", (unsigned long long)st.h2d_pageable,
		 (unsigned long long)st.host_tier_bytes,
		 st.host_tier_registrations);
out:
	/* the backend first: it holds the host tier registered */
	if (be)
		be->ops->destroy(be);
	ec_cache_free(c);

	/* 4. no_host_register: nothing registered, the reason given */
	be = cuda_be(f->m, f->quarter, true, why, sizeof(why));
	c = NULL;
	if (be && ec_cache_create(f->m, &cp, &c) == 0) {
		ec_cache_expert_source(c, &src);
		ret = run(f->m, be, &src, f->tok, f->got);
		check_logits(f, ret, "no_host_register");
		st = gt_cuda_stats(be);
		EC_CHECK(st.host_tier_bytes == 0 && st.host_tier_refused == 1 &&
			 strstr(st.host_tier_refusal, "no_host_register") &&
			 st.h2d_pageable == st.h2d_bytes && st.h2d_bytes > 0,
			 "no_host_register: %llu registered, %u refused (%s), "
			 "%llu of %llu pageable",
			 (unsigned long long)st.host_tier_bytes,
			 st.host_tier_refused, st.host_tier_refusal,
			 (unsigned long long)st.h2d_pageable,
			 (unsigned long long)st.h2d_bytes);
	} else {
		EC_CHECK(0, "no_host_register backend or cache: %s",
			 be ? ec_error_msg() : why);
	}
	if (be)
		be->ops->destroy(be);
	ec_cache_free(c);
}

/* ------------------------------------------------------------------ */
/* An in-memory source: every expert copied into one arena.            */

struct arena_src {
	const struct ec_model *m;
	uint8_t *arena;
	uint64_t bytes;
	struct ec_expert *views;	/* [n_layer * n_expert] */
	uint32_t n_regions;		/* the arena named this many times */
	uint64_t generation;
	int outstanding;
};

static int ar_get(void *priv, uint32_t l, uint32_t e,
		  const struct ec_expert **out)
{
	struct arena_src *a = priv;

	a->outstanding++;
	*out = &a->views[l * a->m->hp.n_expert + e];
	return 0;
}

static void ar_put(void *priv, uint32_t l, uint32_t e)
{
	((struct arena_src *)priv)->outstanding--;
}

static int ar_regions(void *priv, struct ec_host_region *out, uint32_t max)
{
	struct arena_src *a = priv;

	for (uint32_t i = 0; i < a->n_regions && i < max; i++) {
		out[i].base = a->arena;
		out[i].bytes = a->bytes;
		out[i].generation = a->generation;
	}
	return (int)a->n_regions;
}

static int arena_create(struct arena_src *a, const struct ec_model *m)
{
	uint32_t nk = m->hp.n_layer * m->hp.n_expert;
	uint64_t off = 0;

	memset(a, 0, sizeof(*a));
	a->m = m;
	for (uint32_t l = 0; l < m->hp.n_layer; l++)
		for (uint32_t e = 0; e < m->hp.n_expert; e++)
			for (int p = 0; p < EC_EXPERT_NPARTS; p++)
				a->bytes += (m->layers[l].experts[e].w[p].nbytes
					     + 63) / 64 * 64;
	a->views = calloc(nk, sizeof(*a->views));
	if (!a->views || posix_memalign((void **)&a->arena, 4096, a->bytes))
		return -1;
	for (uint32_t l = 0; l < m->hp.n_layer; l++) {
		for (uint32_t e = 0; e < m->hp.n_expert; e++) {
			const struct ec_expert *x = &m->layers[l].experts[e];
			struct ec_expert *v = &a->views[l * m->hp.n_expert + e];

			*v = *x;
			for (int p = 0; p < EC_EXPERT_NPARTS; p++) {
				memcpy(a->arena + off, x->w[p].data,
				       x->w[p].nbytes);
				v->w[p].data = a->arena + off;
				off += (x->w[p].nbytes + 63) / 64 * 64;
			}
		}
	}
	return 0;
}

static void through_arena(struct fixture *f)
{
	struct arena_src a;
	struct ec_expert_source src = { .get = ar_get, .put = ar_put,
					.host_regions = ar_regions,
					.priv = &a };
	struct ec_cuda_stats st;
	struct ec_backend *be;
	char why[512];
	int ret;

	if (arena_create(&a, f->m) < 0) {
		EC_CHECK(0, "arena: out of memory");
		goto free;
	}
	be = cuda_be(f->m, f->quarter, false, why, sizeof(why));
	EC_CHECK(be, "cuda backend: %s", why);
	if (!be)
		goto free;

	/* the same range twice: CUDA refuses the second, copies still DMA */
	a.n_regions = 2;
	a.generation = 1;
	ret = run(f->m, be, &src, f->tok, f->got);
	check_logits(f, ret, "arena named twice");
	st = gt_cuda_stats(be);
	EC_CHECK(st.host_tier_bytes == a.bytes && st.host_tier_regions == 1 &&
		 st.host_tier_refused == 1 && st.host_tier_refusal[0] &&
		 st.h2d_bytes > 0 && st.h2d_pageable == 0 &&
		 a.outstanding == 0,
		 "a refused region: %llu of %llu bytes registered, %u refused "
		 "(%s), %llu pageable, %d host copies held",
		 (unsigned long long)st.host_tier_bytes,
		 (unsigned long long)a.bytes, st.host_tier_refused,
		 st.host_tier_refusal, (unsigned long long)st.h2d_pageable,
		 a.outstanding);
	printf("refused region noted: %s\n", st.host_tier_refusal);

	/* the same address, another generation: registered anew */
	a.n_regions = 1;
	a.generation = 2;
	ec_backend_cuda_reset_stats(be);
	ret = run(f->m, be, &src, f->tok, f->got);
	check_logits(f, ret, "arena, new generation");
	st = gt_cuda_stats(be);
	EC_CHECK(st.host_tier_registrations == 2 &&
		 st.host_tier_bytes == a.bytes && st.host_tier_refused == 0 &&
		 !st.host_tier_refusal[0] && st.h2d_pageable == 0,
		 "new generation: %u registrations, %llu bytes, %u refused "
		 "(%s), %llu pageable", st.host_tier_registrations,
		 (unsigned long long)st.host_tier_bytes, st.host_tier_refused,
		 st.host_tier_refusal, (unsigned long long)st.h2d_pageable);
	be->ops->destroy(be);
free:
	free(a.views);
	free(a.arena);
}

int main(void)
{
	const char *dir = fx_mkdir("cuda-host-tier");
	struct synth_spec s = { .n_layer = 3, .n_embd = 256, .n_head = 4,
				.n_head_kv = 2, .head_dim = 64,
				.n_expert = N_EXP, .n_used = TOPK, .n_ff = 256,
				.n_vocab = 512, .t_embd = EC_Q8_0,
				.t_attn = EC_Q8_0, .t_out = EC_Q8_0,
				.t_gate_up = EC_Q8_0, .t_down = EC_Q8_0,
				.seed = 31 };
	struct fixture f = { 0 };
	struct gt_rng r = { 17 };
	struct ec_backend *full = NULL;
	char path[512], why[512];
	uint64_t min;
	int ret;

	snprintf(path, sizeof(path), "%s/q8.gguf", dir);
	if (synth_write(path, &s) != 0 || ec_model_open(path, &f.m) < 0) {
		EC_CHECK(0, "%s: %s", path, ec_error_msg());
		goto out;
	}
	for (int i = 0; i < N_PROMPT + N_DEC; i++)
		f.tok[i] = (int32_t)(gt_next(&r) % s.n_vocab);
	f.n_logits = (size_t)(N_PROMPT + N_DEC) * f.m->hp.n_vocab;
	f.ref = malloc(f.n_logits * sizeof(float));
	f.got = malloc(f.n_logits * sizeof(float));
	f.quarter = ec_model_total_expert_bytes(f.m) / 4;
	min = (TOPK + 1) * (ec_model_expert_bytes(f.m, 0, 0) + 3 * 256);
	if (f.quarter < min)
		f.quarter = min;
	full = cuda_be(f.m, 0, false, why, sizeof(why));
	if (!full) {
		if (gt_require_gpu())
			EC_CHECK(0, "no CUDA backend: %s", why);
		else
			EC_SKIP("expert copies from the host tier on CUDA: %s",
				why);
		goto out;
	}
	ret = run(f.m, full, NULL, f.tok, f.ref);
	full->ops->destroy(full);
	EC_CHECK(ret == 0, "full residency: %s", ec_error_msg());
	if (ret < 0)
		goto out;
	through_cache(&f, path);
	through_arena(&f);
out:
	ec_model_close(f.m);
	free(f.ref);
	free(f.got);
	unlink(path);
	fx_cleanup();
	return ec_test_done();
}
