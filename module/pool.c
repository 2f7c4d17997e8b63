// SPDX-License-Identifier: GPL-2.0
/* pool.c - pool lifetime: create, attach by name, bind to an fd, free. */
#include <linux/capability.h>
#include <linux/ctype.h>
#include <linux/cred.h>
#include <linux/mm.h>
#include <linux/nodemask.h>
#include <linux/nospec.h>
#include <linux/overflow.h>
#include <linux/sched.h>
#include <linux/slab.h>
#include <linux/string.h>
#include <linux/topology.h>

#include "ec_internal.h"
#include "trace.h"

DEFINE_MUTEX(ec_lock);
LIST_HEAD(ec_pools);
u32 ec_n_pools;
static atomic64_t ec_next_id = ATOMIC64_INIT(0);

void ec_pool_get(struct ec_pool *pool)
{
	kref_get(&pool->ref);
}

/* Called with ec_lock held by kref_put_mutex(); drops it. */
static void ec_pool_release(struct kref *ref)
{
	struct ec_pool *pool = container_of(ref, struct ec_pool, ref);

	list_del(&pool->node);
	ec_n_pools--;
	mutex_unlock(&ec_lock);

	trace_pool_destroy(pool->id, pool->data_bytes);
	ec_pool_mem_free(pool);
	ec_slots_free(pool);
	ec_limits_uncharge(pool->owner, pool->charged);
	kfree(pool);
}

/*
 * The count reaches zero under ec_lock, so a lookup by name under ec_lock
 * never finds a pool that is being freed.
 */
void ec_pool_put(struct ec_pool *pool)
{
	kref_put_mutex(&pool->ref, ec_pool_release, &ec_lock);
}

static bool ec_name_valid(const char *name, bool allow_empty)
{
	size_t len = strnlen(name, EC_POOL_NAME_MAX);
	size_t i;

	if (len == EC_POOL_NAME_MAX)
		return false;	/* not NUL-terminated */
	if (!len)
		return allow_empty;
	for (i = 0; i < len; i++)
		if (!isalnum(name[i]) && !strchr("._-", name[i]))
			return false;
	return true;
}

static struct ec_pool *ec_pool_find(const char *name)
{
	struct ec_pool *pool;

	lockdep_assert_held(&ec_lock);
	list_for_each_entry(pool, &ec_pools, node)
		if (pool->name[0] && !strcmp(pool->name, name))
			return pool;
	return NULL;
}

static int ec_node_resolve(s32 node, int *nid)
{
	if (node == EC_NODE_LOCAL) {
		*nid = numa_mem_id();
		return 0;
	}
	if (node < 0 || node >= nr_node_ids)
		return -EINVAL;
	node = array_index_nospec(node, nr_node_ids);
	if (!node_online(node) || !node_state(node, N_MEMORY))
		return -EINVAL;
	*nid = node;
	return 0;
}

static void ec_file_bind(struct ec_file *f, struct ec_pool *pool,
			 bool writable)
{
	f->pool = pool;
	f->writable = writable;
	atomic_inc(&pool->n_attached);
	trace_pool_attach(pool->id, writable);
}

