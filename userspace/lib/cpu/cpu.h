/* SPDX-License-Identifier: MIT */
/* Internal interfaces of the CPU backend: kernel sets and the thread pool. */
#ifndef EC_CPU_H
#define EC_CPU_H

#include <stddef.h>
#include <stdint.h>

#include "ec_backend.h"
#include "quant.h"

/*
 * Activation rows are quantised once per matmul into one of these, so the
 * weight dot products run on integers (as llama.cpp does).
 */

/*
 * An activation row of n values (n a multiple of 32) for Q8_0 weights, as
 * arrays so a kernel can load eight blocks' scales at once:
 *   int8_t qs[n]         x ~= d[i / 32] * qs[i], |qs| <= 127
 *   float d[n / 32]
 *   int32_t bias[n / 32] -16 * sum of the block's qs: eight lanes of it
 *                        cancel the +128 of unsigned-offset (VNNI) dots
 */
static inline size_t ec_cpu_q8_row_bytes(uint32_t n)
{
	return n + (size_t)n / EC_QK8_0 * (sizeof(float) + sizeof(int32_t));
}

static inline const float *ec_cpu_q8_d(const void *row, uint32_t n)
{
	return (const float *)((const int8_t *)row + n);
}

static inline const int32_t *ec_cpu_q8_bias(const void *row, uint32_t n)
{
	return (const int32_t *)(ec_cpu_q8_d(row, n) + n / EC_QK8_0);
}

/* 256 activations for K-quant weights, with sums of each 16 (ggml Q8_K) */
struct ec_cpu_q8k_block {
	float d;
	int8_t qs[EC_QK_K];
	int16_t bsums[EC_QK_K / 16];
};

/*
 * One kernel set per ISA.  Dots take `n` elements (a multiple of the weight
 * block size) of one weight row `w` in its stored type and of one activation
 * row `x` in the matching activation format (f32 for plain types).
 */
typedef float (*ec_cpu_dot_fn)(uint32_t n, const void *w, const void *x);

struct ec_cpu_kernels {
	const char *name;
	ec_cpu_dot_fn dot_f32;
	ec_cpu_dot_fn dot_f16;
	ec_cpu_dot_fn dot_bf16;
	ec_cpu_dot_fn dot_q8_0; /* x: a Q8 row (ec_cpu_q8_row_bytes) */
	ec_cpu_dot_fn dot_q4_k; /* x: struct ec_cpu_q8k_block[n/256] */
	ec_cpu_dot_fn dot_q6_k;
	/* out[r] = dot(x, rows + r * stride), r < n_rows; n values each */
	void (*dot_rows_f32)(uint32_t n, const float *x, const float *rows,
			     size_t stride, uint32_t n_rows, float *out);
	/* y[i] += sum_r a[r] * rows[r * stride + i], i < n */
	void (*axpy_rows_f32)(uint32_t n, const float *a, const float *rows,
			      size_t stride, uint32_t n_rows, float *y);
	/* x[j] = exp(x[j] - m) (within 2 ulp of expf), returns the sum */
	float (*exp_sum_f32)(uint32_t n, float *x, float m);
};

/*
 * Activation quantisation is shared by every ISA and rounds to nearest even,
 * so all kernel sets see the same integers.
 */
void ec_cpu_quantize_q8(uint32_t n, const float *x, void *row);
void ec_cpu_quantize_q8k(uint32_t n, const float *x,
			 struct ec_cpu_q8k_block *y);

/* The activation format a weight type's dot kernel takes */
enum ec_cpu_act {
	EC_CPU_ACT_F32, /* float32 row as is */
	EC_CPU_ACT_Q8,	/* ec_cpu_quantize_q8 (Q8_0 weights) */
	EC_CPU_ACT_Q8K, /* ec_cpu_quantize_q8k (Q4_K, Q6_K weights) */
	EC_CPU_ACT_N,
};

/*
 * The dot kernel of set `k` for weights of `type` and the activation format
 * it takes (enum ec_cpu_act), or -EC_EUNSUPPORTED (no message recorded).
 */
int ec_cpu_dot_of(const struct ec_cpu_kernels *k, uint32_t type,
		  ec_cpu_dot_fn *dot);

/* Bytes of one activation row of n values in format `act` */
size_t ec_cpu_act_row_bytes(int act, uint32_t n);

