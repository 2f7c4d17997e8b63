// SPDX-License-Identifier: MIT
/*
 * CPU backend matmul: every weight type, shape and kernel set against a
 * double-precision reference on ec_dequantize (with the exact and the
 * requantised activations), the shapes and types it must refuse, and an
 * informational (unchecked) Q8_0 GEMV throughput.
 */
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cpu_test_util.h"

struct mm_ref {
	double *exact; /* (n, rows) W . x in double */
	double *qref;  /* (n, rows) W . requantised x in double */
	double *mag;   /* (n, rows) sum |w||x| (+ |min terms| for Q4_K) */
	double *qerr;  /* (n, rows) bound on |exact - qref| */
};

/*
 * Bound on the error of quantising the activations: a block of B values
 * with largest magnitude a is stored as d * q with d = a / 127 and q
 * rounded to nearest, so each |x - d q| <= d / 2 = a / 254 (up to f32
 * rounding of d and 1/d, < 1e-6 relative).  Hence |W.x - W.xq| <=
 * sum_j |w_j| * a(block of j) / 254.
 */
static void reference(const struct ec_tensor *w, const float *x, uint32_t n,
		      struct mm_ref *r)
{
	uint32_t cols = w->ne[0], rows = w->ne[1];
	uint32_t qb = w->type == EC_Q8_0			   ? 32
		      : (w->type == EC_Q4_K || w->type == EC_Q6_K) ? 256
								   : 0;
	uint64_t row_bytes = ec_tensor_row_bytes(w);
	float *wf = malloc(cols * sizeof(float));
	float *mins = calloc(cols, sizeof(float));
	float *xq = malloc(cols * sizeof(float));
	float *amax = malloc(cols * sizeof(float));
	uint8_t *tmp = malloc(row_bytes);

	r->exact = malloc((size_t)n * rows * sizeof(double));
	r->qref = malloc((size_t)n * rows * sizeof(double));
	r->mag = malloc((size_t)n * rows * sizeof(double));
	r->qerr = malloc((size_t)n * rows * sizeof(double));
	for (uint32_t row = 0; row < rows; row++) {
		const uint8_t *wr = (const uint8_t *)w->data + row * row_bytes;

		ec_dequantize(w->type, wr, wf, cols);
		if (w->type == EC_Q4_K) {
			/* -dmin * m per element: the block with qs zeroed */
			memcpy(tmp, wr, row_bytes);
			for (uint32_t b = 0; b < cols / 256; b++)
				memset(tmp + b * 144 + 16, 0, 128);
			ec_dequantize(EC_Q4_K, tmp, mins, cols);
		}
		for (uint32_t tok = 0; tok < n; tok++) {
			const float *xr = x + (size_t)tok * cols;
			double e = 0, q = 0, m = 0, b = 0;

			requantized(w->type, xr, cols, xq);
			for (uint32_t i = 0; qb && i < cols; i += qb) {
				float a = 0;

				for (uint32_t j = 0; j < qb; j++)
					a = fmaxf(a, fabsf(xr[i + j]));
				for (uint32_t j = 0; j < qb; j++)
					amax[i + j] = a;
			}
			for (uint32_t i = 0; i < cols; i++) {
				e += (double)wf[i] * xr[i];
				q += (double)wf[i] * xq[i];
				m += (fabs(wf[i]) + 2 * fabs(mins[i])) *
				     fabs(xr[i]);
				if (qb)
					b += fabs(wf[i]) * amax[i] / 254.0;
			}
			r->exact[(size_t)tok * rows + row] = e;
			r->qref[(size_t)tok * rows + row] = q;
			r->mag[(size_t)tok * rows + row] = m;
			r->qerr[(size_t)tok * rows + row] = b;
		}
	}
	free(wf);
	free(mins);
	free(xq);
	free(amax);
	free(tmp);
}

static void free_ref(struct mm_ref *r)
{
	free(r->exact);
	free(r->qref);
	free(r->mag);
	free(r->qerr);
}

/*
 * Tolerances, relative to m = sum |w_j x_j|:
 *  - plain types (F32/F16/BF16 weights, f32 activations): f32 FMA sums in
 *    a few interleaved accumulators, error ~ sqrt(cols) * 2^-24 * m;
 *    allowed 1e-5 * m.
 *  - quantised types against the same requantised activations (what the
 *    kernels compute exactly in integers, then scale in f32): 1e-5 * m.
 *  - quantised types against the exact activations: the bound above,
 *    times 1.01, plus 1e-5 * m.
 */
static void check_matmul(int isa, const struct ec_tensor *w, const float *x,
			 uint32_t n, int acc, const struct mm_ref *r)
{
	uint32_t rows = w->ne[1];
	const char *tn = ec_dtype_info(w->type)->name;
	int quant =
	    w->type == EC_Q8_0 || w->type == EC_Q4_K || w->type == EC_Q6_K;
	float *y = be[isa]->ops->alloc(be[isa], (size_t)n * rows);
	double worst_q = 0, worst_e = 0;
	int ret;

	for (size_t i = 0; i < (size_t)n * rows; i++)
		y[i] = acc ? (float)(i % 5) - 2.0f : NAN;
	ret = be[isa]->ops->matmul(be[isa], y, w, x, n, acc);
	EC_CHECK(ret == 0, "%s matmul %s: %s", isas[isa], tn, ec_error_msg());
	for (size_t i = 0; i < (size_t)n * rows; i++) {
		double got = y[i] - (acc ? (double)(i % 5) - 2.0 : 0.0);
		double tol = 1e-5 * r->mag[i] + 1e-30;
		double eq =
		    fabs(got - (quant ? r->qref[i] : r->exact[i])) / tol;
		double ee = fabs(got - r->exact[i]) / (1.01 * r->qerr[i] + tol);

		if (!(eq <= worst_q))
			worst_q = isnan(eq) ? INFINITY : eq;
		if (!(ee <= worst_e))
			worst_e = isnan(ee) ? INFINITY : ee;
	}
	EC_CHECK(worst_q <= 1.0,
		 "%s matmul %s [%u x %llu] n=%u acc=%d: "
		 "error %.3g of tolerance",
		 isas[isa], tn, rows, (unsigned long long)w->ne[0], n, acc,
		 worst_q);
	if (quant)
		EC_CHECK(worst_e <= 1.0,
			 "%s matmul %s [%u x %llu] n=%u: "
			 "error vs exact activations %.3g of the "
			 "quantisation bound",
			 isas[isa], tn, rows, (unsigned long long)w->ne[0], n,
			 worst_e);
	be[isa]->ops->free(be[isa], y);
}

