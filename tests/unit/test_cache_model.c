// SPDX-License-Identifier: MIT
/*
 * The expert cache on real GGUF models (the tiny fixture, plus the bundled
 * model when one is built): every expert's slot bytes equal the file's
 * (memcmp and checksum), and greedy decoding through a cache of 25% of the
 * expert bytes gives bit-identical logits and the same tokens as with
 * every expert resident.
 */
#define _GNU_SOURCE
#include <dirent.h>
#include <stdlib.h>
#include <string.h>

#include "ec_backend.h"
#include "ec_error.h"
#include "ec_infer.h"
#include "ec_storage.h"
#include "ec_test.h"
#include "storage_fixture.h"

#define N_DECODE 12

static void check_slot_bytes(const struct ec_model *m, const char *path)
{
	struct ec_cache_params p = { .n_slots = UINT32_MAX };
	struct ec_cache *c = NULL;
	uint32_t l, e, bad = 0, n = 0;
	int q;

	if (ec_cache_create(m, &p, &c) < 0) {
		EC_CHECK(0, "%s: cache: %s", path, ec_error_msg());
		return;
	}
	for (l = 0; l < m->hp.n_layer; l++) {
		for (e = 0; e < m->hp.n_expert; e++) {
			const struct ec_expert *ref = &m->layers[l].experts[e];
			const struct ec_expert *x;

			if (ec_cache_get(c, l, e, &x) < 0) {
				bad++;
				continue;
			}
			for (q = 0; q < EC_EXPERT_NPARTS; q++) {
				uint64_t nb = ref->w[q].nbytes;

				if (x->w[q].data == ref->w[q].data ||
				    memcmp(x->w[q].data, ref->w[q].data, nb) ||
				    fx_fnv(x->w[q].data, nb) !=
					    fx_fnv(ref->w[q].data, nb))
					bad++;
			}
			ec_cache_put(c, l, e);
			n++;
		}
	}
	EC_CHECK(bad == 0 && n == m->hp.n_layer * m->hp.n_expert,
		 "%s: %u experts, %u with slot bytes != file bytes", path, n,
		 bad);
	ec_cache_free(c);
}

static int argmax(const float *v, uint32_t n)
{
	uint32_t i, best = 0;

	for (i = 1; i < n; i++)
		if (v[i] > v[best])
			best = i;
	return (int)best;
}

/* Greedy decode; logits (N_DECODE + 1, n_vocab), tokens [N_DECODE]. */
static int decode(const struct ec_model *m, struct ec_backend *be,
		  const struct ec_expert_source *src, float *logits,
		  int32_t *tokens)
{
	struct ec_ctx_params cp = { .n_ctx = 64 };
	uint32_t V = m->hp.n_vocab, i;
	int32_t prompt[3] = { 1, 2, 3 };
	struct ec_ctx *ctx = NULL;
	int ret;

	for (i = 0; i < 3; i++)
		prompt[i] %= (int32_t)V;
	ret = ec_ctx_create(m, be, &cp, &ctx);
	if (ret < 0)
		return ret;
	ec_ctx_set_expert_source(ctx, src);
	ret = ec_ctx_eval(ctx, prompt, 3, logits, 0);
	for (i = 0; ret == 0 && i < N_DECODE; i++) {
		tokens[i] = argmax(logits + (size_t)i * V, V);
		ret = ec_ctx_eval(ctx, &tokens[i], 1,
				  logits + (size_t)(i + 1) * V, 0);
	}
	ec_ctx_free(ctx);
	return ret;
}

static void check_generation(const struct ec_model *m, const char *path)
{
	uint64_t total = ec_model_total_expert_bytes(m), budget;
	struct ec_cache_params p = { 0 };
	struct ec_expert_source src;
	struct ec_cache_stats st;
	struct ec_backend *be = NULL;
	struct ec_cache *c = NULL;
	size_t n = (size_t)(N_DECODE + 1) * m->hp.n_vocab;
	float *ref = calloc(n, sizeof(float)), *got = calloc(n, sizeof(float));
	int32_t tref[N_DECODE], tgot[N_DECODE];
	int ret;

	ec_parse_budget("25%", total, &budget);
	p.ram_budget = budget;
	if (!ref || !got || ec_backend_cpu_create(1, &be) < 0) {
		EC_CHECK(0, "setup");
		goto out;
	}
	ret = decode(m, be, NULL, ref, tref);
	if (ret < 0) {
		EC_SKIP("%s: the forward pass cannot run it: %s", path,
			ec_error_msg());
		goto out;
	}
	ret = ec_cache_create(m, &p, &c);
	if (ret < 0 && ret == -EC_EINVAL) {
		/* 25% is less than one expert slot (tiny models): 1 slot */
		p.n_slots = 1;
		ret = ec_cache_create(m, &p, &c);
	}
	EC_CHECK(ret == 0, "%s: cache at 25%%: %s", path, ec_error_msg());
	if (ret < 0)
		goto out;
	ec_cache_expert_source(c, &src);
	ret = decode(m, be, &src, got, tgot);
	EC_CHECK(ret == 0, "%s: decode through the cache: %s", path,
		 ec_error_msg());
	ec_cache_get_stats(c, &st);
	EC_CHECK(ret == 0 && !memcmp(tref, tgot, sizeof(tref)) &&
		 !memcmp(ref, got, n * sizeof(float)),
		 "%s: %u of %u slots (%llu misses, %llu evictions): same "
		 "tokens, identical logits", path, st.n_slots,
		 m->hp.n_layer * m->hp.n_expert,
		 (unsigned long long)st.misses,
		 (unsigned long long)st.evictions);
	EC_CHECK(st.n_slots < m->hp.n_layer * m->hp.n_expert &&
		 st.evictions > 0, "%s: the cache really evicted", path);
	printf("%s: %u of %u experts fit the 25%% budget; %d tokens through "
	       "%llu misses and %llu evictions, logits bit-identical\n",
	       path, st.n_slots, m->hp.n_layer * m->hp.n_expert, N_DECODE,
	       (unsigned long long)st.misses,
	       (unsigned long long)st.evictions);
out:
	ec_cache_free(c);
	if (be)
		be->ops->destroy(be);
	free(ref);
	free(got);
}

static void run_model(const char *path)
{
	struct ec_model *m = NULL;

	if (ec_model_open(path, &m) < 0) {
		EC_CHECK(0, "%s: %s", path, ec_error_msg());
		return;
	}
	check_slot_bytes(m, path);
	check_generation(m, path);
	ec_model_close(m);
}

int main(void)
{
	const char *fixture = "tests/fuzz/corpus/gguf/tiny_qwen3moe.gguf";
	const char *env = getenv("EXPERTCACHE_MODEL");
	struct dirent *de;
	DIR *d;
	int n = 0;

	if (!access(fixture, R_OK)) {
		run_model(fixture);
		n++;
	}
	if (env && *env) {
		run_model(env);
		n++;
	} else if ((d = opendir("models"))) {
		while ((de = readdir(d))) {
			size_t len = strlen(de->d_name);
			char path[600];

			if (len < 6 || strcmp(de->d_name + len - 5, ".gguf"))
				continue;
			snprintf(path, sizeof(path), "models/%s", de->d_name);
			run_model(path);
			n++;
		}
		closedir(d);
	}
	if (!n)
		EC_SKIP("no GGUF model found (fixture or models/*.gguf)");
	return ec_test_done();
}
