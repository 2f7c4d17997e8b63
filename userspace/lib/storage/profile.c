// SPDX-License-Identifier: MIT
/* Expert access profiles: from traces or counters, JSON save/load, top-N. */
#define _GNU_SOURCE
#include <errno.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ec_error.h"
#include "ec_trace.h"
#include "storage_internal.h"

#define PROFILE_FORMAT "expertcache-profile"
#define MAX_KEYS (1u << 26)

static int profile_alloc(uint32_t n_layer, uint32_t n_expert,
			 struct ec_profile **out)
{
	struct ec_profile *p;
	uint64_t n = (uint64_t)n_layer * n_expert, i;

	*out = NULL;
	if (!n || n > MAX_KEYS)
		return ec_err(-EC_EINVAL, "profile: %u layers x %u experts",
			      n_layer, n_expert);
	p = calloc(1, sizeof(*p));
	if (!p)
		return ec_err(-ENOMEM, "out of memory");
	p->n_layer = n_layer;
	p->n_expert = n_expert;
	p->count = calloc(n, sizeof(*p->count));
	p->last_seen = malloc(n * sizeof(*p->last_seen));
	if (!p->count || !p->last_seen) {
		ec_profile_free(p);
		return ec_err(-ENOMEM, "out of memory");
	}
	for (i = 0; i < n; i++)
		p->last_seen[i] = -1;
	*out = p;
	return 0;
}

void ec_profile_free(struct ec_profile *p)
{
	if (!p)
		return;
	free(p->count);
	free(p->last_seen);
	free(p);
}

int ec_profile_from_trace(const struct ec_trace *t, uint64_t warmup_tokens,
			  struct ec_profile **out)
{
	struct ec_profile *p;
	uint64_t r, j;
	int ret;

	if (!t->n_access)
		return ec_err(-EC_EINVAL, "profile: the trace has no expert "
			      "accesses");
	ret = profile_alloc(t->n_layer, t->n_expert, &p);
	if (ret < 0)
		return ret;
	for (r = 0; r < t->n_rec; r++) {
		const struct ec_trace_rec *rec = &t->rec[r];

		if (rec->token_seq < warmup_tokens)
			continue;
		for (j = 0; j < rec->n; j++) {
			uint64_t k = (uint64_t)rec->layer * t->n_expert +
				     t->experts[rec->first + j];

			p->count[k]++;
			p->last_seen[k] = (int64_t)rec->token_seq;
			p->n_access++;
		}
	}
	p->n_tokens = t->n_tokens > warmup_tokens ?
		      t->n_tokens - warmup_tokens : 0;
	*out = p;
	return 0;
}

int ec_profile_from_counts(uint32_t n_layer, uint32_t n_expert,
			   const uint64_t *counts, uint64_t n_tokens,
			   struct ec_profile **out)
{
	struct ec_profile *p;
	uint64_t i;
	int ret;

	ret = profile_alloc(n_layer, n_expert, &p);
	if (ret < 0)
		return ret;
	for (i = 0; i < (uint64_t)n_layer * n_expert; i++) {
		p->count[i] = counts[i];
		p->n_access += counts[i];
	}
	p->n_tokens = n_tokens;
	snprintf(p->source, sizeof(p->source), "runtime counters");
	*out = p;
	return 0;
}

static void write_rows(FILE *f, const char *name, const struct ec_profile *p,
		       int last_seen)
{
	uint32_t l, e;

	fprintf(f, "  \"%s\": [\n", name);
	for (l = 0; l < p->n_layer; l++) {
		fputs("    [", f);
		for (e = 0; e < p->n_expert; e++) {
			uint64_t k = (uint64_t)l * p->n_expert + e;

			if (last_seen)
				fprintf(f, "%s%lld", e ? ", " : "",
					(long long)p->last_seen[k]);
			else
				fprintf(f, "%s%llu", e ? ", " : "",
					(unsigned long long)p->count[k]);
		}
		fprintf(f, "]%s\n", l + 1 < p->n_layer ? "," : "");
	}
	fputs("  ]", f);
}

int ec_profile_save(const struct ec_profile *p, const char *path)
{
	json_t *src = json_string(p->source);
	char *src_s = src ? json_dumps(src, JSON_ENCODE_ANY) : NULL;
	FILE *f = fopen(path, "we");
	int ret = 0;

	json_decref(src);
	if (!f || !src_s) {
		ret = f ? ec_err(-ENOMEM, "out of memory") :
			  ec_err(-errno, "%s: cannot create: %s", path,
				 strerror(errno));
		goto out;
	}
	fprintf(f, "{\n  \"format\": \"%s\",\n  \"version\": 1,\n"
		"  \"source\": %s,\n  \"n_layer\": %u,\n  \"n_expert\": %u,\n"
		"  \"n_tokens\": %llu,\n  \"n_access\": %llu,\n",
		PROFILE_FORMAT, src_s, p->n_layer, p->n_expert,
		(unsigned long long)p->n_tokens,
		(unsigned long long)p->n_access);
	write_rows(f, "counts", p, 0);
	fputs(",\n", f);
	write_rows(f, "last_seen", p, 1);
	fputs("\n}\n", f);
	if (ferror(f))
		ret = ec_err(-EIO, "%s: write failed", path);
out:
	if (f && fclose(f) && !ret)
		ret = ec_err(-errno, "%s: write failed: %s", path,
			     strerror(errno));
	free(src_s);
	return ret;
}