static void test_matmul(void)
{
	static const enum ec_dtype types[] = {EC_F32,  EC_F16,	EC_BF16,
					      EC_Q8_0, EC_Q4_K, EC_Q6_K};
	static const uint32_t shapes[][2] = {
	    /* rows, cols */
	    {37, 256},
	    {768, 2048},
	    {2048, 768},
	    {5, 512},
	};
	static const uint32_t ns[] = {1, 7};

	for (size_t ti = 0; ti < 6; ti++) {
		for (size_t si = 0; si < 4; si++) {
			struct ec_tensor w;
			uint32_t rows = shapes[si][0], cols = shapes[si][1];
			float *x = malloc((size_t)7 * cols * sizeof(float));

			make_weight(&w, types[ti], rows, cols);
			/* varied magnitudes so blocks get different scales */
			for (uint32_t i = 0; i < 7 * cols; i++)
				x[i] = rndf() * (1 + (i / 32) % 7) *
				       (i % 97 == 0 ? 20 : 1);
			for (size_t k = 0; k < 2; k++) {
				struct mm_ref r;

				reference(&w, x, ns[k], &r);
				for (int isa = 0; isa < N_ISA; isa++)
					if (be[isa])
						check_matmul(
						    isa, &w, x, ns[k],
						    (int)((si + k) & 1), &r);
				free_ref(&r);
			}
			free((void *)w.data);
			free(x);
		}
	}
	EC_CHECK(!q8_bias_bad, "q8 activation biases (-16 * block sum)");
}

static void test_matmul_errors(void)
{
	struct ec_tensor w;
	float x[64], y[4];

	make_weight(&w, EC_Q8_0, 2, 64);
	w.ne[0] = 48; /* not whole blocks */
	EC_CHECK(be[0]->ops->matmul(be[0], y, &w, x, 1, 0) == -EC_ESHAPE,
		 "matmul rejects a partial-block row");
	w.ne[0] = 64;
	w.type = 2; /* Q4_0 */
	EC_CHECK(be[0]->ops->matmul(be[0], y, &w, x, 1, 0) ==
			 -EC_EUNSUPPORTED &&
		     strstr(ec_error_msg(), "type"),
		 "matmul rejects an unsupported type");
	free((void *)w.data);
}

static double now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec + ts.tv_nsec * 1e-9;
}

/*
 * Information only, never a check (no count, no pass or fail: timings
 * vary with the machine and its load): GB/s of Q8_0 weight bytes for
 * y = W x, W [768, 2048] (an expert's gate), n = 1: one hot matrix
 * (cache), then 64 matrices in turn (108 MB, from memory, as expert
 * weights are).
 */
static void bench_q8_0(void)
{
#if defined(__SANITIZE_ADDRESS__)
	printf("information: throughput not measured in the sanitizer "
	       "build\n");
	return;
#endif
	const uint32_t rows = 768, cols = 2048, n_mat = 64;
	struct ec_tensor w[64];
	float x[2048], y[768];

	for (uint32_t m = 0; m < n_mat; m++)
		make_weight(&w[m], EC_Q8_0, rows, cols);
	fill(x, cols, 1.0f);
	printf("information (not checked): Q8_0 GEMV throughput\n");
	for (int isa = 0; isa < N_ISA; isa++) {
		for (uint32_t threads = 1; threads <= 2; threads++) {
			struct ec_backend *b;
			double gbs[2];

			if (!be[isa] ||
			    ec_backend_cpu_create_isa(threads, isas[isa], &b))
				continue;
			for (int cold = 0; cold < 2; cold++) {
				double t0 = now_s(), t;
				uint64_t bytes = 0;
				uint32_t it = 0;

				do {
					const struct ec_tensor *wm =
					    &w[cold ? it % n_mat : 0];

					b->ops->matmul(b, y, wm, x, 1, 0);
					bytes += wm->nbytes;
					it++;
				} while ((t = now_s() - t0) < 0.25);
				gbs[cold] = bytes / t / 1e9;
			}
			printf("throughput %-7s %u thread(s): Q8_0 768x2048 "
			       "n=1: %.1f GB/s hot, %.1f GB/s from memory\n",
			       isas[isa], threads, gbs[0], gbs[1]);
			b->ops->destroy(b);
		}
	}
	for (uint32_t m = 0; m < n_mat; m++)
		free((void *)w[m].data);
}

int main(void)
{
	if (!cpu_test_open()) {
		test_matmul_errors();
		test_matmul();
		bench_q8_0();
	}
	cpu_test_close();
	return ec_test_done();
}
