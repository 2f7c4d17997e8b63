// SPDX-License-Identifier: MIT
/* LRU: a doubly linked list over keys, most recent at the head. */
#include <errno.h>
#include <stdlib.h>

#include "ec_policy.h"

struct lru {
	int32_t head, tail;	/* -1 when empty */
	int32_t *prev, *next;	/* [n_keys] */
	uint8_t *in;		/* [n_keys] on the list */
};

static void unlink_key(struct lru *l, uint32_t k)
{
	if (!l->in[k])
		return;
	if (l->prev[k] >= 0)
		l->next[l->prev[k]] = l->next[k];
	else
		l->head = l->next[k];
	if (l->next[k] >= 0)
		l->prev[l->next[k]] = l->prev[k];
	else
		l->tail = l->prev[k];
	l->in[k] = 0;
}

static void push_head(struct lru *l, uint32_t k)
{
	l->prev[k] = -1;
	l->next[k] = l->head;
	if (l->head >= 0)
		l->prev[l->head] = (int32_t)k;
	else
		l->tail = (int32_t)k;
	l->head = (int32_t)k;
	l->in[k] = 1;
}

static int lru_init(struct ec_policy *p, const struct ec_policy_config *cfg)
{
	struct lru *l = calloc(1, sizeof(*l));

	if (!l)
		return -ENOMEM;
	l->head = l->tail = -1;
	l->prev = malloc(cfg->n_keys * sizeof(*l->prev));
	l->next = malloc(cfg->n_keys * sizeof(*l->next));
	l->in = calloc(cfg->n_keys, 1);
	p->priv = l;
	if (!l->prev || !l->next || !l->in)
		return -ENOMEM;
	return 0;
}

static void lru_fini(struct ec_policy *p)
{
	struct lru *l = p->priv;

	if (!l)
		return;
	free(l->prev);
	free(l->next);
	free(l->in);
	free(l);
}

static void lru_touch(struct ec_policy *p, uint32_t key, uint64_t t)
{
	struct lru *l = p->priv;

	unlink_key(l, key);
	push_head(l, key);
}

static void lru_remove(struct ec_policy *p, uint32_t key)
{
	unlink_key(p->priv, key);
}

static int lru_victim(struct ec_policy *p, uint32_t incoming, uint64_t t,
		      bool may_bypass, ec_policy_evictable_fn *evictable,
		      void *arg, uint32_t *out)
{
	struct lru *l = p->priv;
	int32_t k;

	for (k = l->tail; k >= 0; k = l->prev[k]) {
		if (!evictable || evictable(arg, (uint32_t)k)) {
			*out = (uint32_t)k;
			return 0;
		}
	}
	return -ENOSPC;
}

const struct ec_policy_ops ec_policy_lru = {
	.name = "lru",
	.init = lru_init,
	.fini = lru_fini,
	.hit = lru_touch,
	.insert = lru_touch,
	.remove = lru_remove,
	.victim = lru_victim,
};
