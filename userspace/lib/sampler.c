// SPDX-License-Identifier: MIT
/* Next-token choice: greedy, or temperature with top-k / top-p, seeded. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "ec_error.h"
#include "ec_sampler.h"

struct ec_sampler {
	struct ec_sampler_params p;
	uint32_t n_vocab;
	uint64_t state;		/* splitmix64 */
	struct cand {
		float logit;
		int32_t id;
	} *cand;		/* (n_vocab) */
	float *penalised;	/* (n_vocab) logits after the penalty */
	int32_t *recent;	/* ring of the last repeat_last_n tokens */
	uint32_t n_recent, next;
};

static uint64_t next_u64(struct ec_sampler *s)
{
	uint64_t z = (s->state += 0x9e3779b97f4a7c15ull);

	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
	return z ^ (z >> 31);
}

/* uniform in [0, 1) with 53 random bits */
static double next_unit(struct ec_sampler *s)
{
	return (double)(next_u64(s) >> 11) * (1.0 / 9007199254740992.0);
}

int ec_sampler_create(const struct ec_sampler_params *p, uint32_t n_vocab,
		      struct ec_sampler **out)
{
	struct ec_sampler *s;

	if (p->temperature < 0 || !(p->top_p > 0 && p->top_p <= 1) ||
	    !n_vocab || p->repeat_penalty < 0 || p->repeat_last_n > 1u << 20)
		return ec_err(-EC_EINVAL,
			      "sampler: need temperature >= 0 and 0 < top_p "
			      "<= 1 (got %g, %g)",
			      p->temperature, p->top_p);
	s = calloc(1, sizeof(*s));
	if (!s)
		return ec_err(-ENOMEM, "out of memory");
	s->cand = malloc(sizeof(*s->cand) * n_vocab);
	s->penalised = malloc(sizeof(float) * n_vocab);
	s->recent = malloc(sizeof(int32_t) * (p->repeat_last_n + 1));
	if (!s->cand || !s->penalised || !s->recent) {
		ec_sampler_free(s);
		return ec_err(-ENOMEM, "out of memory");
	}
	s->p = *p;
	s->n_vocab = n_vocab;
	s->state = p->seed;
	*out = s;
	return 0;
}

void ec_sampler_free(struct ec_sampler *s)
{
	if (!s)
		return;
	free(s->cand);
	free(s->penalised);
	free(s->recent);
	free(s);
}

void ec_sampler_accept(struct ec_sampler *s, int32_t id)
{
	if (!s->p.repeat_last_n)
		return;
	s->recent[s->next] = id;
	s->next = (s->next + 1) % s->p.repeat_last_n;
	if (s->n_recent < s->p.repeat_last_n)
		s->n_recent++;
}

/* The logits with the repetition penalty applied (or the input itself). */
static const float *penalise(struct ec_sampler *s, const float *logits)
{
	float pen = s->p.repeat_penalty;
	uint32_t i;

	if (pen == 0.0f || pen == 1.0f || !s->n_recent)
		return logits;
	memcpy(s->penalised, logits, sizeof(float) * s->n_vocab);
	for (i = 0; i < s->n_recent; i++) {
		int32_t id = s->recent[i];
		float *l;

		if (id < 0 || (uint32_t)id >= s->n_vocab)
			continue;
		l = &s->penalised[id];
		/* each distinct token once: mark done by comparing to input */
		if (*l != logits[id])
			continue;
		*l = *l > 0 ? *l / pen : *l * pen;
	}
	return s->penalised;
}

static int cmp_desc(const void *a, const void *b)
{
	const struct cand *x = a, *y = b;

	if (x->logit != y->logit)
		return x->logit < y->logit ? 1 : -1;
	return x->id - y->id;
}

int32_t ec_sampler_sample(struct ec_sampler *s, const float *logits)
{
	uint32_t i, n = s->n_vocab, keep;
	double sum, acc, r;

	logits = penalise(s, logits);
	if (s->p.temperature == 0.0f) {
		uint32_t best = 0;

		for (i = 1; i < n; i++)
			if (logits[i] > logits[best])
				best = i;
		return (int32_t)best;
	}
	for (i = 0; i < n; i++) {
		s->cand[i].logit = logits[i] / s->p.temperature;
		s->cand[i].id = (int32_t)i;
	}
	qsort(s->cand, n, sizeof(*s->cand), cmp_desc);
	keep = s->p.top_k && s->p.top_k < n ? s->p.top_k : n;
	sum = 0;
	for (i = 0; i < keep; i++)
		sum += exp((double)s->cand[i].logit - s->cand[0].logit);
	if (s->p.top_p < 1.0f) {
		acc = 0;
		for (i = 0; i < keep; i++) {
			acc += exp((double)s->cand[i].logit -
				   s->cand[0].logit) / sum;
			if (acc >= s->p.top_p) {
				keep = i + 1;
				break;
			}
		}
		sum = 0;
		for (i = 0; i < keep; i++)
			sum += exp((double)s->cand[i].logit -
				   s->cand[0].logit);
	}
	r = next_unit(s) * sum;
	acc = 0;
	for (i = 0; i < keep; i++) {
		acc += exp((double)s->cand[i].logit - s->cand[0].logit);
		if (r < acc)
			return s->cand[i].id;
	}
	return s->cand[keep - 1].id;
}
