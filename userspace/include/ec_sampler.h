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
	/*
	 * llama.cpp-style repetition penalty over the last repeat_last_n
	 * accepted tokens: a positive logit is divided by it, a negative one
	 * multiplied.  1 (or 0) = off.
	 */
	float repeat_penalty;
	uint32_t repeat_last_n;
};

struct ec_sampler;

int ec_sampler_create(const struct ec_sampler_params *p, uint32_t n_vocab,
		      struct ec_sampler **out);
void ec_sampler_free(struct ec_sampler *s);

/* Record a token of the sequence (prompt or generated) for the penalty. */
void ec_sampler_accept(struct ec_sampler *s, int32_t id);

/*
 * Choose a token from logits (n_vocab).  Deterministic for a given seed and
 * sequence of logits.  Returns the id.
 */
int32_t ec_sampler_sample(struct ec_sampler *s, const float *logits);

#endif
