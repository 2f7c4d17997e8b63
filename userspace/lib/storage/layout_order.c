// SPDX-License-Identifier: MIT
/*
 * The record order of a layout file: hot groups first, then co-activation
 * chains from a routing trace (see ec_layout_order in ec_layout.h).
 */
#define _GNU_SOURCE
#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "ec_error.h"
#include "ec_layout.h"
#include "ec_trace.h"

#define MAX_COACT_EXPERTS 4096u	/* (n_expert)^2 counters per layer */
#define MAX_WINDOW 8u

struct order_ctx {
	uint32_t n_layer, n_expert;
	const uint64_t *count;		/* [n_keys] */
	const struct ec_trace *t;	/* NULL: no co-activation */
	int64_t *rec_of;		/* [n_tokens * n_layer] record, -1 */
	uint32_t *coact;		/* (n_expert, n_expert) of one layer */
	uint64_t *score;		/* [n_expert] */
	uint8_t *placed;		/* [n_expert] */
	uint32_t window;
};

/* count descending, then key ascending */
static int by_count(const void *a, const void *b, void *arg)
{
	uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;
	const uint64_t *count = arg;

	if (count[x] != count[y])
		return count[x] > count[y] ? -1 : 1;
	return x < y ? -1 : x > y;
}

/* Pairs of experts routed together in `layer`, from every token. */
static void fill_coact(struct order_ctx *o, uint32_t layer)
{
	const struct ec_trace *t = o->t;
	uint32_t ne = o->n_expert;
	uint64_t r, i, j;

	memset(o->coact, 0, (size_t)ne * ne * sizeof(*o->coact));
	for (r = 0; r < t->n_rec; r++) {
		const struct ec_trace_rec *rec = &t->rec[r];
		const uint32_t *x = t->experts + rec->first;

		if (rec->layer != layer)
			continue;
		for (i = 0; i < rec->n; i++)
			for (j = 0; j < rec->n; j++)
				if (i != j && x[i] < ne && x[j] < ne)
					o->coact[x[i] * ne + x[j]]++;
	}
}

/*
 * The expert of `g` routed most often in `layer` on tokens that routed
 * `prev` in layer - 1; -1 when none ever was.
 */
static int64_t chain_start(struct order_ctx *o, uint32_t layer, uint32_t prev,
			   const uint32_t *g, uint32_t n)
{
	const struct ec_trace *t = o->t;
	uint64_t tok, best = 0, i, j;
	int64_t pick = -1;

	memset(o->score, 0, o->n_expert * sizeof(*o->score));
	for (tok = 0; tok < t->n_tokens; tok++) {
		int64_t a = o->rec_of[tok * o->n_layer + layer - 1];
		int64_t b = o->rec_of[tok * o->n_layer + layer];
		const struct ec_trace_rec *ra, *rb;
		int hit = 0;

		if (a < 0 || b < 0)
			continue;
		ra = &t->rec[a];
		rb = &t->rec[b];
		for (i = 0; i < ra->n; i++)
			hit |= t->experts[ra->first + i] == prev;
		for (j = 0; hit && j < rb->n; j++)
			if (t->experts[rb->first + j] < o->n_expert)
				o->score[t->experts[rb->first + j]]++;
	}
	for (i = 0; i < n; i++) {
		uint32_t e = g[i] % o->n_expert;

		if (o->score[e] > best) {
			best = o->score[e];
			pick = (int64_t)i;
		}
	}
	return pick;
}

/*
 * Order group g[0..n) (keys of `layer`, sorted by count) in place as a
 * greedy chain: each next expert is the one routed together most often
 * with the last `window` placed; ties keep count order.
 */
static void chain(struct order_ctx *o, uint32_t layer, int64_t prev_first,
		  uint32_t *g, uint32_t n)
{
	uint32_t ne = o->n_expert, *tmp, i, j;
	int64_t s = -1;

	if (!o->t || n < 2)
		return;
	tmp = malloc(n * sizeof(*tmp));
	if (!tmp)
		return;		/* count order is still a valid order */
	if (layer > 0 && prev_first >= 0)
		s = chain_start(o, layer, (uint32_t)(prev_first % ne), g, n);
	memset(o->score, 0, ne * sizeof(*o->score));
	memset(o->placed, 0, ne);
	for (i = 0; i < n; i++) {
		uint32_t pick = UINT32_MAX, e;
		uint64_t best = 0;

		if (i == 0) {
			pick = s >= 0 ? (uint32_t)s : 0;
		} else {
			for (j = 0; j < n; j++) {
				e = g[j] % ne;
				if (o->placed[e])
					continue;
				if (pick == UINT32_MAX || o->score[e] > best) {
					pick = j;
					best = o->score[e];
				}
			}
		}
		e = g[pick] % ne;
		tmp[i] = g[pick];
		o->placed[e] = 1;
		for (j = 0; j < ne; j++)
			o->score[j] += o->coact[e * ne + j];
		if (i >= o->window) {	/* slide the window */
			uint32_t old = tmp[i - o->window] % ne;

			for (j = 0; j < ne; j++)
				o->score[j] -= o->coact[old * ne + j];
		}
	}
	memcpy(g, tmp, n * sizeof(*g));
	free(tmp);
}

