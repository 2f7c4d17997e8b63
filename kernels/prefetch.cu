// SPDX-License-Identifier: MIT
/*
 * VRAM prefetch: the experts the next layers' routers predict (picked on
 * the device by the prefetch op, router.cu) are copied into slots by the
 * following moe_ffn, after its own misses, so the copies run while that
 * layer computes.  Prefetched slots stay LOADING until their first use
 * makes them READY (slots.cu); they never evict what the current call
 * uses or predicted, and a prefetch never waits or fails the call.  The
 * picks a layer did not use are freed right after its call: left to LRU
 * as the newest entries they would outlive experts that were used.
 */
#include <stdlib.h>
#include <string.h>

#include "common.cuh"

int ec_cuda_prefetcher_create(struct ec_cuda *cu,
			      const struct ec_backend_cuda_params *p)
{
	struct ec_prefetcher *P = &cu->pf;
	size_t n = (size_t)EC_CUDA_PREFETCH_MAX_DEPTH * EC_CUDA_PF_MAX_IDS;
	void *d;

	if (p->vram_prefetch > EC_CUDA_PREFETCH_MAX_DEPTH)
		return ec_cuda_errorf(-EC_EINVAL, "cuda backend: VRAM prefetch "
				      "depth %d: at most %d layers ahead",
				      (int)p->vram_prefetch,
				      EC_CUDA_PREFETCH_MAX_DEPTH);
	if (p->vram_prefetch > 0)
		P->depth = (uint32_t)p->vram_prefetch;
	else if (!p->vram_prefetch)
		P->depth = cu->slots.n_slots < cu->slots.n_keys;
	cu->st.prefetch_depth = P->depth;
	if (!P->depth)
		return 0;
	EC_CUDA_CHECK(cudaHostAlloc((void **)&P->h_ids, n * sizeof(int32_t),
				    cudaHostAllocMapped));
	EC_CUDA_CHECK(cudaHostGetDevicePointer(&d, P->h_ids, 0));
	P->dh_ids = (int32_t *)d;
	EC_CUDA_CHECK(cudaMalloc((void **)&P->d_w, n * sizeof(float)));
	EC_CUDA_CHECK(cudaEventCreateWithFlags(&P->done,
					       cudaEventDisableTiming));
	return 0;
}

void ec_cuda_prefetcher_destroy(struct ec_cuda *cu)
{
	struct ec_prefetcher *P = &cu->pf;

	if (P->h_ids)
		cudaFreeHost(P->h_ids);
	cudaFree(P->d_w);
	if (P->done)
		cudaEventDestroy(P->done);
	memset(P, 0, sizeof(*P));
}

/*
 * Prefetch expert e of layer l unless it is in a slot already; *full once
 * no slot may be taken this round.  0, or a CUDA error.
 */
static int prefetch_one(struct ec_cuda *cu, uint32_t l, uint32_t e,
			const struct ec_expert_source *src, bool *full)
{
	struct ec_vram_slots *S = &cu->slots;
	uint32_t key = l * S->n_expert + e;
	uint64_t t = ++S->tick, bytes = 0;
	bool copy_failed;
	int32_t s = S->slot_of_key[key];
	int ret;

	if (s >= 0) {
		/* there or on its way: keep it from this round's victims */
		S->s[s].round = S->round;
		return 0;
	}
	/* a pick that needs storage I/O is the host tier's business */
	if (*full || (src->resident && !src->resident(src->priv, l, e))) {
		cu->st.prefetch_skipped++;
		return 0;
	}
	s = ec_cuda_slot_take(cu, key, t, true);
	if (s == -ENOSPC) {
		*full = true;
		cu->st.prefetch_skipped++;
		return 0;
	}
	if (s < 0)
		return s;
	ret = ec_cuda_slot_load(cu, s, l, e, src, &bytes, &copy_failed);
	if (ret < 0) {
		/* the source's refusal is for the demand path to report */
		cu->st.prefetch_skipped++;
		return copy_failed ? ret : 0;
	}
	S->s[s].state = EC_VSLOT_LOADING;
	S->s[s].prefetched = true;
	S->s[s].pins = 0;
	S->s[s].round = S->round;
	S->policy->ops->insert(S->policy, key, t);
	cu->st.prefetch_issued++;
	cu->st.prefetch_bytes += bytes;
	return 0;
}

int ec_cuda_slots_retire(struct ec_cuda *cu, uint32_t layer)
{
	struct ec_vram_slots *S = &cu->slots;
	int ret;

	if (!cu->pf.depth)
		return 0;
	for (uint32_t e = 0; e < S->n_expert; e++) {
		int32_t s = S->slot_of_key[layer * S->n_expert + e];

		if (s < 0 || !S->s[s].prefetched || S->s[s].pins)
			continue;
		ret = ec_cuda_slot_evict(cu, s);
		if (ret < 0)
			return ret;
		S->free_slots[S->n_free++] = (uint32_t)s;
	}
	return 0;
}

int ec_cuda_slots_prefetch(struct ec_cuda *cu, uint32_t layer,
			   const struct ec_expert_source *src)
{
	struct ec_prefetcher *P = &cu->pf;
	struct ec_pf_request req[EC_CUDA_PREFETCH_MAX_DEPTH], tmp;
	uint32_t n_req = P->n_req, picks = 0, i, j;
	bool full = false;
	cudaError_t e;
	int ret;

	P->n_req = 0;
	if (!n_req)
		return 0;
	memcpy(req, P->req, n_req * sizeof(req[0]));
	for (i = 0; i < n_req; i++)
		picks += req[i].n * req[i].width;
	/* normally complete: the layer's routing waited for it */
	e = cudaEventQuery(P->done);
	if (e != cudaSuccess) {
		if (e != cudaErrorNotReady)
			return ec_cuda_fail(e, "cudaEventQuery(prefetch)",
					    __FILE__, __LINE__);
		cudaGetLastError();
		cu->st.prefetch_skipped += picks;
		return 0;
	}
	/* nearest layer first */
	for (i = 1; i < n_req; i++)
		for (j = i; j > 0 && req[j].layer < req[j - 1].layer; j--) {
			tmp = req[j];
			req[j] = req[j - 1];
			req[j - 1] = tmp;
		}
	for (i = 0; i < n_req; i++) {
		const struct ec_pf_request *r = &req[i];
		const volatile int32_t *ids = r->ids;

		if (r->layer <= layer || r->layer >= cu->slots.n_layer) {
			cu->st.prefetch_skipped += r->n * r->width;
			continue;
		}
		/* best picks of every token before anyone's second best */
		for (j = 0; j < r->n * r->width; j++) {
			int32_t id = ids[(j % r->n) * r->width + j / r->n];

			if (id < 0 || (uint32_t)id >= cu->slots.n_expert)
				continue;
			ret = prefetch_one(cu, r->layer, (uint32_t)id, src,
					   &full);
			if (ret < 0)
				return ret;
		}
	}
	return 0;
}
