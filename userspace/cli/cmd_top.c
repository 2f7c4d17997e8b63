// SPDX-License-Identifier: MIT
/* `expertcache top`: live expert traffic and storage I/O, every second. */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "bpf_cli.h"
#include "cli.h"
#include "ec_bpf.h"
#include "ec_error.h"
#include "ec_storage.h"
#include "trace_report.h"

static void usage(FILE *f)
{
	fprintf(f,
		"usage: expertcache top [--pid PID | --cgroup DIR | -- CMD "
		"ARGS] [--interval S]\n\n"
		"A live view of a running expertcache, refreshed every "
		"interval: tokens/s,\nthe hottest experts of each layer, hit "
		"rate and load latency per tier, and\nread bandwidth per "
		"device.  Needs root (eBPF).\n\n"
		EC_BPF_TARGET_HELP
		"  -i, --interval S   refresh period (default 1)\n"
		"  -c, --count N      exit after N refreshes\n"
		"  -n, --experts N    experts shown per layer (default 6)\n"
		"  --no-clear         append frames instead of redrawing\n"
		"  --exact-hits       trap on every expert lookup to count "
		"hits (default:\n                     hits = lookups - misses, "
		"lower overhead)\n"
		"  -h, --help         this help\n");
}

struct top_state {
	struct ec_traffic_snap cur, prev;
	struct ec_tierlat_snap io, io_prev;
	uint32_t experts;
	double interval;
};

static const struct ec_io_row *find_row(const struct ec_io_row *rows,
					uint32_t n, const uint32_t key[2])
{
	uint32_t i;

	for (i = 0; i < n; i++)
		if (rows[i].key[0] == key[0] && rows[i].key[1] == key[1])
			return &rows[i];
	return NULL;
}

static uint64_t d(uint64_t now, uint64_t before)
{
	return now > before ? now - before : 0;
}

static void show_tiers(const struct top_state *s)
{
	char a[32], b[32], c[32];
	uint32_t t, i;

	printf("%-8s %10s %9s %8s %11s %10s %10s\n", "tier", "lookups/s",
	       "hit rate", "loads/s", "load MB/s", "load p50", "load p99");
	for (t = 0; t < EC_BPF_MAX_TIERS; t++) {
		const struct ec_tier_stats *x = &s->cur.tiers[t];
		const struct ec_tier_stats *y = &s->prev.tiers[t];
		uint64_t hits = d(x->hits, y->hits), miss = d(x->misses,
							      y->misses);
		__u64 slots[EC_BPF_HIST_SLOTS];

		if (!x->hits && !x->misses && !x->loads)
			continue;
		for (i = 0; i < EC_BPF_HIST_SLOTS; i++)
			slots[i] = d(x->slots[i], y->slots[i]);
		printf("%-8s %10.0f %8.1f%% %8.0f %11.1f %10s %10s\n",
		       ec_tier_name(t), (hits + miss) / s->interval,
		       hits + miss ? 100.0 * hits / (hits + miss) : 0.0,
		       d(x->loads, y->loads) / s->interval,
		       d(x->bytes, y->bytes) / s->interval / 1e6,
		       ec_fmt_ns(ec_hist_percentile(slots, EC_BPF_HIST_SLOTS,
						    0.5), a, sizeof(a)),
		       ec_fmt_ns(ec_hist_percentile(slots, EC_BPF_HIST_SLOTS,
						    0.99), b, sizeof(b)));
	}
	(void)c;
}

