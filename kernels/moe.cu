// SPDX-License-Identifier: MIT
/*
 * The routed experts of a decode step, all selected experts of the
 * token(s) in two launches: gate and up dequantise-GEMVs fused with
 * SiLU*mul, then down with the routing weights folded in (summed over the
 * experts in routing order, so residency never changes the result).
 * Experts already in VRAM start before the prefetched ones are waited for
 * and the misses fetched; the next layers' predicted experts are copied
 * in behind this call's misses.
 */
#include <string.h>

#include "dequant.cuh"
#include "gemv_q8.cuh"

#define MOE_WARPS 4

/* pr order: key/tok per hidden row i; hrow/w per (token, j) pair */
struct moe_args {
	int32_t key[EC_CUDA_MAX_PAIRS];
	int32_t tok[EC_CUDA_MAX_PAIRS];
	int32_t hrow[EC_CUDA_MAX_PAIRS];
	float w[EC_CUDA_MAX_PAIRS];
};

static __device__ __forceinline__ const uint8_t *
slot_base(const struct ec_slot_entry *table, int32_t key, int *fault)
{
	struct ec_slot_entry e = table[key];

	if (!e.ready || !e.addr) {
		atomicExch(fault, 1);
		return NULL;
	}
	return (const uint8_t *)(uintptr_t)e.addr;
}

/* h (i, n_ff) = silu(gate_i . x_tok) * (up_i . x_tok), i in [i0, i0+np) */
template <int T>
__global__ void __launch_bounds__(MOE_WARPS * 32)
	moe_gate_up_kernel(float *__restrict__ h, const float *__restrict__ x,
			   uint32_t n_embd, uint32_t n_ff,
			   const struct ec_slot_entry *__restrict__ table,
			   struct moe_args a, uint32_t i0, uint64_t off_gate,
			   uint64_t off_up, uint64_t row_bytes, bool vec,
			   int *fault)
{
	uint32_t i = i0 + blockIdx.y;
	uint32_t r = blockIdx.x * MOE_WARPS + threadIdx.x / 32;
	int lane = threadIdx.x & 31;
	const uint8_t *base;
	const float *xt;
	float g[1] = { 0.0f }, u[1] = { 0.0f };

	if (r >= n_ff)
		return;
	base = slot_base(table, a.key[i], fault);
	if (!base)
		return;
	xt = x + (size_t)a.tok[i] * n_embd;
	ec_row_dot<T, 1>(base + off_gate + r * row_bytes, xt, n_embd, n_embd,
			 1, lane, vec, g);
	ec_row_dot<T, 1>(base + off_up + r * row_bytes, xt, n_embd, n_embd, 1,
			 lane, vec, u);
	g[0] = ec_warp_sum(g[0]);
	u[0] = ec_warp_sum(u[0]);
	if (lane == 0)
		h[(size_t)i * n_ff + r] = g[0] / (1.0f + expf(-g[0])) * u[0];
}

/* y (t, n_embd) = sum_j w[t*k+j] * down_j . h_j, j in routing order */
template <int T>
__global__ void __launch_bounds__(MOE_WARPS * 32)
	moe_down_kernel(float *__restrict__ y, const float *__restrict__ h,
			uint32_t n_embd, uint32_t n_ff, uint32_t k,
			const struct ec_slot_entry *__restrict__ table,
			struct moe_args a, uint64_t off_down,
			uint64_t row_bytes, bool vec, int *fault)
{
	uint32_t t = blockIdx.y;
	uint32_t r = blockIdx.x * MOE_WARPS + threadIdx.x / 32;
	int lane = threadIdx.x & 31;
	float sum = 0.0f;

	if (r >= n_embd)
		return;
	for (uint32_t j = 0; j < k; j++) {
		uint32_t p = t * k + j, i = (uint32_t)a.hrow[p];
		const uint8_t *base = slot_base(table, a.key[i], fault);
		float acc[1] = { 0.0f };

		if (!base)
			return;
		ec_row_dot<T, 1>(base + off_down + r * row_bytes,
				 h + (size_t)i * n_ff, n_ff, n_ff, 1, lane, vec,
				 acc);
		sum = sum + __fmul_rn(a.w[p], ec_warp_sum(acc[0]));
	}
	if (lane == 0)
		y[(size_t)t * n_embd + r] = sum;
}

