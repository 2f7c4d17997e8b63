/* SPDX-License-Identifier: MIT */
/*
 * The compute backend interface: a table of function pointers, one
 * implementation per device (CPU always; CUDA when built and a device is
 * present).  The forward pass (forward.c) is written only against this table.
 *
 * Activations are float32 buffers owned by the backend (ec_backend_alloc);
 * on the CPU they are host memory, on CUDA device memory.  Shapes are given
 * in comments as (rows, cols), row-major, rows = tokens unless said otherwise.
 * Weights are struct ec_tensor views in their stored type; the backend
 * computes straight from that type (no up-front dequantisation).
 *
 * Every op is synchronous from the caller's point of view unless the backend
 * documents a stream model; `sync` waits for outstanding work.
 */
#ifndef EC_BACKEND_H
#define EC_BACKEND_H

#include <stddef.h>
#include <stdint.h>

#include "ec_tensor.h"

struct ec_backend;
struct ec_expert_source;

struct ec_backend_ops {
	const char *name;

	void (*destroy)(struct ec_backend *be);

	/* Activation memory.  alloc returns NULL on failure. */
	float *(*alloc)(struct ec_backend *be, size_t n_floats);
	void (*free)(struct ec_backend *be, float *p);
	void (*to_host)(struct ec_backend *be, float *dst, const float *src,
			size_t n);
	void (*from_host)(struct ec_backend *be, float *dst, const float *src,
			  size_t n);

	/*
	 * y (n, rows) = x (n, cols) . W^T, W a 2-D tensor with ne[0] = cols,
	 * ne[1] = rows, of any supported type.  With `accumulate`, y += ...
	 * Returns 0 or -EC_EUNSUPPORTED for a type it cannot compute.
	 */
	int (*matmul)(struct ec_backend *be, float *y, const struct ec_tensor *w,
		      const float *x, uint32_t n, int accumulate);

	/* y (n, dim) = rmsnorm(x) * w; w an F32/F16/BF16 vector [dim]. */
	void (*rmsnorm)(struct ec_backend *be, float *y, const float *x,
			const struct ec_tensor *w, uint32_t n, uint32_t dim,
			float eps);

	/* x (n, dim) += b; b a vector [dim] of a plain type. */
	void (*add_bias)(struct ec_backend *be, float *x,
			 const struct ec_tensor *b, uint32_t n, uint32_t dim);

	/*
	 * Rotary embedding in place on x (n, n_heads * head_dim) for token i
	 * at position pos[i]; style per enum ec_rope_style (model.h).
	 */
	void (*rope)(struct ec_backend *be, float *x, const int32_t *pos,
		     uint32_t n, uint32_t n_heads, uint32_t head_dim,
		     float theta, int style);

	/*
	 * Causal GQA attention for n new tokens at positions pos0..pos0+n-1.
	 * q (n, n_head*head_dim); k_cache/v_cache (n_ctx, n_head_kv*head_dim)
	 * already hold positions 0..pos0+n-1.  out (n, n_head*head_dim).
	 */
	void (*attention)(struct ec_backend *be, float *out, const float *q,
			  const float *k_cache, const float *v_cache,
			  uint32_t pos0, uint32_t n, uint32_t n_head,
			  uint32_t n_head_kv, uint32_t head_dim);

	/* g (n, dim) = silu(g) * u */
	void (*silu_mul)(struct ec_backend *be, float *g, const float *u,
			 uint32_t n, uint32_t dim);

	/* y (n, dim) += scale[i] * x(i, :) (scale NULL = 1) */
	void (*add_scaled)(struct ec_backend *be, float *y, const float *x,
			   const float *scale, uint32_t n, uint32_t dim);

	/*
	 * Row movement for embeddings and expert dispatch.
	 * get_rows:   dst (n, ne[0]) = dequantised rows ids[i] of table t.
	 * gather:     dst (n, dim) = src[idx[i], :].
	 * scatter_add: y[idx[i], :] += scale[i] * x (i, :)   (scale NULL = 1).
	 * Indices and scales here and in add_scaled are host arrays.
	 * Indices are host arrays; the CPU backend uses them directly.
	 */
	int (*get_rows)(struct ec_backend *be, float *dst,
			const struct ec_tensor *t, const int32_t *ids,
			uint32_t n);
	void (*gather)(struct ec_backend *be, float *dst, const float *src,
		       const int32_t *idx, uint32_t n, uint32_t dim);
	void (*scatter_add)(struct ec_backend *be, float *y, const float *x,
			    const int32_t *idx, const float *scale, uint32_t n,
			    uint32_t dim);

