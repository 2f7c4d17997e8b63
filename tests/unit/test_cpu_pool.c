// SPDX-License-Identifier: MIT
/*
 * CPU backend set-up: the thread pool (every item once, every loop
 * complete on return, with sleeping and late workers), then backend
 * creation: kernel-set choice (EC_CPU_ISA, the CPU's best by default,
 * sets it lacks refused), each set this CPU runs, aligned allocation.
 */
#include <stdatomic.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cpu_test_util.h"

struct pool_probe {
	_Atomic uint32_t hits[64];
	_Atomic uint64_t sum;
};

static void probe_item(void *arg, uint32_t i)
{
	struct pool_probe *p = arg;

	atomic_fetch_add(&p->hits[i], 1);
	atomic_fetch_add(&p->sum, i + 1);
}

/* An item that takes 0.3 ms: the caller outlasts its spin and sleeps */
static void slow_item(void *arg, uint32_t i)
{
	struct timespec ts = {0, 300000};

	nanosleep(&ts, NULL);
	probe_item(arg, i);
}

static void test_pool(void)
{
	struct ec_cpu_pool *pool;
	struct pool_probe probe;
	uint64_t want = 0;
	int ok = 1;

	/*
	 * No spinning: workers fall asleep between runs (and are woken
	 * through the condvar) or join late; each item must still run
	 * exactly once per loop and every loop wait for its joined workers.
	 */
	setenv("EC_CPU_SPIN_US", "0", 1);
	EC_CHECK(ec_cpu_pool_create(4, &pool) == 0, "pool create");
	unsetenv("EC_CPU_SPIN_US");
	memset(&probe, 0, sizeof(probe));
	for (uint32_t i = 0; i < 3000; i++) {
		uint32_t n_items = 1 + i % 64;

		ec_cpu_pool_for(pool, n_items, probe_item, &probe);
		want += (uint64_t)n_items * (n_items + 1) / 2;
		ok &= atomic_load(&probe.sum) == want;
		if (i % 500 == 0) { /* let the workers fall asleep */
			struct timespec ts = {0, 2000000};

			nanosleep(&ts, NULL);
		}
	}
	for (uint32_t t = 0; t < 64; t++) {
		/* item t ran in every loop with more than t items */
		uint32_t loops = 0;

		for (uint32_t i = 0; i < 3000; i++)
			loops += 1 + i % 64 > t;
		ok &= atomic_load(&probe.hits[t]) == loops;
	}
	EC_CHECK(ok && ec_cpu_pool_size(pool) == 4,
		 "3000 parallel loops: every item ran exactly once, each loop "
		 "complete on return");
	ec_cpu_pool_for(pool, 0, probe_item, &probe);
	EC_CHECK(atomic_load(&probe.sum) == want, "empty loop runs nothing");
	ec_cpu_pool_destroy(pool);

	/* slow items: joined workers finish after the caller's spin */
	EC_CHECK(ec_cpu_pool_create(3, &pool) == 0, "pool create");
	memset(&probe, 0, sizeof(probe));
	want = 0;
	ok = 1;
	for (uint32_t i = 0; i < 40; i++) {
		uint32_t n_items = 2 + i % 7;

		ec_cpu_pool_for(pool, n_items, slow_item, &probe);
		want += (uint64_t)n_items * (n_items + 1) / 2;
		ok &= atomic_load(&probe.sum) == want;
	}
	EC_CHECK(ok, "40 loops of slow items: each loop complete on return");
	ec_cpu_pool_destroy(pool);

	EC_CHECK(ec_cpu_pool_create(0, &pool) == -EC_EINVAL,
		 "pool of 0 threads rejected");
}

static void test_create(void)
{
	struct ec_backend *b;
	float *p;
	int ret;

	setenv("EC_CPU_ISA", "generic", 1);
	EC_CHECK(ec_backend_cpu_create(2, &b) == 0 &&
		     !strcmp(ec_backend_cpu_isa(b), "generic"),
		 "EC_CPU_ISA=generic selects the portable kernels");
	b->ops->destroy(b);
	setenv("EC_CPU_ISA", "sse9", 1);
	EC_CHECK(ec_backend_cpu_create(2, &b) == -EC_EINVAL &&
		     strstr(ec_error_msg(), "sse9"),
		 "unknown EC_CPU_ISA rejected");
	unsetenv("EC_CPU_ISA");

	EC_CHECK(ec_backend_cpu_create(0, &b) == 0, "default threads");
	printf("default kernel set: %s\n", ec_backend_cpu_isa(b));
	EC_CHECK(!strcmp(ec_backend_cpu_isa(b),
			 ec_cpu_isa_supported("avx512") ? "avx512"
			 : ec_cpu_isa_supported("avx2") ? "avx2"
							: "generic"),
		 "best kernel set by default");
	for (size_t n = 1; n < 200; n += 37) {
		p = b->ops->alloc(b, n);
		EC_CHECK(p && ((uintptr_t)p & 63) == 0, "alloc 64-aligned");
		p[n - 1] = 1; /* the whole size is usable (ASan checks) */
		b->ops->free(b, p);
	}
	b->ops->destroy(b);

	for (int i = 0; i < N_ISA; i++) {
		if (!ec_cpu_isa_supported(isas[i])) {
			EC_CHECK(ec_backend_cpu_create_isa(1, isas[i], &b) ==
				     -EC_EUNSUPPORTED,
				 "%s refused on a CPU without it", isas[i]);
			EC_SKIP("%s kernels: this CPU lacks the instructions",
				isas[i]);
			continue;
		}
		ret = ec_backend_cpu_create_isa(N_THREADS, isas[i], &b);
		EC_CHECK(ret == 0, "create %s: %s", isas[i], ec_error_msg());
		if (!ret)
			b->ops->destroy(b);
	}
}

int main(void)
{
	test_pool();
	test_create();
	return ec_test_done();
}
