// SPDX-License-Identifier: MIT
/*
 * The CUDA backend: its ops table, device selection, streams, activation
 * memory, scratch, error plumbing and the plugin entry point that
 * userspace/lib/cuda/loader.c looks up with dlsym.
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common.cuh"

const struct ec_cuda_host *ec_cuda_host_api;
static struct ec_cuda_host host_copy;	/* the caller's may be on its stack */

int ec_cuda_errorf(int err, const char *fmt, ...)
{
	char buf[1024];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(buf, sizeof(buf), fmt, ap);
	va_end(ap);
	return ec_cuda_host_api ? ec_cuda_host_api->err(err, "%s", buf) : err;
}

int ec_cuda_fail(cudaError_t e, const char *call, const char *file, int line)
{
	if (e == cudaSuccess)
		return 0;
	return ec_cuda_errorf(e == cudaErrorMemoryAllocation ? -ENOMEM : -EIO,
			      "cuda backend: %s failed: %s (%s:%d)", call,
			      cudaGetErrorString(e), file, line);
}

int ec_cublas_fail(cublasStatus_t s, const char *call, const char *file,
		   int line)
{
	return ec_cuda_errorf(s == CUBLAS_STATUS_ALLOC_FAILED ? -ENOMEM : -EIO,
			      "cuda backend: %s failed: cuBLAS status %d "
			      "(%s:%d)", call, (int)s, file, line);
}

void ec_cuda_stick(struct ec_cuda *cu, int err)
{
	if (err >= 0 || cu->sticky)
		return;
	cu->sticky = err;
	/* the message was just recorded through the host's ec_err */
	snprintf(cu->sticky_msg, sizeof(cu->sticky_msg), "%s",
		 ec_cuda_host_api->error_msg());
}

int ec_cuda_unstick(struct ec_cuda *cu)
{
	int err = cu->sticky;

	if (!err)
		return 0;
	cu->sticky = 0;
	return ec_cuda_errorf(err, "%s", cu->sticky_msg);
}

int ec_cuda_upload_idx(struct ec_cuda *cu, const int32_t *idx,
		       const float *val, size_t n)
{
	if (n > cu->idx_cap) {
		size_t cap = n < 4096 ? 4096 : n;

		cudaFree(cu->d_idx);
		cudaFree(cu->d_val);
		cu->d_idx = NULL;
		cu->d_val = NULL;
		cu->idx_cap = 0;
		EC_CUDA_CHECK(cudaMalloc((void **)&cu->d_idx,
					 cap * sizeof(int32_t)));
		EC_CUDA_CHECK(cudaMalloc((void **)&cu->d_val,
					 cap * sizeof(float)));
		cu->idx_cap = cap;
	}
	/* from pageable memory: staged before the call returns */
	if (idx && n)
		EC_CUDA_CHECK(cudaMemcpyAsync(cu->d_idx, idx, n * sizeof(int32_t),
					      cudaMemcpyHostToDevice,
					      cu->stream));
	if (val && n)
		EC_CUDA_CHECK(cudaMemcpyAsync(cu->d_val, val, n * sizeof(float),
					      cudaMemcpyHostToDevice,
					      cu->stream));
	return 0;
}

int ec_cuda_scratch(struct ec_cuda *cu, size_t n_floats)
{
	if (n_floats <= cu->scratch_floats)
		return 0;
	/* the old buffer may still be read by queued kernels */
	EC_CUDA_CHECK(cudaStreamSynchronize(cu->stream));
	cudaFree(cu->scratch);
	cu->scratch = NULL;
	cu->scratch_floats = 0;
	EC_CUDA_CHECK(cudaMalloc((void **)&cu->scratch,
				 n_floats * sizeof(float)));
	cu->scratch_floats = n_floats;
	return 0;
}

