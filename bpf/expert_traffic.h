/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/*
 * Map layout shared by expert_traffic.bpf.c and its loader: per-(layer,
 * expert) traffic counters and per-tier load latency histograms, fed by the
 * USDT probes of userspace/include/ec_probes.h.
 */
#ifndef EC_EXPERT_TRAFFIC_H
#define EC_EXPERT_TRAFFIC_H

/* log2 buckets: slot i holds [2^i, 2^(i+1)) */
#define EC_BPF_HIST_SLOTS 40
#define EC_BPF_MAX_TIERS 4
#define EC_BPF_MAX_LAYERS 1024
#define EC_BPF_MAX_KEYS 262144	/* (layer, expert) pairs tracked */
#define EC_BPF_MAX_ROUTE (1u << 22)	/* pairs per route_chunk */

/* Same numbers as enum ec_tier in ec_probes.h (the loader checks). */
#define EC_BPF_TIER_VRAM 0
#define EC_BPF_TIER_HOST 1
#define EC_BPF_TIER_STORAGE 2

/* expert_counts key: `bpftool map dump` prints {"layer": L, "expert": E}. */
struct ec_expert_key {
	__u32 layer;
	__u32 expert;
};

struct ec_expert_stats {
	__u64 routed;		/* (token, expert) selections */
	__u64 lookups;		/* forward chunks routing to it at least
				   once: the fetches of the expert */
	__u64 weight_q16;	/* sum of their gate weights, 16.16 */
	__u64 hits;		/* lookups that found it ready */
	__u64 misses;		/* lookups that loaded or waited */
	__u64 loads;		/* loads completed */
	__u64 load_bytes;	/* bytes those loads moved */
	__u64 load_ns;		/* summed issue-to-completion time */
	__u64 load_errors;
	__u64 evictions;
	__u64 prefetch_issued;
	__u64 prefetch_used;
	__u64 substituted;	/* times another expert ran instead */
	__u64 last_token;	/* 1 + index of the last token routed to it
				   (tokens counted per layer from attach);
				   0 = never */
	__u64 last_batch;	/* private: chunk << 12 | layer that last
				   counted a lookup */
};

/* load_latency value, one per tier (array index = EC_BPF_TIER_*). */
struct ec_tier_stats {
	__u64 hits;
	__u64 misses;
	__u64 loads;
	__u64 bytes;
	__u64 sum_ns;
	__u64 max_ns;
	__u64 slots[EC_BPF_HIST_SLOTS];	/* load latency, log2 ns */
};

/*
 * The hit probe was not attached (`trace --light`): hits are derived as
 * lookups - misses (one fetch per chunk and routed expert, each a hit or
 * a miss), which holds for the host-tier cache of the CPU forward pass.
 */
#define EC_TRAFFIC_DERIVED_HITS 1u

/* traffic_meta[0]: what the probes said about the model and the run. */
struct ec_traffic_meta {
	__u32 n_layer;		/* from route_chunk */
	__u32 n_expert;
	__u32 k;		/* experts per token (last seen) */
	__u32 tgid;		/* last process seen */
	__u32 flags;		/* EC_TRAFFIC_*, set by the loader */
	__u32 pad;
	__u64 tokens;		/* tokens routed (forward chunks' sizes) */
	__u64 route_chunks;	/* route_chunk events (forward chunks) */
	__u64 route_pairs;	/* (layer, token, expert) decisions seen */
	__u64 dropped;		/* of those not counted: map full, bad id,
				   more than EC_BPF_MAX_ROUTE in one chunk */
	__u64 first_ns;		/* first and last event (ktime ns) */
	__u64 last_ns;
};

#endif /* EC_EXPERT_TRAFFIC_H */
