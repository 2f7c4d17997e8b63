// SPDX-License-Identifier: MIT
/*
 * What the CUDA emulation promises, as a CUDA program: warp intrinsics,
 * barriers with exited threads, atomics, bit intrinsics, half/bfloat16,
 * launch errors, copies, streams and events, graphs, cuBLAS.  Built with
 * g++ against kernels/emu (make emu: $(BUILD)/emu/emu_selftest) and, with
 * nvcc, for a GPU (make cuda: build/cuda/emu_selftest), where it must pass
 * too: that is how the emulation's semantics are checked against CUDA's.
 * Checks marked "emulation" test what only the emulation reports (a GPU
 * would hang or fault instead).
 *
 *   emu_selftest              the checks; last line "N passed, N failed"
 *   emu_selftest bench        time per warp shuffle (not a result)
 *   emu_selftest oob-global   a kernel reads past a cudaMalloc block
 *   emu_selftest oob-shared   a kernel writes past a __shared__ array
 *   emu_selftest oob-shared-template   the same in a kernel template
 *   emu_selftest oob-local    a thread reads past its local array
 *   emu_selftest misaligned   a float4 load from a misaligned address
 * The probes must be stopped by the sanitizers (SAN=1 builds).
 */
#include <cublas_v2.h>
#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_runtime.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* as kernels/common.cuh has them for nvcc (the emulation's own first) */
#ifndef EC_LAUNCH
#define EC_LAUNCH(grid, block, smem, stream, ...)                            \
	__VA_ARGS__<<<(grid), (block), (smem), (stream)>>>
#endif
#ifndef EC_SHARED_DYN
#define EC_SHARED_DYN(type, name)                                            \
	extern __shared__ __align__(16) unsigned char ec_dyn_smem_[];        \
	type *name = (type *)ec_dyn_smem_
#endif

static int n_pass, n_fail;

#define CHECK(cond, ...)                                                     \
	do {                                                                  \
		if (cond) {                                                   \
			n_pass++;                                             \
		} else {                                                      \
			n_fail++;                                             \
			printf("FAIL %s:%d: ", __FILE__, __LINE__);           \
			printf(__VA_ARGS__);                                  \
			printf("\n");                                         \
		}                                                             \
	} while (0)

#define CUDA_OK(call)                                                        \
	do {                                                                  \
		cudaError_t e_ = (call);                                      \
		CHECK(e_ == cudaSuccess, "%s: %s", #call,                     \
		      cudaGetErrorString(e_));                                \
	} while (0)

/* ---- warp intrinsics ---------------------------------------------------- */

/* out[t * 12 + k]: twelve results per thread */
__global__ void warp_kernel(int *out)
{
	int lane = threadIdx.x & 31, t = threadIdx.x, v = 100 + t;
	int *o = out + t * 12;
	float f = (float)lane;

#pragma unroll
	for (int s = 16; s > 0; s >>= 1)
		f += __shfl_xor_sync(0xffffffffu, f, s);
	o[0] = (int)f;					/* sum of lanes */
	o[1] = __shfl_sync(0xffffffffu, v, 3);		/* lane 3's */
	o[2] = __shfl_up_sync(0xffffffffu, v, 2);
	o[3] = __shfl_down_sync(0xffffffffu, v, 5);
	o[4] = __shfl_xor_sync(0xffffffffu, v, 1, 8);
	o[5] = __shfl_sync(0xffffffffu, v, 1, 4);	/* in groups of 4 */
	o[6] = (int)__ballot_sync(0xffffffffu, lane % 3 == 0);
	o[7] = __any_sync(0xffffffffu, lane == 7);
	o[8] = __all_sync(0xffffffffu, lane < 31);
	o[9] = (int)(__shfl_down_sync(0xffffffffu, (double)v * 0.5, 1) * 2);
	o[10] = (int)__match_any_sync(0xffffffffu, lane / 8);
	o[11] = (int)__reduce_add_sync(0xffffffffu, (unsigned int)lane);
}

static int ref_shfl_up(int t, int d)
{
	return (t & 31) < d ? 100 + t : 100 + t - d;
}

