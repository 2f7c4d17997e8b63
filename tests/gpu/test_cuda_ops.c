// SPDX-License-Identifier: MIT
/*
 * Every CUDA op against a double-precision CPU reference (the references are
 * checked against the CPU backend too, so they run in CI without a GPU):
 * matmul in each weight type (GEMV and GEMM paths), RMSNorm, bias, RoPE
 * (NEOX, NORM), attention, SiLU*mul, scaled adds, row ops, routing.
 *
 * Matmul on quantised weights has two CUDA paths.  The default rounds the
 * activations to 8 bits per block as the CPU backend does and sums integer
 * products; it is checked against the CPU backend itself (same rounding,
 * same integers): the GPU's integer helpers (kernels/dot_q8.cuh) against
 * the CPU's quantiser and every CPU dot kernel set bit for bit (no GPU
 * needed), whole matmuls on integer-valued data (where every float step
 * is exact) bit for bit, and on random data within Q8_TOL.  The exact
 * path (f32 activations, EC_CUDA_EXACT=1) is checked against the double
 * reference.
 *
 * Tolerances (max |got - ref| / max |ref|): CUDA 2e-5 against the double
 * reference (f32 activations: every op but the default quantised matmul);
 * quantised matmul 1e-5 against the CPU backend (only the order of f32
 * sums differs; one activation rounded differently would be ~1e-3); the
 * CPU backend 1e-5 for plain weight types and 3e-2 for quantised ones
 * against the double reference.  Routing ids must match exactly.
 */
#include "cpu/cpu.h"
#include "gpu_test.h"
#include "router.h"

#include "../../kernels/dot_q8.cuh"

#define GPU_TOL 2e-5
#define Q8_TOL 1e-5

static struct ec_backend *gt_exact;	/* CUDA with exact_f32_act */

static int is_quant(enum ec_dtype t)
{
	return t == EC_Q8_0 || t == EC_Q4_K || t == EC_Q6_K;
}

/* y (n, rows) from device matmul of x (n, cols) on backend be */
static int gpu_matmul(struct ec_backend *be, const struct ec_tensor *t,
		      const float *x, const float *y0, uint32_t n,
		      uint32_t rows, uint32_t cols, int acc, float *out)
{
	float *dx = gt_up(be, x, (size_t)n * cols);
	float *dy = gt_up(be, y0, (size_t)n * rows);
	int ret = be->ops->matmul(be, dy, t, dx, n, acc);

	gt_down(be, out, dy, (size_t)n * rows);
	be->ops->free(be, dx);
	be->ops->free(be, dy);
	return ret;
}

