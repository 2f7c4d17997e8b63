/* SPDX-License-Identifier: MIT */
/* Next-token choice: greedy, or temperature with top-k / top-p, seeded. */
#ifndef EC_SAMPLER_H
#define EC_SAMPLER_H

#include <stdint.h>

struct ec_sampler_params {
	float temperature;	/* 0 = greedy (argmax) */
	uint32_t top_k;		/* 0 = off */
	float top_p;		/* 1 = off */
	uint64_t seed;
};

struct ec_sampler;

int ec_sampler_create(const struct ec_sampler_params *p, uint32_t n_vocab,
		      struct ec_sampler **out);
void ec_sampler_free(struct ec_sampler *s);

/*
 * Choose a token from logits (n_vocab).  Deterministic for a given seed and
 * sequence of logits.  Returns the id.
 */
int32_t ec_sampler_sample(struct ec_sampler *s, const float *logits);

#endif
