/* SPDX-License-Identifier: MIT */
/* safetensors reader: validates a file image's JSON header, tensor lookup. */
#ifndef EC_SAFETENSORS_H
#define EC_SAFETENSORS_H

#include <stdbool.h>
#include <stdint.h>

#include "ec_tensor.h"

/* Largest JSON header accepted, as the reference (Rust) implementation. */
#define EC_ST_MAX_HEADER (100ull * 1000 * 1000)

/*
 * One tensor of the header.  Every tensor's byte range is checked whatever
 * its dtype; `supported` says whether it can also be used as an ec_tensor
 * (dtype F32, F16 or BF16 and at most EC_MAX_DIMS dimensions).
 */
struct ec_st_tensor {
	char *name;
	const char *dtype;	/* safetensors' name: "F32", "I64", ... */
	bool supported;
	uint32_t n_dims;	/* as stored; may exceed EC_MAX_DIMS */
	uint64_t begin, end;	/* data_offsets, relative to the data section */
	/*
	 * When supported: ggml dimension order (ne[0] = the LAST safetensors
	 * dimension, so torch [out, in] gives ne[0] = in, ne[1] = out), data
	 * pointing into the image, absolute offset, file = 0.
	 */
	struct ec_tensor view;
};

/*
 * A parsed file.  It points into the image it was parsed from, which must
 * stay mapped while views are used.
 */
struct ec_st_file {
	char *filename;			/* for messages */
	const uint8_t *data;		/* the whole file image */
	uint64_t size;
	uint64_t header_len;		/* bytes of JSON after the 8-byte length */
	uint64_t data_offset;		/* 8 + header_len: start of tensor data */
	uint32_t n_tensors;
	struct ec_st_tensor *tensors;	/* [n_tensors], sorted by name */
};

/*
 * Parse and validate a safetensors image of `size` bytes (`filename` is only
 * used in messages): 8-byte little-endian header length, a JSON object
 * header (parsed with jansson; "__metadata__" is skipped), per tensor a
 * dtype, a shape of non-negative integers and data_offsets [begin, end] with
 * end - begin = bytes of the shape.  As the reference implementation, the
 * tensors must tile the data section exactly: no overlap, no hole, no
 * trailing bytes.  Returns 0 and *out, -EC_EFORMAT (malformed; the message
 * names the file, the tensor and the field), -EC_EUNSUPPORTED (a dtype name
 * we do not know the size of) or -ENOMEM.
 */
int ec_st_parse_header(const uint8_t *data, uint64_t size,
		       const char *filename, struct ec_st_file **out);
void ec_st_free(struct ec_st_file *f);

/* NULL when absent (no message recorded). */
const struct ec_st_tensor *ec_st_find(const struct ec_st_file *f,
				      const char *name);

/*
 * A tensor as a view with `file` set to the caller's file index:
 * -EC_EMISSING when absent, -EC_EUNSUPPORTED naming tensor and dtype (or
 * rank) when it cannot be used for compute.
 */
int ec_st_get(const struct ec_st_file *f, const char *name, uint32_t file,
	      struct ec_tensor *out);

#endif
