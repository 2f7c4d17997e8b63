// SPDX-License-Identifier: MIT
/*
 * cuBLAS for the emulation: handles bound to a stream, and GEMM as a
 * plain triple loop (column-major, transposes and leading dimensions
 * honoured, float products summed in float in k order).  Arguments are
 * checked as cuBLAS checks them; the product runs in stream order.
 */
#include "cublas_v2.h"

#include <stdint.h>

#include "cuda_bf16.h"
#include "cuda_fp16.h"
#include "emu.h"

struct cublasContext {
	cudaStream_t stream;
	cublasMath_t math;
	cublasPointerMode_t ptr_mode;
};

namespace
{
/* element (i, j) of op(M), M column-major with leading dimension ld */
template <class T> struct mat {
	const T *p;
	int ld;
	bool trans;

	float at(int i, int j) const
	{
		size_t o = trans ? (size_t)j + (size_t)i * ld
				 : (size_t)i + (size_t)j * ld;

		return (float)p[o];
	}
};

template <class TA, class TB, class TC>
void gemm(int m, int n, int k, float alpha, mat<TA> a, mat<TB> b,
	  float beta, TC *c, int ldc)
{
	for (int j = 0; j < n; j++)
		for (int i = 0; i < m; i++) {
			TC *o = c + (size_t)i + (size_t)j * ldc;
			float s = 0.0f;

			for (int l = 0; l < k; l++)
				s += a.at(i, l) * b.at(l, j);
			s *= alpha;
			/* beta == 0: C is not read (it may hold NaN) */
			if (beta != 0.0f)
				s += beta * (float)*o;
			*o = (TC)s;
		}
}

cublasStatus_t check(cublasHandle_t h, cublasOperation_t ta,
		     cublasOperation_t tb, int m, int n, int k, int lda,
		     int ldb, int ldc)
{
	int ra = ta == CUBLAS_OP_N ? m : k, rb = tb == CUBLAS_OP_N ? k : n;

	if (!h)
		return CUBLAS_STATUS_NOT_INITIALIZED;
	if ((unsigned int)ta > CUBLAS_OP_C || (unsigned int)tb > CUBLAS_OP_C)
		return CUBLAS_STATUS_INVALID_VALUE;
	if (m < 0 || n < 0 || k < 0 || lda < (ra > 1 ? ra : 1) ||
	    ldb < (rb > 1 ? rb : 1) || ldc < (m > 1 ? m : 1))
		return CUBLAS_STATUS_INVALID_VALUE;
	return CUBLAS_STATUS_SUCCESS;
}

cublasStatus_t submit(cublasHandle_t h, const char *what,
		      ec_emu::op_fn fn)
{
	cudaError_t e = ec_emu::enqueue(h->stream, what, std::move(fn));

	if (e == cudaSuccess)
		return CUBLAS_STATUS_SUCCESS;
	ec_emu::ret(e);
	return CUBLAS_STATUS_EXECUTION_FAILED;
}
} /* namespace */

cublasStatus_t cublasCreate(cublasHandle_t *handle)
{
	if (!handle)
		return CUBLAS_STATUS_INVALID_VALUE;
	*handle = new cublasContext{ 0, CUBLAS_DEFAULT_MATH,
				     CUBLAS_POINTER_MODE_HOST };
	return CUBLAS_STATUS_SUCCESS;
}

cublasStatus_t cublasDestroy(cublasHandle_t handle)
{
	EC_EMU_LOCKED();

	if (!handle)
		return CUBLAS_STATUS_NOT_INITIALIZED;
	ec_emu::drain_all();
	delete handle;
	return CUBLAS_STATUS_SUCCESS;
}

cublasStatus_t cublasSetStream(cublasHandle_t handle, cudaStream_t stream)
{
	EC_EMU_LOCKED();

	if (!handle)
		return CUBLAS_STATUS_NOT_INITIALIZED;
	if (!ec_emu::stream_ok(stream))
		return CUBLAS_STATUS_INVALID_VALUE;
	handle->stream = stream;
	return CUBLAS_STATUS_SUCCESS;
}

cublasStatus_t cublasGetStream(cublasHandle_t handle, cudaStream_t *stream)
{
	if (!handle)
		return CUBLAS_STATUS_NOT_INITIALIZED;
	if (!stream)
		return CUBLAS_STATUS_INVALID_VALUE;
	*stream = handle->stream;
	return CUBLAS_STATUS_SUCCESS;
}

cublasStatus_t cublasSetMathMode(cublasHandle_t handle, cublasMath_t mode)
{
	if (!handle)
		return CUBLAS_STATUS_NOT_INITIALIZED;
	handle->math = mode;	/* TF32 would round inputs; not emulated */
	return CUBLAS_STATUS_SUCCESS;
}

cublasStatus_t cublasSetPointerMode(cublasHandle_t handle,
				    cublasPointerMode_t mode)
{
	if (!handle)
		return CUBLAS_STATUS_NOT_INITIALIZED;
	if (mode != CUBLAS_POINTER_MODE_HOST &&
	    mode != CUBLAS_POINTER_MODE_DEVICE)
		return CUBLAS_STATUS_INVALID_VALUE;
	handle->ptr_mode = mode;
	return CUBLAS_STATUS_SUCCESS;
}

