/* SPDX-License-Identifier: GPL-2.0 WITH Linux-syscall-note */
/*
 * expertcache.h - user-space API of /dev/expertcache (expertcache.ko).
 *
 * The module gives user space pinned, NUMA-local, zeroed memory pools for the
 * host tier of the expert cache, optionally shared by name across processes,
 * with a slot table whose state transitions the kernel performs atomically.
 *
 * Conventions
 *   - Every struct starts with __u32 size: set it to sizeof(struct) of the
 *     header you compiled against.  The kernel accepts smaller structs down to
 *     the first version (EC_*_SIZE_VER0) and larger ones whose extra bytes are
 *     zero (else -E2BIG); it writes back at most `size` bytes.  Commands are
 *     matched on type, number and direction; the size bits of the command are
 *     ignored, the `size` field says which version of the struct is passed.
 *   - All fields are fixed width with explicit padding; padding and reserved
 *     fields must be zero on input (else -EINVAL).
 *   - Errors: -ENOTTY unknown command, -EFAULT bad pointer, -EINVAL bad field,
 *     -E2BIG unknown non-zero trailing bytes, -ENXIO no pool bound to this fd,
 *     -EBUSY fd already bound, -EEXIST name taken, -ENOENT no such pool or
 *     slot state does not allow the operation, -EACCES not allowed,
 *     -ENOMEM over the pinned-bytes cap or out of memory on the node,
 *     -ENOSPC no empty slot, -EAGAIN slot is LOADING, -ESTALE key mismatch.
 *
 * Sequence user space follows (one pool per open file description):
 *
 *   fd = open("/dev/expertcache", O_RDWR | O_CLOEXEC);
 *   ioctl(fd, EC_IOC_DEV_INFO, &dev)            abi_version, caps, usage
 *   ioctl(fd, EC_IOC_POOL_CREATE, &create)      or EC_IOC_POOL_ATTACH by name
 *   ioctl(fd, EC_IOC_POOL_INFO, &info)          offsets and sizes
 *   table = mmap(NULL, info.table_bytes, PROT_READ, MAP_SHARED, fd,
 *                info.table_offset);            read-only slot table
 *   data  = mmap(NULL, info.data_bytes, PROT_READ | PROT_WRITE, MAP_SHARED,
 *                fd, info.data_offset);         PROT_READ only when attached
 *                                               without EC_ATTACH_F_WRITE
 *   Loading expert `key` (flat id layer * n_expert + expert):
 *     op = { .op = EC_SLOT_OP_ACQUIRE, .key = key }
 *     ioctl(fd, EC_IOC_SLOT_OP, &op)
 *       op.flags & EC_SLOT_F_PINNED : READY, pinned for us; use
 *                                     data + op.slot * slot_size, then UNPIN
 *       op.flags & EC_SLOT_F_CLAIMED: LOADING and ours: read the bytes into
 *                                     the slot (O_DIRECT, io_uring), then
 *                                     EC_SLOT_OP_READY (or _ABORT on error)
 *       -EAGAIN                     : another fd is loading it; poll the
 *                                     entry's generation and retry
 *       -ENOSPC                     : no EMPTY slot; EC_SLOT_OP_EVICT a victim
 *       -ENOENT                     : (read-only fd) nobody holds the key
 *   A READY slot evicted while pinned turns EVICTING: invisible to ACQUIRE
 *   and CLAIM (the key may load into another slot at once) and EMPTY when
 *   its last pin goes.
 *   Claims (LOADING) and pins belong to the open file description: DETACH
 *   or its release (last close, and no mapping made through it left) gives
 *   them back: LOADING slots go EMPTY, pins drop.
 *   close(fd) / munmap: the pool is freed when its last bound fd and its
 *   last mapping are gone, also when the process is killed.
 *   EC_POOL_F_SHMEM pools: data mappings are served by a shmem file, which
 *   io_uring accepts for IORING_REGISTER_BUFFERS; they do not keep the pool
 *   alive: keep the fd or the table mapping while using them (afterwards
 *   they SIGBUS).  No compound pages; the node needs a CPU.
 *
 * Reading the slot table without a system call: entries are updated by the
 * kernel only, seqcount style: generation is odd while an update is in
 * progress and grows by 2 per transition.  Read generation (acquire), the
 * fields, then generation again; retry if it was odd or changed.
 */
#ifndef _UAPI_LINUX_EXPERTCACHE_H
#define _UAPI_LINUX_EXPERTCACHE_H

