// SPDX-License-Identifier: MIT
/*
 * Device and pinned host memory of the emulation.  "VRAM" is malloc'ed
 * (so ASan sees overflows and use after cudaFree), 256-byte aligned like
 * cudaMalloc, filled with a NaN pattern (EC_EMU_FILL) so reads of memory
 * nobody wrote show up, and bounded by EC_EMU_VRAM, which cudaMemGetInfo
 * reports.  Every allocation, pinned block and registered range is a
 * region: copies must stay inside the regions their kind names, and kernel
 * pointer arguments must point into one (launch.cc).
 */
#include <stdlib.h>
#include <string.h>

#include <map>
#include <memory>
#include <vector>

#include "emu.h"

namespace ec_emu
{
namespace
{
struct region {
	size_t size;
	enum region_kind kind;
};

/* by base address */
std::map<uintptr_t, region> g_regions;
uint64_t g_device_bytes;

/* The region containing [p, p + len) (len 0: p may be its end). */
std::map<uintptr_t, region>::iterator find(const void *p, size_t len)
{
	uintptr_t a = (uintptr_t)p;
	auto it = g_regions.upper_bound(a);

	if (it == g_regions.begin())
		return g_regions.end();
	--it;
	if (a - it->first > it->second.size ||
	    len > it->second.size - (a - it->first))
		return g_regions.end();
	return it;
}

bool overlaps(const void *p, size_t len)
{
	uintptr_t a = (uintptr_t)p;
	auto it = g_regions.lower_bound(a);

	if (it != g_regions.end() && it->first < a + len)
		return true;
	if (it == g_regions.begin())
		return false;
	--it;
	return it->first + it->second.size > a;
}

/* Device-visible memory: device, pinned or registered host, symbols. */
bool device_side(const void *p, size_t len)
{
	return find(p, len) != g_regions.end();
}

/* Host-visible memory: anything but cudaMalloc'ed memory. */
bool host_side(const void *p, size_t len)
{
	auto it = find(p, len);

	return it == g_regions.end() || it->second.kind != REGION_DEVICE;
}

/* Is a copy of this kind between these ranges valid? */
bool copy_ok(void *dst, const void *src, size_t n, enum cudaMemcpyKind kind)
{
	switch (kind) {
	case cudaMemcpyHostToHost:
		return host_side(dst, n) && host_side(src, n);
	case cudaMemcpyHostToDevice:
		return device_side(dst, n) && host_side(src, n);
	case cudaMemcpyDeviceToHost:
		return host_side(dst, n) && device_side(src, n);
	case cudaMemcpyDeviceToDevice:
		return device_side(dst, n) && device_side(src, n);
	case cudaMemcpyDefault:
		/* a pointer into a region must fit in it */
		return (region_of(dst, 0) == REGION_NONE ||
			device_side(dst, n)) &&
		       (region_of(src, 0) == REGION_NONE ||
			device_side(src, n));
	}
	return false;
}

cudaError_t host_alloc(void **p, size_t size)
{
	void *m = NULL;

	if (!p)
		return cudaErrorInvalidValue;
	*p = NULL;
	if (posix_memalign(&m, 4096, size ? size : 1))
		return cudaErrorMemoryAllocation;
	g_regions[(uintptr_t)m] = region{ size, REGION_HOST };
	*p = m;
	return cudaSuccess;
}

/*
 * The copy itself, in stream order.  Pageable host memory (no region) is
 * read when the call is made, as CUDA stages it, and a copy into it
 * returns only once done; a graph cannot hold either.
 */
cudaError_t copy_async(void *dst, const void *src, size_t n,
		       enum cudaMemcpyKind kind, cudaStream_t s)
{
	bool src_pageable = region_of(src, 0) == REGION_NONE;
	bool dst_pageable = region_of(dst, 0) == REGION_NONE;
	cudaError_t e;