cublasStatus_t cublasSgemmStridedBatched(
	cublasHandle_t handle, cublasOperation_t transa,
	cublasOperation_t transb, int m, int n, int k, const float *alpha,
	const float *A, int lda, long long strideA, const float *B, int ldb,
	long long strideB, const float *beta, float *C, int ldc,
	long long strideC, int batchCount)
{
	EC_EMU_LOCKED();
	cublasStatus_t s = check(handle, transa, transb, m, n, k, lda, ldb,
				 ldc);
	bool dev = handle && handle->ptr_mode == CUBLAS_POINTER_MODE_DEVICE;

	if (s != CUBLAS_STATUS_SUCCESS)
		return s;
	if (!alpha || !beta || batchCount < 0)
		return CUBLAS_STATUS_INVALID_VALUE;
	if (!m || !n || !batchCount)
		return CUBLAS_STATUS_SUCCESS;
	/* scalars: read now from the host, or when the GEMM runs from device */
	float al = dev ? 0.0f : *alpha;
	float be = dev ? 0.0f : *beta;

	return submit(handle, "cublasSgemm", [=]() {
		float a = dev ? *alpha : al, b = dev ? *beta : be;

		for (int i = 0; i < batchCount; i++)
			gemm(m, n, k, a,
			     mat<float>{ A + i * strideA, lda,
					 transa != CUBLAS_OP_N },
			     mat<float>{ B + i * strideB, ldb,
					 transb != CUBLAS_OP_N },
			     b, C + i * strideC, ldc);
		return cudaSuccess;
	});
}

cublasStatus_t cublasSgemm(cublasHandle_t handle, cublasOperation_t transa,
			   cublasOperation_t transb, int m, int n, int k,
			   const float *alpha, const float *A, int lda,
			   const float *B, int ldb, const float *beta,
			   float *C, int ldc)
{
	return cublasSgemmStridedBatched(handle, transa, transb, m, n, k,
					 alpha, A, lda, 0, B, ldb, 0, beta, C,
					 ldc, 0, 1);
}

namespace
{
template <class TA, class TB>
cudaError_t gemm_ex_c(int m, int n, int k, float al, mat<TA> a, mat<TB> b,
		      float be, void *C, cudaDataType ct, int ldc)
{
	switch (ct) {
	case CUDA_R_32F:
		gemm(m, n, k, al, a, b, be, (float *)C, ldc);
		break;
	case CUDA_R_16F:
		gemm(m, n, k, al, a, b, be, (__half *)C, ldc);
		break;
	default:
		gemm(m, n, k, al, a, b, be, (__nv_bfloat16 *)C, ldc);
		break;
	}
	return cudaSuccess;
}

template <class TA>
cudaError_t gemm_ex_b(int m, int n, int k, float al, mat<TA> a,
		      const void *B, cudaDataType bt, int ldb, bool tb,
		      float be, void *C, cudaDataType ct, int ldc)
{
	switch (bt) {
	case CUDA_R_32F:
		return gemm_ex_c(m, n, k, al, a,
				 mat<float>{ (const float *)B, ldb, tb }, be, C,
				 ct, ldc);
	case CUDA_R_16F:
		return gemm_ex_c(m, n, k, al, a,
				 mat<__half>{ (const __half *)B, ldb, tb }, be,
				 C, ct, ldc);
	default:
		return gemm_ex_c(m, n, k, al, a,
				 mat<__nv_bfloat16>{
					 (const __nv_bfloat16 *)B, ldb, tb },
				 be, C, ct, ldc);
	}
}

bool type_ok(cudaDataType t)
{
	return t == CUDA_R_32F || t == CUDA_R_16F || t == CUDA_R_16BF;
}
} /* namespace */

cublasStatus_t cublasGemmEx(cublasHandle_t handle, cublasOperation_t transa,
			    cublasOperation_t transb, int m, int n, int k,
			    const void *alpha, const void *A,
			    cudaDataType Atype, int lda, const void *B,
			    cudaDataType Btype, int ldb, const void *beta,
			    void *C, cudaDataType Ctype, int ldc,
			    cublasComputeType_t computeType,
			    cublasGemmAlgo_t algo)
{
	EC_EMU_LOCKED();
	cublasStatus_t s = check(handle, transa, transb, m, n, k, lda, ldb,
				 ldc);
	bool dev = handle && handle->ptr_mode == CUBLAS_POINTER_MODE_DEVICE;

	if (s != CUBLAS_STATUS_SUCCESS)
		return s;
	if (!alpha || !beta)
		return CUBLAS_STATUS_INVALID_VALUE;
	if (!type_ok(Atype) || !type_ok(Btype) || !type_ok(Ctype) ||
	    computeType < CUBLAS_COMPUTE_32F ||
	    computeType > CUBLAS_COMPUTE_32F_FAST_TF32)
		return CUBLAS_STATUS_NOT_SUPPORTED;
	if (!m || !n)
		return CUBLAS_STATUS_SUCCESS;
	float al = dev ? 0.0f : *(const float *)alpha;
	float be = dev ? 0.0f : *(const float *)beta;
	bool ta = transa != CUBLAS_OP_N, tb = transb != CUBLAS_OP_N;

	(void)algo;
	return submit(handle, "cublasGemmEx", [=]() {
		float a = dev ? *(const float *)alpha : al;
		float b = dev ? *(const float *)beta : be;

		switch (Atype) {
		case CUDA_R_32F:
			return gemm_ex_b(m, n, k, a,
					 mat<float>{ (const float *)A, lda, ta },
					 B, Btype, ldb, tb, b, C, Ctype, ldc);
		case CUDA_R_16F:
			return gemm_ex_b(m, n, k, a,
					 mat<__half>{ (const __half *)A, lda,
						      ta },
					 B, Btype, ldb, tb, b, C, Ctype, ldc);
		default:
			return gemm_ex_b(m, n, k, a,
					 mat<__nv_bfloat16>{
						 (const __nv_bfloat16 *)A, lda,
						 ta },
					 B, Btype, ldb, tb, b, C, Ctype, ldc);
		}
	});
}
