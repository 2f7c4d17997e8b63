// SPDX-License-Identifier: MIT
/* Expert cache loads: claiming slots, issuing reads, completions, prefetch. */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "cache_internal.h"
#include "ec_error.h"
#include "ec_policy.h"
#include "ec_probes.h"

static bool evictable(void *arg, uint32_t key)
{
	struct ec_cache *c = arg;
	int32_t s = c->slot_of[key];

	return s >= 0 && c->slots[s].state == SLOT_READY &&
	       c->slots[s].pins == 0;
}

void ec_cache_free_slot(struct ec_cache *c, uint32_t s)
{
	c->free_stack[c->n_free++] = s;
}

int ec_cache_claim(struct ec_cache *c, uint32_t key, uint32_t *s)
{
	struct slot *v;
	uint32_t victim;
	int ret;

	if (c->n_free) {
		*s = c->free_stack[--c->n_free];
		return 0;
	}
	ret = c->pol->ops->victim(c->pol, key, c->tick, false, evictable, c,
				  &victim);
	if (ret != 0)
		return -EBUSY;
	/* READY -> (EVICTING) -> EMPTY: nothing to undo in the host tier */
	*s = (uint32_t)c->slot_of[victim];
	v = &c->slots[*s];
	c->pol->ops->remove(c->pol, victim);
	c->slot_of[victim] = -1;
	v->state = SLOT_EMPTY;
	if (v->prefetched)
		c->st.prefetch_wasted++;
	v->prefetched = false;
	c->st.evictions++;
	EC_PROBE_EVICT(victim / c->n_expert, victim % c->n_expert,
		       EC_TIER_HOST);
	return 0;
}

static void load_finished(struct ec_cache *c, struct slot *sl, int err,
			  const char *msg)
{
	uint32_t key = sl->key;

	if (--c->loading == 0)
		c->st.io_busy_ns += ec_now_ns() - c->busy_since;
	if (!err) {
		sl->state = SLOT_READY;
	} else {
		c->st.load_errors++;
		c->pol->ops->remove(c->pol, key);
		c->slot_of[key] = -1;
		sl->state = SLOT_EMPTY;
		sl->prefetched = false;
		sl->err = err;
		snprintf(sl->msg, sizeof(sl->msg), "expert (layer %u, expert "
			 "%u): %s", key / c->n_expert, key % c->n_expert,
			 msg && *msg ? msg : ec_error_name(err));
		c->last_err = err;
		memcpy(c->last_msg, sl->msg, sizeof(c->last_msg));
		if (!sl->pins)
			ec_cache_free_slot(c, (uint32_t)(sl - c->slots));
	}
	pthread_cond_broadcast(&c->cond);
}

/* Reader callback, on its completion thread. */
static void load_done(void *arg, const struct ec_uring_result *res)
{
	struct slot *sl = arg;
	struct ec_cache *c = sl->c;

	pthread_mutex_lock(&c->lock);
	c->st.bytes_read += res->bytes;
	c->st.read_ns += res->ns;
	EC_PROBE_LOAD_DONE(sl->key / c->n_expert, sl->key % c->n_expert,
			   res->bytes, res->ns, EC_TIER_HOST,
			   c->layout[sl->key].ext[0].file, res->err);
	load_finished(c, sl, res->err, res->msg);
	pthread_mutex_unlock(&c->lock);
}

