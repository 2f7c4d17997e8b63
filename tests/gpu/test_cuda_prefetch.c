// SPDX-License-Identifier: MIT
/*
 * VRAM prefetch and the copy path of the CUDA backend's expert slots.
 *
 * Op level (an in-memory model, predictions given as crafted router
 * logits): a prefetch never evicts an expert the current call uses (the
 * budget is full of pinned experts: nothing is placed), places the nearer
 * layer's picks first whatever the call order and never evicts them for a
 * farther layer's, turns into LOADING hits (no second copy, no extra get)
 * that give the same bits as full residency; counters add up (issued =
 * used + wasted + pending, gets = misses + issued); one copy per expert
 * when its parts sit as in a slot, three otherwise.
 *
 * Forward pass (a synthetic GGUF): logits of every decode step and a
 * greedy generation bit-identical with prefetch on (1 and 2 layers ahead)
 * and off at a budget of 25%, and on at one layer's top-k (no slot for a
 * prefetch ever: no stall, no error), against full residency; the expert
 * source balanced after every step; picks whose host copy is not
 * resident skipped.
 */
#include <unistd.h>

#include "synth_model.h"

#define N_EMBD 256
#define N_FF 256
#define N_EXP 16
#define TOPK 4

/* ------------------------------------------------------------------ */
/* A counting expert source over an in-memory or file model.          */

struct psrc {
	const struct ec_model *m;
	int outstanding;
	uint64_t gets;
	int split;		/* hand out each part in its own buffer */
	int odd_absent;		/* resident() says no for odd experts */
	void *parts[3];
	struct ec_expert view;
};

static int ps_get(void *priv, uint32_t l, uint32_t e,
		  const struct ec_expert **out)
{
	struct psrc *c = priv;
	const struct ec_expert *x = &c->m->layers[l].experts[e];

	c->gets++;
	c->outstanding++;
	if (!c->split) {
		*out = x;
		return 0;
	}
	/*
	 * Pageable buffers: a copy from them is staged before
	 * cudaMemcpyAsync returns, so the next get may free them.
	 */
	c->view = *x;
	for (int p = 0; p < 3; p++) {
		free(c->parts[p]);
		c->parts[p] = malloc(x->w[p].nbytes + 64);
		memcpy((uint8_t *)c->parts[p] + 16 * (p + 1), x->w[p].data,
		       x->w[p].nbytes);
		c->view.w[p].data = (uint8_t *)c->parts[p] + 16 * (p + 1);
	}
	*out = &c->view;
	return 0;
}

static void ps_put(void *priv, uint32_t l, uint32_t e)
{
	((struct psrc *)priv)->outstanding--;
}

static int ps_resident(void *priv, uint32_t l, uint32_t e)
{
	return !(((struct psrc *)priv)->odd_absent && (e & 1));
}

static struct ec_expert_source psource(struct psrc *c)
{
	struct ec_expert_source s = { .get = ps_get, .put = ps_put,
				      .resident = ps_resident, .priv = c };

	return s;
}

static struct ec_backend *cuda_be(const struct ec_model *m, uint64_t budget,
				  int32_t prefetch, char *why, size_t len)
{
	struct ec_backend_cuda_params p = { .model = m, .vram_budget = budget,
					    .vram_prefetch = prefetch };

	return gt_cuda_with(&p, why, len);
}


static int consistent(const struct ec_cuda_stats *st)
{
	return st->prefetch_issued == st->prefetch_used +
					      st->prefetch_wasted +
					      st->prefetch_pending;
}

/* ------------------------------------------------------------------ */
/* Op level.                                                           */

struct oplevel {
	struct gt_moe g;
	struct ec_backend *full, *be;
	struct psrc cf, cs;
	float *x, *a, *b;		/* host (N_EMBD) */
	float *fx, *fy, *bx, *by;	/* device, full's and be's */
	float *dlog;			/* be's (N_EXP) router logits */
};

