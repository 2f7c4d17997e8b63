// SPDX-License-Identifier: MIT
/*
 * The routed experts of a prefill chunk.  (token, expert) pairs are sorted
 * by expert and the tokens' rows gathered in that order, so each expert's
 * rows are contiguous.  Experts with a few rows run in two batched launches
 * over all resident experts (dequantising GEMV kernels that read each
 * weight row once per eight tokens); experts with many rows go through
 * cuBLAS SGEMM on dequantised weights.  A last kernel sums each token's
 * experts in routing order.  The choice depends only on an expert's row
 * count and every row is computed the same way whichever launch carries
 * it, so the result does not depend on the VRAM budget; with fewer slots
 * than experts in the chunk, experts run in groups that fit.
 */
#include <stdlib.h>
#include <string.h>

#include "gemv_q8.cuh"

#define MOE_WARPS 4
#define BATCH_ROWS 16	/* experts with more rows use cuBLAS */

struct expert_desc {
	int32_t key, start, cnt, pad;
};

/* h rows [start, start + cnt) = silu(gate . x) * (up . x), 8 at a time */
template <int T>
__global__ void __launch_bounds__(MOE_WARPS * 32)
	gate_up_batched(float *__restrict__ h, const float *__restrict__ xg,
			const struct expert_desc *__restrict__ desc, uint32_t u0,
			const struct ec_slot_entry *__restrict__ table,
			uint32_t n_embd, uint32_t n_ff, uint64_t off_gate,
			uint64_t off_up, uint64_t row_bytes, bool vec,
			int *fault)
{
	struct expert_desc d = desc[u0 + blockIdx.y];
	uint32_t r = blockIdx.x * MOE_WARPS + threadIdx.x / 32;
	int lane = threadIdx.x & 31;
	struct ec_slot_entry e;

	if (r >= n_ff || d.cnt > BATCH_ROWS)
		return;
	e = table[d.key];
	if (!e.ready || !e.addr) {
		atomicExch(fault, 1);
		return;
	}
	const uint8_t *base = (const uint8_t *)(uintptr_t)e.addr;

	for (int c0 = 0; c0 < d.cnt; c0 += 8) {
		const float *x = xg + (size_t)(d.start + c0) * n_embd;
		int m = min(8, d.cnt - c0);
		float g[8], u[8];

#pragma unroll
		for (int t = 0; t < 8; t++)
			g[t] = u[t] = 0.0f;
		ec_row_dot<T, 8>(base + off_gate + r * row_bytes, x, n_embd,
				 n_embd, m, lane, vec, g);
		ec_row_dot<T, 8>(base + off_up + r * row_bytes, x, n_embd,
				 n_embd, m, lane, vec, u);
#pragma unroll
		for (int t = 0; t < 8; t++) {
			if (t >= m)
				break;
			float gv = ec_warp_sum(g[t]), uv = ec_warp_sum(u[t]);

			if (lane == 0)
				h[(size_t)(d.start + c0 + t) * n_ff + r] =
					gv / (1.0f + expf(-gv)) * uv;
		}
	}
}

/* out rows [start, start + cnt) = down . h */
template <int T>
__global__ void __launch_bounds__(MOE_WARPS * 32)
	down_batched(float *__restrict__ out, const float *__restrict__ h,
		     const struct expert_desc *__restrict__ desc, uint32_t u0,
		     const struct ec_slot_entry *__restrict__ table,
		     uint32_t n_embd, uint32_t n_ff, uint64_t off_down,
		     uint64_t row_bytes, bool vec, int *fault)
{
	struct expert_desc d = desc[u0 + blockIdx.y];
	uint32_t r = blockIdx.x * MOE_WARPS + threadIdx.x / 32;
	int lane = threadIdx.x & 31;
	struct ec_slot_entry e;

	if (r >= n_embd || d.cnt > BATCH_ROWS)
		return;
	e = table[d.key];
	if (!e.ready || !e.addr) {
		atomicExch(fault, 1);
		return;
	}
	const uint8_t *base = (const uint8_t *)(uintptr_t)e.addr;

	for (int c0 = 0; c0 < d.cnt; c0 += 8) {
		int m = min(8, d.cnt - c0);
		float acc[8];

#pragma unroll
		for (int t = 0; t < 8; t++)
			acc[t] = 0.0f;
		ec_row_dot<T, 8>(base + off_down + r * row_bytes,
				 h + (size_t)(d.start + c0) * n_ff, n_ff, n_ff,
				 m, lane, vec, acc);
#pragma unroll
		for (int t = 0; t < 8; t++) {
			if (t >= m)
				break;
			float v = ec_warp_sum(acc[t]);

			if (lane == 0)
				out[(size_t)(d.start + c0 + t) * n_embd + r] = v;
		}
	}
}

