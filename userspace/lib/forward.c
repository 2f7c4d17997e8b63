// SPDX-License-Identifier: MIT
/* The MoE decoder forward pass over the backend table, with its KV cache. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "ec_error.h"
#include "ec_infer.h"
#include "ec_probes.h"
#include "probe_route.h"
#include "router.h"

struct ec_ctx {
	const struct ec_model *m;
	struct ec_backend *be;
	uint32_t n_ctx, n_batch, pos;
	uint32_t q_dim, kv_dim;

	float **k_cache, **v_cache;	/* [n_layer] of (n_ctx, kv_dim) */

	/* backend scratch, rows = tokens of the current chunk */
	float *x;	/* (n_batch, n_embd) residual stream */
	float *xn;	/* (n_batch, n_embd) normalised input */
	float *q;	/* (n_batch, q_dim) */
	float *att;	/* (n_batch, q_dim) attention output */
	float *rlog;	/* (n_batch, n_expert) router logits */
	float *moe;	/* (n_batch, n_embd) expert mixture */
	float *xg;	/* (n_batch, n_embd) tokens routed to one expert */
	float *g, *u;	/* (n_batch, max(n_ff_exp, n_ff_shexp)) */
	float *d;	/* (n_batch, n_embd) expert output */
	float *lg;	/* (n_batch, n_vocab) logits */

	/* host scratch */
	float *h_rlog;		/* (n_batch, n_expert) */
	int32_t *ids;		/* (n_batch, k) */
	float *wts;		/* (n_batch, k) */
	int32_t *pos_ids;	/* (n_batch) */
	uint32_t *cnt;		/* (n_expert) tokens per expert */
	uint32_t *start;	/* (n_expert + 1) bucket offsets */
	int32_t *btok;		/* (n_batch * k) tokens bucketed by expert */
	float *bw;		/* (n_batch * k) their routing weights */
	float *shw;		/* (n_batch) shared-expert gate */
	float *zeros;		/* (n_batch, n_embd) all zero */

	uint64_t *routed;	/* (n_layer * n_expert) */
	struct ec_expert_source src;

	enum ec_miss_policy on_miss;
	uint32_t pf_width, pf_depth;
	uint32_t vpf_depth;	/* VRAM prefetch: layers ahead (backend's) */
	uint8_t *predicted;	/* (n_layer, n_expert): prefetched for the
				 * current decode step */
	struct ec_ctx_counters ctr;
	ec_route_fn route_fn;
	void *route_priv;
	struct ec_probe_route probe;	/* route_chunk USDT, when traced */
};

static int default_get(void *priv, uint32_t layer, uint32_t expert,
		       const struct ec_expert **out)
{
	const struct ec_model *m = priv;

	*out = &m->layers[layer].experts[expert];
	return 0;
}

static void default_put(void *priv, uint32_t layer, uint32_t expert)
{
}

void ec_ctx_set_expert_source(struct ec_ctx *c,
			      const struct ec_expert_source *src)
{
	if (src) {
		c->src = *src;
	} else {
		c->src.get = default_get;
		c->src.put = default_put;
		c->src.resident = NULL;
		c->src.prefetch = NULL;
		c->src.host_regions = NULL;
		c->src.priv = (void *)c->m;
	}
}

void ec_ctx_free(struct ec_ctx *c)
{
	struct ec_backend *be;
	uint32_t l;

	if (!c)
		return;
	be = c->be;
	if (c->k_cache) {
		for (l = 0; l < c->m->hp.n_layer; l++) {
			be->ops->free(be, c->k_cache[l]);
			be->ops->free(be, c->v_cache[l]);
		}
	}
	free(c->k_cache);
	free(c->v_cache);
	float *bufs[] = { c->x, c->xn, c->q, c->att, c->rlog, c->moe,
			  c->xg, c->g, c->u, c->d, c->lg };
	for (l = 0; l < sizeof(bufs) / sizeof(bufs[0]); l++)
		be->ops->free(be, bufs[l]);
	free(c->h_rlog);
	free(c->ids);
	free(c->wts);
	free(c->pos_ids);
	free(c->cnt);
	free(c->start);
	free(c->btok);
	free(c->bw);
	free(c->shw);
	free(c->zeros);
	free(c->routed);
	free(c->predicted);
	ec_probe_route_free(&c->probe);
	free(c);
}

