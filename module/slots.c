// SPDX-License-Identifier: GPL-2.0
/* slots.c - the slot state machine and its mirror in the shared table. */
#include <linux/hash.h>
#include <linux/log2.h>
#include <linux/mm.h>
#include <linux/nospec.h>
#include <linux/sched.h>
#include <linux/slab.h>

#include "ec_internal.h"
#include "trace.h"

int ec_slots_init(struct ec_pool *pool)
{
	u32 i;

	pool->slots = kvcalloc(pool->n_slots, sizeof(*pool->slots),
			       GFP_KERNEL_ACCOUNT);
	if (!pool->slots)
		return -ENOMEM;
	pool->hash_bits = max_t(unsigned int, 1,
				order_base_2(pool->n_slots));
	pool->key_hash = kvcalloc(1UL << pool->hash_bits,
				  sizeof(*pool->key_hash), GFP_KERNEL_ACCOUNT);
	if (!pool->key_hash) {
		kvfree(pool->slots);
		pool->slots = NULL;
		return -ENOMEM;
	}
	INIT_LIST_HEAD(&pool->free_slots);
	for (i = 0; i < pool->n_slots; i++)
		list_add_tail(&pool->slots[i].free, &pool->free_slots);
	pool->n_state[EC_SLOT_EMPTY] = pool->n_slots;
	return 0;
}

void ec_slots_free(struct ec_pool *pool)
{
	kvfree(pool->key_hash);
	kvfree(pool->slots);
	pool->key_hash = NULL;
	pool->slots = NULL;
}

/* Copies slot @idx into the shared table, seqcount style. */
static void ec_slot_publish(struct ec_pool *pool, u32 idx)
{
	struct ec_slot_entry *e = ec_pool_entry(pool, idx);
	struct ec_slot *s = &pool->slots[idx];

	lockdep_assert_held(&pool->lock);
	WRITE_ONCE(e->generation, s->gen + 1);
	smp_wmb();
	WRITE_ONCE(e->key, s->key);
	WRITE_ONCE(e->state, s->state);
	WRITE_ONCE(e->pins, s->pins);
	WRITE_ONCE(e->loader_pid, s->loader_pid);
	smp_wmb();
	s->gen += 2;
	WRITE_ONCE(e->generation, s->gen);
}

static void ec_slot_set_state(struct ec_pool *pool, u32 idx, u32 state)
{
	struct ec_slot *s = &pool->slots[idx];

	pool->n_state[s->state]--;
	pool->n_state[state]++;
	s->state = state;
}

static struct ec_slot *ec_slot_by_key(struct ec_pool *pool, u64 key)
{
	struct ec_slot *s;

	hlist_for_each_entry(s, &pool->key_hash[hash_64(key, pool->hash_bits)],
			     hash)
		if (s->key == key)
			return s;
	return NULL;
}

/* EMPTY -> LOADING for @f; the slot is off the free list afterwards. */
static void ec_slot_claim(struct ec_pool *pool, struct ec_file *f, u32 idx,
			  u64 key)
{
	struct ec_slot *s = &pool->slots[idx];

	list_del_init(&s->free);
	s->key = key;
	s->loader = f;
	s->loader_pid = task_tgid_nr(current);
	hlist_add_head(&s->hash, &pool->key_hash[hash_64(key,
							 pool->hash_bits)]);
	ec_slot_set_state(pool, idx, EC_SLOT_LOADING);
	f->n_loading++;
	pool->cnt.claims++;
	ec_slot_publish(pool, idx);
	trace_slot_claim(pool->id, idx, key, s->gen);
}

/* LOADING, READY or EVICTING -> EMPTY. */
static void ec_slot_empty(struct ec_pool *pool, u32 idx, bool abort)
{
	struct ec_slot *s = &pool->slots[idx];
	u64 key = s->key;

	hlist_del_init(&s->hash);
	list_add_tail(&s->free, &pool->free_slots);
	if (s->loader) {
		s->loader->n_loading--;
		s->loader = NULL;
	}
	s->key = 0;
	s->loader_pid = 0;
	ec_slot_set_state(pool, idx, EC_SLOT_EMPTY);
	ec_slot_publish(pool, idx);
	if (abort) {
		pool->cnt.aborts++;
		trace_slot_abort(pool->id, idx, key, s->gen);
	} else {
		pool->cnt.evictions++;
		trace_slot_evict(pool->id, idx, key, s->gen);
	}
}

