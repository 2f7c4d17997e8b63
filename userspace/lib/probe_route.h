/* SPDX-License-Identifier: MIT */
/*
 * Collects one forward chunk's routing, every layer, for the route_chunk
 * USDT probe: one trap per chunk (per decoded token) instead of one per
 * layer.  Does nothing, and allocates nothing, unless a tracer is attached
 * when the chunk begins.
 */
#ifndef EC_PROBE_ROUTE_H
#define EC_PROBE_ROUTE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct ec_probe_route {
	int32_t *ids;		/* (n_layer, n_tok, k), -1: not routed */
	float *wts;		/* (n_layer, n_tok, k) */
	size_t cap;		/* pairs allocated */
	uint32_t n_layer, n_tok, k;
	uint64_t pos0;
	bool on;		/* a tracer was attached at begin */
};

void ec_probe_route_begin(struct ec_probe_route *pr, uint32_t n_layer,
			  uint32_t n_tok, uint32_t k, uint64_t pos0);
/* ids, wts: (n_tok, k) of this layer. */
void ec_probe_route_layer(struct ec_probe_route *pr, uint32_t layer,
			  const int32_t *ids, const float *wts);
void ec_probe_route_end(struct ec_probe_route *pr, uint32_t n_expert);
void ec_probe_route_free(struct ec_probe_route *pr);

#endif