static void test_warp(void)
{
	const int n = 64;
	int *d, h[64 * 12];

	CUDA_OK(cudaMalloc((void **)&d, sizeof(h)));
	EC_LAUNCH(1, n, 0, 0, warp_kernel)(d);
	CUDA_OK(cudaGetLastError());
	CUDA_OK(cudaMemcpy(h, d, sizeof(h), cudaMemcpyDeviceToHost));
	for (int t = 0; t < n; t++) {
		int lane = t & 31, w0 = t & ~31, *o = h + t * 12;
		int down = lane + 5 < 32 ? 100 + t + 5 : 100 + t;
		unsigned int ballot = 0, match = 0;

		for (int i = 0; i < 32; i += 3)
			ballot |= 1u << i;
		for (int i = 0; i < 32; i++)
			if (i / 8 == lane / 8)
				match |= 1u << i;
		CHECK(o[0] == 496, "thread %d: warp sum %d", t, o[0]);
		CHECK(o[1] == 100 + w0 + 3, "thread %d: shfl %d", t, o[1]);
		CHECK(o[2] == ref_shfl_up(t, 2), "thread %d: up %d", t, o[2]);
		CHECK(o[3] == down, "thread %d: down %d", t, o[3]);
		CHECK(o[4] == 100 + (t ^ 1), "thread %d: xor w8 %d", t, o[4]);
		CHECK(o[5] == 100 + (t & ~3) + 1, "thread %d: shfl w4 %d", t,
		      o[5]);
		CHECK((unsigned int)o[6] == ballot, "thread %d: ballot %#x", t,
		      o[6]);
		CHECK(o[7] == 1 && o[8] == 0, "thread %d: any %d all %d", t,
		      o[7], o[8]);
		CHECK(o[9] == (lane < 31 ? 101 + t : 100 + t),
		      "thread %d: double shfl %d", t, o[9]);
		CHECK((unsigned int)o[10] == match, "thread %d: match %#x", t,
		      o[10]);
		CHECK(o[11] == 496, "thread %d: reduce_add %d", t, o[11]);
	}
	cudaFree(d);
}

/* ---- barriers: block-wide, counting, with returned threads ------------- */

#define RED_THREADS 256

__global__ void reduce_kernel(const float *x, float *out, int *counts)
{
	__shared__ float part[RED_THREADS / 32];
	float v = x[blockIdx.x * RED_THREADS + threadIdx.x];

	for (int o = 16; o > 0; o >>= 1)
		v += __shfl_xor_sync(0xffffffffu, v, o);
	if ((threadIdx.x & 31) == 0)
		part[threadIdx.x / 32] = v;
	__syncthreads();
	if (threadIdx.x == 0) {
		float s = 0;

		for (int i = 0; i < RED_THREADS / 32; i++)
			s += part[i];
		out[blockIdx.x] = s;
	}
	counts[blockIdx.x * 3] = __syncthreads_count(threadIdx.x % 5 == 0);
	counts[blockIdx.x * 3 + 1] = __syncthreads_and(threadIdx.x < 1000);
	counts[blockIdx.x * 3 + 2] = __syncthreads_or(threadIdx.x == 77);
}

/* odd lanes return first; the rest still meet at both barriers */
__global__ void exit_kernel(int *out)
{
	__shared__ int seen[64];
	int lane = threadIdx.x & 31;

	seen[threadIdx.x] = 0;
	if (lane & 1)
		return;
	seen[threadIdx.x] = 1;
	__syncthreads();
	__syncwarp(0x55555555u);
	out[threadIdx.x] = __shfl_xor_sync(0x55555555u, lane, 2) +
			   1000 * seen[threadIdx.x ^ 2];
}

/* a block's sum through dynamic shared memory (one float per thread) */
__global__ void dyn_reduce_kernel(const float *x, float *out)
{
	EC_SHARED_DYN(float, buf);

	buf[threadIdx.x] = x[blockIdx.x * blockDim.x + threadIdx.x];
	__syncthreads();
	for (unsigned int s = blockDim.x / 2; s > 0; s >>= 1) {
		if (threadIdx.x < s)
			buf[threadIdx.x] += buf[threadIdx.x + s];
		__syncthreads();
	}
	if (threadIdx.x == 0)
		out[blockIdx.x] = buf[0];
}

static void test_dynamic_shared(void)
{
	const int blocks = 4, threads = 128;
	float x[4 * 128], out[4], *dx, *dout;

	for (int i = 0; i < blocks * threads; i++)
		x[i] = (float)(i % 9);
	CUDA_OK(cudaMalloc((void **)&dx, sizeof(x)));
	CUDA_OK(cudaMalloc((void **)&dout, sizeof(out)));
	CUDA_OK(cudaMemcpy(dx, x, sizeof(x), cudaMemcpyHostToDevice));
	EC_LAUNCH(blocks, threads, threads * sizeof(float), 0,
		  dyn_reduce_kernel)(dx, dout);
	CUDA_OK(cudaGetLastError());
	CUDA_OK(cudaMemcpy(out, dout, sizeof(out), cudaMemcpyDeviceToHost));
	for (int b = 0; b < blocks; b++) {
		float s = 0;

		for (int i = 0; i < threads; i++)
			s += x[b * threads + i];
		CHECK(out[b] == s, "dynamic shared memory: block %d sum %g, "
		      "want %g", b, out[b], s);
	}
	cudaFree(dx);
	cudaFree(dout);
}

