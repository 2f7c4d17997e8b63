// SPDX-License-Identifier: MIT
/*
 * y = x . W^T for 1..8 tokens on quantised weights with 8-bit activations
 * (the default path of ec_cuda_mm on Q8_0/Q4_K/Q6_K): the activations are
 * quantised once per call, then each warp takes GEMV_Q8_ROWS rows and
 * steps along them 32 / G blocks at a time (gemv_q8.cuh), each lane's
 * activation fragment shared by all the warp's rows.
 */
#include "gemv_q8.cuh"

/*
 * Rows per warp: each activation load serves this many rows, and each
 * lane has this many weight loads in flight per step.  8192 rows make
 * 4096 warps: enough to fill an H100 several times over.
 */
#define GEMV_Q8_ROWS 2

/* y (n, rows) (+)= x (n, cols) . W^T, x quantised in xa, n <= NT */
template <int T, int NT, bool DIRECT>
__global__ void __launch_bounds__(EC_Q8_WARPS * 32)
	gemv_q8_kernel(float *__restrict__ y, const uint8_t *__restrict__ w,
		       uint64_t row_bytes, uint32_t rows, struct ec_q8_act xa,
		       uint32_t n, int accumulate)
{
	typedef typename ec_q8t<T>::X X;
	const int R = GEMV_Q8_ROWS, G = ec_q8t<T>::G, S = 32 / G;
	const int SL = ec_q8_stage<T>::SLOTS;
	__shared__ uint4 stage[EC_Q8_WARPS][DIRECT ? 1 : R * S * SL];
	int warp = threadIdx.x / 32, lane = threadIdx.x & 31;
	int g = lane / G, gl = lane % G;
	uint32_t r0 = (blockIdx.x * EC_Q8_WARPS + warp) * R;
	uint32_t nb = xa.cols / ec_q8t<T>::QK;
	const uint8_t *row[R], *lo[R], *hi[R];
	float acc[R][NT];

	if (r0 >= rows)
		return;
#pragma unroll
	for (int rr = 0; rr < R; rr++) {
		/* a warp past the last row repeats it and does not write */
		uint32_t r = r0 + rr < rows ? r0 + rr : rows - 1;

		row[rr] = w + r * row_bytes;
		lo[rr] = w;
		hi[rr] = w + rows * row_bytes;
#pragma unroll
		for (int t = 0; t < NT; t++)
			acc[rr][t] = 0.0f;
	}
	for (uint32_t b0 = 0; b0 < nb; b0 += S) {
		uint32_t b = b0 + g;
		bool active = b < nb;
		const uint8_t *blk[R];
		X x[NT];

#pragma unroll
		for (int t = 0; t < NT; t++)
			if (active && t < (int)n)
				ec_q8_xload<T>(&x[t], xa, t, b, gl);
#pragma unroll
		for (int rr = 0; rr < R; rr++)
			blk[rr] = row[rr] + (active ? b : 0) * ec_q8t<T>::BSZ;
		ec_q8_step<T, R, NT, DIRECT>(stage[warp], lane, active, blk, lo,
					     hi, x, (int)n, 1.0f, acc);
	}
#pragma unroll
	for (int rr = 0; rr < R; rr++)
#pragma unroll
		for (int t = 0; t < NT; t++) {
			float v = ec_warp_sum(acc[rr][t]);

			if (lane == 0 && t < (int)n && r0 + rr < rows) {
				float *o = y + (size_t)t * rows + r0 + rr;

				*o = accumulate ? *o + v : v;
			}
		}
}

template <int T, int NT>
static void launch(struct ec_cuda *cu, float *y, const void *w,
		   uint64_t row_bytes, uint32_t rows,
		   const struct ec_q8_act *xa, uint32_t n, int accumulate)
{
	unsigned int grid = ec_cuda_blocks(rows, EC_Q8_WARPS * GEMV_Q8_ROWS);

	/* Q4_K blocks are 16-byte aligned when the matrix is */
	if constexpr (T == EC_Q4_K) {
		if (!((uintptr_t)w & 15) && !(row_bytes & 15)) {
			EC_LAUNCH(grid, EC_Q8_WARPS * 32, 0, cu->stream,
				  gemv_q8_kernel<T, NT, true>)(
				y, (const uint8_t *)w, row_bytes, rows, *xa, n,
				accumulate);
			return;
		}
	}
	EC_LAUNCH(grid, EC_Q8_WARPS * 32, 0, cu->stream,
		  gemv_q8_kernel<T, NT, false>)(
		y, (const uint8_t *)w, row_bytes, rows, *xa, n, accumulate);
}

int ec_cuda_gemv_q8(struct ec_cuda *cu, float *y, enum ec_dtype type,
		    const void *w, uint64_t row_bytes, uint32_t rows,
		    uint32_t cols, const float *x, uint32_t n, int accumulate)
{
	struct ec_q8_act xa;
	int ret;

	if (!rows || !n)
		return 0;
	if (n > 8)
		return ec_cuda_errorf(-EC_EINVAL, "cuda backend: q8 GEMV of %u "
				      "tokens (at most 8)", n);
	ret = ec_cuda_act_quant(cu, type, x, cols, n, &xa);
	if (ret < 0)
		return ret;
	EC_Q8_TYPE_SWITCH(type, T, {
		if (n == 1)
			launch<T, 1>(cu, y, w, row_bytes, rows, &xa, n,
				     accumulate);
		else if (n == 2)
			launch<T, 2>(cu, y, w, row_bytes, rows, &xa, n,
				     accumulate);
		else if (n <= 4)
			launch<T, 4>(cu, y, w, row_bytes, rows, &xa, n,
				     accumulate);
		else
			launch<T, 8>(cu, y, w, row_bytes, rows, &xa, n,
				     accumulate);
	});
	EC_CUDA_LAUNCHED();
	return 0;
}
