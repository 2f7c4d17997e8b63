/* SPDX-License-Identifier: MIT */
/*
 * Device-side decoding of the stored weight types: one element at a time
 * (row gathers, dequantise-to-f32) and a warp's share of a row dot product
 * against f32 activations (the GEMV and fused expert kernels).  Block
 * layouts are ggml's (userspace/lib/quant.h).
 */
#ifndef EC_KERNELS_DEQUANT_CUH
#define EC_KERNELS_DEQUANT_CUH

#include <cuda_fp16.h>
#include <stdint.h>

#include "common.cuh"

#define EC_FULL_MASK 0xffffffffu

static __device__ __forceinline__ float ec_h2f(uint32_t h)
{
	return __half2float(__ushort_as_half((unsigned short)h));
}

static __device__ __forceinline__ float ec_bf2f(uint32_t h)
{
	return __uint_as_float(h << 16);
}

static __device__ __forceinline__ float ec_warp_sum(float v)
{
#pragma unroll
	for (int o = 16; o > 0; o >>= 1)
		v += __shfl_xor_sync(EC_FULL_MASK, v, o);
	return v;
}

/* ggml's 6-bit scale/min j (0..7) of a Q4_K block's 12 scale bytes */
static __device__ __forceinline__ void ec_q4k_sm(int j, const uint8_t *q,
						 float *sc, float *m)
{
	if (j < 4) {
		*sc = (float)(q[j] & 63);
		*m = (float)(q[j + 4] & 63);
	} else {
		*sc = (float)((q[j + 4] & 0xF) | ((q[j - 4] >> 6) << 4));
		*m = (float)((q[j + 4] >> 4) | ((q[j] >> 6) << 4));
	}
}

/* Element i (< the row length) of a row in its stored type. */
template <int T>
static __device__ __forceinline__ float ec_elem(const uint8_t *row,
						uint32_t i)
{
	if (T == EC_F32) {
		return ((const float *)row)[i];
	} else if (T == EC_F16) {
		return ec_h2f(((const uint16_t *)row)[i]);
	} else if (T == EC_BF16) {
		return ec_bf2f(((const uint16_t *)row)[i]);
	} else if (T == EC_Q8_0) {
		const uint8_t *b = row + (i / 32) * 34;

		return ec_h2f(*(const uint16_t *)b) *
		       (float)(int8_t)b[2 + i % 32];
	} else if (T == EC_Q4_K) {
		const uint8_t *b = row + (i / 256) * 144;
		uint32_t j = i % 256, chunk = j / 64, hi = (j % 64) >= 32;
		uint32_t l = j % 32;
		float d = ec_h2f(*(const uint16_t *)b);
		float dmin = ec_h2f(*(const uint16_t *)(b + 2));
		float sc, m;
		int q;

		ec_q4k_sm(2 * chunk + hi, b + 4, &sc, &m);
		q = (b[16 + 32 * chunk + l] >> (hi ? 4 : 0)) & 0xF;
		return d * sc * (float)q - dmin * m;
	} else { /* EC_Q6_K */
		const uint8_t *b = row + (i / 256) * 210;
		uint32_t j = i % 256, h = j / 128, r = j % 128;
		uint32_t quarter = r / 32, l = r % 32;
		int ql = b[64 * h + l + 32 * (quarter & 1)];
		int qh = b[128 + 32 * h + l];
		int sc = (int8_t)b[192 + 8 * h + l / 16 + 2 * quarter];
		int q = (((ql >> (4 * (quarter >> 1))) & 0xF) |
			 (((qh >> (2 * quarter)) & 3) << 4)) - 32;

		return ec_h2f(*(const uint16_t *)(b + 208)) * (float)sc *
		       (float)q;
	}
}

static __device__ __forceinline__ float ec_dot4(float4 a, float4 b)
{
	return a.x * b.x + a.y * b.y + a.z * b.z + a.w * b.w;
}

/* four floats from x: one 16-byte load when aligned (vec) */
static __device__ __forceinline__ float4 ec_ld4(const float *p, bool vec)
{
	return vec ? *(const float4 *)p : make_float4(p[0], p[1], p[2], p[3]);
}

