// SPDX-License-Identifier: MIT
/* Scalar dequantisation of ggml block types and fp16/bf16 conversion. */
#include <string.h>

#include "quant.h"

/*
 * Plain C, compiled without FMA: d * q - m must round the product before the
 * subtraction exactly as ggml's reference and gguf-py (numpy) do, so the
 * results agree bit for bit.
 */

float ec_f16_to_f32(uint16_t h)
{
	uint32_t sign = (uint32_t)(h & 0x8000) << 16;
	uint32_t exp = (h >> 10) & 0x1f;
	uint32_t mant = h & 0x3ff;
	uint32_t bits;
	float f;

	if (exp == 0x1f) {
		bits = sign | 0x7f800000 | (mant << 13);
	} else if (exp == 0) {
		if (mant == 0) {
			bits = sign;
		} else {
			/* subnormal: renormalise into an f32 normal */
			uint32_t e = 113;

			while (!(mant & 0x400)) {
				mant <<= 1;
				e--;
			}
			bits = sign | (e << 23) | ((mant & 0x3ff) << 13);
		}
	} else {
		bits = sign | ((exp + 112) << 23) | (mant << 13);
	}
	memcpy(&f, &bits, sizeof(f));
	return f;
}

/* Round to nearest, ties to even; NaN stays a (quiet) NaN. */
uint16_t ec_f32_to_f16(float f)
{
	uint32_t x, ax, sign, h, rem, half, m, shift;

	memcpy(&x, &f, sizeof(x));
	sign = (x >> 16) & 0x8000;
	ax = x & 0x7fffffff;
	if (ax > 0x7f800000)
		return sign | 0x7e00 | ((ax >> 13) & 0x3ff);
	if (ax >= 0x47800000) /* >= 65536 (or inf): overflows */
		return sign | 0x7c00;
	if (ax >= 0x38800000) { /* normal in f16 */
		h = (ax >> 13) - (112 << 10);
		rem = ax & 0x1fff;
		if (rem > 0x1000 || (rem == 0x1000 && (h & 1)))
			h++; /* may carry into the exponent, up to inf */
		return sign | h;
	}
	if (ax <= 0x33000000) /* <= 2^-25: rounds to zero */
		return sign;
	/* subnormal in f16: value = m * 2^(e - 150), unit 2^-24 */
	m = (ax & 0x7fffff) | 0x800000;
	shift = 126 - (ax >> 23);
	h = m >> shift;
	rem = m & ((1u << shift) - 1);
	half = 1u << (shift - 1);
	if (rem > half || (rem == half && (h & 1)))
		h++;
	return sign | h;
}

float ec_bf16_to_f32(uint16_t h)
{
	uint32_t bits = (uint32_t)h << 16;
	float f;

	memcpy(&f, &bits, sizeof(f));
	return f;
}

void ec_dequantize_row_q8_0(const struct ec_block_q8_0 *x, float *y,
			    uint64_t nb)
{
	for (uint64_t i = 0; i < nb; i++) {
		const float d = ec_f16_to_f32(x[i].d);

		for (int j = 0; j < EC_QK8_0; j++)
			*y++ = (float)x[i].qs[j] * d;
	}
}

void ec_dequantize_row_q4_k(const struct ec_block_q4_k *x, float *y,
			    uint64_t nb)
{
	for (uint64_t i = 0; i < nb; i++) {
		const uint8_t *q = x[i].qs;
		const float d = ec_f16_to_f32(x[i].d);
		const float min = ec_f16_to_f32(x[i].dmin);
		uint8_t sc, m;

		for (int j = 0, is = 0; j < EC_QK_K; j += 64, is += 2) {
			float d1, m1, d2, m2;

			ec_q4_k_scale_min(is, x[i].scales, &sc, &m);
			d1 = d * sc;
			m1 = min * m;
			ec_q4_k_scale_min(is + 1, x[i].scales, &sc, &m);
			d2 = d * sc;
			m2 = min * m;
			for (int l = 0; l < 32; l++)
				*y++ = d1 * (q[l] & 0xF) - m1;
			for (int l = 0; l < 32; l++)
				*y++ = d2 * (q[l] >> 4) - m2;
			q += 32;
		}
	}
}

void ec_dequantize_row_q6_k(const struct ec_block_q6_k *x, float *y,
			    uint64_t nb)
{
	for (uint64_t i = 0; i < nb; i++) {
		const float d = ec_f16_to_f32(x[i].d);
		const uint8_t *ql = x[i].ql;
		const uint8_t *qh = x[i].qh;
		const int8_t *sc = x[i].scales;

		for (int n = 0; n < EC_QK_K; n += 128) {
			for (int l = 0; l < 32; l++) {
				int is = l / 16;
				int q1 = ((ql[l] & 0xF) |
					  (((qh[l] >> 0) & 3) << 4)) -
					 32;
				int q2 = ((ql[l + 32] & 0xF) |
					  (((qh[l] >> 2) & 3) << 4)) -
					 32;
				int q3 =
				    ((ql[l] >> 4) | (((qh[l] >> 4) & 3) << 4)) -
				    32;
				int q4 = ((ql[l + 32] >> 4) |
					  (((qh[l] >> 6) & 3) << 4)) -
					 32;

				y[l] = d * sc[is] * q1;
				y[l + 32] = d * sc[is + 2] * q2;
				y[l + 64] = d * sc[is + 4] * q3;
				y[l + 96] = d * sc[is + 6] * q4;
			}
			y += 128;
			ql += 64;
			qh += 32;
			sc += 8;
		}
	}
}

/* Whole blocks of a quantised type into dst; `nb` blocks. */
static void dequantize_blocks(enum ec_dtype type, const void *src, float *dst,
			      uint64_t nb)
{
	switch (type) {
	case EC_Q8_0:
		ec_dequantize_row_q8_0(src, dst, nb);
		break;
	case EC_Q4_K:
		ec_dequantize_row_q4_k(src, dst, nb);
		break;
	case EC_Q6_K:
		ec_dequantize_row_q6_k(src, dst, nb);
		break;
	default:
		break;
	}
}

void ec_dequantize(enum ec_dtype type, const void *src, float *dst, uint64_t n)
{
	const struct ec_dtype_info *info = ec_dtype_info(type);
	const uint16_t *h = src;
	uint64_t nb, tail;

	if (!info)
		return;
	switch (type) {
	case EC_F32:
		memcpy(dst, src, n * sizeof(float));
		return;
	case EC_F16:
		for (uint64_t i = 0; i < n; i++)
			dst[i] = ec_f16_to_f32(h[i]);
		return;
	case EC_BF16:
		for (uint64_t i = 0; i < n; i++)
			dst[i] = ec_bf16_to_f32(h[i]);
		return;
	default:
		break;
	}
	nb = n / info->block_elems;
	tail = n % info->block_elems;
	dequantize_blocks(type, src, dst, nb);
	if (tail) {
		/* a partial trailing block: decode it whole, keep the head */
		float tmp[EC_QK_K];

		dequantize_blocks(type,
				  (const uint8_t *)src + nb * info->block_bytes,
				  tmp, 1);
		memcpy(dst + nb * info->block_elems, tmp, tail * sizeof(float));
	}
}