	/* Wait until all submitted work has finished. */
	void (*sync)(struct ec_backend *be);

	/*
	 * Optional slots (NULL when a backend does not provide them, and
	 * forward.c then uses the ops above; the CPU backend provides
	 * moe_ffn, not route).
	 *
	 * route: for each of n tokens, softmax over logits (n, n_expert) (a
	 * backend buffer), the k largest (ties to the lower index), weights
	 * renormalised to sum 1 when `norm` -- ec_route_topk's contract --
	 * into the host arrays ids (n, k) and weights (n, k).  mask: NULL, or
	 * a host array [n_expert] whose zero entries may not be selected
	 * (the softmax still spans every expert); the hook for a runtime
	 * controller that restricts routing to resident experts.
	 */
	int (*route)(struct ec_backend *be, const float *logits, uint32_t n,
		     uint32_t n_expert, uint32_t k, int norm,
		     const uint8_t *mask, int32_t *ids, float *weights);

	/*
	 * moe_ffn: the routed-expert mixture of one layer in one call,
	 * overwriting y (n, n_embd) with sum_j weights[t*k+j] *
	 * down(silu(gate x) * up x) over the experts e = ids[t*k+j] of layer
	 * `layer` (x (n, n_embd); ids, weights host arrays (n, k)).  The
	 * backend fetches the weights of experts it does not hold itself
	 * through src (get before it reads the host copy, put after).  A
	 * backend that copies asynchronously may put a host copy back at a
	 * later call, once its copy has completed, and at the latest in
	 * `sync`; it keeps src's put and priv, not the src pointer.
	 */
	int (*moe_ffn)(struct ec_backend *be, float *y, const float *x,
		       uint32_t n, uint32_t layer, uint32_t n_expert,
		       uint32_t k, const int32_t *ids, const float *weights,
		       const struct ec_expert_source *src);

	/*
	 * Expert prefetch into the backend's own expert memory (an optional
	 * pair; NULL on the CPU, which keeps its path bit for bit).
	 *
	 * prefetch_depth: how many layers ahead the backend wants
	 * predictions, 0 = none (the CUDA backend: 1 by default when not
	 * every expert fits in its VRAM budget).
	 *
	 * prefetch: logits (n, n_expert), a backend buffer, are the router
	 * logits of the coming layer `layer` evaluated on the current hidden
	 * state.  The backend picks each token's `width` best experts on the
	 * device (softmax order, ties to the lower index) and starts copying
	 * those it does not hold while the current layer computes, without
	 * blocking the caller or the compute: the picks reach the host with
	 * the synchronisation of the next `route` call (no wait of their
	 * own), and the next `moe_ffn` (of a layer before `layer`) issues
	 * the copies after its own misses, through its src, skipping experts
	 * whose host copy src->resident says would need I/O.  Only a hint:
	 * results never change, and the backend may drop it.
	 */
	uint32_t (*prefetch_depth)(struct ec_backend *be);
	int (*prefetch)(struct ec_backend *be, uint32_t layer,
			const float *logits, uint32_t n, uint32_t n_expert,
			uint32_t width);
};

struct ec_backend {
	const struct ec_backend_ops *ops;
	void *priv;
};

/*
 * CPU backend with `n_threads` worker threads (0 = number of online CPUs).
 * Picks AVX-512, AVX2+FMA or portable kernels at run time (override with the
 * environment variable EC_CPU_ISA=avx512|avx2|generic).
 */
int ec_backend_cpu_create(uint32_t n_threads, struct ec_backend **out);

/* Which kernel set the CPU backend selected ("avx512", "avx2", "generic"). */
const char *ec_backend_cpu_isa(const struct ec_backend *be);

#endif
