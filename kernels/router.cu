// SPDX-License-Identifier: MIT
/*
 * MoE routing on the device: softmax over each token's router logits, the
 * top k (ties to the lower index, as ec_route_topk), optional resident
 * mask, weights renormalised.  Results reach the host through mapped
 * pinned memory: one event wait per layer, no separate copy.  The same
 * kernel picks the experts the next layers' routers predict (the prefetch
 * op), queued before the layer's own routing so that its one wait covers
 * both.
 */
#include <stdlib.h>
#include <string.h>

#include "dequant.cuh"

#define ROUTE_PER_LANE (EC_CUDA_MAX_EXPERTS / 32)

/* one warp per token */
__global__ void route_kernel(const float *__restrict__ logits,
			     uint32_t n_expert, uint32_t k, int norm,
			     const uint8_t *__restrict__ mask, int32_t *ids,
			     float *weights)
{
	const float *l = logits + (size_t)blockIdx.x * n_expert;
	int32_t *id = ids + (size_t)blockIdx.x * k;
	float *w = weights + (size_t)blockIdx.x * k;
	uint32_t lane = threadIdx.x, taken = 0;
	float v[ROUTE_PER_LANE], mx = -INFINITY, sum = 0.0f, wsum = 0.0f;

#pragma unroll
	for (int i = 0; i < ROUTE_PER_LANE; i++) {
		uint32_t e = lane + 32 * i;

		v[i] = e < n_expert ? l[e] : -INFINITY;
		mx = fmaxf(mx, v[i]);
	}
#pragma unroll
	for (int o = 16; o > 0; o >>= 1)
		mx = fmaxf(mx, __shfl_xor_sync(EC_FULL_MASK, mx, o));
#pragma unroll
	for (int i = 0; i < ROUTE_PER_LANE; i++)
		if (lane + 32 * i < n_expert)
			sum += expf(v[i] - mx);
	sum = ec_warp_sum(sum);
	for (uint32_t j = 0; j < k; j++) {
		float best = 0.0f;
		int32_t bi = -1;

		/* this lane's best candidate: indices ascend with i */
#pragma unroll
		for (int i = 0; i < ROUTE_PER_LANE; i++) {
			uint32_t e = lane + 32 * i;

			if (e >= n_expert || (taken >> i & 1) ||
			    (mask && !mask[e]))
				continue;
			if (bi < 0 || v[i] > best) {
				best = v[i];
				bi = (int32_t)e;
			}
		}
		/* warp argmax, ties to the lower expert index */
#pragma unroll
		for (int o = 16; o > 0; o >>= 1) {
			float ob = __shfl_xor_sync(EC_FULL_MASK, best, o);
			int32_t oi = __shfl_xor_sync(EC_FULL_MASK, bi, o);

			if (oi >= 0 && (bi < 0 || ob > best ||
					(ob == best && oi < bi))) {
				best = ob;
				bi = oi;
			}
		}
		if (bi >= 0 && (uint32_t)bi % 32 == lane)
			taken |= 1u << (bi / 32);
		if (lane == 0) {
			id[j] = bi;
			w[j] = bi >= 0 ? expf(best - mx) / sum : 0.0f;
			wsum += w[j];
		}
	}
	if (lane == 0 && norm)
		for (uint32_t j = 0; j < k; j++)
			w[j] /= wsum;
}

static int route_buffers(struct ec_cuda *cu, size_t n)
{
	void *d;

	if (n <= cu->route_cap)
		return 0;
	cudaFreeHost(cu->h_ids);
	cudaFreeHost(cu->h_w);
	cu->h_ids = NULL;
	cu->h_w = NULL;
	cu->route_cap = 0;
	EC_CUDA_CHECK(cudaHostAlloc((void **)&cu->h_ids, n * sizeof(int32_t),
				    cudaHostAllocMapped));
	EC_CUDA_CHECK(cudaHostAlloc((void **)&cu->h_w, n * sizeof(float),
				    cudaHostAllocMapped));
	EC_CUDA_CHECK(cudaHostGetDevicePointer(&d, cu->h_ids, 0));
	cu->dh_ids = (int32_t *)d;
	EC_CUDA_CHECK(cudaHostGetDevicePointer(&d, cu->h_w, 0));
	cu->dh_w = (float *)d;
	cu->route_cap = n;
	return 0;
}

