// SPDX-License-Identifier: GPL-2.0
/* pool_mem.c - a pool's pages: NUMA-local allocation, freeing and mmap. */
#include <linux/gfp.h>
#include <linux/mm.h>
#include <linux/mman.h>
#include <linux/sched/signal.h>
#include <linux/slab.h>

#include "ec_internal.h"

atomic64_t ec_pages_allocated = ATOMIC64_INIT(0);
atomic64_t ec_pages_freed = ATOMIC64_INIT(0);

/*
 * Zeroed, charged to the caller's memory cgroup, and strictly on the pool's
 * node: __GFP_THISNODE turns "no memory there" into -ENOMEM instead of a
 * silent fallback to a remote node (and never invokes the OOM killer).
 */
#define EC_GFP_BASE (__GFP_ZERO | __GFP_ACCOUNT | __GFP_THISNODE | \
		     __GFP_NOWARN)
/* Big requests fail with -ENOMEM rather than OOM-kill someone. */
#define EC_GFP_TABLE (GFP_USER | EC_GFP_BASE | __GFP_RETRY_MAYFAIL)
#define EC_GFP_DATA (GFP_HIGHUSER | EC_GFP_BASE | __GFP_RETRY_MAYFAIL)
/* A failed huge attempt must be cheap: no reclaim storms, fall back. */
#define EC_GFP_HUGE (GFP_HIGHUSER | EC_GFP_BASE | __GFP_COMP | \
		     __GFP_NORETRY)

struct ec_slot_entry *ec_pool_entry(struct ec_pool *pool, u32 idx)
{
	size_t off = sizeof(struct ec_table_header) +
		     (size_t)idx * sizeof(struct ec_slot_entry);

	/* Entries are 32 bytes and never straddle a page. */
	return page_address(pool->pages[off >> PAGE_SHIFT]) +
	       offset_in_page(off);
}

static void ec_pool_table_init(struct ec_pool *pool)
{
	struct ec_table_header *h = page_address(pool->pages[0]);

	h->magic = EC_TABLE_MAGIC;
	h->version = EC_ABI_VERSION;
	h->header_size = sizeof(*h);
	h->entry_size = sizeof(struct ec_slot_entry);
	h->n_slots = pool->n_slots;
	h->slot_size = pool->slot_size;
	h->pool_id = pool->id;
	h->data_offset = pool->table_bytes;
}

/* Order of the chunk starting at pages[i]: compound heads know their size. */
static unsigned int ec_chunk_order(struct page *page)
{
	return PageHead(page) ? compound_order(page) : 0;
}

void ec_pool_mem_free(struct ec_pool *pool)
{
	unsigned long i, freed = 0;

	if (!pool->pages)
		return;
	for (i = 0; i < pool->table_pages && pool->pages[i]; i++) {
		__free_page(pool->pages[i]);
		freed++;
	}
	if (pool->shmem) {
		ec_pool_shmem_free(pool);
		i = pool->n_pages;
	}
	while (i < pool->n_pages && pool->pages[i]) {
		struct page *page = pool->pages[i];
		unsigned int order = ec_chunk_order(page);

		/* Drops our reference; a page still pinned by I/O lives on. */
		__free_pages(page, order);
		i += 1UL << order;
		freed += 1UL << order;
		if (!(i & 0xffff))
			cond_resched();
	}
	atomic64_add(freed, &ec_pages_freed);
	kvfree(pool->pages);
	pool->pages = NULL;
}