int ec_ctx_create(const struct ec_model *m, struct ec_backend *be,
		  const struct ec_ctx_params *p, struct ec_ctx **out)
{
	const struct ec_hparams *hp = &m->hp;
	struct ec_ctx *c;
	uint32_t l, nb, k = hp->n_expert_used, ff, kw;

	*out = NULL;
	if (hp->clip_qkv != 0.0f)
		return ec_err(-EC_EUNSUPPORTED,
			      "clip_qkv = %g is not supported yet",
			      hp->clip_qkv);
	c = calloc(1, sizeof(*c));
	if (!c)
		return ec_err(-ENOMEM, "out of memory");
	c->m = m;
	c->be = be;
	c->n_ctx = p && p->n_ctx ? p->n_ctx : hp->n_ctx;
	if (!c->n_ctx || (!(p && p->n_ctx) && c->n_ctx > 4096))
		c->n_ctx = 4096;
	c->n_batch = p && p->n_batch ? p->n_batch : 64;
	nb = c->n_batch;
	c->q_dim = hp->n_head * hp->head_dim;
	c->kv_dim = hp->n_head_kv * hp->head_dim;
	ff = hp->n_ff_exp > hp->n_ff_shexp ? hp->n_ff_exp : hp->n_ff_shexp;
	ec_ctx_set_expert_source(c, NULL);

	c->k_cache = calloc(hp->n_layer, sizeof(float *));
	c->v_cache = calloc(hp->n_layer, sizeof(float *));
	if (!c->k_cache || !c->v_cache)
		goto nomem;
	for (l = 0; l < hp->n_layer; l++) {
		size_t n = (size_t)c->n_ctx * c->kv_dim;

		c->k_cache[l] = be->ops->alloc(be, n);
		c->v_cache[l] = be->ops->alloc(be, n);
		if (!c->k_cache[l] || !c->v_cache[l])
			goto nomem;
	}
#define BALLOC(f, n)                                                          \
	do {                                                                  \
		c->f = be->ops->alloc(be, (size_t)(n));                       \
		if (!c->f)                                                    \
			goto nomem;                                           \
	} while (0)
	BALLOC(x, nb * hp->n_embd);
	BALLOC(xn, nb * hp->n_embd);
	BALLOC(q, nb * c->q_dim);
	BALLOC(att, nb * c->q_dim);
	BALLOC(rlog, nb * hp->n_expert);
	BALLOC(moe, nb * hp->n_embd);
	BALLOC(xg, nb * hp->n_embd);
	BALLOC(g, nb * ff);
	BALLOC(u, nb * ff);
	BALLOC(d, nb * hp->n_embd);
	BALLOC(lg, (size_t)nb * hp->n_vocab);
#undef BALLOC
	c->h_rlog = malloc(sizeof(float) * nb * hp->n_expert);
	/* ids/wts also hold the prefetch top-w lists */
	kw = p && p->prefetch_width > k ? p->prefetch_width : k;
	if (kw > hp->n_expert)
		kw = hp->n_expert;
	c->ids = malloc(sizeof(int32_t) * nb * kw);
	c->wts = malloc(sizeof(float) * nb * kw);
	c->pos_ids = malloc(sizeof(int32_t) * nb);
	c->cnt = malloc(sizeof(uint32_t) * hp->n_expert);
	c->start = malloc(sizeof(uint32_t) * (hp->n_expert + 1));
	c->btok = malloc(sizeof(int32_t) * nb * k);
	c->bw = malloc(sizeof(float) * nb * k);
	c->shw = malloc(sizeof(float) * nb);
	c->zeros = calloc((size_t)nb * hp->n_embd, sizeof(float));
	c->routed = calloc((size_t)hp->n_layer * hp->n_expert,
			   sizeof(uint64_t));
	c->predicted = calloc((size_t)hp->n_layer * hp->n_expert, 1);
	if (be->ops->prefetch && be->ops->prefetch_depth)
		c->vpf_depth = be->ops->prefetch_depth(be);
	if (p) {
		c->on_miss = p->on_miss;
		c->pf_width = p->prefetch_width < hp->n_expert ?
				      p->prefetch_width : hp->n_expert;
		c->pf_depth = p->prefetch_depth;
	}
	if (!c->h_rlog || !c->ids || !c->wts || !c->pos_ids || !c->cnt ||
	    !c->start || !c->btok || !c->bw || !c->shw || !c->zeros || !c->routed ||
	    !c->predicted)
		goto nomem;
	*out = c;
	return 0;
nomem:
	ec_ctx_free(c);
	return ec_err(-ENOMEM,
		      "out of memory for the context (n_ctx %u, batch %u)",
		      p && p->n_ctx ? p->n_ctx : 0, nb);
}