/* Router logits whose top picks are ids[0..n), best first. */
static void predict(struct oplevel *o, uint32_t layer, const int32_t *ids,
		    uint32_t n)
{
	float lg[N_EXP];
	int ret;

	for (uint32_t e = 0; e < N_EXP; e++)
		lg[e] = -1.0f - 0.01f * (float)e;
	for (uint32_t i = 0; i < n; i++)
		lg[ids[i]] = 10.0f - (float)i;
	o->be->ops->from_host(o->be, o->dlog, lg, N_EXP);
	ret = o->be->ops->prefetch(o->be, layer, o->dlog, 1, N_EXP, n);
	EC_CHECK(ret == 0, "prefetch(layer %u): %d (%s)", layer, ret,
		 ec_error_msg());
	/* what the layer's routing wait does in the forward pass */
	o->be->ops->sync(o->be);
}

/* One token through `layer` on both backends: identical bits. */
static void step(struct oplevel *o, uint32_t layer, const int32_t *ids,
		 const char *what)
{
	static const float w[TOPK] = { 0.4f, 0.3f, 0.2f, 0.1f };
	struct ec_expert_source sf = psource(&o->cf), ss = psource(&o->cs);
	int r1, r2;

	r1 = o->full->ops->moe_ffn(o->full, o->fy, o->fx, 1, layer, N_EXP,
				   TOPK, ids, w, &sf);
	o->full->ops->to_host(o->full, o->a, o->fy, N_EMBD);
	r2 = o->be->ops->moe_ffn(o->be, o->by, o->bx, 1, layer, N_EXP, TOPK,
				 ids, w, &ss);
	o->be->ops->to_host(o->be, o->b, o->by, N_EMBD);
	EC_CHECK(r1 == 0 && r2 == 0 && !memcmp(o->a, o->b, 4 * N_EMBD),
		 "%s: full %d, prefetching %d (%s), max diff %.3g", what, r1,
		 r2, ec_error_msg(), gt_max_diff(o->a, o->b, N_EMBD));
}

static int op_setup(struct oplevel *o, uint32_t n_slots, int split)
{
	struct gt_rng r = { 4242 };
	char why[512];

	memset(o, 0, sizeof(*o));
	if (gt_moe_create(&o->g, 3, N_EXP, TOPK, N_EMBD, N_FF, EC_Q8_0,
			  EC_Q8_0, 77) < 0)
		return -1;
	o->cf.m = o->cs.m = &o->g.m;
	o->cs.split = split;
	o->full = gt_cuda(&o->g.m, 0, why, sizeof(why));
	/* Q8_0 parts are multiples of 64 bytes: a slot is exactly 3 parts */
	o->be = o->full ? cuda_be(&o->g.m, o->g.expert_bytes * n_slots, 1,
				  why, sizeof(why)) : NULL;
	EC_CHECK(o->full && o->be, "cuda backends: %s", why);
	if (!o->full || !o->be)
		return -1;
	o->x = gt_frand(&r, N_EMBD, 1.0f);
	o->a = malloc(4 * N_EMBD);
	o->b = malloc(4 * N_EMBD);
	o->fx = gt_up(o->full, o->x, N_EMBD);
	o->fy = gt_up(o->full, NULL, N_EMBD);
	o->bx = gt_up(o->be, o->x, N_EMBD);
	o->by = gt_up(o->be, NULL, N_EMBD);
	o->dlog = gt_up(o->be, NULL, N_EXP);
	return o->fx && o->fy && o->bx && o->by && o->dlog ? 0 : -1;
}

