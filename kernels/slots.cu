// SPDX-License-Identifier: MIT
/*
 * The VRAM expert slots: fixed-size slots within the budget, a host mirror
 * and a device-side table (flat expert key -> slot address, READY), copies
 * on the copy stream, events for READY and for the last compute use, and
 * replacement through an ec_policy (LRU unless asked otherwise).
 *
 * Slot states (enum ec_vslot_state): EMPTY (key -1); LOADING (copy
 * issued by a prefetch, the compute stream not yet made to wait for it);
 * READY (the compute stream waits for the copy before what follows, and
 * the device-table entry is queued or applied).  A demand use of a LOADING
 * slot makes it READY the same way a demand miss does, without a second
 * copy.  A kernel finding a key that is not READY raises the fault flag
 * instead of reading it; an evicted slot is overwritten only after its
 * last use completed.
 *
 * Host copies are put back (src->put) lazily: once the slot's ready event
 * has completed, checked at later calls, so the host never waits for a
 * copy in the steady state; sync (ec_cuda_slots_drain) puts back the rest.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dequant.cuh"

extern "C" {
#include "ec_layout.h"
}

/* as in a layout-file record, so such an expert goes to VRAM in one copy */
#define SLOT_ALIGN EC_SLOT_PART_ALIGN
static_assert(SLOT_ALIGN == EC_LAYOUT_PART_ALIGN, "slot and layout records");
#define UPDATES_PER_LAUNCH 32

static uint64_t align_up(uint64_t v, uint64_t a)
{
	return (v + a - 1) / a * a;
}

/* Layouts per layer from the model; returns the largest slot size. */
static int plan_layout(struct ec_vram_slots *S, const struct ec_model *m,
		       uint64_t *slot_bytes, uint64_t *all_expert_bytes)
{
	uint64_t biggest = 0, all = 0;

	for (uint32_t l = 0; l < S->n_layer; l++) {
		struct ec_slot_layout *ly = &S->layout[l];
		const struct ec_expert *x = &m->layers[l].experts[0];
		uint64_t off = 0;

		for (int p = 0; p < EC_EXPERT_NPARTS; p++) {
			const struct ec_tensor *t = &x->w[p];
			uint64_t rb = ec_cuda_row_bytes(t->type, t->ne[0]);

			if (!ec_cuda_type_ok(t->type) || !rb)
				return ec_cuda_errorf(-EC_EUNSUPPORTED,
					"cuda backend: layer %u expert part %d "
					"has weight type %d", l, p,
					(int)t->type);
			ly->type[p] = t->type;
			ly->row_bytes[p] = rb;
			ly->bytes[p] = rb * t->ne[1];
			ly->off[p] = off;
			off = align_up(off + ly->bytes[p], SLOT_ALIGN);
		}
		ly->n_embd = (uint32_t)x->w[EC_EXPERT_GATE].ne[0];
		ly->n_ff = (uint32_t)x->w[EC_EXPERT_GATE].ne[1];
		ly->fused = ly->type[EC_EXPERT_GATE] == ly->type[EC_EXPERT_UP];
		if (ly->n_ff > S->max_ff)
			S->max_ff = ly->n_ff;
		if (ly->n_embd > S->max_embd)
			S->max_embd = ly->n_embd;
		if (off > biggest)
			biggest = off;
		all += (ly->bytes[0] + ly->bytes[1] + ly->bytes[2]) *
		       S->n_expert;
	}
	*slot_bytes = biggest;
	*all_expert_bytes = all;
	return 0;
}

/* Budget 0: everything if it fits, else what is free after a reserve. */
static uint64_t auto_budget(const struct ec_model *m, uint64_t all_experts,
			    uint64_t want)
{
	size_t free_b = 0, total_b = 0;
	uint64_t files = 0, other, reserve;

	if (cudaMemGetInfo(&free_b, &total_b) != cudaSuccess)
		return 0;
	for (uint32_t i = 0; i < m->n_files; i++)
		files += m->files[i].size;
	other = files > all_experts ? files - all_experts : 0;
	reserve = other + (1ull << 30) + free_b / 20;
	if (free_b <= reserve)
		return 0;
	return free_b - reserve < want ? free_b - reserve : want;
}

