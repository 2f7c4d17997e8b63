/* SPDX-License-Identifier: MIT */
/* ggml's quantised block layouts (bit-compatible with GGUF files). */
#ifndef EC_QUANT_H
#define EC_QUANT_H

#include <stdint.h>

#include "ec_tensor.h"

#define EC_QK8_0 32
#define EC_QK_K 256
#define EC_K_SCALE_SIZE 12

/* Q8_0: y[i] = d * qs[i] */
struct ec_block_q8_0 {
	uint16_t d; /* f16 scale */
	int8_t qs[EC_QK8_0];
};

/*
 * Q4_K: 8 sub-blocks of 32; y = d * sc[j] * q - dmin * m[j], the 6-bit
 * sc/m packed in scales[12]; q is the low nibble of qs for the first 32
 * of each 64, the high nibble for the second 32.
 */
struct ec_block_q4_k {
	uint16_t d;    /* f16 super-block scale of the scales */
	uint16_t dmin; /* f16 super-block scale of the mins */
	uint8_t scales[EC_K_SCALE_SIZE];
	uint8_t qs[EC_QK_K / 2];
};

/* Q6_K: 16 sub-blocks of 16; y = d * scales[j] * (q - 32), q 6 bits */
struct ec_block_q6_k {
	uint8_t ql[EC_QK_K / 2]; /* low 4 bits */
	uint8_t qh[EC_QK_K / 4]; /* high 2 bits */
	int8_t scales[EC_QK_K / 16];
	uint16_t d; /* f16 */
};

_Static_assert(sizeof(struct ec_block_q8_0) == 34, "q8_0 block size");
_Static_assert(sizeof(struct ec_block_q4_k) == 144, "q4_K block size");
_Static_assert(sizeof(struct ec_block_q6_k) == 210, "q6_K block size");

/* The 6-bit scale and min of sub-block j (0..7) of a Q4_K block. */
static inline void ec_q4_k_scale_min(int j, const uint8_t *q, uint8_t *sc,
				     uint8_t *m)
{
	if (j < 4) {
		*sc = q[j] & 63;
		*m = q[j + 4] & 63;
	} else {
		*sc = (q[j + 4] & 0xF) | ((q[j - 4] >> 6) << 4);
		*m = (q[j + 4] >> 4) | ((q[j] >> 6) << 4);
	}
}

void ec_dequantize_row_q8_0(const struct ec_block_q8_0 *x, float *y,
			    uint64_t nb);
void ec_dequantize_row_q4_k(const struct ec_block_q4_k *x, float *y,
			    uint64_t nb);
void ec_dequantize_row_q6_k(const struct ec_block_q6_k *x, float *y,
			    uint64_t nb);

#endif