int ec_cache_start_load(struct ec_cache *c, uint32_t s, uint32_t key,
			bool prefetch)
{
	const struct ec_expert_layout *lo = &c->layout[key];
	struct ec_uring_seg segs[EC_EXPERT_NPARTS];
	struct slot *sl = &c->slots[s];
	uint32_t i;
	int ret;

	sl->state = SLOT_LOADING;
	sl->key = key;
	sl->prefetched = prefetch;
	sl->err = 0;
	sl->view = c->m->layers[key / c->n_expert].experts[key % c->n_expert];
	for (i = 0; i < EC_EXPERT_NPARTS; i++)
		sl->view.w[i].data = sl->mem + lo->part_off[i];
	c->slot_of[key] = (int32_t)s;
	c->pol->ops->insert(c->pol, key, c->tick);
	c->st.loads++;
	EC_PROBE_LOAD_ISSUED(key / c->n_expert, key % c->n_expert, lo->bytes,
			     EC_TIER_HOST, lo->ext[0].file, prefetch);
	if (c->loading++ == 0)
		c->busy_since = ec_now_ns();
	for (i = 0; i < lo->n_seg; i++) {
		segs[i].file = lo->ext[i].file;
		segs[i].offset = lo->ext[i].offset;
		segs[i].length = lo->ext[i].length;
		segs[i].need = lo->need[i];
		segs[i].dst = sl->mem + lo->seg_off[i];
	}
	/* the reader never calls back from here, so holding c->lock is ok */
	ret = ec_uring_read(c->io, segs, lo->n_seg, key, load_done, sl);
	if (ret < 0)
		load_finished(c, sl, ret, ec_error_msg());
	return ret;
}

int ec_cache_prefetch(struct ec_cache *c, uint32_t layer, const int32_t *ids,
		      uint32_t n)
{
	uint32_t i, s;
	int issued = 0;

	if (layer >= c->n_layer)
		return 0;
	pthread_mutex_lock(&c->lock);
	c->tick++;
	for (i = 0; i < n; i++) {
		uint32_t key;

		if (ids[i] < 0 || (uint32_t)ids[i] >= c->n_expert)
			continue;
		key = layer * c->n_expert + (uint32_t)ids[i];
		if (c->slot_of[key] >= 0)
			continue;
		if (ec_cache_claim(c, key, &s) < 0)
			break;
		c->st.prefetch_issued++;
		EC_PROBE_PREFETCH_ISSUED(layer, ids[i], EC_TIER_HOST);
		if (ec_cache_start_load(c, s, key, true) == 0)
			issued++;
	}
	pthread_mutex_unlock(&c->lock);
	return issued;
}

/* How many of keys[0..n) are no longer loading. */
static uint32_t count_finished(struct ec_cache *c, const uint32_t *keys,
			       uint32_t n)
{
	uint32_t i, done = 0;

	for (i = 0; i < n; i++) {
		int32_t s = c->slot_of[keys[i]];

		if (s < 0 || c->slots[s].state != SLOT_LOADING)
			done++;
	}
	return done;
}

int ec_cache_preload(struct ec_cache *c, const uint32_t *keys, uint32_t n,
		     ec_cache_progress_fn *progress, void *arg)
{
	uint32_t limit = c->n_slots > 1 ? c->n_slots - 1 : 0;
	uint32_t i, s, done, last = UINT32_MAX;
	uint64_t bytes0, errors0;
	int ret = 0;

	for (i = 0; i < n; i++)
		if (keys[i] >= c->n_keys)
			return ec_err(-EC_EINVAL, "preload: key %u of %u",
				      keys[i], c->n_keys);
	if (n > limit)
		n = limit;
	pthread_mutex_lock(&c->lock);
	bytes0 = c->st.bytes_read;
	errors0 = c->st.load_errors;
	for (i = 0; i < n; i++) {
		if (c->slot_of[keys[i]] >= 0)
			continue;
		if (ec_cache_claim(c, keys[i], &s) < 0)
			break;
		ec_cache_start_load(c, s, keys[i], false);
	}
	n = i;	/* the keys that got a slot */
	for (;;) {
		done = count_finished(c, keys, n);
		if (done != last && progress) {
			uint64_t b = c->st.bytes_read - bytes0;

			pthread_mutex_unlock(&c->lock);
			progress(arg, done, n, b);
			pthread_mutex_lock(&c->lock);
		}
		last = done;
		if (done == n)
			break;
		pthread_cond_wait(&c->cond, &c->lock);
	}
	if (c->st.load_errors > errors0)
		ret = ec_err(c->last_err, "preload: %llu of %u experts failed;"
			     " %s", (unsigned long long)(c->st.load_errors -
							 errors0),
			     n, c->last_msg);
	pthread_mutex_unlock(&c->lock);
	return ret < 0 ? ret : (int)n;
}
