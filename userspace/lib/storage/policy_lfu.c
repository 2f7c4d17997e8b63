// SPDX-License-Identifier: MIT
/*
 * LFU with dynamic ageing (LFU-DA, Arlitt et al. 2000): a key's priority is
 * its in-cache access count plus the priority of the last victim, so keys
 * that were hot long ago age out instead of squatting forever.  Ties go to
 * the least recently used.
 */
#include <errno.h>
#include <stdlib.h>

#include "ec_policy.h"
#include "storage_internal.h"

struct lfu {
	struct ec_heap heap;	/* (freq + age, last access) */
	uint64_t *freq;		/* [n_keys] */
	uint64_t age;		/* priority of the last victim */
};

static int lfu_init(struct ec_policy *p, const struct ec_policy_config *cfg)
{
	struct lfu *l = calloc(1, sizeof(*l));

	if (!l)
		return -ENOMEM;
	p->priv = l;
	l->freq = calloc(cfg->n_keys, sizeof(*l->freq));
	if (!l->freq)
		return -ENOMEM;
	return ec_heap_init(&l->heap, cfg->n_keys, cfg->n_keys);
}

static void lfu_fini(struct ec_policy *p)
{
	struct lfu *l = p->priv;

	if (!l)
		return;
	ec_heap_fini(&l->heap);
	free(l->freq);
	free(l);
}

static void lfu_hit(struct ec_policy *p, uint32_t key, uint64_t t)
{
	struct lfu *l = p->priv;

	l->freq[key]++;
	ec_heap_set(&l->heap, key, l->freq[key] + l->age, t);
}

static void lfu_insert(struct ec_policy *p, uint32_t key, uint64_t t)
{
	struct lfu *l = p->priv;

	l->freq[key] = 1;
	ec_heap_set(&l->heap, key, 1 + l->age, t);
}

static void lfu_remove(struct ec_policy *p, uint32_t key)
{
	struct lfu *l = p->priv;

	ec_heap_remove(&l->heap, key);
	l->freq[key] = 0;
}

static int lfu_victim(struct ec_policy *p, uint32_t incoming, uint64_t t,
		      bool may_bypass, ec_policy_evictable_fn *evictable,
		      void *arg, uint32_t *out)
{
	struct lfu *l = p->priv;
	int64_t k = ec_heap_min_where(&l->heap, evictable, arg);

	if (k < 0)
		return -ENOSPC;
	l->age = l->heap.p1[k];
	*out = (uint32_t)k;
	return 0;
}

const struct ec_policy_ops ec_policy_lfu = {
	.name = "lfu",
	.init = lfu_init,
	.fini = lfu_fini,
	.hit = lfu_hit,
	.insert = lfu_insert,
	.remove = lfu_remove,
	.victim = lfu_victim,
};
