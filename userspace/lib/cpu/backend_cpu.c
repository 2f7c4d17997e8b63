// SPDX-License-Identifier: MIT
/* The CPU backend: its ops table, memory, and run-time kernel selection. */
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#if defined(__x86_64__) || defined(__i386__)
#include <cpuid.h>
#endif

#include "cpu/cpu.h"
#include "cpu/rows_cpu.h"
#include "ec_error.h"

static int cpu_has_f16c(void)
{
#if defined(__x86_64__) || defined(__i386__)
	unsigned int a, b, c, d;

	if (__get_cpuid(1, &a, &b, &c, &d))
		return !!(c & bit_F16C);
#endif
	return 0;
}

int ec_cpu_isa_supported(const char *isa)
{
	if (!strcmp(isa, "generic"))
		return 1;
#if defined(__x86_64__) || defined(__i386__)
	__builtin_cpu_init();
	if (!strcmp(isa, "avx2"))
		return __builtin_cpu_supports("avx2") &&
		       __builtin_cpu_supports("fma") && cpu_has_f16c();
	if (!strcmp(isa, "avx512"))
		return ec_cpu_isa_supported("avx2") &&
		       __builtin_cpu_supports("avx512f") &&
		       __builtin_cpu_supports("avx512bw") &&
		       __builtin_cpu_supports("avx512vl") &&
		       __builtin_cpu_supports("avx512dq");
#endif
	return 0;
}

static void avx512_init_once(void)
{
#if defined(__x86_64__) || defined(__i386__)
	ec_cpu_kernels_avx512_init(__builtin_cpu_supports("avx512vnni"));
#endif
}

int ec_cpu_kernels_select(const char *isa, const struct ec_cpu_kernels **out)
{
	static pthread_once_t once = PTHREAD_ONCE_INIT;
	const char *env = getenv("EC_CPU_ISA");

	if (!isa && env && *env)
		isa = env;
	if (!isa)
		isa = ec_cpu_isa_supported("avx512") ? "avx512"
		      : ec_cpu_isa_supported("avx2") ? "avx2"
						     : "generic";
	if (strcmp(isa, "generic") && strcmp(isa, "avx2") &&
	    strcmp(isa, "avx512"))
		return ec_err(-EC_EINVAL, "cpu backend: kernel set '%s' "
			      "(EC_CPU_ISA): expected avx512, avx2 or generic",
			      isa);
	if (!ec_cpu_isa_supported(isa))
		return ec_err(-EC_EUNSUPPORTED, "cpu backend: this CPU "
			      "cannot run the %s kernels (EC_CPU_ISA)", isa);
	if (!strcmp(isa, "avx512")) {
		pthread_once(&once, avx512_init_once);
		*out = &ec_cpu_kernels_avx512;
	} else if (!strcmp(isa, "avx2")) {
		*out = &ec_cpu_kernels_avx2;
	} else {
		*out = &ec_cpu_kernels_generic;
	}
	return 0;
}

static struct ec_cpu *cpu_of(struct ec_backend *be)
{
	return be->priv;
}

static void cpu_destroy(struct ec_backend *be)
{
	struct ec_cpu *cpu;

	if (!be)
		return;
	cpu = cpu_of(be);
	if (cpu) {
		ec_cpu_pool_destroy(cpu->pool);
		free(cpu->qbuf);
		ec_cpu_moe_free(cpu->moe);
		free(cpu);
	}
	free(be);
}

/* 64-byte aligned, rounded up to whole cache lines */
static float *cpu_alloc(struct ec_backend *be, size_t n_floats)
{
	size_t bytes;

	if (n_floats > (SIZE_MAX - 64) / sizeof(float))
		return NULL;
	bytes = (n_floats * sizeof(float) + 63) & ~(size_t)63;
	return aligned_alloc(64, bytes ? bytes : 64);
}

static void cpu_free(struct ec_backend *be, float *p)
{
	free(p);
}

static void cpu_copy(struct ec_backend *be, float *dst, const float *src,
		     size_t n)
{
	if (dst != src)
		memmove(dst, src, n * sizeof(float));
}

static void cpu_sync(struct ec_backend *be)
{
	/* every op has finished when it returns */
}

static int cpu_matmul(struct ec_backend *be, float *y,
		      const struct ec_tensor *w, const float *x, uint32_t n,
		      int accumulate)
{
	return ec_cpu_matmul(cpu_of(be), y, w, x, n, accumulate);
}

