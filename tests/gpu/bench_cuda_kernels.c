// SPDX-License-Identifier: MIT
/*
 * Validate-then-benchmark for the CUDA kernels at real model sizes
 * (Qwen3-30B-A3B's expert shapes): each kernel's output is first checked
 * against the CPU reference, then timed.  Bandwidths are stated as a
 * fraction of the device's own measured copy bandwidth.  Prints a
 * markdown table; needs a GPU (exit 77 without one).
 *
 * Quantised weights run twice, side by side: "exact" (f32 activations,
 * exact_f32_act; checked against a double reference within 2e-5) and
 * "8-bit act" (the default: activations rounded to 8 bits as the CPU
 * backend does, integer dot products; checked against the CPU backend
 * within 1e-5 for a GEMV, 5e-3 for the expert FFN, whose hidden state is
 * rounded again; see test_cuda_ops.c and test_cuda_moe.c).
 */
#include "gpu_test.h"

#define EMBD 2048
#define FF 768
#define TOPK 8
#define Q8_TOL 1e-5
#define MOE_Q8_TOL 5e-3

static double d2d_gbps, h2d_gbps;
static struct ec_backend *gt_exact;	/* exact_f32_act */

static int is_quant(enum ec_dtype t)
{
	return t == EC_Q8_0 || t == EC_Q4_K || t == EC_Q6_K;
}

static struct ec_backend *cuda_backend(const struct ec_model *m, bool exact,
				       char *why, size_t why_len)
{
	struct ec_backend_cuda_params p = { .model = m,
					    .exact_f32_act = exact };
	struct ec_backend *be = NULL;

	if (ec_backend_cuda_create(&p, &be) < 0) {
		snprintf(why, why_len, "%s", ec_error_msg());
		return NULL;
	}
	return be;
}

static void row(const char *what, const char *shape, double us,
		double gbps)
{
	if (gbps > 0)
		printf("| %s | %s | %.1f | %.0f | %.0f%% |\n", what, shape, us,
		       gbps, 100.0 * gbps / d2d_gbps);
	else
		printf("| %s | %s | %.1f | | |\n", what, shape, us);
	fflush(stdout);
}

/*
 * Check rows [0, nr) of y (n, rows) = x . W^T against a double reference
 * of the exactly dequantised weights.
 */
static double gemv_ref_err(const struct ec_tensor *t, const float *x,
			   uint32_t n, const float *y, uint32_t nr)
{
	uint32_t rows = (uint32_t)t->ne[1], cols = (uint32_t)t->ne[0];
	float *wf = malloc(sizeof(float) * nr * cols);
	float *ref = malloc(sizeof(float) * n * nr);
	float *got = malloc(sizeof(float) * n * nr);
	double e;

	ec_dequantize(t->type, t->data, wf, (uint64_t)nr * cols);
	for (uint32_t i = 0; i < n; i++)
		for (uint32_t o = 0; o < nr; o++) {
			double s = 0;

			for (uint32_t c = 0; c < cols; c++)
				s += (double)wf[(size_t)o * cols + c] *
				     x[(size_t)i * cols + c];
			ref[i * nr + o] = (float)s;
			got[i * nr + o] = y[(size_t)i * rows + o];
		}
	e = gt_rel(got, ref, (size_t)n * nr);
	free(wf);
	free(ref);
	free(got);
	return e;
}

