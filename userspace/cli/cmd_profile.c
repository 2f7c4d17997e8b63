// SPDX-License-Identifier: MIT
/* `expertcache profile`: per-expert access counts and recency from a trace. */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "ec_error.h"
#include "ec_storage.h"

static void usage(FILE *f)
{
	fprintf(f,
		"usage: expertcache profile --from-trace T.jsonl --out P.json "
		"[--warmup-tokens N]\n\n"
		"Counts how often each (layer, expert) was routed to and when "
		"it was last\nused; 'expertcache plan' turns the profile into "
		"a pinning plan.\n\n"
		"  --from-trace FILE   routing trace, JSONL\n"
		"  --from-bpf ...      from a running process with eBPF, or\n"
		"  --from-stats FILE   from 'run --stats-json' counters (see "
		"'profile --from-bpf --help')\n"
		"  -o, --out FILE      profile to write (JSON, see "
		"docs/STORAGE.md)\n"
		"  --warmup-tokens N   skip the first N tokens\n"
		"  -h, --help          this help\n");
}

int ec_cmd_profile(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "from-trace", required_argument, NULL, 't' },
		{ "out", required_argument, NULL, 'o' },
		{ "warmup-tokens", required_argument, NULL, 'w' },
		{ "help", no_argument, NULL, 'h' },
		{ 0 },
	};
	const char *trace = NULL, *out = NULL;
	struct ec_profile *p = NULL;
	struct ec_trace *t = NULL;
	uint32_t warmup = 0, *top = NULL, n_top = 0, i;
	int c, ret, rc = 1;

	for (c = 1; c < argc && strcmp(argv[c], "--"); c++)
		if (!strcmp(argv[c], "--from-bpf") ||	/* cmd_profile_bpf.c */
		    !strncmp(argv[c], "--from-stats", 12))
			return ec_cmd_profile_bpf(argc, argv);
	while ((c = getopt_long(argc, argv, "o:h", opts, NULL)) != -1) {
		switch (c) {
		case 't':
			trace = optarg;
			break;
		case 'o':
			out = optarg;
			break;
		case 'w':
			if (ec_cli_parse_uint(optarg, &warmup) < 0) {
				fprintf(stderr, "expertcache profile: "
					"--warmup-tokens '%s'\n", optarg);
				return 2;
			}
			break;
		case 'h':
			usage(stdout);
			return 0;
		default:
			usage(stderr);
			return 2;
		}
	}
	if (!trace || !out) {
		fprintf(stderr, "expertcache profile: need --from-trace and "
			"--out\n");
		return 2;
	}
	ret = ec_trace_load(trace, &t);
	if (ret >= 0)
		ret = ec_profile_from_trace(t, warmup, &p);
	if (ret >= 0) {
		snprintf(p->source, sizeof(p->source), "trace:%s", trace);
		ret = ec_profile_save(p, out);
	}
	if (ret >= 0)
		ret = ec_profile_top_keys(p, 0, 5, &top, &n_top);
	if (ret < 0) {
		ec_cli_error("profile", ret);
		goto out;
	}
	printf("profile %s: %llu tokens, %llu expert accesses, %u layers x "
	       "%u experts\nhottest:", out, (unsigned long long)p->n_tokens,
	       (unsigned long long)p->n_access, p->n_layer, p->n_expert);
	for (i = 0; i < n_top; i++)
		printf(" (%u,%u)x%llu", top[i] / p->n_expert,
		       top[i] % p->n_expert,
		       (unsigned long long)p->count[top[i]]);
	printf("\n");
	rc = 0;
out:
	free(top);
	ec_profile_free(p);
	ec_trace_free(t);
	return rc;
}
