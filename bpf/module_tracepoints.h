/* SPDX-License-Identifier: GPL-2.0 */
/* module_tracepoints.h - map layout shared by module_tracepoints.bpf.c and
 * its loaders. */
#ifndef EC_MODULE_TRACEPOINTS_H
#define EC_MODULE_TRACEPOINTS_H

enum ec_tp_which {
	EC_TP_CLAIM,
	EC_TP_FILL,
	EC_TP_ABORT,
	EC_TP_EVICT,
	EC_TP_NR,
};

struct ec_tp_count {
	__u64 events;
	__u64 key_sum;		/* sum of the slot keys, to check identity */
};

#endif /* EC_MODULE_TRACEPOINTS_H */
