/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/*
 * Map layout shared by tier_latency.bpf.c and its loader: block-layer
 * latency and bytes per device, io_uring latency per opcode, both with
 * queue-depth histograms, for the traced process only.
 */
#ifndef EC_TIER_LATENCY_H
#define EC_TIER_LATENCY_H

#define EC_BPF_LAT_SLOTS 40	/* log2 ns: slot i holds [2^i, 2^(i+1)) */
#define EC_BPF_QD_SLOTS 16	/* log2 requests in flight at issue */
#define EC_BPF_MAX_DEVS 64
#define EC_BPF_MAX_INFLIGHT 16384

/* block_latency key: `bpftool map dump` prints {"major": M, "minor": m}. */
struct ec_dev_key {
	__u32 major;
	__u32 minor;
};

/* block_latency and uring_latency value. */
struct ec_io_stats {
	__u64 count;		/* requests completed */
	__u64 bytes;		/* bytes they transferred */
	__u64 bios;		/* block: bios the process submitted */
	__u64 bio_bytes;	/* their bytes: exact even when requests
				   merge with other processes' I/O */
	__u64 direct_bytes;	/* of those, plain reads (no readahead, no
				   metadata): where O_DIRECT reads land */
	__u64 sum_ns;		/* summed issue-to-completion time */
	__u64 max_ns;
	__u64 errors;
	__s64 inflight;		/* issued, not completed yet */
	__u64 slots[EC_BPF_LAT_SLOTS];	/* latency */
	__u64 qd_slots[EC_BPF_QD_SLOTS];	/* depth, this one included */
};

/* uring_latency key: the io_uring opcode (IORING_OP_READ = 22, ...). */
struct ec_uring_key {
	__u32 opcode;
};

/* Private: a request between issue and completion. */
struct ec_io_start {
	__u64 ts;
	struct ec_dev_key dev;	/* block; opcode in .major for io_uring */
};

#endif /* EC_TIER_LATENCY_H */