void ec_ctx_reset(struct ec_ctx *c)
{
	c->pos = 0;
}

uint32_t ec_ctx_pos(const struct ec_ctx *c)
{
	return c->pos;
}

uint32_t ec_ctx_n_ctx(const struct ec_ctx *c)
{
	return c->n_ctx;
}

uint32_t ec_ctx_n_vocab(const struct ec_ctx *c)
{
	return c->m->hp.n_vocab;
}

void ec_ctx_set_route_hook(struct ec_ctx *c, ec_route_fn fn, void *priv)
{
	c->route_fn = fn;
	c->route_priv = priv;
}

const struct ec_ctx_counters *ec_ctx_counters(const struct ec_ctx *c)
{
	return &c->ctr;
}

const uint64_t *ec_ctx_routed_counts(const struct ec_ctx *c)
{
	return c->routed;
}

/* Attention block for n tokens at c->pos: x += attn(norm(x)). */
static int attention_block(struct ec_ctx *c, uint32_t l, uint32_t n)
{
	const struct ec_hparams *hp = &c->m->hp;
	const struct ec_layer *L = &c->m->layers[l];
	struct ec_backend *be = c->be;
	const struct ec_backend_ops *o = be->ops;
	float *k = c->k_cache[l] + (size_t)c->pos * c->kv_dim;
	float *v = c->v_cache[l] + (size_t)c->pos * c->kv_dim;
	int ret;

	o->rmsnorm(be, c->xn, c->x, &L->attn_norm, n, hp->n_embd,
		   hp->rms_eps);
	/* K and V go straight into their cache rows. */
	if ((ret = o->matmul(be, c->q, &L->wq, c->xn, n, 0)) < 0 ||
	    (ret = o->matmul(be, k, &L->wk, c->xn, n, 0)) < 0 ||
	    (ret = o->matmul(be, v, &L->wv, c->xn, n, 0)) < 0)
		return ret;
	if (hp->attn_bias) {
		o->add_bias(be, c->q, &L->bq, n, c->q_dim);
		o->add_bias(be, k, &L->bk, n, c->kv_dim);
		o->add_bias(be, v, &L->bv, n, c->kv_dim);
	}
	if (hp->qk_norm == EC_QK_NORM_HEAD) {
		o->rmsnorm(be, c->q, c->q, &L->q_norm, n * hp->n_head,
			   hp->head_dim, hp->rms_eps);
		o->rmsnorm(be, k, k, &L->k_norm, n * hp->n_head_kv,
			   hp->head_dim, hp->rms_eps);
	} else if (hp->qk_norm == EC_QK_NORM_FULL) {
		o->rmsnorm(be, c->q, c->q, &L->q_norm, n, c->q_dim,
			   hp->rms_eps);
		o->rmsnorm(be, k, k, &L->k_norm, n, c->kv_dim, hp->rms_eps);
	}
	o->rope(be, c->q, c->pos_ids, n, hp->n_head, hp->head_dim,
		hp->rope_theta, hp->rope_style);
	o->rope(be, k, c->pos_ids, n, hp->n_head_kv, hp->head_dim,
		hp->rope_theta, hp->rope_style);
	o->attention(be, c->att, c->q, c->k_cache[l], c->v_cache[l], c->pos,
		     n, hp->n_head, hp->n_head_kv, hp->head_dim);
	return o->matmul(be, c->x, &L->wo, c->att, n, 1);
}

/* One SwiGLU FFN on the m rows in c->xg, result in c->d. */
static int swiglu(struct ec_ctx *c, const struct ec_tensor *gate,
		  const struct ec_tensor *up, const struct ec_tensor *down,
		  const float *in, uint32_t m)
{
	struct ec_backend *be = c->be;
	const struct ec_backend_ops *o = be->ops;
	uint32_t ff = gate->ne[1];
	int ret;

	if ((ret = o->matmul(be, c->g, gate, in, m, 0)) < 0 ||
	    (ret = o->matmul(be, c->u, up, in, m, 0)) < 0)
		return ret;
	o->silu_mul(be, c->g, c->u, m, ff);
	return o->matmul(be, c->d, down, c->g, m, 0);
}

