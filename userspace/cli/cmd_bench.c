// SPDX-License-Identifier: MIT
/* `expertcache bench`: prefill and decode speed on token ids (llama-bench). */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "ec_backend.h"
#include "ec_backend_cuda.h"
#include "ec_error.h"
#include "ec_generate.h"
#include "ec_infer.h"
#include "ec_model.h"
#include "routed_stats.h"
#include "run_storage.h"

static void usage(FILE *f)
{
	fprintf(f,
		"usage: expertcache bench -m MODEL [-p N] [-n N] [-t N] "
		"[--reps R] [--json] [--stats-json F]\n\n"
		"Times a prefill of N prompt tokens and N single-token decode "
		"steps on\npseudo-random token ids (no tokenizer needed), like "
		"llama-bench.\n\n"
		"  -m, --model PATH   .gguf file or Hugging Face model "
		"directory\n"
		"  -p, --prompt N     prompt tokens (default 64)\n"
		"  -n, --decode N     decode steps (default 32)\n"
		"  -t, --threads N    CPU threads (default: all online)\n"
		"  --reps R           repetitions; the best is reported "
		"(default 1)\n"
		"  --seed S           token id seed (default 1)\n"
		"  --backend B        cpu, cuda or auto (default auto)\n"
		"  --vram-budget S    VRAM for expert slots (CUDA): size or %% "
		"of the expert\n                     bytes, e.g. 12G or 25%%\n"
		"  --json             one JSON object\n"
		"  --stats-json FILE  write the runtime's routing counters "
		"(per layer and\n                     expert) as JSON, e.g. to "
		"check 'expertcache trace'\n"
		"  -h, --help         this help\n\n"
		"With --ram-budget (or --plan, --layout) experts stream from "
		"storage through\nthe expert cache; --json then adds its "
		"statistics for the decode steps of\nthe last repetition "
		"under \"storage\".\n%s",
		ec_run_storage_help);
}

/* The routing counters (routed_stats.h) as one JSON object. */
static int write_routed(const char *path, const struct ec_model *m,
			const struct ec_ctx *ctx)
{
	json_t *o = json_object();
	int ret = o && !ec_routed_stats_json(o, m, ctx) &&
		  !json_dump_file(o, path, JSON_COMPACT) ? 0 : -1;

	if (ret < 0)
		fprintf(stderr, "expertcache bench: cannot write %s\n", path);
	json_decref(o);
	return ret;
}

/* The CUDA counters of the last repetition's decode steps, one line. */
static void print_cuda(struct ec_backend *be, uint32_t n_d, double wall)
{
	struct ec_cuda_stats st;
	double uses;

	if (!n_d || wall <= 0 || !ec_backend_is_cuda(be) ||
	    ec_backend_cuda_get_stats(be, &st) < 0)
		return;
	uses = (double)(st.expert_hits + st.expert_misses);
	printf("cuda decode: %u slots, hit rate %.3f, %.1f MB copied/token "
	       "in %.1f copies, VRAM prefetch depth %u: %llu issued, %llu "
	       "used (%llu late), %llu wasted; host waiting on copies "
	       "%.1f%%, GPU idle for routing %.1f%%, host in moe_ffn "
	       "%.1f%%\n", st.n_slots, uses ? st.expert_hits / uses : 0.0,
	       st.h2d_bytes / 1e6 / n_d, (double)st.h2d_copies / n_d,
	       st.prefetch_depth, (unsigned long long)st.prefetch_issued,
	       (unsigned long long)st.prefetch_used,
	       (unsigned long long)st.prefetch_late,
	       (unsigned long long)st.prefetch_wasted,
	       100 * st.copy_wait_ns * 1e-9 / wall,
	       100 * st.sync_bubble_ns * 1e-9 / wall,
	       100 * st.moe_host_ns * 1e-9 / wall);
}

