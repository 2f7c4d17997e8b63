/* SPDX-License-Identifier: MIT */
/*
 * The CUDA backend and the choice between it and the CPU backend.
 *
 * The CUDA code lives in a shared object, libexpertcache_cuda.so (built
 * from kernels/ when nvcc exists), that the core library dlopen()s on
 * demand, so the engine starts and runs on machines without CUDA libraries,
 * driver or device.  Search order for the object: $EC_CUDA_LIB, the
 * executable's directory, its parent directory, then the dynamic linker's
 * path.
 *
 * Expert weights live in VRAM only in fixed-size slots (one expert's gate,
 * up and down each) within vram_budget; the rest of the model is uploaded
 * once on first use.  Misses are copied from host memory (the storage
 * cache's slots or the model mapping) on a copy stream while the resident
 * experts already run; with VRAM prefetch the experts the next layers'
 * routers predict are copied while the current layer computes.
 */
#ifndef EC_BACKEND_CUDA_H
#define EC_BACKEND_CUDA_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "ec_backend.h"

struct ec_model;

struct ec_backend_cuda_params {
	int device;			/* CUDA device ordinal */
	/*
	 * Bytes of VRAM for expert slots; 0 = every expert if they fit,
	 * else what is free after the rest of the model and a reserve.
	 * Must hold at least n_expert_used slots.
	 */
	uint64_t vram_budget;
	/* The model the backend will run: sizes the slots and key space. */
	const struct ec_model *model;
	/* Slot replacement policy by name ("lru" when NULL; ec_policy.h) */
	const char *policy;
	/*
	 * Do not page-lock the model's file mappings nor the expert
	 * source's host regions (the storage cache's host tier) with
	 * cudaHostRegister: misses are then copied from pageable memory,
	 * more slowly.  The mappings are registered only when they fit in
	 * half of RAM; the host tier (already in RAM) always.
	 */
	bool no_host_register;
	/*
	 * VRAM prefetch: how many layers ahead the forward pass predicts
	 * experts (the next layers' routers on the current hidden state)
	 * for the backend to copy in while the current layer computes.
	 * 0 = automatic: 1 when not every expert fits in the budget, else
	 * off; < 0 = off; at most EC_CUDA_PREFETCH_MAX_DEPTH.
	 */
	int32_t vram_prefetch;
	/*
	 * Multiply quantised weights (Q8_0, Q4_K, Q6_K) by the f32
	 * activations exactly, as before, instead of the default: the
	 * activations rounded to 8 bits per block exactly as the CPU
	 * backend does (as llama.cpp does) and integer dot products.
	 * $EC_CUDA_EXACT=1 sets it too.
	 */
	bool exact_f32_act;
};

#define EC_CUDA_PREFETCH_MAX_DEPTH 4

/*
 * Load the CUDA backend.  Errors, each with a message: -ENOENT the shared
 * object is not there (not built), -ENODEV no driver (message "no NVIDIA
 * driver found") or no device, -ENOMEM not enough VRAM, others from CUDA.
 */
int ec_backend_cuda_create(const struct ec_backend_cuda_params *p,
			   struct ec_backend **out);

/* Non-zero when `be` is a CUDA backend. */
int ec_backend_is_cuda(const struct ec_backend *be);