	if (!copy_ok(dst, src, n, kind))
		return cudaErrorInvalidValue;
	if (!n)
		return cudaSuccess;
	if (stream_capturing(s) && (src_pageable || dst_pageable))
		return capture_refuse(s);
	if (stream_deferred(s) && src_pageable) {
		auto staged = std::make_shared<std::vector<char>>(
			(const char *)src, (const char *)src + n);

		e = enqueue(s, "cudaMemcpyAsync", [=]() {
			memcpy(dst, staged->data(), n);
			return cudaSuccess;
		});
	} else {
		e = enqueue(s, "cudaMemcpyAsync", [=]() {
			memmove(dst, src, n);
			return cudaSuccess;
		});
	}
	if (e == cudaSuccess && dst_pageable)
		drain_stream(s);
	return e;
}
} /* namespace */

void free_all(void)
{
	for (auto &r : g_regions)
		if (r.second.kind == REGION_DEVICE ||
		    r.second.kind == REGION_HOST)
			free((void *)r.first);
	g_regions.clear();
	g_device_bytes = 0;
}

enum region_kind region_of(const void *p, size_t len)
{
	auto it = find(p, len);

	return it == g_regions.end() ? REGION_NONE : it->second.kind;
}
} /* namespace ec_emu */

using namespace ec_emu;

cudaError_t cudaMalloc(void **devPtr, size_t size)
{
	EC_EMU_LOCKED();
	cudaError_t e = sticky();
	void *m = NULL;

	if (e == cudaSuccess)
		e = capture_unsafe(false);
	if (e != cudaSuccess)
		return ret(e);
	if (!devPtr)
		return ret(cudaErrorInvalidValue);
	*devPtr = NULL;
	if (!size)
		return cudaSuccess;
	if (size > config().vram - g_device_bytes ||
	    posix_memalign(&m, 256, size))
		return ret(cudaErrorMemoryAllocation);
	if (config().fill >= 0)
		memset(m, config().fill, size);
	g_regions[(uintptr_t)m] = region{ size, REGION_DEVICE };
	g_device_bytes += size;
	*devPtr = m;
	return cudaSuccess;
}

cudaError_t cudaFree(void *devPtr)
{
	EC_EMU_LOCKED();
	cudaError_t e = sticky();

	if (e == cudaSuccess)
		e = capture_unsafe(false);
	if (e != cudaSuccess || !devPtr)
		return ret(e);
	auto it = g_regions.find((uintptr_t)devPtr);

	if (it == g_regions.end() || it->second.kind != REGION_DEVICE)
		return ret(cudaErrorInvalidValue);
	drain_all();	/* cudaFree waits for the device */
	g_device_bytes -= it->second.size;
	g_regions.erase(it);
	free(devPtr);
	return cudaSuccess;
}

cudaError_t cudaMallocAsync(void **devPtr, size_t size, cudaStream_t stream)
{
	EC_EMU_LOCKED();

	if (!stream_ok(stream))
		return ret(cudaErrorInvalidResourceHandle);
	return cudaMalloc(devPtr, size);
}

cudaError_t cudaFreeAsync(void *devPtr, cudaStream_t stream)
{
	EC_EMU_LOCKED();

	if (!stream_ok(stream))
		return ret(cudaErrorInvalidResourceHandle);
	return cudaFree(devPtr);
}

cudaError_t cudaMallocHost(void **ptr, size_t size)
{
	EC_EMU_LOCKED();
	cudaError_t e = sticky();

	if (e == cudaSuccess)
		e = capture_unsafe(false);
	if (e == cudaSuccess)
		e = host_alloc(ptr, size);
	return ret(e);
}

cudaError_t cudaHostAlloc(void **pHost, size_t size, unsigned int flags)
{
	EC_EMU_LOCKED();

	if (flags & ~(unsigned int)(cudaHostAllocPortable |
				    cudaHostAllocMapped |
				    cudaHostAllocWriteCombined))
		return ret(cudaErrorInvalidValue);
	return cudaMallocHost(pHost, size);
}