int ec_cmd_bench(int argc, char **argv)
{
	static const struct option base[] = {
		{ "model", required_argument, NULL, 'm' },
		{ "prompt", required_argument, NULL, 'p' },
		{ "decode", required_argument, NULL, 'n' },
		{ "threads", required_argument, NULL, 't' },
		{ "reps", required_argument, NULL, 'r' },
		{ "seed", required_argument, NULL, 's' },
		{ "json", no_argument, NULL, 'j' },
		{ "stats-json", required_argument, NULL, 'S' },
		{ "backend", required_argument, NULL, 'B' },
		{ "vram-budget", required_argument, NULL, 'V' },
		{ "help", no_argument, NULL, 'h' },
	};
	struct option opts[sizeof(base) / sizeof(base[0]) + 16];
	size_t nb = sizeof(base) / sizeof(base[0]), k;
	struct run_storage_opts so = { 0 };
	struct run_storage *rs = NULL;
	double wall = 0;	/* decode seconds of the last repetition */
	uint32_t n_p = 64, n_d = 32, threads = 0, reps = 1, seed = 1, i, r;
	const char *model = NULL, *stats_json = NULL;
	const char *backend = NULL, *vram_budget = NULL;
	struct ec_ctx_params cp = { 0 };
	struct ec_backend *be = NULL;
	struct ec_model *m = NULL;
	struct ec_ctx *ctx = NULL;
	int32_t *ids = NULL;
	float *logits = NULL;
	double best_p = 0, best_d = 0, t0, dt;
	int json = 0, c, ret, rc = 1;
	char what[160];
	uint64_t x;

	memcpy(opts, base, sizeof(base));
	for (k = 0; ec_run_storage_options[k].name; k++)
		opts[nb + k] = ec_run_storage_options[k];
	memset(&opts[nb + k], 0, sizeof(opts[0]));
	while ((c = getopt_long(argc, argv, "m:p:n:t:h", opts, NULL)) != -1) {
		uint32_t *dst = NULL;

		ret = ec_run_storage_parse(c, optarg, &so);
		if (ret < 0) {
			fprintf(stderr, "expertcache bench: invalid value "
				"'%s'\n", optarg);
			return 2;
		}
		if (ret > 0)
			continue;
		switch (c) {
		case 'm':
			model = optarg;
			continue;
		case 'p':
			dst = &n_p;
			break;
		case 'n':
			dst = &n_d;
			break;
		case 't':
			dst = &threads;
			break;
		case 'r':
			dst = &reps;
			break;
		case 's':
			dst = &seed;
			break;
		case 'j':
			json = 1;
			continue;
		case 'S':
			stats_json = optarg;
			continue;
		case 'B':
			backend = optarg;
			continue;
		case 'V':
			vram_budget = optarg;
			continue;
		case 'h':
			usage(stdout);
			return 0;
		default:
			usage(stderr);
			return 2;
		}
		if (ec_cli_parse_uint(optarg, dst) < 0) {
			fprintf(stderr, "expertcache bench: '%s' is not a "
					"non-negative integer\n", optarg);
			return 2;
		}
	}
	if (!model || optind != argc || !n_p || !reps) {
		usage(stderr);
		return 2;
	}
	ret = ec_model_open(model, &m);
	if (ret < 0) {
		ec_cli_error(model, ret);
		return 1;
	}
	if (ec_cli_backend_open("bench", backend, vram_budget,
				so.vram_prefetch, threads, m, &be) < 0)
		goto out;
	cp.n_ctx = n_p + n_d + 1;
	if (ec_run_storage_ctx_params(&so, &cp) < 0)
		goto out;
	ret = ec_ctx_create(m, be, &cp, &ctx);
	if (ret < 0) {
		ec_cli_error("context", ret);
		goto out;
	}
	if (ec_run_storage_attach(&so, m, ctx, &rs) < 0)
		goto out;
	ids = malloc(sizeof(*ids) * (n_p + n_d));
	logits = malloc(sizeof(float) * m->hp.n_vocab);
	if (!ids || !logits)
		goto out;
	x = seed * 0x9e3779b97f4a7c15ull + 1;
	for (i = 0; i < n_p + n_d; i++) {
		x ^= x << 13;
		x ^= x >> 7;
		x ^= x << 17;
		ids[i] = (int32_t)(x % m->hp.n_vocab);
	}
	for (r = 0; r < reps; r++) {
		ec_ctx_reset(ctx);
		t0 = ec_now();
		ret = ec_ctx_eval(ctx, ids, n_p, logits, 0);
		dt = ec_now() - t0;
		if (ret < 0)
			break;
		if (n_p / dt > best_p)
			best_p = n_p / dt;
		if (r == reps - 1) {
			ec_run_storage_reset_stats(rs);
			ec_backend_cuda_reset_stats(be);
		}
		t0 = ec_now();
		for (i = 0; i < n_d && ret >= 0; i++)
			ret = ec_ctx_eval(ctx, ids + n_p + i, 1, logits, 0);
		dt = ec_now() - t0;
		wall = dt;	/* the span the storage stats cover */
		if (n_d && n_d / dt > best_d)
			best_d = n_d / dt;
	}
	if (ret < 0) {
		ec_cli_error("forward pass", ret);
		goto out;
	}
	ec_cli_backend_describe(be, what, sizeof(what));
	if (json) {
		json_t *st = json_object(), *cj = json_object();
		char *sj = NULL, *cs = NULL;

		if (st && rs) {
			ec_run_storage_stats(rs, ctx, st, wall);
			sj = json_dumps(st, JSON_COMPACT);
		}
		/* CUDA counters of the last repetition's decode steps */
		if (cj) {
			ec_cli_backend_stats_json(be, cj);
			if (json_object_get(cj, "cuda"))
				cs = json_dumps(json_object_get(cj, "cuda"),
						JSON_COMPACT);
		}
		printf("{\"model\": \"%s\", \"threads\": %u, "
		       "\"backend\": \"%s\", \"prompt_tokens\": %u, "
		       "\"decode_tokens\": %u, "
		       "\"prompt_tok_per_s\": %.3f, \"decode_tok_per_s\": %.3f"
		       "%s%s%s%s}\n",
		       model, threads, what, n_p, n_d, best_p,
		       best_d, sj ? ", \"storage\": " : "", sj ? sj : "",
		       cs ? ", \"cuda\": " : "", cs ? cs : "");
		free(sj);
		free(cs);
		json_decref(st);
		json_decref(cj);
	} else {
		printf("%s: prefill %u tokens %.2f tok/s, decode %u tokens "
		       "%.2f tok/s (%s, best of %u)\n",
		       model, n_p, best_p, n_d, best_d, what,
		       reps);
		print_cuda(be, n_d, wall);
	}
	rc = stats_json && write_routed(stats_json, m, ctx) < 0;
out:
	free(ids);
	free(logits);
	ec_run_storage_detach(rs, ctx);
	ec_ctx_free(ctx);
	if (be)
		be->ops->destroy(be);
	ec_model_close(m);
	return rc;
}
