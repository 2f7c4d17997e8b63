// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/*
 * tier_latency.bpf.c - the storage tier as the kernel sees it: block-layer
 * requests (issue -> complete) per device and io_uring requests (submit ->
 * complete) per opcode, as log2 latency and queue-depth histograms plus
 * bytes, for the engine's own I/O only (PID or cgroup filter).
 *
 * Completions run in interrupt context, where "current" is whoever was
 * interrupted, and requests may be issued from a kblockd worker, so
 * ownership is decided on the submitting side: a request is claimed in
 * block_io_start (6.5+, the submitter's context), or through its first bio
 * claimed in block_bio_queue / block_split; completions look the request
 * up by address.  The io_uring submit tracepoint was renamed in 6.4
 * (io_uring_submit_sqe -> io_uring_submit_req): both programs are here,
 * the loader enables the one the running kernel has.
 */
#include "vmlinux.h"
#include <bpf/bpf_core_read.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_tracing.h>

#include "tier_latency.h"

const volatile __u32 targ_tgid = 0;
const volatile __u64 targ_cgid = 0;

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, EC_BPF_MAX_DEVS);
	__type(key, struct ec_dev_key);
	__type(value, struct ec_io_stats);
} block_latency SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 256);
	__type(key, struct ec_uring_key);
	__type(value, struct ec_io_stats);
} uring_latency SEC(".maps");

/* bio address -> submitting tgid, until its request is issued. */
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, EC_BPF_MAX_INFLIGHT);
	__type(key, __u64);
	__type(value, __u32);
} bio_owner SEC(".maps");

/* request / io_kiocb address -> issue time. */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, EC_BPF_MAX_INFLIGHT);
	__type(key, __u64);
	__type(value, struct ec_io_start);
} blk_start SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, EC_BPF_MAX_INFLIGHT);
	__type(key, __u64);
	__type(value, struct ec_io_start);
} uring_start SEC(".maps");

/* 6.1 .. 6.3 name and layout; the ___ec suffix is dropped by CO-RE. */
struct trace_event_raw_io_uring_submit_sqe___ec {
	struct trace_entry ent;
	void *ctx;
	void *req;
	u64 user_data;
	u8 opcode;
} __attribute__((preserve_access_index));

/* 6.4 and later. */
struct trace_event_raw_io_uring_submit_req___ec {
	struct trace_entry ent;
	void *ctx;
	void *req;
	u64 user_data;
	u8 opcode;
} __attribute__((preserve_access_index));

static const struct ec_io_stats zero_io;

static __always_inline bool traced(void)
{
	if (targ_tgid && (bpf_get_current_pid_tgid() >> 32) != targ_tgid)
		return false;
	if (targ_cgid && bpf_get_current_cgroup_id() != targ_cgid)
		return false;
	return true;
}

static __always_inline __u32 log2_slot(__u64 v, __u32 n)
{
	__u32 r = 0;

	if (v >> 32) { v >>= 32; r += 32; }
	if (v >> 16) { v >>= 16; r += 16; }
	if (v >> 8) { v >>= 8; r += 8; }
	if (v >> 4) { v >>= 4; r += 4; }
	if (v >> 2) { v >>= 2; r += 2; }
	if (v >> 1)
		r += 1;
	return r < n ? r : n - 1;
}

static __always_inline struct ec_io_stats *io_stats(void *map, void *key)
{
	struct ec_io_stats *st = bpf_map_lookup_elem(map, key);

	if (st)
		return st;
	bpf_map_update_elem(map, key, &zero_io, BPF_NOEXIST);
	return bpf_map_lookup_elem(map, key);
}

static __always_inline void io_issue(struct ec_io_stats *st)
{
	__s64 depth = __sync_fetch_and_add(&st->inflight, 1) + 1;

	__sync_fetch_and_add(&st->qd_slots[log2_slot(depth, EC_BPF_QD_SLOTS)],
			     1);
}