/* Page-lock the model mappings so expert misses copy by DMA. */
static void register_model(struct ec_cuda *cu, const struct ec_model *m,
			   uint64_t host_ram)
{
	uint64_t total = 0;

	for (uint32_t i = 0; i < m->n_files; i++)
		total += m->files[i].size;
	if (!host_ram || total > host_ram / 2)
		return;
	cu->reg = (struct ec_host_range *)calloc(m->n_files,
						 sizeof(*cu->reg));
	if (!cu->reg)
		return;
	for (uint32_t i = 0; i < m->n_files; i++) {
		void *p = (void *)m->files[i].map;

		if (!p || !m->files[i].size)
			continue;
		if (cudaHostRegister(p, m->files[i].size,
				     cudaHostRegisterPortable |
					     cudaHostRegisterReadOnly) !=
		    cudaSuccess) {
			cudaGetLastError();	/* pageable copies instead */
			continue;
		}
		cu->reg[cu->n_reg].p = p;
		cu->reg[cu->n_reg].len = m->files[i].size;
		cu->n_reg++;
	}
}

static void cuda_destroy(struct ec_backend *be)
{
	struct ec_cuda *cu;

	if (!be)
		return;
	cu = ec_cuda_of(be);
	if (cu) {
		if (cu->stream)
			cudaStreamSynchronize(cu->stream);
		if (cu->copy)
			cudaStreamSynchronize(cu->copy);
		/*
		 * Host copies still held (a failed call, no sync since) are
		 * not put back: their source may be gone by now.
		 */
		ec_cuda_prefetcher_destroy(cu);
		ec_cuda_slots_destroy(cu);
		ec_cuda_act_free(cu);
		ec_cuda_weights_destroy(cu);
		for (uint32_t i = 0; i < cu->n_reg; i++)
			cudaHostUnregister((void *)cu->reg[i].p);
		free(cu->reg);
		ec_cuda_host_tier_release(cu);
		cudaFree(cu->scratch);
		cudaFree(cu->d_idx);
		cudaFree(cu->d_val);
		cudaFree(cu->d_h);
		cudaFree(cu->d_g);
		cudaFree(cu->d_u);
		cudaFree(cu->d_xg);
		cudaFree(cu->d_d);
		cudaFree(cu->d_inv_freq);
		cudaFree(cu->d_mask);
		if (cu->h_ids)
			cudaFreeHost(cu->h_ids);
		if (cu->h_w)
			cudaFreeHost(cu->h_w);
		if (cu->route_done)
			cudaEventDestroy(cu->route_done);
		if (cu->blas)
			cublasDestroy(cu->blas);
		if (cu->copy)
			cudaStreamDestroy(cu->copy);
		if (cu->stream)
			cudaStreamDestroy(cu->stream);
		free(cu);
	}
	free(be);
}

static float *cuda_alloc(struct ec_backend *be, size_t n_floats)
{
	void *p = NULL;

	if (n_floats > SIZE_MAX / sizeof(float) - 64)
		return NULL;
	if (cudaMalloc(&p, n_floats ? n_floats * sizeof(float) : 64) !=
	    cudaSuccess) {
		cudaGetLastError();
		return NULL;
	}
	return (float *)p;
}

static void cuda_free(struct ec_backend *be, float *p)
{
	if (p)
		cudaFree(p);
}

static void cuda_to_host(struct ec_backend *be, float *dst, const float *src,
			 size_t n)
{
	struct ec_cuda *cu = ec_cuda_of(be);
	int ret;

	ret = ec_cuda_fail(cudaMemcpyAsync(dst, src, n * sizeof(float),
					   cudaMemcpyDeviceToHost, cu->stream),
			   "cudaMemcpyAsync(to_host)", __FILE__, __LINE__);
	if (ret >= 0)
		ret = ec_cuda_fail(cudaStreamSynchronize(cu->stream),
				   "cudaStreamSynchronize", __FILE__, __LINE__);
	ec_cuda_stick(cu, ret);
}

static void cuda_from_host(struct ec_backend *be, float *dst,
			   const float *src, size_t n)
{
	struct ec_cuda *cu = ec_cuda_of(be);

	ec_cuda_stick(cu, ec_cuda_fail(cudaMemcpyAsync(dst, src,
						       n * sizeof(float),
						       cudaMemcpyHostToDevice,
						       cu->stream),
				       "cudaMemcpyAsync(from_host)", __FILE__,
				       __LINE__));
}

