// SPDX-License-Identifier: GPL-2.0
/*
 * expertcache_main.c - module entry: the /dev/expertcache misc device.
 *
 * Pinned, NUMA-local, zeroed page pools for the host tier of expertcache's
 * expert cache, shared by name across processes, with a slot table whose
 * transitions the kernel makes atomic.  See docs/MODULE.md.
 */
#include <linux/fs.h>
#include <linux/miscdevice.h>
#include <linux/module.h>
#include <linux/slab.h>

#include "ec_internal.h"

static int ec_open(struct inode *inode, struct file *file)
{
	struct ec_file *f;

	f = kzalloc(sizeof(*f), GFP_KERNEL_ACCOUNT);
	if (!f)
		return -ENOMEM;
	mutex_init(&f->lock);
	xa_init(&f->pins);
	file->private_data = f;
	return nonseekable_open(inode, file);
}

static int ec_release(struct inode *inode, struct file *file)
{
	struct ec_file *f = file->private_data;

	ec_file_unbind(f);
	mutex_destroy(&f->lock);
	kfree(f);
	return 0;
}

static int ec_mmap(struct file *file, struct vm_area_struct *vma)
{
	struct ec_file *f = file->private_data;
	int ret = -ENXIO;

	mutex_lock(&f->lock);
	if (f->pool)
		ret = ec_pool_mmap(f->pool, vma, f->writable);
	mutex_unlock(&f->lock);
	return ret;
}

static const struct file_operations ec_fops = {
	.owner = THIS_MODULE,
	.open = ec_open,
	.release = ec_release,
	.mmap = ec_mmap,
	.unlocked_ioctl = ec_ioctl,
	.compat_ioctl = compat_ptr_ioctl,
	.llseek = EC_LLSEEK,
};

/* Mode 0660: who may pin memory is decided by the node's group (udev rule). */
static struct miscdevice ec_misc = {
	.minor = MISC_DYNAMIC_MINOR,
	.name = "expertcache",
	.fops = &ec_fops,
	.mode = 0660,
	.groups = ec_attr_groups,
};

static int __init ec_init(void)
{
	int ret;

	ret = ec_limits_init();
	if (ret)
		return ret;
	ec_stats_init();
	ret = misc_register(&ec_misc);
	if (ret)
		goto err_stats;
	return 0;

err_stats:
	ec_stats_exit();
	ec_limits_exit();
	return ret;
}

/* Every open fd and mapping holds a module reference: no pools are left. */
static void __exit ec_exit(void)
{
	misc_deregister(&ec_misc);
	ec_stats_exit();
	WARN_ON(!list_empty(&ec_pools));
	ec_limits_exit();
}

module_init(ec_init);
module_exit(ec_exit);

MODULE_LICENSE("GPL");
MODULE_DESCRIPTION("expertcache: pinned NUMA-local pools for the expert host tier");
MODULE_AUTHOR("expertcache developers");