static void test_barriers(void)
{
	const int blocks = 3, n = blocks * RED_THREADS;
	float *x = (float *)malloc(n * sizeof(float)), out[3], *dx, *dout;
	int counts[9], *dc, ex[64], *dex;

	for (int i = 0; i < n; i++)
		x[i] = (float)(i % 17) - 8.0f;
	CUDA_OK(cudaMalloc((void **)&dx, n * sizeof(float)));
	CUDA_OK(cudaMalloc((void **)&dout, sizeof(out)));
	CUDA_OK(cudaMalloc((void **)&dc, sizeof(counts)));
	CUDA_OK(cudaMalloc((void **)&dex, sizeof(ex)));
	CUDA_OK(cudaMemcpy(dx, x, n * sizeof(float), cudaMemcpyHostToDevice));
	EC_LAUNCH(blocks, RED_THREADS, 0, 0, reduce_kernel)(dx, dout, dc);
	CUDA_OK(cudaGetLastError());
	CUDA_OK(cudaMemcpy(out, dout, sizeof(out), cudaMemcpyDeviceToHost));
	CUDA_OK(cudaMemcpy(counts, dc, sizeof(counts),
			   cudaMemcpyDeviceToHost));
	for (int b = 0; b < blocks; b++) {
		float s = 0;

		for (int i = 0; i < RED_THREADS; i++)
			s += x[b * RED_THREADS + i];
		CHECK(out[b] == s, "block %d: sum %g, want %g", b, out[b], s);
		CHECK(counts[b * 3] == 52 && counts[b * 3 + 1] == 1 &&
			      counts[b * 3 + 2] == 1,
		      "block %d: count %d and %d or %d", b, counts[b * 3],
		      counts[b * 3 + 1], counts[b * 3 + 2]);
	}
	CUDA_OK(cudaMemset(dex, 0xff, sizeof(ex)));
	EC_LAUNCH(1, 64, 0, 0, exit_kernel)(dex);
	CUDA_OK(cudaGetLastError());
	CUDA_OK(cudaMemcpy(ex, dex, sizeof(ex), cudaMemcpyDeviceToHost));
	for (int t = 0; t < 64; t++)
		CHECK((t & 1) ? ex[t] == -1 : ex[t] == ((t & 31) ^ 2) + 1000,
		      "thread %d after exits: %d", t, ex[t]);
	cudaFree(dx);
	cudaFree(dout);
	cudaFree(dc);
	cudaFree(dex);
	free(x);
}

/* ---- atomics and intrinsics -------------------------------------------- */

__global__ void atomic_kernel(unsigned int *cnt, int *mx, float *fsum,
			      unsigned int *cas)
{
	unsigned int id = blockIdx.x * blockDim.x + threadIdx.x;
	unsigned int old, want;

	atomicAdd(cnt, 1u);
	atomicMax(mx, (int)(id * 7 % 1000));
	atomicAdd(fsum, 0.5f);
	do {	/* a CAS loop: record the largest id */
		old = *(volatile unsigned int *)cas;
		want = id > old ? id : old;
	} while (atomicCAS(cas, old, want) != old);
}

__global__ void intrinsic_kernel(unsigned int *o)
{
	o[0] = (unsigned int)__dp4a(0x01FF0203, 0x04050607, 10);
	o[1] = __dp4a(0x01FF0203u, 0x04050607u, 10u);
	o[2] = __byte_perm(0x03020100u, 0x07060504u, 0x7531);
	o[3] = __byte_perm(0x33221100u, 0x4B000000u, 0x7542);
	o[4] = (unsigned int)__popc(0xF0F0F0F1u);
	o[5] = (unsigned int)__clz(0x00010000);
	o[6] = (unsigned int)__ffs(0x00000800);
	o[7] = __brev(0x00000001u);
	o[8] = __funnelshift_l(0x80000000u, 0x1u, 1);
	o[9] = __float_as_uint(__int_as_float(0x3F800000));
	o[10] = __half_as_ushort(__float2half(1.0f / 3.0f));
	o[11] = __bfloat16_as_ushort(__float2bfloat16(1.0f / 3.0f));
	o[12] = __float_as_uint(__half2float(__ushort_as_half(0x0001)));
	o[13] = __half_as_ushort(__float2half(65520.0f));
	o[14] = __float_as_uint(__fdividef(1.0f, 4.0f));
	o[15] = (unsigned int)__umulhi(0x80000000u, 6u);
}