/* Creates a pool and binds it to @f (whose lock is held). */
int ec_pool_create(struct ec_file *f, const struct ec_pool_create *req,
		   bool may_write)
{
	u64 data_bytes, table_bytes, total;
	struct ec_pool *pool;
	int nid, ret;

	if (f->pool)
		return -EBUSY;
	if (!may_write)
		return -EACCES;
	if (req->flags & ~EC_POOL_F_ALL)
		return -EINVAL;
	if (!req->n_slots || req->n_slots > EC_MAX_SLOTS)
		return -EINVAL;
	if (!req->slot_size || !PAGE_ALIGNED(req->slot_size))
		return -EINVAL;
	if (!ec_name_valid(req->name, true))
		return -EINVAL;
	ret = ec_node_resolve(req->node, &nid);
	if (ret)
		return ret;
	table_bytes = PAGE_ALIGN(sizeof(struct ec_table_header) +
				 (u64)req->n_slots *
				 sizeof(struct ec_slot_entry));
	if (check_mul_overflow(req->slot_size, (u64)req->n_slots,
			       &data_bytes) ||
	    check_add_overflow(data_bytes, table_bytes, &total) ||
	    (total >> PAGE_SHIFT) > ULONG_MAX / sizeof(struct page *))
		return -EOVERFLOW;

	/* Fail fast on a taken name; checked again before publishing. */
	if (req->name[0]) {
		mutex_lock(&ec_lock);
		ret = ec_pool_find(req->name) ? -EEXIST : 0;
		mutex_unlock(&ec_lock);
		if (ret)
			return ret;
	}

	ret = ec_limits_charge(current_euid(), total);
	if (ret)
		return ret;

	pool = kzalloc(sizeof(*pool), GFP_KERNEL_ACCOUNT);
	if (!pool) {
		ret = -ENOMEM;
		goto err_uncharge;
	}
	kref_init(&pool->ref);
	INIT_LIST_HEAD(&pool->node);
	spin_lock_init(&pool->lock);
	pool->id = atomic64_inc_return(&ec_next_id);
	strscpy(pool->name, req->name, sizeof(pool->name));
	pool->owner = current_euid();
	pool->flags = req->flags;
	pool->nid = nid;
	pool->n_slots = req->n_slots;
	pool->slot_size = req->slot_size;
	pool->table_bytes = table_bytes;
	pool->data_bytes = data_bytes;
	pool->charged = total;
	pool->table_pages = table_bytes >> PAGE_SHIFT;
	pool->n_pages = total >> PAGE_SHIFT;

	ret = ec_slots_init(pool);
	if (ret)
		goto err_free_pool;
	ret = ec_pool_mem_alloc(pool);
	if (ret)
		goto err_free_slots;

	mutex_lock(&ec_lock);
	if (pool->name[0] && ec_pool_find(pool->name)) {
		mutex_unlock(&ec_lock);
		ret = -EEXIST;
		goto err_free_mem;
	}
	list_add_tail(&pool->node, &ec_pools);
	ec_n_pools++;
	mutex_unlock(&ec_lock);

	trace_pool_create(pool->id, pool->nid, pool->data_bytes,
			  pool->huge_bytes, pool->n_slots,
			  from_kuid(&init_user_ns, pool->owner));
	ec_file_bind(f, pool, true);
	return 0;

err_free_mem:
	ec_pool_mem_free(pool);
err_free_slots:
	ec_slots_free(pool);
err_free_pool:
	kfree(pool);
err_uncharge:
	ec_limits_uncharge(current_euid(), total);
	return ret;
}

static bool ec_may_attach(struct ec_pool *pool, bool write)
{
	if (uid_eq(current_euid(), pool->owner) || capable(CAP_SYS_ADMIN))
		return true;
	return !write && (pool->flags & EC_POOL_F_SHARE_RO);
}

/* Binds the named pool to @f (whose lock is held). */
int ec_pool_attach(struct ec_file *f, const struct ec_pool_attach *req,
		   bool may_write)
{
	bool write = req->flags & EC_ATTACH_F_WRITE;
	struct ec_pool *pool;
	int ret = 0;

	if (f->pool)
		return -EBUSY;
	if (req->flags & ~EC_ATTACH_F_ALL)
		return -EINVAL;
	if (!ec_name_valid(req->name, false))
		return -EINVAL;
	if (write && !may_write)
		return -EACCES;

	mutex_lock(&ec_lock);
	pool = ec_pool_find(req->name);
	if (!pool)
		ret = -ENOENT;
	else if (!ec_may_attach(pool, write))
		ret = -EACCES;
	else
		ec_pool_get(pool);
	mutex_unlock(&ec_lock);
	if (ret)
		return ret;
	ec_file_bind(f, pool, write);
	return 0;
}

/* Drops @f's binding (lock held or fd being released). */
void ec_file_unbind(struct ec_file *f)
{
	struct ec_pool *pool = f->pool;

	if (!pool)
		return;
	ec_slots_release_file(f);
	trace_pool_detach(pool->id, f->writable);
	atomic_dec(&pool->n_attached);
	f->pool = NULL;
	f->writable = false;
	ec_pool_put(pool);
}

void ec_pool_fill_info(struct ec_pool *pool, struct ec_file *f,
		       struct ec_pool_info *info)
{
	info->flags = pool->flags;
	info->pool_id = pool->id;
	memcpy(info->name, pool->name, sizeof(info->name));
	info->owner_uid = from_kuid_munged(current_user_ns(), pool->owner);
	info->node = pool->nid;
	info->n_slots = pool->n_slots;
	info->access = f->writable ? EC_ATTACH_F_WRITE : 0;
	info->slot_size = pool->slot_size;
	info->table_offset = 0;
	info->table_bytes = pool->table_bytes;
	info->data_offset = pool->table_bytes;
	info->data_bytes = pool->data_bytes;
	info->huge_bytes = pool->huge_bytes;
	info->n_attached = atomic_read(&pool->n_attached);
	info->n_mappings = atomic_read(&pool->n_mappings);
}
