// SPDX-License-Identifier: MIT
/*
 * Static pin-set (from a plan): planned experts stay once loaded; the other
 * slots are shared LRU.  When every resident is planned, an unplanned
 * expert is streamed without being cached (bypass) where allowed.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "ec_policy.h"

struct pinset {
	uint8_t *pinned;	/* [n_keys] */
	struct ec_policy *rest;	/* LRU over unplanned keys */
};

static int static_init(struct ec_policy *p, const struct ec_policy_config *cfg)
{
	struct pinset *s = calloc(1, sizeof(*s));
	uint32_t i, n = 0;
	int ret;

	if (!s)
		return -ENOMEM;
	p->priv = s;
	s->pinned = calloc(cfg->n_keys, 1);
	if (!s->pinned)
		return -ENOMEM;
	for (i = 0; cfg->pinned && i < cfg->n_keys; i++) {
		s->pinned[i] = cfg->pinned[i] != 0;
		n += s->pinned[i];
	}
	if (n > cfg->capacity)
		return -EINVAL;
	ret = ec_policy_create(&ec_policy_lru, cfg, &s->rest);
	return ret < 0 ? -ENOMEM : 0;
}

static void static_fini(struct ec_policy *p)
{
	struct pinset *s = p->priv;

	if (!s)
		return;
	ec_policy_free(s->rest);
	free(s->pinned);
	free(s);
}

static void static_touch(struct ec_policy *p, uint32_t key, uint64_t t)
{
	struct pinset *s = p->priv;

	if (!s->pinned[key])
		s->rest->ops->hit(s->rest, key, t);
}

static void static_remove(struct ec_policy *p, uint32_t key)
{
	struct pinset *s = p->priv;

	s->rest->ops->remove(s->rest, key);
}

static int static_victim(struct ec_policy *p, uint32_t incoming, uint64_t t,
			 bool may_bypass, ec_policy_evictable_fn *evictable,
			 void *arg, uint32_t *out)
{
	struct pinset *s = p->priv;
	int ret;

	ret = s->rest->ops->victim(s->rest, incoming, t, false, evictable,
				   arg, out);
	if (ret == -ENOSPC && may_bypass && !s->pinned[incoming])
		return EC_POLICY_BYPASS;
	return ret;
}

const struct ec_policy_ops ec_policy_static = {
	.name = "static",
	.init = static_init,
	.fini = static_fini,
	.hit = static_touch,
	.insert = static_touch,
	.remove = static_remove,
	.victim = static_victim,
};
