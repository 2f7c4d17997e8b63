/* SPDX-License-Identifier: MIT */
/*
 * The 8-bit-activation GEMV path (the default on Q8_0/Q4_K/Q6_K weights):
 * activations quantised once per call exactly as the CPU backend does
 * (act_quant.cu), then integer dot products (dot_q8.cuh) by warps that
 * each take a few weight rows, so every activation load serves all of
 * them.  This header holds the warp machinery shared by the GEMV
 * (gemv_q8.cu) and the fused decode expert kernels (moe_q8.cu), and the
 * entry points of those files.
 *
 * A warp works in steps.  In a step each group of G lanes takes one weight
 * block of each of the warp's RR rows; a warp covers 32 / G blocks per row.
 * Q4_K blocks (144 bytes, 16-byte aligned) are read straight from global
 * memory with 16-byte loads.  Q8_0 (34 bytes) and Q6_K (210 bytes) blocks
 * are only 2-byte aligned: each group copies its blocks into shared memory
 * with aligned 16-byte loads first (the chunks overlapping the block), then
 * unpacks them there, so global memory still sees only full 16-byte loads.
 */
#ifndef EC_KERNELS_GEMV_Q8_CUH
#define EC_KERNELS_GEMV_Q8_CUH

#include "dequant.cuh"
#include "dot_q8.cuh"

#define EC_Q8_WARPS 4	/* warps per block of the q8 kernels */

/* Activations of n rows quantised for one weight format (device memory). */
struct ec_q8_act {
	const int8_t *qs;	/* (n, cols) */
	const float *d;		/* (n, cols / qb) */
	const int16_t *sums;	/* (n, cols / 16), Q4_K/Q6_K only */
	uint32_t cols;
};

/* ------------------------------------------------------------------ */
/* Per-type constants and fragment loads                               */

template <int T> struct ec_q8t;

template <> struct ec_q8t<EC_Q8_0> {
	enum { BSZ = 34, QK = 32, G = EC_Q8_0_G, QB = 32 };
	typedef struct ec_wq8_0 W;
	typedef struct ec_xq8_0 X;
};

template <> struct ec_q8t<EC_Q4_K> {
	enum { BSZ = 144, QK = 256, G = EC_QK_G, QB = 256 };
	typedef struct ec_wq4_k W;
	typedef struct ec_xq8_k4 X;
};

template <> struct ec_q8t<EC_Q6_K> {
	enum { BSZ = 210, QK = 256, G = EC_QK_G, QB = 256 };
	typedef struct ec_wq6_k W;
	typedef struct ec_xq8_k6 X;
};

/* 16-byte chunks a block at an even offset can touch, plus one of slack
 * for ec_ld_words reading a word past the end */
template <int T>
struct ec_q8_stage {
	enum { CB = (ec_q8t<T>::BSZ + 14 + 15) / 16, SLOTS = CB + 1 };
};

/* lane gl's activations of block b of token row t */
template <int T>
static __device__ __forceinline__ void
ec_q8_xload(typename ec_q8t<T>::X *x, const struct ec_q8_act &a, uint32_t t,
	    uint32_t b, int gl)
{
	const int8_t *qs = a.qs + (size_t)t * a.cols + (size_t)b *
			   ec_q8t<T>::QK;
	float d = a.d[(size_t)t * (a.cols / ec_q8t<T>::QB) + b];

	if constexpr (T == EC_Q8_0)
		ec_xq8_0_load(x, qs, d, gl);
	else if constexpr (T == EC_Q4_K)
		ec_xq8_k4_load(x, qs, a.sums + (size_t)t * (a.cols / 16) +
				       b * 16, d, gl);
	else
		ec_xq8_k6_load(x, qs, d, gl);
}

/* lane gl's weights of the block at blk (any even address) */
template <int T>
static __device__ __forceinline__ void
ec_q8_wload(typename ec_q8t<T>::W *w, const uint8_t *blk, int gl)
{
	if constexpr (T == EC_Q8_0)
		ec_wq8_0_load(w, blk, gl);
	else if constexpr (T == EC_Q4_K)
		ec_wq4_k_load(w, blk, gl);
	else
		ec_wq6_k_load(w, blk, gl);
}

