/* SPDX-License-Identifier: MIT */
/*
 * Expert replacement policies behind one interface (LRU, LFU with dynamic
 * ageing, static pin-set, Belady), shared by the live cache and the replay
 * simulator, so learned controllers can plug in as one more ops table.
 */
#ifndef EC_POLICY_H
#define EC_POLICY_H

#include <stdbool.h>
#include <stdint.h>

/*
 * Keys are flat expert ids, layer * n_expert + expert.  Time `t` is a
 * monotonically increasing access counter supplied by the caller (the
 * simulator passes the index of the access in the trace, which Belady
 * needs to look up the future).
 */
struct ec_policy_config {
	uint32_t n_keys;		/* key space */
	uint32_t capacity;		/* slots this instance manages */
	/*
	 * static: [n_keys] non-zero = keep resident once loaded; the rest
	 * share the remaining slots LRU.  At most `capacity` may be set.
	 */
	const uint8_t *pinned;
	/*
	 * belady: next_use[t] = time of the next access to the key accessed
	 * at t, UINT64_MAX if none.  Offline only.
	 */
	const uint64_t *next_use;
	uint64_t n_times;		/* length of next_use */
};

struct ec_policy;

/* Does the cache allow evicting this resident key now (not pinned, READY)? */
typedef bool ec_policy_evictable_fn(void *arg, uint32_t key);

/* victim() results besides 0 (evict *out). */
enum {
	EC_POLICY_BYPASS = 1,	/* do not cache the incoming key */
};

struct ec_policy_ops {
	const char *name;
	bool offline;		/* needs the future (next_use) */
	int (*init)(struct ec_policy *p, const struct ec_policy_config *cfg);
	void (*fini)(struct ec_policy *p);
	/* a resident key was accessed */
	void (*hit)(struct ec_policy *p, uint32_t key, uint64_t t);
	/* a key accessed at t became resident (loading counts) */
	void (*insert)(struct ec_policy *p, uint32_t key, uint64_t t);
	/* a resident key left (evicted, or its load failed) */
	void (*remove)(struct ec_policy *p, uint32_t key);
	/*
	 * The cache is full and `incoming`, accessed at t, is not resident:
	 * return 0 with *out = a resident key to evict (one for which
	 * evictable() is true), EC_POLICY_BYPASS when may_bypass and keeping
	 * the residents is better, or -ENOSPC when nothing may be evicted.
	 */
	int (*victim)(struct ec_policy *p, uint32_t incoming, uint64_t t,
		      bool may_bypass, ec_policy_evictable_fn *evictable,
		      void *arg, uint32_t *out);
};

struct ec_policy {
	const struct ec_policy_ops *ops;
	void *priv;
};

extern const struct ec_policy_ops ec_policy_lru;
extern const struct ec_policy_ops ec_policy_lfu;
extern const struct ec_policy_ops ec_policy_static;
extern const struct ec_policy_ops ec_policy_belady;

/* "lru", "lfu", "static", "belady"; NULL if unknown. */
const struct ec_policy_ops *ec_policy_find(const char *name);

/* Comma-separated names of every policy (for --help). */
const char *ec_policy_names(void);

int ec_policy_create(const struct ec_policy_ops *ops,
		     const struct ec_policy_config *cfg,
		     struct ec_policy **out);
void ec_policy_free(struct ec_policy *p);

/* ------------------------------------------------------------------ */
/* Replay simulator.                                                   */

struct ec_trace;

struct ec_sim_params {
	uint32_t n_layer, n_expert;	/* key space (>= the trace's) */
	/*
	 * Either one cache per layer of slots_per_layer slots, or (when 0)
	 * one cache of `capacity` slots over all layers.
	 */
	uint32_t slots_per_layer;
	uint32_t capacity;
	uint64_t warmup_tokens;		/* accesses of the first N tokens
					   are simulated but not counted */
	/*
	 * static: keys to keep, best first; the simulator keeps as many as
	 * fit in each cache (per layer or global) in that order.
	 */
	const uint32_t *pinned;
	uint32_t n_pinned;
};

struct ec_sim_result {
	uint64_t hits, misses;		/* counted accesses */
	uint64_t bypasses;		/* misses not cached (Belady, static) */
	uint32_t n_layer;
	uint64_t *layer_hits;		/* [n_layer] */
	uint64_t *layer_misses;		/* [n_layer] */
};

/*
 * Replay the trace through `ops`, every cache starting empty.  Every
 * policy may bypass (stream a missed expert without caching it) only when
 * its victim() says so; Belady does, with the next use of the incoming
 * expert compared against the residents', which makes it optimal among
 * all policies with the same capacity, bypassing or not.
 */
int ec_sim_run(const struct ec_trace *t, const struct ec_policy_ops *ops,
	       const struct ec_sim_params *p, struct ec_sim_result *out);
void ec_sim_result_free(struct ec_sim_result *r);

static inline double ec_sim_hit_rate(uint64_t hits, uint64_t misses)
{
	return hits + misses ? (double)hits / (double)(hits + misses) : 0.0;
}

#endif