static void test_matmul_one(struct gt_rng *r, enum ec_dtype type,
			    uint32_t rows, uint32_t cols, uint32_t n, int acc)
{
	size_t wb = ec_dtype_bytes(type, (uint64_t)rows * cols);
	void *w = gt_keep(wb);
	float *wf = malloc(sizeof(float) * rows * cols);
	float *x = gt_frand(r, (size_t)n * cols, 1.0f);
	float *y0 = gt_frand(r, (size_t)n * rows, 1.0f);
	float *ref = malloc(sizeof(float) * n * rows);
	float *cpu = malloc(sizeof(float) * n * rows);
	float *got = malloc(sizeof(float) * n * rows);
	int quant = is_quant(type);
	struct ec_tensor t;
	double e;
	int ret;

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
	memcpy(cpu, y0, sizeof(float) * n * rows);
	EC_CHECK(gt_cpu->ops->matmul(gt_cpu, cpu, &t, x, n, acc) == 0,
		 "cpu matmul");
	e = gt_rel(cpu, ref, (size_t)n * rows);
	EC_CHECK(e <= (quant ? 3e-2 : 1e-5), "cpu matmul %s %ux%u n=%u "
		 "acc=%d: rel err %.3g", gt_type_name(type), rows, cols, n,
		 acc, e);
	if (gt_gpu) {
		/* default path: 8-bit activations on quantised weights */
		ret = gpu_matmul(gt_gpu, &t, x, y0, n, rows, cols, acc, got);
		e = quant ? gt_rel(got, cpu, (size_t)n * rows)
			  : gt_rel(got, ref, (size_t)n * rows);
		EC_CHECK(ret == 0 && e <= (quant ? Q8_TOL : GPU_TOL),
			 "cuda matmul %s %ux%u n=%u acc=%d: ret %d rel err "
			 "%.3g against the %s (%s)", gt_type_name(type), rows,
			 cols, n, acc, ret, e, quant ? "cpu backend" :
			 "reference", ec_error_msg());
	}
	if (gt_exact && quant) {
		ret = gpu_matmul(gt_exact, &t, x, y0, n, rows, cols, acc, got);
		e = gt_rel(got, ref, (size_t)n * rows);
		EC_CHECK(ret == 0 && e <= GPU_TOL, "cuda matmul exact %s %ux%u "
			 "n=%u acc=%d: ret %d rel err %.3g (%s)",
			 gt_type_name(type), rows, cols, n, acc, ret, e,
			 ec_error_msg());
	}
	free(wf);
	free(x);
	free(y0);
	free(ref);
	free(cpu);
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
	/*
	 * The 8-bit GEMV: rows not a multiple of a block's 8 (4 warps of 2),
	 * row widths whose blocks do not fill the last step of a warp (Q8_0:
	 * 8 blocks a step, Q4_K/Q6_K: 4), every token count 1..8.
	 */
	for (size_t t = 3; t < 6; t++)
		for (uint32_t n = 1; n <= 8; n++) {
			uint32_t cols = types[t] == EC_Q8_0 ? 32 * 37 : 256 * 9;

			test_matmul_one(&r, types[t], 37, cols, n, n & 1);
			test_matmul_one(&r, types[t], 3, types[t] == EC_Q8_0 ?
					96 : 256, n, 0);
		}
}

/* ------------------------------------------------------------------ */
/* The GPU's integer helpers (kernels/dot_q8.cuh) on the CPU           */

/* x quantised with the helpers as the GPU's kernel does, block by block */
static void helper_quant(const float *x, uint32_t n, uint32_t qb, int8_t *q,
			 float *d)
{
	for (uint32_t b = 0; b < n / qb; b++) {
		float amax = 0.0f, id;

		for (uint32_t i = 0; i < qb; i++) {
			float a = fabsf(x[b * qb + i]);

			amax = a > amax ? a : amax;
		}
		d[b] = ec_act_scale(amax, &id);
		for (uint32_t i = 0; i < qb; i++)
			q[b * qb + i] = (int8_t)ec_act_round(x[b * qb + i], id);
	}
}

/* Random values in a few regimes, including exact ties (x.5 with d = 1) */
static void act_values(struct gt_rng *r, int kind, float *x, uint32_t n)
{
	for (uint32_t i = 0; i < n; i++) {
		switch (kind) {
		case 0:
			x[i] = gt_uniform(r, 1.0f);
			break;
		case 1:	/* ties: amax 127 makes d = 1, so x * id = x */
			x[i] = i % 32 == 0 ? 127.0f
					   : (float)((int)(gt_next(r) % 253) -
						     126) + 0.5f;
			break;
		case 2:
			x[i] = gt_uniform(r, 1e30f);
			break;
		case 3:	/* subnormal scales */
			x[i] = gt_uniform(r, 1e-36f);
			break;
		default: /* zero blocks, and blocks of one value */
			x[i] = (i / 32) % 3 == 0 ? 0.0f
			       : (i / 32) % 3 == 1 ? -3.25f
						   : gt_uniform(r, 50.0f);
			break;
		}
	}
}

