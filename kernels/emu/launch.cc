// SPDX-License-Identifier: MIT
/*
 * Kernel launches: the configuration checks a GPU makes (with CUDA's error
 * codes), the device-pointer check of pointer arguments, then the grid is
 * run in stream order by the scheduler (sched.cc).
 */
#include <stdio.h>

#include <map>

#include "emu.h"

namespace ec_emu
{
namespace
{
/* cudaFuncAttributeMaxDynamicSharedMemorySize per kernel */
std::map<const void *, int> g_max_dyn;

const size_t default_dyn_limit = 48 * 1024;
const size_t optin_dyn_limit = 227 * 1024;	/* sm_90 */

cudaError_t check_config(dim3 grid, dim3 block, size_t smem,
			 const void *func, const char *name)
{
	uint64_t threads = (uint64_t)block.x * block.y * block.z;
	size_t limit = default_dyn_limit, stat = 0;
	auto it = g_max_dyn.find(func);

	if (!grid.x || !grid.y || !grid.z || !block.x || !block.y ||
	    !block.z)
		return cudaErrorInvalidConfiguration;
	if (block.x > 1024 || block.y > 1024 || block.z > 64 ||
	    threads > 1024)
		return cudaErrorInvalidConfiguration;
	if (grid.x > 0x7fffffffu || grid.y > 65535 || grid.z > 65535)
		return cudaErrorInvalidConfiguration;
	if (it != g_max_dyn.end())
		limit = (size_t)it->second;
	if (smem > limit)
		return cudaErrorInvalidValue;
	for (const shared_var &v : shared_vars(func))
		stat += v.size;
	/* nvcc refuses to build this ("uses too much shared data") */
	if (stat > default_dyn_limit)
		return fault(cudaErrorInvalidValue, "kernel %s: %zu bytes of "
			     "static shared memory, over 48 KiB", name, stat);
	if (stat + smem > (it != g_max_dyn.end() ? optin_dyn_limit
						  : default_dyn_limit))
		return cudaErrorInvalidValue;
	return cudaSuccess;
}
} /* namespace */

bool arg_ok(const char *name, int index, const void *p)
{
	EC_EMU_LOCKED();
	enum region_kind k;

	if (!p)
		return true;
	k = region_of(p, 0);
	if (k != REGION_NONE)
		return true;
	fprintf(stderr, "ec-emu: kernel %s: argument %d (%p) is neither "
		"device nor mapped host memory; a GPU would fault on it\n",
		name, index, p);
	return false;
}

void launch(dim3 grid, dim3 block, size_t smem, cudaStream_t stream,
	    const char *name, const void *func, std::function<void()> body,
	    bool args_ok)
{
	EC_EMU_LOCKED();
	cudaError_t e = sticky();

	if (e == cudaSuccess)
		e = check_config(grid, block, smem, func, name);
	if (e == cudaSuccess && !stream_ok(stream))
		e = cudaErrorInvalidResourceHandle;
	if (e == cudaSuccess && !args_ok)
		e = fault(cudaErrorIllegalAddress, "kernel %s: launched with "
			  "a host pointer", name);
	if (e == cudaSuccess)
		e = enqueue(stream, name, [=]() {
			return run_grid(grid, block, smem, name, func, body);
		});
	ret(e);
}
} /* namespace ec_emu */

using namespace ec_emu;

cudaError_t cudaFuncSetAttribute(const void *func,
				 enum cudaFuncAttribute attr, int value)
{
	EC_EMU_LOCKED();

	if (!func)
		return ret(cudaErrorInvalidDeviceFunction);
	if (attr == cudaFuncAttributeMaxDynamicSharedMemorySize) {
		if (value < 0 || (size_t)value > optin_dyn_limit)
			return ret(cudaErrorInvalidValue);
		g_max_dyn[func] = value;
	}
	return cudaSuccess;
}