/* y (n, dim) = sum_j w[t*k+j] * out[pos[t*k+j], :], j in routing order */
__global__ void combine_kernel(float *y, const float *out,
			       const int32_t *pos, const float *w, uint32_t n,
			       uint32_t k, uint32_t dim)
{
	size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x;
	uint32_t t, c;
	float s = 0.0f;

	if (i >= (size_t)n * dim)
		return;
	t = (uint32_t)(i / dim);
	c = (uint32_t)(i % dim);
	for (uint32_t j = 0; j < k; j++)
		s = s + __fmul_rn(w[t * k + j],
				  out[(size_t)pos[t * k + j] * dim + c]);
	y[i] = s;
}

static int grow(float **p, size_t *cap, size_t want)
{
	if (want <= *cap)
		return 0;
	cudaFree(*p);
	*p = NULL;
	*cap = 0;
	EC_CUDA_CHECK(cudaMalloc((void **)p, want * sizeof(float)));
	*cap = want;
	return 0;
}

/* Experts [u0, u1) are resident: enqueue their rows. */
static int run_group(struct ec_cuda *cu, const struct ec_slot_layout *ly,
		     const struct expert_desc *hd,
		     const struct expert_desc *dd, uint32_t u0, uint32_t u1,
		     const int32_t *slot)
{
	const void *aligned = (const void *)(uintptr_t)256;
	uint32_t F = ly->n_ff, D = ly->n_embd;
	bool vgu = ec_dot_vec_ok(ly->type[EC_EXPERT_GATE], aligned,
				 ly->row_bytes[EC_EXPERT_GATE], D, cu->d_xg, D);
	bool vd = ec_dot_vec_ok(ly->type[EC_EXPERT_DOWN], aligned,
				ly->row_bytes[EC_EXPERT_DOWN], F, cu->d_g, F);
	dim3 g1(ec_cuda_blocks(F, MOE_WARPS), u1 - u0);
	dim3 g2(ec_cuda_blocks(D, MOE_WARPS), u1 - u0);
	int ret;

	EC_TYPE_SWITCH(ly->type[EC_EXPERT_GATE], T,
		       EC_LAUNCH(g1, MOE_WARPS * 32, 0,
				  cu->stream, gate_up_batched<T>)(
			       cu->d_g, cu->d_xg, dd, u0, cu->slots.d_table, D,
			       F, ly->off[EC_EXPERT_GATE],
			       ly->off[EC_EXPERT_UP],
			       ly->row_bytes[EC_EXPERT_GATE], vgu,
			       cu->slots.d_fault));
	EC_CUDA_LAUNCHED();
	/* many rows: dequantise + SGEMM, straight into h and out */
	for (uint32_t u = u0; u < u1; u++) {
		const uint8_t *base = ec_cuda_slot_addr(cu, slot[u - u0]);
		uint32_t m = (uint32_t)hd[u].cnt, s = (uint32_t)hd[u].start;

		if (m <= BATCH_ROWS)
			continue;
		ret = ec_cuda_mm(cu, cu->d_g + (size_t)s * F,
				 ly->type[EC_EXPERT_GATE],
				 base + ly->off[EC_EXPERT_GATE],
				 ly->row_bytes[EC_EXPERT_GATE], F, D,
				 cu->d_xg + (size_t)s * D, m, 0);
		if (ret >= 0)
			ret = ec_cuda_mm(cu, cu->d_u, ly->type[EC_EXPERT_UP],
					 base + ly->off[EC_EXPERT_UP],
					 ly->row_bytes[EC_EXPERT_UP], F, D,
					 cu->d_xg + (size_t)s * D, m, 0);
		if (ret >= 0)
			ret = ec_cuda_silu_mul_dev(cu, cu->d_g + (size_t)s * F,
						   cu->d_u, (size_t)m * F);
		if (ret >= 0)
			ret = ec_cuda_mm(cu, cu->d_d + (size_t)s * D,
					 ly->type[EC_EXPERT_DOWN],
					 base + ly->off[EC_EXPERT_DOWN],
					 ly->row_bytes[EC_EXPERT_DOWN], D, F,
					 cu->d_g + (size_t)s * F, m, 0);
		if (ret < 0)
			return ret;
	}
	/* h rounded to 8 bits as the CPU's down matmul would (in place) */
	if (ec_cuda_q8_on(cu, ly->type[EC_EXPERT_DOWN])) {
		uint32_t r0 = (uint32_t)hd[u0].start;
		uint32_t r1 = (uint32_t)(hd[u1 - 1].start + hd[u1 - 1].cnt);
		float *hg = cu->d_g + (size_t)r0 * F;

		ret = ec_cuda_act_round(cu, ly->type[EC_EXPERT_DOWN], &hg, hg,
					F, r1 - r0);
		if (ret < 0)
			return ret;
	}
	EC_TYPE_SWITCH(ly->type[EC_EXPERT_DOWN], T,
		       EC_LAUNCH(g2, MOE_WARPS * 32, 0,
				  cu->stream, down_batched<T>)(
			       cu->d_d, cu->d_g, dd, u0, cu->slots.d_table, D,
			       F, ly->off[EC_EXPERT_DOWN],
			       ly->row_bytes[EC_EXPERT_DOWN], vd,
			       cu->slots.d_fault));
	EC_CUDA_LAUNCHED();
	return 0;
}

