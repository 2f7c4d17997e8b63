// SPDX-License-Identifier: MIT
/*
 * Activations rounded to 8 bits for the quantised weight types, on the GPU,
 * bit for bit as the CPU backend rounds them (ec_cpu_quantize_q8 for Q8_0
 * weights: a scale per 32 values; ec_cpu_quantize_q8k for Q4_K/Q6_K: a
 * scale per 256 and the sums of each 16), into a buffer the GEMV kernels
 * read; or back to floats (d * q) for the float kernels.  Also the choice
 * between this path and exact f32 activations.
 */
#include <stdlib.h>
#include <string.h>

#include "gemv_q8.cuh"

#define ACT_WARPS 8	/* one warp per block of QB values */

/*
 * Block `blk` of QB values (a warp; lane takes QB / 32 consecutive ones):
 * qs/d/sums as the CPU writes them, or, when deq is set, deq = d * q
 * (deq may be x: every lane reads its values before it writes them).
 */
template <int QB, bool VEC>
__global__ void __launch_bounds__(ACT_WARPS * 32)
	act_quant_kernel(int8_t *__restrict__ qs, float *__restrict__ d,
			 int16_t *__restrict__ sums, float *deq,
			 const float *x, uint64_t nblocks)
{
	const int PER = QB / 32;
	uint64_t blk = blockIdx.x * (uint64_t)ACT_WARPS + threadIdx.x / 32;
	int lane = threadIdx.x & 31;
	uint64_t e0 = blk * QB + (uint64_t)lane * PER;
	float v[PER], amax = 0.0f, id, dd;
	int q[PER];

	if (blk >= nblocks)
		return;
	if constexpr (VEC) {
#pragma unroll
		for (int i = 0; i < PER; i += 4) {
			float4 f = *(const float4 *)(x + e0 + i);

			v[i] = f.x, v[i + 1] = f.y;
			v[i + 2] = f.z, v[i + 3] = f.w;
		}
	} else {
#pragma unroll
		for (int i = 0; i < PER; i++)
			v[i] = x[e0 + i];
	}
#pragma unroll
	for (int i = 0; i < PER; i++) {
		float a = fabsf(v[i]);

		amax = a > amax ? a : amax;
	}
#pragma unroll
	for (int o = 16; o > 0; o >>= 1) {
		float b = __shfl_xor_sync(EC_FULL_MASK, amax, o);

		amax = b > amax ? b : amax;
	}
	dd = ec_act_scale(amax, &id);
#pragma unroll
	for (int i = 0; i < PER; i++)
		q[i] = ec_act_round(v[i], id);
	if (deq) {
#pragma unroll
		for (int i = 0; i < PER; i++)
			deq[e0 + i] = dd * (float)q[i];
		return;
	}
	if constexpr (PER == 8) {
		uint32_t lo = 0, hi = 0;
		int s = 0;

#pragma unroll
		for (int i = 0; i < 4; i++) {
			lo |= (uint32_t)(q[i] & 0xff) << 8 * i;
			hi |= (uint32_t)(q[i + 4] & 0xff) << 8 * i;
		}
		*(uint2 *)(qs + e0) = make_uint2(lo, hi);
		/* sums of 16: this lane's 8 and its neighbour's */
#pragma unroll
		for (int i = 0; i < PER; i++)
			s += q[i];
		s += __shfl_xor_sync(EC_FULL_MASK, s, 1);
		if (!(lane & 1))
			sums[blk * (QB / 16) + lane / 2] = (int16_t)s;
	} else {
#pragma unroll
		for (int i = 0; i < PER; i++)
			qs[e0 + i] = (int8_t)q[i];
	}
	if (lane == 0)
		d[blk] = dd;
}

int ec_cuda_act_qb(enum ec_dtype type)
{
	switch (type) {
	case EC_Q8_0:
		return 32;
	case EC_Q4_K:
	case EC_Q6_K:
		return 256;
	default:
		return 0;
	}
}

bool ec_cuda_q8_on(const struct ec_cuda *cu, enum ec_dtype type)
{
	return !cu->exact_f32_act && ec_cuda_act_qb(type) > 0;
}

