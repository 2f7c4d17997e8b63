// SPDX-License-Identifier: MIT
/* `expertcache layout`: write experts in a profile-guided order. */
#include <getopt.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>

#include "cli.h"
#include "ec_error.h"
#include "ec_layout.h"
#include "ec_model.h"
#include "ec_storage.h"

static void usage(FILE *f)
{
	fprintf(f,
		"usage: expertcache layout [-m MODEL] (--profile P.json | "
		"--trace T.jsonl)...\n"
		"                          --out FILE [--hot PCT] "
		"[--warmup-tokens N]\n\n"
		"Copies every expert's gate, up and down weights into one "
		"4 KiB-aligned\nrecord of a layout file, hot experts first and "
		"experts routed together\nadjacent, so 'run --layout FILE' "
		"reads each expert with one request.\n\n"
		"  -m, --model PATH     the model (default: the bundled one)\n"
		"  --profile FILE       access counts (expertcache profile)\n"
		"  --trace FILE         routing trace: co-activation chains "
		"(and the counts\n"
		"                       when no --profile is given)\n"
		"  --hot PCT            per layer, the PCT%% most used experts "
		"go into the\n"
		"                       hot region at the start (default "
		"25)\n"
		"  --warmup-tokens N    skip the trace's first N tokens for "
		"counts\n"
		"  -o, --out FILE       the layout file to write\n"
		"  -h, --help           this help\n");
}

static void on_progress(void *arg, uint32_t done, uint32_t total)
{
	ec_progress_update(arg, done, total);
}

int ec_cmd_layout(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "model", required_argument, NULL, 'm' },
		{ "profile", required_argument, NULL, 'p' },
		{ "trace", required_argument, NULL, 't' },
		{ "hot", required_argument, NULL, 'H' },
		{ "warmup-tokens", required_argument, NULL, 'w' },
		{ "out", required_argument, NULL, 'o' },
		{ "help", no_argument, NULL, 'h' },
		{ 0 },
	};
	const char *model = NULL, *prof_path = NULL, *trace_path = NULL;
	const char *out = NULL;
	char model_buf[PATH_MAX], s1[32], s2[32];
	struct ec_profile *prof = NULL;
	struct ec_trace *trace = NULL;
	struct ec_layout *lf = NULL;
	struct ec_model *m = NULL;
	struct ec_progress pr;
	uint32_t *order = NULL, warmup = 0, n_keys;
	double hot = 25, span0, span1;
	char *end;
	int c, ret, rc = 1;

	while ((c = getopt_long(argc, argv, "m:o:h", opts, NULL)) != -1) {
		switch (c) {
		case 'm':
			model = optarg;
			break;
		case 'p':
			prof_path = optarg;
			break;
		case 't':
			trace_path = optarg;
			break;
		case 'H':
			hot = strtod(optarg, &end);
			if (end != optarg && *end == '%')
				end++;
			if (end == optarg || *end ||
			    !(hot >= 0 && hot <= 100)) {
				fprintf(stderr, "expertcache layout: --hot "
					"'%s': a percentage 0..100\n", optarg);
				return 2;
			}
			break;
		case 'w':
			if (ec_cli_parse_uint(optarg, &warmup) < 0) {
				fprintf(stderr, "expertcache layout: "
					"--warmup-tokens '%s'\n", optarg);
				return 2;
			}
			break;
		case 'o':
			out = optarg;
			break;
		case 'h':
			usage(stdout);
			return 0;
		default:
			usage(stderr);
			return 2;
		}
	}
	if (optind != argc || !out || (!prof_path && !trace_path)) {
		fprintf(stderr, "expertcache layout: need --out and --profile "
			"and/or --trace\n");
		return 2;
	}
	if (!model) {
		if (ec_cli_default_model(model_buf, sizeof(model_buf)) < 0) {
			fprintf(stderr, "expertcache layout: no -m given and "
				"no bundled model found in models/\n");
			return 1;
		}
		model = model_buf;
	}
	ret = ec_model_open(model, &m);
	if (ret < 0) {
		ec_cli_error(model, ret);
		goto out;
	}
	if (prof_path) {
		ret = ec_profile_load(prof_path, &prof);
		if (ret < 0) {
			ec_cli_error(prof_path, ret);
			goto out;
		}
	}
	if (trace_path) {
		ret = ec_trace_load(trace_path, &trace);
		if (ret >= 0 && !prof)
			ret = ec_profile_from_trace(trace, warmup, &prof);
		if (ret < 0) {
			ec_cli_error(trace_path, ret);
			goto out;
		}
	}
	n_keys = m->hp.n_layer * m->hp.n_expert;
	order = malloc(n_keys * sizeof(*order));
	if (!order)
		goto out;
	ret = ec_layout_order(m, prof, trace, hot, order);
	if (ret < 0) {
		ec_cli_error("layout", ret);
		goto out;
	}
	ec_progress_start(&pr, "writing layout");
	ret = ec_layout_write(m, order, out, on_progress, &pr);
	ec_progress_done(&pr);
	if (ret >= 0)
		ret = ec_layout_load(out, m, &lf);	/* read back, checked */
	if (ret < 0) {
		ec_cli_error(out, ret);
		goto out;
	}
	printf("layout %s: %u experts in %s (model expert bytes %s)\n", out,
	       n_keys, ec_format_size(lf->file_bytes, s1, sizeof(s1)),
	       ec_format_size(ec_model_total_expert_bytes(m), s2,
			      sizeof(s2)));
	printf("  hot region: the %.0f%% most used experts of each layer, "
	       "first\n", hot);
	if (trace) {
		span0 = ec_layout_mean_span(trace, m->hp.n_layer,
					    m->hp.n_expert, NULL);
		span1 = ec_layout_mean_span(trace, m->hp.n_layer,
					    m->hp.n_expert, order);
		printf("  co-activation: a token's experts of one layer span "
		       "%.2f records on average (model order: %.2f)\n",
		       span1, span0);
	}
	rc = 0;
out:
	ec_layout_free(lf);
	free(order);
	ec_trace_free(trace);
	ec_profile_free(prof);
	ec_model_close(m);
	return rc;
}
