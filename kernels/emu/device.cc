// SPDX-License-Identifier: MIT
/*
 * The one emulated device (its properties say it is an emulation), the
 * settings read from the environment, and error reporting: the per-thread
 * last error, the sticky error a kernel fault leaves (as a GPU context
 * does), error names and strings.
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "emu.h"

#define EC_EMU_DEVICE_NAME "CUDA emulation on the CPU (kernels/emu)"

namespace ec_emu
{
namespace
{
thread_local cudaError_t t_last = cudaSuccess;
cudaError_t g_sticky = cudaSuccess;

/* "2G", "512M", "4096": bytes; 0 when malformed */
uint64_t parse_size(const char *s)
{
	char *end;
	double v = strtod(s, &end);

	if (end == s || v < 0)
		return 0;
	switch (*end) {
	case 'k':
	case 'K':
		v *= 1024.0;
		break;
	case 'm':
	case 'M':
		v *= 1024.0 * 1024;
		break;
	case 'g':
	case 'G':
		v *= 1024.0 * 1024 * 1024;
		break;
	}
	return (uint64_t)v;
}

settings read_settings(void)
{
	settings s;
	const char *e;

	s.vram = 2ull << 30;
	if ((e = getenv("EC_EMU_VRAM")) && parse_size(e))
		s.vram = parse_size(e);
	e = getenv("EC_EMU_DEFER");
	s.defer = e && *e && strcmp(e, "0");
	s.fill = 0xff;	/* NaN as float, -1 as integers */
	if ((e = getenv("EC_EMU_FILL"))) {
		if (!strcmp(e, "none") || !strcmp(e, "off"))
			s.fill = -1;
		else
			s.fill = (int)(strtol(e, NULL, 0) & 0xff);
	}
	s.stack = 256 * 1024;
	if ((e = getenv("EC_EMU_STACK")) && parse_size(e) >= 16384)
		s.stack = (size_t)parse_size(e);
	return s;
}

struct err_name {
	cudaError_t e;
	const char *name, *msg;
};

const err_name errors[] = {
	{ cudaSuccess, "cudaSuccess", "no error" },
	{ cudaErrorInvalidValue, "cudaErrorInvalidValue",
	  "invalid argument" },
	{ cudaErrorMemoryAllocation, "cudaErrorMemoryAllocation",
	  "out of memory" },
	{ cudaErrorInitializationError, "cudaErrorInitializationError",
	  "initialization error" },
	{ cudaErrorInvalidConfiguration, "cudaErrorInvalidConfiguration",
	  "invalid configuration argument" },
	{ cudaErrorInvalidPitchValue, "cudaErrorInvalidPitchValue",
	  "invalid pitch argument" },
	{ cudaErrorInvalidSymbol, "cudaErrorInvalidSymbol",
	  "invalid device symbol" },
	{ cudaErrorInvalidMemcpyDirection, "cudaErrorInvalidMemcpyDirection",
	  "invalid copy direction for memcpy" },
	{ cudaErrorInsufficientDriver, "cudaErrorInsufficientDriver",
	  "CUDA driver version is insufficient for CUDA runtime version" },
	{ cudaErrorInvalidDeviceFunction, "cudaErrorInvalidDeviceFunction",
	  "invalid device function" },
	{ cudaErrorNoDevice, "cudaErrorNoDevice",
	  "no CUDA-capable device is detected" },
	{ cudaErrorInvalidDevice, "cudaErrorInvalidDevice",
	  "invalid device ordinal" },
	{ cudaErrorInvalidResourceHandle, "cudaErrorInvalidResourceHandle",
	  "invalid resource handle" },
	{ cudaErrorIllegalState, "cudaErrorIllegalState",
	  "the operation cannot be performed in the present state" },
	{ cudaErrorNotReady, "cudaErrorNotReady", "device not ready" },
	{ cudaErrorIllegalAddress, "cudaErrorIllegalAddress",
	  "an illegal memory access was encountered" },
	{ cudaErrorLaunchOutOfResources, "cudaErrorLaunchOutOfResources",
	  "too many resources requested for launch" },
	{ cudaErrorLaunchTimeout, "cudaErrorLaunchTimeout",
	  "the launch timed out and was terminated" },
	{ cudaErrorAssert, "cudaErrorAssert", "device-side assert triggered" },
	{ cudaErrorHostMemoryAlreadyRegistered,
	  "cudaErrorHostMemoryAlreadyRegistered",
	  "part or all of the requested memory range is already mapped" },
	{ cudaErrorHostMemoryNotRegistered, "cudaErrorHostMemoryNotRegistered",
	  "pointer does not correspond to a registered memory region" },
	{ cudaErrorIllegalInstruction, "cudaErrorIllegalInstruction",
	  "an illegal instruction was encountered" },
	{ cudaErrorMisalignedAddress, "cudaErrorMisalignedAddress",
	  "misaligned address" },
	{ cudaErrorLaunchFailure, "cudaErrorLaunchFailure",
	  "unspecified launch failure" },
	{ cudaErrorNotPermitted, "cudaErrorNotPermitted",
	  "operation not permitted" },
	{ cudaErrorNotSupported, "cudaErrorNotSupported",
	  "operation not supported" },
	{ cudaErrorStreamCaptureUnsupported,
	  "cudaErrorStreamCaptureUnsupported",
	  "operation not permitted when stream is capturing" },
	{ cudaErrorStreamCaptureInvalidated,
	  "cudaErrorStreamCaptureInvalidated",
	  "operation failed due to a previous error during capture" },
	{ cudaErrorStreamCaptureMerge, "cudaErrorStreamCaptureMerge",
	  "operation would result in a merge of separate capture sequences" },
	{ cudaErrorStreamCaptureUnmatched, "cudaErrorStreamCaptureUnmatched",
	  "capture was not ended in the same stream as it began" },
	{ cudaErrorStreamCaptureUnjoined, "cudaErrorStreamCaptureUnjoined",
	  "capturing stream has unjoined work" },
	{ cudaErrorStreamCaptureIsolation, "cudaErrorStreamCaptureIsolation",
	  "dependency created on uncaptured work in another stream" },
	{ cudaErrorStreamCaptureImplicit, "cudaErrorStreamCaptureImplicit",
	  "operation would make the legacy stream depend on a capturing "
	  "blocking stream" },
	{ cudaErrorCapturedEvent, "cudaErrorCapturedEvent",
	  "operation not permitted on an event last recorded in a capturing "
	  "stream" },
	{ cudaErrorUnknown, "cudaErrorUnknown", "unknown error" },
};

