// SPDX-License-Identifier: MIT
/*
 * Writes the synthetic Qwen3-MoE GGUF of the GPU benchmarks (synth_model.h)
 * with a vocabulary, so that llama.cpp loads the very file expertcache is
 * measured on (tools/bench/bench_gpu_vs_llamacpp.sh).
 *
 *   synth_gguf OUT [--layers N] [--experts N] [--vocab N] [--hidden N]
 *              [--ff N] [--types q4km|q8_0|bf16] [--seed S]
 *
 * Defaults: Qwen3-30B-A3B's shapes (48 layers, 128 experts of 2048 x 768,
 * top-8, 32/4 heads of 128, vocabulary 151936), Q4_K_M-like types (Q4_K
 * gate/up/attention/embeddings, Q6_K down and output): about 17 GB.
 */
#include "synth_model.h"

static int usage(void)
{
	fprintf(stderr,
		"usage: synth_gguf OUT [--layers N] [--experts N] [--vocab N]\n"
		"                  [--hidden N] [--ff N] "
		"[--types q4km|q8_0|bf16] [--seed S]\n");
	return 2;
}

int main(int argc, char **argv)
{
	struct synth_spec s = { .n_layer = 48, .n_embd = 2048, .n_head = 32,
				.n_head_kv = 4, .head_dim = 128,
				.n_expert = 128, .n_used = 8, .n_ff = 768,
				.n_vocab = 151936, .t_embd = EC_Q4_K,
				.t_attn = EC_Q4_K, .t_out = EC_Q6_K,
				.t_gate_up = EC_Q4_K, .t_down = EC_Q6_K,
				.seed = 7, .with_vocab = 1 };
	const char *out = NULL;
	int ret;

	for (int i = 1; i < argc; i++) {
		const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;

		if (a[0] != '-') {
			if (out)
				return usage();
			out = a;
			continue;
		}
		if (!v)
			return usage();
		i++;
		if (!strcmp(a, "--layers"))
			s.n_layer = (uint32_t)atoi(v);
		else if (!strcmp(a, "--experts"))
			s.n_expert = (uint32_t)atoi(v);
		else if (!strcmp(a, "--vocab"))
			s.n_vocab = (uint32_t)atoi(v);
		else if (!strcmp(a, "--hidden"))
			s.n_embd = (uint32_t)atoi(v);
		else if (!strcmp(a, "--ff"))
			s.n_ff = (uint32_t)atoi(v);
		else if (!strcmp(a, "--seed"))
			s.seed = strtoull(v, NULL, 0);
		else if (!strcmp(a, "--types") && !strcmp(v, "q8_0"))
			s.t_embd = s.t_attn = s.t_out = s.t_gate_up = s.t_down =
				EC_Q8_0;
		else if (!strcmp(a, "--types") && !strcmp(v, "bf16"))
			s.t_embd = s.t_attn = s.t_out = s.t_gate_up = s.t_down =
				EC_BF16;
		else if (strcmp(a, "--types") || strcmp(v, "q4km"))
			return usage();
	}
	if (!out || !s.n_layer || !s.n_expert || s.n_expert < s.n_used ||
	    s.n_vocab < 256 + 676 + 3 || s.n_embd % 256 || s.n_ff % 256)
		return usage();
	ret = synth_write(out, &s);
	if (ret < 0) {
		fprintf(stderr, "synth_gguf: %s: %s\n", out, strerror(-ret));
		return 1;
	}
	return 0;
}
