// SPDX-License-Identifier: MIT
/* Expert cache: slot table, get/put state machine, creation and teardown. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cache_internal.h"
#include "ec_error.h"
#include "ec_layout.h"
#include "ec_policy.h"
#include "ec_probes.h"

#define REG_CHUNK (1ull << 30)	/* io_uring limit per registered buffer */

/* Each expert is its one record of the layout file (file 0 of the reader). */
static int layout_from_file(struct ec_cache *c, const char *path)
{
	struct ec_layout *lf;
	uint32_t k;
	int ret, p;

	ret = ec_layout_load(path, c->m, &lf);
	if (ret < 0)
		return ret;
	for (k = 0; k < c->n_keys; k++) {
		const struct ec_layout_entry *en = &lf->ent[k];
		struct ec_expert_layout *lo = &c->layout[k];

		lo->n_seg = 1;
		lo->ext[0].file = 0;
		lo->ext[0].offset = en->offset;
		lo->ext[0].length = ec_align_up(en->length, EC_IO_ALIGN);
		lo->need[0] = en->length;
		lo->bytes = lo->ext[0].length;
		for (p = 0; p < EC_EXPERT_NPARTS; p++) {
			lo->part_off[p] = en->part_off[p];
			lo->payload += en->part_bytes[p];
		}
		if (lo->bytes > c->slot_bytes)
			c->slot_bytes = lo->bytes;
	}
	ec_layout_free(lf);
	return 0;
}

static int layout_all(struct ec_cache *c, const struct ec_cache_params *p)
{
	uint32_t l, e;
	int ret;

	if (p->layout_path)
		return layout_from_file(c, p->layout_path);
	for (l = 0; l < c->n_layer; l++) {
		for (e = 0; e < c->n_expert; e++) {
			struct ec_expert_layout *lo =
				&c->layout[l * c->n_expert + e];

			ret = ec_expert_layout_compute(c->m, l, e, lo);
			if (ret < 0)
				return ret;
			if (lo->bytes > c->slot_bytes)
				c->slot_bytes = lo->bytes;
		}
	}
	return 0;
}

static int make_policy(struct ec_cache *c, const struct ec_cache_params *p)
{
	const struct ec_policy_ops *ops;
	struct ec_policy_config cfg = { .n_keys = c->n_keys,
					.capacity = c->n_slots };
	uint8_t *pinned = NULL;
	uint32_t i, limit = c->n_slots - 1;
	int ret;

	c->policy_name = p->policy && *p->policy ? p->policy : "lru";
	ops = ec_policy_find(c->policy_name);
	if (!ops)
		return ec_err(-EC_EINVAL, "unknown cache policy '%s' (one of "
			      "%s)", c->policy_name, ec_policy_names());
	if (ops->offline)
		return ec_err(-EC_EINVAL, "policy '%s' needs the future: use "
			      "it with 'expertcache replay'", ops->name);
	if (ops == &ec_policy_static) {
		pinned = calloc(c->n_keys, 1);
		if (!pinned)
			return ec_err(-ENOMEM, "out of memory");
		for (i = 0; p->pinned && i < p->n_pinned; i++) {
			if (p->pinned[i] >= c->n_keys) {
				free(pinned);
				return ec_err(-EC_EINVAL, "pinned key %u: the "
					      "model has %u experts",
					      p->pinned[i], c->n_keys);
			}
			if (c->n_pinned < limit && !pinned[p->pinned[i]]) {
				pinned[p->pinned[i]] = 1;
				c->n_pinned++;
			}
		}
		cfg.pinned = pinned;
	}
	ret = ec_policy_create(ops, &cfg, &c->pol);
	free(pinned);
	return ret;
}

/* Register the pool as fixed buffers, in chunks of whole slots. */
static void register_tier(struct ec_cache *c)
{
	uint64_t per = REG_CHUNK / c->slot_bytes;
	struct iovec *iov;
	uint32_t n, i;

	if (!per)
		return;
	n = (uint32_t)((c->n_slots + per - 1) / per);
	iov = calloc(n, sizeof(*iov));
	if (!iov)
		return;
	for (i = 0; i < n; i++) {
		uint64_t first = i * per, cnt = c->n_slots - first;

		if (cnt > per)
			cnt = per;
		iov[i].iov_base = ec_host_tier_slot(c->tier, (uint32_t)first);
		iov[i].iov_len = cnt * c->slot_bytes;
	}
	ec_uring_register_buffers(c->io, iov, n);	/* else plain reads */
	free(iov);
}

