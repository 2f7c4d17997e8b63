// SPDX-License-Identifier: GPL-2.0
/*
 * pool_shmem.c - EC_POOL_F_SHMEM: a pool whose data pages live in a private
 * shmem file.  Mapped with shmem's own vm_ops, so io_uring accepts them as
 * registered (fixed) buffers, which it refuses for driver mappings.  Pages
 * are allocated on a CPU of the pool's node, charged to the caller's memory
 * cgroup, unevictable and referenced by the pool until it is freed; then the
 * file is emptied and shrunk to 0 so leftover mappings SIGBUS instead of
 * allocating memory outside the caps.
 */
#include <linux/cpu.h>
#include <linux/cpumask.h>
#include <linux/fs.h>
#include <linux/memcontrol.h>
#include <linux/mm.h>
#include <linux/pagemap.h>
#include <linux/sched/mm.h>
#include <linux/sched/signal.h>
#include <linux/shmem_fs.h>
#include <linux/topology.h>
#include <linux/workqueue.h>

#include "ec_internal.h"

struct ec_shmem_fill {
	struct ec_pool *pool;
	struct task_struct *caller;
	struct mem_cgroup *memcg;
};

/* Runs on a CPU of the pool's node; charges go to the caller's cgroup. */
static long ec_shmem_fill_fn(void *arg)
{
	struct ec_shmem_fill *fill = arg;
	struct ec_pool *pool = fill->pool;
	struct address_space *mapping = pool->shmem->f_mapping;
	gfp_t gfp = GFP_HIGHUSER | __GFP_THISNODE | __GFP_RETRY_MAYFAIL |
		    __GFP_NOWARN;
	struct mem_cgroup *old = set_active_memcg(fill->memcg);
	unsigned long i, n = pool->n_pages - pool->table_pages;
	long ret = 0;

	for (i = 0; i < n; i++) {
		struct page *page = shmem_read_mapping_page_gfp(mapping, i, gfp);

		if (IS_ERR(page)) {
			ret = PTR_ERR(page);
			break;
		}
		pool->pages[pool->table_pages + i] = page;
		atomic64_inc(&ec_pages_allocated);
		if (page_to_nid(page) != pool->nid) {
			ret = -ENOMEM;	/* a policy sent it elsewhere */
			break;
		}
		if (fatal_signal_pending(fill->caller)) {
			ret = -EINTR;
			break;
		}
		cond_resched();
	}
	set_active_memcg(old);
	return ret;
}

int ec_pool_shmem_alloc(struct ec_pool *pool)
{
	struct ec_shmem_fill fill = { .pool = pool, .caller = current };
	struct address_space *mapping;
	struct file *file;
	int cpu, ret;

	file = shmem_file_setup("expertcache", pool->data_bytes, VM_NORESERVE);
	if (IS_ERR(file))
		return PTR_ERR(file);
	mapping = file->f_mapping;
	mapping_set_gfp_mask(mapping, GFP_HIGHUSER);	/* not movable */
	mapping_set_unevictable(mapping);
	pool->shmem = file;

	fill.memcg = get_mem_cgroup_from_mm(current->mm);
	cpus_read_lock();
	cpu = cpumask_any_and(cpumask_of_node(pool->nid), cpu_online_mask);
	if (cpu >= nr_cpu_ids)
		ret = -EINVAL;	/* memory-only node */
	else
		ret = work_on_cpu(cpu, ec_shmem_fill_fn, &fill);
	cpus_read_unlock();
	mem_cgroup_put(fill.memcg);
	return ret;
}

void ec_pool_shmem_free(struct ec_pool *pool)
{
	struct inode *inode = file_inode(pool->shmem);
	unsigned long i;

	for (i = pool->table_pages; i < pool->n_pages && pool->pages[i]; i++) {
		put_page(pool->pages[i]);
		atomic64_inc(&ec_pages_freed);
	}
	/*
	 * No inode_lock: this may run under mmap_lock (last munmap), and
	 * nobody else can reach the file's size.  Size 0 first, so a fault
	 * after the truncation gets SIGBUS instead of a new page.
	 */
	i_size_write(inode, 0);
	mapping_clear_unevictable(pool->shmem->f_mapping);
	shmem_truncate_range(inode, 0, (loff_t)-1);
	fput(pool->shmem);
	pool->shmem = NULL;
}

/* Points a data mapping at the shmem file: from here shmem serves it. */
int ec_pool_shmem_mmap(struct ec_pool *pool, struct vm_area_struct *vma)
{
	vma_set_file(vma, pool->shmem);
	vma->vm_pgoff -= pool->table_pages;
	return pool->shmem->f_op->mmap(pool->shmem, vma);
}