static void test_act_rounding(void)
{
	struct gt_rng r = { 21 };
	const uint32_t n = 1024;
	float x[1024], d[32];
	int8_t q[1024];
	void *row = malloc(ec_cpu_q8_row_bytes(n));
	struct ec_cpu_q8k_block *kb = malloc(n / 256 * sizeof(*kb));

	for (int kind = 0; kind < 5; kind++) {
		int bad = 0;

		act_values(&r, kind, x, n);
		ec_cpu_quantize_q8(n, x, row);
		helper_quant(x, n, 32, q, d);
		EC_CHECK(!memcmp(q, row, n) &&
			 !memcmp(d, ec_cpu_q8_d(row, n), n / 32 * 4),
			 "Q8 activations (kind %d): GPU helpers differ from "
			 "ec_cpu_quantize_q8", kind);
		ec_cpu_quantize_q8k(n, x, kb);
		helper_quant(x, n, 256, q, d);
		for (uint32_t b = 0; b < n / 256; b++) {
			bad |= memcmp(q + 256 * b, kb[b].qs, 256) ||
			       memcmp(&d[b], &kb[b].d, 4);
			for (int j = 0; j < 16; j++) {
				int s = 0;

				for (int l = 0; l < 16; l++)
					s += q[256 * b + 16 * j + l];
				bad |= s != kb[b].bsums[j];
			}
		}
		EC_CHECK(!bad, "Q8_K activations (kind %d): GPU helpers differ "
			 "from ec_cpu_quantize_q8k", kind);
	}
	free(row);
	free(kb);
}

static uint32_t block_bytes(enum ec_dtype type)
{
	return type == EC_Q8_0 ? 34 : type == EC_Q4_K ? 144 : 210;
}

/*
 * Weight blocks with random scale bytes (the full range, negative Q6_K
 * scales included) and f16 super-scales set by the caller.
 */
static void rand_blocks(struct gt_rng *r, enum ec_dtype type, uint8_t *w,
			uint32_t nb, uint16_t d, uint16_t dmin)
{
	uint32_t bsz = block_bytes(type);

	gt_bytes(r, w, (size_t)nb * bsz);
	for (uint32_t b = 0; b < nb; b++) {
		uint8_t *p = w + (size_t)b * bsz;

		if (type == EC_Q8_0) {
			memcpy(p, &d, 2);
			for (int i = 0; i < 32; i++)	/* -127..127 */
				if (p[2 + i] == 0x80)
					p[2 + i] = 0x81;
		} else if (type == EC_Q4_K) {
			memcpy(p, &d, 2);
			memcpy(p + 2, &dmin, 2);
		} else {
			memcpy(p + 208, &d, 2);
		}
	}
}

/* Activations that quantise to themselves: integers, |127| once a block
 * of qb */
static void int_acts(struct gt_rng *r, float *x, uint32_t n, uint32_t qb,
		     int amp)
{
	for (uint32_t i = 0; i < n; i++)
		x[i] = i % qb == 0 ? (gt_next(r) & 1 ? 127.0f : -127.0f)
				   : (float)((int)(gt_next(r) % (2 * amp + 1)) -
					     amp);
}

/*
 * Sum over a block's lanes of the helpers' integer dots, as the kernels
 * split it: sumi (and for Q4_K summ in *imin).
 */
static int64_t helper_block_dot(enum ec_dtype type, const uint8_t *blk,
				const int8_t *qs, const int16_t *sums,
				int64_t *imin)
{
	int64_t s = 0;

	*imin = 0;
	if (type == EC_Q8_0) {
		for (int gl = 0; gl < EC_Q8_0_G; gl++) {
			struct ec_wq8_0 w;
			struct ec_xq8_0 xv;

			ec_wq8_0_load(&w, blk, gl);
			ec_xq8_0_load(&xv, qs, 1.0f, gl);
			s += ec_q8_0_idot(&w, &xv);
		}
	} else if (type == EC_Q4_K) {
		for (int gl = 0; gl < EC_QK_G; gl++) {
			struct ec_wq4_k w;
			struct ec_xq8_k4 xv;
			int32_t a, b;

			ec_wq4_k_load(&w, blk, gl);
			ec_xq8_k4_load(&xv, qs, sums, 1.0f, gl);
			ec_q4_k_idot(&w, &xv, &a, &b);
			s += a;
			*imin += b;
		}
	} else {
		for (int gl = 0; gl < EC_QK_G; gl++) {
			struct ec_wq6_k w;
			struct ec_xq8_k6 xv;

			ec_wq6_k_load(&w, blk, gl);
			ec_xq8_k6_load(&xv, qs, 1.0f, gl);
			s += ec_q6_k_idot(&w, &xv);
		}
	}
	return s;
}