static int open_reader(struct ec_cache *c, const struct ec_cache_params *p)
{
	const struct ec_model *m = c->m;
	struct ec_uring_file *files = NULL;
	const char **paths = NULL;
	uint32_t i;
	int ret;

	if (p->layout_path) {
		struct ec_uring_file lf = { .paths = &p->layout_path,
					    .n_paths = 1 };

		return ec_uring_create(&p->io, p->files ? p->files : &lf, 1,
				       &c->io);
	}
	if (p->files)
		return ec_uring_create(&p->io, p->files, m->n_files, &c->io);
	files = calloc(m->n_files, sizeof(*files));
	paths = calloc(m->n_files, sizeof(*paths));
	if (!files || !paths) {
		ret = ec_err(-ENOMEM, "out of memory");
		goto out;
	}
	for (i = 0; i < m->n_files; i++) {
		paths[i] = m->files[i].path;
		files[i].paths = &paths[i];
		files[i].n_paths = 1;
	}
	ret = ec_uring_create(&p->io, files, m->n_files, &c->io);
out:
	free(files);
	free(paths);
	return ret;
}

int ec_cache_create(const struct ec_model *m, const struct ec_cache_params *p,
		    struct ec_cache **out)
{
	struct ec_host_tier_params tp = p->tier;
	struct ec_cache *c;
	uint64_t n_keys = (uint64_t)m->hp.n_layer * m->hp.n_expert, slots;
	char a[32], b[32];
	uint32_t i;
	int ret;

	*out = NULL;
	if (!n_keys || n_keys > (1u << 26) || !m->n_files)
		return ec_err(-EC_EINVAL, "cache: the model has %llu experts "
			      "in %u files", (unsigned long long)n_keys,
			      m->n_files);
	c = calloc(1, sizeof(*c));
	if (!c)
		return ec_err(-ENOMEM, "out of memory");
	pthread_mutex_init(&c->lock, NULL);
	pthread_cond_init(&c->cond, NULL);
	c->m = m;
	c->n_layer = m->hp.n_layer;
	c->n_expert = m->hp.n_expert;
	c->n_keys = (uint32_t)n_keys;
	c->layout = calloc(n_keys, sizeof(*c->layout));
	c->slot_of = malloc(n_keys * sizeof(*c->slot_of));
	if (!c->layout || !c->slot_of)
		goto nomem;
	for (i = 0; i < n_keys; i++)
		c->slot_of[i] = -1;
	ret = layout_all(c, p);
	if (ret < 0)
		goto err;
	c->slot_bytes = ec_align_up(c->slot_bytes, EC_IO_ALIGN);
	slots = p->n_slots ? p->n_slots : p->ram_budget / c->slot_bytes;
	if (!slots) {
		ret = ec_err(-EC_EINVAL, "RAM budget %s is smaller than one "
			     "expert slot (%s)",
			     ec_format_size(p->ram_budget, a, sizeof(a)),
			     ec_format_size(c->slot_bytes, b, sizeof(b)));
		goto err;
	}
	c->n_slots = (uint32_t)(slots < n_keys ? slots : n_keys);
	ret = make_policy(c, p);
	if (ret < 0)
		goto err;
	c->slots = calloc(c->n_slots, sizeof(*c->slots));
	c->free_stack = malloc(c->n_slots * sizeof(*c->free_stack));
	if (!c->slots || !c->free_stack)
		goto nomem;
	tp.slot_bytes = c->slot_bytes;
	tp.n_slots = c->n_slots;
	ret = ec_host_tier_create(&tp, &c->tier);
	if (ret < 0)
		goto err;
	ret = open_reader(c, p);
	if (ret < 0)
		goto err;
	register_tier(c);
	for (i = 0; i < c->n_slots; i++) {
		c->slots[i].c = c;
		c->slots[i].mem = ec_host_tier_slot(c->tier, i);
		/* pop order 0, 1, 2, ... */
		c->free_stack[i] = c->n_slots - 1 - i;
	}
	c->n_free = c->n_slots;
	c->st.n_slots = c->n_slots;
	c->st.slot_bytes = c->slot_bytes;
	*out = c;
	return 0;
nomem:
	ret = ec_err(-ENOMEM, "out of memory");
err:
	ec_cache_free(c);
	return ret;
}