static void cpu_rmsnorm(struct ec_backend *be, float *y, const float *x,
			const struct ec_tensor *w, uint32_t n, uint32_t dim,
			float eps)
{
	ec_cpu_rmsnorm(cpu_of(be), y, x, w, n, dim, eps);
}

static void cpu_add_bias(struct ec_backend *be, float *x,
			 const struct ec_tensor *b, uint32_t n, uint32_t dim)
{
	ec_cpu_add_bias(cpu_of(be), x, b, n, dim);
}

static void cpu_rope(struct ec_backend *be, float *x, const int32_t *pos,
		     uint32_t n, uint32_t n_heads, uint32_t head_dim,
		     float theta, int style)
{
	ec_cpu_rope(cpu_of(be), x, pos, n, n_heads, head_dim, theta, style);
}

static void cpu_attention(struct ec_backend *be, float *out, const float *q,
			  const float *k_cache, const float *v_cache,
			  uint32_t pos0, uint32_t n, uint32_t n_head,
			  uint32_t n_head_kv, uint32_t head_dim)
{
	ec_cpu_attention(cpu_of(be), out, q, k_cache, v_cache, pos0, n, n_head,
			 n_head_kv, head_dim);
}

static void cpu_silu_mul(struct ec_backend *be, float *g, const float *u,
			 uint32_t n, uint32_t dim)
{
	ec_cpu_silu_mul(cpu_of(be), g, u, n, dim);
}

static void cpu_add_scaled(struct ec_backend *be, float *y, const float *x,
			   const float *scale, uint32_t n, uint32_t dim)
{
	ec_cpu_add_scaled(cpu_of(be), y, x, scale, n, dim);
}

static int cpu_moe_ffn(struct ec_backend *be, float *y, const float *x,
		       uint32_t n, uint32_t layer, uint32_t n_expert,
		       uint32_t k, const int32_t *ids, const float *weights,
		       const struct ec_expert_source *src)
{
	return ec_cpu_moe_ffn(cpu_of(be), y, x, n, layer, n_expert, k, ids,
			      weights, src);
}

static const struct ec_backend_ops cpu_ops = {
	.name = "cpu",
	.destroy = cpu_destroy,
	.alloc = cpu_alloc,
	.free = cpu_free,
	.to_host = cpu_copy,
	.from_host = cpu_copy,
	.matmul = cpu_matmul,
	.rmsnorm = cpu_rmsnorm,
	.add_bias = cpu_add_bias,
	.rope = cpu_rope,
	.attention = cpu_attention,
	.silu_mul = cpu_silu_mul,
	.add_scaled = cpu_add_scaled,
	.get_rows = ec_cpu_op_get_rows,
	.gather = ec_cpu_op_gather,
	.scatter_add = ec_cpu_op_scatter_add,
	.sync = cpu_sync,
	.moe_ffn = cpu_moe_ffn,
};

int ec_backend_cpu_create_isa(uint32_t n_threads, const char *isa,
			      struct ec_backend **out)
{
	struct ec_backend *be = NULL;
	struct ec_cpu *cpu;
	int ret;

	if (!n_threads) {
		long online = sysconf(_SC_NPROCESSORS_ONLN);

		n_threads = online > 0 ? (uint32_t)online : 1;
	}
	be = calloc(1, sizeof(*be));
	cpu = calloc(1, sizeof(*cpu));
	if (!be || !cpu) {
		free(be);
		free(cpu);
		return ec_err(-ENOMEM, "cpu backend: out of memory");
	}
	be->ops = &cpu_ops;
	be->priv = cpu;
	cpu->n_threads = n_threads;
	ret = ec_cpu_kernels_select(isa, &cpu->k);
	if (ret)
		goto err;
	ret = ec_cpu_pool_create(n_threads, &cpu->pool);
	if (ret)
		goto err;
	*out = be;
	return 0;
err:
	cpu_destroy(be);
	return ret;
}

int ec_backend_cpu_create(uint32_t n_threads, struct ec_backend **out)
{
	return ec_backend_cpu_create_isa(n_threads, NULL, out);
}

const char *ec_backend_cpu_isa(const struct ec_backend *be)
{
	if (!be || be->ops != &cpu_ops)
		return NULL;
	return ((const struct ec_cpu *)be->priv)->k->name;
}
