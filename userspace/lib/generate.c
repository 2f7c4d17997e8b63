// SPDX-License-Identifier: MIT
/* Text generation loop: prefill a prompt, then sample token by token. */
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "ec_error.h"
#include "ec_generate.h"

double ec_now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec + ts.tv_nsec * 1e-9;
}

int ec_generate(struct ec_ctx *ctx, struct ec_sampler *smp,
		const int32_t *prompt, uint32_t n_prompt, uint32_t max_new,
		const uint8_t *is_stop, ec_gen_token_fn on_token, void *priv,
		struct ec_gen_stats *st)
{
	uint32_t n_vocab = ec_ctx_n_vocab(ctx);
	float *logits;
	double t0;
	int32_t id;
	int ret = 0;

	memset(st, 0, sizeof(*st));
	if (!n_prompt)
		return ec_err(-EC_EINVAL, "empty prompt: nothing to continue");
	if ((uint64_t)ec_ctx_pos(ctx) + n_prompt > ec_ctx_n_ctx(ctx))
		return ec_err(-EC_EINVAL,
			      "prompt of %u tokens does not fit the context "
			      "of %u tokens",
			      n_prompt, ec_ctx_n_ctx(ctx) - ec_ctx_pos(ctx));
	logits = malloc(sizeof(float) * n_vocab);
	if (!logits)
		return ec_err(-ENOMEM, "out of memory");
	for (uint32_t i = 0; i < n_prompt; i++)
		ec_sampler_accept(smp, prompt[i]);
	t0 = ec_now();
	ret = ec_ctx_eval(ctx, prompt, n_prompt, logits, 0);
	st->prompt_seconds = ec_now() - t0;
	st->prompt_tokens = n_prompt;
	if (ret < 0)
		goto out;
	t0 = ec_now();
	while (st->generated_tokens < max_new) {
		id = ec_sampler_sample(smp, logits);
		ec_sampler_accept(smp, id);
		st->generated_tokens++;
		if (on_token && on_token(priv, id))
			break;
		if (is_stop && is_stop[id]) {
			st->stopped_at_eos = 1;
			break;
		}
		if (st->generated_tokens == max_new ||
		    ec_ctx_pos(ctx) >= ec_ctx_n_ctx(ctx))
			break;
		ret = ec_ctx_eval(ctx, &id, 1, logits, 0);
		if (ret < 0)
			break;
		st->decode_steps++;
	}
	st->decode_seconds = ec_now() - t0;
out:
	free(logits);
	return ret;
}
