// SPDX-License-Identifier: MIT
/*
 * Routing (softmax + top-k, ties to the lower index, optional resident
 * mask) and the row/element-wise ops on CUDA against CPU references.  The
 * host router (ec_route_topk) is itself checked against a naive selection,
 * so this runs without a GPU too.  Routing ids must match exactly; weights
 * within 1e-6; SiLU*mul 1e-6 relative (expf differs by an ulp); the rest
 * exactly.
 */
#include "gpu_test.h"
#include "router.h"

/* Naive reference: repeated argmax over allowed, untaken experts. */
static void naive_route(const float *l, uint32_t E, uint32_t k, int norm,
			const uint8_t *mask, int32_t *ids, float *w)
{
	double m = -INFINITY, sum = 0, ws = 0;
	uint8_t taken[1024] = { 0 };

	for (uint32_t e = 0; e < E; e++)
		m = fmax(m, l[e]);
	for (uint32_t e = 0; e < E; e++)
		sum += exp(l[e] - m);
	for (uint32_t j = 0; j < k; j++) {
		int32_t b = -1;

		for (uint32_t e = 0; e < E; e++)
			if (!taken[e] && (!mask || mask[e]) &&
			    (b < 0 || l[e] > l[b]))
				b = (int32_t)e;
		taken[b] = 1;
		ids[j] = b;
		w[j] = (float)(exp(l[b] - m) / sum);
		ws += w[j];
	}
	for (uint32_t j = 0; norm && j < k; j++)
		w[j] = (float)(w[j] / ws);
}

static void test_route_one(struct gt_rng *r, uint32_t n, uint32_t E,
			   uint32_t k, int norm, int masked)
{
	float *l = gt_frand(r, (size_t)n * E, 3.0f);
	int32_t *ids = malloc(sizeof(int32_t) * n * k);
	int32_t *rid = malloc(sizeof(int32_t) * n * k);
	float *w = malloc(sizeof(float) * n * k);
	float *rw = malloc(sizeof(float) * n * k);
	uint8_t mask[1024];
	int ok = 1;

	/* exact ties: the lower index must win */
	for (uint32_t t = 0; t < n; t++)
		for (uint32_t e = 1; e < E; e += 3)
			l[(size_t)t * E + e] = l[(size_t)t * E + e - 1];
	for (uint32_t e = 0; e < E; e++)
		mask[e] = !masked || e % 3 != 1 || e < k;
	for (uint32_t t = 0; t < n; t++)
		naive_route(l + (size_t)t * E, E, k, norm,
			    masked ? mask : NULL, rid + t * k, rw + t * k);
	if (!masked) {
		ec_route_topk(l, n, E, k, norm, ids, w);
		for (uint32_t i = 0; i < n * k; i++)
			ok &= ids[i] == rid[i] && fabsf(w[i] - rw[i]) <= 1e-6f;
		EC_CHECK(ok, "ec_route_topk vs naive: E=%u k=%u norm=%d", E, k,
			 norm);
	}
	if (gt_gpu) {
		float *dl = gt_up(gt_gpu, l, (size_t)n * E);
		int ret = gt_gpu->ops->route(gt_gpu, dl, n, E, k, norm,
					     masked ? mask : NULL, ids, w);

		ok = ret == 0;
		for (uint32_t i = 0; ok && i < n * k; i++)
			ok &= ids[i] == rid[i] && fabsf(w[i] - rw[i]) <= 1e-6f;
		EC_CHECK(ok, "cuda route E=%u k=%u norm=%d mask=%d: ret %d "
			 "(%s)", E, k, norm, masked, ret, ec_error_msg());
		gt_gpu->ops->free(gt_gpu, dl);
	}
	free(l);
	free(ids);
	free(rid);
	free(w);
	free(rw);
}

static void test_route(void)
{
	static const uint32_t Es[] = { 8, 60, 128, 256, 1024 };
	static const uint32_t ks[] = { 1, 2, 8 };
	struct gt_rng r = { 21 };

	gt_gpu_ok("route");
	for (size_t i = 0; i < 5; i++)
		for (size_t j = 0; j < 3; j++)
			for (int norm = 0; norm < 2; norm++) {
				test_route_one(&r, 9, Es[i], ks[j], norm, 0);
				test_route_one(&r, 3, Es[i], ks[j], norm, 1);
			}
	if (gt_gpu) {
		float *l = gt_frand(&r, 16, 1.0f);
		float *dl = gt_up(gt_gpu, l, 16);
		uint8_t mask[16] = { 1, 1 };	/* two allowed, top-4 asked */
		int32_t ids[4];
		float w[4];

		EC_CHECK(gt_gpu->ops->route(gt_gpu, dl, 1, 16, 4, 1, mask, ids,
					    w) == -EC_EINVAL,
			 "route with too few allowed experts must fail");
		gt_gpu->ops->free(gt_gpu, dl);
		free(l);
	}
}