void ec_cuda_act_init(struct ec_cuda *cu,
		      const struct ec_backend_cuda_params *p)
{
	const char *e = getenv("EC_CUDA_EXACT");

	cu->exact_f32_act = p->exact_f32_act || (e && *e && strcmp(e, "0"));
}

void ec_cuda_act_free(struct ec_cuda *cu)
{
	cudaFree(cu->d_act);
	cu->d_act = NULL;
	cu->act_bytes = 0;
}

static int act_reserve(struct ec_cuda *cu, size_t bytes)
{
	if (bytes <= cu->act_bytes)
		return 0;
	/* queued kernels may still read the old buffer */
	EC_CUDA_CHECK(cudaStreamSynchronize(cu->stream));
	ec_cuda_act_free(cu);
	/* room to grow a little: the next layer's widths are alike */
	bytes += bytes / 4;
	EC_CUDA_CHECK(cudaMalloc(&cu->d_act, bytes));
	cu->act_bytes = bytes;
	return 0;
}

static size_t align16(size_t v)
{
	return (v + 15) & ~(size_t)15;
}

static int act_launch(struct ec_cuda *cu, int qb, int8_t *qs, float *d,
		      int16_t *sums, float *deq, const float *x,
		      uint64_t nblocks)
{
	unsigned int grid = ec_cuda_blocks(nblocks, ACT_WARPS);
	bool vec = !((uintptr_t)x & 15);

	if (qb == 32)
		EC_LAUNCH(grid, ACT_WARPS * 32, 0, cu->stream,
			  act_quant_kernel<32, false>)(qs, d, sums, deq, x,
						       nblocks);
	else if (vec)
		EC_LAUNCH(grid, ACT_WARPS * 32, 0, cu->stream,
			  act_quant_kernel<256, true>)(qs, d, sums, deq, x,
						       nblocks);
	else
		EC_LAUNCH(grid, ACT_WARPS * 32, 0, cu->stream,
			  act_quant_kernel<256, false>)(qs, d, sums, deq, x,
							nblocks);
	EC_CUDA_LAUNCHED();
	return 0;
}

static int act_check(enum ec_dtype type, uint32_t cols, int *qb)
{
	*qb = ec_cuda_act_qb(type);
	if (!*qb || cols % (uint32_t)*qb)
		return ec_cuda_errorf(-EC_EINVAL, "cuda backend: 8-bit "
				      "activations: %u values for weight type "
				      "%d", cols, (int)type);
	return 0;
}

int ec_cuda_act_quant(struct ec_cuda *cu, enum ec_dtype type, const float *x,
		      uint32_t cols, uint32_t n, struct ec_q8_act *out)
{
	size_t vals = (size_t)n * cols, o_d, o_s;
	int qb, ret = act_check(type, cols, &qb);
	uint8_t *b;

	if (ret < 0)
		return ret;
	o_d = align16(vals);
	o_s = align16(o_d + vals / qb * sizeof(float));
	ret = act_reserve(cu, o_s + vals / 16 * sizeof(int16_t));
	if (ret < 0)
		return ret;
	b = (uint8_t *)cu->d_act;
	out->qs = (const int8_t *)b;
	out->d = (const float *)(b + o_d);
	out->sums = (const int16_t *)(b + o_s);
	out->cols = cols;
	if (!vals)
		return 0;
	return act_launch(cu, qb, (int8_t *)b, (float *)(b + o_d),
			  (int16_t *)(b + o_s), NULL, x, vals / qb);
}

int ec_cuda_act_round(struct ec_cuda *cu, enum ec_dtype type, float **dst,
		      const float *x, uint32_t cols, uint32_t n)
{
	size_t vals = (size_t)n * cols;
	int qb, ret = act_check(type, cols, &qb);

	if (ret < 0)
		return ret;
	if (!*dst) {
		ret = act_reserve(cu, vals * sizeof(float));
		if (ret < 0)
			return ret;
		*dst = (float *)cu->d_act;
	}
	if (!vals)
		return 0;
	return act_launch(cu, qb, NULL, NULL, NULL, *dst, x, vals / qb);
}