static void test_atomics_intrinsics(void)
{
	unsigned int *dcnt, *dcas, cnt, cas, o[16], *dout;
	int *dmx, mx;
	float *dsum, sum;

	CUDA_OK(cudaMalloc((void **)&dcnt, 4));
	CUDA_OK(cudaMalloc((void **)&dcas, 4));
	CUDA_OK(cudaMalloc((void **)&dmx, 4));
	CUDA_OK(cudaMalloc((void **)&dsum, 4));
	CUDA_OK(cudaMalloc((void **)&dout, sizeof(o)));
	CUDA_OK(cudaMemset(dcnt, 0, 4));
	CUDA_OK(cudaMemset(dcas, 0, 4));
	CUDA_OK(cudaMemset(dmx, 0, 4));
	CUDA_OK(cudaMemset(dsum, 0, 4));
	EC_LAUNCH(40, 96, 0, 0, atomic_kernel)(dcnt, dmx, dsum, dcas);
	CUDA_OK(cudaGetLastError());
	CUDA_OK(cudaMemcpy(&cnt, dcnt, 4, cudaMemcpyDeviceToHost));
	CUDA_OK(cudaMemcpy(&cas, dcas, 4, cudaMemcpyDeviceToHost));
	CUDA_OK(cudaMemcpy(&mx, dmx, 4, cudaMemcpyDeviceToHost));
	CUDA_OK(cudaMemcpy(&sum, dsum, 4, cudaMemcpyDeviceToHost));
	CHECK(cnt == 3840 && cas == 3839 && mx == 999 && sum == 1920.0f,
	      "atomics: count %u cas %u max %d sum %g", cnt, cas, mx, sum);
	EC_LAUNCH(1, 1, 0, 0, intrinsic_kernel)(dout);
	CUDA_OK(cudaMemcpy(o, dout, sizeof(o), cudaMemcpyDeviceToHost));
	/* 3*7 + 2*6 - 1*5 + 1*4 + 10; unsigned 255*5 instead of -5 */
	CHECK(o[0] == 42 && o[1] == 1322, "__dp4a %u %u", o[0], o[1]);
	CHECK(o[2] == 0x07050301u && o[3] == 0x4B000022u,
	      "__byte_perm %#x %#x", o[2], o[3]);
	CHECK(o[4] == 17 && o[5] == 15 && o[6] == 12 && o[7] == 0x80000000u &&
		      o[8] == 3,
	      "bits: popc %u clz %u ffs %u brev %#x funnel %#x", o[4], o[5],
	      o[6], o[7], o[8]);
	CHECK(o[9] == 0x3F800000u && o[14] == 0x3E800000u &&
		      o[15] == 3,
	      "float bits %#x fdividef %#x umulhi %u", o[9], o[14], o[15]);
	CHECK(o[10] == 0x3555 && o[11] == 0x3EAB && o[12] == 0x33800000u &&
		      o[13] == 0x7C00,
	      "half %#x bf16 %#x subnormal %#x overflow %#x", o[10], o[11],
	      o[12], o[13]);
	cudaFree(dcnt);
	cudaFree(dcas);
	cudaFree(dmx);
	cudaFree(dsum);
	cudaFree(dout);
}

/* every half converts to float and back unchanged (NaNs stay NaN) */
__global__ void half_kernel(unsigned int *bad)
{
	unsigned int h = blockIdx.x * blockDim.x + threadIdx.x;
	float f = __half2float(__ushort_as_half((unsigned short)h));
	unsigned int back = __half_as_ushort(__float2half(f));
	bool nan = (h & 0x7fff) > 0x7c00;

	if (h < 65536 && !nan && back != h)
		atomicAdd(bad, 1u);
}

static void test_half(void)
{
	unsigned int *d, bad;

	CUDA_OK(cudaMalloc((void **)&d, 4));
	CUDA_OK(cudaMemset(d, 0, 4));
	EC_LAUNCH(256, 256, 0, 0, half_kernel)(d);
	CUDA_OK(cudaMemcpy(&bad, d, 4, cudaMemcpyDeviceToHost));
	CHECK(bad == 0, "%u halves do not survive float and back", bad);
	cudaFree(d);
}

/* ---- launches, copies, memory ------------------------------------------ */

__global__ void fill_kernel(float *p, float v, int n)
{
	int i = blockIdx.x * blockDim.x + threadIdx.x;

	if (i < n)
		p[i] = v + (float)i;
}

__global__ void add_kernel(float *p, float v, int n)
{
	int i = blockIdx.x * blockDim.x + threadIdx.x;

	if (i < n)
		p[i] += v;
}

static void test_launch_errors(void)
{
	float *d;

	CUDA_OK(cudaMalloc((void **)&d, 1024 * sizeof(float)));
	EC_LAUNCH(1, 1025, 0, 0, fill_kernel)(d, 0.0f, 1);
	CHECK(cudaGetLastError() == cudaErrorInvalidConfiguration,
	      "1025 threads accepted");
	CHECK(cudaGetLastError() == cudaSuccess, "error not cleared");
	EC_LAUNCH(dim3(1, 65536), 32, 0, 0, fill_kernel)(d, 0.0f, 1);
	CHECK(cudaGetLastError() == cudaErrorInvalidConfiguration,
	      "grid.y 65536 accepted");
	EC_LAUNCH(dim3(1, 1, 1), dim3(32, 32, 2), 0, 0, fill_kernel)(d, 0.0f,
								    1);
	CHECK(cudaGetLastError() == cudaErrorInvalidConfiguration,
	      "32x32x2 threads accepted");
	EC_LAUNCH(1, 32, 48 * 1024 + 1, 0, fill_kernel)(d, 0.0f, 1);
	CHECK(cudaGetLastError() != cudaSuccess,
	      "48 KiB + 1 of dynamic shared memory accepted");
	EC_LAUNCH(4, 256, 0, 0, fill_kernel)(d, 1.0f, 1024);
	CUDA_OK(cudaGetLastError());
	CUDA_OK(cudaDeviceSynchronize());
	cudaFree(d);
}

