// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/*
 * expert_traffic.bpf.c - per-(layer, expert) traffic of libexpertcache from
 * its USDT probes (userspace/include/ec_probes.h): routed / hit / miss /
 * loaded bytes per expert and log2 load-latency histograms per tier, for
 * one process (targ_tgid) or cgroup (targ_cgid) or every user of the binary.
 */
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_tracing.h>
#include <bpf/usdt.bpf.h>

#include "expert_traffic.h"

/* Filters, set before load; 0 = any. */
const volatile __u32 targ_tgid = 0;
const volatile __u64 targ_cgid = 0;

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, EC_BPF_MAX_KEYS);
	__type(key, struct ec_expert_key);
	__type(value, struct ec_expert_stats);
} expert_counts SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, EC_BPF_MAX_TIERS);
	__type(key, __u32);
	__type(value, struct ec_tier_stats);
} load_latency SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct ec_traffic_meta);
} traffic_meta SEC(".maps");

static const struct ec_expert_stats zero_stats;

static __always_inline bool traced(void)
{
	if (targ_tgid && (bpf_get_current_pid_tgid() >> 32) != targ_tgid)
		return false;
	if (targ_cgid && bpf_get_current_cgroup_id() != targ_cgid)
		return false;
	return true;
}

static __always_inline struct ec_traffic_meta *meta(void)
{
	__u32 zero = 0;
	struct ec_traffic_meta *m = bpf_map_lookup_elem(&traffic_meta, &zero);

	if (m) {
		__u64 now = bpf_ktime_get_ns();

		if (!m->first_ns)
			m->first_ns = now;
		m->last_ns = now;
		m->tgid = bpf_get_current_pid_tgid() >> 32;
	}
	return m;
}

static __always_inline struct ec_expert_stats *expert(__u32 layer, __u32 e)
{
	struct ec_expert_key key = { .layer = layer, .expert = e };
	struct ec_expert_stats *st;

	st = bpf_map_lookup_elem(&expert_counts, &key);
	if (st)
		return st;
	bpf_map_update_elem(&expert_counts, &key, &zero_stats, BPF_NOEXIST);
	return bpf_map_lookup_elem(&expert_counts, &key);
}

static __always_inline struct ec_tier_stats *tier(__u32 t)
{
	if (t >= EC_BPF_MAX_TIERS)
		t = EC_BPF_MAX_TIERS - 1;
	return bpf_map_lookup_elem(&load_latency, &t);
}

static __always_inline __u32 log2_slot(__u64 v)
{
	__u32 r = 0;

	/* floor(log2(v)), 0 for v <= 1, without loops */
	if (v >> 32) { v >>= 32; r += 32; }
	if (v >> 16) { v >>= 16; r += 16; }
	if (v >> 8) { v >>= 8; r += 8; }
	if (v >> 4) { v >>= 4; r += 4; }
	if (v >> 2) { v >>= 2; r += 2; }
	if (v >> 1)
		r += 1;
	return r < EC_BPF_HIST_SLOTS ? r : EC_BPF_HIST_SLOTS - 1;
}

/* IEEE-754 single (bits) to 16.16 fixed point, for weights in [0, 65536). */
static __always_inline __u64 f32_to_q16(__u32 bits)
{
	__s32 exp = (bits >> 23) & 0xff;
	__u64 mant = (bits & 0x7fffff) | 0x800000;

	if (bits >> 31 || exp == 0)
		return 0;		/* negative, zero or denormal */
	if (exp == 0xff || exp >= 150 + 16)
		return 0xffffffffull;	/* inf / nan / too big */
	/* value = mant * 2^(exp - 150); q16 = value * 2^16 */
	if (exp >= 134)
		return mant << (exp - 134);
	if (134 - exp >= 64)
		return 0;
	return mant >> (134 - exp);
}

/*
 * route_chunk hands over a whole forward chunk: (n_layer, n_tok, k) ids and
 * weights in the traced process.  They are copied in pieces of ROUTE_PIECE
 * pairs, two user-memory reads per piece (such a read costs about as much
 * as the rest of the program, so never one per pair), into a per-CPU
 * buffer, and walked with bpf_loop.
 */
