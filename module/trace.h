/* SPDX-License-Identifier: GPL-2.0 */
/* trace.h - expertcache:* tracepoints: pools, slot transitions, refusals. */
#undef TRACE_SYSTEM
#define TRACE_SYSTEM expertcache

#if !defined(EC_TRACE_H) || defined(TRACE_HEADER_MULTI_READ)
#define EC_TRACE_H

#include <linux/tracepoint.h>

TRACE_EVENT(pool_create,
	TP_PROTO(u64 pool_id, int nid, u64 data_bytes, u64 huge_bytes,
		 u32 n_slots, u32 uid),
	TP_ARGS(pool_id, nid, data_bytes, huge_bytes, n_slots, uid),
	TP_STRUCT__entry(
		__field(u64, pool_id)
		__field(u64, data_bytes)
		__field(u64, huge_bytes)
		__field(int, nid)
		__field(u32, n_slots)
		__field(u32, uid)
	),
	TP_fast_assign(
		__entry->pool_id = pool_id;
		__entry->data_bytes = data_bytes;
		__entry->huge_bytes = huge_bytes;
		__entry->nid = nid;
		__entry->n_slots = n_slots;
		__entry->uid = uid;
	),
	TP_printk("pool=%llu node=%d bytes=%llu huge=%llu slots=%u uid=%u",
		  __entry->pool_id, __entry->nid, __entry->data_bytes,
		  __entry->huge_bytes, __entry->n_slots, __entry->uid)
);

TRACE_EVENT(pool_destroy,
	TP_PROTO(u64 pool_id, u64 data_bytes),
	TP_ARGS(pool_id, data_bytes),
	TP_STRUCT__entry(
		__field(u64, pool_id)
		__field(u64, data_bytes)
	),
	TP_fast_assign(
		__entry->pool_id = pool_id;
		__entry->data_bytes = data_bytes;
	),
	TP_printk("pool=%llu bytes=%llu", __entry->pool_id,
		  __entry->data_bytes)
);

DECLARE_EVENT_CLASS(ec_pool_user,
	TP_PROTO(u64 pool_id, bool writable),
	TP_ARGS(pool_id, writable),
	TP_STRUCT__entry(
		__field(u64, pool_id)
		__field(u32, writable)
	),
	TP_fast_assign(
		__entry->pool_id = pool_id;
		__entry->writable = writable;
	),
	TP_printk("pool=%llu writable=%u", __entry->pool_id,
		  __entry->writable)
);

DEFINE_EVENT(ec_pool_user, pool_attach,
	TP_PROTO(u64 pool_id, bool writable),
	TP_ARGS(pool_id, writable));

DEFINE_EVENT(ec_pool_user, pool_detach,
	TP_PROTO(u64 pool_id, bool writable),
	TP_ARGS(pool_id, writable));

/* Slot transitions: the layout BPF programs read (see bpf/). */
DECLARE_EVENT_CLASS(ec_slot,
	TP_PROTO(u64 pool_id, u32 slot, u64 key, u64 gen),
	TP_ARGS(pool_id, slot, key, gen),
	TP_STRUCT__entry(
		__field(u64, pool_id)
		__field(u64, key)
		__field(u64, gen)
		__field(u32, slot)
	),
	TP_fast_assign(
		__entry->pool_id = pool_id;
		__entry->key = key;
		__entry->gen = gen;
		__entry->slot = slot;
	),
	TP_printk("pool=%llu slot=%u key=%llu gen=%llu", __entry->pool_id,
		  __entry->slot, __entry->key, __entry->gen)
);

DEFINE_EVENT(ec_slot, slot_claim,
	TP_PROTO(u64 pool_id, u32 slot, u64 key, u64 gen),
	TP_ARGS(pool_id, slot, key, gen));

DEFINE_EVENT(ec_slot, slot_fill,
	TP_PROTO(u64 pool_id, u32 slot, u64 key, u64 gen),
	TP_ARGS(pool_id, slot, key, gen));

DEFINE_EVENT(ec_slot, slot_abort,
	TP_PROTO(u64 pool_id, u32 slot, u64 key, u64 gen),
	TP_ARGS(pool_id, slot, key, gen));

DEFINE_EVENT(ec_slot, slot_evict,
	TP_PROTO(u64 pool_id, u32 slot, u64 key, u64 gen),
	TP_ARGS(pool_id, slot, key, gen));

TRACE_EVENT(limit_refused,
	TP_PROTO(u32 uid, u64 requested, u64 user_pinned, u64 total_pinned),
	TP_ARGS(uid, requested, user_pinned, total_pinned),
	TP_STRUCT__entry(
		__field(u64, requested)
		__field(u64, user_pinned)
		__field(u64, total_pinned)
		__field(u32, uid)
	),
	TP_fast_assign(
		__entry->requested = requested;
		__entry->user_pinned = user_pinned;
		__entry->total_pinned = total_pinned;
		__entry->uid = uid;
	),
	TP_printk("uid=%u requested=%llu user_pinned=%llu total_pinned=%llu",
		  __entry->uid, __entry->requested, __entry->user_pinned,
		  __entry->total_pinned)
);

#endif /* EC_TRACE_H */

#undef TRACE_INCLUDE_PATH
#define TRACE_INCLUDE_PATH .
#undef TRACE_INCLUDE_FILE
#define TRACE_INCLUDE_FILE trace
#include <trace/define_trace.h>
