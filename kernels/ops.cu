// SPDX-License-Identifier: MIT
/*
 * Per-row and element-wise ops: RMSNorm (also q/k norm), bias, RoPE (NEOX
 * and NORM), SiLU*mul, scaled residual adds, row gathers and scatters,
 * embedding rows.  Products are rounded before sums (__fmul_rn) where the
 * CPU backend does so, to track it closely.
 */
#include <string.h>

#include "dequant.cuh"

#define ROW_THREADS 256

/* y (n, dim) = w * (x * 1/sqrt(mean(x^2) + eps)); y may be x */
__global__ void rmsnorm_kernel(float *y, const float *x, const float *w,
			       uint32_t dim, float eps)
{
	__shared__ double part[ROW_THREADS / 32];
	__shared__ float scale_s;
	const float *xr = x + (size_t)blockIdx.x * dim;
	float *yr = y + (size_t)blockIdx.x * dim;
	double ss = 0;

	for (uint32_t i = threadIdx.x; i < dim; i += blockDim.x)
		ss += (double)xr[i] * xr[i];
#pragma unroll
	for (int o = 16; o > 0; o >>= 1)
		ss += __shfl_xor_sync(EC_FULL_MASK, ss, o);
	if ((threadIdx.x & 31) == 0)
		part[threadIdx.x / 32] = ss;
	__syncthreads();
	if (threadIdx.x == 0) {
		double t = 0;

		for (uint32_t i = 0; i < blockDim.x / 32; i++)
			t += part[i];
		scale_s = 1.0f / sqrtf((float)(t / dim) + eps);
	}
	__syncthreads();
	for (uint32_t i = threadIdx.x; i < dim; i += blockDim.x)
		yr[i] = __fmul_rn(w[i], __fmul_rn(xr[i], scale_s));
}

void ec_cuda_rmsnorm(struct ec_backend *be, float *y, const float *x,
		     const struct ec_tensor *w, uint32_t n, uint32_t dim,
		     float eps)
{
	struct ec_cuda *cu = ec_cuda_of(be);
	const float *dw;
	int ret = ec_cuda_weight_f32(cu, w, &dw);

	if (ret >= 0 && n) {
		EC_LAUNCH(n, ROW_THREADS, 0, cu->stream, rmsnorm_kernel)(
			y, x, dw, dim, eps);
		ret = ec_cuda_fail(cudaGetLastError(), "rmsnorm_kernel",
				   __FILE__, __LINE__);
	}
	ec_cuda_stick(cu, ret);
}

__global__ void add_bias_kernel(float *x, const float *b, uint32_t n,
				uint32_t dim)
{
	size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x;

	if (i < (size_t)n * dim)
		x[i] += b[i % dim];
}

void ec_cuda_add_bias(struct ec_backend *be, float *x,
		      const struct ec_tensor *b, uint32_t n, uint32_t dim)
{
	struct ec_cuda *cu = ec_cuda_of(be);
	const float *db;
	int ret = ec_cuda_weight_f32(cu, b, &db);

	if (ret >= 0 && n) {
		EC_LAUNCH(ec_cuda_blocks((size_t)n * dim, 256), 256, 0,
			  cu->stream, add_bias_kernel)(
			x, db, n, dim);
		ret = ec_cuda_fail(cudaGetLastError(), "add_bias_kernel",
				   __FILE__, __LINE__);
	}
	ec_cuda_stick(cu, ret);
}

