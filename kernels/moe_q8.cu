// SPDX-License-Identifier: MIT
/*
 * The fused decode expert kernels on 8-bit activations (moe.cu's gate_up()
 * and down() call these on quantised experts): gate and up rows of a
 * (token, expert) pair in one warp, sharing the token's activations, with
 * SiLU*mul; then down with the routing weights folded in, the warp's
 * lane groups spread over all (expert, block) pairs of the token so that
 * narrow rows (n_ff of a few blocks) still keep every lane loading.  The
 * sum over a token's experts runs in a fixed order whatever the slots, so
 * residency never changes the result.
 */
#include "gemv_q8.cuh"

#define MOE_Q8_ROWS 2	/* rows per warp (gate_up: of gate and of up) */

static __device__ __forceinline__ const uint8_t *
q8_slot_base(const struct ec_slot_entry *table, int32_t key, int *fault)
{
	struct ec_slot_entry e = table[key];

	if (!e.ready || !e.addr) {
		atomicExch(fault, 1);
		return NULL;
	}
	return (const uint8_t *)(uintptr_t)e.addr;
}

/* h (i, n_ff) = silu(gate_i . x_tok) * (up_i . x_tok), i = i0 + blockIdx.y */
template <int T, bool DIRECT>
__global__ void __launch_bounds__(EC_Q8_WARPS * 32)
	moe_gate_up_q8_kernel(float *__restrict__ h, struct ec_q8_act xa,
			      uint32_t n_ff,
			      const struct ec_slot_entry *__restrict__ table,
			      struct ec_moe_q8_pairs a, uint32_t i0,
			      uint64_t off_gate, uint64_t off_up,
			      uint64_t row_bytes, int *fault)
{
	typedef typename ec_q8t<T>::X X;
	const int R = MOE_Q8_ROWS, RR = 2 * R, G = ec_q8t<T>::G, S = 32 / G;
	const int SL = ec_q8_stage<T>::SLOTS;
	__shared__ uint4 stage[EC_Q8_WARPS][DIRECT ? 1 : RR * S * SL];
	int warp = threadIdx.x / 32, lane = threadIdx.x & 31;
	int g = lane / G, gl = lane % G;
	uint32_t i = i0 + blockIdx.y;
	uint32_t r0 = (blockIdx.x * EC_Q8_WARPS + warp) * R;
	uint32_t nb = xa.cols / ec_q8t<T>::QK, tok;
	const uint8_t *base, *row[RR], *lo[RR], *hi[RR];
	float acc[RR][1];

	if (r0 >= n_ff)
		return;
	base = q8_slot_base(table, a.key[i], fault);
	if (!base)
		return;
	tok = (uint32_t)a.tok[i];
#pragma unroll
	for (int rr = 0; rr < R; rr++) {
		uint32_t r = r0 + rr < n_ff ? r0 + rr : n_ff - 1;

		lo[rr] = base + off_gate;
		lo[R + rr] = base + off_up;
		row[rr] = lo[rr] + r * row_bytes;
		row[R + rr] = lo[R + rr] + r * row_bytes;
		hi[rr] = lo[rr] + n_ff * row_bytes;
		hi[R + rr] = lo[R + rr] + n_ff * row_bytes;
		acc[rr][0] = acc[R + rr][0] = 0.0f;
	}
	for (uint32_t b0 = 0; b0 < nb; b0 += S) {
		uint32_t b = b0 + g;
		bool active = b < nb;
		const uint8_t *blk[RR];
		X x[1];

		if (active)
			ec_q8_xload<T>(&x[0], xa, tok, b, gl);
#pragma unroll
		for (int rr = 0; rr < RR; rr++)
			blk[rr] = row[rr] + (active ? b : 0) * ec_q8t<T>::BSZ;
		ec_q8_step<T, RR, 1, DIRECT>(stage[warp], lane, active, blk, lo,
					     hi, x, 1, 1.0f, acc);
	}
#pragma unroll
	for (int rr = 0; rr < R; rr++) {
		float gv = ec_warp_sum(acc[rr][0]);
		float uv = ec_warp_sum(acc[R + rr][0]);

		if (lane == 0 && r0 + rr < n_ff)
			h[(size_t)i * n_ff + r0 + rr] =
				gv / (1.0f + expf(-gv)) * uv;
	}
}

