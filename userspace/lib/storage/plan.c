// SPDX-License-Identifier: MIT
/* Pinning plans: greedy count-per-byte placement, JSON save/load. */
#define _GNU_SOURCE
#include <errno.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ec_error.h"
#include "ec_model.h"
#include "ec_trace.h"
#include "storage_internal.h"

#define PLAN_FORMAT "expertcache-plan"

struct sort_ctx {
	const struct ec_profile *p;
	const uint64_t *bytes;
};

/* count/bytes descending (exact, in 128 bits), then count, then key. */
static int cmp_density(const void *a, const void *b, void *arg)
{
	const struct sort_ctx *c = arg;
	uint32_t ka = *(const uint32_t *)a, kb = *(const uint32_t *)b;
	unsigned __int128 da = (unsigned __int128)c->p->count[ka] *
			       c->bytes[kb];
	unsigned __int128 db = (unsigned __int128)c->p->count[kb] *
			       c->bytes[ka];

	if (da != db)
		return da > db ? -1 : 1;
	if (c->p->count[ka] != c->p->count[kb])
		return c->p->count[ka] > c->p->count[kb] ? -1 : 1;
	return ka < kb ? -1 : ka > kb;
}

void ec_plan_free(struct ec_plan *p)
{
	if (!p)
		return;
	free(p->vram);
	free(p->ram);
	free(p);
}

int ec_plan_build(const struct ec_profile *prof, const uint64_t *expert_bytes,
		  uint64_t vram_budget, uint64_t ram_budget,
		  struct ec_plan **out)
{
	uint64_t n = (uint64_t)prof->n_layer * prof->n_expert, i;
	uint64_t vram_left = vram_budget, ram_left = ram_budget;
	uint64_t vram_hits = 0, ram_hits = 0;
	struct sort_ctx sc = { prof, expert_bytes };
	struct ec_plan *p;
	uint32_t *k, m = 0;

	*out = NULL;
	for (i = 0; i < n; i++)
		if (prof->count[i] && !expert_bytes[i])
			return ec_err(-EC_EINVAL, "plan: expert (layer %llu, "
				      "expert %llu) has no bytes",
				      (unsigned long long)(i / prof->n_expert),
				      (unsigned long long)(i % prof->n_expert));
	p = calloc(1, sizeof(*p));
	k = malloc(n * sizeof(*k));
	if (!p || !k)
		goto nomem;
	p->n_layer = prof->n_layer;
	p->n_expert = prof->n_expert;
	p->vram_budget = vram_budget;
	p->ram_budget = ram_budget;
	p->vram = malloc(n * sizeof(*p->vram));
	p->ram = malloc(n * sizeof(*p->ram));
	if (!p->vram || !p->ram)
		goto nomem;
	for (i = 0; i < n; i++)
		if (prof->count[i])
			k[m++] = (uint32_t)i;
	qsort_r(k, m, sizeof(*k), cmp_density, &sc);
	for (i = 0; i < m; i++) {
		uint64_t b = expert_bytes[k[i]];

		if (b <= vram_left) {
			vram_left -= b;
			p->vram[p->n_vram++] = k[i];
			p->vram_bytes += b;
			vram_hits += prof->count[k[i]];
		} else if (b <= ram_left) {
			ram_left -= b;
			p->ram[p->n_ram++] = k[i];
			p->ram_bytes += b;
			ram_hits += prof->count[k[i]];
		}
	}
	if (prof->n_access) {
		p->vram_share = (double)vram_hits / (double)prof->n_access;
		p->ram_share = (double)ram_hits / (double)prof->n_access;
	}
	free(k);
	*out = p;
	return 0;
nomem:
	free(k);
	ec_plan_free(p);
	return ec_err(-ENOMEM, "out of memory");
}

static void write_keys(FILE *f, const char *name, const uint32_t *keys,
		       uint32_t n, uint32_t n_expert, int last)
{
	uint32_t i;

	fprintf(f, "  \"%s\": [", name);
	for (i = 0; i < n; i++)
		fprintf(f, "%s[%u, %u]", i ? (i % 8 ? ", " : ",\n    ") :
			"\n    ", keys[i] / n_expert, keys[i] % n_expert);
	fprintf(f, "%s]%s\n", n ? "\n  " : "", last ? "" : ",");
}