int ec_cuda_slots_create(struct ec_cuda *cu,
			 const struct ec_backend_cuda_params *p)
{
	struct ec_vram_slots *S = &cu->slots;
	const struct ec_model *m = p->model;
	uint64_t all = 0, budget, bytes;
	char why[64] = "";
	int ret;

	S->n_layer = m->hp.n_layer;
	S->n_expert = m->hp.n_expert;
	S->n_used = m->hp.n_expert_used;
	S->n_keys = S->n_layer * S->n_expert;
	S->layout = (struct ec_slot_layout *)calloc(S->n_layer,
						    sizeof(*S->layout));
	if (!S->layout)
		return ec_cuda_errorf(-ENOMEM, "cuda backend: out of memory");
	ret = plan_layout(S, m, &S->slot_bytes, &all);
	if (ret < 0)
		return ret;
	budget = p->vram_budget;
	if (!budget) {
		budget = auto_budget(m, all, (uint64_t)S->n_keys *
						     S->slot_bytes);
		snprintf(why, sizeof(why), " (automatic)");
	}
	bytes = budget / S->slot_bytes;
	S->n_slots = bytes > S->n_keys ? S->n_keys : (uint32_t)bytes;
	if (S->n_slots < S->n_used)
		return ec_cuda_errorf(-ENOMEM, "cuda backend: a VRAM budget "
				      "of %llu bytes%s holds %u expert slots "
				      "of %llu bytes; the model routes %u "
				      "experts per token, so at least %llu "
				      "bytes are needed",
				      (unsigned long long)budget, why,
				      S->n_slots,
				      (unsigned long long)S->slot_bytes,
				      S->n_used,
				      (unsigned long long)S->slot_bytes *
					      S->n_used);
	EC_CUDA_CHECK(cudaMalloc((void **)&S->base,
				 (size_t)S->n_slots * S->slot_bytes));
	EC_CUDA_CHECK(cudaMalloc((void **)&S->d_table,
				 (size_t)S->n_keys * sizeof(*S->d_table)));
	EC_CUDA_CHECK(cudaMemset(S->d_table, 0,
				 (size_t)S->n_keys * sizeof(*S->d_table)));
	EC_CUDA_CHECK(cudaHostAlloc((void **)&S->h_fault, sizeof(int),
				    cudaHostAllocMapped));
	*S->h_fault = 0;
	EC_CUDA_CHECK(cudaHostGetDevicePointer((void **)&S->d_fault,
					       S->h_fault, 0));
	S->s = (struct ec_vslot *)calloc(S->n_slots, sizeof(*S->s));
	S->slot_of_key = (int32_t *)malloc(S->n_keys * sizeof(int32_t));
	S->free_slots = (uint32_t *)malloc(S->n_slots * sizeof(uint32_t));
	S->upd_cap = 2 * S->n_slots + 2 * EC_CUDA_MAX_PAIRS;
	S->upd = (struct ec_slot_entry *)malloc(S->upd_cap * sizeof(*S->upd));
	S->upd_key = (int32_t *)malloc(S->upd_cap * sizeof(int32_t));
	S->upd_slot = (int32_t *)malloc(S->upd_cap * sizeof(int32_t));
	/* host copies are put back lazily: room for a few layers of them */
	S->puts_cap = S->n_slots + 2 * EC_CUDA_MAX_PAIRS;
	S->puts = (struct ec_pending_put *)malloc(S->puts_cap *
						  sizeof(*S->puts));
	if (!S->s || !S->slot_of_key || !S->free_slots || !S->upd ||
	    !S->upd_key || !S->upd_slot || !S->puts)
		return ec_cuda_errorf(-ENOMEM, "cuda backend: out of memory");
	for (uint32_t i = 0; i < S->n_keys; i++)
		S->slot_of_key[i] = -1;
	for (uint32_t i = 0; i < S->n_slots; i++) {
		S->s[i].key = -1;
		EC_CUDA_CHECK(cudaEventCreateWithFlags(&S->s[i].ready,
						       cudaEventDisableTiming));
		EC_CUDA_CHECK(cudaEventCreateWithFlags(&S->s[i].last_use,
						       cudaEventDisableTiming));
		S->free_slots[S->n_free++] = S->n_slots - 1 - i;
	}
	ret = ec_cuda_host_api->policy_create(p->policy, S->n_keys,
					      S->n_slots, &S->policy);
	if (ret < 0)
		return ret;
	cu->st.vram_budget = (uint64_t)S->n_slots * S->slot_bytes;
	cu->st.slot_bytes = S->slot_bytes;
	cu->st.n_slots = S->n_slots;
	return 0;
}