/*
 * Block integer dots against one CPU kernel set's dot: with activation
 * scale 1 and weight scales 1 (or 0) its float result is its integer sum
 * (exact below 2^24), which must equal the sum of the lanes' integers.
 */
static void block_dots_one(const struct ec_cpu_kernels *k, const char *isa,
			   enum ec_dtype type)
{
	const uint16_t one = 0x3C00, zero = 0;
	int act = type == EC_Q8_0 ? EC_CPU_ACT_Q8 : EC_CPU_ACT_Q8K;
	uint32_t qk = type == EC_Q8_0 ? 32 : 256;
	uint32_t n = type == EC_Q8_0 ? 256 : 512, nb = n / qk;
	uint32_t bsz = block_bytes(type);
	struct gt_rng r = { 100 + type };
	uint8_t w[2 * 210 * 8];
	float x[512];
	void *row = malloc(ec_cpu_act_row_bytes(act, n));
	struct ec_cpu_q8k_block *kb = row;
	int compared = 0, bad = 0, trials = 200;
	ec_cpu_dot_fn dot;

	ec_cpu_dot_of(k, type, &dot);
	for (int it = 0; it < trials; it++) {
		/* Q4_K: the sumi pass (dmin 0), then the summ pass (d 0) */
		int mins = type == EC_Q4_K && (it & 1);
		int64_t want = 0, imin, s;
		int16_t sums[16];
		float got;

		rand_blocks(&r, type, w, nb, mins ? zero : one,
			    mins ? one : zero);
		int_acts(&r, x, n, qk, 127);
		ec_cpu_quantize_act(act, n, x, row);
		for (uint32_t b = 0; b < nb; b++) {
			const int8_t *qs = (const int8_t *)row + 32 * b;

			if (type != EC_Q8_0) {
				qs = kb[b].qs;
				memcpy(sums, kb[b].bsums, sizeof(sums));
			}
			s = helper_block_dot(type, w + bsz * b, qs, sums,
					     &imin);
			want += mins ? -imin : s;
		}
		got = dot(n, w, row);
		if (llabs(want) >= (1 << 24))
			continue;	/* not exact in float */
		compared++;
		bad += (double)got != (double)want;
	}
	EC_CHECK(!bad && compared > trials / 2, "%s block dots vs cpu %s: %d "
		 "of %d differ", gt_type_name(type), isa, bad, compared);
	free(row);
}

static void test_block_dots(void)
{
	static const char *isas[] = { "generic", "avx2", "avx512" };
	const struct ec_cpu_kernels *k;

	for (size_t i = 0; i < 3; i++) {
		if (!ec_cpu_isa_supported(isas[i])) {
			EC_SKIP("block dots against %s: not this CPU",
				isas[i]);
			continue;
		}
		if (ec_cpu_kernels_select(isas[i], &k) < 0) {
			EC_CHECK(0, "kernel set %s: %s", isas[i],
				 ec_error_msg());
			continue;
		}
		block_dots_one(k, isas[i], EC_Q8_0);
		block_dots_one(k, isas[i], EC_Q4_K);
		block_dots_one(k, isas[i], EC_Q6_K);
	}
}

/*
 * Largest sum of |terms| over the rows and tokens of x . W^T: every float
 * the kernels form on integer data is an integer below it (the
 * dequantised |w| + 64 covers Q4_K's separate sc q and m sums).
 */
