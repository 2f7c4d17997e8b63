/* SPDX-License-Identifier: GPL-2.0 */
/* compat.h - every kernel-version difference expertcache.ko builds across. */
#ifndef EC_COMPAT_H
#define EC_COMPAT_H

#include <linux/version.h>
#include <linux/mm.h>

/* 6.3 made vma->vm_flags read-only behind vm_flags_set()/vm_flags_clear(). */
#if LINUX_VERSION_CODE < KERNEL_VERSION(6, 3, 0)
static inline void vm_flags_set(struct vm_area_struct *vma, vm_flags_t flags)
{
	vma->vm_flags |= flags;
}

static inline void vm_flags_clear(struct vm_area_struct *vma,
				  vm_flags_t flags)
{
	vma->vm_flags &= ~flags;
}
#endif

/*
 * Largest buddy order: MAX_ORDER was exclusive before 6.4, inclusive from 6.4
 * and renamed MAX_PAGE_ORDER in 6.8.
 */
#if LINUX_VERSION_CODE >= KERNEL_VERSION(6, 8, 0)
#define EC_MAX_PAGE_ORDER MAX_PAGE_ORDER
#elif LINUX_VERSION_CODE >= KERNEL_VERSION(6, 4, 0)
#define EC_MAX_PAGE_ORDER MAX_ORDER
#else
#define EC_MAX_PAGE_ORDER (MAX_ORDER - 1)
#endif

/* no_llseek went away in 6.12; noop_llseek exists everywhere we build. */
#define EC_LLSEEK noop_llseek

#endif /* EC_COMPAT_H */