struct ec_cuda_stats {
	char device[96];		/* "NVIDIA H100 80GB HBM3 (sm_90)" */
	int driver_version;		/* cudaDriverGetVersion, e.g. 13000 */
	uint64_t vram_budget;		/* bytes given to expert slots */
	uint64_t slot_bytes;
	uint32_t n_slots;
	uint32_t n_resident;		/* slots holding an expert now */
	uint64_t expert_hits;		/* (layer, expert) uses found in VRAM */
	uint64_t expert_misses;		/* uses that needed a copy */
	uint64_t evictions;
	uint64_t h2d_bytes;		/* expert bytes copied to VRAM */
	uint64_t h2d_pageable;		/* of those, copies from pageable memory */
	uint64_t weight_bytes;		/* non-expert weights resident */
	uint64_t route_calls;		/* route() calls (one per layer step) */
	uint64_t route_wait_ns;		/* host blocked waiting for routing */
	/*
	 * GPU idle for routing decisions: from the routing result reaching
	 * the host to the first expert kernel of that layer being launched.
	 */
	uint64_t sync_bubble_ns;
	uint64_t miss_wait_ns;		/* host blocked on expert fetches:
					 * get_wait_ns + copy_wait_ns */
	uint64_t moe_host_ns;		/* host time inside moe_ffn */
	/* copies */
	uint64_t h2d_copies;		/* cudaMemcpyAsync calls for experts:
					 * one per expert when its host parts
					 * sit as in a slot (layout files),
					 * else one per part */
	uint64_t get_wait_ns;		/* host inside src->get */
	uint64_t copy_wait_ns;		/* host blocked on copy completion
					 * (host copies are put back lazily:
					 * only when too many are pending,
					 * and in sync) */
	uint32_t puts_pending;		/* host copies not yet put back */
	/* VRAM prefetch (see ec_backend_ops.prefetch) */
	uint32_t prefetch_depth;	/* layers ahead, 0 = off */
	uint64_t prefetch_issued;	/* experts copied ahead of their use */
	uint64_t prefetch_used;		/* used by their layer, not evicted */
	uint64_t prefetch_wasted;	/* evicted without being used */
	uint32_t prefetch_pending;	/* prefetched, neither used nor evicted
					 * yet: issued = used + wasted +
					 * pending (a reset keeps that) */
	uint64_t prefetch_bytes;
	uint64_t prefetch_skipped;	/* picks not copied: host copy not
					 * resident, no slot, or dropped */
	uint64_t prefetch_late;		/* used while its copy was not known
					 * complete at the start of the call
					 * (the compute may have waited) */
	uint64_t loading_hits;		/* demand uses that found their
					 * expert LOADING (copy issued, not
					 * yet waited on): waited on its
					 * event, no second copy */
	/*
	 * The expert source's host memory (the storage cache's host tier,
	 * ec_expert_source.host_regions) page-locked for DMA now; state,
	 * not counters (a reset keeps them).  Regions not registered
	 * (refused by CUDA, or no_host_register) are copied from as
	 * pageable memory, counted in h2d_pageable.
	 */
	uint64_t host_tier_bytes;	/* bytes registered */
	uint32_t host_tier_regions;	/* regions registered */
	uint32_t host_tier_refused;	/* regions not registered */
	char host_tier_refusal[160];	/* why the last was not, else "" */
	uint32_t host_tier_registrations; /* cudaHostRegister calls that
					   * succeeded since creation: one
					   * per region of each new source */
};

/* Counters since creation (or the last reset). */
int ec_backend_cuda_get_stats(struct ec_backend *be,
			      struct ec_cuda_stats *out);
void ec_backend_cuda_reset_stats(struct ec_backend *be);

/*
 * The device's copy bandwidths over `bytes`-sized buffers, GB/s (1e9):
 * device to device counting bytes read and written, and pinned host to
 * device.  For benchmarks to state kernel bandwidth as a fraction of it.
 */
int ec_backend_cuda_measure_copy(struct ec_backend *be, uint64_t bytes,
				 double *d2d_gbps, double *h2d_gbps);

/* ------------------------------------------------------------------ */
/* Picking a backend (expertcache run/logits --backend).               */

enum ec_backend_kind {
	EC_BACKEND_AUTO,	/* CUDA when usable, else the CPU */
	EC_BACKEND_CPU,
	EC_BACKEND_CUDA,	/* CUDA; the CPU only when no driver/device */
};

/* "auto", "cpu", "cuda"; -EC_EINVAL with a message otherwise. */
int ec_backend_kind_parse(const char *s, enum ec_backend_kind *out);

/*
 * Open the backend of `kind`.  When CUDA was asked for (auto or cuda) but
 * there is no driver or no device, opens the CPU backend instead and puts
 * a one-line explanation in note ("no NVIDIA driver found; using the CPU
 * backend"); the caller prints it.  auto also falls back silently when the
 * CUDA backend was not built, and with a note on any other CUDA error.
 * note is "" when there is nothing to say.
 */
int ec_backend_open(enum ec_backend_kind kind, uint32_t n_threads,
		    const struct ec_backend_cuda_params *cp,
		    struct ec_backend **out, char *note, size_t note_len);

#endif