/*
 * The routed experts one at a time through the generic ops: tokens bucketed
 * by expert, each expert's rows gathered, run and scattered back into
 * c->moe with their routing weights.
 */
static int moe_experts_generic(struct ec_ctx *c, uint32_t l, uint32_t n)
{
	const struct ec_hparams *hp = &c->m->hp;
	struct ec_backend *be = c->be;
	const struct ec_backend_ops *o = be->ops;
	uint32_t k = hp->n_expert_used, E = hp->n_expert, t, j, e;
	uint64_t *routed = c->routed + (size_t)l * E;
	int ret;

	/* bucket (token, weight) pairs by expert */
	memset(c->cnt, 0, sizeof(uint32_t) * E);
	for (t = 0; t < n * k; t++)
		c->cnt[c->ids[t]]++;
	c->start[0] = 0;
	for (e = 0; e < E; e++)
		c->start[e + 1] = c->start[e] + c->cnt[e];
	memset(c->cnt, 0, sizeof(uint32_t) * E);
	for (t = 0; t < n; t++) {
		for (j = 0; j < k; j++) {
			e = c->ids[t * k + j];
			c->btok[c->start[e] + c->cnt[e]] = (int32_t)t;
			c->bw[c->start[e] + c->cnt[e]] = c->wts[t * k + j];
			c->cnt[e]++;
		}
	}

	o->from_host(be, c->moe, c->zeros, (size_t)n * hp->n_embd);
	for (e = 0; e < E; e++) {
		const struct ec_expert *x;
		uint32_t mcnt = c->cnt[e];

		if (!mcnt)
			continue;
		routed[e] += mcnt;
		ret = c->src.get(c->src.priv, l, e, &x);
		if (ret < 0)
			return ret;
		o->gather(be, c->xg, c->xn, c->btok + c->start[e], mcnt,
			  hp->n_embd);
		ret = swiglu(c, &x->w[EC_EXPERT_GATE], &x->w[EC_EXPERT_UP],
			     &x->w[EC_EXPERT_DOWN], c->xg, mcnt);
		c->src.put(c->src.priv, l, e);
		if (ret < 0)
			return ret;
		o->scatter_add(be, c->moe, c->d, c->btok + c->start[e],
			       c->bw + c->start[e], mcnt, hp->n_embd);
	}
	return 0;
}

/*
 * Miss policy `substitute`: a selected expert that is not resident is
 * replaced by the best-scoring resident expert the token has not selected
 * (its routing weight is kept).  Needs the router logits in c->h_rlog.
 */
static void substitute_misses(struct ec_ctx *c, uint32_t l, uint32_t n)
{
	uint32_t k = c->m->hp.n_expert_used, E = c->m->hp.n_expert;
	uint32_t t, j, e, i;

	for (t = 0; t < n; t++) {
		int32_t *id = c->ids + (size_t)t * k;
		const float *lg = c->h_rlog + (size_t)t * E;

		for (j = 0; j < k; j++) {
			int32_t best = -1;

			if (c->src.resident(c->src.priv, l, id[j]))
				continue;
			for (e = 0; e < E; e++) {
				if (best >= 0 && lg[e] <= lg[best])
					continue;
				for (i = 0; i < k && id[i] != (int32_t)e; i++)
					;
				if (i < k)
					continue;
				if (c->src.resident(c->src.priv, l, e))
					best = (int32_t)e;
			}
			if (best >= 0) {
				EC_PROBE_SUBSTITUTE(l, id[j], best);
				id[j] = best;
				c->ctr.substitutions++;
			}
		}
	}
}

/*
 * Prefetch, after layer l's attention: the routers of the next layers run
 * on the current hidden state (one evaluation per layer serves both uses).
 *  - host tier (pf_depth layers, an expert source with a prefetch hook):
 *    their top pf_width experts are hinted to the source, which reads them
 *    in the background;
 *  - VRAM (vpf_depth layers, a backend with the prefetch op, decode
 *    steps): the backend picks and copies them without a synchronisation
 *    of its own: queued before layer l's routing, whose one wait covers
 *    them, their copies run while layer l's experts compute.
 */