/* Sync both (host copies back), check the sources and the counters. */
static void op_balance(struct oplevel *o, const char *what)
{
	struct ec_cuda_stats st;

	o->be->ops->sync(o->be);
	o->full->ops->sync(o->full);
	st = gt_cuda_stats(o->be);
	EC_CHECK(o->cs.outstanding == 0 && o->cf.outstanding == 0 &&
		 st.puts_pending == 0 &&
		 o->cs.gets == st.expert_misses + st.prefetch_issued &&
		 consistent(&st),
		 "%s: %d/%d outstanding, %llu gets, %llu misses + %llu "
		 "issued; issued = %llu used + %llu wasted + %u pending", what,
		 o->cs.outstanding, o->cf.outstanding,
		 (unsigned long long)o->cs.gets,
		 (unsigned long long)st.expert_misses,
		 (unsigned long long)st.prefetch_issued,
		 (unsigned long long)st.prefetch_used,
		 (unsigned long long)st.prefetch_wasted, st.prefetch_pending);
	/* one copy per expert from contiguous parts, else one per part */
	EC_CHECK(st.h2d_copies == (o->cs.split ? 3 : 1) * o->cs.gets,
		 "%s: %llu copies for %llu experts (parts %s)", what,
		 (unsigned long long)st.h2d_copies,
		 (unsigned long long)o->cs.gets,
		 o->cs.split ? "apart" : "contiguous");
}

static void op_teardown(struct oplevel *o)
{
	if (o->full) {
		o->full->ops->free(o->full, o->fx);
		o->full->ops->free(o->full, o->fy);
		o->full->ops->destroy(o->full);
	}
	if (o->be) {
		o->be->ops->free(o->be, o->bx);
		o->be->ops->free(o->be, o->by);
		o->be->ops->free(o->be, o->dlog);
		o->be->ops->destroy(o->be);
	}
	for (int p = 0; p < 3; p++)
		free(o->cs.parts[p]);
	free(o->x);
	free(o->a);
	free(o->b);
	gt_moe_free(&o->g);
}

static void show(const char *what, const struct ec_cuda_stats *st)
{
	printf("%-34s misses %llu hits %llu (loading %llu) evictions %llu "
	       "prefetch issued %llu used %llu wasted %llu pending %u "
	       "skipped %llu copies %llu\n", what,
	       (unsigned long long)st->expert_misses,
	       (unsigned long long)st->expert_hits,
	       (unsigned long long)st->loading_hits,
	       (unsigned long long)st->evictions,
	       (unsigned long long)st->prefetch_issued,
	       (unsigned long long)st->prefetch_used,
	       (unsigned long long)st->prefetch_wasted, st->prefetch_pending,
	       (unsigned long long)st->prefetch_skipped,
	       (unsigned long long)st->h2d_copies);
}

/*
 * k + 1 slots, k of them pinned by the current call: the prediction gets
 * the one free slot and nothing else.  Then k slots (one layer's top-k):
 * nothing at all, no error, no wait.
 */
static void pinned_never_evicted(uint32_t n_slots, int split)
{
	static const int32_t l0[TOPK] = { 0, 1, 2, 3 };
	static const int32_t l1[TOPK] = { 4, 5, 6, 7 };
	uint32_t spare = n_slots - TOPK;
	struct ec_cuda_stats st;
	struct oplevel o;
	char what[64];

	snprintf(what, sizeof(what), "%u slots%s", n_slots,
		 split ? ", parts apart" : "");
	if (op_setup(&o, n_slots, split) < 0)
		goto out;
	step(&o, 0, l0, what);
	predict(&o, 1, l1, TOPK);
	step(&o, 0, l0, what);
	st = gt_cuda_stats(o.be);
	EC_CHECK(st.n_slots == n_slots && st.expert_misses == TOPK &&
		 st.expert_hits == TOPK && st.evictions == 0 &&
		 st.prefetch_issued == spare &&
		 st.prefetch_skipped == TOPK - spare &&
		 st.prefetch_pending == spare,
		 "%s: %u slots, %llu misses, %llu hits, %llu evictions, %llu "
		 "issued, %llu skipped", what, st.n_slots,
		 (unsigned long long)st.expert_misses,
		 (unsigned long long)st.expert_hits,
		 (unsigned long long)st.evictions,
		 (unsigned long long)st.prefetch_issued,
		 (unsigned long long)st.prefetch_skipped);
	step(&o, 1, l1, what);
	st = gt_cuda_stats(o.be);
	show(what, &st);
	EC_CHECK(st.loading_hits == spare && st.prefetch_used == spare &&
		 st.expert_misses == 2 * TOPK - spare && consistent(&st),
		 "%s, layer 1: %llu loading hits, %llu used, %llu misses",
		 what, (unsigned long long)st.loading_hits,
		 (unsigned long long)st.prefetch_used,
		 (unsigned long long)st.expert_misses);
	op_balance(&o, what);
out:
	op_teardown(&o);
}

