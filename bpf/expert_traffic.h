/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/*
 * Map layout shared by expert_traffic.bpf.c and its loader: per-(layer,
 * expert) traffic counters and per-tier load latency histograms, fed by the
 * USDT probes of userspace/include/ec_probes.h.
 */
#ifndef EC_EXPERT_TRAFFIC_H
#define EC_EXPERT_TRAFFIC_H

#define EC_BPF_HIST_SLOTS 40	/* log2 buckets: slot i holds [2^i, 2^(i+1)) */
#define EC_BPF_MAX_TIERS 4
#define EC_BPF_MAX_LAYERS 1024
#define EC_BPF_MAX_KEYS 262144	/* (layer, expert) pairs tracked */
#define EC_BPF_MAX_ROUTE 16384	/* (token, expert) pairs per route_batch */

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
	__u64 weight_q16;	/* sum of their gate weights, 16.16 */
	__u64 hits;		/* lookups that found it ready */
	__u64 misses;		/* lookups that loaded or waited */
	__u64 loads;		/* loads completed */
	__u64 load_bytes;	/* bytes those loads moved */
	__u64 load_ns;		/* their summed issue-to-completion time */
	__u64 load_errors;
	__u64 evictions;
	__u64 prefetch_issued;
	__u64 prefetch_used;
	__u64 substituted;	/* times another expert ran instead */
	__u64 last_token;	/* 1 + index of the last token routed to it
				   (tokens counted per layer from attach);
				   0 = never */
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

/* traffic_meta[0]: what the probes said about the model and the run. */
struct ec_traffic_meta {
	__u32 n_layer;		/* from route_batch */
	__u32 n_expert;
	__u32 k;		/* experts per token (last seen) */
	__u32 tgid;		/* last process seen */
	__u64 route_batches;	/* route_batch events */
	__u64 route_pairs;	/* (token, expert) pairs seen */
	__u64 dropped;		/* of those, not counted: map full, bad id,
				   more than EC_BPF_MAX_ROUTE in one batch */
	__u64 first_ns;		/* first and last event, bpf_ktime_get_ns */
	__u64 last_ns;
};

#endif /* EC_EXPERT_TRAFFIC_H */