cudaError_t cudaFreeHost(void *ptr)
{
	EC_EMU_LOCKED();
	cudaError_t e = sticky();

	if (e != cudaSuccess || !ptr)
		return ret(e);
	auto it = g_regions.find((uintptr_t)ptr);

	if (it == g_regions.end() || it->second.kind != REGION_HOST)
		return ret(cudaErrorInvalidValue);
	drain_all();
	g_regions.erase(it);
	free(ptr);
	return cudaSuccess;
}

cudaError_t cudaHostRegister(void *ptr, size_t size, unsigned int flags)
{
	EC_EMU_LOCKED();
	cudaError_t e = sticky();

	if (e == cudaSuccess)
		e = capture_unsafe(false);
	if (e != cudaSuccess)
		return ret(e);
	if (!ptr || !size ||
	    (flags & ~(unsigned int)(cudaHostRegisterPortable |
				     cudaHostRegisterMapped |
				     cudaHostRegisterIoMemory |
				     cudaHostRegisterReadOnly)))
		return ret(cudaErrorInvalidValue);
	if (overlaps(ptr, size))
		return ret(cudaErrorHostMemoryAlreadyRegistered);
	g_regions[(uintptr_t)ptr] = region{ size, REGION_REGISTERED };
	return cudaSuccess;
}

cudaError_t cudaHostUnregister(void *ptr)
{
	EC_EMU_LOCKED();
	cudaError_t e = sticky();

	if (e != cudaSuccess)
		return ret(e);
	auto it = g_regions.find((uintptr_t)ptr);

	if (it == g_regions.end() || it->second.kind != REGION_REGISTERED)
		return ret(cudaErrorHostMemoryNotRegistered);
	drain_all();	/* queued copies may still read it */
	g_regions.erase(it);
	return cudaSuccess;
}

cudaError_t cudaHostGetDevicePointer(void **pDevice, void *pHost,
				     unsigned int flags)
{
	EC_EMU_LOCKED();
	enum region_kind k = region_of(pHost, 0);

	if (!pDevice || flags)
		return ret(cudaErrorInvalidValue);
	if (k != REGION_HOST && k != REGION_REGISTERED)
		return ret(cudaErrorInvalidValue);
	*pDevice = pHost;	/* unified addressing */
	return cudaSuccess;
}

cudaError_t cudaPointerGetAttributes(struct cudaPointerAttributes *a,
				     const void *ptr)
{
	EC_EMU_LOCKED();

	if (!a)
		return ret(cudaErrorInvalidValue);
	memset(a, 0, sizeof(*a));
	a->hostPointer = (void *)ptr;
	switch (region_of(ptr, 0)) {
	case REGION_DEVICE:
	case REGION_SYMBOL:
		a->type = cudaMemoryTypeDevice;
		a->devicePointer = (void *)ptr;
		a->hostPointer = NULL;
		break;
	case REGION_HOST:
	case REGION_REGISTERED:
		a->type = cudaMemoryTypeHost;
		a->devicePointer = (void *)ptr;
		break;
	default:
		a->type = cudaMemoryTypeUnregistered;
		a->device = -2;
	}
	return cudaSuccess;
}

cudaError_t cudaMemGetInfo(size_t *free_b, size_t *total_b)
{
	EC_EMU_LOCKED();
	cudaError_t e = sticky();

	if (e != cudaSuccess)
		return ret(e);
	if (free_b)
		*free_b = config().vram - g_device_bytes;
	if (total_b)
		*total_b = config().vram;
	return cudaSuccess;
}

cudaError_t cudaMemcpyAsync(void *dst, const void *src, size_t count,
			    enum cudaMemcpyKind kind, cudaStream_t stream)
{
	EC_EMU_LOCKED();
	cudaError_t e = sticky();

	if (e == cudaSuccess && !stream_ok(stream))
		e = cudaErrorInvalidResourceHandle;
	if (e == cudaSuccess && (unsigned int)kind > cudaMemcpyDefault)
		e = cudaErrorInvalidMemcpyDirection;
	if (e == cudaSuccess)
		e = copy_async(dst, src, count, kind, stream);
	return ret(e);
}

