// SPDX-License-Identifier: MIT
/* Expert cache counters, their --stats-json rendering, and cache info. */
#include <string.h>

#include "cache_internal.h"

void ec_cache_count_substitution(struct ec_cache *c)
{
	__atomic_fetch_add(&c->substitutions, 1, __ATOMIC_RELAXED);
}

void ec_cache_get_stats(struct ec_cache *c, struct ec_cache_stats *out)
{
	struct ec_uring_stats us;
	uint32_t i, ready = 0;

	ec_uring_get_stats(c->io, &us);
	pthread_mutex_lock(&c->lock);
	*out = c->st;
	out->read_requests = us.requests - c->requests_base;
	if (c->loading)
		out->io_busy_ns += ec_now_ns() - c->busy_since;
	for (i = 0; i < c->n_slots; i++)
		ready += c->slots[i].state == SLOT_READY;
	pthread_mutex_unlock(&c->lock);
	out->n_resident = ready;
	out->substitutions = __atomic_load_n(&c->substitutions,
					     __ATOMIC_RELAXED);
}

void ec_cache_reset_stats(struct ec_cache *c)
{
	struct ec_uring_stats us;

	ec_uring_get_stats(c->io, &us);
	pthread_mutex_lock(&c->lock);
	c->requests_base = us.requests;
	memset(&c->st, 0, sizeof(c->st));
	c->st.n_slots = c->n_slots;
	c->st.slot_bytes = c->slot_bytes;
	if (c->loading)
		c->busy_since = ec_now_ns();
	pthread_mutex_unlock(&c->lock);
	__atomic_store_n(&c->substitutions, 0, __ATOMIC_RELAXED);
}

static double ratio(double a, double b)
{
	return b > 0 ? a / b : 0.0;
}

json_t *ec_cache_stats_json(const struct ec_cache_stats *s, double wall_s)
{
	double busy_s = (double)s->io_busy_ns / 1e9;
	json_t *host, *o;

	host = json_pack("{s:I, s:I, s:f, s:I, s:I, s:I, s:I}",
			 "expert_hits", (json_int_t)s->hits,
			 "expert_misses", (json_int_t)s->misses,
			 "hit_rate", ratio((double)s->hits,
					   (double)(s->hits + s->misses)),
			 "slots", (json_int_t)s->n_slots,
			 "slot_bytes", (json_int_t)s->slot_bytes,
			 "resident", (json_int_t)s->n_resident,
			 "evictions", (json_int_t)s->evictions);
	if (!host)
		return NULL;
	o = json_pack("{s:I, s:I, s:f, s:I, s:I, s:f, s:f, s:f, s:I, s:I, "
		      "s:I, s:f, s:I, s:I, s:I, s:{s:o}}",
		      "expert_hits", (json_int_t)s->hits,
		      "expert_misses", (json_int_t)s->misses,
		      "hit_rate", ratio((double)s->hits,
					(double)(s->hits + s->misses)),
		      "bytes_read", (json_int_t)s->bytes_read,
		      "read_requests", (json_int_t)s->read_requests,
		      "read_gbps", ratio((double)s->bytes_read / 1e9, busy_s),
		      "io_busy_s", busy_s,
		      "io_wait_share", ratio((double)s->io_wait_ns / 1e9,
					     wall_s),
		      "prefetch_issued", (json_int_t)s->prefetch_issued,
		      "prefetch_used", (json_int_t)s->prefetch_used,
		      "prefetch_wasted", (json_int_t)s->prefetch_wasted,
		      "prefetch_accuracy", ratio((double)s->prefetch_used,
						 (double)s->prefetch_issued),
		      "substitutions", (json_int_t)s->substitutions,
		      "loads", (json_int_t)s->loads,
		      "load_errors", (json_int_t)s->load_errors,
		      "tiers", "host", host);
	return o;
}

void ec_cache_get_info(const struct ec_cache *c, struct ec_cache_info *out)
{
	memset(out, 0, sizeof(*out));
	out->policy = c->policy_name;
	out->n_slots = c->n_slots;
	out->n_keys = c->n_keys;
	out->n_pinned = c->n_pinned;
	out->slot_bytes = c->slot_bytes;
	ec_host_tier_get_info(c->tier, &out->tier);
	ec_uring_get_info(c->io, &out->io);
}