static int prefetch_ahead(struct ec_ctx *c, uint32_t l, uint32_t n)
{
	const struct ec_hparams *hp = &c->m->hp;
	struct ec_backend *be = c->be;
	const struct ec_backend_ops *o = be->ops;
	uint32_t d, t, w = c->pf_width, E = hp->n_expert;
	uint32_t host = c->pf_width && c->src.prefetch ? c->pf_depth : 0;
	uint32_t vram = n == 1 ? c->vpf_depth : 0;
	int ret;

	for (d = 1; (d <= host || d <= vram) && l + d < hp->n_layer; d++) {
		const struct ec_layer *L = &c->m->layers[l + d];

		o->rmsnorm(be, c->xn, c->x, &L->ffn_norm, n, hp->n_embd,
			   hp->rms_eps);
		ret = o->matmul(be, c->rlog, &L->router, c->xn, n, 0);
		if (ret < 0)
			return ret;
		if (d <= vram) {
			ret = o->prefetch(be, l + d, c->rlog, n, E,
					  hp->n_expert_used);
			if (ret < 0)
				return ret;
		}
		if (d > host)
			continue;
		o->to_host(be, c->h_rlog, c->rlog, (size_t)n * E);
		/* c->ids/wts are free until this layer's own routing */
		ec_route_topk(c->h_rlog, n, E, w, false, c->ids, c->wts);
		for (t = 0; t < n; t++)
			c->src.prefetch(c->src.priv, l + d, c->ids + t * w, w);
		if (n == 1)
			for (t = 0; t < w; t++)
				c->predicted[(size_t)(l + d) * E +
					     c->ids[t]] = 1;
	}
	return 0;
}

/* MoE block: x += experts(norm(x)) [+ shared expert]. */
static int moe_block(struct ec_ctx *c, uint32_t l, uint32_t n)
{
	const struct ec_hparams *hp = &c->m->hp;
	const struct ec_layer *L = &c->m->layers[l];
	struct ec_backend *be = c->be;
	const struct ec_backend_ops *o = be->ops;
	uint32_t k = hp->n_expert_used, E = hp->n_expert, t;
	uint64_t *routed = c->routed + (size_t)l * E;
	int ret;

	o->rmsnorm(be, c->xn, c->x, &L->ffn_norm, n, hp->n_embd,
		   hp->rms_eps);
	ret = o->matmul(be, c->rlog, &L->router, c->xn, n, 0);
	if (ret < 0)
		return ret;
	if (o->route) {
		ret = o->route(be, c->rlog, n, E, k, hp->norm_topk_prob, NULL,
			       c->ids, c->wts);
		if (ret < 0)
			return ret;
	} else {
		o->to_host(be, c->h_rlog, c->rlog, (size_t)n * E);
		ec_route_topk(c->h_rlog, n, E, k, hp->norm_topk_prob, c->ids,
			      c->wts);
	}
	if (c->on_miss == EC_MISS_SUBSTITUTE && c->src.resident) {
		if (o->route)
			o->to_host(be, c->h_rlog, c->rlog, (size_t)n * E);
		substitute_misses(c, l, n);
	}
	if (n == 1 && c->pf_width) {
		uint8_t *pred = c->predicted + (size_t)l * E;

		if (l > 0) {
			for (t = 0; t < k; t++)
				c->ctr.prefetch_predicted += pred[c->ids[t]];
			c->ctr.prefetch_checked += k;
		}
		memset(pred, 0, E);
	}
	c->ctr.routed += (uint64_t)n * k;
	if (c->route_fn)
		c->route_fn(c->route_priv, l, c->pos, n, k, c->ids, c->wts);
	/* USDT (ec_probes.h): one trap per layer; per pair only if traced */
	EC_PROBE_ROUTE_BATCH(l, hp->n_layer, E, n, k, c->pos, c->ids, c->wts);
	if (EC_PROBE_ENABLED(route))
		for (t = 0; t < n * k; t++)
			EC_PROBE_ROUTE(l, c->ids[t], ec_probe_q16(c->wts[t]),
				       c->pos + t / k);
	ec_probe_route_layer(&c->probe, l, c->ids, c->wts);

	if (o->moe_ffn) {
		for (t = 0; t < n * k; t++)
			routed[c->ids[t]]++;
		ret = o->moe_ffn(be, c->moe, c->xn, n, l, E, k, c->ids,
				 c->wts, &c->src);
	} else {
		ret = moe_experts_generic(c, l, n);
	}
	if (ret < 0)
		return ret;
	if (hp->n_ff_shexp) {
		ret = o->matmul(be, c->rlog, &L->sh_router, c->xn, n, 0);
		if (ret < 0)
			return ret;
		o->to_host(be, c->shw, c->rlog, n);
		for (t = 0; t < n; t++)
			c->shw[t] = 1.0f / (1.0f + expf(-c->shw[t]));
		ret = swiglu(c, &L->sh_gate, &L->sh_up, &L->sh_down, c->xn, n);
		if (ret < 0)
			return ret;
		o->add_scaled(be, c->moe, c->d, c->shw, n, hp->n_embd);
	}
	o->add_scaled(be, c->x, c->moe, NULL, n, hp->n_embd);
	return 0;
}