const err_name *lookup(cudaError_t e)
{
	for (const err_name &n : errors)
		if (n.e == e)
			return &n;
	return NULL;
}
} /* namespace */

std::recursive_mutex &big_lock(void)
{
	static std::recursive_mutex m;

	return m;
}

const settings &config(void)
{
	static const settings s = read_settings();

	return s;
}

uint64_t now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

cudaError_t ret(cudaError_t e)
{
	if (e != cudaSuccess)
		t_last = e;
	return e;
}

cudaError_t sticky(void)
{
	return g_sticky;
}

cudaError_t fault(cudaError_t e, const char *fmt, ...)
{
	va_list ap;

	fprintf(stderr, "ec-emu: ");
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fprintf(stderr, " (%s; every later CUDA call fails)\n",
		cudaGetErrorName(e));
	if (g_sticky == cudaSuccess)
		g_sticky = e;
	return ret(e);
}
} /* namespace ec_emu */

using namespace ec_emu;

const char *cudaGetErrorString(cudaError_t error)
{
	const err_name *n = lookup(error);

	return n ? n->msg : "unrecognized error code";
}

const char *cudaGetErrorName(cudaError_t error)
{
	const err_name *n = lookup(error);

	return n ? n->name : "cudaErrorUnknown";
}

cudaError_t cudaGetLastError(void)
{
	EC_EMU_LOCKED();
	cudaError_t e = t_last;

	if (g_sticky != cudaSuccess)
		return g_sticky;
	t_last = cudaSuccess;
	return e;
}

cudaError_t cudaPeekAtLastError(void)
{
	EC_EMU_LOCKED();

	return g_sticky != cudaSuccess ? g_sticky : t_last;
}

cudaError_t cudaGetDeviceCount(int *count)
{
	if (!count)
		return ret(cudaErrorInvalidValue);
	*count = 1;
	return cudaSuccess;
}

cudaError_t cudaGetDevice(int *device)
{
	if (!device)
		return ret(cudaErrorInvalidValue);
	*device = 0;
	return cudaSuccess;
}

cudaError_t cudaSetDevice(int device)
{
	return device == 0 ? cudaSuccess : ret(cudaErrorInvalidDevice);
}