static void show_io_rows(const struct ec_io_row *rows, uint32_t n,
			 const struct ec_io_row *prev, uint32_t n_prev,
			 int uring, double interval)
{
	char name[64], a[32], b[32];
	uint32_t i, j;

	for (i = 0; i < n; i++) {
		const struct ec_io_row *p = find_row(prev, n_prev, rows[i].key);
		const struct ec_io_stats *x = &rows[i].st;
		__u64 lat[EC_BPF_LAT_SLOTS], qd[EC_BPF_QD_SLOTS];

		for (j = 0; j < EC_BPF_LAT_SLOTS; j++)
			lat[j] = d(x->slots[j], p ? p->st.slots[j] : 0);
		for (j = 0; j < EC_BPF_QD_SLOTS; j++)
			qd[j] = d(x->qd_slots[j], p ? p->st.qd_slots[j] : 0);
		if (uring)
			ec_bpf_uring_op_name(rows[i].key[0], name,
					     sizeof(name));
		else
			ec_bpf_dev_name(rows[i].key[0], rows[i].key[1], name,
					sizeof(name));
		printf("%-8s %-11s %8.0f req/s %9.1f MB/s  p50 %9s  p99 %9s"
		       "  depth <= %.0f\n", uring ? "io_uring" : "block",
		       name, d(x->count, p ? p->st.count : 0) / interval,
		       d(x->bytes, p ? p->st.bytes : 0) / interval / 1e6,
		       ec_fmt_ns(ec_hist_percentile(lat, EC_BPF_LAT_SLOTS,
						    0.5), a, sizeof(a)),
		       ec_fmt_ns(ec_hist_percentile(lat, EC_BPF_LAT_SLOTS,
						    0.99), b, sizeof(b)),
		       ec_hist_percentile(qd, EC_BPF_QD_SLOTS, 0.99) - 1);
	}
}

/* Index of the largest non-zero cnt[] not yet taken, or -1. */
static int64_t next_hottest(const uint64_t *cnt, uint8_t *taken, uint32_t n)
{
	int64_t best = -1;
	uint32_t e;

	for (e = 0; e < n; e++)
		if (cnt[e] && !taken[e] && (best < 0 || cnt[e] > cnt[best]))
			best = e;
	if (best >= 0)
		taken[best] = 1;
	return best;
}

/* Per layer: experts by routing count in this interval, hottest first. */
static void show_layers(const struct top_state *s)
{
	const struct ec_traffic_snap *c = &s->cur, *p = &s->prev;
	uint64_t *cnt = calloc(c->n_expert ? c->n_expert : 1, sizeof(*cnt));
	uint8_t *taken = calloc(c->n_expert ? c->n_expert : 1, 1);
	uint32_t l, e, i;

	if (!cnt || !taken || !c->n_layer)
		goto out;
	printf("\n%-6s %-*s %s\n", "layer", (int)s->experts * 11,
	       "hottest experts (share of this layer's routing)", "active");
	for (l = 0; l < c->n_layer; l++) {
		uint64_t sum = 0;
		uint32_t active = 0;

		for (e = 0; e < c->n_expert; e++) {
			uint64_t before = 0;

			if (p->experts && l < p->n_layer && e < p->n_expert)
				before = p->experts[(size_t)l * p->n_expert +
						    e].routed;
			cnt[e] = d(c->experts[(size_t)l * c->n_expert +
					      e].routed, before);
			sum += cnt[e];
			active += cnt[e] != 0;
			taken[e] = 0;
		}
		printf("%5u  ", l);
		for (i = 0; i < s->experts; i++) {
			int64_t best = next_hottest(cnt, taken, c->n_expert);

			if (best < 0)
				printf("%11s", "");
			else
				printf("e%-3u %4.0f%%  ", (uint32_t)best,
				       100.0 * cnt[best] / sum);
		}
		printf("%3u/%u\n", active, c->n_expert);
	}
out:
	free(cnt);
	free(taken);
}

static void show(struct top_state *s, const struct ec_bpf_target *tg,
		 double uptime, int clear)
{
	const struct ec_traffic_snap *c = &s->cur, *p = &s->prev;

	if (clear)
		printf("\033[H\033[2J");
	else
		printf("----\n");
	printf("expertcache top - %s%s%u, %.0f s, every %.1f s\n", tg->bin,
	       tg->filter_tgid ? ", pid " : "", tg->filter_tgid, uptime,
	       s->interval);
	printf("%.1f tokens/s (%llu in all), %.0f routing decisions/s\n\n",
	       d(c->n_tokens, p->n_tokens) / s->interval,
	       (unsigned long long)c->n_tokens,
	       d(c->meta.route_pairs, p->meta.route_pairs) / s->interval);
	show_tiers(s);
	show_io_rows(s->io.dev, s->io.n_dev, s->io_prev.dev, s->io_prev.n_dev,
		     0, s->interval);
	show_io_rows(s->io.op, s->io.n_op, s->io_prev.op, s->io_prev.n_op, 1,
		     s->interval);
	show_layers(s);
	fflush(stdout);
}

