/* SPDX-License-Identifier: GPL-2.0 */
/* ec_internal.h - objects and functions shared by expertcache.ko's files. */
#ifndef EC_INTERNAL_H
#define EC_INTERNAL_H

#include <linux/atomic.h>
#include <linux/kref.h>
#include <linux/list.h>
#include <linux/mutex.h>
#include <linux/spinlock.h>
#include <linux/types.h>
#include <linux/uidgid.h>
#include <linux/xarray.h>

#include "compat.h"
#include "uapi/expertcache.h"

/* Order of the compound pages EC_POOL_F_HUGE asks for (2 MiB on x86-64). */
#define EC_HUGE_ORDER min(9, EC_MAX_PAGE_ORDER)

/* Kernel copy of one slot; the shared ec_slot_entry mirrors it. */
struct ec_slot {
	struct hlist_node hash;	/* in key_hash while LOADING or READY */
	struct list_head free;	/* in pool->free_slots while EMPTY */
	struct ec_file *loader;	/* fd that claimed a LOADING slot */
	u64 key;
	u64 gen;		/* even; the shared entry's generation */
	u32 state;		/* EC_SLOT_* */
	u32 pins;
	pid_t loader_pid;
};

struct ec_pool_counters {
	u64 claims, fills, aborts, evictions, pins, unpins, refused;
};

/*
 * A pool: the slot table and the data pages, charged to the creator's uid.
 * Referenced by every bound fd and every VMA; freed by the last put.
 */
struct ec_pool {
	struct kref ref;
	struct list_head node;	/* in ec_pools, under ec_lock */
	u64 id;
	char name[EC_POOL_NAME_MAX];	/* "" = anonymous */
	kuid_t owner;
	u32 flags;		/* EC_POOL_F_* */
	int nid;
	u32 n_slots;
	u64 slot_size;
	u64 table_bytes;	/* PAGE_ALIGNed */
	u64 data_bytes;
	u64 huge_bytes;
	u64 charged;		/* bytes charged to owner */
	unsigned long table_pages;
	unsigned long n_pages;	/* table_pages + data pages */
	struct page **pages;	/* (n_pages) base pages, table first */
	struct file *shmem;	/* EC_POOL_F_SHMEM: backing file of the data */
	atomic_t n_attached;
	atomic_t n_mappings;

	spinlock_t lock;	/* everything below */
	struct ec_slot *slots;	/* (n_slots) */
	struct hlist_head *key_hash;	/* (1 << hash_bits) */
	unsigned int hash_bits;
	struct list_head free_slots;
	u32 n_state[4];		/* slots per EC_SLOT_* state */
	struct ec_pool_counters cnt;
};

/*
 * One open file description of /dev/expertcache.  Lock order: mmap_lock ->
 * ec_file.lock -> ec_lock -> ec_pool.lock; ec_file.lock is never held
 * across a user copy (a fault would take mmap_lock).
 */
struct ec_file {
	struct mutex lock;	/* binding, pins, slot ops of this fd */
	struct ec_pool *pool;	/* bound pool or NULL */
	bool writable;
	unsigned long n_loading;	/* slots this fd holds LOADING */
	struct xarray pins;	/* slot index -> pins held by this fd */
};

/* Global state, under ec_lock unless atomic. */
extern struct mutex ec_lock;
extern struct list_head ec_pools;
extern u32 ec_n_pools;
extern atomic64_t ec_pages_allocated;
extern atomic64_t ec_pages_freed;

/* pool.c: lifetime, registry, binding */
int ec_pool_create(struct ec_file *f, const struct ec_pool_create *req,
		   bool may_write);
int ec_pool_attach(struct ec_file *f, const struct ec_pool_attach *req,
		   bool may_write);
void ec_file_unbind(struct ec_file *f);
void ec_pool_get(struct ec_pool *pool);
void ec_pool_put(struct ec_pool *pool);
void ec_pool_fill_info(struct ec_pool *pool, struct ec_file *f,
		       struct ec_pool_info *info);

/* pool_mem.c: pages and mmap */
int ec_pool_mem_alloc(struct ec_pool *pool);
void ec_pool_mem_free(struct ec_pool *pool);
int ec_pool_mmap(struct ec_pool *pool, struct vm_area_struct *vma,
		 bool writable);
struct ec_slot_entry *ec_pool_entry(struct ec_pool *pool, u32 idx);

/* pool_shmem.c: EC_POOL_F_SHMEM data pages */
int ec_pool_shmem_alloc(struct ec_pool *pool);
void ec_pool_shmem_free(struct ec_pool *pool);
int ec_pool_shmem_mmap(struct ec_pool *pool, struct vm_area_struct *vma);

/* slots.c: the slot state machine */
int ec_slots_init(struct ec_pool *pool);
void ec_slots_free(struct ec_pool *pool);
int ec_slot_op(struct ec_file *f, struct ec_slot_op *op);
void ec_slots_release_file(struct ec_file *f);
void ec_pool_fill_stats(struct ec_pool *pool, struct ec_pool_stats *st);

/* limits.c: pinned-bytes caps per uid and in total */
int ec_limits_init(void);
void ec_limits_exit(void);
int ec_limits_charge(kuid_t uid, u64 bytes);
void ec_limits_uncharge(kuid_t uid, u64 bytes);
void ec_limits_fill_info(kuid_t uid, struct ec_dev_info *info);

/* ioctl.c */
long ec_ioctl(struct file *file, unsigned int cmd, unsigned long arg);

/* stats.c: debugfs and sysfs */
void ec_stats_init(void);
void ec_stats_exit(void);
extern const struct attribute_group *ec_attr_groups[];

#endif /* EC_INTERNAL_H */
