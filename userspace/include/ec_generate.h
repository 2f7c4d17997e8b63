/* SPDX-License-Identifier: MIT */
/* Text generation loop: prefill a prompt, then sample token by token. */
#ifndef EC_GENERATE_H
#define EC_GENERATE_H

#include <stdint.h>

#include "ec_infer.h"
#include "ec_sampler.h"

struct ec_gen_stats {
	uint32_t prompt_tokens;
	uint32_t generated_tokens;
	double prompt_seconds;		/* prefill wall time */
	uint32_t decode_steps;		/* single-token forward passes */
	double decode_seconds;		/* wall time of the decode steps */
	int stopped_at_eos;
};

/*
 * Called with every generated id, in order; return non-zero to stop.
 */
typedef int (*ec_gen_token_fn)(void *priv, int32_t id);

/*
 * Prefill `prompt` (n_prompt > 0 ids), then generate up to max_new tokens,
 * stopping after a token for which is_stop[id] is set (is_stop may be NULL;
 * array of n_vocab bytes).  The stop token is reported but not fed back.
 */
int ec_generate(struct ec_ctx *ctx, struct ec_sampler *smp,
		const int32_t *prompt, uint32_t n_prompt, uint32_t max_new,
		const uint8_t *is_stop, ec_gen_token_fn on_token, void *priv,
		struct ec_gen_stats *st);

/* Monotonic seconds. */
double ec_now(void);

#endif
