/* SPDX-License-Identifier: MIT */
/*
 * Storage engine: size/budget parsing, the pinned NUMA-local host tier and
 * the io_uring O_DIRECT reader.  The expert cache built on them is in
 * ec_cache.h, replacement policies and the replay simulator in ec_policy.h,
 * routing traces, profiles and plans in ec_trace.h; this header includes
 * all of them.
 */
#ifndef EC_STORAGE_H
#define EC_STORAGE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/uio.h>

/*
 * Alignment of O_DIRECT reads: file offsets, lengths and memory addresses.
 * 4096 covers every logical block size in practice (512 and 4K devices).
 */
#define EC_IO_ALIGN 4096u

/*
 * "4096", "512K", "512M", "4G", "1.5G", "2T": binary units (K = 1024),
 * optional trailing "B" or "iB" ("512MiB", "4GB"), case-insensitive.
 * Returns 0 or -EC_EINVAL with a message.
 */
int ec_parse_size(const char *s, uint64_t *out);

/*
 * A budget: a size as above or a percentage "25%" (fractions allowed) of
 * `total` (e.g. the model's total expert bytes), rounded down.
 */
int ec_parse_budget(const char *s, uint64_t total, uint64_t *out);

/* "1.50 GiB"-style rendering into buf (always NUL-terminated). */
const char *ec_format_size(uint64_t bytes, char *buf, size_t n);

/* ------------------------------------------------------------------ */
/* Host tier: one contiguous pool of equal slots, each for one expert. */

struct ec_host_tier;

struct ec_host_tier_params {
	uint64_t slot_bytes;	/* rounded up to EC_IO_ALIGN */
	uint32_t n_slots;
	/*
	 * NUMA placement: the node of this PCI device ("0000:3b:00.0", from
	 * /sys/bus/pci/devices/<id>/numa_node) when set, else `node` when
	 * force_node, else the node of the CPU we run on.  Zeroed params
	 * mean automatic.
	 */
	const char *pci_bus_id;
	bool force_node;
	int node;
	bool no_module;		/* never use /dev/expertcache */
	bool no_hugepages;	/* skip the MAP_HUGETLB attempt */
	bool no_lock;		/* skip mlock (not pinned) */
	const char *pool_name;	/* module: named pool to create or attach */
};

struct ec_host_tier_info {
	const char *kind;	/* "module" or "userspace" */
	int numa_node;		/* node the pool is bound to, -1 if none */
	bool numa_bound;	/* mbind succeeded */
	bool hugepages;		/* MAP_HUGETLB (or module huge pages) */
	bool locked;		/* resident and locked (mlock / module pin) */
	uint64_t slot_bytes;
	uint32_t n_slots;
	uint64_t bytes;		/* whole pool */
	/*
	 * Non-empty when something degraded (not locked, no NUMA binding,
	 * module present but unusable): a sentence the caller can print.
	 */
	char warning[512];
};

/*
 * Allocate the pool.  Tries /dev/expertcache first (unless no_module or the
 * device is absent), else an anonymous mapping: MAP_HUGETLB, falling back
 * to normal pages with MADV_HUGEPAGE; mbind to the chosen node; mlock.  A
 * failed mlock (RLIMIT_MEMLOCK) or mbind is not an error: the pool works
 * unpinned and info.warning says why and what to do.
 */
int ec_host_tier_create(const struct ec_host_tier_params *p,
			struct ec_host_tier **out);
void ec_host_tier_free(struct ec_host_tier *t);

/* Slot i (page aligned, slot_bytes long). */
void *ec_host_tier_slot(const struct ec_host_tier *t, uint32_t i);

/*
 * The whole pool as one range, e.g. for cudaHostRegister by the CUDA
 * backend: slot i is at base + i * slot_bytes.
 */
void ec_host_tier_region(const struct ec_host_tier *t, void **base,
			 uint64_t *bytes);
void ec_host_tier_get_info(const struct ec_host_tier *t,
			   struct ec_host_tier_info *out);

/*
 * The NUMA node of a PCI device from sysfs: >= 0, or -1 when the machine
 * reports none; a negative error when the device does not exist.
 */
int ec_numa_node_of_pci(const char *pci_bus_id);

/* ------------------------------------------------------------------ */
/* io_uring reader: O_DIRECT reads of aligned segments into memory.    */

struct ec_uring;

struct ec_uring_params {
	uint32_t queue_depth;	/* requests in flight; 0 = 64 */
	uint32_t max_request;	/* bytes per request, multiple of EC_IO_ALIGN;
				   0 = 1 MiB */
	bool sqpoll;		/* IORING_SETUP_SQPOLL (kernel polls the SQ) */
	bool buffered;		/* no O_DIRECT (page cache) */
	bool no_fixed_files;	/* do not register the file descriptors */
};

