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

/* Tokens routed per layer (max over layers = tokens seen). */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, EC_BPF_MAX_LAYERS);
	__type(key, __u32);
	__type(value, __u64);
} layer_tokens SEC(".maps");

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

struct route_ctx {
	const __s32 *ids;	/* (n_tok, k) in the traced process */
	const __u32 *wts;	/* (n_tok, k) float32 bits */
	__u32 layer;
	__u32 n_expert;
	__u32 k;
	__u64 base;		/* tokens of this layer before the batch */
};

/*
 * Callback state must stay constant across iterations (the verifier
 * checks bpf_loop callbacks until their states converge), so drops are
 * counted in the map, not in route_ctx.
 */
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
	__s32 id = -1;
	__u32 wb = 0;

	if (bpf_probe_read_user(&id, sizeof(id), rc->ids + i) || id < 0 ||
	    (__u32)id >= rc->n_expert) {
		drop(1);
		return 0;
	}
	bpf_probe_read_user(&wb, sizeof(wb), rc->wts + i);
	st = expert(rc->layer, (__u32)id);
	if (!st) {
		drop(1);
		return 0;
	}
	__sync_fetch_and_add(&st->routed, 1);
	__sync_fetch_and_add(&st->weight_q16, f32_to_q16(wb));
	st->last_token = rc->base + i / rc->k + 1;
	return 0;
}

SEC("usdt")
int BPF_USDT(ec_route_batch, __u32 layer, __u32 n_layer, __u32 n_expert,
	     __u32 n_tok, __u32 k, __u64 pos0, const __s32 *ids,
	     const float *wts)
{
	struct route_ctx rc = { .ids = ids, .wts = (const __u32 *)wts,
				.layer = layer, .n_expert = n_expert, .k = k };
	struct ec_traffic_meta *m;
	__u64 *tok, pairs = (__u64)n_tok * k;
	__u32 l = layer;

	if (!traced() || !k)
		return 0;
	m = meta();
	tok = bpf_map_lookup_elem(&layer_tokens, &l);
	if (tok)
		rc.base = __sync_fetch_and_add(tok, n_tok);
	if (m) {
		m->n_layer = n_layer;
		m->n_expert = n_expert;
		m->k = k;
		__sync_fetch_and_add(&m->route_batches, 1);
		__sync_fetch_and_add(&m->route_pairs, pairs);
	}
	if (pairs > EC_BPF_MAX_ROUTE) {
		drop(pairs - EC_BPF_MAX_ROUTE);
		pairs = EC_BPF_MAX_ROUTE;
	}
	bpf_loop((__u32)pairs, route_one, &rc, 0);
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
