// SPDX-License-Identifier: MIT
/*
 * y = x . W^T from device weights in their stored type: for a few tokens
 * (decode) the 8-bit-activation GEMV on quantised weights (gemv_q8.cu) or
 * a warp-per-row dequantising GEMV (float types, or exact f32 activations
 * when asked), for many (prefill) dequantise-to-f32 plus cuBLAS SGEMM, on
 * quantised weights with the activations rounded to their 8-bit values
 * first so both paths compute what the CPU backend does.  Also the matmul
 * op of the table.
 */
#include "gemv_q8.cuh"

#define GEMV_WARPS 4
#define GEMV_MAX_TOKENS 8
/* rows dequantised per GEMM chunk are bounded by this much scratch */
#define GEMM_SCRATCH_FLOATS (16u << 20)

bool ec_cuda_type_ok(enum ec_dtype t)
{
	return t == EC_F32 || t == EC_F16 || t == EC_BF16 || t == EC_Q8_0 ||
	       t == EC_Q4_K || t == EC_Q6_K;
}

/* y (n, rows) (+)= x (n, cols) . W^T, one warp per weight row */
template <int T, int NT>
__global__ void __launch_bounds__(GEMV_WARPS * 32)
	gemv_kernel(float *__restrict__ y, const uint8_t *__restrict__ w,
		    uint64_t row_bytes, uint32_t rows, uint32_t cols,
		    const float *__restrict__ x, uint32_t n, int accumulate,
		    bool vec)
{
	uint32_t r = blockIdx.x * GEMV_WARPS + threadIdx.x / 32;
	int lane = threadIdx.x & 31;
	float acc[NT];

	if (r >= rows)
		return;
#pragma unroll
	for (int t = 0; t < NT; t++)
		acc[t] = 0.0f;
	ec_row_dot<T, NT>(w + r * row_bytes, x, cols, cols, (int)n, lane, vec,
			  acc);
#pragma unroll
	for (int t = 0; t < NT; t++) {
		if (t >= (int)n)
			break;
		float v = ec_warp_sum(acc[t]);

		if (lane == 0) {
			float *o = y + (size_t)t * rows + r;

			*o = accumulate ? *o + v : v;
		}
	}
}

/* dst (rows, cols) = W dequantised to f32 */
template <int T>
__global__ void dequant_kernel(float *__restrict__ dst,
			       const uint8_t *__restrict__ w,
			       uint64_t row_bytes, uint32_t rows,
			       uint32_t cols)
{
	uint64_t total = (uint64_t)rows * cols;

	for (uint64_t i = blockIdx.x * (uint64_t)blockDim.x + threadIdx.x;
	     i < total; i += (uint64_t)gridDim.x * blockDim.x) {
		uint32_t r = (uint32_t)(i / cols), c = (uint32_t)(i % cols);

		dst[i] = ec_elem<T>(w + r * row_bytes, c);
	}
}

template <int T, int NT>
static void launch_gemv(struct ec_cuda *cu, float *y, const void *w,
			uint64_t row_bytes, uint32_t rows, uint32_t cols,
			const float *x, uint32_t n, int accumulate, bool vec)
{
	EC_LAUNCH(ec_cuda_blocks(rows, GEMV_WARPS), GEMV_WARPS * 32, 0,
		  cu->stream, gemv_kernel<T, NT>)(
		y, (const uint8_t *)w, row_bytes, rows, cols, x, n, accumulate,
		vec);
}

int ec_cuda_dequant(struct ec_cuda *cu, float *dst, enum ec_dtype type,
		    const void *w, uint64_t row_bytes, uint32_t rows,
		    uint32_t cols)
{
	uint64_t total = (uint64_t)rows * cols;
	unsigned int blocks = ec_cuda_blocks(total, 256);

	if (blocks > 65535u * 4)
		blocks = 65535u * 4;
	EC_TYPE_SWITCH(type, T,
		       EC_LAUNCH(blocks, 256, 0, cu->stream, dequant_kernel<T>)(
			       dst, (const uint8_t *)w, row_bytes, rows,
			       cols));
	EC_CUDA_LAUNCHED();
	return 0;
}

int ec_cuda_mm(struct ec_cuda *cu, float *y, enum ec_dtype type,
	       const void *w, uint64_t row_bytes, uint32_t rows, uint32_t cols,
	       const float *x, uint32_t n, int accumulate)
{
	const float one = 1.0f, zero = 0.0f;
	const float *a;
	uint32_t r0, chunk;
	int ret;

	if (!ec_cuda_type_ok(type))
		return ec_cuda_errorf(-EC_EUNSUPPORTED,
				      "cuda backend: matmul: weight type %d "
				      "is not supported", (int)type);
	if (!rows || !n)
		return 0;
	if (n <= GEMV_MAX_TOKENS && ec_cuda_q8_on(cu, type))
		return ec_cuda_gemv_q8(cu, y, type, w, row_bytes, rows, cols, x,
				       n, accumulate);
	if (n <= GEMV_MAX_TOKENS) {
		bool vec = ec_dot_vec_ok(type, w, row_bytes, cols, x, cols);

		EC_TYPE_SWITCH(type, T, {
			if (n == 1)
				launch_gemv<T, 1>(cu, y, w, row_bytes, rows, cols,
						  x, n, accumulate, vec);
			else if (n == 2)
				launch_gemv<T, 2>(cu, y, w, row_bytes, rows, cols,
						  x, n, accumulate, vec);
			else if (n <= 4)
				launch_gemv<T, 4>(cu, y, w, row_bytes, rows, cols,
						  x, n, accumulate, vec);
			else
				launch_gemv<T, 8>(cu, y, w, row_bytes, rows, cols,
						  x, n, accumulate, vec);
		});
		EC_CUDA_LAUNCHED();
		return 0;
	}
	/* GEMM: column-major C (rows, n) = A^T (rows, cols) . B (cols, n) */
	if (type == EC_F32 && row_bytes == (uint64_t)cols * 4) {
		EC_CUBLAS_CHECK(cublasSgemm(cu->blas, CUBLAS_OP_T, CUBLAS_OP_N,
					    (int)rows, (int)n, (int)cols, &one,
					    (const float *)w, (int)cols, x,
					    (int)cols, accumulate ? &one : &zero,
					    y, (int)rows));
		return 0;
	}
	if (ec_cuda_q8_on(cu, type)) {
		float *xr = NULL;

		ret = ec_cuda_act_round(cu, type, &xr, x, cols, n);
		if (ret < 0)
			return ret;
		x = xr;
	}
	chunk = GEMM_SCRATCH_FLOATS / cols;
	if (!chunk)
		chunk = 1;
	if (chunk > rows)
		chunk = rows;
	ret = ec_cuda_scratch(cu, (size_t)chunk * cols);
	if (ret < 0)
		return ret;
	a = cu->scratch;
	for (r0 = 0; r0 < rows; r0 += chunk) {
		uint32_t rc = rows - r0 < chunk ? rows - r0 : chunk;

		ret = ec_cuda_dequant(cu, cu->scratch, type,
				      (const uint8_t *)w + r0 * row_bytes,
				      row_bytes, rc, cols);
		if (ret < 0)
			return ret;
		EC_CUBLAS_CHECK(cublasSgemm(cu->blas, CUBLAS_OP_T, CUBLAS_OP_N,
					    (int)rc, (int)n, (int)cols, &one, a,
					    (int)cols, x, (int)cols,
					    accumulate ? &one : &zero, y + r0,
					    (int)rows));
	}
	return 0;
}
