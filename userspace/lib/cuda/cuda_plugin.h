/* SPDX-License-Identifier: MIT */
/*
 * The interface between the core library's loader (cuda/loader.c) and
 * libexpertcache_cuda.so.  The shared object calls nothing in the core
 * library directly: what it needs (error messages, the replacement policy)
 * comes through struct ec_cuda_host, so it has no undefined ec_ symbols and
 * reports errors into the caller's ec_error_msg().
 */
#ifndef EC_CUDA_PLUGIN_H
#define EC_CUDA_PLUGIN_H

#include <stdint.h>

#include "ec_backend_cuda.h"
#include "ec_policy.h"

#define EC_CUDA_PLUGIN_ABI 5
#define EC_CUDA_PLUGIN_SYMBOL "ec_cuda_plugin_get"
#define EC_CUDA_PLUGIN_SONAME "libexpertcache_cuda.so"

/* Why create() failed, when it is the machine rather than the request. */
enum ec_cuda_unavailable {
	EC_CUDA_AVAILABLE = 0,
	EC_CUDA_NO_DRIVER,	/* cudaErrorInsufficientDriver */
	EC_CUDA_NO_DEVICE,	/* cudaErrorNoDevice, or device out of range */
};

struct ec_cuda_host {
	uint32_t abi;
	int (*err)(int err, const char *fmt, ...)
		__attribute__((format(printf, 2, 3)));
	const char *(*error_msg)(void);
	/*
	 * A replacement policy for `capacity` VRAM slots over n_keys flat
	 * expert keys (the name comes from the params), and its destructor.
	 */
	int (*policy_create)(const char *name, uint32_t n_keys,
			     uint32_t capacity, struct ec_policy **out);
	void (*policy_free)(struct ec_policy *p);
	/* Physical memory of the host, bytes (for the register decision). */
	uint64_t host_ram;
};

/*
 * ec_cuda_plugin.flags.  EMULATED: built against the CPU emulation of
 * CUDA (kernels/emu): loaded only when $EC_CUDA_LIB names it, never found
 * by the search, and it needs no driver.
 */
#define EC_CUDA_PLUGIN_EMULATED 0x1u
#ifndef EC_CUDA_PLUGIN_FLAGS
#ifdef EC_CUDA_EMU	/* defined by the emulation's cuda_runtime_api.h */
#define EC_CUDA_PLUGIN_FLAGS EC_CUDA_PLUGIN_EMULATED
#else
#define EC_CUDA_PLUGIN_FLAGS 0u
#endif
#endif

struct ec_cuda_plugin {
	uint32_t abi;
	uint32_t flags;		/* EC_CUDA_PLUGIN_* */
	/*
	 * Create the backend on p->device.  On failure returns a negative
	 * error with a message through host->err and, when the cause is
	 * the machine, *why set.
	 */
	int (*create)(const struct ec_cuda_host *host,
		      const struct ec_backend_cuda_params *p,
		      struct ec_backend **out, enum ec_cuda_unavailable *why);
	int (*get_stats)(struct ec_backend *be, struct ec_cuda_stats *out);
	void (*reset_stats)(struct ec_backend *be);
	int (*measure_copy)(struct ec_backend *be, uint64_t bytes,
			    double *d2d_gbps, double *h2d_gbps);
};

typedef const struct ec_cuda_plugin *ec_cuda_plugin_get_fn(void);

#endif
