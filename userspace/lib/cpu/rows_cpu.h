/* SPDX-License-Identifier: MIT */
/* CPU row movement ops: embedding lookup, expert gather and scatter-add. */
#ifndef EC_ROWS_CPU_H
#define EC_ROWS_CPU_H

#include "ec_backend.h"

int ec_cpu_op_get_rows(struct ec_backend *be, float *dst,
		       const struct ec_tensor *t, const int32_t *ids,
		       uint32_t n);
void ec_cpu_op_gather(struct ec_backend *be, float *dst, const float *src,
		      const int32_t *idx, uint32_t n, uint32_t dim);
void ec_cpu_op_scatter_add(struct ec_backend *be, float *y, const float *x,
			   const int32_t *idx, const float *scale, uint32_t n,
			   uint32_t dim);

#endif