#include <linux/ioctl.h>
#include <linux/types.h>

#define EC_ABI_VERSION 1
#define EC_DEVICE_PATH "/dev/expertcache"

/* Pool names: [A-Za-z0-9._-], 1..63 bytes plus NUL; "" = anonymous pool. */
#define EC_POOL_NAME_MAX 64

/* ec_pool_create.node: the NUMA node of the creating CPU. */
#define EC_NODE_LOCAL (-1)

/* ec_pool_create.flags */
#define EC_POOL_F_HUGE (1u << 0)     /* prefer compound pages of order 9 */
#define EC_POOL_F_SHARE_RO (1u << 1) /* other users may attach read-only */
#define EC_POOL_F_SHMEM (1u << 2)    /* shmem-backed data: io_uring may
				      * register it as fixed buffers */
#define EC_POOL_F_ALL (EC_POOL_F_HUGE | EC_POOL_F_SHARE_RO | EC_POOL_F_SHMEM)

/* ec_pool_attach.flags, ec_pool_info.access */
#define EC_ATTACH_F_WRITE (1u << 0) /* may map data writable, fill, evict */
#define EC_ATTACH_F_ALL EC_ATTACH_F_WRITE

/* Limits on pool geometry. */
#define EC_MAX_SLOTS (1u << 20)

/* Slot states (DESIGN.md: EMPTY -> LOADING -> READY -> (EVICTING) -> EMPTY). */
#define EC_SLOT_EMPTY 0
#define EC_SLOT_LOADING 1    /* claimed by one fd, being filled */
#define EC_SLOT_READY 2      /* data valid; may be pinned by readers */
#define EC_SLOT_EVICTING 3   /* evicted while pinned: EMPTY at last unpin */

/* ec_slot_op.op */
#define EC_SLOT_OP_ACQUIRE 1 /* by key: pin if READY, else claim an EMPTY one */
#define EC_SLOT_OP_CLAIM 2   /* slot: EMPTY -> LOADING (writers) */
#define EC_SLOT_OP_READY 3   /* slot: LOADING -> READY (the claiming fd) */
#define EC_SLOT_OP_ABORT 4   /* slot: LOADING -> EMPTY (the claiming fd) */
#define EC_SLOT_OP_EVICT 5   /* slot: READY -> EMPTY, or EVICTING if pinned */
#define EC_SLOT_OP_PIN 6     /* slot: READY, pins + 1 (held by this fd) */
#define EC_SLOT_OP_UNPIN 7   /* slot: pins - 1 */
#define EC_SLOT_OP_MAX EC_SLOT_OP_UNPIN

/* ec_slot_op.flags: in */
#define EC_SLOT_F_CHECK_KEY (1u << 0) /* PIN/READY/EVICT: fail -ESTALE unless
				       * the slot holds op.key */
#define EC_SLOT_F_IN_ALL EC_SLOT_F_CHECK_KEY
/* ec_slot_op.flags: out */
#define EC_SLOT_F_CLAIMED (1u << 8) /* ACQUIRE: slot is LOADING for this fd */
#define EC_SLOT_F_PINNED (1u << 9)  /* ACQUIRE: slot is READY, pinned */

struct ec_dev_info {
	__u32 size;
	__u32 abi_version;	/* out: EC_ABI_VERSION */
	__u64 max_user_bytes;	/* out: cap on bytes pinned per user */
	__u64 max_total_bytes;	/* out: cap on bytes pinned in total */
	__u64 user_pinned_bytes;	/* out: pinned by the caller's uid */
	__u64 total_pinned_bytes;	/* out */
	__u64 user_refusals;	/* out: creates refused by a cap, caller's uid */
	__u64 total_refusals;	/* out */
	__u64 pages_allocated;	/* out: base pages, since load */
	__u64 pages_freed;	/* out: base pages, since load */
	__u32 n_pools;		/* out: live pools */
	__u32 page_size;	/* out */
};
#define EC_DEV_INFO_SIZE_VER0 80

struct ec_pool_create {
	__u32 size;
	__u32 flags;		/* EC_POOL_F_* */
	__s32 node;		/* online node id or EC_NODE_LOCAL */
	__u32 n_slots;		/* 1..EC_MAX_SLOTS */
	__u64 slot_size;	/* bytes, a non-zero multiple of page_size */
	char name[EC_POOL_NAME_MAX];	/* "" = anonymous, private to the fd */
	__u64 pool_id;		/* out */
};
#define EC_POOL_CREATE_SIZE_VER0 96

