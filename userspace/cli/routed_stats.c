// SPDX-License-Identifier: MIT
/* Routing counters in --stats-json, and profiles from them (no BPF). */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>

#include "ec_error.h"
#include "ec_infer.h"
#include "ec_model.h"
#include "ec_storage.h"
#include "routed_stats.h"

int ec_routed_stats_json(json_t *o, const struct ec_model *m,
			 const struct ec_ctx *ctx)
{
	const uint64_t *r = ec_ctx_routed_counts(ctx);
	uint32_t l, e, E = m->hp.n_expert, k = m->hp.n_expert_used;
	json_t *rows = json_array();
	uint64_t first = 0;

	if (!rows)
		return -1;
	for (l = 0; l < m->hp.n_layer; l++) {
		json_t *row = json_array();

		if (!row || json_array_append_new(rows, row) < 0)
			goto nomem;
		for (e = 0; e < E; e++)
			if (json_array_append_new(row, json_integer(
				(json_int_t)r[(size_t)l * E + e])) < 0)
				goto nomem;
	}
	/* every token routes k experts in every layer */
	for (e = 0; e < E; e++)
		first += r[e];
	if (json_object_set_new(o, "n_layer", json_integer(m->hp.n_layer)) ||
	    json_object_set_new(o, "n_expert", json_integer(E)) ||
	    json_object_set_new(o, "routed_tokens",
				json_integer(k ? (json_int_t)(first / k) : 0)))
		goto nomem;
	return json_object_set_new(o, "routed_counts", rows) ? -1 : 0;
nomem:
	json_decref(rows);
	return -1;
}

int ec_routed_stats_profile(const char *path, struct ec_profile **out)
{
	json_error_t jerr;
	json_t *root, *rows, *row, *v;
	json_int_t nl, ne;
	uint64_t *counts = NULL;
	uint32_t l, e;
	int ret;

	*out = NULL;
	root = json_load_file(path, 0, &jerr);
	if (!root)
		return ec_err(-EC_EFORMAT, "%s:%d: %s", path, jerr.line,
			      jerr.text);
	nl = json_integer_value(json_object_get(root, "n_layer"));
	ne = json_integer_value(json_object_get(root, "n_expert"));
	rows = json_object_get(root, "routed_counts");
	if (nl <= 0 || ne <= 0 || nl > 4096 || ne > 65536 ||
	    !json_is_array(rows) || json_array_size(rows) != (size_t)nl) {
		ret = ec_err(-EC_EFORMAT, "%s: 'routed_counts': expected "
			     "n_layer rows of n_expert counts (written by "
			     "'expertcache run --stats-json' or 'bench "
			     "--stats-json')", path);
		goto out;
	}
	counts = calloc((size_t)nl * ne, sizeof(*counts));
	if (!counts) {
		ret = ec_err(-ENOMEM, "out of memory");
		goto out;
	}
	for (l = 0; l < nl; l++) {
		row = json_array_get(rows, l);
		if (!json_is_array(row) || json_array_size(row) != (size_t)ne) {
			ret = ec_err(-EC_EFORMAT, "%s: 'routed_counts'[%u]: "
				     "expected %lld counts", path, l,
				     (long long)ne);
			goto out;
		}
		for (e = 0; e < ne; e++) {
			v = json_array_get(row, e);
			if (!json_is_integer(v) || json_integer_value(v) < 0) {
				ret = ec_err(-EC_EFORMAT, "%s: 'routed_counts'"
					     "[%u][%u]: expected a count", path,
					     l, e);
				goto out;
			}
			counts[(size_t)l * ne + e] =
				(uint64_t)json_integer_value(v);
		}
	}
	ret = ec_profile_from_counts((uint32_t)nl, (uint32_t)ne, counts,
				     (uint64_t)json_integer_value(
					json_object_get(root, "routed_tokens")),
				     out);
	if (ret == 0)
		snprintf((*out)->source, sizeof((*out)->source),
			 "stats:%.240s", path);
out:
	free(counts);
	json_decref(root);
	return ret;
}