/*
 * Ten slots: layer 2's experts 8-11 are old, layer 0's 0-3 pinned, two
 * free.  Predictions for layer 2 (12-15) are given before those for layer
 * 1 (4-7); layer 1 still gets all four (the two free slots and two of the
 * old ones), layer 2 the two old slots left, and its last two picks find
 * nothing it may evict (pinned, or predicted for layer 1).
 */
static void nearer_layer_first(void)
{
	static const int32_t l0[TOPK] = { 0, 1, 2, 3 };
	static const int32_t l1[TOPK] = { 4, 5, 6, 7 };
	static const int32_t l2a[TOPK] = { 8, 9, 10, 11 };
	static const int32_t l2b[TOPK] = { 12, 13, 14, 15 };
	struct ec_cuda_stats st;
	struct oplevel o;

	if (op_setup(&o, 10, 0) < 0)
		goto out;
	step(&o, 2, l2a, "10 slots, layer 2");
	step(&o, 0, l0, "10 slots, layer 0");
	predict(&o, 2, l2b, TOPK);
	predict(&o, 1, l1, TOPK);
	step(&o, 0, l0, "10 slots, layer 0 with predictions");
	st = gt_cuda_stats(o.be);
	EC_CHECK(st.expert_misses == 2 * TOPK && st.prefetch_issued == 6 &&
		 st.prefetch_skipped == 2 && st.evictions == 4 &&
		 st.prefetch_pending == 6,
		 "two layers ahead: %llu misses, %llu issued, %llu skipped, "
		 "%llu evictions", (unsigned long long)st.expert_misses,
		 (unsigned long long)st.prefetch_issued,
		 (unsigned long long)st.prefetch_skipped,
		 (unsigned long long)st.evictions);
	step(&o, 1, l1, "10 slots, layer 1");
	st = gt_cuda_stats(o.be);
	EC_CHECK(st.loading_hits == TOPK && st.expert_misses == 2 * TOPK,
		 "layer 1 after its prediction: %llu loading hits, %llu "
		 "misses", (unsigned long long)st.loading_hits,
		 (unsigned long long)st.expert_misses);
	step(&o, 2, l2b, "10 slots, layer 2 again");
	st = gt_cuda_stats(o.be);
	show("10 slots, two layers ahead", &st);
	EC_CHECK(st.loading_hits == TOPK + 2 &&
		 st.expert_misses == 2 * TOPK + 2 && consistent(&st),
		 "layer 2 after its prediction: %llu loading hits, %llu "
		 "misses", (unsigned long long)st.loading_hits,
		 (unsigned long long)st.expert_misses);
	/* a stale prediction (for a layer already past) is dropped */
	predict(&o, 1, l2a, TOPK);
	step(&o, 2, l2b, "10 slots, stale prediction");
	st = gt_cuda_stats(o.be);
	EC_CHECK(st.prefetch_issued == 6 && st.prefetch_skipped == 2 + TOPK,
		 "stale prediction: %llu issued, %llu skipped",
		 (unsigned long long)st.prefetch_issued,
		 (unsigned long long)st.prefetch_skipped);
	op_balance(&o, "10 slots");
out:
	op_teardown(&o);
}

/* ------------------------------------------------------------------ */
/* Forward pass.                                                       */

#define N_PROMPT 8
#define N_DEC 10
#define N_GEN 6

struct result {
	float *logits;		/* (N_DEC, vocab): after each decode step */
	int32_t gen[N_GEN];
	int ok;
};