void ec_cuda_slots_destroy(struct ec_cuda *cu)
{
	struct ec_vram_slots *S = &cu->slots;

	if (S->s) {
		for (uint32_t i = 0; i < S->n_slots; i++) {
			if (S->s[i].ready)
				cudaEventDestroy(S->s[i].ready);
			if (S->s[i].last_use)
				cudaEventDestroy(S->s[i].last_use);
		}
	}
	if (S->policy)
		ec_cuda_host_api->policy_free(S->policy);
	cudaFree(S->base);
	cudaFree(S->d_table);
	if (S->h_fault)
		cudaFreeHost(S->h_fault);
	free(S->s);
	free(S->slot_of_key);
	free(S->free_slots);
	free(S->upd);
	free(S->upd_key);
	free(S->upd_slot);
	free(S->puts);
	free(S->layout);
	memset(S, 0, sizeof(*S));
}

struct table_updates {
	int32_t key[UPDATES_PER_LAUNCH];
	uint64_t addr[UPDATES_PER_LAUNCH];
	uint32_t ready[UPDATES_PER_LAUNCH];
	uint32_t n;
};

/* in queue order, so an eviction followed by a reload ends READY */
__global__ void table_update_kernel(struct ec_slot_entry *table,
				    struct table_updates u)
{
	for (uint32_t i = 0; i < u.n; i++) {
		table[u.key[i]].addr = u.addr[i];
		table[u.key[i]].ready = u.ready[i];
	}
}

int ec_cuda_slots_publish(struct ec_cuda *cu)
{
	struct ec_vram_slots *S = &cu->slots;
	struct table_updates u;

	for (uint32_t i = 0; i < S->n_upd; i++)
		if (S->upd_slot[i] >= 0)
			EC_CUDA_CHECK(cudaStreamWaitEvent(
				cu->stream, S->s[S->upd_slot[i]].ready, 0));
	for (uint32_t i0 = 0; i0 < S->n_upd; i0 += UPDATES_PER_LAUNCH) {
		u.n = 0;
		for (uint32_t i = i0; i < S->n_upd &&
				      u.n < UPDATES_PER_LAUNCH; i++, u.n++) {
			u.key[u.n] = S->upd_key[i];
			u.addr[u.n] = S->upd[i].addr;
			u.ready[u.n] = S->upd[i].ready;
		}
		EC_LAUNCH(1, 1, 0, cu->stream, table_update_kernel)(
			S->d_table, u);
		EC_CUDA_LAUNCHED();
	}
	S->n_upd = 0;
	return 0;
}

static int queue_update(struct ec_cuda *cu, int32_t key, int32_t slot)
{
	struct ec_vram_slots *S = &cu->slots;
	int ret;

	if (S->n_upd == S->upd_cap && (ret = ec_cuda_slots_publish(cu)) < 0)
		return ret;
	S->upd_key[S->n_upd] = key;
	S->upd_slot[S->n_upd] = slot;
	S->upd[S->n_upd].addr = slot >= 0 ? (uint64_t)(uintptr_t)
					    ec_cuda_slot_addr(cu, slot) : 0;
	S->upd[S->n_upd].ready = slot >= 0;
	S->n_upd++;
	return 0;
}

/* ------------------------------------------------------------------ */
/* Host copies: put back once their copy has completed.                */

static cudaError_t query(cudaEvent_t ev)
{
	cudaError_t e = cudaEventQuery(ev);

	if (e == cudaErrorNotReady)
		cudaGetLastError();	/* a state, not an error to keep */
	return e;
}