static int index_trace(struct order_ctx *o)
{
	const struct ec_trace *t = o->t;
	uint64_t n = t->n_tokens * o->n_layer, r, experts = 0;

	o->rec_of = malloc(n * sizeof(*o->rec_of));
	o->coact = malloc((size_t)o->n_expert * o->n_expert *
			  sizeof(*o->coact));
	if (!o->rec_of || !o->coact)
		return ec_err(-ENOMEM, "out of memory");
	for (r = 0; r < n; r++)
		o->rec_of[r] = -1;
	for (r = 0; r < t->n_rec; r++) {
		o->rec_of[t->rec[r].token_seq * o->n_layer + t->rec[r].layer] =
			(int64_t)r;
		experts += t->rec[r].n;
	}
	/* the window: the other experts of a typical token */
	o->window = t->n_rec ? (uint32_t)lround((double)experts /
						 (double)t->n_rec) : 1;
	if (o->window > 1)
		o->window--;
	if (o->window > MAX_WINDOW)
		o->window = MAX_WINDOW;
	return 0;
}

int ec_layout_order(const struct ec_model *m, const struct ec_profile *prof,
		    const struct ec_trace *trace, double hot_pct,
		    uint32_t *order)
{
	struct order_ctx o = { .n_layer = m->hp.n_layer,
			       .n_expert = m->hp.n_expert, .t = trace };
	uint32_t ne = o.n_expert, n_keys = o.n_layer * ne, l, i, n_hot;
	uint32_t *layer_keys = NULL, pos = 0;
	int64_t *first = NULL;	/* [2 * n_layer] first key of each group */
	uint64_t *count = NULL;
	int ret = 0, g;

	if (prof && (prof->n_layer != o.n_layer || prof->n_expert != ne))
		return ec_err(-EC_ESHAPE, "layout: the profile is for %u "
			      "layers x %u experts, the model has %u x %u",
			      prof->n_layer, prof->n_expert, o.n_layer, ne);
	if (trace && (trace->n_layer > o.n_layer || trace->n_expert > ne))
		return ec_err(-EC_ESHAPE, "layout: the trace routes to layer "
			      "%u, expert %u; the model has %u x %u",
			      trace->n_layer - 1, trace->n_expert - 1,
			      o.n_layer, ne);
	if (!(hot_pct >= 0 && hot_pct <= 100))
		return ec_err(-EC_EINVAL, "layout: hot share %g%% is not in "
			      "0..100", hot_pct);
	if (trace && (ne > MAX_COACT_EXPERTS || !trace->n_rec))
		o.t = NULL;	/* counts only */
	count = calloc(n_keys, sizeof(*count));
	o.score = calloc(ne, sizeof(*o.score));
	o.placed = calloc(ne, 1);
	layer_keys = malloc(ne * sizeof(*layer_keys));
	first = malloc(2 * o.n_layer * sizeof(*first));
	if (!count || !o.score || !o.placed || !layer_keys || !first) {
		ret = ec_err(-ENOMEM, "out of memory");
		goto out;
	}
	if (prof)
		memcpy(count, prof->count, n_keys * sizeof(*count));
	else if (trace)
		for (i = 0; i < trace->n_rec; i++) {
			const struct ec_trace_rec *rec = &trace->rec[i];

			for (l = 0; l < rec->n; l++)
				count[rec->layer * ne +
				      trace->experts[rec->first + l]]++;
		}
	o.count = count;
	if (o.t) {
		ret = index_trace(&o);
		if (ret < 0)
			goto out;
	}
	n_hot = (uint32_t)ceil(hot_pct / 100.0 * ne);
	/*
	 * Layer by layer: the hot group, then the cold one.  (Every layer's
	 * hot group at the start of the file would put a token's hot and
	 * cold experts of one layer far apart.)
	 */
	for (l = 0; l < o.n_layer; l++) {
		uint32_t nh = 0;

		for (i = 0; i < ne; i++)
			layer_keys[i] = l * ne + i;
		qsort_r(layer_keys, ne, sizeof(*layer_keys), by_count, count);
		while (nh < n_hot && nh < ne && count[layer_keys[nh]])
			nh++;
		if (o.t)
			fill_coact(&o, l);
		for (g = 0; g < 2; g++) {
			uint32_t lo = g ? nh : 0, hi = g ? ne : nh;

			chain(&o, l, l ? first[2 * (l - 1) + g] : -1,
			      layer_keys + lo, hi - lo);
			first[2 * l + g] = hi > lo ? (int64_t)layer_keys[lo] :
						     -1;
		}
		memcpy(order + pos, layer_keys, ne * sizeof(*order));
		pos += ne;
	}
out:
	free(count);
	free(o.score);
	free(o.placed);
	free(o.rec_of);
	free(o.coact);
	free(layer_keys);
	free(first);
	return ret;
}

double ec_layout_mean_span(const struct ec_trace *trace, uint32_t n_layer,
			   uint32_t n_expert, const uint32_t *order)
{
	uint64_t n_keys = (uint64_t)n_layer * n_expert, r, i, n = 0;
	uint32_t *rank = NULL;
	double sum = 0;

	if (order) {
		rank = malloc(n_keys * sizeof(*rank));
		if (!rank)
			return -1;
		for (i = 0; i < n_keys; i++)
			rank[order[i]] = (uint32_t)i;
	}
	for (r = 0; r < trace->n_rec; r++) {
		const struct ec_trace_rec *rec = &trace->rec[r];
		uint32_t lo = UINT32_MAX, hi = 0;

		if (!rec->n || rec->layer >= n_layer)
			continue;
		for (i = 0; i < rec->n; i++) {
			uint32_t e = trace->experts[rec->first + i], k;

			if (e >= n_expert)
				continue;
			k = rec->layer * n_expert + e;
			k = rank ? rank[k] : k;
			lo = k < lo ? k : lo;
			hi = k > hi ? k : hi;
		}
		if (lo <= hi) {
			sum += hi - lo + 1;
			n++;
		}
	}
	free(rank);
	return n ? sum / (double)n : 0;
}