int ec_cmd_top(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "pid", required_argument, NULL, 'p' },
		{ "cgroup", required_argument, NULL, 'C' },
		{ "binary", required_argument, NULL, 'B' },
		{ "duration", required_argument, NULL, 'd' },
		{ "interval", required_argument, NULL, 'i' },
		{ "count", required_argument, NULL, 'c' },
		{ "experts", required_argument, NULL, 'n' },
		{ "no-clear", no_argument, NULL, 'N' },
		{ "exact-hits", no_argument, NULL, 'E' },
		{ "help", no_argument, NULL, 'h' },
		{ 0 },
	};
	struct ec_bpf_target tg = { 0 };
	struct ec_traffic_opts to = { 0 };
	struct top_state s = { .experts = 6, .interval = 1.0 };
	struct ec_traffic *tr = NULL;
	struct ec_tierlat *tl = NULL;
	uint32_t count = 0, frames = 0;
	int c, ret, rc = 1, clear = isatty(STDOUT_FILENO), exact = 0;
	char *end;

	while ((c = getopt_long(argc, argv, "+p:d:i:c:n:h", opts, NULL)) !=
	       -1) {
		ret = ec_bpf_target_opt(&tg, c, optarg, "top");
		if (ret < 0)
			return 2;
		if (ret)
			continue;
		switch (c) {
		case 'i':
			s.interval = strtod(optarg, &end);
			if (*end || s.interval < 0.05) {
				fprintf(stderr, "expertcache top: --interval "
					"'%s': at least 0.05 s\n", optarg);
				return 2;
			}
			break;
		case 'c':
		case 'n':
			if (ec_cli_parse_uint(optarg, c == 'c' ? &count :
					      &s.experts) < 0) {
				fprintf(stderr, "expertcache top: '%s' is not "
					"a count\n", optarg);
				return 2;
			}
			break;
		case 'N':
			clear = 0;
			break;
		case 'E':
			exact = 1;
			break;
		case 'h':
			usage(stdout);
			return 0;
		default:
			usage(stderr);
			return 2;
		}
	}
	if (s.experts > 16)
		s.experts = 16;
	ret = ec_bpf_check(false);
	if (ret < 0) {
		ec_bpf_cli_error("top", "BPF", ret);
		return 1;
	}
	if (ec_bpf_target_prepare(&tg, argc, argv, optind, "top") < 0)
		return 1;
	to.binary = tg.bin;
	to.pid = tg.attach_pid;
	to.filter_tgid = tg.filter_tgid;
	to.filter_cgid = tg.filter_cgid;
	to.light = !exact;
	ret = ec_traffic_open(&to, &tr);
	if (ret < 0) {
		ec_bpf_cli_error("top", tg.bin, ret);
		goto out;
	}
	if (*ec_traffic_failed(tr))
		fprintf(stderr, "expertcache top: warning: probes not "
			"attached: %s\n", ec_traffic_failed(tr));
	if ((tg.filter_tgid || tg.filter_cgid) &&
	    ec_tierlat_open(tg.filter_tgid, tg.filter_cgid, &tl) < 0)
		fprintf(stderr, "expertcache top: block layer not traced: %s\n",
			ec_error_msg());
	ec_bpf_target_start(&tg);
	while (ec_bpf_target_wait(&tg, s.interval)) {
		ec_traffic_snap_free(&s.prev);
		ec_tierlat_snap_free(&s.io_prev);
		s.prev = s.cur;
		s.io_prev = s.io;
		memset(&s.cur, 0, sizeof(s.cur));
		memset(&s.io, 0, sizeof(s.io));
		ret = ec_traffic_read(tr, &s.cur);
		if (ret >= 0 && tl)
			ret = ec_tierlat_read(tl, &s.io);
		if (ret < 0) {
			ec_bpf_cli_error("top", "reading the maps", ret);
			goto out;
		}
		frames++;
		show(&s, &tg, frames * s.interval, clear);
		if (count && frames >= count)
			break;
	}
	rc = 0;
out:
	ec_traffic_snap_free(&s.cur);
	ec_traffic_snap_free(&s.prev);
	ec_tierlat_snap_free(&s.io);
	ec_tierlat_snap_free(&s.io_prev);
	ec_tierlat_close(tl);
	ec_traffic_close(tr);
	ec_bpf_target_finish(&tg);
	return rc;
}
