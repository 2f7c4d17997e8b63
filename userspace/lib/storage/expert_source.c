// SPDX-License-Identifier: MIT
/* Adapter: the expert cache as the forward pass's struct ec_expert_source. */
#include "ec_cache.h"
#include "ec_infer.h"
#include "storage_internal.h"

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

/*
 * Every view get() hands out points into a slot of the host tier, one
 * mapping whichever kind it is (anonymous or a /dev/expertcache pool).
 */
static int src_host_regions(void *priv, struct ec_host_region *out,
			    uint32_t max)
{
	const struct ec_host_tier *t = ec_cache_host_tier(priv);
	void *base;
	uint64_t bytes;

	if (!t)
		return 0;
	ec_host_tier_region(t, &base, &bytes);
	if (!base || !bytes)
		return 0;
	if (max) {
		out[0].base = base;
		out[0].bytes = bytes;
		out[0].generation = t->generation;
	}
	return 1;
}

void ec_cache_expert_source(struct ec_cache *c, struct ec_expert_source *out)
{
	out->get = src_get;
	out->put = src_put;
	out->resident = src_resident;
	out->prefetch = src_prefetch;
	out->host_regions = src_host_regions;
	out->priv = c;
}
