// SPDX-License-Identifier: MIT
/* Routing trace JSONL: reader (jansson, whole file) and line writer. */
#define _GNU_SOURCE
#include <errno.h>
#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ec_error.h"
#include "ec_trace.h"

/* Bounds that keep the simulator's per-key arrays reasonable. */
#define MAX_LAYER 1024
#define MAX_EXPERT 16384

struct ec_trace_writer {
	FILE *f;
	char *path;
	int err;
};

static int grow(void **p, uint64_t *cap, uint64_t need, size_t elem)
{
	uint64_t n = *cap ? *cap : 256;
	void *q;

	if (need <= *cap)
		return 0;
	while (n < need)
		n *= 2;
	q = realloc(*p, n * elem);
	if (!q)
		return -ENOMEM;
	*p = q;
	*cap = n;
	return 0;
}

/* problem_id: an integer, or a string hashed (FNV-1a) to one. */
static int get_problem(json_t *v, int64_t *out)
{
	const char *s;
	uint64_t h = 1469598103934665603ull;

	if (!v || json_is_null(v)) {
		*out = 0;
		return 0;
	}
	if (json_is_integer(v)) {
		*out = json_integer_value(v);
		return 0;
	}
	if (!json_is_string(v))
		return -1;
	for (s = json_string_value(v); *s; s++)
		h = (h ^ (unsigned char)*s) * 1099511628211ull;
	*out = (int64_t)(h >> 1);
	return 0;
}