/* Oldest first, one event query at most past what is known complete. */
int ec_cuda_slots_finish(struct ec_cuda *cu,
			 const struct ec_expert_source *src)
{
	struct ec_vram_slots *S = &cu->slots;
	cudaError_t e = cudaSuccess;
	uint32_t i, j;

	(void)src;
	for (i = 0; i < S->n_puts; i++) {
		struct ec_pending_put *pp = &S->puts[i];

		if (pp->seq > S->done_seq) {
			e = query(S->s[pp->slot].ready);
			if (e != cudaSuccess)
				break;
			S->done_seq = pp->seq;
		}
		pp->put(pp->priv, pp->layer, pp->expert);
	}
	for (j = 0; i < S->n_puts; i++, j++)
		S->puts[j] = S->puts[i];
	S->n_puts = j;
	if (e == cudaErrorNotReady)
		return 0;
	return ec_cuda_fail(e, "cudaEventQuery(expert copy)", __FILE__,
			    __LINE__);
}

int ec_cuda_slots_drain(struct ec_cuda *cu)
{
	struct ec_vram_slots *S = &cu->slots;
	uint64_t t0;
	cudaError_t e;

	if (!S->n_puts)
		return 0;
	t0 = ec_cuda_now_ns();
	e = cudaStreamSynchronize(cu->copy);
	t0 = ec_cuda_now_ns() - t0;
	cu->st.copy_wait_ns += t0;
	cu->st.miss_wait_ns += t0;
	if (e == cudaSuccess)
		S->done_seq = S->copy_seq;
	/* even after a failed copy: the source must get its copies back */
	for (uint32_t i = 0; i < S->n_puts; i++)
		S->puts[i].put(S->puts[i].priv, S->puts[i].layer,
			       S->puts[i].expert);
	S->n_puts = 0;
	return ec_cuda_fail(e, "cudaStreamSynchronize(copy)", __FILE__,
			    __LINE__);
}

/* Room for one more pending host copy: wait for the oldest if full. */
static int puts_room(struct ec_cuda *cu)
{
	struct ec_vram_slots *S = &cu->slots;
	uint64_t t0;
	cudaError_t e;

	if (S->n_puts < S->puts_cap)
		return 0;
	t0 = ec_cuda_now_ns();
	e = cudaEventSynchronize(S->s[S->puts[0].slot].ready);
	t0 = ec_cuda_now_ns() - t0;
	cu->st.copy_wait_ns += t0;
	cu->st.miss_wait_ns += t0;
	if (e != cudaSuccess)
		return ec_cuda_fail(e, "cudaEventSynchronize(expert copy)",
				    __FILE__, __LINE__);
	return ec_cuda_slots_finish(cu, NULL);
}

/* ------------------------------------------------------------------ */
/* Replacement.                                                        */

struct victim_arg {
	struct ec_vram_slots *S;
	bool prefetch;
};

/*
 * Never a slot pinned by the call being issued; for a prefetch also never
 * one this call used or predicted (S->round).
 */
static bool evictable(void *arg, uint32_t key)
{
	const struct victim_arg *va = (const struct victim_arg *)arg;
	int32_t s = va->S->slot_of_key[key];

	if (s < 0 || va->S->s[s].pins)
		return false;
	return !va->prefetch || va->S->s[s].round != va->S->round;
}

int ec_cuda_slot_evict(struct ec_cuda *cu, int32_t s)
{
	struct ec_vram_slots *S = &cu->slots;
	struct ec_vslot *v = &S->s[s];
	int32_t key = v->key;
	bool published = v->state == EC_VSLOT_READY;

	S->policy->ops->remove(S->policy, (uint32_t)key);
	S->slot_of_key[key] = -1;
	v->key = -1;
	v->state = EC_VSLOT_EMPTY;
	if (v->prefetched)
		cu->st.prefetch_wasted++;
	v->prefetched = false;
	cu->st.evictions++;
	/* a LOADING slot never reached the device table */
	return published ? queue_update(cu, key, -1) : 0;
}

int ec_cuda_slot_take(struct ec_cuda *cu, uint32_t key, uint64_t t,
		      bool prefetch)
{
	struct ec_vram_slots *S = &cu->slots;
	struct victim_arg va = { S, prefetch };
	uint32_t victim;
	int32_t s;
	int ret;

	if (S->n_free)
		return (int)S->free_slots[--S->n_free];
	ret = S->policy->ops->victim(S->policy, key, t, false, evictable, &va,
				     &victim);
	if (ret != 0 && prefetch)
		return -ENOSPC;		/* quietly: it was only a hint */
	if (ret != 0)
		return ec_cuda_errorf(-ENOSPC, "cuda backend: all %u VRAM "
				      "expert slots are in use by this step",
				      S->n_slots);
	s = S->slot_of_key[victim];
	ret = ec_cuda_slot_evict(cu, s);
	return ret < 0 ? ret : s;
}