#define ROUTE_PIECE 2048

struct route_buf {
	__s32 ids[ROUTE_PIECE];
	__u32 wts[ROUTE_PIECE];	/* float32 bits */
};

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct route_buf);
} route_scratch SEC(".maps");

/*
 * Callback state must stay constant across iterations (the verifier
 * checks bpf_loop callbacks until their states converge): counters live
 * in maps, positions are recomputed from the index.
 */
struct route_ctx {
	struct route_buf *buf;
	const __s32 *ids;	/* in the traced process */
	const __u32 *wts;
	__u64 pairs;		/* n_layer * n_tok * k */
	__u32 per_layer;	/* n_tok * k */
	__u32 k;
	__u32 n_expert;
	__u32 first;		/* pair index of buf->ids[0] */
	__u64 base;		/* tokens seen before this chunk */
	__u64 seq;		/* this chunk's sequence number */
};

static __always_inline void drop(__u64 n)
{
	__u32 zero = 0;
	struct ec_traffic_meta *m = bpf_map_lookup_elem(&traffic_meta, &zero);

	if (m)
		__sync_fetch_and_add(&m->dropped, n);
}

static long route_one(__u32 i, void *data)
{
	struct route_ctx *rc = data;
	struct ec_expert_stats *st;
	__u32 p, layer, wb;
	__s32 id;

	if (i >= ROUTE_PIECE)
		return 1;
	id = rc->buf->ids[i];
	wb = rc->buf->wts[i];
	p = rc->first + i;
	layer = p / rc->per_layer;
	if (id < 0)
		return 0;		/* a layer that did not route */
	if ((__u32)id >= rc->n_expert) {
		drop(1);
		return 0;
	}
	st = expert(layer, (__u32)id);
	if (!st) {
		drop(1);
		return 0;
	}
	__sync_fetch_and_add(&st->routed, 1);
	__sync_fetch_and_add(&st->weight_q16, f32_to_q16(wb));
	st->last_token = rc->base + (p % rc->per_layer) / rc->k + 1;
	/* one lookup (expert fetch) per chunk and layer routing to it */
	if (st->last_batch != (rc->seq << 12 | layer)) {
		st->last_batch = rc->seq << 12 | layer;
		__sync_fetch_and_add(&st->lookups, 1);
	}
	return 0;
}

/* One piece: copy it in, walk it.  rc->first is set by the caller. */
static long route_piece(__u32 j, void *data)
{
	struct route_ctx *rc = data;
	__u64 first = (__u64)j * ROUTE_PIECE, n;

	if (first >= rc->pairs)
		return 1;
	n = rc->pairs - first;
	if (n > ROUTE_PIECE)
		n = ROUTE_PIECE;
	rc->first = first;
	if (bpf_probe_read_user(rc->buf->ids, n * sizeof(__s32),
				rc->ids + first) ||
	    bpf_probe_read_user(rc->buf->wts, n * sizeof(__u32),
				rc->wts + first)) {
		drop(n);
		return 0;
	}
	bpf_loop(n, route_one, rc, 0);
	return 0;
}

SEC("usdt")
int BPF_USDT(ec_route_chunk, __u32 n_layer, __u32 n_expert, __u32 n_tok,
	     __u32 k, __u64 pos0, const __s32 *ids, const float *wts)
{
	struct route_ctx rc = { .ids = ids, .wts = (const __u32 *)wts,
				.k = k, .n_expert = n_expert };
	struct ec_traffic_meta *m;
	__u32 zero = 0;

	if (!traced() || !k || !n_tok || !n_layer ||
	    n_layer > EC_BPF_MAX_LAYERS)
		return 0;
	rc.buf = bpf_map_lookup_elem(&route_scratch, &zero);
	m = meta();
	if (!rc.buf || !m)
		return 0;
	rc.per_layer = n_tok * k;
	rc.pairs = (__u64)rc.per_layer * n_layer;
	rc.base = __sync_fetch_and_add(&m->tokens, n_tok);
	rc.seq = __sync_fetch_and_add(&m->route_chunks, 1) + 1;
	__sync_fetch_and_add(&m->route_pairs, rc.pairs);
	m->n_layer = n_layer;
	m->n_expert = n_expert;
	m->k = k;
	if (rc.pairs > EC_BPF_MAX_ROUTE) {
		drop(rc.pairs - EC_BPF_MAX_ROUTE);
		rc.pairs = EC_BPF_MAX_ROUTE;
	}
	bpf_loop((rc.pairs + ROUTE_PIECE - 1) / ROUTE_PIECE, route_piece, &rc,
		 0);
	return 0;
}

