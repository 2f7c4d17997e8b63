// SPDX-License-Identifier: MIT
/*
 * Belady's MIN with bypass (offline, simulator only): evict the resident
 * whose next use is farthest away -- or, when the incoming expert's own
 * next use is farther still, do not cache it at all.  Optimal hit count for
 * a given capacity among all policies, bypassing or not.
 */
#include <errno.h>
#include <stdlib.h>

#include "ec_policy.h"
#include "storage_internal.h"

struct belady {
	struct ec_heap heap;	/* (UINT64_MAX - next use): min = farthest */
	const uint64_t *next_use;
	uint64_t n_times;
};

static uint64_t next_of(const struct belady *b, uint64_t t)
{
	return t < b->n_times ? b->next_use[t] : UINT64_MAX;
}

static int belady_init(struct ec_policy *p,
		       const struct ec_policy_config *cfg)
{
	struct belady *b = calloc(1, sizeof(*b));

	if (!b)
		return -ENOMEM;
	p->priv = b;
	b->next_use = cfg->next_use;
	b->n_times = cfg->n_times;
	return ec_heap_init(&b->heap, cfg->n_keys, cfg->n_keys);
}

static void belady_fini(struct ec_policy *p)
{
	struct belady *b = p->priv;

	if (!b)
		return;
	ec_heap_fini(&b->heap);
	free(b);
}

static void belady_touch(struct ec_policy *p, uint32_t key, uint64_t t)
{
	struct belady *b = p->priv;

	ec_heap_set(&b->heap, key, UINT64_MAX - next_of(b, t), 0);
}

static void belady_remove(struct ec_policy *p, uint32_t key)
{
	struct belady *b = p->priv;

	ec_heap_remove(&b->heap, key);
}

static int belady_victim(struct ec_policy *p, uint32_t incoming, uint64_t t,
			 bool may_bypass, ec_policy_evictable_fn *evictable,
			 void *arg, uint32_t *out)
{
	struct belady *b = p->priv;
	int64_t k = ec_heap_min_where(&b->heap, evictable, arg);

	if (k < 0)
		return may_bypass ? EC_POLICY_BYPASS : -ENOSPC;
	if (may_bypass &&
	    next_of(b, t) >= UINT64_MAX - b->heap.p1[(uint32_t)k])
		return EC_POLICY_BYPASS;
	*out = (uint32_t)k;
	return 0;
}

const struct ec_policy_ops ec_policy_belady = {
	.name = "belady",
	.offline = true,
	.init = belady_init,
	.fini = belady_fini,
	.hit = belady_touch,
	.insert = belady_touch,
	.remove = belady_remove,
	.victim = belady_victim,
};