/* One thread per (token, head, pair); pair i is (v[i*a], v[i*a + b]) */
__global__ void rope_kernel(float *x, const int32_t *pos_dev,
			    struct ec_inline_i32 pos_inl, const float *inv_freq,
			    uint32_t n, uint32_t n_heads, uint32_t head_dim,
			    int norm_style)
{
	uint32_t half = head_dim / 2;
	size_t idx = blockIdx.x * (size_t)blockDim.x + threadIdx.x;
	size_t per_tok = (size_t)n_heads * half;
	uint32_t r, h, i, a, b;
	float p, angle, cs, sn, x0, x1;
	float *v;

	if (idx >= (size_t)n * per_tok)
		return;
	r = (uint32_t)(idx / per_tok);
	h = (uint32_t)(idx % per_tok / half);
	i = (uint32_t)(idx % half);
	p = (float)(pos_dev ? pos_dev[r] : pos_inl.v[r]);
	angle = __fmul_rn(p, inv_freq[i]);
	cs = cosf(angle);
	sn = sinf(angle);
	a = norm_style ? 2 : 1;
	b = norm_style ? 1 : half;
	v = x + ((size_t)r * n_heads + h) * head_dim;
	x0 = v[i * a];
	x1 = v[i * a + b];
	v[i * a] = __fmul_rn(x0, cs) - __fmul_rn(x1, sn);
	v[i * a + b] = __fmul_rn(x1, cs) + __fmul_rn(x0, sn);
}

static int rope_freqs(struct ec_cuda *cu, float theta, uint32_t head_dim)
{
	float f[EC_CUDA_MAX_HEAD_DIM / 2];

	if (cu->rope_theta == theta && cu->rope_dim == head_dim)
		return 0;
	/* exactly the CPU backend's float32 inverse frequencies */
	for (uint32_t i = 0; i < head_dim / 2; i++)
		f[i] = 1.0f / powf(theta, (float)(2 * i) / (float)head_dim);
	EC_CUDA_CHECK(cudaMemcpyAsync(cu->d_inv_freq, f,
				      head_dim / 2 * sizeof(float),
				      cudaMemcpyHostToDevice, cu->stream));
	EC_CUDA_CHECK(cudaStreamSynchronize(cu->stream));
	cu->rope_theta = theta;
	cu->rope_dim = head_dim;
	return 0;
}

static int rope(struct ec_cuda *cu, float *x, const int32_t *pos, uint32_t n,
		uint32_t n_heads, uint32_t head_dim, float theta, int style)
{
	struct ec_inline_i32 inl;
	const int32_t *dpos = NULL;
	size_t total = (size_t)n * n_heads * (head_dim / 2);
	int ret;

	if (head_dim < 2 || head_dim % 2 || head_dim > EC_CUDA_MAX_HEAD_DIM)
		return ec_cuda_errorf(-EC_EUNSUPPORTED, "cuda backend: rope: "
				      "head_dim %u", head_dim);
	if (!total)
		return 0;
	ret = rope_freqs(cu, theta, head_dim);
	if (ret < 0)
		return ret;
	if (n <= EC_CUDA_INLINE_IDS) {
		memcpy(inl.v, pos, n * sizeof(int32_t));
	} else {
		ret = ec_cuda_upload_idx(cu, pos, NULL, n);
		if (ret < 0)
			return ret;
		dpos = cu->d_idx;
	}
	EC_LAUNCH(ec_cuda_blocks(total, 256), 256, 0, cu->stream, rope_kernel)(
		x, dpos, inl, cu->d_inv_freq, n, n_heads, head_dim,
		style == EC_ROPE_NORM);
	EC_CUDA_LAUNCHED();
	return 0;
}

void ec_cuda_rope(struct ec_backend *be, float *x, const int32_t *pos,
		  uint32_t n, uint32_t n_heads, uint32_t head_dim, float theta,
		  int style)
{
	struct ec_cuda *cu = ec_cuda_of(be);

	ec_cuda_stick(cu, rope(cu, x, pos, n, n_heads, head_dim, theta,
			       style));
}

__global__ void silu_mul_kernel(float *g, const float *u, size_t count)
{
	size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x;

	if (i < count)
		g[i] = g[i] / (1.0f + expf(-g[i])) * u[i];
}