static int eval_chunk(struct ec_ctx *c, const int32_t *tokens, uint32_t n,
		      float *logits, int all_logits)
{
	const struct ec_model *m = c->m;
	const struct ec_hparams *hp = &m->hp;
	struct ec_backend *be = c->be;
	const struct ec_backend_ops *o = be->ops;
	uint32_t l, t, first;
	int ret;

	for (t = 0; t < n; t++) {
		if (tokens[t] < 0 || (uint32_t)tokens[t] >= hp->n_vocab)
			return ec_err(-EC_EINVAL,
				      "token id %d at position %u is outside "
				      "the vocabulary (0..%u)",
				      tokens[t], c->pos + t, hp->n_vocab - 1);
		c->pos_ids[t] = (int32_t)(c->pos + t);
	}
	ret = o->get_rows(be, c->x, &m->tok_embd, tokens, n);
	if (ret < 0)
		return ret;
	ec_probe_route_begin(&c->probe, hp->n_layer, n, hp->n_expert_used,
			     c->pos);
	for (l = 0; l < hp->n_layer; l++) {
		ret = attention_block(c, l, n);
		if (ret < 0)
			return ret;
		ret = prefetch_ahead(c, l, n);
		if (ret < 0)
			return ret;
		ret = moe_block(c, l, n);
		if (ret < 0)
			return ret;
	}
	ec_probe_route_end(&c->probe, hp->n_expert);
	c->pos += n;
	if (!logits)
		return 0;
	first = all_logits ? 0 : n - 1;
	o->rmsnorm(be, c->xn, c->x + (size_t)first * hp->n_embd,
		   &m->output_norm, n - first, hp->n_embd, hp->rms_eps);
	ret = o->matmul(be, c->lg, &m->output, c->xn, n - first, 0);
	if (ret < 0)
		return ret;
	o->to_host(be, logits, c->lg, (size_t)(n - first) * hp->n_vocab);
	return 0;
}

int ec_ctx_eval(struct ec_ctx *c, const int32_t *tokens, uint32_t n,
		float *logits, int all_logits)
{
	uint32_t done = 0, vocab = c->m->hp.n_vocab;
	int ret;

	if (n == 0)
		return ec_err(-EC_EINVAL, "no tokens to evaluate");
	if ((uint64_t)c->pos + n > c->n_ctx)
		return ec_err(-EC_EINVAL,
			      "context full: %u + %u tokens exceed n_ctx %u",
			      c->pos, n, c->n_ctx);
	while (done < n) {
		uint32_t chunk = n - done < c->n_batch ? n - done : c->n_batch;
		int last = done + chunk == n;
		float *out = NULL;

		if (logits && all_logits)
			out = logits + (size_t)done * vocab;
		else if (logits && last)
			out = logits;
		ret = eval_chunk(c, tokens + done, chunk, out, all_logits);
		if (ret < 0) {
			/* a backend may hold host copies of the expert source
			 * until sync: give them back before the caller may
			 * drop the source */
			c->be->ops->sync(c->be);
			return ret;
		}
		done += chunk;
	}
	c->be->ops->sync(c->be);
	return 0;
}