static int gate_up(struct ec_cuda *cu, const struct ec_slot_layout *ly,
		   const struct moe_args *a, uint32_t i0, uint32_t np,
		   const float *x)
{
	const void *aligned = (const void *)(uintptr_t)256;
	bool vec = ec_dot_vec_ok(ly->type[EC_EXPERT_GATE], aligned,
				 ly->row_bytes[EC_EXPERT_GATE], ly->n_embd, x,
				 ly->n_embd);
	dim3 grid(ec_cuda_blocks(ly->n_ff, MOE_WARPS), np);

	if (!np)
		return 0;
	/* quantised experts: 8-bit activations unless exact f32 was asked */
	if (ec_cuda_q8_on(cu, ly->type[EC_EXPERT_GATE])) {
		struct ec_moe_q8_pairs q;

		memcpy(q.key, a->key, sizeof(q.key));
		memcpy(q.tok, a->tok, sizeof(q.tok));
		memset(q.hrow, 0, sizeof(q.hrow));
		memset(q.w, 0, sizeof(q.w));
		return ec_cuda_moe_gate_up_q8(cu, ly, &q, i0, np, x, cu->d_h);
	}
	EC_TYPE_SWITCH(ly->type[EC_EXPERT_GATE], T,
		       EC_LAUNCH(grid, MOE_WARPS * 32, 0,
				  cu->stream, moe_gate_up_kernel<T>)(
			       cu->d_h, x, ly->n_embd, ly->n_ff,
			       cu->slots.d_table, *a, i0,
			       ly->off[EC_EXPERT_GATE], ly->off[EC_EXPERT_UP],
			       ly->row_bytes[EC_EXPERT_GATE], vec,
			       cu->slots.d_fault));
	EC_CUDA_LAUNCHED();
	return 0;
}

static int down(struct ec_cuda *cu, const struct ec_slot_layout *ly,
		const struct moe_args *a, uint32_t n, uint32_t k, float *y)
{
	const void *aligned = (const void *)(uintptr_t)256;
	bool vec = ec_dot_vec_ok(ly->type[EC_EXPERT_DOWN], aligned,
				 ly->row_bytes[EC_EXPERT_DOWN], ly->n_ff,
				 cu->d_h, ly->n_ff);
	dim3 grid(ec_cuda_blocks(ly->n_embd, MOE_WARPS), n);

	if (ec_cuda_q8_on(cu, ly->type[EC_EXPERT_DOWN])) {
		struct ec_moe_q8_pairs q;

		memcpy(q.key, a->key, sizeof(q.key));
		memcpy(q.tok, a->tok, sizeof(q.tok));
		memcpy(q.hrow, a->hrow, sizeof(q.hrow));
		memcpy(q.w, a->w, sizeof(q.w));
		return ec_cuda_moe_down_q8(cu, ly, &q, n, k, cu->d_h, y);
	}
	EC_TYPE_SWITCH(ly->type[EC_EXPERT_DOWN], T,
		       EC_LAUNCH(grid, MOE_WARPS * 32, 0,
				  cu->stream, moe_down_kernel<T>)(
			       y, cu->d_h, ly->n_embd, ly->n_ff, k,
			       cu->slots.d_table, *a,
			       ly->off[EC_EXPERT_DOWN],
			       ly->row_bytes[EC_EXPERT_DOWN], vec,
			       cu->slots.d_fault));
	EC_CUDA_LAUNCHED();
	return 0;
}

static void bubble_mark(struct ec_cuda *cu)
{
	if (cu->route_ready_ns) {
		cu->st.sync_bubble_ns += ec_cuda_now_ns() - cu->route_ready_ns;
		cu->route_ready_ns = 0;
	}
}

/* Which of a call's experts a pass of place() takes. */
enum moe_pass {
	PASS_READY,	/* in VRAM and published: runs at once */
	PASS_LOADING,	/* prefetched: the compute waits for its copy */
	PASS_REST,	/* misses: fetched and copied now */
};

struct moe_call {
	uint32_t layer, k, np, ni;	/* ni: hidden rows placed so far */
	const int32_t *ids;
	const float *weights;
	const struct ec_expert_source *src;
	int32_t held[EC_CUDA_MAX_PAIRS];
	uint8_t placed[EC_CUDA_MAX_PAIRS];
	struct moe_args a;
};

/* Acquire the pass's experts: hidden rows c->ni.. in routing order. */
static int place(struct ec_cuda *cu, struct moe_call *c, enum moe_pass pass)
{
	struct ec_vram_slots *S = &cu->slots;
	bool miss;

	for (uint32_t p = 0; p < c->np; p++) {
		uint32_t key = c->layer * S->n_expert + (uint32_t)c->ids[p];
		int32_t s = S->slot_of_key[key];

		if (c->placed[p])
			continue;
		if (pass == PASS_READY &&
		    (s < 0 || S->s[s].state != EC_VSLOT_READY))
			continue;
		if (pass == PASS_LOADING &&
		    (s < 0 || S->s[s].state != EC_VSLOT_LOADING))
			continue;
		s = ec_cuda_slot_acquire(cu, c->layer, (uint32_t)c->ids[p],
					 c->src, &miss);
		if (s < 0)
			return s;
		c->held[c->ni] = s;
		c->a.key[c->ni] = (int32_t)key;
		c->a.tok[c->ni] = (int32_t)(p / c->k);
		c->a.hrow[p] = (int32_t)c->ni;
		c->a.w[p] = c->weights[p];
		c->placed[p] = 1;
		c->ni++;
	}
	return 0;
}

