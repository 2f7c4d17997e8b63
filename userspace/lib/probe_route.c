// SPDX-License-Identifier: MIT
/* Buffers a forward chunk's routing for the route_chunk USDT probe. */
#include <stdlib.h>
#include <string.h>

#include "ec_probes.h"
#include "probe_route.h"

void ec_probe_route_begin(struct ec_probe_route *pr, uint32_t n_layer,
			  uint32_t n_tok, uint32_t k, uint64_t pos0)
{
	size_t need = (size_t)n_layer * n_tok * k;

	pr->on = EC_PROBE_ENABLED(route_chunk) && need;
	if (!pr->on)
		return;
	if (need > pr->cap) {
		int32_t *ids = realloc(pr->ids, need * sizeof(*ids));
		float *wts;

		if (ids)
			pr->ids = ids;
		wts = ids ? realloc(pr->wts, need * sizeof(*wts)) : NULL;
		if (!wts) {	/* no memory: this chunk goes unreported */
			pr->on = false;
			return;
		}
		pr->wts = wts;
		pr->cap = need;
	}
	memset(pr->ids, 0xff, need * sizeof(*pr->ids));	/* -1 */
	pr->n_layer = n_layer;
	pr->n_tok = n_tok;
	pr->k = k;
	pr->pos0 = pos0;
}

void ec_probe_route_layer(struct ec_probe_route *pr, uint32_t layer,
			  const int32_t *ids, const float *wts)
{
	size_t n = (size_t)pr->n_tok * pr->k;

	if (!pr->on || layer >= pr->n_layer)
		return;
	memcpy(pr->ids + layer * n, ids, n * sizeof(*ids));
	memcpy(pr->wts + layer * n, wts, n * sizeof(*wts));
}

void ec_probe_route_end(struct ec_probe_route *pr, uint32_t n_expert)
{
	if (!pr->on)
		return;
	EC_PROBE_ROUTE_CHUNK(pr->n_layer, n_expert, pr->n_tok, pr->k,
			     pr->pos0, pr->ids, pr->wts);
	pr->on = false;
}

void ec_probe_route_free(struct ec_probe_route *pr)
{
	free(pr->ids);
	free(pr->wts);
	memset(pr, 0, sizeof(*pr));
}