static void test_memory(void)
{
	size_t free0, free1, total;
	float *d = NULL, *h = NULL, v[4] = { 1, 2, 3, 4 }, back[4];
	struct cudaPointerAttributes a;

	CUDA_OK(cudaMemGetInfo(&free0, &total));
	CUDA_OK(cudaMalloc((void **)&d, 64 << 20));
	CUDA_OK(cudaMemGetInfo(&free1, &total));
	CHECK(free1 + (64 << 20) <= free0 && free0 <= total,
	      "cudaMemGetInfo: %zu free before, %zu after 64 MiB", free0,
	      free1);
	CHECK(((uintptr_t)d & 255) == 0, "cudaMalloc alignment %p", d);
	CUDA_OK(cudaPointerGetAttributes(&a, d));
	CHECK(a.type == cudaMemoryTypeDevice, "device pointer type %d",
	      a.type);
	CUDA_OK(cudaPointerGetAttributes(&a, v));
	CHECK(a.type == cudaMemoryTypeUnregistered, "stack pointer type %d",
	      a.type);
	CUDA_OK(cudaHostAlloc((void **)&h, 4096, cudaHostAllocMapped));
	CUDA_OK(cudaPointerGetAttributes(&a, h));
	CHECK(a.type == cudaMemoryTypeHost, "pinned pointer type %d", a.type);
	CUDA_OK(cudaMemcpy(d, v, sizeof(v), cudaMemcpyHostToDevice));
	CUDA_OK(cudaMemcpy(back, d, sizeof(v), cudaMemcpyDeviceToHost));
	CHECK(!memcmp(back, v, sizeof(v)), "copy round trip");
	CHECK(cudaFree(v) != cudaSuccess, "cudaFree of a stack address");
	cudaGetLastError();
	CHECK(cudaHostRegister(h, 4096, 0) != cudaSuccess,
	      "pinned memory registered again");
	cudaGetLastError();
	CUDA_OK(cudaFreeHost(h));
	CUDA_OK(cudaFree(d));
	CHECK(cudaMalloc((void **)&d, total + 1) == cudaErrorMemoryAllocation,
	      "more than the device's memory allocated");
	CHECK(cudaGetLastError() == cudaErrorMemoryAllocation,
	      "failed cudaMalloc is not the last error");
#ifdef EC_CUDA_EMU
	/* emulation: copies checked against their allocations */
	CUDA_OK(cudaMalloc((void **)&d, 16));
	CHECK(cudaMemcpy(d, v, 17, cudaMemcpyHostToDevice) ==
		      cudaErrorInvalidValue,
	      "copy past a 16-byte allocation");
	CHECK(cudaMemcpy(v, back, 4, cudaMemcpyHostToDevice) ==
		      cudaErrorInvalidValue,
	      "host-to-device copy into host memory");
	cudaGetLastError();
	cudaFree(d);
#endif
}

/* ---- streams, events, graphs -------------------------------------------- */

static void test_streams(void)
{
	cudaStream_t a, b;
	cudaEvent_t e0, e1, done;
	float *d, *h, ms = -1;
	const int n = 1024;

	CUDA_OK(cudaStreamCreateWithFlags(&a, cudaStreamNonBlocking));
	CUDA_OK(cudaStreamCreateWithFlags(&b, cudaStreamNonBlocking));
	CUDA_OK(cudaEventCreate(&e0));
	CUDA_OK(cudaEventCreate(&e1));
	CUDA_OK(cudaEventCreateWithFlags(&done, cudaEventDisableTiming));
	CUDA_OK(cudaMalloc((void **)&d, n * sizeof(float)));
	CUDA_OK(cudaMallocHost((void **)&h, n * sizeof(float)));
	/* a writes, b adds after waiting for a, the host reads b's result */
	CUDA_OK(cudaEventRecord(e0, a));
	EC_LAUNCH(n / 256, 256, 0, a, fill_kernel)(d, 0.0f, n);
	CUDA_OK(cudaEventRecord(done, a));
	CUDA_OK(cudaStreamWaitEvent(b, done, 0));
	EC_LAUNCH(n / 256, 256, 0, b, add_kernel)(d, 0.5f, n);
	CUDA_OK(cudaMemcpyAsync(h, d, n * sizeof(float),
				cudaMemcpyDeviceToHost, b));
	CUDA_OK(cudaEventRecord(e1, b));
	CUDA_OK(cudaEventSynchronize(e1));
	CHECK(h[0] == 0.5f && h[n - 1] == (float)(n - 1) + 0.5f,
	      "stream order: %g %g", h[0], h[n - 1]);
	CUDA_OK(cudaEventElapsedTime(&ms, e0, e1));
	CHECK(ms >= 0.0f, "elapsed %g ms", ms);
	CHECK(cudaEventElapsedTime(&ms, e0, done) ==
		      cudaErrorInvalidResourceHandle,
	      "timing from an event without timing");
	cudaGetLastError();
	CUDA_OK(cudaStreamSynchronize(a));
	cudaEventDestroy(e0);
	cudaEventDestroy(e1);
	cudaEventDestroy(done);
	cudaStreamDestroy(a);
	cudaStreamDestroy(b);
	cudaFree(d);
	cudaFreeHost(h);
}

