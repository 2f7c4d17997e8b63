/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/*
 * vmlinux_min.h - the kernel types our BPF programs touch, for building
 * where the build machine has no /sys/kernel/btf/vmlinux to generate a
 * full vmlinux.h from.  CO-RE relocates every field access against the
 * BTF of the kernel the programs load into, so only the fields used are
 * declared (offsets here do not matter).  The Makefile copies this to
 * build/bpf/vmlinux.h when it cannot run `bpftool btf dump`.
 */
#ifndef EC_VMLINUX_MIN_H
#define EC_VMLINUX_MIN_H
#define __VMLINUX_H__		/* kernel register names in bpf_tracing.h */

#include <linux/bpf.h>		/* map types, flags, bpf_raw_tracepoint_args */
#include <linux/types.h>

typedef __u8 u8;
typedef __u16 u16;
typedef __u32 u32;
typedef __u64 u64;
typedef __s64 s64;
typedef __u32 dev_t;
typedef _Bool bool;
enum { false = 0, true = 1 };

#pragma clang attribute push (__attribute__((preserve_access_index)), \
			      apply_to = record)

#if defined(__TARGET_ARCH_arm64)
struct user_pt_regs {
	u64 regs[31];
	u64 sp;
	u64 pc;
	u64 pstate;
};

struct pt_regs {
	union {
		struct user_pt_regs user_regs;
		struct {
			u64 regs[31];
			u64 sp;
			u64 pc;
			u64 pstate;
		};
	};
};
#else	/* x86_64 */
struct pt_regs {
	unsigned long r15, r14, r13, r12, bp, bx, r11, r10, r9, r8;
	unsigned long ax, cx, dx, si, di, orig_ax, ip, cs, flags, sp, ss;
};
#endif

struct gendisk {
	int major;
	int first_minor;
};

struct request_queue {
	struct gendisk *disk;
};

struct block_device {
	dev_t bd_dev;
};

struct bvec_iter {
	unsigned int bi_size;
};

enum req_flag_bits {		/* values relocated by CO-RE */
	__REQ_META = 12,
	__REQ_RAHEAD = 19,
};

struct bio {
	struct block_device *bi_bdev;
	unsigned int bi_opf;
	struct bvec_iter bi_iter;
};

struct request {
	struct request_queue *q;
	unsigned int __data_len;
	struct bio *bio;
	struct block_device *part;
};

struct trace_entry {
	unsigned short type;
	unsigned char flags;
	unsigned char preempt_count;
	int pid;
};

struct trace_event_raw_io_uring_complete {
	struct trace_entry ent;
	void *ctx;
	void *req;
	u64 user_data;
	int res;
	unsigned int cflags;
	u64 extra1;
	u64 extra2;
};

#pragma clang attribute pop

#endif /* EC_VMLINUX_MIN_H */