/* Fills pool->pages; on failure frees what it allocated. */
int ec_pool_mem_alloc(struct ec_pool *pool)
{
	unsigned int huge = (pool->flags & EC_POOL_F_HUGE) ? EC_HUGE_ORDER : 0;
	unsigned long i, j, retry_huge_at = 0;
	int ret;

	pool->pages = kvcalloc(pool->n_pages, sizeof(*pool->pages),
			       GFP_KERNEL_ACCOUNT);
	if (!pool->pages)
		return -ENOMEM;

	for (i = 0; i < pool->table_pages; i++) {
		pool->pages[i] = alloc_pages_node(pool->nid, EC_GFP_TABLE, 0);
		if (!pool->pages[i]) {
			ret = -ENOMEM;
			goto err;
		}
		atomic64_inc(&ec_pages_allocated);
	}

	if (pool->flags & EC_POOL_F_SHMEM) {
		ret = ec_pool_shmem_alloc(pool);
		if (ret)
			goto err;
		i = pool->n_pages;
	}
	while (i < pool->n_pages) {
		unsigned long left = pool->n_pages - i;
		struct page *page = NULL;
		unsigned int order = 0;

		if (huge && left >= (1UL << huge) && i >= retry_huge_at) {
			page = alloc_pages_node(pool->nid, EC_GFP_HUGE, huge);
			if (page)
				order = huge;
			else	/* fragmented: base pages for the next 2 MiB */
				retry_huge_at = i + (1UL << huge);
		}
		if (!page)
			page = alloc_pages_node(pool->nid, EC_GFP_DATA, 0);
		if (!page) {
			ret = -ENOMEM;
			goto err;
		}
		for (j = 0; j < (1UL << order); j++)
			pool->pages[i + j] = page + j;
		if (order)
			pool->huge_bytes += PAGE_SIZE << order;
		i += 1UL << order;
		atomic64_add(1UL << order, &ec_pages_allocated);

		/* Gigabytes take a while: stay killable and preemptible. */
		if (fatal_signal_pending(current)) {
			ret = -EINTR;
			goto err;
		}
		cond_resched();
	}
	ec_pool_table_init(pool);
	return 0;
err:
	ec_pool_mem_free(pool);
	return ret;
}

static void ec_vm_open(struct vm_area_struct *vma)
{
	struct ec_pool *pool = vma->vm_private_data;

	ec_pool_get(pool);
	atomic_inc(&pool->n_mappings);
}

static void ec_vm_close(struct vm_area_struct *vma)
{
	struct ec_pool *pool = vma->vm_private_data;

	atomic_dec(&pool->n_mappings);
	ec_pool_put(pool);
}

static vm_fault_t ec_vm_fault(struct vm_fault *vmf)
{
	struct ec_pool *pool = vmf->vma->vm_private_data;

	if (vmf->pgoff >= pool->n_pages)
		return VM_FAULT_SIGBUS;
	vmf->page = pool->pages[vmf->pgoff];
	get_page(vmf->page);
	return 0;
}

static const struct vm_operations_struct ec_vm_ops = {
	.open = ec_vm_open,
	.close = ec_vm_close,
	.fault = ec_vm_fault,
};

/*
 * A mapping covers part of the table (read-only: only the kernel writes it)
 * or part of the data (writable when the fd is), never both.
 */
int ec_pool_mmap(struct ec_pool *pool, struct vm_area_struct *vma,
		 bool writable)
{
	unsigned long pgoff = vma->vm_pgoff, npages = vma_pages(vma);
	unsigned long end;

	if (!(vma->vm_flags & VM_SHARED))
		return -EINVAL;
	if (check_add_overflow(pgoff, npages, &end) || end > pool->n_pages)
		return -EINVAL;
	if (pgoff < pool->table_pages) {
		if (end > pool->table_pages)
			return -EINVAL;
		writable = false;
	}
	if (!writable) {
		if (vma->vm_flags & VM_WRITE)
			return -EACCES;
		vm_flags_clear(vma, VM_MAYWRITE);
	}
	/* Not VM_IO/VM_PFNMAP: O_DIRECT must be able to pin these pages. */
	vm_flags_set(vma, VM_DONTEXPAND | VM_DONTDUMP);
	if (pool->shmem && pgoff >= pool->table_pages)
		return ec_pool_shmem_mmap(pool, vma);
	vma->vm_ops = &ec_vm_ops;
	vma->vm_private_data = pool;
	ec_vm_open(vma);
	return 0;
}