SEC("usdt")
int BPF_USDT(ec_hit, __u32 layer, __u32 e, __u32 t)
{
	struct ec_expert_stats *st;
	struct ec_tier_stats *ts;

	if (!traced())
		return 0;
	meta();
	st = expert(layer, e);
	if (st)
		__sync_fetch_and_add(&st->hits, 1);
	ts = tier(t);
	if (ts)
		__sync_fetch_and_add(&ts->hits, 1);
	return 0;
}

SEC("usdt")
int BPF_USDT(ec_miss, __u32 layer, __u32 e, __u32 t)
{
	struct ec_expert_stats *st;
	struct ec_tier_stats *ts;

	if (!traced())
		return 0;
	meta();
	st = expert(layer, e);
	if (st)
		__sync_fetch_and_add(&st->misses, 1);
	ts = tier(t);
	if (ts)
		__sync_fetch_and_add(&ts->misses, 1);
	return 0;
}

SEC("usdt")
int BPF_USDT(ec_load_done, __u32 layer, __u32 e, __u64 bytes, __u64 ns,
	     __u32 t, __u32 device, __s32 err)
{
	struct ec_expert_stats *st;
	struct ec_tier_stats *ts;

	if (!traced())
		return 0;
	meta();
	st = expert(layer, e);
	if (st) {
		__sync_fetch_and_add(&st->loads, 1);
		__sync_fetch_and_add(&st->load_bytes, bytes);
		__sync_fetch_and_add(&st->load_ns, ns);
		if (err)
			__sync_fetch_and_add(&st->load_errors, 1);
	}
	ts = tier(t);
	if (!ts)
		return 0;
	__sync_fetch_and_add(&ts->loads, 1);
	__sync_fetch_and_add(&ts->bytes, bytes);
	__sync_fetch_and_add(&ts->sum_ns, ns);
	__sync_fetch_and_add(&ts->slots[log2_slot(ns)], 1);
	if (ns > ts->max_ns)
		ts->max_ns = ns;	/* racy but monotone enough */
	return 0;
}

SEC("usdt")
int BPF_USDT(ec_evict, __u32 layer, __u32 e, __u32 t)
{
	struct ec_expert_stats *st;

	if (!traced())
		return 0;
	st = expert(layer, e);
	if (st)
		__sync_fetch_and_add(&st->evictions, 1);
	return 0;
}

SEC("usdt")
int BPF_USDT(ec_prefetch_issued, __u32 layer, __u32 e, __u32 t)
{
	struct ec_expert_stats *st;

	if (!traced())
		return 0;
	st = expert(layer, e);
	if (st)
		__sync_fetch_and_add(&st->prefetch_issued, 1);
	return 0;
}

SEC("usdt")
int BPF_USDT(ec_prefetch_used, __u32 layer, __u32 e, __u32 t)
{
	struct ec_expert_stats *st;

	if (!traced())
		return 0;
	st = expert(layer, e);
	if (st)
		__sync_fetch_and_add(&st->prefetch_used, 1);
	return 0;
}

SEC("usdt")
int BPF_USDT(ec_substitute, __u32 layer, __u32 wanted, __u32 used)
{
	struct ec_expert_stats *st;

	if (!traced())
		return 0;
	st = expert(layer, wanted);
	if (st)
		__sync_fetch_and_add(&st->substituted, 1);
	return 0;
}

char LICENSE[] SEC("license") = "Dual BSD/GPL";
