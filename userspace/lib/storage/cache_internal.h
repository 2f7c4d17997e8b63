/* SPDX-License-Identifier: MIT */
/* The expert cache's private state, shared by cache*.c. */
#ifndef EC_CACHE_INTERNAL_H
#define EC_CACHE_INTERNAL_H

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>

#include "ec_model.h"
#include "ec_storage.h"
#include "storage_internal.h"

/* DESIGN.md: EMPTY -> LOADING -> READY -> (EVICTING) -> EMPTY */
enum slot_state {
	SLOT_EMPTY,
	SLOT_LOADING,
	SLOT_READY,
};

struct ec_cache;

struct slot {
	struct ec_cache *c;
	uint8_t *mem;		/* (slot_bytes) in the host tier */
	enum slot_state state;
	uint32_t key;		/* valid unless EMPTY */
	uint32_t pins;		/* get()s holding it, waiters included */
	bool prefetched;	/* loaded by prefetch, not asked for yet */
	int err;		/* of the last failed load */
	char msg[320];
	struct ec_expert view;	/* parts pointing into mem */
};

struct ec_cache {
	const struct ec_model *m;
	uint32_t n_layer, n_expert, n_keys;
	struct ec_expert_layout *layout;	/* [n_keys] */
	uint64_t slot_bytes;
	uint32_t n_slots;
	struct slot *slots;			/* [n_slots] */
	int32_t *slot_of;			/* [n_keys], -1 none */
	uint32_t *free_stack;			/* [n_slots] EMPTY, unpinned */
	uint32_t n_free;

	struct ec_host_tier *tier;
	struct ec_uring *io;
	struct ec_policy *pol;
	const char *policy_name;
	uint32_t n_pinned;

	pthread_mutex_t lock;
	pthread_cond_t cond;	/* any slot changed state or lost a pin */
	uint64_t tick;		/* policy time */
	uint32_t loading;	/* loads in flight */
	uint64_t busy_since;	/* when loading went 0 -> 1 */
	struct ec_cache_stats st;
	uint64_t requests_base;	/* reader requests at the last reset */
	uint64_t substitutions;	/* atomic */
	int last_err;		/* of the last failed load */
	char last_msg[320];
};

/* cache_load.c, all with c->lock held */
int ec_cache_start_load(struct ec_cache *c, uint32_t s, uint32_t key,
			bool prefetch);
/* Free slot for `key`: pop a free one or evict; -EBUSY if none now. */
int ec_cache_claim(struct ec_cache *c, uint32_t key, uint32_t *s);
void ec_cache_free_slot(struct ec_cache *c, uint32_t s);

#endif