/* ------------------------------------------------------------------ */
/* Copies.                                                             */

static int check_expert(const struct ec_slot_layout *ly,
			const struct ec_expert *x, uint32_t layer, uint32_t e)
{
	for (int p = 0; p < EC_EXPERT_NPARTS; p++) {
		const struct ec_tensor *t = &x->w[p];

		if (t->type != ly->type[p] || t->nbytes != ly->bytes[p] ||
		    !t->data)
			return ec_cuda_errorf(-EC_ESHAPE, "cuda backend: expert "
					      "(%u, %u) part %d: type %d, %llu "
					      "bytes; the layer's slots expect "
					      "type %d, %llu bytes", layer, e,
					      p, (int)t->type,
					      (unsigned long long)t->nbytes,
					      (int)ly->type[p],
					      (unsigned long long)ly->bytes[p]);
	}
	return 0;
}

/*
 * Page-locked for CUDA?  The registered model mappings and host-tier
 * regions need no query.
 */
static bool host_pinned(const struct ec_cuda *cu, const void *p,
			uint64_t bytes)
{
	struct cudaPointerAttributes a;

	for (uint32_t i = 0; i < cu->n_reg; i++)
		if ((uintptr_t)p - (uintptr_t)cu->reg[i].p < cu->reg[i].len)
			return true;
	if (ec_cuda_host_tier_has(cu, p, bytes))
		return true;
	if (cudaPointerGetAttributes(&a, p) != cudaSuccess) {
		cudaGetLastError();
		return false;
	}
	return a.type != cudaMemoryTypeUnregistered;
}

static int copy_part(struct ec_cuda *cu, uint8_t *dst, const void *src,
		     uint64_t bytes)
{
	if (!host_pinned(cu, src, bytes))
		cu->st.h2d_pageable += bytes;
	EC_CUDA_CHECK(cudaMemcpyAsync(dst, src, bytes, cudaMemcpyHostToDevice,
				      cu->copy));
	cu->st.h2d_copies++;
	cu->st.h2d_bytes += bytes;
	return 0;
}

/*
 * Issue the copies of expert x into slot s on the copy stream: one when
 * the host parts sit at the slot's offsets from the gate (a layout-file
 * record; the gaps are padding inside it), else one per part.
 */
static int issue_copy(struct ec_cuda *cu, int32_t s,
		      const struct ec_slot_layout *ly,
		      const struct ec_expert *x, uint64_t *bytes)
{
	struct ec_vram_slots *S = &cu->slots;
	uint8_t *dst = ec_cuda_slot_addr(cu, s);
	uintptr_t h0 = (uintptr_t)x->w[0].data;
	bool one = true;
	int ret;

	if (S->s[s].used)
		EC_CUDA_CHECK(cudaStreamWaitEvent(cu->copy, S->s[s].last_use,
						  0));
	for (int p = 0; p < EC_EXPERT_NPARTS; p++)
		one = one && (uintptr_t)x->w[p].data - h0 == ly->off[p];
	*bytes = 0;
	if (one) {
		*bytes = ly->off[EC_EXPERT_NPARTS - 1] +
			 ly->bytes[EC_EXPERT_NPARTS - 1];
		ret = copy_part(cu, dst, x->w[0].data, *bytes);
		if (ret < 0)
			return ret;
	} else {
		for (int p = 0; p < EC_EXPERT_NPARTS; p++) {
			ret = copy_part(cu, dst + ly->off[p], x->w[p].data,
					ly->bytes[p]);
			if (ret < 0)
				return ret;
			*bytes += ly->bytes[p];
		}
	}
	EC_CUDA_CHECK(cudaEventRecord(S->s[s].ready, cu->copy));
	S->s[s].seq = ++S->copy_seq;
	return 0;
}

