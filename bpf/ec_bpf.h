/* SPDX-License-Identifier: MIT */
/*
 * The BPF side of the expertcache CLI: load, attach, pin and read
 * expert_traffic.bpf.c (USDT: per-expert traffic) and tier_latency.bpf.c
 * (block layer and io_uring), and say plainly why BPF is unavailable.
 * Built with libbpf when the build found clang and bpftool
 * (EC_HAVE_BPF); otherwise every entry point returns -EC_EUNSUPPORTED with
 * a message saying how to get it.  Errors are -errno or -EC_E* with an
 * ec_err() message.
 */
#ifndef EC_BPF_H
#define EC_BPF_H

#include <linux/types.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "expert_traffic.h"
#include "tier_latency.h"

#define EC_BPF_PIN_DIR "/sys/fs/bpf/expertcache"

/*
 * 0 when this process can load and attach the programs, else a negative
 * error and a message with the reason and the fix: BPF not built in, not
 * root (no CAP_BPF + CAP_PERFMON), no kernel BTF.  need_pin also requires
 * a mounted bpffs.
 */
int ec_bpf_check(bool need_pin);

/* Is the BPF support compiled in? */
bool ec_bpf_built(void);

/* The last libbpf warning (for error messages), "" if none. */
const char *ec_bpf_last_libbpf_msg(void);

/* cgroup v2 id of a cgroup directory (its inode number). */
int ec_bpf_cgroup_id(const char *path, uint64_t *id);

/* Remove what `--pin` left in dir; returns how many maps were unpinned. */
int ec_bpf_unpin_all(const char *dir);

/* ------------------------------------------------------------------ */
/* expert_traffic: the USDT probes.                                    */

struct ec_traffic;

struct ec_traffic_opts {
	const char *binary;	/* executable with the probes */
	pid_t pid;		/* attach to this process only; -1 = all */
	uint32_t filter_tgid;	/* in-kernel filters, 0 = off */
	uint64_t filter_cgid;
	/*
	 * Fewer traps: leave the per-lookup hit probe out and derive hits
	 * as lookups - misses (EC_TRAFFIC_DERIVED_HITS).
	 */
	bool light;
	bool routing_only;	/* attach route_chunk only (profiles) */
};

int ec_traffic_open(const struct ec_traffic_opts *o, struct ec_traffic **out);
void ec_traffic_close(struct ec_traffic *t);
/* Names of the probes attached, space separated. */
const char *ec_traffic_probes(const struct ec_traffic *t);
/* Optional probes that exist but could not be attached, and why; "". */
const char *ec_traffic_failed(const struct ec_traffic *t);
/* Pin every map under dir (replacing older pins of the same name). */
int ec_traffic_pin(struct ec_traffic *t, const char *dir);

/* A copy of the maps, as a dense (n_layer, n_expert) grid. */
struct ec_traffic_snap {
	uint32_t n_layer, n_expert;	/* from route_chunk, else max + 1 */
	uint64_t n_tokens;		/* tokens routed */
	struct ec_expert_stats *experts;	/* (n_layer, n_expert) */
	struct ec_tier_stats tiers[EC_BPF_MAX_TIERS];
	struct ec_traffic_meta meta;
	uint64_t n_keys;		/* map entries read */
};

int ec_traffic_read(struct ec_traffic *t, struct ec_traffic_snap *s);
/* The same from maps pinned by `trace --pin`. */
int ec_traffic_read_pinned(const char *dir, struct ec_traffic_snap *s);
void ec_traffic_snap_free(struct ec_traffic_snap *s);

/* ------------------------------------------------------------------ */
/* tier_latency: block layer and io_uring, one process or cgroup.      */

struct ec_tierlat;

int ec_tierlat_open(uint32_t filter_tgid, uint64_t filter_cgid,
		    struct ec_tierlat **out);
void ec_tierlat_close(struct ec_tierlat *t);
/* What got attached and what did not, and why (one line each). */
const char *ec_tierlat_notes(const struct ec_tierlat *t);
int ec_tierlat_pin(struct ec_tierlat *t, const char *dir);

struct ec_io_row {
	uint32_t key[2];	/* block: major, minor; io_uring: opcode */
	struct ec_io_stats st;
};

struct ec_tierlat_snap {
	uint32_t n_dev, n_op;
	struct ec_io_row *dev;	/* [n_dev] sorted by key */
	struct ec_io_row *op;	/* [n_op] */
};

int ec_tierlat_read(struct ec_tierlat *t, struct ec_tierlat_snap *s);
int ec_tierlat_read_pinned(const char *dir, struct ec_tierlat_snap *s);
void ec_tierlat_snap_free(struct ec_tierlat_snap *s);

/* "vda" for 254:0 (from /sys/dev/block), else "254:0". */
const char *ec_bpf_dev_name(uint32_t major, uint32_t minor, char *buf,
			    size_t n);
/* "READ_FIXED" for 4, ..., else "op 57". */
const char *ec_bpf_uring_op_name(uint32_t op, char *buf, size_t n);

#endif /* EC_BPF_H */