static void test_graphs(void)
{
	cudaStream_t s, s2;
	cudaGraph_t g = NULL, g2 = NULL;
	cudaGraphExec_t x = NULL;
	cudaEvent_t fork, join;
	enum cudaStreamCaptureStatus st;
	float *d, *h, one = 1.0f;
	const int n = 512;

	CUDA_OK(cudaStreamCreateWithFlags(&s, cudaStreamNonBlocking));
	CUDA_OK(cudaStreamCreateWithFlags(&s2, cudaStreamNonBlocking));
	CUDA_OK(cudaEventCreateWithFlags(&fork, cudaEventDisableTiming));
	CUDA_OK(cudaEventCreateWithFlags(&join, cudaEventDisableTiming));
	CUDA_OK(cudaMalloc((void **)&d, n * sizeof(float)));
	CUDA_OK(cudaMallocHost((void **)&h, n * sizeof(float)));
	CUDA_OK(cudaMemset(d, 0, n * sizeof(float)));
	memset(h, 0, n * sizeof(float));
	/* captured: two adds, one on a forked stream, then a copy out */
	CUDA_OK(cudaStreamBeginCapture(s, cudaStreamCaptureModeGlobal));
	CUDA_OK(cudaStreamIsCapturing(s, &st));
	CHECK(st == cudaStreamCaptureStatusActive, "capture status %d", st);
	EC_LAUNCH(n / 128, 128, 0, s, add_kernel)(d, one, n);
	CUDA_OK(cudaEventRecord(fork, s));
	CUDA_OK(cudaStreamWaitEvent(s2, fork, 0));
	EC_LAUNCH(n / 128, 128, 0, s2, add_kernel)(d, 2.0f, n);
	CUDA_OK(cudaEventRecord(join, s2));
	CUDA_OK(cudaStreamWaitEvent(s, join, 0));
	CUDA_OK(cudaMemcpyAsync(h, d, n * sizeof(float),
				cudaMemcpyDeviceToHost, s));
	CUDA_OK(cudaStreamEndCapture(s, &g));
	CUDA_OK(cudaGraphInstantiate(&x, g, 0));
	CUDA_OK(cudaStreamSynchronize(s));
	CHECK(h[0] != 3.0f, "captured work ran at capture");
	for (int i = 0; i < 3; i++)
		CUDA_OK(cudaGraphLaunch(x, s));
	CUDA_OK(cudaStreamSynchronize(s));
	CHECK(h[0] == 9.0f && h[n - 1] == 9.0f, "graph replayed 3 times: %g",
	      h[0]);
	/* a synchronisation while capturing invalidates the capture */
	CUDA_OK(cudaStreamBeginCapture(s, cudaStreamCaptureModeGlobal));
	EC_LAUNCH(1, 128, 0, s, add_kernel)(d, one, n);
	CHECK(cudaStreamSynchronize(s) == cudaErrorStreamCaptureUnsupported,
	      "stream synchronised while capturing");
	CHECK(cudaStreamEndCapture(s, &g2) ==
		      cudaErrorStreamCaptureInvalidated,
	      "invalidated capture ended without error");
	cudaGetLastError();
	cudaGraphExecDestroy(x);
	cudaGraphDestroy(g);
	cudaEventDestroy(fork);
	cudaEventDestroy(join);
	cudaStreamDestroy(s);
	cudaStreamDestroy(s2);
	cudaFree(d);
	cudaFreeHost(h);
}

/* ---- cuBLAS ------------------------------------------------------------- */

