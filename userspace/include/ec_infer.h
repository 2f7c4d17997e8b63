/* SPDX-License-Identifier: MIT */
/*
 * Inference context: KV cache, scratch activations and the forward pass of
 * an MoE decoder over a backend.  One context = one sequence.
 */
#ifndef EC_INFER_H
#define EC_INFER_H

#include <stdint.h>

#include "ec_backend.h"
#include "ec_model.h"

struct ec_ctx;

/*
 * A range of host memory an expert source hands expert bytes out of.
 * `generation` changes whenever the memory behind `base` is mapped anew
 * (a new cache may land at the address of a freed one), so a consumer
 * that page-locked a range knows to register it again.
 */
struct ec_host_region {
	void *base;
	uint64_t bytes;
	uint64_t generation;
};

/*
 * Where expert weights come from.  The default returns the model's own views
 * (file mapping); the storage engine installs its cache here.  `get` returns
 * 0 and fills *out with views whose data pointers stay valid until `put`;
 * a negative error aborts the forward pass.
 */
struct ec_expert_source {
	int (*get)(void *priv, uint32_t layer, uint32_t expert,
		   const struct ec_expert **out);
	void (*put)(void *priv, uint32_t layer, uint32_t expert);
	/*
	 * Optional.  resident: non-zero when get() would not wait for I/O
	 * (used by the `substitute` miss policy).  prefetch: a hint that the
	 * experts ids[0..n) of `layer` will probably be needed soon, best
	 * first; must not block.  Either may be NULL.
	 */
	int (*resident)(void *priv, uint32_t layer, uint32_t expert);
	void (*prefetch)(void *priv, uint32_t layer, const int32_t *ids,
			 uint32_t n);
	/*
	 * Optional.  host_regions: the host memory every view get() hands
	 * out lies in (the storage cache's host tier), for a GPU backend to
	 * page-lock (cudaHostRegister) so its copies go by DMA.  Fills up
	 * to `max` regions and returns how many there are (0: none).  They
	 * stay mapped for the source's lifetime.  The CUDA backend keeps
	 * them registered until it copies an expert from a source with
	 * other regions (or none) or is destroyed: after the source's
	 * memory is unmapped, nothing mapped anew at those addresses may be
	 * copied to that GPU before then (CUDA would read the old pages).
	 * NULL = unknown: copies from pageable memory.
	 */
	int (*host_regions)(void *priv, struct ec_host_region *out,
			    uint32_t max);
	void *priv;
};

/* What a token does when one of its experts is not resident. */
enum ec_miss_policy {
	EC_MISS_WAIT,		/* load it and wait: exact (default) */
	EC_MISS_SUBSTITUTE,	/* use the best-scoring resident expert */
};

struct ec_ctx_params {
	uint32_t n_ctx;		/* max positions (0 = min(model, 4096)) */
	uint32_t n_batch;	/* max tokens per forward chunk (0 = 64) */
	enum ec_miss_policy on_miss;
	/*
	 * Prefetch (needs an expert source with a prefetch hook): after a
	 * layer's attention, the routers of the next `prefetch_depth` layers
	 * are evaluated on the current hidden state and their top
	 * `prefetch_width` experts are prefetched.  0 = off.
	 */
	uint32_t prefetch_width;
	uint32_t prefetch_depth;
};

/* Counters kept by the forward pass. */
struct ec_ctx_counters {
	uint64_t routed;		/* (token, expert) selections */
	uint64_t substitutions;		/* selections replaced (substitute) */
	uint64_t prefetch_predicted;	/* routed experts that were predicted
					 * by the previous layers' prefetch */
	uint64_t prefetch_checked;	/* routed experts of decode steps
					 * that had a prediction */
};

/*
 * Observer of routing decisions (the trace writer): per layer, the final
 * experts (after substitution) of n tokens at positions pos0..pos0+n-1,
 * ids and weights (n, k) in selection order.
 */
typedef void (*ec_route_fn)(void *priv, uint32_t layer, uint32_t pos0,
			    uint32_t n, uint32_t k, const int32_t *ids,
			    const float *weights);

int ec_ctx_create(const struct ec_model *m, struct ec_backend *be,
		  const struct ec_ctx_params *p, struct ec_ctx **out);
void ec_ctx_free(struct ec_ctx *c);

/* Install an expert source (NULL restores the default). */
void ec_ctx_set_expert_source(struct ec_ctx *c,
			      const struct ec_expert_source *src);

/*
 * Feed n tokens at the current position (prefill when n > 1, decode when
 * n == 1), advancing it.  When `logits` is non-NULL it receives
 * (n, n_vocab) float32 logits of every token when all_logits is set, else
 * (1, n_vocab) for the last token.  Returns 0 or a negative error.
 */
int ec_ctx_eval(struct ec_ctx *c, const int32_t *tokens, uint32_t n,
		float *logits, int all_logits);

void ec_ctx_set_route_hook(struct ec_ctx *c, ec_route_fn fn, void *priv);
const struct ec_ctx_counters *ec_ctx_counters(const struct ec_ctx *c);

/* Forget the sequence (position 0). */
void ec_ctx_reset(struct ec_ctx *c);
uint32_t ec_ctx_pos(const struct ec_ctx *c);
uint32_t ec_ctx_n_ctx(const struct ec_ctx *c);
uint32_t ec_ctx_n_vocab(const struct ec_ctx *c);

/*
 * Routing counters since creation: routed[layer * n_expert + e] counts the
 * (token, expert) selections.  Pointer valid for the context's lifetime.
 */
const uint64_t *ec_ctx_routed_counts(const struct ec_ctx *c);

#endif