/*
 * The four bytes of v (each < 256) as exact floats minus (bias - 2^23),
 * without integer-to-float conversions (a quarter-rate instruction): a
 * byte placed in the mantissa of 2^23 is 2^23 + byte, so one subtraction
 * of `bias` gives byte + 2^23 - bias.
 */
static __device__ __forceinline__ void ec_bytes2f(uint32_t v, float bias,
						  float *out)
{
	out[0] = __int_as_float(__byte_perm(v, 0x4B000000u, 0x7540)) - bias;
	out[1] = __int_as_float(__byte_perm(v, 0x4B000000u, 0x7541)) - bias;
	out[2] = __int_as_float(__byte_perm(v, 0x4B000000u, 0x7542)) - bias;
	out[3] = __int_as_float(__byte_perm(v, 0x4B000000u, 0x7543)) - bias;
}

/*
 * This lane's share of dot(row w, x_t) for tokens t < n (x_t = x + t *
 * xs), added to acc[t]; the caller sums acc across the warp.  The vector
 * paths need w 16-byte aligned and (plain types) cols a multiple of the
 * vector width, x 16-byte aligned and xs a multiple of 4: `vec` says so.
 */
template <int T, int NT>
static __device__ __forceinline__ void
ec_row_dot(const uint8_t *__restrict__ w, const float *__restrict__ x,
	   uint32_t xs, uint32_t cols, int n, int lane, bool vec,
	   float (&acc)[NT])
{
	if (T == EC_F32 || T == EC_F16 || T == EC_BF16) {
		const uint32_t per = T == EC_F32 ? 4 : 8;

		if (!vec) {
			for (uint32_t i = lane; i < cols; i += 32) {
				float wv = ec_elem<T>(w, i);
#pragma unroll
				for (int t = 0; t < NT; t++)
					if (t < n)
						acc[t] += wv * x[t * xs + i];
			}
			return;
		}
		for (uint32_t i = lane * per; i < cols; i += 32 * per) {
			float wv[8];

			if (T == EC_F32) {
				float4 a = *(const float4 *)(w + i * 4);

				wv[0] = a.x, wv[1] = a.y, wv[2] = a.z,
				wv[3] = a.w;
			} else {
				uint4 r = *(const uint4 *)(w + i * 2);
				uint32_t u[4] = { r.x, r.y, r.z, r.w };
#pragma unroll
				for (int j = 0; j < 4; j++) {
					if (T == EC_F16) {
						wv[2 * j] = ec_h2f(u[j] & 0xffff);
						wv[2 * j + 1] = ec_h2f(u[j] >> 16);
					} else {
						wv[2 * j] = ec_bf2f(u[j] & 0xffff);
						wv[2 * j + 1] = ec_bf2f(u[j] >> 16);
					}
				}
			}
#pragma unroll
			for (int t = 0; t < NT; t++) {
				if (t >= n)
					break;
				const float4 *xv =
					(const float4 *)(x + t * xs + i);
				float s = ec_dot4(make_float4(wv[0], wv[1],
							      wv[2], wv[3]),
						  xv[0]);
				if (per == 8)
					s += ec_dot4(make_float4(wv[4], wv[5],
								 wv[6], wv[7]),
						     xv[1]);
				acc[t] += s;
			}
		}
	} else if (T == EC_Q8_0) {
		/* two lanes per 34-byte block, 16 weights each */
		const uint32_t nb = cols / 32, half = lane & 1;

		for (uint32_t b = lane >> 1; b < nb; b += 16) {
			const uint8_t *blk = w + (uint64_t)b * 34;
			const uint16_t *q = (const uint16_t *)(blk + 2 +
							       16 * half);
			float d = ec_h2f(*(const uint16_t *)blk), qf[16];

#pragma unroll
			for (int j = 0; j < 4; j++) {
				/* signed bytes + 128, then exact floats */
				uint32_t v = (q[2 * j] | ((uint32_t)q[2 * j + 1]
							  << 16)) ^ 0x80808080u;

				ec_bytes2f(v, 8388736.0f, qf + 4 * j);
			}
#pragma unroll
			for (int t = 0; t < NT; t++) {
				if (t >= n)
					break;
				const float *xb = x + t * xs + b * 32 + 16 * half;
				float s = 0.0f;

#pragma unroll
				for (int j = 0; j < 4; j++)
					s += ec_dot4(ec_ld4(xb + 4 * j, vec),
						     make_float4(qf[4 * j],
								 qf[4 * j + 1],
								 qf[4 * j + 2],
								 qf[4 * j + 3]));
				acc[t] += d * s;
			}
		}
	} else if (T == EC_Q4_K) {
		/*
		 * Eight lanes per 144-byte block; lane l takes bytes [4l, 4l+4)
		 * of each 32-byte chunk j of qs (weights 64j + 4l.. low
		 * nibbles, 64j + 32 + 4l.. high), so the eight lanes' x reads
		 * cover whole 128-byte lines.
		 */
		const uint32_t nb = cols / 256, l = lane & 7;

		for (uint32_t b = lane >> 3; b < nb; b += 4) {
			const uint8_t *blk = w + (uint64_t)b * 144;
			uint32_t dm = *(const uint32_t *)blk;
			const uint32_t *sw = (const uint32_t *)(blk + 4);
			uint32_t w0 = sw[0], w1 = sw[1], w2 = sw[2];
			float sc[8], mn[8], lo[4][4], hi[4][4];
			float d = ec_h2f(dm & 0xffff), dmin = ec_h2f(dm >> 16);

			/* the 6-bit scales and mins of all eight sub-blocks */
			ec_bytes2f(w0 & 0x3F3F3F3Fu, 8388608.0f, sc);
			ec_bytes2f(w1 & 0x3F3F3F3Fu, 8388608.0f, mn);
			ec_bytes2f((w2 & 0x0F0F0F0Fu) | ((w0 >> 2) & 0x30303030u),
				   8388608.0f, sc + 4);
			ec_bytes2f(((w2 >> 4) & 0x0F0F0F0Fu) |
				   ((w1 >> 2) & 0x30303030u), 8388608.0f, mn + 4);
#pragma unroll
			for (int i = 0; i < 8; i++) {
				sc[i] *= d;
				mn[i] *= dmin;
			}
#pragma unroll
			for (int j = 0; j < 4; j++) {
				const uint8_t *q = blk + 16 + 32 * j + 4 * l;
				uint32_t v;

				if (vec) {
					v = *(const uint32_t *)q;
				} else {
					v = ((const uint16_t *)q)[0] |
					    ((uint32_t)((const uint16_t *)q)[1]
					     << 16);
				}
				ec_bytes2f(v & 0x0F0F0F0Fu, 8388608.0f, lo[j]);
				ec_bytes2f((v >> 4) & 0x0F0F0F0Fu, 8388608.0f,
					   hi[j]);
			}
#pragma unroll
			for (int t = 0; t < NT; t++) {
				if (t >= n)
					break;
				const float *xb = x + t * xs + b * 256 + 4 * l;
				float s = 0.0f;

#pragma unroll
				for (int j = 0; j < 4; j++) {
					float4 a = ec_ld4(xb + 64 * j, vec);
					float4 c = ec_ld4(xb + 64 * j + 32, vec);

					s += sc[2 * j] * ec_dot4(a, make_float4(
						     lo[j][0], lo[j][1], lo[j][2],
						     lo[j][3])) -
					     mn[2 * j] * (a.x + a.y + a.z + a.w);
					s += sc[2 * j + 1] * ec_dot4(c, make_float4(
						     hi[j][0], hi[j][1], hi[j][2],
						     hi[j][3])) -
					     mn[2 * j + 1] * (c.x + c.y + c.z + c.w);
				}
				acc[t] += s;
			}
		}
	} else { /* EC_Q6_K: sixteen lanes per 210-byte block */
		const uint32_t nb = cols / 256, l = lane & 15, h = l >> 3;
		const uint32_t l0 = 4 * (l & 7), is = l0 / 16;

		for (uint32_t b = lane >> 4; b < nb; b += 2) {
			const uint8_t *blk = w + (uint64_t)b * 210;
			const uint16_t *ql = (const uint16_t *)(blk + 64 * h + l0);
			const uint16_t *qh = (const uint16_t *)(blk + 128 +
								32 * h + l0);
			const int8_t *sc = (const int8_t *)(blk + 192 + 8 * h);
			uint32_t a = ql[0] | ((uint32_t)ql[1] << 16);
			uint32_t c = ql[16] | ((uint32_t)ql[17] << 16);
			uint32_t e = qh[0] | ((uint32_t)qh[1] << 16);
			float d = ec_h2f(*(const uint16_t *)(blk + 208));
			float s0 = d * sc[is], s1 = d * sc[is + 2];
			float s2 = d * sc[is + 4], s3 = d * sc[is + 6];
			float q[4][4];

			/* 6-bit values byte-wise, then q - 32 as floats */
			ec_bytes2f((a & 0x0F0F0F0Fu) | ((e & 0x03030303u) << 4),
				   8388640.0f, q[0]);
			ec_bytes2f((c & 0x0F0F0F0Fu) |
				   (((e >> 2) & 0x03030303u) << 4),
				   8388640.0f, q[1]);
			ec_bytes2f(((a >> 4) & 0x0F0F0F0Fu) |
				   (((e >> 4) & 0x03030303u) << 4),
				   8388640.0f, q[2]);
			ec_bytes2f(((c >> 4) & 0x0F0F0F0Fu) |
				   (((e >> 6) & 0x03030303u) << 4),
				   8388640.0f, q[3]);
#pragma unroll
			for (int t = 0; t < NT; t++) {
				if (t >= n)
					break;
				const float *xb = x + t * xs + b * 256 + 128 * h + l0;
				float sg[4];

#pragma unroll
				for (int g = 0; g < 4; g++)
					sg[g] = ec_dot4(ec_ld4(xb + 32 * g, vec),
							make_float4(q[g][0], q[g][1],
								    q[g][2],
								    q[g][3]));
				acc[t] += s0 * sg[0] + s1 * sg[1] + s2 * sg[2] +
					  s3 * sg[3];
			}
		}
	}
}