static void test_sgemm(void)
{
	const int m = 5, n = 4, k = 7, ld = 9;	/* ld > any dimension */
	float A[9 * 9], B[9 * 9], C[9 * 9], ref, *dA, *dB, *dC;
	const float alpha = 1.5f, beta = -0.5f;
	cublasHandle_t hb;

	for (int i = 0; i < 81; i++) {
		A[i] = (float)((i * 7) % 11) - 5.0f;
		B[i] = (float)((i * 5) % 13) - 6.0f;
	}
	CUDA_OK(cudaMalloc((void **)&dA, sizeof(A)));
	CUDA_OK(cudaMalloc((void **)&dB, sizeof(B)));
	CUDA_OK(cudaMalloc((void **)&dC, sizeof(C)));
	CHECK(cublasCreate(&hb) == CUBLAS_STATUS_SUCCESS, "cublasCreate");
	CUDA_OK(cudaMemcpy(dA, A, sizeof(A), cudaMemcpyHostToDevice));
	CUDA_OK(cudaMemcpy(dB, B, sizeof(B), cudaMemcpyHostToDevice));
	for (int ta = 0; ta < 2; ta++)
		for (int tb = 0; tb < 2; tb++) {
			int bad = 0;

			for (int i = 0; i < 81; i++)
				C[i] = (float)(i % 3);
			CUDA_OK(cudaMemcpy(dC, C, sizeof(C),
					   cudaMemcpyHostToDevice));
			CHECK(cublasSgemm(hb, ta ? CUBLAS_OP_T : CUBLAS_OP_N,
					  tb ? CUBLAS_OP_T : CUBLAS_OP_N, m, n,
					  k, &alpha, dA, ld, dB, ld, &beta, dC,
					  ld) == CUBLAS_STATUS_SUCCESS,
			      "cublasSgemm");
			CUDA_OK(cudaMemcpy(C, dC, sizeof(C),
					   cudaMemcpyDeviceToHost));
			for (int j = 0; j < n; j++)
				for (int i = 0; i < m; i++) {
					ref = 0;
					for (int l = 0; l < k; l++)
						ref += (ta ? A[l + i * ld]
							   : A[i + l * ld]) *
						       (tb ? B[j + l * ld]
							   : B[l + j * ld]);
					ref = alpha * ref +
					      beta * (float)((i + j * ld) % 3);
					bad += fabsf(C[i + j * ld] - ref) > 1e-4f;
				}
			CHECK(bad == 0, "sgemm trans %d %d: %d wrong", ta, tb,
			      bad);
		}
	CHECK(cublasSgemm(hb, CUBLAS_OP_N, CUBLAS_OP_N, m, n, k, &alpha, dA,
			  m - 1, dB, ld, &beta, dC, ld) ==
		      CUBLAS_STATUS_INVALID_VALUE,
	      "lda < m accepted");
	cublasDestroy(hb);
	cudaFree(dA);
	cudaFree(dB);
	cudaFree(dC);
}

/* ---- what only the emulation reports ------------------------------------ */

/* lane 0 waits at __syncthreads, its warp at __syncwarp for lane 0 */
__global__ void deadlock_kernel(float *p)
{
	if (threadIdx.x == 0)
		__syncthreads();
	else
		__syncwarp();
	p[threadIdx.x] = 1.0f;
}

#ifdef EC_CUDA_EMU
/* what shared memory holds before a block writes it */
template <int N> __global__ void stale_shared_kernel(unsigned int *out)
{
	__shared__ unsigned int s[N];

	out[blockIdx.x * N + threadIdx.x] = s[threadIdx.x];
	s[threadIdx.x] = 7;
}

/* more static shared memory than nvcc would build */
__global__ void big_shared_kernel(char *out)
{
	__shared__ char big[49 * 1024];

	big[threadIdx.x] = 1;
	out[0] = big[0];
}
#endif

static void test_emulation_faults(void)
{
#ifdef EC_CUDA_EMU
	float *d, host[64];
	unsigned int *u, stale[2 * 32];

	/* emulation: every block starts from NaN bytes, template or not */
	CUDA_OK(cudaMalloc((void **)&u, sizeof(stale)));
	EC_LAUNCH(2, 32, 0, 0, stale_shared_kernel<32>)(u);
	CUDA_OK(cudaMemcpy(stale, u, sizeof(stale), cudaMemcpyDeviceToHost));
	for (int i = 0; i < 64; i++)
		CHECK(stale[i] == 0xffffffffu, "emulation: shared memory held "
		      "%#x at the start of a block", stale[i]);
	EC_LAUNCH(1, 32, 0, 0, big_shared_kernel)((char *)u);
	CHECK(cudaGetLastError() == cudaErrorInvalidValue,
	      "emulation: 49 KiB of static shared memory accepted");
	cudaDeviceReset();

	CUDA_OK(cudaMalloc((void **)&d, 64 * sizeof(float)));
	EC_LAUNCH(1, 64, 0, 0, fill_kernel)(host, 0.0f, 64);
	CHECK(cudaDeviceSynchronize() == cudaErrorIllegalAddress,
	      "emulation: a host pointer reached a kernel unnoticed");
	CHECK(cudaMemset(d, 0, 4) == cudaErrorIllegalAddress,
	      "emulation: fault not sticky");
	cudaDeviceReset();	/* frees all memory, as on a GPU */
	CUDA_OK(cudaMalloc((void **)&d, 64 * sizeof(float)));
	EC_LAUNCH(1, 64, 0, 0, deadlock_kernel)(d);
	CHECK(cudaDeviceSynchronize() == cudaErrorLaunchFailure,
	      "emulation: __syncthreads against __syncwarp not reported");
	cudaDeviceReset();
	CUDA_OK(cudaMalloc((void **)&d, 64 * sizeof(float)));
	EC_LAUNCH(1, 64, 0, 0, fill_kernel)(d, 0.0f, 64);
	CUDA_OK(cudaDeviceSynchronize());
	cudaFree(d);
#endif
}