static void ec_slot_unpin_locked(struct ec_pool *pool, u32 idx, u32 n)
{
	struct ec_slot *s = &pool->slots[idx];

	if (WARN_ON_ONCE(s->pins < n))
		n = s->pins;
	s->pins -= n;
	pool->cnt.unpins += n;
	if (!s->pins && s->state == EC_SLOT_EVICTING)
		ec_slot_empty(pool, idx, false);
	else
		ec_slot_publish(pool, idx);
}

/* Records a pin in @f's own table; undone under the lock if that fails. */
static int ec_file_add_pin(struct ec_file *f, struct ec_pool *pool, u32 idx)
{
	unsigned long held = xa_to_value(xa_load(&f->pins, idx) ?:
					 xa_mk_value(0));
	int ret;

	ret = xa_err(xa_store(&f->pins, idx, xa_mk_value(held + 1),
			      GFP_KERNEL_ACCOUNT));
	if (ret) {
		spin_lock(&pool->lock);
		ec_slot_unpin_locked(pool, idx, 1);
		spin_unlock(&pool->lock);
	}
	return ret;
}

static int ec_file_drop_pin(struct ec_file *f, u32 idx)
{
	void *entry = xa_load(&f->pins, idx);
	unsigned long held = entry ? xa_to_value(entry) : 0;

	if (!held)
		return -EINVAL;
	if (held == 1)
		xa_erase(&f->pins, idx);
	else
		xa_store(&f->pins, idx, xa_mk_value(held - 1), GFP_KERNEL);
	return 0;
}

static bool ec_op_writes(u32 op)
{
	return op == EC_SLOT_OP_CLAIM || op == EC_SLOT_OP_READY ||
	       op == EC_SLOT_OP_ABORT || op == EC_SLOT_OP_EVICT;
}

/* ACQUIRE under the lock: pin a READY slot holding the key or claim one. */
static int ec_slot_acquire_locked(struct ec_file *f, struct ec_pool *pool,
				  struct ec_slot_op *op, bool *pinned)
{
	struct ec_slot *s = ec_slot_by_key(pool, op->key);

	if (s) {
		op->slot = s - pool->slots;
		if (s->state == EC_SLOT_READY) {
			s->pins++;
			pool->cnt.pins++;
			ec_slot_publish(pool, op->slot);
			*pinned = true;
			op->flags |= EC_SLOT_F_PINNED;
			return 0;
		}
		pool->cnt.refused++;
		return -EAGAIN;	/* LOADING: the key is hashed otherwise */
	}
	if (!f->writable)
		return -ENOENT;
	s = list_first_entry_or_null(&pool->free_slots, struct ec_slot, free);
	if (!s) {
		pool->cnt.refused++;
		return -ENOSPC;
	}
	op->slot = s - pool->slots;
	ec_slot_claim(pool, f, op->slot, op->key);
	op->flags |= EC_SLOT_F_CLAIMED;
	return 0;
}

static int ec_slot_op_locked(struct ec_file *f, struct ec_pool *pool,
			     struct ec_slot_op *op, bool *pinned)
{
	struct ec_slot *s = &pool->slots[op->slot];
	u32 idx = op->slot;

	if ((op->flags & EC_SLOT_F_CHECK_KEY) && s->state != EC_SLOT_EMPTY &&
	    s->key != op->key)
		return -ESTALE;

	switch (op->op) {
	case EC_SLOT_OP_CLAIM:
		if (s->state != EC_SLOT_EMPTY)
			goto refused;
		if (ec_slot_by_key(pool, op->key))
			return -EEXIST;
		ec_slot_claim(pool, f, idx, op->key);
		return 0;
	case EC_SLOT_OP_READY:
	case EC_SLOT_OP_ABORT:
		if (s->state != EC_SLOT_LOADING)
			goto refused;
		if (s->loader != f)
			return -EPERM;
		if (op->op == EC_SLOT_OP_ABORT) {
			ec_slot_empty(pool, idx, true);
			return 0;
		}
		s->loader->n_loading--;
		s->loader = NULL;
		s->loader_pid = 0;
		ec_slot_set_state(pool, idx, EC_SLOT_READY);
		pool->cnt.fills++;
		ec_slot_publish(pool, idx);
		trace_slot_fill(pool->id, idx, s->key, s->gen);
		return 0;
	case EC_SLOT_OP_EVICT:
		if (s->state == EC_SLOT_LOADING) {
			pool->cnt.refused++;
			return -EAGAIN;
		}
		if (s->state != EC_SLOT_READY)
			goto refused;
		if (s->pins) {
			/* Invisible to lookups: the key may load elsewhere
			 * while the readers drain. */
			hlist_del_init(&s->hash);
			ec_slot_set_state(pool, idx, EC_SLOT_EVICTING);
			ec_slot_publish(pool, idx);
		} else {
			ec_slot_empty(pool, idx, false);
		}
		return 0;
	case EC_SLOT_OP_PIN:
		if (s->state == EC_SLOT_LOADING) {
			pool->cnt.refused++;
			return -EAGAIN;
		}
		if (s->state != EC_SLOT_READY)
			goto refused;
		s->pins++;
		pool->cnt.pins++;
		ec_slot_publish(pool, idx);
		*pinned = true;
		return 0;
	}
	return -EINVAL;
refused:
	pool->cnt.refused++;
	return -ENOENT;
}

