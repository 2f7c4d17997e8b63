// SPDX-License-Identifier: MIT
/* The summary of `expertcache trace`: text for people, JSON for scripts. */
#include <jansson.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bpf_cli.h"
#include "ec_storage.h"
#include "trace_report.h"

const char *ec_tier_name(uint32_t tier)
{
	static const char *const names[] = { "vram", "host", "storage" };
	static char buf[16];

	if (tier < 3)
		return names[tier];
	snprintf(buf, sizeof(buf), "tier %u", tier);
	return buf;
}

static const struct ec_expert_stats *cell(const struct ec_traffic_snap *s,
					  uint32_t l, uint32_t e)
{
	return &s->experts[(size_t)l * s->n_expert + e];
}

/* The top n experts of layer l by routed count (ties: lower id first). */
static uint32_t hottest(const struct ec_traffic_snap *s, uint32_t l,
			uint32_t *ids, uint32_t n)
{
	uint32_t m, e, j;

	for (m = 0; m < n; m++) {
		int64_t best = -1;
		uint64_t best_r = 0;

		for (e = 0; e < s->n_expert; e++) {
			uint64_t r = cell(s, l, e)->routed;

			for (j = 0; j < m && ids[j] != e; j++)
				;
			if (j < m || !r || r <= best_r)
				continue;
			best = e;
			best_r = r;
		}
		if (best < 0)
			break;
		ids[m] = (uint32_t)best;
	}
	return m;
}

static void print_experts(const struct ec_trace_report *r)
{
	const struct ec_traffic_snap *s = &r->traffic;
	uint32_t ids[64], l, i, n, top = r->top > 64 ? 64 : r->top;

	if (!top || !s->meta.route_pairs)
		return;
	printf("\nhottest experts per layer (share of the layer's routing "
	       "decisions, mean gate weight):\n");
	for (l = 0; l < s->n_layer; l++) {
		uint64_t sum = 0;
		uint32_t e;

		for (e = 0; e < s->n_expert; e++)
			sum += cell(s, l, e)->routed;
		if (!sum)
			continue;
		n = hottest(s, l, ids, top);
		printf("  layer %3u ", l);
		for (i = 0; i < n; i++) {
			const struct ec_expert_stats *x = cell(s, l, ids[i]);

			printf(" e%-3u %5.1f%% (%.2f)", ids[i],
			       100.0 * x->routed / sum,
			       x->weight_q16 / 65536.0 / x->routed);
		}
		printf("\n");
	}
}

static void print_tiers(const struct ec_traffic_snap *s)
{
	uint64_t evict = 0, pf_i = 0, pf_u = 0, subst = 0;
	char a[32], b[32], c[32], d[32];
	size_t i, n = (size_t)s->n_layer * s->n_expert;
	uint32_t t;

	for (i = 0; i < n; i++) {
		evict += s->experts[i].evictions;
		pf_i += s->experts[i].prefetch_issued;
		pf_u += s->experts[i].prefetch_used;
		subst += s->experts[i].substituted;
	}
	for (t = 0; t < EC_BPF_MAX_TIERS; t++) {
		const struct ec_tier_stats *x = &s->tiers[t];
		uint64_t look = x->hits + x->misses;

		if (!look && !x->loads)
			continue;
		printf("\n%s tier: %llu hits%s, %llu misses (%.1f%% hit rate), "
		       "%llu loads, %s\n", ec_tier_name(t),
		       (unsigned long long)x->hits,
		       s->meta.flags & EC_TRAFFIC_DERIVED_HITS ?
		       " (lookups - misses)" : "",
		       (unsigned long long)x->misses,
		       look ? 100.0 * x->hits / look : 0.0,
		       (unsigned long long)x->loads,
		       ec_format_size(x->bytes, a, sizeof(a)));
		if (!x->loads)
			continue;
		printf("  load latency: mean %s, p50 < %s, p99 < %s, max %s\n",
		       ec_fmt_ns((double)x->sum_ns / x->loads, a, sizeof(a)),
		       ec_fmt_ns(ec_hist_percentile(x->slots,
						    EC_BPF_HIST_SLOTS, 0.5),
				 b, sizeof(b)),
		       ec_fmt_ns(ec_hist_percentile(x->slots,
						    EC_BPF_HIST_SLOTS, 0.99),
				 c, sizeof(c)),
		       ec_fmt_ns((double)x->max_ns, d, sizeof(d)));
		ec_hist_print(x->slots, EC_BPF_HIST_SLOTS, "  ");
	}
	if (evict || pf_i || subst)
		printf("evictions %llu, prefetches %llu issued / %llu used, "
		       "substitutions %llu\n", (unsigned long long)evict,
		       (unsigned long long)pf_i, (unsigned long long)pf_u,
		       (unsigned long long)subst);
}