int ec_cuda_silu_mul_dev(struct ec_cuda *cu, float *g, const float *u,
			 size_t count)
{
	if (!count)
		return 0;
	EC_LAUNCH(ec_cuda_blocks(count, 256), 256, 0,
		  cu->stream, silu_mul_kernel)(
		g, u, count);
	EC_CUDA_LAUNCHED();
	return 0;
}

void ec_cuda_silu_mul(struct ec_backend *be, float *g, const float *u,
		      uint32_t n, uint32_t dim)
{
	struct ec_cuda *cu = ec_cuda_of(be);

	ec_cuda_stick(cu, ec_cuda_silu_mul_dev(cu, g, u, (size_t)n * dim));
}

/* y (n, dim) += s[r] * x (n, dim), the product rounded before the add */
__global__ void add_scaled_kernel(float *y, const float *x,
				  const float *s_dev,
				  struct ec_inline_f32 s_inl, int has_scale,
				  uint32_t n, uint32_t dim)
{
	size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x;
	uint32_t r;
	float s = 1.0f;

	if (i >= (size_t)n * dim)
		return;
	r = (uint32_t)(i / dim);
	if (has_scale)
		s = s_dev ? s_dev[r] : s_inl.v[r];
	y[i] = y[i] + __fmul_rn(s, x[i]);
}

void ec_cuda_add_scaled(struct ec_backend *be, float *y, const float *x,
			const float *scale, uint32_t n, uint32_t dim)
{
	struct ec_cuda *cu = ec_cuda_of(be);
	struct ec_inline_f32 inl;
	const float *ds = NULL;
	size_t total = (size_t)n * dim;
	int ret = 0;

	if (!total)
		return;
	if (scale && n <= EC_CUDA_INLINE_IDS) {
		memcpy(inl.v, scale, n * sizeof(float));
	} else if (scale) {
		ret = ec_cuda_upload_idx(cu, NULL, scale, n);
		ds = cu->d_val;
	}
	if (ret >= 0) {
		EC_LAUNCH(ec_cuda_blocks(total, 256), 256, 0,
			  cu->stream, add_scaled_kernel)(
			y, x, ds, inl, scale != NULL,
						  n, dim);
		ret = ec_cuda_fail(cudaGetLastError(), "add_scaled_kernel",
				   __FILE__, __LINE__);
	}
	ec_cuda_stick(cu, ret);
}

/* dst (n, cols) = rows ids[t] of the table, dequantised */
template <int T>
__global__ void get_rows_kernel(float *dst, const uint8_t *table,
				uint64_t row_bytes, uint32_t cols,
				const int32_t *ids_dev,
				struct ec_inline_i32 ids_inl)
{
	uint32_t t = blockIdx.y;
	int32_t id = ids_dev ? ids_dev[t] : ids_inl.v[t];
	const uint8_t *row = table + (uint64_t)id * row_bytes;

	for (uint32_t c = blockIdx.x * blockDim.x + threadIdx.x; c < cols;
	     c += gridDim.x * blockDim.x)
		dst[(size_t)t * cols + c] = ec_elem<T>(row, c);
}

int ec_cuda_get_rows(struct ec_backend *be, float *dst,
		     const struct ec_tensor *t, const int32_t *ids,
		     uint32_t n)
{
	struct ec_cuda *cu = ec_cuda_of(be);
	uint32_t cols = (uint32_t)t->ne[0];
	uint64_t row_bytes = ec_cuda_row_bytes(t->type, cols);
	struct ec_inline_i32 inl;
	const int32_t *dids = NULL;
	const void *w;
	int ret = ec_cuda_unstick(cu);

	if (ret < 0)
		return ret;
	for (uint32_t i = 0; i < n; i++)
		if (ids[i] < 0 || (uint64_t)ids[i] >= t->ne[1])
			return ec_cuda_errorf(-EC_EINVAL, "cuda backend: "
					      "get_rows: row %d of %llu",
					      ids[i],
					      (unsigned long long)t->ne[1]);
	ret = ec_cuda_weight(cu, t, &w);
	if (ret < 0 || !n)
		return ret;
	if (n <= EC_CUDA_INLINE_IDS) {
		memcpy(inl.v, ids, n * sizeof(int32_t));
	} else {
		ret = ec_cuda_upload_idx(cu, ids, NULL, n);
		if (ret < 0)
			return ret;
		dids = cu->d_idx;
	}
	dim3 grid(ec_cuda_blocks(cols, 256), n);

	EC_TYPE_SWITCH(t->type, T,
		       EC_LAUNCH(grid, 256, 0, cu->stream, get_rows_kernel<T>)(
			       dst, (const uint8_t *)w, row_bytes, cols, dids,
			       inl));
	EC_CUDA_LAUNCHED();
	return 0;
}