/*
 * n * k <= EC_CUDA_MAX_PAIRS pairs, n_slots >= their experts, gate and up
 * of one type.  Gate/up runs in up to three launches, each as soon as its
 * experts can be read: those READY in VRAM at once, the prefetched ones
 * after their copies, the misses after theirs (issued first on the copy
 * stream, ahead of this call's prefetches); then one down launch.
 */
static int moe_fused(struct ec_cuda *cu, float *y, const float *x,
		     uint32_t n, uint32_t layer, uint32_t k,
		     const int32_t *ids, const float *weights,
		     const struct ec_expert_source *src)
{
	struct ec_vram_slots *S = &cu->slots;
	const struct ec_slot_layout *ly = &S->layout[layer];
	static const enum moe_pass passes[] = { PASS_READY, PASS_LOADING,
						PASS_REST };
	struct moe_call c;
	int ret = 0;

	c.layer = layer;
	c.k = k;
	c.np = n * k;
	c.ni = 0;
	c.ids = ids;
	c.weights = weights;
	c.src = src;
	memset(c.placed, 0, sizeof(c.placed));
	/* entries an earlier failed call left queued */
	if (S->n_upd && (ret = ec_cuda_slots_publish(cu)) < 0)
		return ret;
	for (int i = 0; i < 3; i++) {
		uint32_t i0 = c.ni;

		/* off the routing's critical path: after the first launch,
		 * before prefetched experts are judged late */
		if (passes[i] == PASS_LOADING &&
		    (ret = ec_cuda_slots_finish(cu, src)) < 0)
			goto out;
		ret = place(cu, &c, passes[i]);
		if (ret < 0)
			goto out;
		if (c.ni == i0)
			continue;
		if (passes[i] != PASS_READY)
			ret = ec_cuda_slots_publish(cu);
		if (ret >= 0)
			ret = gate_up(cu, ly, &c.a, i0, c.ni - i0, x);
		bubble_mark(cu);
		if (ret < 0)
			goto out;
	}
	ret = down(cu, ly, &c.a, n, k, y);
	/* while this call's experts are still pinned */
	if (ret >= 0)
		ret = ec_cuda_slots_retire(cu, layer);
	if (ret >= 0)
		ret = ec_cuda_slots_prefetch(cu, layer, src);
out:
	if (c.ni) {
		int r2 = ec_cuda_slots_release(cu, c.held, c.ni);

		if (ret >= 0)
			ret = r2;
	}
	return ret;
}

int ec_cuda_moe_ffn(struct ec_backend *be, float *y, const float *x,
		    uint32_t n, uint32_t layer, uint32_t n_expert, uint32_t k,
		    const int32_t *ids, const float *weights,
		    const struct ec_expert_source *src)
{
	struct ec_cuda *cu = ec_cuda_of(be);
	struct ec_vram_slots *S = &cu->slots;
	uint64_t t0 = ec_cuda_now_ns(), w0 = cu->st.miss_wait_ns;
	int ret = ec_cuda_unstick(cu);

	if (ret < 0)
		return ret;
	if (layer >= S->n_layer || n_expert != S->n_expert || !k ||
	    k > n_expert)
		return ec_cuda_errorf(-EC_EINVAL, "cuda backend: moe_ffn: layer "
				      "%u of %u, %u experts (model: %u), top "
				      "%u", layer, S->n_layer, n_expert,
				      S->n_expert, k);
	for (uint32_t p = 0; p < n * k; p++)
		if (ids[p] < 0 || (uint32_t)ids[p] >= n_expert)
			return ec_cuda_errorf(-EC_EINVAL, "cuda backend: "
					      "moe_ffn: expert id %d of %u",
					      ids[p], n_expert);
	if (!n)
		return 0;
	S->round++;
	/* one token: every expert it needs fits (n_slots >= k) */
	if (n == 1 && S->layout[layer].fused) {
		ret = moe_fused(cu, y, x, n, layer, k, ids, weights, src);
	} else {
		/* host copies of earlier calls whose copies have landed */
		ret = ec_cuda_slots_finish(cu, src);
		if (ret >= 0)
			ret = ec_cuda_moe_grouped(cu, y, x, n, layer, k, ids,
						  weights, src);
		/* unpinned by now, but this call's experts are marked */
		if (ret >= 0)
			ret = ec_cuda_slots_retire(cu, layer);
		if (ret >= 0)
			ret = ec_cuda_slots_prefetch(cu, layer, src);
	}
	cu->pf.n_req = 0;	/* an error left them: stale by now */
	cu->st.moe_host_ns += ec_cuda_now_ns() - t0 -
			      (cu->st.miss_wait_ns - w0);
	return ret;
}