int ec_cuda_moe_grouped(struct ec_cuda *cu, float *y, const float *x,
			uint32_t n, uint32_t layer, uint32_t k,
			const int32_t *ids, const float *weights,
			const struct ec_expert_source *src)
{
	struct ec_vram_slots *S = &cu->slots;
	const struct ec_slot_layout *ly = &S->layout[layer];
	uint32_t E = S->n_expert, np = n * k, nu = 0, F = ly->n_ff;
	uint32_t D = ly->n_embd, u0, u1, big = 0, held = 0;
	uint32_t *cnt = NULL, *start = NULL;
	struct expert_desc *hd = NULL;
	int32_t *meta = NULL, *slot = NULL;
	size_t meta_n;
	bool miss;
	int ret;

	cnt = (uint32_t *)calloc(E, sizeof(uint32_t));
	start = (uint32_t *)calloc(E, sizeof(uint32_t));
	slot = (int32_t *)malloc(E * sizeof(int32_t));
	/* device metadata: desc[nu], tok[np], pos[np], w[np] */
	meta_n = (size_t)E * 4 + 3 * (size_t)np;
	meta = (int32_t *)malloc(meta_n * sizeof(int32_t));
	if (!cnt || !start || !slot || !meta) {
		ret = ec_cuda_errorf(-ENOMEM, "cuda backend: out of memory");
		goto out;
	}
	hd = (struct expert_desc *)meta;
	for (uint32_t p = 0; p < np; p++)
		cnt[ids[p]]++;
	for (uint32_t e = 0, s = 0; e < E; e++) {
		if (!cnt[e])
			continue;
		hd[nu].key = (int32_t)(layer * E + e);
		hd[nu].start = (int32_t)s;
		hd[nu].cnt = (int32_t)cnt[e];
		hd[nu].pad = 0;
		start[e] = s;
		s += cnt[e];
		big = cnt[e] > BATCH_ROWS && cnt[e] > big ? cnt[e] : big;
		nu++;
		cnt[e] = 0;
	}
	{
		int32_t *tok = meta + (size_t)E * 4, *pos = tok + np;
		float *w = (float *)(pos + np);

		for (uint32_t p = 0; p < np; p++) {
			uint32_t e = (uint32_t)ids[p], i = start[e] + cnt[e]++;

			tok[i] = (int32_t)(p / k);	/* sorted by expert */
			pos[p] = (int32_t)i;
			w[p] = weights[p];
		}
	}
	if ((ret = grow(&cu->d_xg, &cu->cap_xg, (size_t)np * D)) < 0 ||
	    (ret = grow(&cu->d_g, &cu->cap_g, (size_t)np * F)) < 0 ||
	    (ret = grow(&cu->d_d, &cu->cap_d, (size_t)np * D)) < 0 ||
	    (ret = grow(&cu->d_u, &cu->cap_u, (size_t)(big ? big : 1) * F)) < 0)
		goto out;
	/* the metadata rides in the index buffer as raw words */
	ret = ec_cuda_upload_idx(cu, meta, NULL, meta_n);
	if (ret < 0)
		goto out;
	{
		const struct expert_desc *dd =
			(const struct expert_desc *)cu->d_idx;
		const int32_t *d_tok = cu->d_idx + (size_t)E * 4;

		ret = ec_cuda_gather_dev(cu, cu->d_xg, x, d_tok, np, D);
		/* quantised experts: activations rounded to 8 bits in place,
		 * so the float kernels below compute what the CPU does */
		if (ret >= 0 && ec_cuda_q8_on(cu, ly->type[EC_EXPERT_GATE])) {
			float *xg = cu->d_xg;

			ret = ec_cuda_act_round(cu, ly->type[EC_EXPERT_GATE],
						&xg, xg, D, np);
		}
		for (u0 = 0; ret >= 0 && u0 < nu; u0 = u1) {
			/* as many experts as there are slots to hold them */
			for (u1 = u0; u1 < nu; u1++) {
				uint32_t e = (uint32_t)hd[u1].key - layer * E;
				int s = ec_cuda_slot_acquire(cu, layer, e, src,
							     &miss);

				if (s == -ENOSPC && u1 > u0)
					break;
				if (s < 0) {
					ret = s;
					break;
				}
				slot[u1 - u0] = s;
				held = u1 - u0 + 1;
			}
			if (ret >= 0)
				ret = ec_cuda_slots_publish(cu);
			if (ret >= 0)
				ret = run_group(cu, ly, hd, dd, u0, u1, slot);
			if (u0 == 0 && cu->route_ready_ns) {
				cu->st.sync_bubble_ns += ec_cuda_now_ns() -
							 cu->route_ready_ns;
				cu->route_ready_ns = 0;
			}
			int r2 = ec_cuda_slots_release(cu, slot, held);

			held = 0;
			if (ret >= 0)
				ret = r2;
		}
		if (ret >= 0) {
			const int32_t *d_pos = d_tok + np;
			const float *d_w = (const float *)(d_pos + np);

			EC_LAUNCH(ec_cuda_blocks((size_t)n * D, 256), 256, 0,
				  cu->stream, combine_kernel)(
				y, cu->d_d, d_pos, d_w,
							  n, k, D);
			ret = ec_cuda_fail(cudaGetLastError(), "combine_kernel",
					   __FILE__, __LINE__);
		}
	}
out:
	if (S->n_puts) {
		int r2 = ec_cuda_slots_finish(cu, src);

		if (ret >= 0)
			ret = r2;
	}
	free(cnt);
	free(start);
	free(slot);
	free(meta);
	return ret;
}