/* dst (n, dim) = src[idx[i], :] */
__global__ void gather_kernel(float *dst, const float *src,
			      const int32_t *idx, uint32_t dim)
{
	const float *s = src + (size_t)idx[blockIdx.y] * dim;
	float *d = dst + (size_t)blockIdx.y * dim;

	for (uint32_t c = blockIdx.x * blockDim.x + threadIdx.x; c < dim;
	     c += gridDim.x * blockDim.x)
		d[c] = s[c];
}

int ec_cuda_gather_dev(struct ec_cuda *cu, float *dst, const float *src,
		       const int32_t *d_idx, uint32_t n, uint32_t dim)
{
	if (!n || !dim)
		return 0;
	dim3 grid(ec_cuda_blocks(dim, 256), n);

	EC_LAUNCH(grid, 256, 0, cu->stream, gather_kernel)(
		dst, src, d_idx, dim);
	EC_CUDA_LAUNCHED();
	return 0;
}

/*
 * y[idx[i], :] += scale[i] * x(i, :), rows taken in order by each column's
 * thread, so repeated indices add up deterministically.
 */
__global__ void scatter_add_kernel(float *y, const float *x,
				   const int32_t *idx, const float *scale,
				   uint32_t n, uint32_t dim)
{
	uint32_t c = blockIdx.x * blockDim.x + threadIdx.x;

	if (c >= dim)
		return;
	for (uint32_t i = 0; i < n; i++) {
		float s = scale ? scale[i] : 1.0f;
		float *o = y + (size_t)idx[i] * dim + c;

		*o = *o + __fmul_rn(s, x[(size_t)i * dim + c]);
	}
}

int ec_cuda_scatter_add_dev(struct ec_cuda *cu, float *y, const float *x,
			    const int32_t *d_idx, const float *d_scale,
			    uint32_t n, uint32_t dim)
{
	if (!n || !dim)
		return 0;
	EC_LAUNCH(ec_cuda_blocks(dim, 128), 128, 0,
		  cu->stream, scatter_add_kernel)(
		y, x, d_idx, d_scale, n, dim);
	EC_CUDA_LAUNCHED();
	return 0;
}

void ec_cuda_gather(struct ec_backend *be, float *dst, const float *src,
		    const int32_t *idx, uint32_t n, uint32_t dim)
{
	struct ec_cuda *cu = ec_cuda_of(be);
	int ret = ec_cuda_upload_idx(cu, idx, NULL, n);

	if (ret >= 0)
		ret = ec_cuda_gather_dev(cu, dst, src, cu->d_idx, n, dim);
	ec_cuda_stick(cu, ret);
}

void ec_cuda_scatter_add(struct ec_backend *be, float *y, const float *x,
			 const int32_t *idx, const float *scale, uint32_t n,
			 uint32_t dim)
{
	struct ec_cuda *cu = ec_cuda_of(be);
	int ret = ec_cuda_upload_idx(cu, idx, scale, n);

	if (ret >= 0)
		ret = ec_cuda_scatter_add_dev(cu, y, x, cu->d_idx,
					      scale ? cu->d_val : NULL, n, dim);
	ec_cuda_stick(cu, ret);
}