static void run(const struct ec_model *m, struct ec_backend *be,
		const int32_t *tok, struct psrc *src, struct result *r)
{
	struct ec_ctx_params cp = { .n_ctx = 64, .n_batch = 16 };
	struct ec_expert_source s = psource(src);
	uint32_t V = m->hp.n_vocab;
	float *last = malloc(sizeof(float) * V);
	struct ec_ctx *c = NULL;
	int ret, balanced = 1;

	r->ok = 0;
	r->logits = malloc(sizeof(float) * V * N_DEC);
	ret = ec_ctx_create(m, be, &cp, &c);
	if (ret < 0)
		goto out;
	ec_ctx_set_expert_source(c, &s);
	ret = ec_ctx_eval(c, tok, N_PROMPT, NULL, 0);
	for (uint32_t i = 0; ret >= 0 && i < N_DEC; i++) {
		ret = ec_ctx_eval(c, tok + N_PROMPT + i, 1,
				  r->logits + (size_t)i * V, 0);
		balanced &= src->outstanding == 0;
	}
	ec_ctx_reset(c);
	if (ret >= 0)
		ret = ec_ctx_eval(c, tok, N_PROMPT, last, 0);
	for (uint32_t i = 0; ret >= 0 && i < N_GEN; i++) {
		float best = last[0];

		r->gen[i] = 0;
		for (uint32_t v = 1; v < V; v++)
			if (last[v] > best) {
				best = last[v];
				r->gen[i] = (int32_t)v;
			}
		ret = ec_ctx_eval(c, &r->gen[i], 1, last, 0);
		balanced &= src->outstanding == 0;
	}
	EC_CHECK(balanced, "expert source unbalanced after a step");
	r->ok = ret >= 0;
out:
	if (ret < 0)
		EC_CHECK(0, "forward pass: %s", ec_error_msg());
	ec_ctx_free(c);
	free(last);
}

static void forward_case(const struct ec_model *m, const int32_t *tok,
			 const struct result *ref, uint64_t budget,
			 const char *bname, int32_t pf, int odd_absent)
{
	struct psrc src = { .m = m, .odd_absent = odd_absent };
	struct result r = { 0 };
	struct ec_cuda_stats st;
	struct ec_backend *be;
	char why[512], what[96];

	snprintf(what, sizeof(what), "budget %s, prefetch %s%s", bname,
		 pf < 0 ? "off" : pf == 1 ? "1" : "2",
		 odd_absent ? ", odd experts not host-resident" : "");
	be = cuda_be(m, budget, pf, why, sizeof(why));
	EC_CHECK(be != NULL, "%s: %s", what, why);
	if (!be)
		return;
	run(m, be, tok, &src, &r);
	st = gt_cuda_stats(be);
	show(what, &st);
	EC_CHECK(r.ok && !memcmp(r.logits, ref->logits,
				 sizeof(float) * m->hp.n_vocab * N_DEC) &&
		 !memcmp(r.gen, ref->gen, sizeof(r.gen)),
		 "%s: differs from full residency (max diff %.3g)", what,
		 r.ok ? gt_max_diff(r.logits, ref->logits,
				    (size_t)m->hp.n_vocab * N_DEC) : -1.0);
	EC_CHECK(consistent(&st) && src.gets == st.expert_misses +
						      st.prefetch_issued &&
		 st.loading_hits == st.prefetch_used && st.puts_pending == 0,
		 "%s: issued %llu = used %llu + wasted %llu + pending %u; "
		 "gets %llu = misses %llu + issued", what,
		 (unsigned long long)st.prefetch_issued,
		 (unsigned long long)st.prefetch_used,
		 (unsigned long long)st.prefetch_wasted, st.prefetch_pending,
		 (unsigned long long)src.gets,
		 (unsigned long long)st.expert_misses);
	EC_CHECK(st.prefetch_depth == (uint32_t)(pf < 0 ? 0 : pf),
		 "%s: depth %u", what, st.prefetch_depth);
	/* prefetching actually happened where there was room for it */
	if (pf > 0 && strcmp(bname, "top-k"))
		EC_CHECK(st.prefetch_issued > 0 && st.prefetch_used > 0 &&
			 (!odd_absent || st.prefetch_skipped > 0),
			 "%s: %llu issued, %llu used, %llu skipped", what,
			 (unsigned long long)st.prefetch_issued,
			 (unsigned long long)st.prefetch_used,
			 (unsigned long long)st.prefetch_skipped);
	if (pf < 0)
		EC_CHECK(st.prefetch_issued == 0 && st.loading_hits == 0,
			 "%s: prefetched while off", what);
	free(r.logits);
	be->ops->destroy(be);
}