/*
 * y (t, n_embd) = sum_j w[t k + j] * down_j . h_j, t = blockIdx.y: unit u
 * of the token is block u % nb of expert j = u / nb, taken by lane group
 * u % (32 / G) of step u / (32 / G); each lane adds the routing weight
 * times its share, and the warp sums the lanes at the end.
 */
template <int T, bool DIRECT>
__global__ void __launch_bounds__(EC_Q8_WARPS * 32)
	moe_down_q8_kernel(float *__restrict__ y, struct ec_q8_act ha,
			   uint32_t n_embd, uint32_t k,
			   const struct ec_slot_entry *__restrict__ table,
			   struct ec_moe_q8_pairs a, uint64_t off_down,
			   uint64_t row_bytes, int *fault)
{
	typedef typename ec_q8t<T>::X X;
	const int R = MOE_Q8_ROWS, G = ec_q8t<T>::G, S = 32 / G;
	const int SL = ec_q8_stage<T>::SLOTS;
	__shared__ uint4 stage[EC_Q8_WARPS][DIRECT ? 1 : R * S * SL];
	int warp = threadIdx.x / 32, lane = threadIdx.x & 31;
	int g = lane / G, gl = lane % G;
	uint32_t t = blockIdx.y;
	uint32_t r0 = (blockIdx.x * EC_Q8_WARPS + warp) * R;
	uint32_t nb = ha.cols / ec_q8t<T>::QK, units = k * nb;
	float acc[R][1];

	if (r0 >= n_embd)
		return;
#pragma unroll
	for (int rr = 0; rr < R; rr++)
		acc[rr][0] = 0.0f;
	for (uint32_t u0 = 0; u0 < units; u0 += S) {
		uint32_t u = u0 + g, j = u / nb, b = u % nb;
		uint32_t p = t * k + j, i = 0;
		const uint8_t *base = NULL, *blk[R], *lo[R], *hi[R];
		bool active = u < units;
		float wt = 0.0f;
		X x[1];

		if (active) {
			i = (uint32_t)a.hrow[p];
			base = q8_slot_base(table, a.key[i], fault);
			active = base != NULL;
		}
		if (active) {
			wt = a.w[p];
			ec_q8_xload<T>(&x[0], ha, i, b, gl);
			base += off_down;
		}
#pragma unroll
		for (int rr = 0; rr < R; rr++) {
			uint32_t r = r0 + rr < n_embd ? r0 + rr : n_embd - 1;

			lo[rr] = base;
			hi[rr] = active ? base + n_embd * row_bytes : base;
			blk[rr] = active ? base + r * row_bytes +
						   b * ec_q8t<T>::BSZ
					 : base;
		}
		ec_q8_step<T, R, 1, DIRECT>(stage[warp], lane, active, blk, lo,
					    hi, x, 1, wt, acc);
	}
#pragma unroll
	for (int rr = 0; rr < R; rr++) {
		float v = ec_warp_sum(acc[rr][0]);

		if (lane == 0 && r0 + rr < n_embd)
			y[(size_t)t * n_embd + r0 + rr] = v;
	}
}

/* Q4_K parts are read with 16-byte loads when every block is aligned */
static bool q4k_direct(const struct ec_cuda *cu, enum ec_dtype type,
		       uint64_t off, uint64_t row_bytes)
{
	return type == EC_Q4_K &&
	       !(((uintptr_t)cu->slots.base | cu->slots.slot_bytes | off |
		  row_bytes) & 15);
}

template <int T>
static void launch_gate_up(struct ec_cuda *cu, dim3 grid, bool direct,
			   float *h, const struct ec_q8_act &xa, uint32_t n_ff,
			   const struct ec_moe_q8_pairs *a, uint32_t i0,
			   uint64_t og, uint64_t ou, uint64_t rb)
{
	if constexpr (T == EC_Q4_K) {
		if (direct) {
			EC_LAUNCH(grid, EC_Q8_WARPS * 32, 0, cu->stream,
				  moe_gate_up_q8_kernel<T, true>)(
				h, xa, n_ff, cu->slots.d_table, *a, i0, og, ou,
				rb, cu->slots.d_fault);
			return;
		}
	}
	EC_LAUNCH(grid, EC_Q8_WARPS * 32, 0, cu->stream,
		  moe_gate_up_q8_kernel<T, false>)(
		h, xa, n_ff, cu->slots.d_table, *a, i0, og, ou, rb,
		cu->slots.d_fault);
}

