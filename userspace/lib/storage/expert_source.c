// SPDX-License-Identifier: MIT
/* Adapter: the expert cache as the forward pass's struct ec_expert_source. */
#include "ec_cache.h"
#include "ec_infer.h"

static int src_get(void *priv, uint32_t layer, uint32_t expert,
		   const struct ec_expert **out)
{
	return ec_cache_get(priv, layer, expert, out);
}

static void src_put(void *priv, uint32_t layer, uint32_t expert)
{
	ec_cache_put(priv, layer, expert);
}

static int src_resident(void *priv, uint32_t layer, uint32_t expert)
{
	return ec_cache_resident(priv, layer, expert);
}

static void src_prefetch(void *priv, uint32_t layer, const int32_t *ids,
			 uint32_t n)
{
	ec_cache_prefetch(priv, layer, ids, n);
}

void ec_cache_expert_source(struct ec_cache *c, struct ec_expert_source *out)
{
	out->get = src_get;
	out->put = src_put;
	out->resident = src_resident;
	out->prefetch = src_prefetch;
	out->priv = c;
}
