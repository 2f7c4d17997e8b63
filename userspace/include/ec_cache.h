/* SPDX-License-Identifier: MIT */
/*
 * The host-tier expert cache: slots of the pinned host tier, filled from
 * the model files by the io_uring reader, replaced by a policy, handed to
 * the forward pass through struct ec_expert_source.
 *
 * Typical use (expertcache run):
 *
 *	struct ec_cache_params cp = { .policy = "lru" };
 *	ec_parse_budget("25%", ec_model_total_expert_bytes(m), &cp.ram_budget);
 *	ec_cache_create(m, &cp, &cache);          (plan: .policy = "static",
 *	                                           .pinned = plan keys)
 *	ec_cache_preload(cache, keys, n, progress, arg);   (--plan only)
 *	ec_cache_expert_source(cache, &src);
 *	ec_ctx_set_expert_source(ctx, &src);
 *	... ec_ctx_eval ...
 *	ec_cache_get_stats(cache, &st);  json = ec_cache_stats_json(&st, wall);
 *	ec_ctx_set_expert_source(ctx, NULL);  ec_cache_free(cache);
 */
#ifndef EC_CACHE_H
#define EC_CACHE_H

#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>

#include "ec_storage.h"

struct ec_model;
struct ec_expert;
struct ec_expert_source;
struct ec_cache;

struct ec_cache_params {
	/* host bytes for slots: n_slots = ram_budget / slot size */
	uint64_t ram_budget;
	uint32_t n_slots;	/* when non-zero, overrides ram_budget */
	/* "lru" (default), "lfu" or "static" (Belady is offline only) */
	const char *policy;
	/*
	 * static: keys (layer * n_expert + e) to keep once loaded, best
	 * first; trimmed to n_slots - 1 so one slot always streams.
	 */
	const uint32_t *pinned;
	uint32_t n_pinned;
	struct ec_uring_params io;
	/*
	 * NULL: read each model file from its own path.  Else [m->n_files]
	 * replica lists (the first usually the model's own path): expert k
	 * (flat key) is read from replica k % n_paths.
	 */
	const struct ec_uring_file *files;
	/*
	 * A layout file of this model (expertcache layout, ec_layout.h):
	 * each expert is read as its one aligned record from it instead of
	 * three extents of the model files.  `files`, when given, is then
	 * one replica list of the layout file.
	 */
	const char *layout_path;
	/* placement; slot_bytes and n_slots are computed */
	struct ec_host_tier_params tier;
};

/*
 * Lay out every expert's extents (covering aligned ranges), size a slot for
 * the largest, allocate the host tier and open the reader.  Errors: budget
 * smaller than one expert, extents past the end of a file, allocation or
 * I/O setup failures, each with a message.  The model must outlive the
 * cache.
 */
int ec_cache_create(const struct ec_model *m, const struct ec_cache_params *p,
		    struct ec_cache **out);
/* Waits for loads in flight.  No get() may be outstanding. */
void ec_cache_free(struct ec_cache *c);

/*
 * Expert (layer, e), loaded if needed: blocks until the slot is READY
 * (joining a load already in flight rather than reading twice), pins it and
 * fills *out with views whose data point into the slot, valid until
 * ec_cache_put.  A failed load returns its error (message names the file
 * and offset) and leaves nothing READY.  Thread-safe.
 */
int ec_cache_get(struct ec_cache *c, uint32_t layer, uint32_t e,
		 const struct ec_expert **out);
void ec_cache_put(struct ec_cache *c, uint32_t layer, uint32_t e);

/* Non-zero when (layer, e) is READY (get would not wait). */
int ec_cache_resident(struct ec_cache *c, uint32_t layer, uint32_t e);

/*
 * Start background loads of experts ids[0..n) of `layer`, best first;
 * never blocks; stops at the first one with no evictable slot.  Returns how
 * many loads it issued.
 */
int ec_cache_prefetch(struct ec_cache *c, uint32_t layer, const int32_t *ids,
		      uint32_t n);

typedef void ec_cache_progress_fn(void *arg, uint32_t done, uint32_t total,
				  uint64_t bytes);

/*
 * Load keys[0..n) (at most n_slots - 1 of them) and wait, calling progress
 * on this thread as loads finish (for the start-up progress bar).  Returns
 * the number loaded or the first error.
 */
int ec_cache_preload(struct ec_cache *c, const uint32_t *keys, uint32_t n,
		     ec_cache_progress_fn *progress, void *arg);

/* The `substitute` miss policy used a resident expert instead of `e`. */
void ec_cache_count_substitution(struct ec_cache *c);

struct ec_cache_stats {
	uint64_t hits;		/* get() found the expert READY */
	uint64_t misses;	/* get() had to load it or wait for it */
	uint64_t inflight_joins; /* misses that joined a load in flight */
	uint64_t loads;		/* reads started (misses + prefetches) */
	uint64_t load_errors;
	uint64_t evictions;
	uint64_t bytes_read;	/* from storage, aligned ranges included */
	uint64_t read_requests;	/* read SQEs, resubmissions included */
	uint64_t read_ns;	/* sum over loads, submit to completion */
	uint64_t io_busy_ns;	/* wall time with at least one load running */
	uint64_t io_wait_ns;	/* wall time get() callers were blocked */
	uint64_t prefetch_issued;
	uint64_t prefetch_used;	/* prefetched, then asked for by get() */
	uint64_t prefetch_wasted;	/* prefetched, evicted unused */
	uint64_t substitutions;
	uint32_t n_slots;
	uint32_t n_resident;	/* READY now */
	uint64_t slot_bytes;
};

void ec_cache_get_stats(struct ec_cache *c, struct ec_cache_stats *out);
void ec_cache_reset_stats(struct ec_cache *c);

/*
 * The --stats-json fields: expert_hits, expert_misses, hit_rate,
 * bytes_read, read_requests, read_gbps (bytes_read / io_busy time),
 * io_wait_share (io_wait / wall_s), prefetch_issued, prefetch_used,
 * prefetch_accuracy (used / issued), substitutions, plus "tiers":
 * {"host": {...}}.  NULL on out of memory.  The caller json_decref()s it.
 */
json_t *ec_cache_stats_json(const struct ec_cache_stats *s, double wall_s);

struct ec_cache_info {
	const char *policy;
	uint32_t n_slots;
	uint32_t n_keys;
	uint32_t n_pinned;	/* static keys kept after trimming */
	uint64_t slot_bytes;
	struct ec_host_tier_info tier;
	struct ec_uring_info io;
};

void ec_cache_get_info(const struct ec_cache *c, struct ec_cache_info *out);

/* Fill *out so the forward pass pulls experts from this cache. */
void ec_cache_expert_source(struct ec_cache *c, struct ec_expert_source *out);

/* The reader, e.g. to install a fault hook in tests. */
struct ec_uring *ec_cache_reader(struct ec_cache *c);

/* The host tier (ec_host_tier_region for cudaHostRegister). */
const struct ec_host_tier *ec_cache_host_tier(const struct ec_cache *c);

#endif