/* Q4_K from global memory, block 16-byte aligned: two 16-byte loads */
static __device__ __forceinline__ void
ec_q4k_wload16(struct ec_wq4_k *w, const uint8_t *blk, int gl)
{
	uint4 h = *(const uint4 *)blk;
	uint4 q = *(const uint4 *)(blk + 16 + 32 * (gl >> 1) + 16 * (gl & 1));
	uint32_t hw[4] = { h.x, h.y, h.z, h.w }, qw[4] = { q.x, q.y, q.z, q.w };

	ec_wq4_k_set(w, hw, qw, gl);
}

template <int T>
static __device__ __forceinline__ float
ec_q8_fdot(const typename ec_q8t<T>::W *w, const typename ec_q8t<T>::X *x)
{
	if constexpr (T == EC_Q8_0)
		return ec_q8_0_fdot(w, x);
	else if constexpr (T == EC_Q4_K)
		return ec_q4_k_fdot(w, x);
	else
		return ec_q6_k_fdot(w, x);
}

/*
 * The 16 bytes at c (16-byte aligned), reading nothing outside [lo, hi),
 * the weight matrix (even bounds): the chunks around a block may reach
 * past the matrix only at its first and last block.
 */
static __device__ __forceinline__ uint4 ec_chunk_ld(const uint8_t *c,
						    const uint8_t *lo,
						    const uint8_t *hi)
{
	uint32_t v[4] = { 0, 0, 0, 0 };

	if (c >= lo && c + 16 <= hi)
		return *(const uint4 *)c;
	for (int i = 0; i < 16; i += 2)
		if (c + i >= lo && c + i + 2 <= hi)
			v[i / 4] |= (uint32_t)*(const uint16_t *)(c + i)
				    << (8 * (i % 4));
	return make_uint4(v[0], v[1], v[2], v[3]);
}

/*
 * One step of a warp over RR weight rows and NT activation rows.  Lane
 * group g (lanes G g .. G g + G - 1) holds, when `active`, its block's
 * address in each row (blk[rr], inside the weight matrix [lo[rr],
 * hi[rr])) and that block's activations x[t] for t < n; acc[rr][t] gains
 * scale * the lane's share of the block's dot product.  Every lane of the
 * warp calls this the same number of times (it synchronises the warp).
 * stage: this warp's shared memory, RR * (32 / G) * SLOTS chunks.
 */
template <int T, int RR, int NT, bool DIRECT>
static __device__ __forceinline__ void
ec_q8_step(uint4 *stage, int lane, bool active,
	   const uint8_t *const (&blk)[RR], const uint8_t *const (&lo)[RR],
	   const uint8_t *const (&hi)[RR],
	   const typename ec_q8t<T>::X (&x)[NT], int n, float scale,
	   float (&acc)[RR][NT])
{
	typedef typename ec_q8t<T>::W W;
	const int G = ec_q8t<T>::G, S = 32 / G, BSZ = ec_q8t<T>::BSZ;
	const int CB = ec_q8_stage<T>::CB, SL = ec_q8_stage<T>::SLOTS;
	const int NCH = (CB + G - 1) / G;	/* loads per lane and row */
	const int g = lane / G, gl = lane % G;

	if constexpr (DIRECT) {
		if (!active)
			return;
#pragma unroll
		for (int rr = 0; rr < RR; rr++) {
			W w;

			ec_q4k_wload16(&w, blk[rr], gl);
#pragma unroll
			for (int t = 0; t < NT; t++)
				if (t < n)
					acc[rr][t] += scale *
						      ec_q8_fdot<T>(&w, &x[t]);
		}
	} else {
		uint4 v[RR][NCH];
		int nch[RR];

		/* all of the step's loads in flight before any is stored */
#pragma unroll
		for (int rr = 0; rr < RR; rr++) {
			uintptr_t a = (uintptr_t)blk[rr];
			const uint8_t *c0 = blk[rr] - (a & 15);

			nch[rr] = active ? (int)((a & 15) + BSZ + 15) / 16 : 0;
#pragma unroll
			for (int i = 0; i < NCH; i++) {
				int ci = gl + G * i;

				if (ci < nch[rr])
					v[rr][i] = ec_chunk_ld(c0 + 16 * ci,
							       lo[rr], hi[rr]);
			}
		}
		__syncwarp();	/* the last step is done with the stage */
#pragma unroll
		for (int rr = 0; rr < RR; rr++) {
			uint4 *mine = stage + (rr * S + g) * SL;

#pragma unroll
			for (int i = 0; i < NCH; i++)
				if (gl + G * i < nch[rr])
					mine[gl + G * i] = v[rr][i];
		}
		__syncwarp();
		if (!active)
			return;
#pragma unroll
		for (int rr = 0; rr < RR; rr++) {
			const uint4 *mine = stage + (rr * S + g) * SL;
			const uint8_t *sb = (const uint8_t *)mine +
					    ((uintptr_t)blk[rr] & 15);
			W w;

			ec_q8_wload<T>(&w, sb, gl);
#pragma unroll
			for (int t = 0; t < NT; t++)
				if (t < n)
					acc[rr][t] += scale *
						      ec_q8_fdot<T>(&w, &x[t]);
		}
	}
}