/* Row x (n) into format `act` at dst (a copy for EC_CPU_ACT_F32) */
void ec_cpu_quantize_act(int act, uint32_t n, const float *x, void *dst);

extern const struct ec_cpu_kernels ec_cpu_kernels_generic;
extern const struct ec_cpu_kernels ec_cpu_kernels_avx2;
/* Filled by ec_cpu_kernels_avx512_init (VNNI variants chosen at run time) */
extern struct ec_cpu_kernels ec_cpu_kernels_avx512;
void ec_cpu_kernels_avx512_init(int have_vnni);

/*
 * The kernel set for `isa` ("avx512", "avx2", "generic"; NULL = the best
 * this CPU runs, or $EC_CPU_ISA).  Returns -EC_EUNSUPPORTED when the CPU
 * lacks the instructions the named set needs.
 */
int ec_cpu_kernels_select(const char *isa, const struct ec_cpu_kernels **out);

/* Whether this CPU can run the named kernel set. */
int ec_cpu_isa_supported(const char *isa);

/*
 * Persistent worker pool running parallel loops: ec_cpu_pool_for calls
 * fn(arg, i) once for each i in [0, n_items), on the caller and whichever
 * workers join, items taken in order from a shared counter, and returns
 * when all have run.  One caller at a time.
 */
struct ec_cpu_pool;
typedef void (*ec_cpu_item_fn)(void *arg, uint32_t item);

int ec_cpu_pool_create(uint32_t n_threads, struct ec_cpu_pool **out);
void ec_cpu_pool_destroy(struct ec_cpu_pool *pool);
uint32_t ec_cpu_pool_size(const struct ec_cpu_pool *pool);
void ec_cpu_pool_for(struct ec_cpu_pool *pool, uint32_t n_items,
		     ec_cpu_item_fn fn, void *arg);

/* Largest head_dim rope and attention accept. */
#define EC_CPU_MAX_HEAD_DIM 1024

/* The backend's private state. */
struct ec_cpu {
	struct ec_cpu_pool *pool;
	uint32_t n_threads;
	const struct ec_cpu_kernels *k;
	void *qbuf; /* quantised activations of the current matmul */
	size_t qbuf_size;
	struct ec_cpu_moe *moe; /* moe_ffn scratch (moe_cpu.c) */
	/* rope: cached inverse frequencies for (theta, head_dim) */
	float inv_freq[EC_CPU_MAX_HEAD_DIM / 2];
	float rope_theta;
	uint32_t rope_dim;
};

/* The ops, split by job across files. */
int ec_cpu_matmul(struct ec_cpu *cpu, float *y, const struct ec_tensor *w,
		  const float *x, uint32_t n, int accumulate);
void ec_cpu_rmsnorm(struct ec_cpu *cpu, float *y, const float *x,
		    const struct ec_tensor *w, uint32_t n, uint32_t dim,
		    float eps);
void ec_cpu_add_bias(struct ec_cpu *cpu, float *x, const struct ec_tensor *b,
		     uint32_t n, uint32_t dim);
void ec_cpu_rope(struct ec_cpu *cpu, float *x, const int32_t *pos, uint32_t n,
		 uint32_t n_heads, uint32_t head_dim, float theta, int style);
void ec_cpu_attention(struct ec_cpu *cpu, float *out, const float *q,
		      const float *k_cache, const float *v_cache, uint32_t pos0,
		      uint32_t n, uint32_t n_head, uint32_t n_head_kv,
		      uint32_t head_dim);
void ec_cpu_silu_mul(struct ec_cpu *cpu, float *g, const float *u, uint32_t n,
		     uint32_t dim);
void ec_cpu_add_scaled(struct ec_cpu *cpu, float *y, const float *x,
		       const float *scale, uint32_t n, uint32_t dim);
int ec_cpu_moe_ffn(struct ec_cpu *cpu, float *y, const float *x, uint32_t n,
		   uint32_t layer, uint32_t n_expert, uint32_t k,
		   const int32_t *ids, const float *weights,
		   const struct ec_expert_source *src);
void ec_cpu_moe_free(struct ec_cpu_moe *moe);

/*
 * CPU backend with an explicit kernel set (for tests and benchmarks):
 * isa as for ec_cpu_kernels_select.
 */
int ec_backend_cpu_create_isa(uint32_t n_threads, const char *isa,
			      struct ec_backend **out);

#endif