/* ---- sanitizer probes and the benchmark --------------------------------- */

__global__ void oob_global_kernel(const float *p, float *out, int n)
{
	out[0] = p[n];	/* one past the end */
}

__global__ void oob_shared_kernel(float *out, int n)
{
	__shared__ float s[32];

	s[threadIdx.x + n] = 1.0f;	/* n = 1: thread 31 writes s[32] */
	__syncthreads();
	out[threadIdx.x] = s[threadIdx.x];
}

/* through a pointer, which UBSan's bounds check does not follow: ASan */
template <int N> __global__ void oob_shared_t_kernel(float *out, int n)
{
	__shared__ float s[N];
	float *p = s;

	p[threadIdx.x + n] = 1.0f;
	__syncthreads();
	out[threadIdx.x] = s[threadIdx.x];
}

/* a thread's local array, through a pointer: ASan's stack redzones */
__global__ void oob_local_kernel(float *out, int n)
{
	float acc[8];
	float *p = acc;

	for (int i = 0; i < 8; i++)
		acc[i] = (float)i;
	out[threadIdx.x] = p[threadIdx.x + n];
}

__global__ void misaligned_kernel(const float *p, float *out)
{
	float4 v = *(const float4 *)(p + 1);

	out[0] = v.x + v.y + v.z + v.w;
}

__global__ void bench_kernel(float *out, int reps)
{
	float v = (float)threadIdx.x;

	for (int r = 0; r < reps; r++)
		for (int o = 16; o > 0; o >>= 1)
			v += __shfl_xor_sync(0xffffffffu, v, o);
	out[blockIdx.x * blockDim.x + threadIdx.x] = v;
}

static int probe(const char *what)
{
	float *d, *out;

	cudaMalloc((void **)&d, 64 * sizeof(float));
	cudaMalloc((void **)&out, 64 * sizeof(float));
	if (!strcmp(what, "oob-global"))
		EC_LAUNCH(1, 1, 0, 0, oob_global_kernel)(d, out, 64);
	else if (!strcmp(what, "oob-shared"))
		EC_LAUNCH(1, 32, 0, 0, oob_shared_kernel)(out, 1);
	else if (!strcmp(what, "oob-shared-template"))
		EC_LAUNCH(1, 32, 0, 0, oob_shared_t_kernel<32>)(out, 1);
	else if (!strcmp(what, "oob-local"))
		EC_LAUNCH(1, 32, 0, 0, oob_local_kernel)(out, 0);
	else if (!strcmp(what, "misaligned"))
		EC_LAUNCH(1, 1, 0, 0, misaligned_kernel)(d, out);
	else
		return 2;
	printf("%s: %s\n", what, cudaGetErrorString(cudaDeviceSynchronize()));
	return 0;
}

static int bench(void)
{
	const int blocks = 64, threads = 128, reps = 100;
	struct timespec t0, t1;
	float *d;
	double s;

	cudaMalloc((void **)&d, blocks * threads * sizeof(float));
	clock_gettime(CLOCK_MONOTONIC, &t0);
	EC_LAUNCH(blocks, threads, 0, 0, bench_kernel)(d, reps);
	cudaDeviceSynchronize();
	clock_gettime(CLOCK_MONOTONIC, &t1);
	s = (double)(t1.tv_sec - t0.tv_sec) + 1e-9 * (t1.tv_nsec - t0.tv_nsec);
	printf("%.1f ns per thread per __shfl_xor_sync (%d threads, %d "
	       "shuffles each)\n", s * 1e9 / ((double)blocks * threads * reps * 5),
	       blocks * threads, reps * 5);
	cudaFree(d);
	return 0;
}

int main(int argc, char **argv)
{
	if (argc > 1)
		return !strcmp(argv[1], "bench") ? bench() : probe(argv[1]);
	test_warp();
	test_barriers();
	test_dynamic_shared();
	test_atomics_intrinsics();
	test_half();
	test_launch_errors();
	test_memory();
	test_streams();
	test_graphs();
	test_sgemm();
	test_emulation_faults();
	printf("%d passed, %d failed\n", n_pass, n_fail);
	return n_fail ? 1 : 0;
}
