/* SPDX-License-Identifier: MIT */
/*
 * Shared by every .cu file in kernels/: the backend's private state, the error
 * macros (they return an error naming the call, file and line; nothing here
 * aborts) and the internal entry points each .cu provides.
 */
#ifndef EC_KERNELS_COMMON_CUH
#define EC_KERNELS_COMMON_CUH

#include <cublas_v2.h>
#include <cuda_runtime.h>
#include <stdint.h>
#include <time.h>

extern "C" {
#include "cuda/cuda_plugin.h"
#include "ec_error.h"
#include "ec_infer.h"
#include "ec_model.h"
#include "ec_tensor.h"
}

/* The host's ec_err, set when the backend is created. */
extern const struct ec_cuda_host *ec_cuda_host_api;

int ec_cuda_errorf(int err, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));
/* Turn a failed CUDA call into -ENOMEM / -EIO with "call: why (file:line)" */
int ec_cuda_fail(cudaError_t e, const char *call, const char *file, int line);
int ec_cublas_fail(cublasStatus_t s, const char *call, const char *file,
		   int line);

#define EC_CUDA_CHECK(call)                                                  \
	do {                                                                  \
		cudaError_t ec_e_ = (call);                                   \
		if (ec_e_ != cudaSuccess)                                     \
			return ec_cuda_fail(ec_e_, #call, __FILE__, __LINE__); \
	} while (0)

#define EC_CUBLAS_CHECK(call)                                                \
	do {                                                                  \
		cublasStatus_t ec_s_ = (call);                                \
		if (ec_s_ != CUBLAS_STATUS_SUCCESS)                           \
			return ec_cublas_fail(ec_s_, #call, __FILE__,         \
					      __LINE__);                      \
	} while (0)

/*
 * Every kernel launch is written EC_LAUNCH(grid, block, smem, stream,
 * kernel)(args...) rather than with the triple-chevron syntax, so the same
 * source also builds for the CPU emulation in kernels/emu/ (which defines
 * EC_LAUNCH itself before this header is read).
 */
#ifndef EC_LAUNCH
#define EC_LAUNCH(grid, block, smem, stream, ...)                            \
	__VA_ARGS__<<<(grid), (block), (smem), (stream)>>>
#endif

/*
 * Dynamic shared memory (the launch's smem bytes) inside a kernel:
 * EC_SHARED_DYN(float, buf); never `extern __shared__` directly, which
 * the emulation cannot provide.
 */
#ifndef EC_SHARED_DYN
#define EC_SHARED_DYN(type, name)                                            \
	extern __shared__ __align__(16) unsigned char ec_dyn_smem_[];        \
	type *name = (type *)ec_dyn_smem_
#endif

/* A kernel launch: checks the launch itself (not its completion). */
#define EC_CUDA_LAUNCHED() EC_CUDA_CHECK(cudaGetLastError())

/* Largest values the kernels accept; checked by the ops. */
#define EC_CUDA_MAX_HEAD_DIM 512
#define EC_CUDA_MAX_EXPERTS 1024
#define EC_CUDA_MAX_PAIRS 64	/* (token, expert) pairs per fused launch */
#define EC_CUDA_INLINE_IDS 64	/* index arrays passed by value up to this */

/*
 * Alignment of each part inside a VRAM slot (the kernels read parts with
 * 16-byte loads).  Equal to EC_LAYOUT_PART_ALIGN, so an expert read from a
 * layout file, its parts at these offsets, goes to VRAM in one copy.
 */
#define EC_SLOT_PART_ALIGN 64u

/* Device-side slot table entry, indexed by flat expert key. */
struct ec_slot_entry {
	uint64_t addr;		/* slot base in VRAM, 0 when absent */
	uint32_t ready;		/* 1 once the copy has completed */
	uint32_t pad;
};

/* How one layer's experts are laid out inside a slot. */
struct ec_slot_layout {
	enum ec_dtype type[EC_EXPERT_NPARTS];
	uint64_t off[EC_EXPERT_NPARTS];		/* bytes from the slot base */
	uint64_t bytes[EC_EXPERT_NPARTS];
	uint32_t n_embd, n_ff;
	uint64_t row_bytes[EC_EXPERT_NPARTS];
	bool fused;		/* gate and up share a type: fused kernels */
};

/*
 * Slot states (the design's EMPTY -> LOADING -> READY -> EMPTY).  LOADING:
 * a copy was issued on the copy stream but the compute stream has not
 * been made to wait for it (a prefetch, until its first use).  READY: the
 * compute stream waits for the copy before anything that follows, and the
 * device-table entry is queued or applied.
 */
enum ec_vslot_state {
	EC_VSLOT_EMPTY,
	EC_VSLOT_LOADING,
	EC_VSLOT_READY,
};

struct ec_vslot {
	int32_t key;		/* -1 when EMPTY */
	uint8_t state;		/* enum ec_vslot_state */
	bool used;		/* last_use has been recorded at least once */
	bool prefetched;	/* copied by a prefetch, not used since */
	uint32_t pins;		/* uses in the call being issued */
	uint64_t seq;		/* its latest copy's number */
	uint64_t round;		/* last moe_ffn call that used or predicted
				 * it: not a victim for that call's
				 * prefetches */
	cudaEvent_t ready;	/* recorded on the copy stream after the copy */
	cudaEvent_t last_use;	/* recorded on the compute stream */
};

/*
 * A host copy still held after its expert's copy was issued, put back
 * once the copy has completed.  Copies are numbered in issue order on the
 * one copy stream, so they complete in that order: once the slot's ready
 * event says copy `seq` is done, so are all before it (a later copy into
 * the same slot records the event again: later, so still safe).  The
 * source's put and priv are kept, not the caller's (possibly stack)
 * source struct.
 */
struct ec_pending_put {
	void (*put)(void *priv, uint32_t layer, uint32_t expert);
	void *priv;
	uint32_t layer, expert;
	int32_t slot;
	uint64_t seq;
};

struct ec_vram_slots {
	uint8_t *base;			/* n_slots * slot_bytes of VRAM */
	uint64_t slot_bytes;
	uint32_t n_slots, n_keys, n_layer, n_expert, n_used;
	struct ec_vslot *s;		/* [n_slots] */
	int32_t *slot_of_key;		/* [n_keys] host mirror, -1 absent */
	struct ec_slot_entry *d_table;	/* [n_keys] device */
	struct ec_slot_layout *layout;	/* [n_layer] */
	uint32_t *free_slots, n_free;
	struct ec_policy *policy;
	uint64_t tick;
	uint64_t round;			/* moe_ffn calls so far */
	/* table updates queued for the next apply (key, addr, ready) */
	struct ec_slot_entry *upd;	/* [upd_cap] */
	int32_t *upd_key;
	uint32_t n_upd;
	int32_t *upd_slot;		/* slot whose copy must land first */
	uint32_t upd_cap;
	struct ec_pending_put *puts;	/* [puts_cap], oldest first */
	uint32_t n_puts, puts_cap;
	uint64_t copy_seq;		/* copies issued */
	uint64_t done_seq;		/* copies known to have completed */
	uint32_t max_ff, max_embd;
	int *d_fault;			/* mapped: a kernel read a !ready key */
	int *h_fault;
};

/*
 * VRAM prefetch: predictions of coming layers, picked on the device into
 * mapped host memory by ec_cuda_prefetch and copied in by the next
 * moe_ffn.  At most EC_CUDA_PREFETCH_MAX_DEPTH pending, each of at most
 * EC_CUDA_PF_MAX_IDS (token, expert) picks.
 */
#define EC_CUDA_PF_MAX_IDS 256

struct ec_pf_request {
	uint32_t layer, n, width;
	const int32_t *ids;		/* (n, width) in mapped memory */
};

struct ec_prefetcher {
	uint32_t depth;			/* layers ahead, 0 = off */
	int32_t *h_ids, *dh_ids;	/* mapped [MAX_DEPTH * PF_MAX_IDS] */
	float *d_w;			/* device scratch for the weights */
	struct ec_pf_request req[EC_CUDA_PREFETCH_MAX_DEPTH];
	uint32_t n_req;
	cudaEvent_t done;		/* after the latest prediction */
};

/* Registered (page-locked) host ranges of the model mapping. */
struct ec_host_range {
	const void *p;
	uint64_t len;
};

/*
 * The expert source's host memory page-locked for CUDA (host_register.cu):
 * the regions its host_regions hook gave last (registered or not) and
 * those registered.
 */
#define EC_CUDA_MAX_HOST_REGIONS 8

struct ec_cuda_host_tier {
	bool off;			/* params.no_host_register */
	unsigned int flags;		/* cudaHostRegister flags */
	struct ec_host_region seen[EC_CUDA_MAX_HOST_REGIONS];
	uint32_t n_seen;
	struct ec_host_range reg[EC_CUDA_MAX_HOST_REGIONS];
	uint32_t n_reg;
	uint64_t bytes;			/* registered */
	uint32_t refused;		/* regions not registered */
	char why[160];			/* the last refusal */
	uint32_t registrations;		/* since creation */
};

struct ec_weight_map;

struct ec_cuda {
	int device;
	char name[96];
	int cc_major, cc_minor, driver_version;
	cudaStream_t stream;		/* compute */
	cudaStream_t copy;		/* expert H2D copies */
	cublasHandle_t blas;
	const struct ec_model *model;

	struct ec_weight_map *weights;	/* non-expert weights by host ptr */
	uint64_t weight_bytes;

	/* device scratch */
	float *scratch;			/* dequantised weights for GEMMs */
	size_t scratch_floats;
	int32_t *d_idx;			/* uploaded index arrays */
	float *d_val;			/* uploaded scales */
	size_t idx_cap;
	float *d_h;			/* (pairs, n_ff) fused expert hidden */
	float *d_g, *d_u, *d_xg, *d_d;	/* grouped prefill scratch */
	size_t cap_g, cap_u, cap_xg, cap_d;	/* floats in each */
	float *d_inv_freq;		/* (head_dim / 2) */
	float rope_theta;
	uint32_t rope_dim;
	uint8_t *d_mask;		/* (EC_CUDA_MAX_EXPERTS) */

	/* routing results land here (mapped pinned host memory) */
	int32_t *h_ids, *dh_ids;
	float *h_w, *dh_w;
	size_t route_cap;
	cudaEvent_t route_done;
	uint64_t route_ready_ns;	/* when the last routing reached us */

	struct ec_vram_slots slots;
	struct ec_prefetcher pf;
	struct ec_host_range *reg;	/* the model mappings */
	uint32_t n_reg;
	struct ec_cuda_host_tier host_tier;

	struct ec_cuda_stats st;
	int sticky;			/* first error of a void op */
	char sticky_msg[512];

	/* 8-bit activations (act_quant.cu, gemv_q8.cuh) */
	bool exact_f32_act;		/* f32 activations on quantised weights */
	void *d_act;			/* quantised activations */
	size_t act_bytes;
};

/* Remember the first error of an op that cannot return one. */
void ec_cuda_stick(struct ec_cuda *cu, int err);
/* Return (and clear) a remembered error, re-posting its message. */
int ec_cuda_unstick(struct ec_cuda *cu);

static inline uint64_t ec_cuda_now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

/* Bytes of a row of `cols` elements of `type` (0 for an unknown type). */
uint64_t ec_cuda_row_bytes(enum ec_dtype type, uint64_t cols);

/* An index or scale array small enough to pass as a kernel parameter. */
struct ec_inline_i32 {
	int32_t v[EC_CUDA_INLINE_IDS];
};
struct ec_inline_f32 {
	float v[EC_CUDA_INLINE_IDS];
};

/* weights.cu: device copy of a non-expert tensor (uploaded on first use) */
int ec_cuda_weight(struct ec_cuda *cu, const struct ec_tensor *t,
		   const void **dptr);
/* the same tensor converted to f32 (for norm weights and biases) */
int ec_cuda_weight_f32(struct ec_cuda *cu, const struct ec_tensor *t,
		       const float **dptr);
int ec_cuda_weights_create(struct ec_cuda *cu);
void ec_cuda_weights_destroy(struct ec_cuda *cu);

/* scratch.cu: grow-on-demand device buffers */
int ec_cuda_upload_idx(struct ec_cuda *cu, const int32_t *idx,
		       const float *val, size_t n);
int ec_cuda_scratch(struct ec_cuda *cu, size_t n_floats);

/* matmul.cu */
bool ec_cuda_type_ok(enum ec_dtype t);
/*
 * y (n, rows) (+)= x (n, cols) . W^T with W device memory (rows, cols) of
 * `type`, rows of row_bytes.  GEMV kernels for n <= 8, else dequantise to
 * f32 and cuBLAS.
 */
int ec_cuda_mm(struct ec_cuda *cu, float *y, enum ec_dtype type,
	       const void *w, uint64_t row_bytes, uint32_t rows, uint32_t cols,
	       const float *x, uint32_t n, int accumulate);
/* dst (rows, cols) f32 = dequantised W */
int ec_cuda_dequant(struct ec_cuda *cu, float *dst, enum ec_dtype type,
		    const void *w, uint64_t row_bytes, uint32_t rows,
		    uint32_t cols);

/* act_quant.cu: 8-bit activations or exact f32 (params, $EC_CUDA_EXACT) */
void ec_cuda_act_init(struct ec_cuda *cu,
		      const struct ec_backend_cuda_params *p);
void ec_cuda_act_free(struct ec_cuda *cu);

/* moe.cu (fused decode kernels), moe_grouped.cu (prefill) */
int ec_cuda_moe_ffn(struct ec_backend *be, float *y, const float *x,
		    uint32_t n, uint32_t layer, uint32_t n_expert, uint32_t k,
		    const int32_t *ids, const float *weights,
		    const struct ec_expert_source *src);
int ec_cuda_moe_grouped(struct ec_cuda *cu, float *y, const float *x,
			uint32_t n, uint32_t layer, uint32_t k,
			const int32_t *ids, const float *weights,
			const struct ec_expert_source *src);

/* slots.cu */
int ec_cuda_slots_create(struct ec_cuda *cu,
			 const struct ec_backend_cuda_params *p);
void ec_cuda_slots_destroy(struct ec_cuda *cu);
/*
 * Make (layer, e) resident and pin it: a hit on a READY slot, a LOADING
 * one (its table entry is queued, so the compute stream waits for its
 * copy at the next publish; no second copy), or a miss whose copy is
 * issued on the copy stream (host copy fetched through src, put back
 * lazily).  *miss: the call must publish before kernels read the expert.
 * Returns the slot or a negative error (-ENOSPC: every slot pinned).
 */
int ec_cuda_slot_acquire(struct ec_cuda *cu, uint32_t layer, uint32_t e,
			 const struct ec_expert_source *src, bool *miss);
/*
 * A slot for `key` accessed at t: a free one, or the policy's victim
 * (evicted here) among the unpinned; for a prefetch also not one this
 * call used or predicted, and -ENOSPC without a message when none is.
 */
int ec_cuda_slot_take(struct ec_cuda *cu, uint32_t key, uint64_t t,
		      bool prefetch);
/* Slot s leaves (policy, host mirror, device table, counters); the
 * caller reuses it or puts it on the free list. */
int ec_cuda_slot_evict(struct ec_cuda *cu, int32_t s);
/*
 * Fetch (layer, e) through src and issue its copy into slot s (taken):
 * bytes copied; the host copy becomes pending.  On failure the slot goes
 * back to the free list; *copy_failed tells a CUDA failure from the
 * source's or a wrong shape.
 */
int ec_cuda_slot_load(struct ec_cuda *cu, int32_t s, uint32_t layer,
		      uint32_t e, const struct ec_expert_source *src,
		      uint64_t *bytes, bool *copy_failed);
/* Make the compute stream wait for the copies the queued table entries
 * need and apply the entries. */
int ec_cuda_slots_publish(struct ec_cuda *cu);
/* Record last use of the pinned slots on the compute stream and unpin. */
int ec_cuda_slots_release(struct ec_cuda *cu, const int32_t *slots,
			  uint32_t n);
/*
 * Give back (src->put) the host copies whose copies have completed,
 * without waiting for the others (src is unused: each pending copy keeps
 * its own source's put).
 */
int ec_cuda_slots_finish(struct ec_cuda *cu,
			 const struct ec_expert_source *src);
/* Wait for every issued copy and give every host copy back. */
int ec_cuda_slots_drain(struct ec_cuda *cu);
/*
 * Issue the copies of the pending predictions of layers after `layer`
 * (nearest layer first, best pick first), into free slots or victims that
 * no use or prediction of this call claimed.  Never blocks on the GPU and
 * never fails the call: picks it cannot place are counted as skipped.
 */
int ec_cuda_slots_prefetch(struct ec_cuda *cu, uint32_t layer,
			   const struct ec_expert_source *src);
/*
 * After layer's call has placed its experts: the prefetches for `layer`
 * it did not use were mispredictions; free their slots, so that the next
 * copies land there rather than over experts that were used.
 */
int ec_cuda_slots_retire(struct ec_cuda *cu, uint32_t layer);
static inline uint8_t *ec_cuda_slot_addr(const struct ec_cuda *cu, int32_t s)
{
	return cu->slots.base + (uint64_t)s * cu->slots.slot_bytes;
}

/* host_register.cu: the expert source's host memory page-locked */
void ec_cuda_host_tier_init(struct ec_cuda *cu,
			    const struct ec_backend_cuda_params *p);
/*
 * Before an expert copy: register src's host regions when they differ
 * from those last seen (releasing the old ones first).  Never fails: a
 * refusal is noted in cu->host_tier and the copies go as pageable.
 */
void ec_cuda_host_tier_check(struct ec_cuda *cu,
			     const struct ec_expert_source *src);
/* Unregister everything (destroy, or a change of source). */
void ec_cuda_host_tier_release(struct ec_cuda *cu);
/* Does [p, p + bytes) lie in a registered host-tier region? */
bool ec_cuda_host_tier_has(const struct ec_cuda *cu, const void *p,
			   uint64_t bytes);

/* router.cu */
int ec_cuda_route(struct ec_backend *be, const float *logits, uint32_t n,
		  uint32_t n_expert, uint32_t k, int norm, const uint8_t *mask,
		  int32_t *ids, float *weights);
/* the prefetch pair of the ops table; the predictor's buffers */
uint32_t ec_cuda_prefetch_depth(struct ec_backend *be);
int ec_cuda_prefetch(struct ec_backend *be, uint32_t layer,
		     const float *logits, uint32_t n, uint32_t n_expert,
		     uint32_t width);
int ec_cuda_prefetcher_create(struct ec_cuda *cu,
			      const struct ec_backend_cuda_params *p);
void ec_cuda_prefetcher_destroy(struct ec_cuda *cu);

/* ops.cu, attention.cu: the element-wise and per-row ops */
void ec_cuda_rmsnorm(struct ec_backend *be, float *y, const float *x,
		     const struct ec_tensor *w, uint32_t n, uint32_t dim,
		     float eps);
void ec_cuda_add_bias(struct ec_backend *be, float *x,
		      const struct ec_tensor *b, uint32_t n, uint32_t dim);
void ec_cuda_rope(struct ec_backend *be, float *x, const int32_t *pos,
		  uint32_t n, uint32_t n_heads, uint32_t head_dim, float theta,
		  int style);
void ec_cuda_attention(struct ec_backend *be, float *out, const float *q,
		       const float *k_cache, const float *v_cache,
		       uint32_t pos0, uint32_t n, uint32_t n_head,
		       uint32_t n_head_kv, uint32_t head_dim);
void ec_cuda_silu_mul(struct ec_backend *be, float *g, const float *u,
		      uint32_t n, uint32_t dim);
void ec_cuda_add_scaled(struct ec_backend *be, float *y, const float *x,
			const float *scale, uint32_t n, uint32_t dim);
int ec_cuda_get_rows(struct ec_backend *be, float *dst,
		     const struct ec_tensor *t, const int32_t *ids,
		     uint32_t n);
void ec_cuda_gather(struct ec_backend *be, float *dst, const float *src,
		    const int32_t *idx, uint32_t n, uint32_t dim);
void ec_cuda_scatter_add(struct ec_backend *be, float *y, const float *x,
			 const int32_t *idx, const float *scale, uint32_t n,
			 uint32_t dim);
/* device-index variants used by the grouped expert path */
int ec_cuda_gather_dev(struct ec_cuda *cu, float *dst, const float *src,
		       const int32_t *d_idx, uint32_t n, uint32_t dim);
int ec_cuda_scatter_add_dev(struct ec_cuda *cu, float *y, const float *x,
			    const int32_t *d_idx, const float *d_scale,
			    uint32_t n, uint32_t dim);
int ec_cuda_silu_mul_dev(struct ec_cuda *cu, float *g, const float *u,
			 size_t count);

static inline struct ec_cuda *ec_cuda_of(struct ec_backend *be)
{
	return (struct ec_cuda *)be->priv;
}

static inline unsigned int ec_cuda_blocks(size_t n, unsigned int per)
{
	return (unsigned int)((n + per - 1) / per);
}

#endif