static __always_inline void io_done(struct ec_io_stats *st, __u64 ts,
				    __u64 bytes, bool err)
{
	__u64 ns = bpf_ktime_get_ns() - ts;

	__sync_fetch_and_add(&st->inflight, -1);
	__sync_fetch_and_add(&st->count, 1);
	__sync_fetch_and_add(&st->bytes, bytes);
	__sync_fetch_and_add(&st->sum_ns, ns);
	if (err)
		__sync_fetch_and_add(&st->errors, 1);
	__sync_fetch_and_add(&st->slots[log2_slot(ns, EC_BPF_LAT_SLOTS)], 1);
	if (ns > st->max_ns)
		st->max_ns = ns;
}

static __always_inline struct ec_dev_key rq_dev(struct request *rq)
{
	struct ec_dev_key k = {};
	struct gendisk *disk;
	dev_t dev = 0;

	if (bpf_core_field_exists(rq->part))
		dev = BPF_CORE_READ(rq, part, bd_dev);
	if (dev) {
		k.major = dev >> 20;
		k.minor = dev & ((1u << 20) - 1);
		return k;
	}
	disk = BPF_CORE_READ(rq, q, disk);
	k.major = BPF_CORE_READ(disk, major);
	k.minor = BPF_CORE_READ(disk, first_minor);
	return k;
}

static __always_inline void claim_bio(__u64 bio)
{
	__u32 tgid = bpf_get_current_pid_tgid() >> 32;

	bpf_map_update_elem(&bio_owner, &bio, &tgid, BPF_ANY);
}

/* Once per bio (the kernel marks it traced), in the submitter's context. */
SEC("raw_tp/block_bio_queue")
int ec_bio_queue(struct bpf_raw_tracepoint_args *ctx)
{
	struct bio *bio = (struct bio *)ctx->args[0];
	struct ec_dev_key dev = {};
	struct ec_io_stats *st;
	__u32 opf, size, other;
	dev_t d;

	if (!traced())
		return 0;
	claim_bio((__u64)bio);
	opf = BPF_CORE_READ(bio, bi_opf);
	size = BPF_CORE_READ(bio, bi_iter.bi_size);
	other = (1u << bpf_core_enum_value(enum req_flag_bits, __REQ_RAHEAD)) |
		(1u << bpf_core_enum_value(enum req_flag_bits, __REQ_META));
	d = BPF_CORE_READ(bio, bi_bdev, bd_dev);
	dev.major = d >> 20;
	dev.minor = d & ((1u << 20) - 1);
	st = io_stats(&block_latency, &dev);
	if (st) {
		__sync_fetch_and_add(&st->bios, 1);
		__sync_fetch_and_add(&st->bio_bytes, size);
		/* REQ_OP_READ is 0 in the low 8 bits (REQ_OP_BITS) */
		if ((opf & 0xff) == 0 && !(opf & other))
			__sync_fetch_and_add(&st->direct_bytes, size);
	}
	return 0;
}

/* The front part of a split bio is a new bio, submitted by the same task. */
SEC("raw_tp/block_split")
int ec_bio_split(struct bpf_raw_tracepoint_args *ctx)
{
	if (traced())
		claim_bio(ctx->args[0]);
	return 0;
}

/*
 * 6.5 and later: a request is started in its submitter's context, which
 * covers whatever happened to its bios.  Claimed with ts 0 = not issued.
 */
SEC("raw_tp/block_io_start")
int ec_io_start(struct bpf_raw_tracepoint_args *ctx)
{
	struct ec_io_start s = {};
	__u64 key = ctx->args[0];

	if (!traced())
		return 0;
	s.dev = rq_dev((struct request *)key);
	bpf_map_update_elem(&blk_start, &key, &s, BPF_ANY);
	return 0;
}

