// SPDX-License-Identifier: GPL-2.0
/*
 * stats.c - counters for people and tools: sysfs attributes of the device
 * (/sys/class/misc/expertcache/) and a per-pool listing in debugfs
 * (/sys/kernel/debug/expertcache/pools).
 */
#include <linux/debugfs.h>
#include <linux/device.h>
#include <linux/seq_file.h>

#include "ec_internal.h"

static struct dentry *ec_debugfs_dir;

static void ec_global_info(struct ec_dev_info *info)
{
	ec_limits_fill_info(GLOBAL_ROOT_UID, info);
}

#define EC_SYSFS_U64(field)						\
static ssize_t field##_show(struct device *dev,				\
			    struct device_attribute *attr, char *buf)	\
{									\
	struct ec_dev_info info;					\
									\
	ec_global_info(&info);						\
	return sysfs_emit(buf, "%llu\n", (u64)info.field);		\
}									\
static DEVICE_ATTR_RO(field)

EC_SYSFS_U64(total_pinned_bytes);
EC_SYSFS_U64(total_refusals);
EC_SYSFS_U64(pages_allocated);
EC_SYSFS_U64(pages_freed);
EC_SYSFS_U64(n_pools);
EC_SYSFS_U64(max_total_bytes);
EC_SYSFS_U64(max_user_bytes);

static struct attribute *ec_attrs[] = {
	&dev_attr_total_pinned_bytes.attr,
	&dev_attr_total_refusals.attr,
	&dev_attr_pages_allocated.attr,
	&dev_attr_pages_freed.attr,
	&dev_attr_n_pools.attr,
	&dev_attr_max_total_bytes.attr,
	&dev_attr_max_user_bytes.attr,
	NULL,
};

static const struct attribute_group ec_attr_group = {
	.attrs = ec_attrs,
};

const struct attribute_group *ec_attr_groups[] = {
	&ec_attr_group,
	NULL,
};

static const char *const ec_state_names[] = {
	"empty", "loading", "ready", "evicting",
};

/* One block per pool; ec_lock keeps every listed pool alive. */
static int ec_pools_show(struct seq_file *m, void *unused)
{
	struct ec_pool_stats st;
	struct ec_pool *pool;
	int i;

	mutex_lock(&ec_lock);
	list_for_each_entry(pool, &ec_pools, node) {
		ec_pool_fill_stats(pool, &st);
		seq_printf(m, "pool %llu name=%s uid=%u node=%d flags=%#x\n",
			   pool->id, pool->name[0] ? pool->name : "-",
			   from_kuid(&init_user_ns, pool->owner), pool->nid,
			   pool->flags);
		seq_printf(m, "  slots=%u slot_size=%llu data_bytes=%llu "
			   "huge_bytes=%llu charged=%llu\n",
			   pool->n_slots, pool->slot_size, pool->data_bytes,
			   pool->huge_bytes, pool->charged);
		seq_printf(m, "  attached=%d mappings=%d\n",
			   atomic_read(&pool->n_attached),
			   atomic_read(&pool->n_mappings));
		seq_puts(m, " ");
		for (i = 0; i < ARRAY_SIZE(ec_state_names); i++)
			seq_printf(m, " %s=%u", ec_state_names[i],
				   i == 0 ? st.n_empty : i == 1 ? st.n_loading :
				   i == 2 ? st.n_ready : st.n_evicting);
		seq_printf(m, "\n  claims=%llu fills=%llu aborts=%llu "
			   "evictions=%llu pins=%llu unpins=%llu refused=%llu\n",
			   st.claims, st.fills, st.aborts, st.evictions,
			   st.pins, st.unpins, st.refused);
	}
	mutex_unlock(&ec_lock);
	return 0;
}
DEFINE_SHOW_ATTRIBUTE(ec_pools);

static int ec_limits_show(struct seq_file *m, void *unused)
{
	struct ec_dev_info info;

	ec_global_info(&info);
	seq_printf(m, "max_total_bytes %llu\nmax_user_bytes %llu\n"
		   "total_pinned_bytes %llu\ntotal_refusals %llu\n"
		   "pages_allocated %llu\npages_freed %llu\nn_pools %u\n",
		   info.max_total_bytes, info.max_user_bytes,
		   info.total_pinned_bytes, info.total_refusals,
		   info.pages_allocated, info.pages_freed, info.n_pools);
	return 0;
}
DEFINE_SHOW_ATTRIBUTE(ec_limits);

/* debugfs is optional: failures leave the module fully working. */
void ec_stats_init(void)
{
	ec_debugfs_dir = debugfs_create_dir("expertcache", NULL);
	debugfs_create_file("pools", 0400, ec_debugfs_dir, NULL,
			    &ec_pools_fops);
	debugfs_create_file("limits", 0400, ec_debugfs_dir, NULL,
			    &ec_limits_fops);
}

void ec_stats_exit(void)
{
	debugfs_remove_recursive(ec_debugfs_dir);
}