/* Runs one slot operation for @f (whose lock is held). */
int ec_slot_op(struct ec_file *f, struct ec_slot_op *op)
{
	struct ec_pool *pool = f->pool;
	bool pinned = false;
	struct ec_slot *s;
	int ret;

	if (!pool)
		return -ENXIO;
	if (op->op < EC_SLOT_OP_ACQUIRE || op->op > EC_SLOT_OP_MAX)
		return -EINVAL;
	if (op->flags & ~EC_SLOT_F_IN_ALL)
		return -EINVAL;
	if (ec_op_writes(op->op) && !f->writable)
		return -EACCES;
	if (op->op != EC_SLOT_OP_ACQUIRE) {
		if (op->slot >= pool->n_slots)
			return -EINVAL;
		op->slot = array_index_nospec(op->slot, pool->n_slots);
	}

	if (op->op == EC_SLOT_OP_UNPIN) {
		ret = ec_file_drop_pin(f, op->slot);
		if (ret)
			return ret;
		spin_lock(&pool->lock);
		ec_slot_unpin_locked(pool, op->slot, 1);
	} else {
		spin_lock(&pool->lock);
		if (op->op == EC_SLOT_OP_ACQUIRE)
			ret = ec_slot_acquire_locked(f, pool, op, &pinned);
		else
			ret = ec_slot_op_locked(f, pool, op, &pinned);
		if (ret) {
			spin_unlock(&pool->lock);
			return ret;
		}
	}
	s = &pool->slots[op->slot];
	op->key = s->key;
	op->generation = s->gen;
	op->state = s->state;
	op->pins = s->pins;
	spin_unlock(&pool->lock);

	if (pinned)
		return ec_file_add_pin(f, pool, op->slot);
	return 0;
}

/* Gives back what a departing fd held: its pins and its LOADING slots. */
void ec_slots_release_file(struct ec_file *f)
{
	struct ec_pool *pool = f->pool;
	unsigned long idx;
	void *entry;
	u32 i;

	xa_for_each(&f->pins, idx, entry) {
		spin_lock(&pool->lock);
		ec_slot_unpin_locked(pool, idx, xa_to_value(entry));
		spin_unlock(&pool->lock);
	}
	xa_destroy(&f->pins);

	for (i = 0; f->n_loading && i < pool->n_slots; i++) {
		spin_lock(&pool->lock);
		if (pool->slots[i].loader == f)
			ec_slot_empty(pool, i, true);
		spin_unlock(&pool->lock);
		if (!(i & 0xfff))
			cond_resched();
	}
}

void ec_pool_fill_stats(struct ec_pool *pool, struct ec_pool_stats *st)
{
	spin_lock(&pool->lock);
	st->pool_id = pool->id;
	st->claims = pool->cnt.claims;
	st->fills = pool->cnt.fills;
	st->aborts = pool->cnt.aborts;
	st->evictions = pool->cnt.evictions;
	st->pins = pool->cnt.pins;
	st->unpins = pool->cnt.unpins;
	st->refused = pool->cnt.refused;
	st->n_empty = pool->n_state[EC_SLOT_EMPTY];
	st->n_loading = pool->n_state[EC_SLOT_LOADING];
	st->n_ready = pool->n_state[EC_SLOT_READY];
	st->n_evicting = pool->n_state[EC_SLOT_EVICTING];
	spin_unlock(&pool->lock);
}
