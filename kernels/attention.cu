// SPDX-License-Identifier: MIT
/*
 * Causal grouped-query attention over the KV cache, decode and prefill:
 * one block per (token, head); keys a chunk at a time, one thread scoring
 * each key, the softmax carried across chunks online as the CPU backend
 * does, then each thread accumulating its dimensions over the chunk.
 */
#include "dequant.cuh"

#define ATT_THREADS 128
#define ATT_WARPS (ATT_THREADS / 32)
#define ATT_DIMS (EC_CUDA_MAX_HEAD_DIM / ATT_THREADS)

/* every thread gets the block's max (or sum) of v */
static __device__ __forceinline__ float block_reduce(float v, float *red,
						     bool max)
{
#pragma unroll
	for (int o = 16; o > 0; o >>= 1) {
		float w = __shfl_xor_sync(EC_FULL_MASK, v, o);

		v = max ? fmaxf(v, w) : v + w;
	}
	__syncthreads();	/* red may still be read from the last call */
	if ((threadIdx.x & 31) == 0)
		red[threadIdx.x / 32] = v;
	__syncthreads();
	v = red[0];
#pragma unroll
	for (int i = 1; i < ATT_WARPS; i++)
		v = max ? fmaxf(v, red[i]) : v + red[i];
	return v;
}

__global__ void __launch_bounds__(ATT_THREADS)
	attention_kernel(float *out, const float *q, const float *kc,
			 const float *vc, uint32_t pos0, uint32_t n_head,
			 uint32_t n_head_kv, uint32_t head_dim, float scale,
			 bool vec)
{
	__shared__ float qs[EC_CUDA_MAX_HEAD_DIM];
	__shared__ float p[ATT_THREADS];
	__shared__ float red[ATT_WARPS];
	uint32_t tok = blockIdx.y, h = blockIdx.x, hd = head_dim;
	uint32_t kvh = h / (n_head / n_head_kv), kv_row = n_head_kv * hd;
	uint32_t n_keys = pos0 + tok + 1, tid = threadIdx.x;
	const float *qr = q + ((size_t)tok * n_head + h) * hd;
	const float *kb = kc + kvh * hd, *vb = vc + kvh * hd;
	float acc[ATT_DIMS], m = -INFINITY, sum = 0.0f;

#pragma unroll
	for (int d = 0; d < ATT_DIMS; d++)
		acc[d] = 0.0f;
	for (uint32_t d = tid; d < hd; d += ATT_THREADS)
		qs[d] = qr[d];
	__syncthreads();
	for (uint32_t j0 = 0; j0 < n_keys; j0 += ATT_THREADS) {
		uint32_t len = min(n_keys - j0, (uint32_t)ATT_THREADS);
		float s = -INFINITY, cm, e;

		if (tid < len) {
			const float *kr = kb + (size_t)(j0 + tid) * kv_row;
			float a = 0.0f;

			if (vec) {
#pragma unroll 8
				for (uint32_t d = 0; d < hd; d += 4) {
					float4 k4 = *(const float4 *)(kr + d);

					a += k4.x * qs[d] + k4.y * qs[d + 1] +
					     k4.z * qs[d + 2] + k4.w * qs[d + 3];
				}
			} else {
				for (uint32_t d = 0; d < hd; d++)
					a += kr[d] * qs[d];
			}
			s = a * scale;
		}
		cm = block_reduce(s, red, true);
		if (cm > m) {
			float r = expf(m - cm);	/* 0 on the first chunk */

#pragma unroll
			for (int d = 0; d < ATT_DIMS; d++)
				acc[d] *= r;
			sum *= r;
			m = cm;
		}
		e = tid < len ? expf(s - m) : 0.0f;
		p[tid] = e;
		sum += block_reduce(e, red, false);	/* also syncs p */
#pragma unroll
		for (int d = 0; d < ATT_DIMS; d++) {
			uint32_t dd = tid + d * ATT_THREADS;
			float a = 0.0f;

			if (dd >= hd)
				break;
#pragma unroll 8
			for (uint32_t j = 0; j < len; j++)
				a += p[j] * vb[(size_t)(j0 + j) * kv_row + dd];
			acc[d] += a;
		}
		__syncthreads();	/* p is rewritten by the next chunk */
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
	bool vec = !(head_dim % 4) && !((uintptr_t)k_cache & 15) &&
		   !((n_head_kv * head_dim) % 4);
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

	EC_LAUNCH(grid, ATT_THREADS, 0, cu->stream, attention_kernel)(
		out, q, k_cache, v_cache, pos0, n_head, n_head_kv, head_dim,
		scale, vec);
	ret = ec_cuda_fail(cudaGetLastError(), "attention_kernel", __FILE__,
			   __LINE__);
	ec_cuda_stick(cu, ret);
}
