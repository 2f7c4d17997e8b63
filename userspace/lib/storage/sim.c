// SPDX-License-Identifier: MIT
/* Replay simulator: a routing trace through a policy, hits and misses. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "ec_error.h"
#include "ec_policy.h"
#include "ec_trace.h"

/* One simulated cache: a layer's experts, or every expert. */
struct part {
	struct ec_policy *pol;
	uint8_t *resident;	/* [n_keys] */
	uint8_t *pinned;	/* [n_keys] static */
	uint32_t n_resident, n_pinned;
};

/* next[i] = index of the next access to the key accessed at i. */
static uint64_t *next_uses(const struct ec_trace *t, uint32_t n_expert)
{
	uint64_t *next = malloc((t->n_access ? t->n_access : 1) *
				sizeof(*next));
	uint64_t *last = malloc((size_t)t->n_layer * n_expert *
				sizeof(*last));
	uint64_t r, j, i;

	if (!next || !last) {
		free(next);
		free(last);
		return NULL;
	}
	for (i = 0; i < (uint64_t)t->n_layer * n_expert; i++)
		last[i] = UINT64_MAX;
	for (r = t->n_rec; r-- > 0;) {
		const struct ec_trace_rec *rec = &t->rec[r];

		for (j = rec->n; j-- > 0;) {
			uint64_t key = (uint64_t)rec->layer * n_expert +
				       t->experts[rec->first + j];

			i = rec->first + j;
			next[i] = last[key];
			last[key] = i;
		}
	}
	free(last);
	return next;
}

static void parts_free(struct part *parts, uint32_t n)
{
	uint32_t i;

	for (i = 0; parts && i < n; i++) {
		ec_policy_free(parts[i].pol);
		free(parts[i].resident);
		free(parts[i].pinned);
	}
	free(parts);
}

void ec_sim_result_free(struct ec_sim_result *r)
{
	free(r->layer_hits);
	free(r->layer_misses);
	memset(r, 0, sizeof(*r));
}

/* Keep the planned keys that fit, in the order given. */
static void mark_pinned(struct part *parts, const struct ec_sim_params *p,
			uint32_t n_expert, uint32_t n_layer, bool per_layer,
			uint32_t cap)
{
	uint32_t i;

	for (i = 0; p->pinned && i < p->n_pinned; i++) {
		uint32_t key = p->pinned[i], l = key / n_expert;
		struct part *pt;
		uint32_t k;

		if (l >= n_layer)
			continue;
		pt = per_layer ? &parts[l] : &parts[0];
		k = per_layer ? key % n_expert : key;
		if (pt->pinned[k] || pt->n_pinned >= cap)
			continue;
		pt->pinned[k] = 1;
		pt->n_pinned++;
	}
}

static void access_one(struct part *pt, uint32_t k, uint64_t i, bool counted,
		       uint32_t cap, struct ec_sim_result *out, uint32_t l)
{
	const struct ec_policy_ops *ops = pt->pol->ops;
	uint32_t victim;
	int ret;

	if (pt->resident[k]) {
		ops->hit(pt->pol, k, i);
		if (counted) {
			out->hits++;
			out->layer_hits[l]++;
		}
		return;
	}
	if (counted) {
		out->misses++;
		out->layer_misses[l]++;
	}
	if (pt->n_resident >= cap) {
		ret = ops->victim(pt->pol, k, i, true, NULL, NULL, &victim);
		if (ret != 0) {		/* bypass (or nothing evictable) */
			if (counted)
				out->bypasses++;
			return;
		}
		ops->remove(pt->pol, victim);
		pt->resident[victim] = 0;
		pt->n_resident--;
	}
	ops->insert(pt->pol, k, i);
	pt->resident[k] = 1;
	pt->n_resident++;
}

int ec_sim_run(const struct ec_trace *t, const struct ec_policy_ops *ops,
	       const struct ec_sim_params *p, struct ec_sim_result *out)
{
	uint32_t n_layer = p->n_layer > t->n_layer ? p->n_layer : t->n_layer;
	uint32_t n_expert = p->n_expert > t->n_expert ? p->n_expert :
			    t->n_expert;
	bool per_layer = p->slots_per_layer > 0;
	uint32_t n_parts = per_layer ? n_layer : 1;
	struct ec_policy_config cfg = { 0 };
	uint64_t *next = NULL, r, j;
	struct part *parts = NULL;
	uint32_t i, cap;
	int ret = 0;

	memset(out, 0, sizeof(*out));
	if (!n_layer || !n_expert)
		return ec_err(-EC_EINVAL, "replay: the trace is empty");
	if ((uint64_t)n_layer * n_expert > (1u << 26))
		return ec_err(-EC_EINVAL, "replay: %u layers x %u experts is "
			      "too many", n_layer, n_expert);
	cfg.n_keys = per_layer ? n_expert : n_layer * n_expert;
	cap = per_layer ? p->slots_per_layer : p->capacity;
	if (!cap)
		return ec_err(-EC_EINVAL, "replay: capacity of 0 slots");
	if (cap > cfg.n_keys)
		cap = cfg.n_keys;
	cfg.capacity = cap;
	out->n_layer = n_layer;
	out->layer_hits = calloc(n_layer, sizeof(uint64_t));
	out->layer_misses = calloc(n_layer, sizeof(uint64_t));
	parts = calloc(n_parts, sizeof(*parts));
	if (!out->layer_hits || !out->layer_misses || !parts)
		goto nomem;
	if (ops->offline) {
		next = next_uses(t, n_expert);
		if (!next)
			goto nomem;
		cfg.next_use = next;
		cfg.n_times = t->n_access;
	}
	for (i = 0; i < n_parts; i++) {
		parts[i].resident = calloc(cfg.n_keys, 1);
		parts[i].pinned = calloc(cfg.n_keys, 1);
		if (!parts[i].resident || !parts[i].pinned)
			goto nomem;
	}
	mark_pinned(parts, p, n_expert, n_layer, per_layer, cap);
	for (i = 0; i < n_parts; i++) {
		cfg.pinned = parts[i].pinned;
		ret = ec_policy_create(ops, &cfg, &parts[i].pol);
		if (ret < 0)
			goto out;
	}
	for (r = 0; r < t->n_rec; r++) {
		const struct ec_trace_rec *rec = &t->rec[r];
		struct part *pt = per_layer ? &parts[rec->layer] : &parts[0];
		bool counted = rec->token_seq >= p->warmup_tokens;

		for (j = 0; j < rec->n; j++) {
			uint32_t e = t->experts[rec->first + j];
			uint32_t k = per_layer ? e : rec->layer * n_expert + e;

			access_one(pt, k, rec->first + j, counted, cap, out,
				   rec->layer);
		}
	}
	goto out;
nomem:
	ret = ec_err(-ENOMEM, "replay: out of memory");
out:
	parts_free(parts, n_parts);
	free(next);
	if (ret < 0)
		ec_sim_result_free(out);
	return ret;
}