static void forward(const char *dir, enum ec_dtype gu, enum ec_dtype down)
{
	struct synth_spec s = { .n_layer = 4, .n_embd = 256, .n_head = 4,
				.n_head_kv = 2, .head_dim = 64,
				.n_expert = N_EXP, .n_used = TOPK,
				.n_ff = 256, .n_vocab = 512, .t_embd = EC_Q8_0,
				.t_attn = EC_Q8_0, .t_out = EC_Q8_0,
				.t_gate_up = gu, .t_down = down, .seed = 91 };
	static const int32_t pfs[] = { -1, 1, 2 };
	struct result ref = { 0 };
	struct psrc src = { 0 };
	struct gt_rng r = { 17 };
	struct ec_model *m = NULL;
	struct ec_backend *full;
	int32_t tok[N_PROMPT + N_DEC];
	uint64_t slot, quarter;
	char path[512], why[512];
	struct ec_cuda_stats st;

	snprintf(path, sizeof(path), "%s/pf-%s.gguf", dir, gt_type_name(gu));
	if (synth_write(path, &s) < 0 || ec_model_open(path, &m) < 0) {
		EC_CHECK(0, "%s: %s", path, ec_error_msg());
		goto out;
	}
	for (int i = 0; i < N_PROMPT + N_DEC; i++)
		tok[i] = (int32_t)(gt_next(&r) % s.n_vocab);
	full = cuda_be(m, 0, 0, why, sizeof(why));
	EC_CHECK(full != NULL, "full residency: %s", why);
	if (!full)
		goto out;
	src.m = m;
	run(m, full, tok, &src, &ref);
	st = gt_cuda_stats(full);
	/* everything fits: prefetch off by default */
	EC_CHECK(st.prefetch_depth == 0 && st.prefetch_issued == 0,
		 "full residency: depth %u", st.prefetch_depth);
	full->ops->destroy(full);
	if (!ref.ok)
		goto out;
	/* a slot holds the parts at 64-byte offsets: at most 3 * 64 more */
	slot = ec_model_expert_bytes(m, 0, 0) + 3 * 64;
	quarter = ec_model_total_expert_bytes(m) / 4;
	for (int i = 0; i < 3; i++)
		forward_case(m, tok, &ref, quarter, "25%", pfs[i], 0);
	/* one layer's top-k: the prefetch never finds a slot, never stalls */
	forward_case(m, tok, &ref, slot * TOPK, "top-k", 1, 0);
	forward_case(m, tok, &ref, quarter, "25%", 1, 1);
out:
	free(ref.logits);
	ec_model_close(m);
	unlink(path);
}

int main(void)
{
	char dir[] = "/tmp/ec-gpu-prefetch-XXXXXX";
	struct gt_moe g;

	if (!mkdtemp(dir))
		return 1;
	if (gt_moe_create(&g, 1, 8, 2, 256, 256, EC_Q8_0, EC_Q8_0, 1) < 0 ||
	    gt_setup(&g.m) < 0)
		return 1;
	if (gt_gpu_ok("VRAM prefetch")) {
		pinned_never_evicted(TOPK + 1, 0);
		pinned_never_evicted(TOPK + 1, 1);
		pinned_never_evicted(TOPK, 0);
		nearer_layer_first();
		forward(dir, EC_Q4_K, EC_Q6_K);
	}
	rmdir(dir);
	gt_teardown();
	gt_moe_free(&g);
	return ec_test_done();
}