/* Dispatch on the three quantised types (others: nothing). */
#define EC_Q8_TYPE_SWITCH(type, T, ...)                                      \
	do {                                                                  \
		switch (type) {                                               \
		case EC_Q8_0: {                                               \
			constexpr int T = EC_Q8_0;                            \
			__VA_ARGS__;                                          \
			break;                                                \
		}                                                             \
		case EC_Q4_K: {                                               \
			constexpr int T = EC_Q4_K;                            \
			__VA_ARGS__;                                          \
			break;                                                \
		}                                                             \
		case EC_Q6_K: {                                               \
			constexpr int T = EC_Q6_K;                            \
			__VA_ARGS__;                                          \
			break;                                                \
		}                                                             \
		default:                                                      \
			break;                                                \
		}                                                             \
	} while (0)

/* ------------------------------------------------------------------ */
/* Entry points                                                        */

/* act_quant.cu */

/* Values per activation scale for weights of `type`: 32 (Q8_0), 256
 * (Q4_K, Q6_K), 0 for the float types (f32 activations). */
int ec_cuda_act_qb(enum ec_dtype type);
/* Whether products with weights of `type` take 8-bit activations here. */
bool ec_cuda_q8_on(const struct ec_cuda *cu, enum ec_dtype type);
/*
 * x (n, cols) f32 quantised for weights of `type` (a quantised type) into
 * the backend's activation buffer, described in *out.  The buffer is
 * reused by the next call: consume it on the compute stream before.
 */
int ec_cuda_act_quant(struct ec_cuda *cu, enum ec_dtype type, const float *x,
		      uint32_t cols, uint32_t n, struct ec_q8_act *out);
/*
 * dst (n, cols) = x rounded to the 8-bit values it would be quantised to
 * (d * q as f32; dst may be x): lets float kernels (cuBLAS, the batched
 * prefill GEMVs) compute what the integer path computes, up to f32
 * rounding.  *dst NULL: into the activation buffer, returned there.
 */
int ec_cuda_act_round(struct ec_cuda *cu, enum ec_dtype type, float **dst,
		      const float *x, uint32_t cols, uint32_t n);

/* gemv_q8.cu: y (n, rows) (+)= x (n, cols) . W^T, n <= 8, W quantised */
int ec_cuda_gemv_q8(struct ec_cuda *cu, float *y, enum ec_dtype type,
		    const void *w, uint64_t row_bytes, uint32_t rows,
		    uint32_t cols, const float *x, uint32_t n, int accumulate);

/* moe_q8.cu: the fused decode expert kernels on 8-bit activations */
struct ec_moe_q8_pairs {
	int32_t key[EC_CUDA_MAX_PAIRS];		/* per hidden row i */
	int32_t tok[EC_CUDA_MAX_PAIRS];
	int32_t hrow[EC_CUDA_MAX_PAIRS];	/* per (token, j) pair */
	float w[EC_CUDA_MAX_PAIRS];
};

/* h rows [i0, i0 + np) = silu(gate . x_tok) * (up . x_tok) */
int ec_cuda_moe_gate_up_q8(struct ec_cuda *cu, const struct ec_slot_layout *ly,
			   const struct ec_moe_q8_pairs *a, uint32_t i0,
			   uint32_t np, const float *x, float *h);
/* y (n, n_embd) = sum_j w[t k + j] * down_j . h_j, j in routing order */
int ec_cuda_moe_down_q8(struct ec_cuda *cu, const struct ec_slot_layout *ly,
			const struct ec_moe_q8_pairs *a, uint32_t n,
			uint32_t k, const float *h, float *y);

#endif
