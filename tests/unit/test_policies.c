// SPDX-License-Identifier: MIT
/*
 * Replacement policies in the replay simulator: exact hit counts on
 * hand-made traces, Belady >= every policy on random traces and equal to
 * a brute-force optimum on tiny ones; trace JSONL reading/writing with
 * errors naming line and field; profiles and greedy plans.
 */
#define _GNU_SOURCE
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "ec_error.h"
#include "ec_storage.h"
#include "ec_test.h"
#include "storage_fixture.h"

static const char *dir;

/* One expert per token, one layer: "AAAABCBC" style, letters = experts. */
static struct ec_trace *trace_of(const char *seq, const char *name)
{
	char path[300];
	struct ec_trace *t = NULL;
	FILE *f;
	int i;

	snprintf(path, sizeof(path), "%s/%s.jsonl", dir, name);
	f = fopen(path, "w");
	if (!f)
		return NULL;
	for (i = 0; seq[i]; i++)
		fprintf(f, "{\"token_idx\": %d, \"layer\": 0, \"experts\": "
			"[%d]}\n", i, seq[i] - 'A');
	fclose(f);
	if (ec_trace_load(path, &t) < 0)
		fprintf(stderr, "%s\n", ec_error_msg());
	return t;
}

static uint64_t sim_hits(const struct ec_trace *t, const char *policy,
			 uint32_t k, uint64_t warmup, const uint32_t *pinned,
			 uint32_t n_pinned, uint64_t *misses)
{
	struct ec_sim_params p = { .slots_per_layer = k,
				   .warmup_tokens = warmup,
				   .pinned = pinned, .n_pinned = n_pinned };
	struct ec_sim_result r;
	uint64_t h;

	if (ec_sim_run(t, ec_policy_find(policy), &p, &r) < 0) {
		fprintf(stderr, "sim: %s\n", ec_error_msg());
		return UINT64_MAX;
	}
	h = r.hits;
	if (misses)
		*misses = r.misses;
	ec_sim_result_free(&r);
	return h;
}

static void test_known(void)
{
	struct ec_trace *t1 = trace_of("ABCABCABC", "t1");
	struct ec_trace *t2 = trace_of("AAAABCBC", "t2");
	struct ec_trace *t3 = trace_of("AABCADA", "t3");
	uint32_t pin_a = 0;
	uint64_t m = 0;

	EC_CHECK(t1 && t2 && t3, "traces load");
	if (!t1 || !t2 || !t3)
		goto out;
	EC_CHECK(t2->n_tokens == 8 && t2->n_layer == 1 && t2->n_expert == 3,
		 "trace shape");
	/* cyclic over capacity: LRU and LFU never hit, MIN+bypass keeps 2 */
	EC_CHECK(sim_hits(t1, "lru", 2, 0, NULL, 0, &m) == 0 && m == 9,
		 "t1 lru 0/9");
	EC_CHECK(sim_hits(t1, "lfu", 2, 0, NULL, 0, NULL) == 0, "t1 lfu 0/9");
	EC_CHECK(sim_hits(t1, "belady", 2, 0, NULL, 0, NULL) == 4,
		 "t1 belady 4/9 (got %llu)", (unsigned long long)sim_hits(
			 t1, "belady", 2, 0, NULL, 0, NULL));
	/* hot A then a B/C loop: LRU adapts, LFU-DA lags, Belady 5 */
	EC_CHECK(sim_hits(t2, "lru", 2, 0, NULL, 0, NULL) == 5, "t2 lru 5/8");
	EC_CHECK(sim_hits(t2, "lfu", 2, 0, NULL, 0, NULL) == 3, "t2 lfu 3/8");
	EC_CHECK(sim_hits(t2, "belady", 2, 0, NULL, 0, NULL) == 5,
		 "t2 belady 5/8");
	EC_CHECK(sim_hits(t2, "static", 2, 0, &pin_a, 1, NULL) == 3,
		 "t2 static{A} 3/8");
	/* warm-up: only B C B C counted */
	EC_CHECK(sim_hits(t2, "lru", 2, 4, NULL, 0, &m) == 2 && m == 2,
		 "t2 lru after 4 warm-up tokens 2/4");
	/* frequency pays off: LFU 3, LRU 2, Belady 3 */
	EC_CHECK(sim_hits(t3, "lru", 2, 0, NULL, 0, NULL) == 2, "t3 lru 2/7");
	EC_CHECK(sim_hits(t3, "lfu", 2, 0, NULL, 0, NULL) == 3, "t3 lfu 3/7");
	EC_CHECK(sim_hits(t3, "belady", 2, 0, NULL, 0, NULL) == 3,
		 "t3 belady 3/7");
	EC_CHECK(sim_hits(t3, "static", 1, 0, &pin_a, 1, NULL) == 3,
		 "t3 static{A}, 1 slot: 3/7");
out:
	ec_trace_free(t1);
	ec_trace_free(t2);
	ec_trace_free(t3);
}