static void print_io_row(const struct ec_io_row *row, const char *name,
			 double seconds, int block)
{
	const struct ec_io_stats *x = &row->st;
	char a[32], b[32], c[32], d[32], e[32];

	printf("  %-12s %llu requests, %s (%s/s), mean %s, p99 < %s, "
	       "max %s%s\n", name, (unsigned long long)x->count,
	       ec_format_size(x->bytes, a, sizeof(a)),
	       ec_format_size(seconds > 0 ? (uint64_t)(x->bytes / seconds) : 0,
			      b, sizeof(b)),
	       ec_fmt_ns(x->count ? (double)x->sum_ns / x->count : 0, c,
			 sizeof(c)),
	       ec_fmt_ns(ec_hist_percentile(x->slots, EC_BPF_LAT_SLOTS, 0.99),
			 d, sizeof(d)),
	       ec_fmt_ns((double)x->max_ns, e, sizeof(e)),
	       x->errors ? ", ERRORS" : "");
	printf("  %-12s queue depth p50 <= %.0f, max <= %.0f", "",
	       ec_hist_percentile(x->qd_slots, EC_BPF_QD_SLOTS, 0.5) - 1,
	       ec_hist_percentile(x->qd_slots, EC_BPF_QD_SLOTS, 1.0) - 1);
	if (block)
		printf("; submitted %llu bios, %s (%s plain reads)",
		       (unsigned long long)x->bios,
		       ec_format_size(x->bio_bytes, a, sizeof(a)),
		       ec_format_size(x->direct_bytes, b, sizeof(b)));
	printf("\n");
	ec_hist_print(x->slots, EC_BPF_LAT_SLOTS, "    ");
}

static void print_io(const struct ec_trace_report *r)
{
	char name[64], buf[32];
	uint32_t i;

	if (!r->have_io)
		return;
	printf("\nblock I/O of the traced process (issue -> complete):\n");
	if (!r->io.n_dev)
		printf("  none (reads served from memory or page cache)\n");
	for (i = 0; i < r->io.n_dev; i++) {
		const struct ec_io_row *row = &r->io.dev[i];

		snprintf(name, sizeof(name), "%s",
			 ec_bpf_dev_name(row->key[0], row->key[1], buf,
					 sizeof(buf)));
		print_io_row(row, name, r->seconds, 1);
	}
	if (r->io.n_op)
		printf("io_uring requests (submit -> complete):\n");
	for (i = 0; i < r->io.n_op; i++)
		print_io_row(&r->io.op[i],
			     ec_bpf_uring_op_name(r->io.op[i].key[0], name,
						  sizeof(name)),
			     r->seconds, 0);
	if (r->io_notes && *r->io_notes)
		printf("%s", r->io_notes);
}

void ec_trace_report_print(const struct ec_trace_report *r)
{
	const struct ec_traffic_snap *s = &r->traffic;

	printf("expertcache trace: %s", r->binary);
	if (r->tgid)
		printf(", pid %u", r->tgid);
	printf(", %.2f s\n", r->seconds);
	if (!s->meta.route_chunks && !s->n_keys) {
		printf("no probe fired: the process did not run the model "
		       "while traced\n");
		return;
	}
	printf("%u layers x %u experts, %llu tokens, %llu routing decisions"
	       " (%llu dropped)\n", s->n_layer, s->n_expert,
	       (unsigned long long)s->n_tokens,
	       (unsigned long long)s->meta.route_pairs,
	       (unsigned long long)s->meta.dropped);
	print_experts(r);
	print_tiers(s);
	print_io(r);
}

/* (n_layer, n_expert) grid of one field as nested arrays. */
static json_t *grid(const struct ec_traffic_snap *s, size_t off)
{
	json_t *rows = json_array();
	uint32_t l, e;

	for (l = 0; rows && l < s->n_layer; l++) {
		json_t *row = json_array();

		for (e = 0; row && e < s->n_expert; e++) {
			const uint8_t *p = (const uint8_t *)cell(s, l, e);
			uint64_t v;

			memcpy(&v, p + off, sizeof(v));
			json_array_append_new(row, json_integer((json_int_t)v));
		}
		json_array_append_new(rows, row);
	}
	return rows;
}

static json_t *hist(const __u64 *slots, int n)
{
	json_t *a = json_array();
	int i;

	for (i = 0; a && i < n; i++)
		json_array_append_new(a, json_integer((json_int_t)slots[i]));
	return a;
}

