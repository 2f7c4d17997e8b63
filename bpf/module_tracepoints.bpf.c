// SPDX-License-Identifier: GPL-2.0
/*
 * module_tracepoints.bpf.c - counts expertcache.ko slot transitions from its
 * tracepoints (expertcache:slot_claim/slot_fill/slot_abort/slot_evict),
 * optionally for one pool only.  Needs no kernel BTF: the context layout is
 * the tracepoint's format file (the loader checks the offsets at run time).
 */
#include <linux/bpf.h>
#include <linux/types.h>
#include <bpf/bpf_helpers.h>

#include "module_tracepoints.h"

/* Layout of events/expertcache/slot_fill/format (and the other slot_*). */
struct ec_slot_ctx {
	__u64 common;		/* type, flags, preempt count, pid */
	__u64 pool_id;		/* offset 8 */
	__u64 key;		/* offset 16 */
	__u64 gen;		/* offset 24 */
	__u32 slot;		/* offset 32 */
};

/* 0 = every pool; set before load. */
const volatile __u64 target_pool = 0;

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, EC_TP_NR);
	__type(key, __u32);
	__type(value, struct ec_tp_count);
} counts SEC(".maps");

static __always_inline int ec_count(struct ec_slot_ctx *ctx, __u32 which)
{
	struct ec_tp_count *c;

	if (target_pool && ctx->pool_id != target_pool)
		return 0;
	c = bpf_map_lookup_elem(&counts, &which);
	if (!c)
		return 0;
	__sync_fetch_and_add(&c->events, 1);
	__sync_fetch_and_add(&c->key_sum, ctx->key);
	return 0;
}

SEC("tracepoint/expertcache/slot_claim")
int ec_slot_claim(struct ec_slot_ctx *ctx)
{
	return ec_count(ctx, EC_TP_CLAIM);
}

SEC("tracepoint/expertcache/slot_fill")
int ec_slot_fill(struct ec_slot_ctx *ctx)
{
	return ec_count(ctx, EC_TP_FILL);
}

SEC("tracepoint/expertcache/slot_abort")
int ec_slot_abort(struct ec_slot_ctx *ctx)
{
	return ec_count(ctx, EC_TP_ABORT);
}

SEC("tracepoint/expertcache/slot_evict")
int ec_slot_evict(struct ec_slot_ctx *ctx)
{
	return ec_count(ctx, EC_TP_EVICT);
}

char LICENSE[] SEC("license") = "GPL";