/* Two layers, several experts per line, per-layer vs global capacity. */
static void test_layers(void)
{
	char path[300];
	struct ec_sim_params p = { .slots_per_layer = 1 };
	struct ec_sim_result r;
	struct ec_trace *t = NULL;
	FILE *f;
	int i;

	snprintf(path, sizeof(path), "%s/layers.jsonl", dir);
	f = fopen(path, "w");
	for (i = 0; i < 4; i++) {
		fprintf(f, "{\"problem_id\": 3, \"token_idx\": %d, \"layer\": "
			"0, \"experts\": [%d], \"gating_probs\": [0.5]}\n", i,
			i % 2);
		fprintf(f, "{\"problem_id\": 3, \"token_idx\": %d, \"layer\": "
			"1, \"experts\": [2, 3]}\n\n", i);
	}
	fclose(f);
	EC_CHECK(ec_trace_load(path, &t) == 0, "load: %s", ec_error_msg());
	if (!t)
		return;
	EC_CHECK(t->n_tokens == 4 && t->n_layer == 2 && t->n_expert == 4 &&
		 t->n_access == 12 && t->probs[0] == 0.5f &&
		 isnan(t->probs[1]), "shape, probs");
	/* layer 0 alternates over 1 slot; layer 1 thrashes 2 over 1 slot */
	EC_CHECK(ec_sim_run(t, &ec_policy_lru, &p, &r) == 0 && r.hits == 0 &&
		 r.layer_misses[0] == 4 && r.layer_misses[1] == 8,
		 "1 slot per layer: no hits");
	ec_sim_result_free(&r);
	p.slots_per_layer = 2;
	EC_CHECK(ec_sim_run(t, &ec_policy_lru, &p, &r) == 0 &&
		 r.layer_hits[0] == 2 && r.layer_hits[1] == 6,
		 "2 per layer: compulsory misses only");
	ec_sim_result_free(&r);
	p.slots_per_layer = 0;
	p.capacity = 4;
	EC_CHECK(ec_sim_run(t, &ec_policy_lfu, &p, &r) == 0 && r.hits == 8 &&
		 r.misses == 4, "global 4 slots: 8 hits");
	ec_sim_result_free(&r);
	p.capacity = 0;
	EC_CHECK(ec_sim_run(t, &ec_policy_lru, &p, &r) == -EC_EINVAL,
		 "capacity 0 refused");
	ec_trace_free(t);
}

/* xorshift */
static uint64_t rng = 88172645463325252ull;
static uint32_t rnd(uint32_t n)
{
	rng ^= rng << 13;
	rng ^= rng >> 7;
	rng ^= rng << 17;
	return (uint32_t)(rng % n);
}

/* In-memory random trace with skewed, phase-shifting popularity. */
static struct ec_trace *random_trace(uint32_t nl, uint32_t ne, uint32_t k,
				     uint32_t tokens)
{
	struct ec_trace *t = calloc(1, sizeof(*t));
	uint32_t tok, l, j, shift = 0;

	t->rec = calloc((size_t)tokens * nl, sizeof(*t->rec));
	t->experts = calloc((size_t)tokens * nl * k, sizeof(*t->experts));
	t->probs = calloc((size_t)tokens * nl * k, sizeof(*t->probs));
	for (tok = 0; tok < tokens; tok++) {
		if (rnd(100) == 0)
			shift = rnd(ne);
		for (l = 0; l < nl; l++) {
			struct ec_trace_rec *r = &t->rec[t->n_rec++];

			r->token_idx = tok;
			r->layer = l;
			r->n = k;
			r->first = t->n_access;
			r->token_seq = tok;
			for (j = 0; j < k; j++) {
				/* min of two uniforms: skewed to low ids */
				uint32_t a = rnd(ne), b = rnd(ne);
				uint32_t e = ((a < b ? a : b) + shift) % ne;

				t->experts[t->n_access++] = e;
			}
		}
	}
	t->n_tokens = tokens;
	t->n_layer = nl;
	t->n_expert = ne;
	return t;
}