int ec_cuda_route(struct ec_backend *be, const float *logits, uint32_t n,
		  uint32_t n_expert, uint32_t k, int norm, const uint8_t *mask,
		  int32_t *ids, float *weights)
{
	struct ec_cuda *cu = ec_cuda_of(be);
	uint32_t allowed = n_expert;
	uint64_t t0, t1;
	int ret = ec_cuda_unstick(cu);

	if (ret < 0)
		return ret;
	if (!n_expert || n_expert > EC_CUDA_MAX_EXPERTS || !k ||
	    k > n_expert)
		return ec_cuda_errorf(-EC_EUNSUPPORTED, "cuda backend: route: "
				      "%u experts, top %u (at most %u experts)",
				      n_expert, k, EC_CUDA_MAX_EXPERTS);
	if (!n)
		return 0;
	if (mask) {
		allowed = 0;
		for (uint32_t e = 0; e < n_expert; e++)
			allowed += mask[e] != 0;
		if (allowed < k)
			return ec_cuda_errorf(-EC_EINVAL, "cuda backend: route: "
					      "the mask allows %u experts, "
					      "fewer than top-%u", allowed, k);
		EC_CUDA_CHECK(cudaMemcpyAsync(cu->d_mask, mask, n_expert,
					      cudaMemcpyHostToDevice,
					      cu->stream));
	}
	ret = route_buffers(cu, (size_t)n * k);
	if (ret < 0)
		return ret;
	EC_LAUNCH(n, 32, 0, cu->stream, route_kernel)(logits, n_expert, k, norm,
					       mask ? cu->d_mask : NULL,
					       cu->dh_ids, cu->dh_w);
	EC_CUDA_LAUNCHED();
	EC_CUDA_CHECK(cudaEventRecord(cu->route_done, cu->stream));
	t0 = ec_cuda_now_ns();
	EC_CUDA_CHECK(cudaEventSynchronize(cu->route_done));
	t1 = ec_cuda_now_ns();
	cu->st.route_calls++;
	cu->st.route_wait_ns += t1 - t0;
	cu->route_ready_ns = t1;
	memcpy(ids, cu->h_ids, (size_t)n * k * sizeof(int32_t));
	memcpy(weights, cu->h_w, (size_t)n * k * sizeof(float));
	if (cu->slots.h_fault && *(volatile int *)cu->slots.h_fault)
		return ec_cuda_errorf(-EIO, "cuda backend: an expert kernel "
				      "found a slot that was not READY");
	return 0;
}

uint32_t ec_cuda_prefetch_depth(struct ec_backend *be)
{
	return ec_cuda_of(be)->pf.depth;
}

int ec_cuda_prefetch(struct ec_backend *be, uint32_t layer,
		     const float *logits, uint32_t n, uint32_t n_expert,
		     uint32_t width)
{
	struct ec_cuda *cu = ec_cuda_of(be);
	struct ec_prefetcher *P = &cu->pf;
	uint32_t i = P->n_req;
	int ret = ec_cuda_unstick(cu);

	if (ret < 0)
		return ret;
	if (n_expert != cu->slots.n_expert || layer >= cu->slots.n_layer ||
	    n_expert > EC_CUDA_MAX_EXPERTS || width > n_expert)
		return ec_cuda_errorf(-EC_EINVAL, "cuda backend: prefetch: "
				      "layer %u of %u, top %u of %u experts "
				      "(model: %u)", layer, cu->slots.n_layer,
				      width, n_expert, cu->slots.n_expert);
	if (!P->depth || !n || !width)
		return 0;
	if ((uint64_t)n * width > EC_CUDA_PF_MAX_IDS ||
	    i == EC_CUDA_PREFETCH_MAX_DEPTH) {
		cu->st.prefetch_skipped += (uint64_t)n * width;
		return 0;	/* a hint too large to keep: dropped */
	}
	EC_LAUNCH(n, 32, 0, cu->stream, route_kernel)(
		logits, n_expert, width, 0, NULL,
		P->dh_ids + (size_t)i * EC_CUDA_PF_MAX_IDS,
		P->d_w + (size_t)i * EC_CUDA_PF_MAX_IDS);
	EC_CUDA_LAUNCHED();
	EC_CUDA_CHECK(cudaEventRecord(P->done, cu->stream));
	P->req[i].layer = layer;
	P->req[i].n = n;
	P->req[i].width = width;
	P->req[i].ids = P->h_ids + (size_t)i * EC_CUDA_PF_MAX_IDS;
	P->n_req = i + 1;
	return 0;
}