static double abs_bound(const float *wf, const float *x, uint32_t rows,
			uint32_t cols, uint32_t n)
{
	double bound = 0;

	for (uint32_t t = 0; t < n; t++)
		for (uint32_t o = 0; o < rows; o++) {
			const float *wr = wf + (size_t)o * cols;
			double s = 100;	/* |y0| */

			for (uint32_t c = 0; c < cols; c++)
				s += (fabs(wr[c]) + 64) * fabs(x[t * cols + c]);
			bound = s > bound ? s : bound;
		}
	return bound;
}

/*
 * A whole GEMV on data where every float operation is exact: integer
 * activations with 127 in each block (scale 1), weight scales 1, sums of
 * absolute terms below 2^24.  GPU and CPU must then agree bit for bit,
 * whatever the order of their sums.
 */
static void matmul_q8_exact_one(struct gt_rng *r, enum ec_dtype type)
{
	const uint32_t rows = 37, cols = 512;
	uint32_t qk = type == EC_Q8_0 ? 32 : 256;
	uint8_t *w = gt_keep((size_t)rows * cols / qk * block_bytes(type));
	float *wf = malloc(sizeof(float) * rows * cols);
	float x[8 * 512], y0[8 * 37], cpu[8 * 37], got[8 * 37];
	struct ec_tensor t;
	double bound;

	rand_blocks(r, type, w, rows * cols / qk, 0x3C00, 0x3C00);
	gt_view(&t, type, cols, rows, w);
	ec_dequantize(type, w, wf, (uint64_t)rows * cols);
	int_acts(r, x, 8 * cols, qk, 3);
	for (uint32_t i = 0; i < 8 * rows; i++)
		y0[i] = (float)((int)(gt_next(r) % 201) - 100);
	bound = abs_bound(wf, x, rows, cols, 8);
	EC_CHECK(bound < 16777216.0, "%s exact GEMV data: bound %.0f",
		 gt_type_name(type), bound);
	for (uint32_t n = 1; n <= 8; n += 3)
		for (int acc = 0; acc < 2; acc++) {
			size_t len = (size_t)n * rows;
			int ret;

			memcpy(cpu, y0, sizeof(float) * len);
			gt_cpu->ops->matmul(gt_cpu, cpu, &t, x, n, acc);
			ret = gpu_matmul(gt_gpu, &t, x, y0, n, rows, cols, acc,
					 got);
			EC_CHECK(ret == 0 && !memcmp(got, cpu, 4 * len),
				 "%s integer GEMV n=%u acc=%d: GPU and CPU "
				 "differ (max %.3g)", gt_type_name(type), n,
				 acc, gt_max_diff(got, cpu, len));
		}
	free(wf);
}

static void test_matmul_q8_exact(void)
{
	struct gt_rng r = { 17 };

	if (!gt_gpu)
		return;
	matmul_q8_exact_one(&r, EC_Q8_0);
	matmul_q8_exact_one(&r, EC_Q4_K);
	matmul_q8_exact_one(&r, EC_Q6_K);
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

	/* the default (8-bit) path is under test; the exact one by param */
	unsetenv("EC_CUDA_EXACT");
	test_act_rounding();
	test_block_dots();
	/* any model sizes the CUDA backend's expert slots; these ops ignore it */
	if (gt_moe_create(&g, 1, 8, 2, 256, 256, EC_Q8_0, EC_Q8_0, 1) < 0 ||
	    gt_setup(&g.m) < 0)
		return 1;
	if (gt_gpu) {
		struct ec_backend_cuda_params p = { .model = &g.m,
						    .exact_f32_act = true };

		EC_CHECK(ec_backend_cuda_create(&p, &gt_exact) == 0,
			 "cuda backend with exact_f32_act: %s", ec_error_msg());
	}
	test_matmul();
	test_matmul_q8_exact();
	if (gt_gpu_ok("rmsnorm, rope, attention"))
		fprintf(stderr, "cuda backend up\n");
	test_rmsnorm();
	test_rope();
	test_attention();
	if (gt_exact)
		gt_exact->ops->destroy(gt_exact);
	gt_teardown();
	gt_moe_free(&g);
	return ec_test_done();
}