static void test_belady_dominates(void)
{
	int trial, bad = 0, runs = 0;

	for (trial = 0; trial < 40; trial++) {
		uint32_t nl = 1 + rnd(3), ne = 4 + rnd(29), k = 1 + rnd(4);
		struct ec_trace *t = random_trace(nl, ne, k, 100 + rnd(900));
		struct ec_sim_params p = { 0 };
		struct ec_profile *prof = NULL;
		struct ec_sim_result r;
		uint64_t best, other;
		uint32_t *keys = NULL, n_keys = 0;
		const char *names[] = { "lru", "lfu", "static" };
		int i;

		if (trial % 2)
			p.slots_per_layer = 1 + rnd(ne);
		else
			p.capacity = 1 + rnd(nl * ne);
		ec_profile_from_trace(t, 0, &prof);
		ec_profile_top_keys(prof, p.slots_per_layer, p.capacity,
				    &keys, &n_keys);
		p.pinned = keys;
		p.n_pinned = n_keys;
		if (ec_sim_run(t, &ec_policy_belady, &p, &r) < 0) {
			bad++;
			continue;
		}
		best = r.hits;
		ec_sim_result_free(&r);
		for (i = 0; i < 3; i++) {
			if (ec_sim_run(t, ec_policy_find(names[i]), &p, &r) < 0)
				bad++;
			other = r.hits;
			ec_sim_result_free(&r);
			runs++;
			if (other > best) {
				bad++;
				fprintf(stderr, "trial %d: %s %llu > belady "
					"%llu\n", trial, names[i],
					(unsigned long long)other,
					(unsigned long long)best);
			}
		}
		free(keys);
		ec_profile_free(prof);
		ec_trace_free(t);
	}
	EC_CHECK(bad == 0 && runs == 120, "belady >= lru/lfu/static on 40 "
		 "random traces (%d violations)", bad);
}

/* Exhaustive optimum: every miss may bypass or evict any resident. */
static uint32_t brute(const uint32_t *seq, uint32_t n, uint32_t i,
		      uint32_t cap, uint32_t set)
{
	uint32_t best, k, hits;

	if (i == n)
		return 0;
	if (set & (1u << seq[i]))
		return 1 + brute(seq, n, i + 1, cap, set);
	best = brute(seq, n, i + 1, cap, set);	/* bypass */
	if ((uint32_t)__builtin_popcount(set) < cap) {
		hits = brute(seq, n, i + 1, cap, set | (1u << seq[i]));
		return hits > best ? hits : best;
	}
	for (k = 0; k < 32; k++) {
		if (!(set & (1u << k)))
			continue;
		hits = brute(seq, n, i + 1, cap,
			     (set & ~(1u << k)) | (1u << seq[i]));
		if (hits > best)
			best = hits;
	}
	return best;
}

static void test_belady_optimal(void)
{
	int trial, bad = 0;

	for (trial = 0; trial < 200; trial++) {
		uint32_t n = 4 + rnd(9), ne = 2 + rnd(4), cap = 1 + rnd(3);
		struct ec_trace *t = random_trace(1, ne, 1, n);
		struct ec_sim_params p = { .slots_per_layer = cap };
		struct ec_sim_result r;
		uint32_t opt;

		opt = brute(t->experts, n, 0, cap, 0);
		if (ec_sim_run(t, &ec_policy_belady, &p, &r) < 0 ||
		    r.hits != opt) {
			bad++;
			fprintf(stderr, "trial %d: belady %llu, optimum %u\n",
				trial, (unsigned long long)r.hits, opt);
		}
		ec_sim_result_free(&r);
		ec_trace_free(t);
	}
	EC_CHECK(bad == 0, "belady equals the exhaustive optimum on 200 tiny "
		 "traces (%d differ)", bad);
}

static void expect_bad(const char *line, const char *field)
{
	char path[300];
	struct ec_trace *t = NULL;
	FILE *f;
	int ret;

	snprintf(path, sizeof(path), "%s/bad.jsonl", dir);
	f = fopen(path, "w");
	fprintf(f, "{\"token_idx\": 0, \"layer\": 0, \"experts\": [1]}\n%s\n",
		line);
	fclose(f);
	ret = ec_trace_load(path, &t);
	EC_CHECK(ret == -EC_EFORMAT && strstr(ec_error_msg(), "bad.jsonl:2:")
		 && strstr(ec_error_msg(), field) && !t,
		 "'%s' rejected naming line 2 and %s: %s", line, field,
		 ec_error_msg());
}