static void bench_gemv(struct ec_backend *be, enum ec_dtype type, uint32_t n)
{
	const uint32_t rows = 8192, cols = 8192;
	struct gt_rng r = { 41 + type };
	void *w = gt_keep(ec_dtype_bytes(type, (uint64_t)rows * cols));
	float *x = gt_frand(&r, (size_t)n * cols, 1.0f);
	float *y = malloc(sizeof(float) * n * rows);
	float *dx = gt_up(be, x, (size_t)n * cols);
	float *dy = gt_up(be, NULL, (size_t)n * rows);
	int q8 = be != gt_exact && is_quant(type);
	struct ec_tensor t;
	const int reps = 30;
	char shape[64], what[64];
	double t0, dt, e;
	int ret;

	gt_fill(&r, type, w, (uint64_t)rows * cols, 0.01f);
	gt_view(&t, type, cols, rows, w);
	snprintf(shape, sizeof(shape), "%s %ux%u, %u token%s",
		 gt_type_name(type), rows, cols, n, n > 1 ? "s" : "");
	snprintf(what, sizeof(what), "GEMV (matmul)%s", !is_quant(type) ? ""
		 : q8 ? ", 8-bit act" : ", exact");
	/* validate: 8-bit path against the CPU backend (all rows), exact
	 * against the double reference (the first 64 rows) */
	ret = be->ops->matmul(be, dy, &t, dx, n, 0);
	gt_down(be, y, dy, (size_t)n * rows);
	if (q8) {
		float *cpu = malloc(sizeof(float) * n * rows);

		gt_cpu->ops->matmul(gt_cpu, cpu, &t, x, n, 0);
		e = gt_rel(y, cpu, (size_t)n * rows);
		free(cpu);
	} else {
		e = gemv_ref_err(&t, x, n, y, 64);
	}
	EC_CHECK(ret == 0 && e <= (q8 ? Q8_TOL : 2e-5), "%s %s: ret %d rel "
		 "err %.3g (%s)", what, shape, ret, e, ec_error_msg());
	for (int i = 0; i < 3; i++)
		be->ops->matmul(be, dy, &t, dx, n, 0);
	be->ops->sync(be);
	t0 = gt_now();
	for (int i = 0; i < reps; i++)
		be->ops->matmul(be, dy, &t, dx, n, 0);
	be->ops->sync(be);
	dt = (gt_now() - t0) / reps;
	row(what, shape, dt * 1e6, t.nbytes / dt / 1e9);
	be->ops->free(be, dx);
	be->ops->free(be, dy);
	free(x);
	free(y);
}

static int src_get(void *priv, uint32_t l, uint32_t e,
		   const struct ec_expert **out)
{
	*out = &((struct gt_moe *)priv)->layers[l].experts[e];
	return 0;
}

static void src_put(void *priv, uint32_t l, uint32_t e)
{
}

/* rel err of y (n, EMBD) against the path's reference */
static double moe_err(const struct gt_moe *g, int q8, const float *x,
		      uint32_t n, const int32_t *ids, const float *w,
		      const float *y, float *ref)
{
	if (q8)
		gt_cpu_moe(g, 0, x, n, ids, w, ref);
	else
		gt_moe_ref(g, 0, x, n, TOPK, ids, w, ref);
	return gt_rel(y, ref, (size_t)n * EMBD);
}

