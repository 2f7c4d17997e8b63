/* SPDX-License-Identifier: MIT */
/*
 * The runtime's routing counters in --stats-json files (run, bench), and
 * back: what `profile --from-stats` reads.  Fields: "n_layer", "n_expert",
 * "routed_tokens", "routed_counts": [[count per expert] per layer].
 */
#ifndef EC_ROUTED_STATS_H
#define EC_ROUTED_STATS_H

#include <jansson.h>

struct ec_model;
struct ec_ctx;
struct ec_profile;

/* Add the fields to o.  0, or -1 out of memory. */
int ec_routed_stats_json(json_t *o, const struct ec_model *m,
			 const struct ec_ctx *ctx);

/* A profile from a --stats-json file (errors name the file and field). */
int ec_routed_stats_profile(const char *path, struct ec_profile **out);

#endif