#define BAD(fmt, ...)                                                        \
	ec_err(-EC_EFORMAT, "%s:%llu: " fmt, path, (unsigned long long)lineno, \
	       ##__VA_ARGS__)

/* Allocated lengths of the trace's growing arrays. */
struct caps {
	uint64_t rec, acc, prob;
};

static int parse_line(struct ec_trace *t, json_t *o, const char *path,
		      uint64_t lineno, struct caps *cap)
{
	json_t *layer = json_object_get(o, "layer");
	json_t *tok = json_object_get(o, "token_idx");
	json_t *ex = json_object_get(o, "experts");
	json_t *pr = json_object_get(o, "gating_probs");
	struct ec_trace_rec *rec;
	size_t n, i;

	if (!json_is_integer(layer) || json_integer_value(layer) < 0 ||
	    json_integer_value(layer) >= MAX_LAYER)
		return BAD("'layer': expected an integer in [0, %d)",
			   MAX_LAYER);
	if (!json_is_integer(tok) || json_integer_value(tok) < 0)
		return BAD("'token_idx': expected a non-negative integer");
	if (!json_is_array(ex))
		return BAD("'experts': expected an array of expert ids");
	n = json_array_size(ex);
	if (pr && !json_is_null(pr) &&
	    (!json_is_array(pr) || json_array_size(pr) != n))
		return BAD("'gating_probs': expected an array of %zu numbers "
			   "(one per expert)", n);
	if (grow((void **)&t->rec, &cap->rec, t->n_rec + 1,
		 sizeof(*t->rec)) ||
	    grow((void **)&t->experts, &cap->acc, t->n_access + n,
		 sizeof(*t->experts)) ||
	    grow((void **)&t->probs, &cap->prob, t->n_access + n,
		 sizeof(*t->probs)))
		return ec_err(-ENOMEM, "%s: out of memory", path);
	rec = &t->rec[t->n_rec];
	if (get_problem(json_object_get(o, "problem_id"), &rec->problem_id))
		return BAD("'problem_id': expected an integer or a string");
	rec->token_idx = json_integer_value(tok);
	rec->layer = (uint32_t)json_integer_value(layer);
	rec->n = (uint32_t)n;
	rec->first = t->n_access;
	for (i = 0; i < n; i++) {
		json_t *e = json_array_get(ex, i);
		json_t *p = pr && json_is_array(pr) ? json_array_get(pr, i) :
			    NULL;

		if (!json_is_integer(e) || json_integer_value(e) < 0 ||
		    json_integer_value(e) >= MAX_EXPERT)
			return BAD("'experts'[%zu]: expected an integer in "
				   "[0, %d)", i, MAX_EXPERT);
		if (p && !json_is_number(p))
			return BAD("'gating_probs'[%zu]: expected a number",
				   i);
		t->experts[t->n_access + i] =
			(uint32_t)json_integer_value(e);
		t->probs[t->n_access + i] = p ? (float)json_number_value(p) :
					    NAN;
		if (t->experts[t->n_access + i] + 1 > t->n_expert)
			t->n_expert = t->experts[t->n_access + i] + 1;
	}
	if (t->n_rec == 0 ||
	    t->rec[t->n_rec - 1].problem_id != rec->problem_id ||
	    t->rec[t->n_rec - 1].token_idx != rec->token_idx)
		t->n_tokens++;
	rec->token_seq = t->n_tokens - 1;
	if (rec->layer + 1 > t->n_layer)
		t->n_layer = rec->layer + 1;
	t->n_access += n;
	t->n_rec++;
	return 0;
}

int ec_trace_load(const char *path, struct ec_trace **out)
{
	struct caps caps = { 0 };
	uint64_t lineno = 0;
	struct ec_trace *t;
	char *line = NULL;
	size_t cap = 0;
	ssize_t len;
	FILE *f;
	int ret = 0;

	*out = NULL;
	f = fopen(path, "re");
	if (!f)
		return ec_err(-errno, "%s: cannot open: %s", path,
			      strerror(errno));
	t = calloc(1, sizeof(*t));
	if (!t) {
		fclose(f);
		return ec_err(-ENOMEM, "out of memory");
	}
	while ((len = getline(&line, &cap, f)) >= 0) {
		json_error_t jerr;
		json_t *o;

		lineno++;
		if (strspn(line, " \t\r\n") == (size_t)len)
			continue;
		o = json_loadb(line, (size_t)len, 0, &jerr);
		if (!o || !json_is_object(o)) {
			ret = BAD("%s", o ? "expected a JSON object" :
				  jerr.text);
			json_decref(o);
			break;
		}
		ret = parse_line(t, o, path, lineno, &caps);
		json_decref(o);
		if (ret < 0)
			break;
	}
	if (!ret && ferror(f))
		ret = ec_err(-EIO, "%s: read error", path);
	free(line);
	fclose(f);
	if (ret < 0) {
		ec_trace_free(t);
		return ret;
	}
	*out = t;
	return 0;
}

void ec_trace_free(struct ec_trace *t)
{
	if (!t)
		return;
	free(t->rec);
	free(t->experts);
	free(t->probs);
	free(t);
}

int ec_trace_writer_open(const char *path, struct ec_trace_writer **out)
{
	struct ec_trace_writer *w;

	*out = NULL;
	w = calloc(1, sizeof(*w));
	if (!w)
		return ec_err(-ENOMEM, "out of memory");
	w->path = strdup(path);
	w->f = fopen(path, "we");
	if (!w->f || !w->path) {
		int err = w->f ? ENOMEM : errno;

		if (w->f)
			fclose(w->f);
		free(w->path);
		free(w);
		return ec_err(-err, "%s: cannot create: %s", path,
			      strerror(err));
	}
	*out = w;
	return 0;
}

int ec_trace_write(struct ec_trace_writer *w, int64_t problem_id,
		   int64_t token_idx, uint32_t layer, const int32_t *experts,
		   const float *probs, uint32_t n)
{
	FILE *f = w->f;
	uint32_t i;

	fprintf(f, "{\"problem_id\": %lld, \"token_idx\": %lld, "
		"\"layer\": %u, \"experts\": [", (long long)problem_id,
		(long long)token_idx, layer);
	for (i = 0; i < n; i++)
		fprintf(f, "%s%d", i ? ", " : "", experts[i]);
	fputc(']', f);
	if (probs) {
		fputs(", \"gating_probs\": [", f);
		for (i = 0; i < n; i++)
			fprintf(f, "%s%.7g", i ? ", " : "",
				isfinite(probs[i]) ? probs[i] : 0.0f);
		fputc(']', f);
	}
	if (fputs("}\n", f) == EOF && !w->err)
		w->err = -errno;
	if (w->err)
		return ec_err(w->err, "%s: write failed: %s", w->path,
			      strerror(-w->err));
	return 0;
}

int ec_trace_writer_close(struct ec_trace_writer *w)
{
	int ret;

	if (!w)
		return 0;
	ret = w->err;
	if (fclose(w->f) != 0 && !ret)
		ret = -errno;
	if (ret < 0)
		ret = ec_err(ret, "%s: write failed: %s", w->path,
			     strerror(-ret));
	free(w->path);
	free(w);
	return ret;
}
