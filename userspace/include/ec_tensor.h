/* SPDX-License-Identifier: MIT */
/* Tensor element types and read-only tensor views over mapped files. */
#ifndef EC_TENSOR_H
#define EC_TENSOR_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Values equal ggml's type ids so GGUF files map directly. */
enum ec_dtype {
	EC_F32 = 0,
	EC_F16 = 1,
	EC_Q8_0 = 8,
	EC_Q4_K = 12,
	EC_Q6_K = 14,
	EC_BF16 = 30,
};

#define EC_MAX_DIMS 4

/*
 * Quantised types pack `block_elems` consecutive elements of a row into
 * `block_bytes` bytes.  Plain types have block_elems == 1.
 */
struct ec_dtype_info {
	const char *name;
	uint32_t block_elems;
	uint32_t block_bytes;
};

/* NULL for a type id we do not support. */
const struct ec_dtype_info *ec_dtype_info(uint32_t type);

/*
 * Bytes for `n` elements (n must be a multiple of block_elems; returns 0 and
 * sets nothing if not, or on overflow -- callers validate with
 * ec_dtype_row_bytes first).
 */
uint64_t ec_dtype_bytes(enum ec_dtype type, uint64_t n);

/*
 * A view of a tensor stored in a file: ggml's dimension order, ne[0] is the
 * innermost (contiguous) dimension.  A PyTorch Linear weight [out, in] has
 * ne[0] = in, ne[1] = out; a stacked expert tensor [E, out, in] has
 * ne[2] = E.  Rows are ne[0] elements long and quantisation blocks never
 * straddle rows.
 */
struct ec_tensor {
	enum ec_dtype type;
	uint32_t n_dims;
	uint64_t ne[EC_MAX_DIMS];	/* unused dims are 1 */
	const void *data;		/* into the file mapping */
	uint64_t nbytes;
	uint32_t file;			/* index into the model's file list */
	uint64_t offset;		/* absolute byte offset in that file */
};

static inline uint64_t ec_tensor_nelems(const struct ec_tensor *t)
{
	return t->ne[0] * t->ne[1] * t->ne[2] * t->ne[3];
}

/* Bytes of one row (ne[0] elements). */
uint64_t ec_tensor_row_bytes(const struct ec_tensor *t);

/*
 * Sub-view: `count` consecutive slices along the outermost used dimension
 * starting at `first` (e.g. expert j of a stacked [E, out, in] tensor is
 * ec_tensor_slice(t, j, 1) with n_dims reduced by one).
 */
struct ec_tensor ec_tensor_slice(const struct ec_tensor *t, uint64_t first,
				 uint64_t count);

/*
 * Row view: rows [first, first + count) of a 2-D (or flattened) tensor,
 * as a 2-D tensor with ne[1] = count.
 */
struct ec_tensor ec_tensor_rows(const struct ec_tensor *t, uint64_t first,
				uint64_t count);

/* Dequantise `n` elements starting at element 0 of `src` into f32. */
void ec_dequantize(enum ec_dtype type, const void *src, float *dst,
		   uint64_t n);

/* fp16 / bf16 scalar conversions */
float ec_f16_to_f32(uint16_t h);
uint16_t ec_f32_to_f16(float f);
float ec_bf16_to_f32(uint16_t h);

#endif
