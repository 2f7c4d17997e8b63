/* SPDX-License-Identifier: MIT */
/* Internals shared by the storage engine's files (not installed). */
#ifndef EC_STORAGE_INTERNAL_H
#define EC_STORAGE_INTERNAL_H

#include <stdint.h>
#include <time.h>

#include <jansson.h>

#include "ec_model.h"
#include "ec_storage.h"

struct ec_host_tier {
	uint8_t *base;		/* (n_slots, slot_bytes) */
	uint64_t map_bytes;	/* mapping length (>= n_slots * slot_bytes) */
	struct ec_host_tier_info info;
	int module_fd;		/* /dev/expertcache, -1 when userspace */
	void *module_priv;
	/* unique per pool in this process: tells a pool mapped at a freed
	 * one's address from it (expert sources' host_regions) */
	uint64_t generation;
};

/*
 * /dev/expertcache seam: fill t->base/map_bytes/info from a module pool.
 * Returns 0, -ENOENT when there is no device (quietly fall back), or
 * another error (fall back with info.warning saying why).
 */
int ec_host_tier_module_attach(struct ec_host_tier *t,
			       const struct ec_host_tier_params *p);
void ec_host_tier_module_detach(struct ec_host_tier *t);

/*
 * Where an expert's bytes go in its slot: each extent is read as its
 * covering EC_IO_ALIGN-aligned range at seg_off[i]; part p (gate, up,
 * down) then starts at part_off[p].
 */
struct ec_expert_layout {
	uint32_t n_seg;
	struct ec_extent ext[EC_EXPERT_NPARTS];	/* aligned file ranges */
	uint64_t need[EC_EXPERT_NPARTS];	/* bytes that must exist */
	uint64_t seg_off[EC_EXPERT_NPARTS];	/* in the slot */
	uint64_t part_off[EC_EXPERT_NPARTS];	/* in the slot */
	uint64_t bytes;				/* slot bytes used */
	uint64_t payload;			/* expert bytes */
};

/*
 * Load an expertcache JSON file (profile, plan): parse it, check "format"
 * equals `format` with "version" 1 and n_layer/n_expert are sane.  On
 * success *root is the document (the caller json_decref()s it).
 */
int ec_json_file_load(const char *path, const char *format, const char *what,
		      json_t **root, uint32_t *n_layer, uint32_t *n_expert);

int ec_expert_layout_compute(const struct ec_model *m, uint32_t layer,
			     uint32_t e, struct ec_expert_layout *out);

static inline uint64_t ec_align_down(uint64_t v, uint64_t a)
{
	return v & ~(a - 1);
}

static inline uint64_t ec_align_up(uint64_t v, uint64_t a)
{
	return (v + a - 1) & ~(a - 1);
}

static inline uint64_t ec_now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

/* Indexed binary min-heap of keys ordered by (p1, p2), for the policies. */
struct ec_heap {
	uint32_t n, cap;
	uint32_t *keys;		/* [cap] heap order */
	uint32_t *tmp;		/* [cap] scratch for min_where */
	int32_t *pos;		/* [n_keys] index in keys, -1 if absent */
	uint64_t *p1, *p2;	/* [n_keys] priorities */
};

int ec_heap_init(struct ec_heap *h, uint32_t n_keys, uint32_t cap);
void ec_heap_fini(struct ec_heap *h);
/* Insert or update key with priority (p1, p2). */
int ec_heap_set(struct ec_heap *h, uint32_t key, uint64_t p1, uint64_t p2);
void ec_heap_remove(struct ec_heap *h, uint32_t key);
static inline int ec_heap_contains(const struct ec_heap *h, uint32_t key)
{
	return h->pos[key] >= 0;
}
/*
 * The smallest key for which ok(arg, key) holds, or -1.  Visits keys in
 * priority order; cost grows only with the number rejected.
 */
int64_t ec_heap_min_where(struct ec_heap *h,
			  _Bool (*ok)(void *arg, uint32_t key), void *arg);

#endif
