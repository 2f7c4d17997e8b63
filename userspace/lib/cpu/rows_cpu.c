// SPDX-License-Identifier: MIT
/* CPU row movement ops: embedding lookup, expert gather and scatter-add. */
#include <string.h>

#include "ec_error.h"
#include "rows_cpu.h"

int ec_cpu_op_get_rows(struct ec_backend *be, float *dst,
		       const struct ec_tensor *t, const int32_t *ids,
		       uint32_t n)
{
	uint64_t cols = t->ne[0], rows = ec_tensor_nelems(t) / t->ne[0];
	uint64_t row_bytes = ec_tensor_row_bytes(t);
	uint32_t i;

	for (i = 0; i < n; i++) {
		if (ids[i] < 0 || (uint64_t)ids[i] >= rows)
			return ec_err(-EC_EINVAL, "row %d outside [0, %llu)",
				      ids[i], (unsigned long long)rows);
		ec_dequantize(t->type,
			      (const uint8_t *)t->data + row_bytes * ids[i],
			      dst + cols * i, cols);
	}
	return 0;
}

void ec_cpu_op_gather(struct ec_backend *be, float *dst, const float *src,
		      const int32_t *idx, uint32_t n, uint32_t dim)
{
	uint32_t i;

	for (i = 0; i < n; i++)
		memcpy(dst + (size_t)i * dim, src + (size_t)idx[i] * dim,
		       sizeof(float) * dim);
}

void ec_cpu_op_scatter_add(struct ec_backend *be, float *y, const float *x,
			   const int32_t *idx, const float *scale, uint32_t n,
			   uint32_t dim)
{
	uint32_t i, j;

	for (i = 0; i < n; i++) {
		float *yr = y + (size_t)idx[i] * dim;
		const float *xr = x + (size_t)i * dim;
		float s = scale ? scale[i] : 1.0f;

		for (j = 0; j < dim; j++)
			yr[j] += s * xr[j];
	}
}
