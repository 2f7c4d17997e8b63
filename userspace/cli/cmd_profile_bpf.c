// SPDX-License-Identifier: MIT
/*
 * `expertcache profile --from-bpf` / `--from-stats`: the profile
 * (docs/STORAGE.md format) of a running expertcache from the USDT probes or
 * from maps `trace --pin` left behind, or, without privileges, from the
 * runtime's own counters in a --stats-json file; `profile` hands over to
 * here when it sees either option.
 */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bpf_cli.h"
#include "cli.h"
#include "ec_bpf.h"
#include "ec_error.h"
#include "ec_storage.h"
#include "routed_stats.h"

static void usage(FILE *f)
{
	fprintf(f,
		"usage: expertcache profile --from-bpf [--pid PID | --cgroup "
		"DIR | -- CMD ARGS]\n"
		"                           [--duration S] --out P.json\n"
		"       expertcache profile --from-bpf --pinned --out P.json\n"
		"       expertcache profile --from-stats S.json --out "
		"P.json\n\n"
		"Writes the access profile of a running model as the eBPF "
		"probes see it: the\nsame format as 'profile --from-trace' "
		"(counts and recency per layer and\nexpert), for 'expertcache "
		"plan'.  Needs root.\n\n"
		EC_BPF_TARGET_HELP
		"  --pinned           read the maps 'trace --pin' left in "
		EC_BPF_PIN_DIR "\n"
		"  --from-stats FILE  no BPF, no root: the routing counters "
		"'expertcache run\n                     --stats-json' (or "
		"bench) wrote; counts only, no recency\n"
		"  -o, --out FILE     profile to write\n"
		"  -h, --help         this help\n");
}

/* The snapshot as a profile: routed counts; recency from last_token. */
static int snap_to_profile(const struct ec_traffic_snap *s, const char *src,
			   struct ec_profile **out)
{
	struct ec_profile *p;
	uint64_t *counts, i, n = (uint64_t)s->n_layer * s->n_expert;
	int ret;

	*out = NULL;
	if (!n)
		return ec_err(-EC_EINVAL, "no routing seen: the process did "
			      "not run the model while traced");
	counts = malloc(n * sizeof(*counts));
	if (!counts)
		return ec_err(-ENOMEM, "out of memory");
	for (i = 0; i < n; i++)
		counts[i] = s->experts[i].routed;
	ret = ec_profile_from_counts(s->n_layer, s->n_expert, counts,
				     s->n_tokens, &p);
	free(counts);
	if (ret < 0)
		return ret;
	for (i = 0; i < n; i++)
		p->last_seen[i] = (int64_t)s->experts[i].last_token - 1;
	snprintf(p->source, sizeof(p->source), "%s", src);
	*out = p;
	return 0;
}

int ec_cmd_profile_bpf(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "from-bpf", no_argument, NULL, 'F' },
		{ "from-stats", required_argument, NULL, 'S' },
		{ "pid", required_argument, NULL, 'p' },
		{ "cgroup", required_argument, NULL, 'C' },
		{ "binary", required_argument, NULL, 'B' },
		{ "duration", required_argument, NULL, 'd' },
		{ "pinned", no_argument, NULL, 'P' },
		{ "out", required_argument, NULL, 'o' },
		{ "help", no_argument, NULL, 'h' },
		{ 0 },
	};
	struct ec_bpf_target tg = { 0 };
	struct ec_traffic_opts to = { 0 };
	struct ec_traffic_snap snap = { 0 };
	struct ec_traffic *tr = NULL;
	struct ec_profile *p = NULL;
	const char *out = NULL, *stats = NULL;
	int c, ret, rc = 1, pinned = 0, child_rc;
	char src[256];

	optind = 1;
	while ((c = getopt_long(argc, argv, "+p:d:o:h", opts, NULL)) != -1) {
		ret = ec_bpf_target_opt(&tg, c, optarg, "profile");
		if (ret < 0)
			return 2;
		if (ret)
			continue;
		switch (c) {
		case 'F':
			break;
		case 'S':
			stats = optarg;
			break;
		case 'P':
			pinned = 1;
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
	if (!out || ((pinned || stats) && (tg.pid || tg.cgroup ||
					   optind < argc))) {
		fprintf(stderr, "expertcache profile: --from-bpf and "
			"--from-stats need --out; --pinned and --from-stats "
			"take no target\n");
		return 2;
	}
	if (stats) {
		ret = ec_routed_stats_profile(stats, &p);
		if (ret >= 0)
			ret = ec_profile_save(p, out);
		if (ret < 0) {
			ec_cli_error("profile", ret);
			goto out;
		}
		goto done;
	}
	if (pinned) {
		ret = ec_traffic_read_pinned(EC_BPF_PIN_DIR, &snap);
		snprintf(src, sizeof(src), "bpf:%s", EC_BPF_PIN_DIR);
		if (ret < 0) {
			ec_bpf_cli_error("profile", "--pinned", ret);
			return 1;
		}
		goto write;
	}
	ret = ec_bpf_check(false);
	if (ret < 0) {
		ec_bpf_cli_error("profile", "BPF", ret);
		return 1;
	}
	if (ec_bpf_target_prepare(&tg, argc, argv, optind, "profile") < 0)
		return 1;
	to.binary = tg.bin;
	to.pid = tg.attach_pid;
	to.filter_tgid = tg.filter_tgid;
	to.filter_cgid = tg.filter_cgid;
	to.routing_only = true;	/* a profile needs only routing */
	ret = ec_traffic_open(&to, &tr);
	if (ret < 0) {
		ec_bpf_cli_error("profile", tg.bin, ret);
		goto out;
	}
	if (*ec_traffic_failed(tr))
		fprintf(stderr, "expertcache profile: warning: probes not "
			"attached: %s\n", ec_traffic_failed(tr));
	fprintf(stderr, "expertcache profile: probing %s; Ctrl-C to stop\n",
		tg.bin);
	ec_bpf_target_start(&tg);
	while (ec_bpf_target_wait(&tg, 1.0))
		;
	ret = ec_traffic_read(tr, &snap);
	if (ret < 0) {
		ec_bpf_cli_error("profile", "reading the maps", ret);
		goto out;
	}
	if (tg.filter_tgid)
		snprintf(src, sizeof(src), "bpf:pid %u", tg.filter_tgid);
	else
		snprintf(src, sizeof(src), "bpf:%.250s", tg.bin);
write:
	ret = snap_to_profile(&snap, src, &p);
	if (ret >= 0)
		ret = ec_profile_save(p, out);
	if (ret < 0) {
		ec_cli_error("profile", ret);
		goto out;
	}
done:
	printf("profile %s: %llu tokens, %llu expert accesses, %u layers x "
	       "%u experts (%s)\n", out, (unsigned long long)p->n_tokens,
	       (unsigned long long)p->n_access, p->n_layer, p->n_expert,
	       p->source);
	rc = 0;
out:
	ec_profile_free(p);
	ec_traffic_snap_free(&snap);
	ec_traffic_close(tr);
	child_rc = ec_bpf_target_finish(&tg);
	if (tg.cmd && child_rc && !rc) {
		fprintf(stderr, "expertcache profile: %s exited with status "
			"%d\n", tg.cmd[0], child_rc);
		rc = 1;
	}
	return rc;
}
