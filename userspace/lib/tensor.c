// SPDX-License-Identifier: MIT
/* Element type table and sub-views (slices, rows) of file-backed tensors. */
#include <stdint.h>

#include "ec_tensor.h"
#include "quant.h"

static const struct ec_dtype_info dtype_f32 = {"F32", 1, 4};
static const struct ec_dtype_info dtype_f16 = {"F16", 1, 2};
static const struct ec_dtype_info dtype_bf16 = {"BF16", 1, 2};
static const struct ec_dtype_info dtype_q8_0 = {"Q8_0", EC_QK8_0,
						sizeof(struct ec_block_q8_0)};
static const struct ec_dtype_info dtype_q4_k = {"Q4_K", EC_QK_K,
						sizeof(struct ec_block_q4_k)};
static const struct ec_dtype_info dtype_q6_k = {"Q6_K", EC_QK_K,
						sizeof(struct ec_block_q6_k)};

const struct ec_dtype_info *ec_dtype_info(uint32_t type)
{
	switch (type) {
	case EC_F32:
		return &dtype_f32;
	case EC_F16:
		return &dtype_f16;
	case EC_BF16:
		return &dtype_bf16;
	case EC_Q8_0:
		return &dtype_q8_0;
	case EC_Q4_K:
		return &dtype_q4_k;
	case EC_Q6_K:
		return &dtype_q6_k;
	default:
		return NULL;
	}
}

uint64_t ec_dtype_bytes(enum ec_dtype type, uint64_t n)
{
	const struct ec_dtype_info *info = ec_dtype_info(type);
	uint64_t nb;

	if (!info || n % info->block_elems)
		return 0;
	nb = n / info->block_elems;
	if (nb > UINT64_MAX / info->block_bytes)
		return 0;
	return nb * info->block_bytes;
}

uint64_t ec_tensor_row_bytes(const struct ec_tensor *t)
{
	return ec_dtype_bytes(t->type, t->ne[0]);
}

/* An unusable view for out-of-range requests: no data, no bytes. */
static struct ec_tensor empty_view(const struct ec_tensor *t)
{
	struct ec_tensor v = *t;

	v.data = NULL;
	v.nbytes = 0;
	return v;
}

/* `stride` bytes per index of the sliced dimension, `count` of them kept */
static struct ec_tensor advance(const struct ec_tensor *t, uint64_t stride,
				uint64_t first, uint64_t count)
{
	struct ec_tensor v = *t;

	if (v.data)
		v.data = (const uint8_t *)v.data + first * stride;
	v.offset += first * stride;
	v.nbytes = count * stride;
	return v;
}

/*
 * Views never extend past their parent: a range beyond the outer dimension
 * yields an empty view (data NULL, nbytes 0) so a caller bug faults early
 * instead of reading a neighbour's bytes.
 */
struct ec_tensor ec_tensor_slice(const struct ec_tensor *t, uint64_t first,
				 uint64_t count)
{
	uint32_t outer = t->n_dims ? t->n_dims - 1 : 0;
	uint64_t inner = 1, stride;
	struct ec_tensor v;

	if (first > t->ne[outer] || count > t->ne[outer] - first)
		return empty_view(t);
	for (uint32_t i = 0; i < outer; i++)
		inner *= t->ne[i];
	stride = ec_dtype_bytes(t->type, inner);
	if (!stride)
		return empty_view(t);
	v = advance(t, stride, first, count);
	v.ne[outer] = count;
	if (count == 1 && v.n_dims > 1)
		v.n_dims--;
	return v;
}

struct ec_tensor ec_tensor_rows(const struct ec_tensor *t, uint64_t first,
				uint64_t count)
{
	uint64_t rows = t->ne[0] ? ec_tensor_nelems(t) / t->ne[0] : 0;
	uint64_t stride = ec_tensor_row_bytes(t);
	struct ec_tensor v;

	if (first > rows || count > rows - first || !stride)
		return empty_view(t);
	v = advance(t, stride, first, count);
	v.n_dims = 2;
	v.ne[1] = count;
	v.ne[2] = 1;
	v.ne[3] = 1;
	return v;
}