/* Also gives every host copy back: the expert source is balanced after. */
static void cuda_sync(struct ec_backend *be)
{
	struct ec_cuda *cu = ec_cuda_of(be);
	int ret, r2;

	ret = ec_cuda_fail(cudaStreamSynchronize(cu->stream),
			   "cudaStreamSynchronize", __FILE__, __LINE__);
	r2 = ec_cuda_slots_drain(cu);
	ec_cuda_stick(cu, ret < 0 ? ret : r2);
}

static int cuda_matmul(struct ec_backend *be, float *y,
		       const struct ec_tensor *w, const float *x, uint32_t n,
		       int accumulate)
{
	struct ec_cuda *cu = ec_cuda_of(be);
	uint64_t cols = w->ne[0], rows = w->ne[1] * w->ne[2] * w->ne[3];
	const void *dw;
	int ret = ec_cuda_unstick(cu);

	if (ret < 0)
		return ret;
	if (cols > UINT32_MAX || rows > UINT32_MAX)
		return ec_cuda_errorf(-EC_EUNSUPPORTED, "cuda backend: matmul: "
				      "%llu x %llu weight",
				      (unsigned long long)rows,
				      (unsigned long long)cols);
	ret = ec_cuda_weight(cu, w, &dw);
	if (ret < 0)
		return ret;
	return ec_cuda_mm(cu, y, w->type, dw, ec_cuda_row_bytes(w->type, cols),
			  (uint32_t)rows, (uint32_t)cols, x, n, accumulate);
}

static const struct ec_backend_ops cuda_ops = {
	.name = "cuda",
	.destroy = cuda_destroy,
	.alloc = cuda_alloc,
	.free = cuda_free,
	.to_host = cuda_to_host,
	.from_host = cuda_from_host,
	.matmul = cuda_matmul,
	.rmsnorm = ec_cuda_rmsnorm,
	.add_bias = ec_cuda_add_bias,
	.rope = ec_cuda_rope,
	.attention = ec_cuda_attention,
	.silu_mul = ec_cuda_silu_mul,
	.add_scaled = ec_cuda_add_scaled,
	.get_rows = ec_cuda_get_rows,
	.gather = ec_cuda_gather,
	.scatter_add = ec_cuda_scatter_add,
	.sync = cuda_sync,
	.route = ec_cuda_route,
	.moe_ffn = ec_cuda_moe_ffn,
	.prefetch_depth = ec_cuda_prefetch_depth,
	.prefetch = ec_cuda_prefetch,
};

/* Device present and usable?  Sets *why for the machine's reasons. */
static int pick_device(struct ec_cuda *cu, int device,
		       enum ec_cuda_unavailable *why)
{
	cudaDeviceProp prop;
	cudaError_t e;
	int count = 0;

	e = cudaGetDeviceCount(&count);
	if (e == cudaErrorInsufficientDriver) {
		*why = EC_CUDA_NO_DRIVER;
		return ec_cuda_errorf(-ENODEV, "no NVIDIA driver found");
	}
	if (e == cudaErrorNoDevice || (e == cudaSuccess && !count)) {
		*why = EC_CUDA_NO_DEVICE;
		return ec_cuda_errorf(-ENODEV, "no CUDA device found");
	}
	if (e != cudaSuccess) {
		*why = EC_CUDA_NO_DEVICE;
		return ec_cuda_errorf(-ENODEV, "CUDA unavailable: %s",
				      cudaGetErrorString(e));
	}
	if (device < 0 || device >= count) {
		*why = EC_CUDA_NO_DEVICE;
		return ec_cuda_errorf(-ENODEV, "CUDA device %d does not exist "
				      "(%d found)", device, count);
	}
	EC_CUDA_CHECK(cudaSetDevice(device));
	EC_CUDA_CHECK(cudaGetDeviceProperties(&prop, device));
	EC_CUDA_CHECK(cudaDriverGetVersion(&cu->driver_version));
	cu->device = device;
	cu->cc_major = prop.major;
	cu->cc_minor = prop.minor;
	snprintf(cu->name, sizeof(cu->name), "%.80s (sm_%d%d)", prop.name,
		 prop.major, prop.minor);
	return 0;
}

