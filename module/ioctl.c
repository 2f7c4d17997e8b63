// SPDX-License-Identifier: GPL-2.0
/* ioctl.c - ioctl dispatch: copies versioned structs in and out, validates. */
#include <linux/cred.h>
#include <linux/fs.h>
#include <linux/uaccess.h>

#include "ec_internal.h"

/* Commands match on type, number and direction; `size` gives the version. */
#define EC_CMD(cmd) ((cmd) & ~(_IOC_SIZEMASK << _IOC_SIZESHIFT))

/*
 * Reads a struct whose first __u32 is its size: at least the first version,
 * at most a page; unknown trailing bytes must be zero (copy_struct_from_user
 * returns -E2BIG otherwise).  Leaves the caller's size in the struct.
 */
static int ec_copy_in(void *kbuf, size_t ksize, size_t ver0,
		      void __user *ubuf)
{
	u32 usize;
	int ret;

	if (get_user(usize, (u32 __user *)ubuf))
		return -EFAULT;
	if (usize < ver0 || usize > PAGE_SIZE)
		return -EINVAL;
	ret = copy_struct_from_user(kbuf, ksize, ubuf, usize);
	if (ret)
		return ret;
	*(u32 *)kbuf = usize;
	return 0;
}

static int ec_copy_out(void __user *ubuf, const void *kbuf, size_t ksize)
{
	size_t n = min_t(size_t, ksize, *(const u32 *)kbuf);

	return copy_to_user(ubuf, kbuf, n) ? -EFAULT : 0;
}

static int ec_ioc_dev_info(void __user *uarg)
{
	struct ec_dev_info info;
	int ret;

	ret = ec_copy_in(&info, sizeof(info), EC_DEV_INFO_SIZE_VER0, uarg);
	if (ret)
		return ret;
	ec_limits_fill_info(current_euid(), &info);
	return ec_copy_out(uarg, &info, sizeof(info));
}

/*
 * The handlers below copy from and to user memory without f->lock held:
 * a fault takes mmap_lock, and mmap() takes f->lock under mmap_lock.
 */
static int ec_ioc_create(struct ec_file *f, struct file *file,
			 void __user *uarg)
{
	struct ec_pool_create req;
	int ret;

	ret = ec_copy_in(&req, sizeof(req), EC_POOL_CREATE_SIZE_VER0, uarg);
	if (ret)
		return ret;
	mutex_lock(&f->lock);
	ret = ec_pool_create(f, &req, file->f_mode & FMODE_WRITE);
	if (!ret)
		req.pool_id = f->pool->id;
	mutex_unlock(&f->lock);
	/* On -EFAULT here the pool stays bound; POOL_INFO describes it. */
	return ret ?: ec_copy_out(uarg, &req, sizeof(req));
}

static int ec_ioc_attach(struct ec_file *f, struct file *file,
			 void __user *uarg)
{
	struct ec_pool_attach req;
	int ret;

	ret = ec_copy_in(&req, sizeof(req), EC_POOL_ATTACH_SIZE_VER0, uarg);
	if (ret)
		return ret;
	mutex_lock(&f->lock);
	ret = ec_pool_attach(f, &req, file->f_mode & FMODE_WRITE);
	if (!ret)
		req.pool_id = f->pool->id;
	mutex_unlock(&f->lock);
	return ret ?: ec_copy_out(uarg, &req, sizeof(req));
}

static int ec_ioc_detach(struct ec_file *f)
{
	int ret;

	mutex_lock(&f->lock);
	ret = f->pool ? 0 : -ENXIO;
	ec_file_unbind(f);
	mutex_unlock(&f->lock);
	return ret;
}

static int ec_ioc_info(struct ec_file *f, void __user *uarg)
{
	struct ec_pool_info info;
	int ret;

	ret = ec_copy_in(&info, sizeof(info), EC_POOL_INFO_SIZE_VER0, uarg);
	if (ret)
		return ret;
	mutex_lock(&f->lock);
	ret = f->pool ? 0 : -ENXIO;
	if (!ret)
		ec_pool_fill_info(f->pool, f, &info);
	mutex_unlock(&f->lock);
	return ret ?: ec_copy_out(uarg, &info, sizeof(info));
}

static int ec_ioc_stats(struct ec_file *f, void __user *uarg)
{
	struct ec_pool_stats st;
	int ret;

	ret = ec_copy_in(&st, sizeof(st), EC_POOL_STATS_SIZE_VER0, uarg);
	if (ret)
		return ret;
	st.pad = 0;
	mutex_lock(&f->lock);
	ret = f->pool ? 0 : -ENXIO;
	if (!ret)
		ec_pool_fill_stats(f->pool, &st);
	mutex_unlock(&f->lock);
	return ret ?: ec_copy_out(uarg, &st, sizeof(st));
}

static int ec_ioc_slot(struct ec_file *f, void __user *uarg)
{
	struct ec_slot_op op;
	int ret;

	ret = ec_copy_in(&op, sizeof(op), EC_SLOT_OP_SIZE_VER0, uarg);
	if (ret)
		return ret;
	mutex_lock(&f->lock);
	ret = ec_slot_op(f, &op);
	mutex_unlock(&f->lock);
	/*
	 * A fault here leaves the transition done (a pin stays held by the
	 * fd until UNPIN or close); the table shows the truth.
	 */
	return ret ?: ec_copy_out(uarg, &op, sizeof(op));
}

long ec_ioctl(struct file *file, unsigned int cmd, unsigned long arg)
{
	struct ec_file *f = file->private_data;
	void __user *uarg = (void __user *)arg;

	if (_IOC_TYPE(cmd) != EC_IOC_MAGIC)
		return -ENOTTY;
	switch (EC_CMD(cmd)) {
	case EC_CMD(EC_IOC_DEV_INFO):
		return ec_ioc_dev_info(uarg);
	case EC_CMD(EC_IOC_POOL_CREATE):
		return ec_ioc_create(f, file, uarg);
	case EC_CMD(EC_IOC_POOL_ATTACH):
		return ec_ioc_attach(f, file, uarg);
	case EC_CMD(EC_IOC_POOL_DETACH):
		return ec_ioc_detach(f);
	case EC_CMD(EC_IOC_POOL_INFO):
		return ec_ioc_info(f, uarg);
	case EC_CMD(EC_IOC_POOL_STATS):
		return ec_ioc_stats(f, uarg);
	case EC_CMD(EC_IOC_SLOT_OP):
		return ec_ioc_slot(f, uarg);
	default:
		return -ENOTTY;
	}
}