/* Dispatch a templated launcher on a run-time type. */
#define EC_TYPE_SWITCH(type, T, ...)                                         \
	do {                                                                  \
		switch (type) {                                               \
		case EC_F32: { constexpr int T = EC_F32; __VA_ARGS__; break; } \
		case EC_F16: { constexpr int T = EC_F16; __VA_ARGS__; break; } \
		case EC_BF16: { constexpr int T = EC_BF16; __VA_ARGS__; break; } \
		case EC_Q8_0: { constexpr int T = EC_Q8_0; __VA_ARGS__; break; } \
		case EC_Q4_K: { constexpr int T = EC_Q4_K; __VA_ARGS__; break; } \
		case EC_Q6_K: { constexpr int T = EC_Q6_K; __VA_ARGS__; break; } \
		default: break;                                               \
		}                                                             \
	} while (0)

/* Whether the vector loads of ec_row_dot apply to these operands. */
static inline bool ec_dot_vec_ok(int type, const void *w, uint64_t row_bytes,
				 uint32_t cols, const float *x, uint32_t xs)
{
	uintptr_t wa = (uintptr_t)w, xa = (uintptr_t)x;

	if ((xa & 15) || (xs & 3))
		return false;
	switch (type) {
	case EC_F32:
		return !(wa & 15) && !(cols & 3) && !(row_bytes & 15);
	case EC_F16:
	case EC_BF16:
		return !(wa & 15) && !(cols & 7) && !(row_bytes & 15);
	case EC_Q4_K:
		return !(wa & 15) && !(row_bytes & 15);
	default:
		return true;	/* only x is read with vector loads */
	}
}

#endif