static json_t *io_json(const struct ec_io_stats *x)
{
	return json_pack("{s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:f, s:o, "
			 "s:o}",
			 "requests", (json_int_t)x->count,
			 "bytes", (json_int_t)x->bytes,
			 "bios", (json_int_t)x->bios,
			 "bio_bytes", (json_int_t)x->bio_bytes,
			 "direct_bytes", (json_int_t)x->direct_bytes,
			 "sum_ns", (json_int_t)x->sum_ns,
			 "max_ns", (json_int_t)x->max_ns,
			 "errors", (json_int_t)x->errors,
			 "p99_ns", ec_hist_percentile(x->slots,
						      EC_BPF_LAT_SLOTS, 0.99),
			 "hist_log2_ns", hist(x->slots, EC_BPF_LAT_SLOTS),
			 "queue_depth_log2", hist(x->qd_slots,
						  EC_BPF_QD_SLOTS));
}

int ec_trace_report_json(const struct ec_trace_report *r, const char *path)
{
	const struct ec_traffic_snap *s = &r->traffic;
	json_t *root, *tiers, *blk, *ur;
	char name[64];
	uint32_t i;
	int ret;

	root = json_pack("{s:s, s:I, s:f, s:s, s:I, s:I, s:I, s:I, s:I}",
			 "binary", r->binary, "pid", (json_int_t)r->tgid,
			 "seconds", r->seconds, "probes", r->probes,
			 "n_layer", (json_int_t)s->n_layer,
			 "n_expert", (json_int_t)s->n_expert,
			 "n_tokens", (json_int_t)s->n_tokens,
			 "route_pairs", (json_int_t)s->meta.route_pairs,
			 "dropped", (json_int_t)s->meta.dropped);
	if (!root)
		return -1;
	json_object_set_new(root, "route_chunks",
			    json_integer((json_int_t)s->meta.route_chunks));
	json_object_set_new(root, "hits_derived", json_boolean(
		s->meta.flags & EC_TRAFFIC_DERIVED_HITS));
#define GRID(f) json_object_set_new(root, #f, \
	grid(s, offsetof(struct ec_expert_stats, f)))
	GRID(routed);
	GRID(lookups);
	GRID(weight_q16);
	GRID(hits);
	GRID(misses);
	GRID(loads);
	GRID(load_bytes);
	GRID(evictions);
	GRID(prefetch_issued);
	GRID(prefetch_used);
	GRID(substituted);
#undef GRID
	tiers = json_object();
	for (i = 0; i < EC_BPF_MAX_TIERS; i++) {
		const struct ec_tier_stats *x = &s->tiers[i];

		if (!x->hits && !x->misses && !x->loads)
			continue;
		json_object_set_new(tiers, ec_tier_name(i), json_pack(
			"{s:I, s:I, s:I, s:I, s:I, s:I, s:o}",
			"hits", (json_int_t)x->hits,
			"misses", (json_int_t)x->misses,
			"loads", (json_int_t)x->loads,
			"bytes", (json_int_t)x->bytes,
			"sum_ns", (json_int_t)x->sum_ns,
			"max_ns", (json_int_t)x->max_ns,
			"hist_log2_ns", hist(x->slots, EC_BPF_HIST_SLOTS)));
	}
	json_object_set_new(root, "tiers", tiers);
	if (r->have_io) {
		blk = json_array();
		for (i = 0; i < r->io.n_dev; i++) {
			json_t *o = io_json(&r->io.dev[i].st);

			json_object_set_new(o, "device", json_string(
				ec_bpf_dev_name(r->io.dev[i].key[0],
						r->io.dev[i].key[1], name,
						sizeof(name))));
			json_object_set_new(o, "major",
					    json_integer(r->io.dev[i].key[0]));
			json_object_set_new(o, "minor",
					    json_integer(r->io.dev[i].key[1]));
			json_array_append_new(blk, o);
		}
		ur = json_array();
		for (i = 0; i < r->io.n_op; i++) {
			json_t *o = io_json(&r->io.op[i].st);

			json_object_set_new(o, "opcode",
					    json_integer(r->io.op[i].key[0]));
			json_object_set_new(o, "name", json_string(
				ec_bpf_uring_op_name(r->io.op[i].key[0], name,
						     sizeof(name))));
			json_array_append_new(ur, o);
		}
		json_object_set_new(root, "block", blk);
		json_object_set_new(root, "io_uring", ur);
	}
	ret = json_dump_file(root, path, JSON_COMPACT);
	json_decref(root);
	return ret;
}