template <int T>
static void launch_down(struct ec_cuda *cu, dim3 grid, bool direct,
			float *y, const struct ec_q8_act &ha, uint32_t n_embd,
			uint32_t k, const struct ec_moe_q8_pairs *a,
			uint64_t od, uint64_t rb)
{
	if constexpr (T == EC_Q4_K) {
		if (direct) {
			EC_LAUNCH(grid, EC_Q8_WARPS * 32, 0, cu->stream,
				  moe_down_q8_kernel<T, true>)(
				y, ha, n_embd, k, cu->slots.d_table, *a, od,
				rb, cu->slots.d_fault);
			return;
		}
	}
	EC_LAUNCH(grid, EC_Q8_WARPS * 32, 0, cu->stream,
		  moe_down_q8_kernel<T, false>)(
		y, ha, n_embd, k, cu->slots.d_table, *a, od, rb,
		cu->slots.d_fault);
}

int ec_cuda_moe_gate_up_q8(struct ec_cuda *cu, const struct ec_slot_layout *ly,
			   const struct ec_moe_q8_pairs *a, uint32_t i0,
			   uint32_t np, const float *x, float *h)
{
	enum ec_dtype type = ly->type[EC_EXPERT_GATE];
	uint64_t rb = ly->row_bytes[EC_EXPERT_GATE];
	uint64_t og = ly->off[EC_EXPERT_GATE], ou = ly->off[EC_EXPERT_UP];
	dim3 grid(ec_cuda_blocks(ly->n_ff, EC_Q8_WARPS * MOE_Q8_ROWS), np);
	struct ec_q8_act xa;
	uint32_t n_tok = 0;
	bool direct = q4k_direct(cu, type, og, rb) && q4k_direct(cu, type, ou,
								 rb);
	int ret;

	if (!np)
		return 0;
	for (uint32_t i = i0; i < i0 + np; i++)
		if ((uint32_t)a->tok[i] + 1 > n_tok)
			n_tok = (uint32_t)a->tok[i] + 1;
	/* every call quantises x again: the calls of one step may be
	 * interleaved with other users of the activation buffer */
	ret = ec_cuda_act_quant(cu, type, x, ly->n_embd, n_tok, &xa);
	if (ret < 0)
		return ret;
	EC_Q8_TYPE_SWITCH(type, T,
			  launch_gate_up<T>(cu, grid, direct, h, xa, ly->n_ff,
					    a, i0, og, ou, rb));
	EC_CUDA_LAUNCHED();
	return 0;
}

int ec_cuda_moe_down_q8(struct ec_cuda *cu, const struct ec_slot_layout *ly,
			const struct ec_moe_q8_pairs *a, uint32_t n,
			uint32_t k, const float *h, float *y)
{
	enum ec_dtype type = ly->type[EC_EXPERT_DOWN];
	uint64_t rb = ly->row_bytes[EC_EXPERT_DOWN];
	uint64_t od = ly->off[EC_EXPERT_DOWN];
	dim3 grid(ec_cuda_blocks(ly->n_embd, EC_Q8_WARPS * MOE_Q8_ROWS), n);
	struct ec_q8_act ha;
	uint32_t n_h = 0;
	bool direct = q4k_direct(cu, type, od, rb);
	int ret;

	if (!n)
		return 0;
	for (uint32_t p = 0; p < n * k; p++)
		if ((uint32_t)a->hrow[p] + 1 > n_h)
			n_h = (uint32_t)a->hrow[p] + 1;
	ret = ec_cuda_act_quant(cu, type, h, ly->n_ff, n_h, &ha);
	if (ret < 0)
		return ret;
	EC_Q8_TYPE_SWITCH(type, T,
			  launch_down<T>(cu, grid, direct, y, ha, ly->n_embd, k,
					 a, od, rb));
	EC_CUDA_LAUNCHED();
	return 0;
}