struct ec_pool_attach {
	__u32 size;
	__u32 flags;		/* EC_ATTACH_F_* */
	char name[EC_POOL_NAME_MAX];
	__u64 pool_id;		/* out */
};
#define EC_POOL_ATTACH_SIZE_VER0 80

struct ec_pool_info {
	__u32 size;
	__u32 flags;		/* out: EC_POOL_F_* given at create */
	__u64 pool_id;
	char name[EC_POOL_NAME_MAX];
	__u32 owner_uid;	/* creator's uid in the caller's user namespace */
	__s32 node;		/* node every page is on */
	__u32 n_slots;
	__u32 access;		/* EC_ATTACH_F_WRITE if this fd may write */
	__u64 slot_size;
	__u64 table_offset;	/* mmap offset of the slot table (read-only) */
	__u64 table_bytes;
	__u64 data_offset;	/* mmap offset of slot 0 */
	__u64 data_bytes;	/* n_slots * slot_size */
	__u64 huge_bytes;	/* data bytes in compound pages of order 9 */
	__u32 n_attached;	/* fds bound to the pool */
	__u32 n_mappings;	/* live VMAs mapping it */
};
#define EC_POOL_INFO_SIZE_VER0 152

struct ec_pool_stats {
	__u32 size;
	__u32 pad;
	__u64 pool_id;		/* out */
	__u64 claims;		/* EMPTY -> LOADING */
	__u64 fills;		/* LOADING -> READY */
	__u64 aborts;		/* LOADING -> EMPTY, incl. by closing the fd */
	__u64 evictions;	/* -> EMPTY from READY or EVICTING */
	__u64 pins;
	__u64 unpins;		/* incl. by closing the fd */
	__u64 refused;		/* slot ops refused by the slot's state */
	__u32 n_empty;
	__u32 n_loading;
	__u32 n_ready;
	__u32 n_evicting;
};
#define EC_POOL_STATS_SIZE_VER0 88

struct ec_slot_op {
	__u32 size;
	__u32 op;		/* EC_SLOT_OP_* */
	__u32 slot;		/* in; out for ACQUIRE */
	__u32 flags;		/* in: EC_SLOT_F_CHECK_KEY; out: _CLAIMED, _PINNED */
	__u64 key;		/* in: ACQUIRE, CLAIM, CHECK_KEY; out: slot's key */
	__u64 generation;	/* out: entry generation after the op */
	__u32 state;		/* out: EC_SLOT_* after the op */
	__u32 pins;		/* out: total pins after the op */
};
#define EC_SLOT_OP_SIZE_VER0 40

/* Slot table, mapped read-only at ec_pool_info.table_offset. */
#define EC_TABLE_MAGIC 0x31544345u /* "ECT1" little endian */

struct ec_table_header {
	__u32 magic;
	__u32 version;		/* EC_ABI_VERSION */
	__u32 header_size;	/* offset of entry 0 */
	__u32 entry_size;	/* sizeof(struct ec_slot_entry) or larger */
	__u32 n_slots;
	__u32 pad;
	__u64 slot_size;
	__u64 pool_id;
	__u64 data_offset;
	__u64 reserved[2];
};

struct ec_slot_entry {
	__u64 generation;	/* odd while the kernel updates the entry */
	__u64 key;
	__u32 state;		/* EC_SLOT_* */
	__u32 pins;
	__u32 loader_pid;	/* tgid that claimed a LOADING slot */
	__u32 reserved;
};

#define EC_IOC_MAGIC 0xEC
#define EC_IOC_DEV_INFO _IOWR(EC_IOC_MAGIC, 0x40, struct ec_dev_info)
#define EC_IOC_POOL_CREATE _IOWR(EC_IOC_MAGIC, 0x41, struct ec_pool_create)
#define EC_IOC_POOL_ATTACH _IOWR(EC_IOC_MAGIC, 0x42, struct ec_pool_attach)
#define EC_IOC_POOL_DETACH _IO(EC_IOC_MAGIC, 0x43)
#define EC_IOC_POOL_INFO _IOWR(EC_IOC_MAGIC, 0x44, struct ec_pool_info)
#define EC_IOC_POOL_STATS _IOWR(EC_IOC_MAGIC, 0x45, struct ec_pool_stats)
#define EC_IOC_SLOT_OP _IOWR(EC_IOC_MAGIC, 0x46, struct ec_slot_op)

#endif /* _UAPI_LINUX_EXPERTCACHE_H */