/* rows: [n_layer][n_expert] integers (>= min) into dst. */
static int read_rows(json_t *rows, const char *path, const char *name,
		     uint32_t n_layer, uint32_t n_expert, int64_t min,
		     void (*set)(void *dst, uint64_t k, json_int_t v),
		     void *dst)
{
	uint32_t l, e;

	if (!json_is_array(rows) || json_array_size(rows) != n_layer)
		return ec_err(-EC_EFORMAT, "%s: '%s': expected %u rows (one "
			      "per layer)", path, name, n_layer);
	for (l = 0; l < n_layer; l++) {
		json_t *row = json_array_get(rows, l);

		if (!json_is_array(row) || json_array_size(row) != n_expert)
			return ec_err(-EC_EFORMAT, "%s: '%s'[%u]: expected %u"
				      " values (one per expert)", path, name,
				      l, n_expert);
		for (e = 0; e < n_expert; e++) {
			json_t *v = json_array_get(row, e);

			if (!json_is_integer(v) ||
			    json_integer_value(v) < min)
				return ec_err(-EC_EFORMAT, "%s: '%s'[%u][%u]: "
					      "expected an integer >= %lld",
					      path, name, l, e,
					      (long long)min);
			set(dst, (uint64_t)l * n_expert + e,
			    json_integer_value(v));
		}
	}
	return 0;
}

static void set_count(void *dst, uint64_t k, json_int_t v)
{
	((uint64_t *)dst)[k] = (uint64_t)v;
}

static void set_last(void *dst, uint64_t k, json_int_t v)
{
	((int64_t *)dst)[k] = v;
}

int ec_profile_load(const char *path, struct ec_profile **out)
{
	struct ec_profile *p = NULL;
	json_t *root, *last;
	uint32_t nl, ne;
	const char *src;
	uint64_t i;
	int ret;

	*out = NULL;
	ret = ec_json_file_load(path, PROFILE_FORMAT, "profile", &root, &nl,
				&ne);
	if (ret < 0)
		return ret;
	ret = profile_alloc(nl, ne, &p);
	if (ret < 0)
		goto out;
	ret = read_rows(json_object_get(root, "counts"), path, "counts",
			p->n_layer, p->n_expert, 0, set_count, p->count);
	last = json_object_get(root, "last_seen");
	if (!ret && last)
		ret = read_rows(last, path, "last_seen", p->n_layer,
				p->n_expert, -1, set_last, p->last_seen);
	if (ret < 0)
		goto out;
	for (i = 0; i < (uint64_t)p->n_layer * p->n_expert; i++)
		p->n_access += p->count[i];
	p->n_tokens = (uint64_t)json_integer_value(
		json_object_get(root, "n_tokens"));
	src = json_string_value(json_object_get(root, "source"));
	snprintf(p->source, sizeof(p->source), "%s", src ? src : path);
	*out = p;
	p = NULL;
out:
	ec_profile_free(p);
	json_decref(root);
	return ret;
}

/* Hottest first: count, then most recent, then key. */
static int cmp_hot(const void *a, const void *b, void *arg)
{
	uint32_t ka = *(const uint32_t *)a, kb = *(const uint32_t *)b;
	const struct ec_profile *p = arg;

	if (p->count[ka] != p->count[kb])
		return p->count[ka] > p->count[kb] ? -1 : 1;
	if (p->last_seen[ka] != p->last_seen[kb])
		return p->last_seen[ka] > p->last_seen[kb] ? -1 : 1;
	return ka < kb ? -1 : ka > kb;
}

int ec_profile_top_keys(const struct ec_profile *p, uint32_t per_layer,
			uint32_t total, uint32_t **keys, uint32_t *n)
{
	uint64_t n_keys = (uint64_t)p->n_layer * p->n_expert, i;
	uint32_t *k, *taken, m = 0, j = 0;

	*keys = NULL;
	*n = 0;
	k = malloc(n_keys * sizeof(*k));
	taken = calloc(p->n_layer, sizeof(*taken));
	if (!k || !taken) {
		free(k);
		free(taken);
		return ec_err(-ENOMEM, "out of memory");
	}
	for (i = 0; i < n_keys; i++)
		if (p->count[i])
			k[m++] = (uint32_t)i;
	qsort_r(k, m, sizeof(*k), cmp_hot, (void *)p);
	for (i = 0; i < m; i++) {
		uint32_t l = k[i] / p->n_expert;

		if (per_layer ? taken[l] >= per_layer : j >= total)
			continue;
		taken[l]++;
		k[j++] = k[i];
	}
	free(taken);
	*keys = k;
	*n = j;
	return 0;
}
