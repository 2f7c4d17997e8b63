// SPDX-License-Identifier: MIT
/*
 * Causal grouped-query attention over the KV cache, decode and prefill:
 * one block per (token, head); keys scored a chunk at a time (a warp per
 * key), softmax carried across chunks online as the CPU backend does.
 */
#include "dequant.cuh"

#define ATT_THREADS 128
#define ATT_WARPS (ATT_THREADS / 32)
#define ATT_CHUNK 128
#define ATT_DIMS (EC_CUDA_MAX_HEAD_DIM / ATT_THREADS)

__global__ void __launch_bounds__(ATT_THREADS)
	attention_kernel(float *out, const float *q, const float *kc,
			 const float *vc, uint32_t pos0, uint32_t n_head,
			 uint32_t n_head_kv, uint32_t head_dim, float scale)
{
	__shared__ float qs[EC_CUDA_MAX_HEAD_DIM];
	__shared__ float sc[ATT_CHUNK];
	uint32_t tok = blockIdx.y, h = blockIdx.x, hd = head_dim;
	uint32_t kvh = h / (n_head / n_head_kv), kv_row = n_head_kv * hd;
	uint32_t n_keys = pos0 + tok + 1, tid = threadIdx.x;
	uint32_t warp = tid / 32, lane = tid & 31;
	const float *qr = q + ((size_t)tok * n_head + h) * hd;
	float acc[ATT_DIMS], m = -INFINITY, sum = 0.0f;

#pragma unroll
	for (int d = 0; d < ATT_DIMS; d++)
		acc[d] = 0.0f;
	for (uint32_t d = tid; d < hd; d += ATT_THREADS)
		qs[d] = qr[d];
	__syncthreads();
	for (uint32_t j0 = 0; j0 < n_keys; j0 += ATT_CHUNK) {
		uint32_t len = min(n_keys - j0, (uint32_t)ATT_CHUNK);
		float cm = -INFINITY, r;

		for (uint32_t j = warp; j < len; j += ATT_WARPS) {
			const float *kr = kc + (size_t)(j0 + j) * kv_row +
					  kvh * hd;
			float s = 0.0f;

			for (uint32_t d = lane; d < hd; d += 32)
				s += kr[d] * qs[d];
			s = ec_warp_sum(s);
			if (lane == 0)
				sc[j] = s * scale;
		}
		__syncthreads();
		/* chunk maximum, every thread computes it from shared */
		for (uint32_t j = lane; j < len; j += 32)
			cm = fmaxf(cm, sc[j]);
#pragma unroll
		for (int o = 16; o > 0; o >>= 1)
			cm = fmaxf(cm, __shfl_xor_sync(EC_FULL_MASK, cm, o));
		if (cm > m) {
			r = expf(m - cm);	/* 0 on the first chunk */
#pragma unroll
			for (int d = 0; d < ATT_DIMS; d++)
				acc[d] *= r;
			sum *= r;
			m = cm;
		}
		__syncthreads();
		for (uint32_t j = tid; j < len; j += ATT_THREADS)
			sc[j] = expf(sc[j] - m);
		__syncthreads();
		for (uint32_t j = 0; j < len; j++) {
			const float *vr = vc + (size_t)(j0 + j) * kv_row +
					  kvh * hd;
			float e = sc[j];

			sum += e;
#pragma unroll
			for (int d = 0; d < ATT_DIMS; d++)
				if (tid + d * ATT_THREADS < hd)
					acc[d] += e * vr[tid + d * ATT_THREADS];
		}
		__syncthreads();
	}
	float *o = out + ((size_t)tok * n_head + h) * hd;
#pragma unroll
	for (int d = 0; d < ATT_DIMS; d++)
		if (tid + d * ATT_THREADS < hd)
			o[tid + d * ATT_THREADS] = acc[d] / sum;
}

void ec_cuda_attention(struct ec_backend *be, float *out, const float *q,
		       const float *k_cache, const float *v_cache,
		       uint32_t pos0, uint32_t n, uint32_t n_head,
		       uint32_t n_head_kv, uint32_t head_dim)
{
	struct ec_cuda *cu = ec_cuda_of(be);
	float scale = (float)(1.0 / sqrt((double)head_dim));
	int ret = 0;

	if (!n)
		return;
	if (!n_head || !n_head_kv || n_head % n_head_kv || !head_dim ||
	    head_dim > EC_CUDA_MAX_HEAD_DIM) {
		ec_cuda_stick(cu, ec_cuda_errorf(-EC_EUNSUPPORTED,
			"cuda backend: attention: %u heads, %u kv heads, "
			"head_dim %u", n_head, n_head_kv, head_dim));
		return;
	}
	dim3 grid(n_head, n);

	attention_kernel<<<grid, ATT_THREADS, 0, cu->stream>>>(
		out, q, k_cache, v_cache, pos0, n_head, n_head_kv, head_dim,
		scale);
	ret = ec_cuda_fail(cudaGetLastError(), "attention_kernel", __FILE__,
			   __LINE__);
	ec_cuda_stick(cu, ret);
}
