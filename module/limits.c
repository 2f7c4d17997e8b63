// SPDX-License-Identifier: GPL-2.0
/* limits.c - caps on pinned bytes per uid and in total, and their counters. */
#include <linux/mm.h>
#include <linux/module.h>
#include <linux/slab.h>

#include "ec_internal.h"
#include "trace.h"

/*
 * Caps, in bytes; 0 at load time means "half of RAM" for the total and "the
 * total cap" per user.  Root may change them at run time; a lower cap does
 * not shrink existing pools, it only refuses new ones.
 */
static unsigned long max_total_bytes;
module_param(max_total_bytes, ulong, 0644);
MODULE_PARM_DESC(max_total_bytes,
		 "Cap on bytes pinned by all pools (0 at load: half of RAM)");
static unsigned long max_user_bytes;
module_param(max_user_bytes, ulong, 0644);
MODULE_PARM_DESC(max_user_bytes,
		 "Cap on bytes pinned by one uid's pools (0 at load: total cap)");

/* One uid's account; created at its first charge, kept until unload. */
struct ec_user {
	struct list_head node;
	kuid_t uid;
	u64 pinned;
	u64 refusals;
};

static LIST_HEAD(ec_users);
static u64 ec_total_pinned;
static u64 ec_total_refusals;
static unsigned int ec_n_users;

/* Bounds the accounts a flood of distinct uids can make the module keep. */
#define EC_MAX_USERS 65536

int ec_limits_init(void)
{
	unsigned long ram = totalram_pages() << PAGE_SHIFT;

	if (!max_total_bytes)
		max_total_bytes = ram / 2;
	if (!max_user_bytes)
		max_user_bytes = max_total_bytes;
	return 0;
}

void ec_limits_exit(void)
{
	struct ec_user *u, *tmp;

	list_for_each_entry_safe(u, tmp, &ec_users, node) {
		list_del(&u->node);
		kfree(u);
	}
}

static struct ec_user *ec_user_find(kuid_t uid)
{
	struct ec_user *u;

	lockdep_assert_held(&ec_lock);
	list_for_each_entry(u, &ec_users, node)
		if (uid_eq(u->uid, uid))
			return u;
	return NULL;
}

/* Reserve @bytes for @uid before allocating; -ENOMEM over either cap. */
int ec_limits_charge(kuid_t uid, u64 bytes)
{
	u64 user_cap = READ_ONCE(max_user_bytes);
	u64 total_cap = READ_ONCE(max_total_bytes);
	struct ec_user *u;
	int ret = 0;

	mutex_lock(&ec_lock);
	u = ec_user_find(uid);
	if (!u) {
		if (ec_n_users >= EC_MAX_USERS) {
			ret = -ENOMEM;
			goto out;
		}
		u = kzalloc(sizeof(*u), GFP_KERNEL);
		if (!u) {
			ret = -ENOMEM;
			goto out;
		}
		u->uid = uid;
		list_add(&u->node, &ec_users);
		ec_n_users++;
	}
	if (bytes > user_cap || u->pinned > user_cap - bytes ||
	    bytes > total_cap || ec_total_pinned > total_cap - bytes) {
		u->refusals++;
		ec_total_refusals++;
		trace_limit_refused(from_kuid(&init_user_ns, uid), bytes,
				    u->pinned, ec_total_pinned);
		ret = -ENOMEM;
		goto out;
	}
	u->pinned += bytes;
	ec_total_pinned += bytes;
out:
	mutex_unlock(&ec_lock);
	return ret;
}

void ec_limits_uncharge(kuid_t uid, u64 bytes)
{
	struct ec_user *u;

	mutex_lock(&ec_lock);
	u = ec_user_find(uid);
	if (!WARN_ON_ONCE(!u || u->pinned < bytes))
		u->pinned -= bytes;
	if (!WARN_ON_ONCE(ec_total_pinned < bytes))
		ec_total_pinned -= bytes;
	mutex_unlock(&ec_lock);
}

void ec_limits_fill_info(kuid_t uid, struct ec_dev_info *info)
{
	struct ec_user *u;

	mutex_lock(&ec_lock);
	u = ec_user_find(uid);
	info->max_user_bytes = READ_ONCE(max_user_bytes);
	info->max_total_bytes = READ_ONCE(max_total_bytes);
	info->user_pinned_bytes = u ? u->pinned : 0;
	info->user_refusals = u ? u->refusals : 0;
	info->total_pinned_bytes = ec_total_pinned;
	info->total_refusals = ec_total_refusals;
	info->n_pools = ec_n_pools;
	mutex_unlock(&ec_lock);
	info->pages_allocated = atomic64_read(&ec_pages_allocated);
	info->pages_freed = atomic64_read(&ec_pages_freed);
	info->page_size = PAGE_SIZE;
	info->abi_version = EC_ABI_VERSION;
}