static void test_trace_io(void)
{
	char path[300];
	struct ec_trace_writer *w = NULL;
	struct ec_trace *t = NULL;
	int32_t ex[2] = { 5, 1 };
	float pr[2] = { 0.75f, 0.25f };

	expect_bad("{\"token_idx\": 1, \"experts\": [1]}", "'layer'");
	expect_bad("{\"token_idx\": 1, \"layer\": 0, \"experts\": 3}",
		   "'experts'");
	expect_bad("{\"token_idx\": 1, \"layer\": 0, \"experts\": [-1]}",
		   "'experts'[0]");
	expect_bad("{\"token_idx\": 1, \"layer\": 0, \"experts\": [1], "
		   "\"gating_probs\": [0.1, 0.2]}", "'gating_probs'");
	expect_bad("{\"layer\": 0, \"experts\": [1]}", "'token_idx'");
	expect_bad("not json", "bad.jsonl");
	expect_bad("[1, 2]", "object");

	snprintf(path, sizeof(path), "%s/written.jsonl", dir);
	EC_CHECK(ec_trace_writer_open(path, &w) == 0, "writer");
	if (!w)
		return;
	ec_trace_write(w, 9, 0, 0, ex, pr, 2);
	ec_trace_write(w, 9, 0, 1, ex, NULL, 1);
	ec_trace_write(w, 9, 1, 0, ex + 1, pr + 1, 1);
	EC_CHECK(ec_trace_writer_close(w) == 0, "close");
	EC_CHECK(ec_trace_load(path, &t) == 0, "read back: %s",
		 ec_error_msg());
	if (!t)
		return;
	EC_CHECK(t->n_rec == 3 && t->n_tokens == 2 && t->n_access == 4 &&
		 t->rec[0].problem_id == 9 && t->rec[1].layer == 1 &&
		 t->experts[0] == 5 && t->experts[1] == 1 &&
		 t->probs[0] == 0.75f && isnan(t->probs[2]) &&
		 t->rec[2].token_seq == 1, "round trip");
	ec_trace_free(t);
	EC_CHECK(ec_trace_load("/nonexistent/t.jsonl", &t) == -ENOENT,
		 "missing file");
}

static void test_profile_plan(void)
{
	struct ec_trace *t = trace_of("BBBBBCCCCDA", "prof");
	struct ec_profile *p = NULL, *q = NULL;
	struct ec_plan *plan = NULL, *back = NULL;
	uint64_t bytes[4] = { 100, 10, 10, 10 };
	uint32_t *keys = NULL, n = 0;
	char path[300];

	EC_CHECK(t && ec_profile_from_trace(t, 0, &p) == 0, "profile");
	if (!p)
		goto out;
	/* counts: A 1, B 5, C 4, D 1 */
	EC_CHECK(p->count[0] == 1 && p->count[1] == 5 && p->count[2] == 4 &&
		 p->count[3] == 1 && p->last_seen[0] == 10 &&
		 p->last_seen[1] == 4 && p->n_access == 11, "counts, recency");
	snprintf(path, sizeof(path), "%s/p.json", dir);
	EC_CHECK(ec_profile_save(p, path) == 0 &&
		 ec_profile_load(path, &q) == 0 && q->n_layer == 1 &&
		 q->n_expert == 4 && !memcmp(q->count, p->count,
					     4 * sizeof(uint64_t)) &&
		 !memcmp(q->last_seen, p->last_seen, 4 * sizeof(int64_t)),
		 "profile round trip: %s", ec_error_msg());
	/* top: B, C, then A (seen last) before D */
	EC_CHECK(ec_profile_top_keys(p, 0, 3, &keys, &n) == 0 && n == 3 &&
		 keys[0] == 1 && keys[1] == 2 && keys[2] == 0, "top keys");
	/* density: B .5, C .4, D .1, A .01; B fills VRAM, the rest RAM */
	EC_CHECK(ec_plan_build(p, bytes, 15, 120, &plan) == 0, "plan");
	if (!plan)
		goto out;
	EC_CHECK(plan->n_vram == 1 && plan->vram[0] == 1 &&
		 plan->n_ram == 3 && plan->ram[0] == 2 && plan->ram[1] == 3 &&
		 plan->ram[2] == 0 && plan->vram_bytes == 10 &&
		 plan->ram_bytes == 120,
		 "greedy placement (vram %u, ram %u, %llu bytes)",
		 plan->n_vram, plan->n_ram,
		 (unsigned long long)plan->ram_bytes);
	EC_CHECK(fabs(plan->vram_share - 5.0 / 11) < 1e-9, "vram share");
	snprintf(path, sizeof(path), "%s/plan.json", dir);
	EC_CHECK(ec_plan_save(plan, path) == 0 &&
		 ec_plan_load(path, &back) == 0 && back->n_vram == 1 &&
		 back->n_ram == 3 && back->ram[2] == 0 &&
		 back->ram_bytes == plan->ram_bytes, "plan round trip: %s",
		 ec_error_msg());
	ec_profile_free(q);
	EC_CHECK(ec_profile_load(path, &q) == -EC_EFORMAT && !q,
		 "a plan is not a profile");
out:
	free(keys);
	ec_plan_free(plan);
	ec_plan_free(back);
	ec_profile_free(p);
	ec_profile_free(q);
	ec_trace_free(t);
}

int main(void)
{
	dir = fx_mkdir("policies");
	test_known();
	test_layers();
	test_belady_dominates();
	test_belady_optimal();
	test_trace_io();
	test_profile_plan();
	fx_cleanup();
	return ec_test_done();
}