static void bench_moe(enum ec_dtype tgu, enum ec_dtype tdown, uint32_t E,
		      bool exact)
{
	struct gt_rng r = { 51 + tgu };
	int q8 = !exact && (is_quant(tgu) || is_quant(tdown));
	double tol = q8 ? MOE_Q8_TOL : 2e-5, e;
	const char *path = !is_quant(tgu) && !is_quant(tdown) ? ""
			   : q8 ? ", 8-bit act" : ", exact";
	char what[96];
	struct ec_backend *be;
	struct ec_expert_source src = { .get = src_get, .put = src_put };
	struct gt_moe g;
	const int calls = 400;
	int32_t *ids;
	float *w, *x, *ref, *got, *dx, *dy;
	char why[512], shape[96];
	double t0, dt;
	int ret;

	if (gt_moe_create(&g, 1, E, TOPK, EMBD, FF, tgu, tdown, r.s) < 0)
		return;
	src.priv = &g;
	be = cuda_backend(&g.m, exact, why, sizeof(why));
	if (!be) {
		EC_CHECK(0, "cuda backend: %s", why);
		gt_moe_free(&g);
		return;
	}
	ids = malloc(sizeof(int32_t) * calls * TOPK);
	w = malloc(sizeof(float) * calls * TOPK);
	x = gt_frand(&r, 64 * EMBD, 1.0f);
	ref = malloc(4 * 64 * EMBD);
	got = malloc(4 * 64 * EMBD);
	for (int c = 0; c < calls; c++)
		for (int j = 0; j < TOPK; j++) {
			/* rotate through every expert, distinct per call */
			ids[c * TOPK + j] = (int32_t)((c * TOPK + j) % E);
			w[c * TOPK + j] = 1.0f / TOPK;
		}
	dx = gt_up(be, x, 64 * EMBD);
	dy = gt_up(be, NULL, 64 * EMBD);
	/* validate one decode step, then warm every expert into VRAM */
	ret = be->ops->moe_ffn(be, dy, dx, 1, 0, E, TOPK, ids, w, &src);
	gt_down(be, got, dy, EMBD);
	e = moe_err(&g, q8, x, 1, ids, w, got, ref);
	EC_CHECK(ret == 0 && e <= tol, "moe %s/%s%s decode: ret %d rel err "
		 "%.3g", gt_type_name(tgu), gt_type_name(tdown), path, ret, e);
	for (int c = 0; c < calls; c++)
		be->ops->moe_ffn(be, dy, dx, 1, 0, E, TOPK, ids + c * TOPK,
				 w + c * TOPK, &src);
	be->ops->sync(be);
	t0 = gt_now();
	for (int c = 0; c < calls; c++)
		be->ops->moe_ffn(be, dy, dx, 1, 0, E, TOPK, ids + c * TOPK,
				 w + c * TOPK, &src);
	be->ops->sync(be);
	dt = (gt_now() - t0) / calls;
	snprintf(shape, sizeof(shape), "%s gate/up, %s down, top-%u of %u",
		 gt_type_name(tgu), gt_type_name(tdown), TOPK, E);
	snprintf(what, sizeof(what), "expert FFN decode (fused, 1 token%s)",
		 path);
	row(what, shape, dt * 1e6, g.expert_bytes * TOPK / dt / 1e9);

	/* prefill: 64 tokens grouped by expert */
	{
		int32_t pid[64 * TOPK];
		float pw[64 * TOPK];

		for (int i = 0; i < 64 * TOPK; i++) {
			pid[i] = (int32_t)((i * 7 + i / TOPK) % E);
			pw[i] = 1.0f / TOPK;
		}
		for (int t = 0; t < 64; t++)	/* distinct within a token */
			for (int j = 0; j < TOPK; j++)
				pid[t * TOPK + j] = (int32_t)((t * 5 + j) % E);
		ret = be->ops->moe_ffn(be, dy, dx, 64, 0, E, TOPK, pid, pw,
				       &src);
		gt_down(be, got, dy, 64 * EMBD);
		/* rows are independent: check the first eight tokens */
		e = moe_err(&g, q8, x, 8, pid, pw, got, ref);
		EC_CHECK(ret == 0 && e <= tol, "moe prefill%s: ret %d rel err "
			 "%.3g", path, ret, e);
		t0 = gt_now();
		for (int c = 0; c < 20; c++)
			be->ops->moe_ffn(be, dy, dx, 64, 0, E, TOPK, pid, pw,
					 &src);
		be->ops->sync(be);
		dt = (gt_now() - t0) / 20;
		snprintf(what, sizeof(what), "expert FFN prefill (grouped, 64 "
			 "tokens%s)", path);
		row(what, shape, dt * 1e6, 0);
		printf("|  | = %.0f tokens/s per layer | | | |\n", 64 / dt);
	}
	be->ops->free(be, dx);
	be->ops->free(be, dy);
	be->ops->destroy(be);
	free(ids);
	free(w);
	free(x);
	free(ref);
	free(got);
	gt_moe_free(&g);
}

