/* SPDX-License-Identifier: MIT */
/* The layout file's on-disk encoding (layout_file.c, layout_load.c). */
#ifndef EC_LAYOUT_INTERNAL_H
#define EC_LAYOUT_INTERNAL_H

#include <stdint.h>

#include "ec_layout.h"

/*
 * On disk, little-endian (offsets in bytes):
 *   0 magic[8]  8 version  12 header_bytes  16 n_layer  20 n_expert (u32)
 *  24 model_bytes  32 model_head_sum  40 model_table_sum  48 index_offset
 *  56 index_bytes  64 data_offset  72 file_bytes  80 index_sum
 *  88 header_sum (FNV-1a 64 of bytes 0..87)  96..127 zero
 * then [n_layer * n_expert] entries of 8 u64: offset, length,
 * part_off[3], part_bytes[3].
 */
enum {
	H_VERSION = 8, H_HEADER_BYTES = 12, H_N_LAYER = 16, H_N_EXPERT = 20,
	H_MODEL_BYTES = 24, H_HEAD_SUM = 32, H_TABLE_SUM = 40,
	H_INDEX_OFF = 48, H_INDEX_BYTES = 56, H_DATA_OFF = 64,
	H_FILE_BYTES = 72, H_INDEX_SUM = 80, H_HEADER_SUM = 88,
};

static inline uint64_t fnv(uint64_t h, const void *p, uint64_t n)
{
	const uint8_t *b = p;
	uint64_t i;

	for (i = 0; i < n; i++)
		h = (h ^ b[i]) * 1099511628211ull;
	return h;
}

#define FNV_INIT 1469598103934665603ull

static inline void put32(uint8_t *p, uint32_t v)
{
	for (int i = 0; i < 4; i++)
		p[i] = (uint8_t)(v >> (8 * i));
}

static inline void put64(uint8_t *p, uint64_t v)
{
	for (int i = 0; i < 8; i++)
		p[i] = (uint8_t)(v >> (8 * i));
}

static inline uint32_t get32(const uint8_t *p)
{
	uint32_t v = 0;

	for (int i = 3; i >= 0; i--)
		v = v << 8 | p[i];
	return v;
}

static inline uint64_t get64(const uint8_t *p)
{
	uint64_t v = 0;

	for (int i = 7; i >= 0; i--)
		v = v << 8 | p[i];
	return v;
}

#endif