SEC("raw_tp/block_rq_issue")
int ec_rq_issue(struct bpf_raw_tracepoint_args *ctx)
{
	struct request *rq = (struct request *)ctx->args[0];
	struct ec_io_start *cur, s = {};
	struct ec_io_stats *st;
	__u64 bio = (__u64)BPF_CORE_READ(rq, bio), key = (__u64)rq;

	cur = bpf_map_lookup_elem(&blk_start, &key);
	if (!cur) {
		if (!bio || !bpf_map_lookup_elem(&bio_owner, &bio))
			return 0;
		s.dev = rq_dev(rq);
		bpf_map_update_elem(&blk_start, &key, &s, BPF_ANY);
		cur = bpf_map_lookup_elem(&blk_start, &key);
		if (!cur)
			return 0;
	}
	if (bio)
		bpf_map_delete_elem(&bio_owner, &bio);
	/* a requeued request is issued again: count it in flight once */
	if (!cur->ts) {
		st = io_stats(&block_latency, &cur->dev);
		if (st)
			io_issue(st);
	}
	cur->ts = bpf_ktime_get_ns();
	return 0;
}

SEC("raw_tp/block_rq_complete")
int ec_rq_complete(struct bpf_raw_tracepoint_args *ctx)
{
	struct request *rq = (struct request *)ctx->args[0];
	__u32 err = (__u32)ctx->args[1], nr_bytes = (__u32)ctx->args[2];
	__u64 key = (__u64)rq;
	struct ec_io_start *s;
	struct ec_io_stats *st;
	__u32 left;

	s = bpf_map_lookup_elem(&blk_start, &key);
	if (!s)
		return 0;
	if (!s->ts) {	/* completed without being issued (error) */
		bpf_map_delete_elem(&blk_start, &key);
		return 0;
	}
	st = io_stats(&block_latency, &s->dev);
	left = BPF_CORE_READ(rq, __data_len);
	if (st && nr_bytes < left) {
		/* partial completion: the rest follows */
		__sync_fetch_and_add(&st->bytes, nr_bytes);
		return 0;
	}
	if (st)
		io_done(st, s->ts, nr_bytes, err != 0);
	bpf_map_delete_elem(&blk_start, &key);
	return 0;
}

static __always_inline int uring_submit(void *req, __u8 opcode)
{
	struct ec_uring_key k = { .opcode = opcode };
	struct ec_io_start s = {};
	struct ec_io_stats *st;
	__u64 key = (__u64)req;

	if (!traced())
		return 0;
	s.ts = bpf_ktime_get_ns();
	s.dev.major = opcode;
	st = io_stats(&uring_latency, &k);
	if (st)
		io_issue(st);
	bpf_map_update_elem(&uring_start, &key, &s, BPF_ANY);
	return 0;
}

SEC("tracepoint/io_uring/io_uring_submit_req")
int ec_uring_submit_req(struct trace_event_raw_io_uring_submit_req___ec *ctx)
{
	return uring_submit(ctx->req, ctx->opcode);
}

SEC("tracepoint/io_uring/io_uring_submit_sqe")
int ec_uring_submit_sqe(struct trace_event_raw_io_uring_submit_sqe___ec *ctx)
{
	return uring_submit(ctx->req, ctx->opcode);
}

SEC("tracepoint/io_uring/io_uring_complete")
int ec_uring_complete(struct trace_event_raw_io_uring_complete *ctx)
{
	__u64 key = (__u64)ctx->req;
	struct ec_uring_key k = {};
	struct ec_io_start *s;
	struct ec_io_stats *st;
	int res = ctx->res;

	s = bpf_map_lookup_elem(&uring_start, &key);
	if (!s)
		return 0;
	k.opcode = s->dev.major;
	st = io_stats(&uring_latency, &k);
	if (st)
		io_done(st, s->ts, res > 0 ? res : 0, res < 0);
	bpf_map_delete_elem(&uring_start, &key);
	return 0;
}

char LICENSE[] SEC("license") = "Dual BSD/GPL";