static void bench_route_attention(void)
{
	struct gt_rng r = { 61 };
	float *l = gt_frand(&r, 128, 2.0f), *dl = gt_up(gt_gpu, l, 128);
	const uint32_t nh = 32, nkv = 4, hd = 128, pos0 = 1024;
	float *q = gt_frand(&r, nh * hd, 1.0f);
	float *kv = gt_frand(&r, (pos0 + 1) * nkv * hd, 1.0f);
	float *dq = gt_up(gt_gpu, q, nh * hd), *dk = gt_up(gt_gpu, kv,
							   (pos0 + 1) * nkv * hd);
	float *dout = gt_up(gt_gpu, NULL, nh * hd);
	int32_t ids[8];
	float w[8];
	double t0, dt;

	for (int i = 0; i < 10; i++)
		gt_gpu->ops->route(gt_gpu, dl, 1, 128, 8, 1, NULL, ids, w);
	t0 = gt_now();
	for (int i = 0; i < 200; i++)
		gt_gpu->ops->route(gt_gpu, dl, 1, 128, 8, 1, NULL, ids, w);
	dt = (gt_now() - t0) / 200;
	row("route + wait for ids on the host", "1 token, top-8 of 128",
	    dt * 1e6, 0);
	t0 = gt_now();
	for (int i = 0; i < 200; i++)
		gt_gpu->ops->attention(gt_gpu, dout, dq, dk, dk, pos0, 1, nh,
				       nkv, hd);
	gt_gpu->ops->sync(gt_gpu);
	dt = (gt_now() - t0) / 200;
	row("attention decode", "32/4 heads x 128, 1025 keys", dt * 1e6,
	    2.0 * (pos0 + 1) * nkv * hd * 4 / dt / 1e9);
	gt_gpu->ops->free(gt_gpu, dl);
	gt_gpu->ops->free(gt_gpu, dq);
	gt_gpu->ops->free(gt_gpu, dk);
	gt_gpu->ops->free(gt_gpu, dout);
	free(l);
	free(q);
	free(kv);
}

int main(void)
{
	static const enum ec_dtype types[] = { EC_F32, EC_F16, EC_BF16,
					       EC_Q8_0, EC_Q4_K, EC_Q6_K };
	struct ec_cuda_stats st;
	struct gt_moe g;
	char why[512];

	/* the default rows are the 8-bit path; exact ones by param */
	unsetenv("EC_CUDA_EXACT");
	if (gt_moe_create(&g, 1, 8, 2, 256, 256, EC_Q8_0, EC_Q8_0, 1) < 0 ||
	    gt_setup(&g.m) < 0)
		return 1;
	if (!gt_gpu) {
		EC_SKIP("kernel benchmarks need a GPU: %s", gt_gpu_why);
		gt_teardown();
		return ec_test_done();
	}
	gt_exact = cuda_backend(&g.m, true, why, sizeof(why));
	EC_CHECK(gt_exact, "exact cuda backend: %s", why);
	ec_backend_cuda_get_stats(gt_gpu, &st);
	if (ec_backend_cuda_measure_copy(gt_gpu, 1ull << 30, &d2d_gbps,
					 &h2d_gbps) < 0) {
		EC_CHECK(0, "copy bandwidth: %s", ec_error_msg());
		gt_teardown();
		return ec_test_done();
	}
	printf("device: %s, driver %d\n", st.device, st.driver_version);
	printf("copy bandwidth: device-to-device %.0f GB/s (read + write), "
	       "pinned host-to-device %.1f GB/s\n\n", d2d_gbps, h2d_gbps);
	printf("| kernel | shape | time (us) | GB/s read | of D2D copy |\n");
	printf("|---|---|---|---|---|\n");
	for (size_t i = 0; i < 6; i++) {
		if (is_quant(types[i]) && gt_exact)
			bench_gemv(gt_exact, types[i], 1);
		bench_gemv(gt_gpu, types[i], 1);
	}
	if (gt_exact)
		bench_gemv(gt_exact, EC_Q4_K, 8);
	bench_gemv(gt_gpu, EC_Q4_K, 8);
	bench_moe(EC_Q4_K, EC_Q6_K, 128, true);
	bench_moe(EC_Q4_K, EC_Q6_K, 128, false);
	bench_moe(EC_Q8_0, EC_Q8_0, 128, true);
	bench_moe(EC_Q8_0, EC_Q8_0, 128, false);
	bench_moe(EC_BF16, EC_BF16, 64, false);
	bench_route_attention();
	if (gt_exact)
		gt_exact->ops->destroy(gt_exact);
	gt_teardown();
	gt_moe_free(&g);
	return ec_test_done();
}