void ec_cache_free(struct ec_cache *c)
{
	if (!c)
		return;
	pthread_mutex_lock(&c->lock);
	while (c->loading)
		pthread_cond_wait(&c->cond, &c->lock);
	pthread_mutex_unlock(&c->lock);
	ec_uring_free(c->io);
	ec_host_tier_free(c->tier);
	ec_policy_free(c->pol);
	free(c->slots);
	free(c->free_stack);
	free(c->layout);
	free(c->slot_of);
	pthread_cond_destroy(&c->cond);
	pthread_mutex_destroy(&c->lock);
	free(c);
}

/* Wait out a load we hold a pin on; returns with the pin kept on success. */
static int wait_ready(struct ec_cache *c, struct slot *sl,
		      const struct ec_expert **out)
{
	uint64_t t0 = ec_now_ns();
	char msg[sizeof(sl->msg)];
	int err;

	while (sl->state == SLOT_LOADING)
		pthread_cond_wait(&c->cond, &c->lock);
	c->st.io_wait_ns += ec_now_ns() - t0;
	if (sl->state == SLOT_READY) {
		*out = &sl->view;
		return 0;
	}
	/* the load failed: the slot is EMPTY and kept for us until now */
	err = sl->err;
	memcpy(msg, sl->msg, sizeof(msg));
	if (--sl->pins == 0)
		ec_cache_free_slot(c, (uint32_t)(sl - c->slots));
	pthread_cond_broadcast(&c->cond);
	return ec_err(err, "%s", msg);
}

int ec_cache_get(struct ec_cache *c, uint32_t layer, uint32_t e,
		 const struct ec_expert **out)
{
	uint32_t key = layer * c->n_expert + e, s;
	struct slot *sl;
	int ret;

	*out = NULL;
	if (layer >= c->n_layer || e >= c->n_expert)
		return ec_err(-EC_EINVAL, "cache: expert (layer %u, expert %u)"
			      " out of range", layer, e);
	pthread_mutex_lock(&c->lock);
	c->tick++;
	for (;;) {
		int32_t cur = c->slot_of[key];

		if (cur >= 0) {
			sl = &c->slots[cur];
			sl->pins++;
			if (sl->prefetched) {
				c->st.prefetch_used++;
				EC_PROBE_PREFETCH_USED(layer, e, EC_TIER_HOST);
			}
			sl->prefetched = false;
			c->pol->ops->hit(c->pol, key, c->tick);
			if (sl->state == SLOT_READY) {
				c->st.hits++;
				EC_PROBE_HIT(layer, e, EC_TIER_HOST);
				*out = &sl->view;
				ret = 0;
				break;
			}
			c->st.misses++;
			c->st.inflight_joins++;
			EC_PROBE_MISS(layer, e, EC_TIER_HOST);
			ret = wait_ready(c, sl, out);
			break;
		}
		if (ec_cache_claim(c, key, &s) < 0) {
			/* every slot is pinned or loading: wait for one */
			pthread_cond_wait(&c->cond, &c->lock);
			continue;
		}
		c->st.misses++;
		EC_PROBE_MISS(layer, e, EC_TIER_HOST);
		sl = &c->slots[s];
		sl->pins = 1;
		ec_cache_start_load(c, s, key, false);
		ret = wait_ready(c, sl, out);
		break;
	}
	pthread_mutex_unlock(&c->lock);
	return ret;
}

void ec_cache_put(struct ec_cache *c, uint32_t layer, uint32_t e)
{
	uint32_t key = layer * c->n_expert + e;
	int32_t s;

	if (layer >= c->n_layer || e >= c->n_expert)
		return;
	pthread_mutex_lock(&c->lock);
	s = c->slot_of[key];
	if (s >= 0 && c->slots[s].pins) {
		if (--c->slots[s].pins == 0)
			pthread_cond_broadcast(&c->cond);
	}
	pthread_mutex_unlock(&c->lock);
}

int ec_cache_resident(struct ec_cache *c, uint32_t layer, uint32_t e)
{
	int32_t s;
	int ret = 0;

	if (layer >= c->n_layer || e >= c->n_expert)
		return 0;
	pthread_mutex_lock(&c->lock);
	s = c->slot_of[layer * c->n_expert + e];
	ret = s >= 0 && c->slots[s].state == SLOT_READY;
	pthread_mutex_unlock(&c->lock);
	return ret;
}

struct ec_uring *ec_cache_reader(struct ec_cache *c)
{
	return c->io;
}

const struct ec_host_tier *ec_cache_host_tier(const struct ec_cache *c)
{
	return c->tier;
}