cudaError_t cudaGetDeviceProperties(struct cudaDeviceProp *p, int device)
{
	if (!p)
		return ret(cudaErrorInvalidValue);
	if (device != 0)
		return ret(cudaErrorInvalidDevice);
	memset(p, 0, sizeof(*p));
	snprintf(p->name, sizeof(p->name), "%s", EC_EMU_DEVICE_NAME);
	p->totalGlobalMem = config().vram;
	p->sharedMemPerBlock = 48 * 1024;
	p->regsPerBlock = 65536;
	p->warpSize = 32;
	p->memPitch = SIZE_MAX;
	p->maxThreadsPerBlock = 1024;
	p->maxThreadsDim[0] = 1024;
	p->maxThreadsDim[1] = 1024;
	p->maxThreadsDim[2] = 64;
	p->maxGridSize[0] = 0x7fffffff;
	p->maxGridSize[1] = 65535;
	p->maxGridSize[2] = 65535;
	p->totalConstMem = 64 * 1024;
	/* the kernels are written for sm_80+; report sm_90 */
	p->major = 9;
	p->minor = 0;
	p->textureAlignment = 512;
	p->multiProcessorCount = 1;
	p->canMapHostMemory = 1;
	p->concurrentKernels = 0;
	p->asyncEngineCount = 1;
	p->unifiedAddressing = 1;
	p->memoryBusWidth = 64;
	p->l2CacheSize = 1 << 20;
	p->maxThreadsPerMultiProcessor = 2048;
	p->sharedMemPerMultiprocessor = 228 * 1024;
	p->sharedMemPerBlockOptin = 227 * 1024;
	p->regsPerMultiprocessor = 65536;
	p->maxBlocksPerMultiProcessor = 32;
	return cudaSuccess;
}

cudaError_t cudaDeviceGetAttribute(int *value, enum cudaDeviceAttr attr,
				   int device)
{
	struct cudaDeviceProp p;
	cudaError_t e = cudaGetDeviceProperties(&p, device);

	if (e != cudaSuccess || !value)
		return ret(e != cudaSuccess ? e : cudaErrorInvalidValue);
	switch (attr) {
	case cudaDevAttrMaxThreadsPerBlock:
		*value = p.maxThreadsPerBlock;
		break;
	case cudaDevAttrMaxBlockDimX:
	case cudaDevAttrMaxBlockDimY:
	case cudaDevAttrMaxBlockDimZ:
		*value = p.maxThreadsDim[attr - cudaDevAttrMaxBlockDimX];
		break;
	case cudaDevAttrMaxGridDimX:
	case cudaDevAttrMaxGridDimY:
	case cudaDevAttrMaxGridDimZ:
		*value = p.maxGridSize[attr - cudaDevAttrMaxGridDimX];
		break;
	case cudaDevAttrMaxSharedMemoryPerBlock:
		*value = (int)p.sharedMemPerBlock;
		break;
	case cudaDevAttrTotalConstantMemory:
		*value = (int)p.totalConstMem;
		break;
	case cudaDevAttrWarpSize:
		*value = 32;
		break;
	case cudaDevAttrMaxRegistersPerBlock:
		*value = p.regsPerBlock;
		break;
	case cudaDevAttrMultiProcessorCount:
		*value = p.multiProcessorCount;
		break;
	case cudaDevAttrCanMapHostMemory:
	case cudaDevAttrUnifiedAddressing:
	case cudaDevAttrCanUseHostPointerForRegisteredMem:
	case cudaDevAttrHostRegisterSupported:
	case cudaDevAttrHostRegisterReadOnlySupported:
	case cudaDevAttrMemoryPoolsSupported:
		*value = 1;
		break;
	case cudaDevAttrGlobalMemoryBusWidth:
		*value = p.memoryBusWidth;
		break;
	case cudaDevAttrL2CacheSize:
		*value = p.l2CacheSize;
		break;
	case cudaDevAttrMaxThreadsPerMultiProcessor:
		*value = p.maxThreadsPerMultiProcessor;
		break;
	case cudaDevAttrAsyncEngineCount:
		*value = p.asyncEngineCount;
		break;
	case cudaDevAttrComputeCapabilityMajor:
		*value = p.major;
		break;
	case cudaDevAttrComputeCapabilityMinor:
		*value = p.minor;
		break;
	case cudaDevAttrMaxSharedMemoryPerMultiprocessor:
		*value = (int)p.sharedMemPerMultiprocessor;
		break;
	case cudaDevAttrMaxSharedMemoryPerBlockOptin:
		*value = (int)p.sharedMemPerBlockOptin;
		break;
	case cudaDevAttrMaxBlocksPerMultiprocessor:
		*value = p.maxBlocksPerMultiProcessor;
		break;
	default:
		*value = 0;
	}
	return cudaSuccess;
}

cudaError_t cudaDriverGetVersion(int *version)
{
	if (!version)
		return ret(cudaErrorInvalidValue);
	*version = CUDART_VERSION;
	return cudaSuccess;
}

cudaError_t cudaRuntimeGetVersion(int *version)
{
	return cudaDriverGetVersion(version);
}

cudaError_t cudaDeviceReset(void)
{
	EC_EMU_LOCKED();

	drain_all();
	free_all();
	g_sticky = cudaSuccess;
	t_last = cudaSuccess;
	return cudaSuccess;
}