int ec_cuda_slot_load(struct ec_cuda *cu, int32_t s, uint32_t layer,
		      uint32_t e, const struct ec_expert_source *src,
		      uint64_t *bytes, bool *copy_failed)
{
	struct ec_vram_slots *S = &cu->slots;
	uint32_t key = layer * S->n_expert + e;
	const struct ec_expert *x;
	uint64_t t0;
	int ret;

	*copy_failed = false;
	ret = puts_room(cu);
	if (ret < 0)
		goto fail;
	/* the memory get() hands out page-locked (once per source) */
	ec_cuda_host_tier_check(cu, src);
	t0 = ec_cuda_now_ns();
	ret = src->get(src->priv, layer, e, &x);
	t0 = ec_cuda_now_ns() - t0;
	cu->st.get_wait_ns += t0;
	cu->st.miss_wait_ns += t0;
	if (ret < 0)
		goto fail;
	ret = check_expert(&S->layout[layer], x, layer, e);
	if (ret >= 0) {
		ret = issue_copy(cu, s, &S->layout[layer], x, bytes);
		*copy_failed = ret < 0;
	}
	if (ret < 0) {
		src->put(src->priv, layer, e);
		goto fail;
	}
	S->puts[S->n_puts].put = src->put;
	S->puts[S->n_puts].priv = src->priv;
	S->puts[S->n_puts].layer = layer;
	S->puts[S->n_puts].expert = e;
	S->puts[S->n_puts].slot = s;
	S->puts[S->n_puts].seq = S->s[s].seq;
	S->n_puts++;
	S->slot_of_key[key] = s;
	S->s[s].key = (int32_t)key;
	return 0;
fail:
	S->free_slots[S->n_free++] = (uint32_t)s;
	return ret;
}

/* ------------------------------------------------------------------ */
/* Demand use.                                                         */

/* A LOADING (prefetched) slot's first use: the compute stream waits for
 * its copy at the next publish, the device table then says READY. */
static int first_use(struct ec_cuda *cu, int32_t s)
{
	struct ec_vslot *v = &cu->slots.s[s];

	cu->st.loading_hits++;
	if (v->prefetched) {
		cu->st.prefetch_used++;
		/* not known complete when this call began (no query) */
		if (v->seq > cu->slots.done_seq)
			cu->st.prefetch_late++;
	}
	v->prefetched = false;
	v->state = EC_VSLOT_READY;
	return queue_update(cu, v->key, s);
}

int ec_cuda_slot_acquire(struct ec_cuda *cu, uint32_t layer, uint32_t e,
			 const struct ec_expert_source *src, bool *miss)
{
	struct ec_vram_slots *S = &cu->slots;
	uint32_t key = layer * S->n_expert + e;
	uint64_t t = ++S->tick, bytes;
	int32_t s = S->slot_of_key[key];
	bool copy_failed;
	int ret;

	if (s >= 0) {
		struct ec_vslot *v = &S->s[s];

		S->policy->ops->hit(S->policy, key, t);
		v->pins++;
		v->round = S->round;
		cu->st.expert_hits++;
		*miss = v->state != EC_VSLOT_READY;
		if (!*miss)
			return s;
		ret = first_use(cu, s);
		return ret < 0 ? ret : s;
	}
	*miss = true;
	/*
	 * A get that reads storage may wait for a host slot that one of our
	 * host copies holds: give them all back first (only then does the
	 * host wait for copies).
	 */
	if (S->n_puts && src->resident && !src->resident(src->priv, layer, e) &&
	    (ret = ec_cuda_slots_drain(cu)) < 0)
		return ret;
	s = ec_cuda_slot_take(cu, key, t, false);
	if (s < 0)
		return s;
	cu->st.expert_misses++;
	ret = ec_cuda_slot_load(cu, s, layer, e, src, &bytes, &copy_failed);
	if (ret < 0)
		return ret;
	S->s[s].state = EC_VSLOT_READY;
	S->s[s].prefetched = false;
	S->s[s].pins = 1;
	S->s[s].round = S->round;
	S->policy->ops->insert(S->policy, key, t);
	ret = queue_update(cu, (int32_t)key, s);
	return ret < 0 ? ret : s;
}

int ec_cuda_slots_release(struct ec_cuda *cu, const int32_t *slots,
			  uint32_t n)
{
	struct ec_vram_slots *S = &cu->slots;

	for (uint32_t i = 0; i < n; i++) {
		struct ec_vslot *v = &S->s[slots[i]];

		if (v->pins && --v->pins == 0) {
			EC_CUDA_CHECK(cudaEventRecord(v->last_use, cu->stream));
			v->used = true;
		}
	}
	return 0;
}
