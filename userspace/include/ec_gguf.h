/* SPDX-License-Identifier: MIT */
/* GGUF (v2/v3) reader: validates a file image in memory, typed key access. */
#ifndef EC_GGUF_H
#define EC_GGUF_H

#include <stdbool.h>
#include <stdint.h>

#include "ec_tensor.h"

/* Metadata value types, numbered as in the GGUF specification. */
enum ec_gguf_type {
	EC_GGUF_U8 = 0,
	EC_GGUF_I8 = 1,
	EC_GGUF_U16 = 2,
	EC_GGUF_I16 = 3,
	EC_GGUF_U32 = 4,
	EC_GGUF_I32 = 5,
	EC_GGUF_F32 = 6,
	EC_GGUF_BOOL = 7,
	EC_GGUF_STRING = 8,
	EC_GGUF_ARRAY = 9,
	EC_GGUF_U64 = 10,
	EC_GGUF_I64 = 11,
	EC_GGUF_F64 = 12,
	EC_GGUF_NTYPES,
};

#define EC_GGUF_DEFAULT_ALIGNMENT 32
/* Tensor names are shorter than this, as ggml requires (GGML_MAX_NAME). */
#define EC_GGUF_MAX_NAME 64

/*
 * One metadata key.  Values are not copied: `val` points into the file image
 * (little-endian, possibly unaligned; read with the accessors below).
 */
struct ec_gguf_kv {
	const char *key;	/* NUL-terminated copy */
	uint64_t key_len;
	uint32_t type;		/* enum ec_gguf_type */
	uint32_t elem_type;	/* element type of an array, else == type */
	uint64_t count;		/* elements of an array, else 1 */
	const uint8_t *val;	/* first element (a string: its u64 length) */
	uint64_t val_size;	/* bytes of the whole value */
	/* string arrays: [count] offsets from val of each element, else NULL */
	uint64_t *str_off;
};

struct ec_gguf_tensor {
	char name[EC_GGUF_MAX_NAME];
	uint32_t type;		/* ggml type id (enum ec_dtype) */
	uint32_t n_dims;
	uint64_t ne[EC_MAX_DIMS];	/* ne[0] innermost; unused dims are 1 */
	uint64_t offset;	/* relative to the data section, aligned */
	uint64_t nbytes;
};

/*
 * A parsed file.  Read-only for users.  It points into the image it was
 * parsed from, which must stay mapped until ec_gguf_free().
 */
struct ec_gguf {
	char *filename;			/* for messages */
	const uint8_t *data;		/* the whole file image */
	uint64_t size;
	uint32_t version;		/* 2 or 3 */
	uint32_t alignment;		/* general.alignment, a power of two */
	uint64_t data_offset;		/* absolute start of the tensor data */

	uint64_t n_kv;
	struct ec_gguf_kv *kv;		/* [n_kv], file order */
	uint64_t n_tensors;
	struct ec_gguf_tensor *tensors;	/* [n_tensors], file order */

	/* private: name -> index + 1 (open addressing), key storage */
	uint64_t kv_hash_mask, tensor_hash_mask;
	uint64_t *kv_hash, *tensor_hash;
	char *key_arena;
};

/*
 * Parse and validate a GGUF image of `size` bytes.  `filename` is only used
 * in messages.  Every count and length is checked against the bytes left
 * before anything is allocated; each tensor's data must lie inside the image.
 * Returns 0 and *out, or -EC_EFORMAT (malformed: the message names the file,
 * the key or tensor, and the byte offset), -EC_EUNSUPPORTED (version,
 * endianness, nested arrays, tensor types we cannot compute with) or -ENOMEM.
 */
int ec_gguf_parse(const uint8_t *data, uint64_t size, const char *filename,
		  struct ec_gguf **out);
void ec_gguf_free(struct ec_gguf *g);

/* "u32", "string", ... ("?" for an unknown id); byte size, 0 if variable. */
const char *ec_gguf_type_name(uint32_t type);
uint32_t ec_gguf_type_size(uint32_t type);
/* ggml's name for a tensor type id, including ones we do not support. */
const char *ec_gguf_ggml_type_name(uint32_t type);

/* NULL when absent (no message recorded). */
const struct ec_gguf_kv *ec_gguf_find_key(const struct ec_gguf *g,
					  const char *key);
const struct ec_gguf_tensor *ec_gguf_find_tensor(const struct ec_gguf *g,
						 const char *name);

/*
 * Scalar getters: -EC_EMISSING when the key is absent, -EC_EFORMAT when it
 * has an incompatible type or its value does not fit.  Integer getters accept
 * any integer type whose value fits; get_f32 any numeric type; get_bool a bool
 * or an integer 0/1.
 */
int ec_gguf_get_u32(const struct ec_gguf *g, const char *key, uint32_t *out);
int ec_gguf_get_i32(const struct ec_gguf *g, const char *key, int32_t *out);
int ec_gguf_get_u64(const struct ec_gguf *g, const char *key, uint64_t *out);
int ec_gguf_get_i64(const struct ec_gguf *g, const char *key, int64_t *out);
int ec_gguf_get_f32(const struct ec_gguf *g, const char *key, float *out);
int ec_gguf_get_bool(const struct ec_gguf *g, const char *key, bool *out);
/* A string value: pointer into the image (not NUL-terminated) + length. */
int ec_gguf_get_str(const struct ec_gguf *g, const char *key, const char **s,
		    uint64_t *len);
/* Copy a string value NUL-terminated; -EC_EFORMAT if it does not fit. */
int ec_gguf_get_str_copy(const struct ec_gguf *g, const char *key, char *buf,
			 uint64_t bufsz);

/*
 * Arrays: ec_gguf_get_arr finds an array key (-EC_EMISSING / -EC_EFORMAT if
 * not an array, or if elem_type is not EC_GGUF_NTYPES (= any) and differs).
 * Element i is O(1); i >= count gives -EC_EINVAL.
 */
int ec_gguf_get_arr(const struct ec_gguf *g, const char *key,
		    uint32_t elem_type, const struct ec_gguf_kv **kv);
int ec_gguf_arr_str(const struct ec_gguf *g, const struct ec_gguf_kv *kv,
		    uint64_t i, const char **s, uint64_t *len);
/* Integer (or bool) element; a u64 above INT64_MAX gives -EC_EFORMAT. */
int ec_gguf_arr_i64(const struct ec_gguf *g, const struct ec_gguf_kv *kv,
		    uint64_t i, int64_t *out);
/* Any numeric element, as double. */
int ec_gguf_arr_f64(const struct ec_gguf *g, const struct ec_gguf_kv *kv,
		    uint64_t i, double *out);

/* A tensor's data as a view (`file` is the caller's file index). */
struct ec_tensor ec_gguf_tensor_view(const struct ec_gguf *g,
				     const struct ec_gguf_tensor *t,
				     uint32_t file);

#endif
