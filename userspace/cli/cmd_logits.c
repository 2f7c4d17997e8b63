// SPDX-License-Identifier: MIT
/* `expertcache logits`: token ids in, float32 logits out as .npy. */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "ec_backend.h"
#include "ec_error.h"
#include "ec_infer.h"
#include "ec_model.h"
#include "ec_npy.h"

static void usage(FILE *f)
{
	fprintf(f,
		"usage: expertcache logits -m MODEL --tokens 1,2,3 --out F.npy "
		"[--decode]\n\n"
		"Runs the token ids through the model and writes float32 "
		"logits of shape\n[n_tokens, vocab] to F.npy.\n\n"
		"  -m, --model PATH   .gguf file or Hugging Face model "
		"directory\n"
		"  --tokens LIST      comma-separated token ids\n"
		"  -o, --out FILE     output .npy\n"
		"  --decode           feed the tokens one at a time through "
		"the KV cache\n"
		"                     (default: one prefill pass)\n"
		"  --batch N          tokens per prefill chunk (default 64)\n"
		"  -t, --threads N    CPU threads (default: all online CPUs)\n"
		"  --backend B        cpu, cuda or auto (default auto)\n"
		"  --vram-budget S    VRAM for expert slots: size or %% of "
		"expert bytes\n"
		"  -h, --help         this help\n");
}

int ec_cmd_logits(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "model", required_argument, NULL, 'm' },
		{ "tokens", required_argument, NULL, 'T' },
		{ "out", required_argument, NULL, 'o' },
		{ "decode", no_argument, NULL, 'd' },
		{ "batch", required_argument, NULL, 'b' },
		{ "threads", required_argument, NULL, 't' },
		{ "backend", required_argument, NULL, 'B' },
		{ "vram-budget", required_argument, NULL, 'V' },
		{ "help", no_argument, NULL, 'h' },
		{ 0 },
	};
	const char *model_path = NULL, *tokens_arg = NULL, *out_path = NULL;
	const char *backend = NULL, *vram_budget = NULL;
	struct ec_ctx_params cp = { 0 };
	struct ec_backend *be = NULL;
	struct ec_model *m = NULL;
	struct ec_ctx *ctx = NULL;
	uint32_t n = 0, threads = 0, i, vocab;
	int32_t *ids = NULL;
	float *logits = NULL;
	int decode = 0, c, ret, rc = 1;

	while ((c = getopt_long(argc, argv, "m:o:t:h", opts, NULL)) != -1) {
		switch (c) {
		case 'm':
			model_path = optarg;
			break;
		case 'T':
			tokens_arg = optarg;
			break;
		case 'o':
			out_path = optarg;
			break;
		case 'd':
			decode = 1;
			break;
		case 'b':
			if (ec_cli_parse_uint(optarg, &cp.n_batch) < 0 ||
			    !cp.n_batch) {
				fprintf(stderr, "expertcache logits: --batch "
						"needs a positive integer\n");
				return 2;
			}
			break;
		case 't':
			if (ec_cli_parse_uint(optarg, &threads) < 0) {
				fprintf(stderr, "expertcache logits: --threads "
						"needs an integer\n");
				return 2;
			}
			break;
		case 'B':
			backend = optarg;
			break;
		case 'V':
			vram_budget = optarg;
			break;
		case 'h':
			usage(stdout);
			return 0;
		default:
			usage(stderr);
			return 2;
		}
	}
	if (!model_path || !tokens_arg || !out_path || optind != argc) {
		fprintf(stderr, "expertcache logits: -m, --tokens and --out "
				"are required\n\n");
		usage(stderr);
		return 2;
	}
	if (ec_cli_parse_ids(tokens_arg, &ids, &n) < 0) {
		fprintf(stderr, "expertcache logits: --tokens: expected "
				"comma-separated non-negative integers\n");
		return 2;
	}
	ret = ec_model_open(model_path, &m);
	if (ret < 0) {
		ec_cli_error(model_path, ret);
		goto out;
	}
	ret = ec_cli_backend_open("logits", backend, vram_budget, 0, threads, m,
				  &be);
	if (ret < 0)
		goto out;
	cp.n_ctx = n;
	ret = ec_ctx_create(m, be, &cp, &ctx);
	if (ret < 0) {
		ec_cli_error("context", ret);
		goto out;
	}
	vocab = m->hp.n_vocab;
	logits = malloc(sizeof(float) * (size_t)n * vocab);
	if (!logits) {
		fprintf(stderr, "expertcache logits: out of memory\n");
		goto out;
	}
	if (decode) {
		for (i = 0; i < n && ret >= 0; i++)
			ret = ec_ctx_eval(ctx, ids + i, 1,
					  logits + (size_t)i * vocab, 0);
	} else {
		ret = ec_ctx_eval(ctx, ids, n, logits, 1);
	}
	if (ret < 0) {
		ec_cli_error("forward pass", ret);
		goto out;
	}
	ret = ec_npy_write_f32(out_path, logits, n, vocab);
	if (ret < 0) {
		ec_cli_error(out_path, ret);
		goto out;
	}
	rc = 0;
out:
	free(logits);
	free(ids);
	ec_ctx_free(ctx);
	if (be)
		be->ops->destroy(be);
	ec_model_close(m);
	return rc;
}
