// SPDX-License-Identifier: MIT
/* `expertcache inspect MODEL`: what a model is and what its experts weigh. */
#include <getopt.h>
#include <stdio.h>
#include <string.h>

#include "cli.h"
#include "ec_error.h"
#include "ec_model.h"
#include "ec_storage.h"

/* bytes per tensor type, indexed by dtype id (< 64) */
static void add_type(uint64_t *by_type, const struct ec_tensor *t)
{
	if (t->data && t->type < 64)
		by_type[t->type] += t->nbytes;
}

static void count_types(const struct ec_model *m, uint64_t *by_type)
{
	const struct ec_hparams *hp = &m->hp;
	uint32_t l, e, p;

	add_type(by_type, &m->tok_embd);
	add_type(by_type, &m->output_norm);
	if (!hp->tied_embeddings)
		add_type(by_type, &m->output);
	for (l = 0; l < hp->n_layer; l++) {
		const struct ec_layer *L = &m->layers[l];
		const struct ec_tensor *ts[] = {
			&L->attn_norm, &L->wq, &L->wk, &L->wv, &L->wo,
			&L->bq, &L->bk, &L->bv, &L->q_norm, &L->k_norm,
			&L->ffn_norm, &L->router, &L->sh_gate, &L->sh_up,
			&L->sh_down, &L->sh_router,
		};
		for (p = 0; p < sizeof(ts) / sizeof(ts[0]); p++)
			add_type(by_type, ts[p]);
		for (e = 0; e < hp->n_expert; e++)
			for (p = 0; p < EC_EXPERT_NPARTS; p++)
				add_type(by_type, &L->experts[e].w[p]);
	}
}

static void usage(FILE *f)
{
	fprintf(f,
		"usage: expertcache inspect [--json] MODEL\n\n"
		"MODEL is a .gguf file or a Hugging Face model directory\n"
		"(config.json + *.safetensors).  Prints the architecture, "
		"layer and expert\ncounts, sizes, bytes per expert and total "
		"expert bytes, and tensor types.\n\n"
		"  --json     one JSON object instead of text\n"
		"  -h, --help this help\n");
}

int ec_cmd_inspect(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "json", no_argument, NULL, 'j' },
		{ "help", no_argument, NULL, 'h' },
		{ 0 },
	};
	uint64_t by_type[64] = { 0 }, total = 0, experts, per;
	char b1[32], b2[32], b3[32];
	struct ec_model *m;
	int json = 0, c, ret;
	const struct ec_hparams *hp;
	uint32_t t;

	while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
		switch (c) {
		case 'j':
			json = 1;
			break;
		case 'h':
			usage(stdout);
			return 0;
		default:
			usage(stderr);
			return 2;
		}
	}
	if (optind != argc - 1) {
		usage(stderr);
		return 2;
	}
	ret = ec_model_open(argv[optind], &m);
	if (ret < 0) {
		ec_cli_error(argv[optind], ret);
		return 1;
	}
	hp = &m->hp;
	count_types(m, by_type);
	for (t = 0; t < 64; t++)
		total += by_type[t];
	experts = ec_model_total_expert_bytes(m);
	per = ec_model_expert_bytes(m, 0, 0);
	if (json) {
		printf("{\"path\": \"%s\", \"format\": \"%s\", "
		       "\"architecture\": \"%s\", \"layers\": %u, "
		       "\"experts_per_layer\": %u, \"experts_used\": %u, "
		       "\"hidden\": %u, \"expert_ff\": %u, "
		       "\"shared_expert_ff\": %u, \"heads\": %u, "
		       "\"kv_heads\": %u, \"head_dim\": %u, \"vocab\": %u, "
		       "\"bytes_per_expert\": %llu, "
		       "\"total_expert_bytes\": %llu, \"total_bytes\": %llu, "
		       "\"tensor_types\": {",
		       argv[optind],
		       m->format == EC_FORMAT_GGUF ? "gguf" : "safetensors",
		       ec_arch_name(hp->arch), hp->n_layer, hp->n_expert,
		       hp->n_expert_used, hp->n_embd, hp->n_ff_exp,
		       hp->n_ff_shexp, hp->n_head, hp->n_head_kv, hp->head_dim,
		       hp->n_vocab, (unsigned long long)per,
		       (unsigned long long)experts, (unsigned long long)total);
		const char *sep = "";
		for (t = 0; t < 64; t++) {
			if (!by_type[t])
				continue;
			printf("%s\"%s\": %llu", sep, ec_dtype_info(t)->name,
			       (unsigned long long)by_type[t]);
			sep = ", ";
		}
		printf("}}\n");
		ec_model_close(m);
		return 0;
	}
	printf("model            %s\n", argv[optind]);
	printf("format           %s (%u file%s)\n",
	       m->format == EC_FORMAT_GGUF ? "GGUF" : "safetensors",
	       m->n_files, m->n_files == 1 ? "" : "s");
	printf("architecture     %s\n", ec_arch_name(hp->arch));
	printf("layers           %u\n", hp->n_layer);
	printf("experts          %u per layer, %u used per token%s\n",
	       hp->n_expert, hp->n_expert_used,
	       hp->norm_topk_prob ? " (weights renormalised)" : "");
	if (hp->n_ff_shexp)
		printf("shared expert    ff %u, sigmoid gate\n",
		       hp->n_ff_shexp);
	printf("hidden size      %u\n", hp->n_embd);
	printf("expert ff size   %u\n", hp->n_ff_exp);
	printf("attention        %u heads, %u kv heads, head_dim %u%s%s\n",
	       hp->n_head, hp->n_head_kv, hp->head_dim,
	       hp->qk_norm == EC_QK_NORM_HEAD ? ", q/k norm per head" :
	       hp->qk_norm == EC_QK_NORM_FULL ? ", q/k norm" : "",
	       hp->attn_bias ? ", qkv bias" : "");
	printf("rope             %s, theta %g\n",
	       hp->rope_style == EC_ROPE_NEOX ? "neox" : "interleaved",
	       hp->rope_theta);
	printf("vocabulary       %u\n", hp->n_vocab);
	printf("context          %u\n", hp->n_ctx);
	ec_format_size(per, b1, sizeof(b1));
	printf("bytes per expert %s (%llu)\n", b1, (unsigned long long)per);
	ec_format_size(experts, b2, sizeof(b2));
	ec_format_size(total, b3, sizeof(b3));
	printf("expert bytes     %s in %u experts (%.1f%% of %s)\n", b2,
	       hp->n_layer * hp->n_expert,
	       total ? 100.0 * experts / total : 0.0, b3);
	printf("tensor types    ");
	for (t = 0; t < 64; t++) {
		if (!by_type[t])
			continue;
		ec_format_size(by_type[t], b1, sizeof(b1));
		printf(" %s %s", ec_dtype_info(t)->name, b1);
	}
	printf("\n");
	ec_model_close(m);
	return 0;
}