/* By hand rather than json_dump: one line per 8 experts stays readable. */
int ec_plan_save(const struct ec_plan *p, const char *path)
{
	FILE *f = fopen(path, "we");
	int ret = 0;

	if (!f)
		return ec_err(-errno, "%s: cannot create: %s", path,
			      strerror(errno));
	fprintf(f, "{\n  \"format\": \"%s\",\n  \"version\": 1,\n"
		"  \"n_layer\": %u,\n  \"n_expert\": %u,\n"
		"  \"vram_budget\": %llu,\n  \"ram_budget\": %llu,\n"
		"  \"vram_bytes\": %llu,\n  \"ram_bytes\": %llu,\n"
		"  \"vram_share\": %.6f,\n  \"ram_share\": %.6f,\n",
		PLAN_FORMAT, p->n_layer, p->n_expert,
		(unsigned long long)p->vram_budget,
		(unsigned long long)p->ram_budget,
		(unsigned long long)p->vram_bytes,
		(unsigned long long)p->ram_bytes, p->vram_share,
		p->ram_share);
	write_keys(f, "vram", p->vram, p->n_vram, p->n_expert, 0);
	write_keys(f, "ram", p->ram, p->n_ram, p->n_expert, 1);
	fputs("}\n", f);
	if (ferror(f))
		ret = ec_err(-EIO, "%s: write failed", path);
	if (fclose(f) && !ret)
		ret = ec_err(-errno, "%s: write failed: %s", path,
			     strerror(errno));
	return ret;
}

static int read_keys(json_t *a, const char *path, const char *name,
		     struct ec_plan *p, uint8_t *seen, uint32_t **keys,
		     uint32_t *n)
{
	size_t i, m;

	if (!json_is_array(a))
		return ec_err(-EC_EFORMAT, "%s: '%s': expected a list of "
			      "[layer, expert]", path, name);
	m = json_array_size(a);
	*keys = malloc((m ? m : 1) * sizeof(**keys));
	if (!*keys)
		return ec_err(-ENOMEM, "out of memory");
	for (i = 0; i < m; i++) {
		json_t *v = json_array_get(a, i);
		json_t *l = json_array_get(v, 0), *e = json_array_get(v, 1);
		uint32_t key;

		if (json_array_size(v) != 2 || !json_is_integer(l) ||
		    !json_is_integer(e) || json_integer_value(l) < 0 ||
		    json_integer_value(l) >= p->n_layer ||
		    json_integer_value(e) < 0 ||
		    json_integer_value(e) >= p->n_expert)
			return ec_err(-EC_EFORMAT, "%s: '%s'[%zu]: expected "
				      "[layer < %u, expert < %u]", path, name,
				      i, p->n_layer, p->n_expert);
		key = (uint32_t)(json_integer_value(l) * p->n_expert +
				 json_integer_value(e));
		if (seen[key]++)
			return ec_err(-EC_EFORMAT, "%s: '%s'[%zu]: expert "
				      "(%u, %u) is planned twice", path, name,
				      i, key / p->n_expert,
				      key % p->n_expert);
		(*keys)[(*n)++] = key;
	}
	return 0;
}

int ec_plan_load(const char *path, struct ec_plan **out)
{
	struct ec_plan *p = NULL;
	uint8_t *seen = NULL;
	uint32_t nl, ne;
	json_t *root;
	int ret;

	*out = NULL;
	ret = ec_json_file_load(path, PLAN_FORMAT, "plan", &root, &nl, &ne);
	if (ret < 0)
		return ret;
	p = calloc(1, sizeof(*p));
	seen = calloc((size_t)nl * ne, 1);
	if (!p || !seen) {
		ret = ec_err(-ENOMEM, "out of memory");
		goto out;
	}
	p->n_layer = nl;
	p->n_expert = ne;
	ret = read_keys(json_object_get(root, "vram"), path, "vram", p, seen,
			&p->vram, &p->n_vram);
	if (!ret)
		ret = read_keys(json_object_get(root, "ram"), path, "ram", p,
				seen, &p->ram, &p->n_ram);
	if (ret < 0)
		goto out;
	p->vram_budget = json_integer_value(json_object_get(root,
							    "vram_budget"));
	p->ram_budget = json_integer_value(json_object_get(root,
							   "ram_budget"));
	p->vram_bytes = json_integer_value(json_object_get(root,
							   "vram_bytes"));
	p->ram_bytes = json_integer_value(json_object_get(root, "ram_bytes"));
	p->vram_share = json_number_value(json_object_get(root,
							  "vram_share"));
	p->ram_share = json_number_value(json_object_get(root, "ram_share"));
	*out = p;
	p = NULL;
out:
	ec_plan_free(p);
	free(seen);
	json_decref(root);
	return ret;
}

int ec_plan_check(const struct ec_plan *p, const struct ec_model *m)
{
	if (p->n_layer != m->hp.n_layer || p->n_expert != m->hp.n_expert)
		return ec_err(-EC_EINVAL, "plan is for %u layers x %u experts,"
			      " the model has %u x %u", p->n_layer,
			      p->n_expert, m->hp.n_layer, m->hp.n_expert);
	return 0;
}
