// SPDX-License-Identifier: MIT
/*
 * The USDT probe semaphores declared in ec_probes.h.  The kernel raises one
 * (uprobe reference counter) while a tracer is attached to its probe; they
 * live in their own section, as <sys/sdt.h> expects.
 */
#include "ec_probes.h"

#ifdef EC_HAVE_PROBES
#define EC_SEMAPHORE(ev) \
	unsigned short EC_PROBE_SEMAPHORE(ev) \
		__attribute__((section(".probes"), used))

EC_SEMAPHORE(route);
EC_SEMAPHORE(route_batch);
EC_SEMAPHORE(route_chunk);
EC_SEMAPHORE(hit);
EC_SEMAPHORE(miss);
EC_SEMAPHORE(load_issued);
EC_SEMAPHORE(load_done);
EC_SEMAPHORE(evict);
EC_SEMAPHORE(prefetch_issued);
EC_SEMAPHORE(prefetch_used);
EC_SEMAPHORE(substitute);
#endif