static int setup(struct ec_cuda *cu, const struct ec_cuda_host *host,
		 const struct ec_backend_cuda_params *p)
{
	int ret;

	EC_CUDA_CHECK(cudaStreamCreateWithFlags(&cu->stream,
						cudaStreamNonBlocking));
	EC_CUDA_CHECK(cudaStreamCreateWithFlags(&cu->copy,
						cudaStreamNonBlocking));
	/* spin rather than sleep: the routing wait is on the critical path */
	EC_CUDA_CHECK(cudaEventCreateWithFlags(&cu->route_done,
					       cudaEventDisableTiming));
	EC_CUBLAS_CHECK(cublasCreate(&cu->blas));
	EC_CUBLAS_CHECK(cublasSetStream(cu->blas, cu->stream));
	EC_CUBLAS_CHECK(cublasSetMathMode(cu->blas, CUBLAS_DEFAULT_MATH));
	EC_CUDA_CHECK(cudaMalloc((void **)&cu->d_inv_freq,
				 EC_CUDA_MAX_HEAD_DIM / 2 * sizeof(float)));
	EC_CUDA_CHECK(cudaMalloc((void **)&cu->d_mask, EC_CUDA_MAX_EXPERTS));
	ret = ec_cuda_weights_create(cu);
	if (ret < 0)
		return ret;
	if (!p->no_host_register)
		register_model(cu, p->model, host->host_ram);
	ec_cuda_host_tier_init(cu, p);
	ret = ec_cuda_slots_create(cu, p);
	if (ret < 0)
		return ret;
	ret = ec_cuda_prefetcher_create(cu, p);
	if (ret < 0)
		return ret;
	EC_CUDA_CHECK(cudaMalloc((void **)&cu->d_h,
				 (size_t)EC_CUDA_MAX_PAIRS *
					 cu->slots.max_ff * sizeof(float)));
	return 0;
}

static int plugin_create(const struct ec_cuda_host *host,
			 const struct ec_backend_cuda_params *p,
			 struct ec_backend **out, enum ec_cuda_unavailable *why)
{
	struct ec_backend *be;
	struct ec_cuda *cu;
	int ret;

	host_copy = *host;
	ec_cuda_host_api = &host_copy;
	*why = EC_CUDA_AVAILABLE;
	*out = NULL;
	be = (struct ec_backend *)calloc(1, sizeof(*be));
	cu = (struct ec_cuda *)calloc(1, sizeof(*cu));
	if (!be || !cu) {
		free(be);
		free(cu);
		return ec_cuda_errorf(-ENOMEM, "cuda backend: out of memory");
	}
	be->ops = &cuda_ops;
	be->priv = cu;
	cu->model = p->model;
	ec_cuda_act_init(cu, p);
	ret = pick_device(cu, p->device, why);
	if (ret >= 0)
		ret = setup(cu, host, p);
	if (ret < 0) {
		cuda_destroy(be);
		return ret;
	}
	snprintf(cu->st.device, sizeof(cu->st.device), "%s", cu->name);
	cu->st.driver_version = cu->driver_version;
	*out = be;
	return 0;
}

static int plugin_get_stats(struct ec_backend *be, struct ec_cuda_stats *out)
{
	struct ec_cuda *cu = ec_cuda_of(be);
	uint32_t resident = 0, pending = 0;

	for (uint32_t i = 0; i < cu->slots.n_slots; i++) {
		resident += cu->slots.s[i].key >= 0;
		pending += cu->slots.s[i].prefetched;
	}
	*out = cu->st;
	out->n_resident = resident;
	out->prefetch_pending = pending;
	out->puts_pending = cu->slots.n_puts;
	out->weight_bytes = cu->weight_bytes;
	out->host_tier_bytes = cu->host_tier.bytes;
	out->host_tier_regions = cu->host_tier.n_reg;
	out->host_tier_refused = cu->host_tier.refused;
	out->host_tier_registrations = cu->host_tier.registrations;
	snprintf(out->host_tier_refusal, sizeof(out->host_tier_refusal), "%s",
		 cu->host_tier.why);
	return 0;
}

