/* SPDX-License-Identifier: MIT */
/*
 * Expert layout files (`expertcache layout`): every expert's gate, up and
 * down weights copied into one contiguous, EC_IO_ALIGN-aligned record, the
 * records in a profile-guided order (hot experts first, experts routed
 * together adjacent), so the cache reads each expert as one extent.
 * Format in docs/STORAGE.md; use it with ec_cache_params.layout_path.
 */
#ifndef EC_LAYOUT_H
#define EC_LAYOUT_H

#include <stdint.h>

#include "ec_model.h"

#define EC_LAYOUT_MAGIC "ECLAYOUT"	/* 8 bytes, no NUL */
#define EC_LAYOUT_VERSION 1u
#define EC_LAYOUT_HEADER_BYTES 128u
#define EC_LAYOUT_ENTRY_BYTES 64u
/* alignment of each part inside a record (compute kernels' loads) */
#define EC_LAYOUT_PART_ALIGN 64u

struct ec_profile;
struct ec_trace;

/* Which model a layout was made from: refuses layouts of other models. */
struct ec_model_identity {
	uint64_t bytes;		/* sum of the model files' sizes */
	uint64_t head_sum;	/* FNV-1a 64 of each file's first MiB */
	uint64_t table_sum;	/* FNV-1a 64 of every expert part's type,
				   shape, file and offset */
};

void ec_model_identity(const struct ec_model *m, struct ec_model_identity *out);

/* Where expert (layer, e) lives in a layout file. */
struct ec_layout_entry {
	uint64_t offset;	/* of the record, EC_IO_ALIGN aligned */
	uint64_t length;	/* bytes from the record's start to the end of
				   its last part */
	uint64_t part_off[EC_EXPERT_NPARTS];	/* from the record's start */
	uint64_t part_bytes[EC_EXPERT_NPARTS];
};

struct ec_layout {
	uint32_t n_layer, n_expert;
	struct ec_model_identity model;
	uint64_t data_offset;	/* first record */
	uint64_t file_bytes;	/* file size, a multiple of EC_IO_ALIGN */
	struct ec_layout_entry *ent;	/* [n_layer * n_expert] by flat key */
};

/*
 * The record order: flat keys (layer * n_expert + e), each once.
 *
 * Per layer, the `hot_pct` percent most used experts of `prof` form the
 * layer's hot group; the file holds every layer's hot group (layer order),
 * then every layer's cold group.  Within a group experts follow a greedy
 * co-activation chain from `trace` (the next expert is the one routed
 * together most often with the last few placed; a layer's chain starts at
 * the expert routed most often right after the previous layer's first
 * one), ties and trace-less groups by count, then key.  prof and trace may
 * be NULL (model order); their shape must match the model.
 */
int ec_layout_order(const struct ec_model *m, const struct ec_profile *prof,
		    const struct ec_trace *trace, double hot_pct,
		    uint32_t *order);

/*
 * Mean span, in records, of the experts routed for one (token, layer) of
 * `trace` when the records are in `order` (NULL: the model's order): the
 * adjacency the order achieves, 1.0 for perfectly adjacent top-1.
 */
double ec_layout_mean_span(const struct ec_trace *trace, uint32_t n_layer,
			   uint32_t n_expert, const uint32_t *order);

typedef void ec_layout_progress_fn(void *arg, uint32_t done, uint32_t total);

/*
 * Write the layout of `m` with records in `order` to `path` (through
 * path.tmp, renamed when complete and synced).
 */
int ec_layout_write(const struct ec_model *m, const uint32_t *order,
		    const char *path, ec_layout_progress_fn *progress,
		    void *arg);

/*
 * Read and check a layout's header and index against `m`: magic, version,
 * checksums, shape, the model's identity, every entry inside the file,
 * aligned, not overlapping, with the model's part sizes.  Errors name the
 * file and what is wrong.
 */
int ec_layout_load(const char *path, const struct ec_model *m,
		   struct ec_layout **out);
void ec_layout_free(struct ec_layout *l);

#endif