/* silu_mul, add_scaled, gather, scatter_add, get_rows, from/to host */
static void test_rows(void)
{
	static const enum ec_dtype types[] = { EC_F32, EC_F16, EC_BF16,
					       EC_Q8_0, EC_Q4_K, EC_Q6_K };
	static const int32_t idx[] = { 3, 0, 5, 3, 1 };	/* 3 repeats */
	static const float sc[] = { 0.5f, -1.0f, 2.0f, 0.25f, 3.0f };
	struct gt_rng r = { 22 };
	const uint32_t n = 5, dim = 256, rows = 6;
	float *a = gt_frand(&r, n * dim, 4.0f), *b = gt_frand(&r, n * dim, 1.0f);
	float *y = gt_frand(&r, rows * dim, 1.0f), *ref = malloc(4 * rows * dim);
	float *got = malloc(4 * rows * dim);

	if (!gt_gpu_ok("row and element-wise ops"))
		goto out;
	float *da = gt_up(gt_gpu, a, n * dim), *db = gt_up(gt_gpu, b, n * dim);
	float *dy = gt_up(gt_gpu, y, rows * dim);

	for (uint32_t i = 0; i < n * dim; i++)
		ref[i] = a[i] / (1.0f + expf(-a[i])) * b[i];
	gt_gpu->ops->silu_mul(gt_gpu, da, db, n, dim);
	gt_down(gt_gpu, got, da, n * dim);
	EC_CHECK(gt_rel(got, ref, n * dim) <= 1e-6, "cuda silu_mul: %.3g",
		 gt_rel(got, ref, n * dim));

	gt_gpu->ops->from_host(gt_gpu, da, a, n * dim);
	for (int with = 0; with < 2; with++) {
		for (uint32_t i = 0; i < n * dim; i++)
			ref[i] = b[i] + (with ? sc[i / dim] : 1.0f) * a[i];
		gt_gpu->ops->from_host(gt_gpu, db, b, n * dim);
		gt_gpu->ops->add_scaled(gt_gpu, db, da, with ? sc : NULL, n,
					dim);
		gt_down(gt_gpu, got, db, n * dim);
		EC_CHECK(gt_max_diff(got, ref, n * dim) == 0,
			 "cuda add_scaled scale=%d", with);
	}

	/* gather rows idx of y into b; scatter them back with scales */
	for (uint32_t i = 0; i < n; i++)
		memcpy(ref + i * dim, y + idx[i] * dim, 4 * dim);
	gt_gpu->ops->gather(gt_gpu, db, dy, idx, n, dim);
	gt_down(gt_gpu, got, db, n * dim);
	EC_CHECK(gt_max_diff(got, ref, n * dim) == 0, "cuda gather");
	memcpy(ref, y, 4 * rows * dim);
	for (uint32_t i = 0; i < n; i++)
		for (uint32_t c = 0; c < dim; c++)
			ref[idx[i] * dim + c] += sc[i] * a[i * dim + c];
	gt_gpu->ops->scatter_add(gt_gpu, dy, da, idx, sc, n, dim);
	gt_down(gt_gpu, got, dy, rows * dim);
	EC_CHECK(gt_max_diff(got, ref, rows * dim) == 0,
		 "cuda scatter_add with a repeated row: %.3g",
		 gt_max_diff(got, ref, rows * dim));

	for (size_t t = 0; t < 6; t++) {
		void *tab = gt_keep(ec_dtype_bytes(types[t], rows * dim));
		float *full = malloc(4 * rows * dim);
		struct ec_tensor tv;
		int ret;

		gt_fill(&r, types[t], tab, rows * dim, 1.0f);
		gt_view(&tv, types[t], dim, rows, tab);
		ec_dequantize(types[t], tab, full, rows * dim);
		for (uint32_t i = 0; i < n; i++)
			memcpy(ref + i * dim, full + idx[i] * dim, 4 * dim);
		ret = gt_gpu->ops->get_rows(gt_gpu, db, &tv, idx, n);
		gt_down(gt_gpu, got, db, n * dim);
		EC_CHECK(ret == 0 && gt_max_diff(got, ref, n * dim) <= 1e-7 *
			 gt_max_abs(ref, n * dim), "cuda get_rows %s",
			 gt_type_name(types[t]));
		ret = gt_gpu->ops->get_rows(gt_gpu, db, &tv,
					    (const int32_t[]){ (int32_t)rows },
					    1);
		EC_CHECK(ret == -EC_EINVAL, "cuda get_rows past the table");
		free(full);
	}
	gt_gpu->ops->free(gt_gpu, da);
	gt_gpu->ops->free(gt_gpu, db);
	gt_gpu->ops->free(gt_gpu, dy);
out:
	free(a);
	free(b);
	free(y);
	free(ref);
	free(got);
}

int main(void)
{
	struct gt_moe g;

	if (gt_moe_create(&g, 1, 8, 2, 256, 256, EC_Q8_0, EC_Q8_0, 1) < 0 ||
	    gt_setup(&g.m) < 0)
		return 1;
	test_route();
	test_rows();
	gt_teardown();
	gt_moe_free(&g);
	return ec_test_done();
}
