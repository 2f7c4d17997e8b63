// SPDX-License-Identifier: GPL-2.0
/* trace_points.c - instantiates the expertcache:* tracepoints of trace.h. */
#define CREATE_TRACE_POINTS
#include "trace.h"