/* The replicas of one file: identical copies, e.g. on several devices. */
struct ec_uring_file {
	const char *const *paths;
	uint32_t n_paths;
};

/*
 * One read: `length` bytes at `offset` of file `file` into `dst`.  With
 * O_DIRECT, offset, length and dst must be EC_IO_ALIGN aligned.  Only the
 * first `need` bytes must exist: the covering aligned range of a payload
 * that ends at end-of-file runs past it, which is fine, but a file that
 * ends before `need` is an error (truncated).
 */
struct ec_uring_seg {
	uint32_t file;
	uint64_t offset;
	uint64_t length;
	uint64_t need;
	void *dst;
};

/* What a finished read reports to its callback. */
struct ec_uring_result {
	int err;		/* 0 or negative error */
	const char *msg;	/* error message naming path and offset */
	uint64_t bytes;		/* bytes transferred */
	uint64_t ns;		/* submit to completion */
};

typedef void ec_uring_done_fn(void *arg, const struct ec_uring_result *res);

/*
 * Open every replica of every file (O_DIRECT unless p->buffered; a file
 * system without O_DIRECT, such as tmpfs, falls back to buffered reads and
 * ec_uring_notice() says so), register them as fixed files, set up the
 * ring and start the completion thread.
 */
int ec_uring_create(const struct ec_uring_params *p,
		    const struct ec_uring_file *files, uint32_t n_files,
		    struct ec_uring **out);

/*
 * Cancel reads not yet submitted (their callbacks get -ECANCELED), wait for
 * those in flight, stop the thread and close everything.
 */
void ec_uring_free(struct ec_uring *r);

/*
 * Register memory for IORING_OP_READ_FIXED (each iovec at most 1 GiB).
 * Call before the first read.  On failure (-ENOMEM over RLIMIT_MEMLOCK,
 * -EOPNOTSUPP, -EFAULT for memory that cannot be pinned, ...) reads simply
 * stay plain; the error is returned for the caller to report.
 */
int ec_uring_register_buffers(struct ec_uring *r, const struct iovec *iov,
			      unsigned int n);

/*
 * Queue the segments as one batch: each is split into requests of at most
 * max_request bytes, submitted together (up to queue_depth in flight, the
 * rest as slots free up).  `stripe` picks the replica: stripe % n_paths.
 * `done` runs exactly once, on the completion thread, with no reader lock
 * held (it may call ec_uring_read again).  Short reads and -EAGAIN are
 * resubmitted for the remainder; any other error completes the whole read
 * with that error once its requests in flight have finished.  The segments
 * are copied; dst memory must stay valid until `done`.
 */
int ec_uring_read(struct ec_uring *r, const struct ec_uring_seg *segs,
		  uint32_t n_segs, uint32_t stripe, ec_uring_done_fn *done,
		  void *arg);

struct ec_uring_info {
	bool direct;		/* O_DIRECT on every file */
	bool fixed_files;
	bool fixed_buffers;
	bool sqpoll;
	uint32_t queue_depth;
	uint32_t max_request;
	const char *notice;	/* "" or why something fell back */
};

struct ec_uring_stats {
	uint64_t reads;		/* ec_uring_read calls completed */
	uint64_t read_errors;
	uint64_t requests;	/* SQEs submitted, resubmissions included */
	uint64_t resubmits;	/* short reads and -EAGAIN */
	uint64_t bytes;
};

void ec_uring_get_info(const struct ec_uring *r, struct ec_uring_info *out);
void ec_uring_get_stats(struct ec_uring *r, struct ec_uring_stats *out);

/*
 * Test-only fault injection, in the completion path: the hook sees every
 * completed request before the reader does and returns the result to use
 * instead of `res` (e.g. -EIO, or fewer bytes for a short read).  `buf`
 * holds the bytes the kernel wrote.  NULL removes it.
 */
struct ec_uring_fault_ctx {
	const char *path;	/* the replica read */
	uint32_t file;
	uint64_t offset;	/* of this request */
	uint64_t length;
	void *buf;
};

typedef int ec_uring_fault_fn(void *arg, const struct ec_uring_fault_ctx *c,
			      int res);
void ec_uring_set_fault_hook(struct ec_uring *r, ec_uring_fault_fn *hook,
			     void *arg);

#include "ec_cache.h"
#include "ec_policy.h"
#include "ec_trace.h"

#endif