cudaError_t cudaMemcpy(void *dst, const void *src, size_t count,
		       enum cudaMemcpyKind kind)
{
	EC_EMU_LOCKED();
	cudaError_t e = sticky();

	if (e == cudaSuccess)
		e = capture_unsafe(true);
	if (e == cudaSuccess && (unsigned int)kind > cudaMemcpyDefault)
		e = cudaErrorInvalidMemcpyDirection;
	if (e == cudaSuccess)
		e = copy_async(dst, src, count, kind, 0);
	if (e == cudaSuccess)
		drain_stream(0);
	return ret(e);
}

cudaError_t cudaMemcpy2DAsync(void *dst, size_t dpitch, const void *src,
			      size_t spitch, size_t width, size_t height,
			      enum cudaMemcpyKind kind, cudaStream_t stream)
{
	EC_EMU_LOCKED();
	cudaError_t e = sticky();

	if (e != cudaSuccess)
		return ret(e);
	if (width > dpitch || width > spitch)
		return ret(cudaErrorInvalidPitchValue);
	for (size_t r = 0; r < height && e == cudaSuccess; r++)
		e = cudaMemcpyAsync((char *)dst + r * dpitch,
				    (const char *)src + r * spitch, width,
				    kind, stream);
	return e;
}

cudaError_t cudaMemsetAsync(void *devPtr, int value, size_t count,
			    cudaStream_t stream)
{
	EC_EMU_LOCKED();
	cudaError_t e = sticky();

	if (e == cudaSuccess && !stream_ok(stream))
		e = cudaErrorInvalidResourceHandle;
	if (e == cudaSuccess && count && !device_side(devPtr, count))
		e = cudaErrorInvalidValue;
	if (e == cudaSuccess && count)
		e = enqueue(stream, "cudaMemsetAsync", [=]() {
			memset(devPtr, value, count);
			return cudaSuccess;
		});
	return ret(e);
}

cudaError_t cudaMemset(void *devPtr, int value, size_t count)
{
	EC_EMU_LOCKED();
	cudaError_t e = capture_unsafe(true);

	if (e == cudaSuccess)
		e = cudaMemsetAsync(devPtr, value, count, 0);
	if (e == cudaSuccess)
		drain_stream(0);
	return ret(e);
}

extern "C" void ec_emu_symbol_register(const void *symbol, size_t size)
{
	EC_EMU_LOCKED();

	if (!overlaps(symbol, size))
		g_regions[(uintptr_t)symbol] = region{ size, REGION_SYMBOL };
}

cudaError_t cudaMemcpyToSymbol(const void *symbol, const void *src,
			       size_t count, size_t offset,
			       enum cudaMemcpyKind kind)
{
	EC_EMU_LOCKED();

	if (!symbol || (kind != cudaMemcpyHostToDevice &&
			kind != cudaMemcpyDeviceToDevice &&
			kind != cudaMemcpyDefault))
		return ret(cudaErrorInvalidValue);
	drain_all();
	memcpy((char *)symbol + offset, src, count);
	return cudaSuccess;
}

cudaError_t cudaMemcpyFromSymbol(void *dst, const void *symbol, size_t count,
				 size_t offset, enum cudaMemcpyKind kind)
{
	EC_EMU_LOCKED();

	if (!symbol || (kind != cudaMemcpyDeviceToHost &&
			kind != cudaMemcpyDeviceToDevice &&
			kind != cudaMemcpyDefault))
		return ret(cudaErrorInvalidValue);
	drain_all();
	memcpy(dst, (const char *)symbol + offset, count);
	return cudaSuccess;
}

cudaError_t cudaGetSymbolAddress(void **devPtr, const void *symbol)
{
	if (!devPtr || !symbol)
		return ret(cudaErrorInvalidSymbol);
	*devPtr = (void *)symbol;
	return cudaSuccess;
}