static void plugin_reset_stats(struct ec_backend *be)
{
	struct ec_cuda *cu = ec_cuda_of(be);
	struct ec_cuda_stats keep = cu->st;

	memset(&cu->st, 0, sizeof(cu->st));
	memcpy(cu->st.device, keep.device, sizeof(keep.device));
	cu->st.driver_version = keep.driver_version;
	cu->st.vram_budget = keep.vram_budget;
	cu->st.slot_bytes = keep.slot_bytes;
	cu->st.n_slots = keep.n_slots;
	cu->st.prefetch_depth = keep.prefetch_depth;
	/* prefetches still pending count as issued: issued = used + wasted
	 * + pending holds across a reset */
	for (uint32_t i = 0; i < cu->slots.n_slots; i++)
		cu->st.prefetch_issued += cu->slots.s[i].prefetched;
}

static int plugin_measure_copy(struct ec_backend *be, uint64_t bytes,
			       double *d2d_gbps, double *h2d_gbps)
{
	struct ec_cuda *cu = ec_cuda_of(be);
	void *a = NULL, *b = NULL, *h = NULL;
	cudaEvent_t e0 = NULL, e1 = NULL;
	float ms_d = 0, ms_h = 0;
	const int reps = 10;
	int ret = 0;

#define TRY(call)                                                             \
	do {                                                                  \
		if (ret >= 0)                                                 \
			ret = ec_cuda_fail((call), #call, __FILE__, __LINE__); \
	} while (0)
	TRY(cudaMalloc(&a, bytes));
	TRY(cudaMalloc(&b, bytes));
	TRY(cudaMallocHost(&h, bytes));
	TRY(cudaEventCreate(&e0));
	TRY(cudaEventCreate(&e1));
	if (ret >= 0)
		memset(h, 1, bytes);
	/* warm up, then time */
	TRY(cudaMemcpyAsync(b, a, bytes, cudaMemcpyDeviceToDevice, cu->stream));
	TRY(cudaEventRecord(e0, cu->stream));
	for (int i = 0; i < reps; i++)
		TRY(cudaMemcpyAsync(b, a, bytes, cudaMemcpyDeviceToDevice,
				    cu->stream));
	TRY(cudaEventRecord(e1, cu->stream));
	TRY(cudaEventSynchronize(e1));
	TRY(cudaEventElapsedTime(&ms_d, e0, e1));
	TRY(cudaMemcpyAsync(a, h, bytes, cudaMemcpyHostToDevice, cu->stream));
	TRY(cudaEventRecord(e0, cu->stream));
	for (int i = 0; i < reps; i++)
		TRY(cudaMemcpyAsync(a, h, bytes, cudaMemcpyHostToDevice,
				    cu->stream));
	TRY(cudaEventRecord(e1, cu->stream));
	TRY(cudaEventSynchronize(e1));
	TRY(cudaEventElapsedTime(&ms_h, e0, e1));
#undef TRY
	if (ret >= 0) {
		*d2d_gbps = 2.0 * bytes * reps / (ms_d * 1e-3) / 1e9;
		*h2d_gbps = (double)bytes * reps / (ms_h * 1e-3) / 1e9;
	}
	cudaFree(a);
	cudaFree(b);
	if (h)
		cudaFreeHost(h);
	if (e0)
		cudaEventDestroy(e0);
	if (e1)
		cudaEventDestroy(e1);
	return ret;
}

static const struct ec_cuda_plugin plugin = {
	.abi = EC_CUDA_PLUGIN_ABI,
	.flags = EC_CUDA_PLUGIN_FLAGS,
	.create = plugin_create,
	.get_stats = plugin_get_stats,
	.reset_stats = plugin_reset_stats,
	.measure_copy = plugin_measure_copy,
};

extern "C" __attribute__((visibility("default"))) const struct ec_cuda_plugin *
ec_cuda_plugin_get(void)
{
	return &plugin;
}
