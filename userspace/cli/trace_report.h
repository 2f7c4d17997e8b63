/* SPDX-License-Identifier: MIT */
/* The summary `expertcache trace` prints (text) and writes (--json). */
#ifndef EC_TRACE_REPORT_H
#define EC_TRACE_REPORT_H

#include <stdbool.h>
#include <stdint.h>

#include "ec_bpf.h"

struct ec_trace_report {
	uint32_t top;		/* experts listed per layer */
	double seconds;
	const char *binary;
	uint32_t tgid;		/* 0 = every process */
	const char *probes;
	const char *io_notes;	/* NULL: block layer not traced */
	bool have_io;
	struct ec_traffic_snap traffic;
	struct ec_tierlat_snap io;
};

void ec_trace_report_print(const struct ec_trace_report *r);
/* Returns 0 or -1 (cannot write path; message printed by the caller). */
int ec_trace_report_json(const struct ec_trace_report *r, const char *path);

/* "host", "vram", "storage", "tier N" */
const char *ec_tier_name(uint32_t tier);

#endif
