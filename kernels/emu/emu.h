/* SPDX-License-Identifier: MIT */
/*
 * Internal interfaces of the CUDA emulation, shared by its .cc files: the
 * one lock, errors (last and sticky), stream work, memory regions and the
 * kernel scheduler.
 */
#ifndef EC_EMU_EMU_H
#define EC_EMU_EMU_H

#include <stddef.h>
#include <stdint.h>

#include <functional>
#include <mutex>
#include <vector>

#include "cuda_runtime.h"

namespace ec_emu
{
/*
 * Every entry point takes this lock, so a kernel, a copy and the tables
 * never run concurrently: the emulation is one in-order device.
 */
std::recursive_mutex &big_lock();
#define EC_EMU_LOCKED()                                                       \
	std::lock_guard<std::recursive_mutex> ec_emu_guard_(                 \
		::ec_emu::big_lock())

/* Record e as this thread's last error (unless cudaSuccess); return it. */
cudaError_t ret(cudaError_t e);
/* The error every call returns once a kernel faulted (else cudaSuccess). */
cudaError_t sticky(void);
/* A kernel fault: print why on stderr and make e sticky. */
cudaError_t fault(cudaError_t e, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

/* Settings from the environment (read once). */
struct settings {
	uint64_t vram;		/* EC_EMU_VRAM, bytes */
	bool defer;		/* EC_EMU_DEFER=1: streams run lazily */
	int fill;		/* EC_EMU_FILL byte, -1 for none */
	size_t stack;		/* EC_EMU_STACK, bytes per GPU thread */
};
const struct settings &config(void);
uint64_t now_ns(void);

/* ---- streams (stream.cc) ---- */
typedef std::function<cudaError_t()> op_fn;
/*
 * Run fn in stream order: now, when the stream is next synchronised
 * (EC_EMU_DEFER=1), or into the graph being captured.
 */
cudaError_t enqueue(cudaStream_t s, const char *what, op_fn fn);
/* Is this a stream handle (0, legacy, per-thread or a live stream)? */
bool stream_ok(cudaStream_t s);
/* Does work on s run only later (so copies must snapshot their source)? */
bool stream_deferred(cudaStream_t s);
bool stream_capturing(cudaStream_t s);
/* Invalidate s's capture: it met something a graph cannot hold. */
cudaError_t capture_refuse(cudaStream_t s);
/* Complete everything queued on every stream. */
void drain_all(void);
/* Complete s's queued work (for a copy that must be synchronous). */
void drain_stream(cudaStream_t s);
/*
 * A call CUDA forbids while a stream is capturing (cudaMalloc, a
 * synchronous copy): returns the capture error and invalidates those
 * captures, else cudaSuccess.
 */
cudaError_t capture_unsafe(bool legacy_stream);

/* ---- memory (memory.cc) ---- */
enum region_kind {
	REGION_NONE,
	REGION_DEVICE,		/* cudaMalloc */
	REGION_HOST,		/* cudaHostAlloc / cudaMallocHost */
	REGION_REGISTERED,	/* cudaHostRegister */
	REGION_SYMBOL,		/* a __device__ variable */
};
/* The kind of the region holding [p, p + len), REGION_NONE if none. */
enum region_kind region_of(const void *p, size_t len);
/* cudaDeviceReset: every allocation and registration goes. */
void free_all(void);

/* ---- kernels (launch.cc, sched.cc, shared.cc) ---- */
/* Run all blocks of a launch now; cudaSuccess or the fault's error. */
cudaError_t run_grid(dim3 grid, dim3 block, size_t smem, const char *name,
		     const void *func, const std::function<void()> &body);

struct shared_var {
	void *addr;
	size_t size;
};
/* The static __shared__ arrays of the kernel at func (cached). */
const std::vector<shared_var> &shared_vars(const void *func);
} /* namespace ec_emu */

#endif
