// SPDX-License-Identifier: MIT
/* Persistent worker threads that every CPU op splits its work over. */
#include <linux/futex.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdlib.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include "cpu/cpu.h"
#include "ec_error.h"

/*
 * A run is a parallel loop over items taken from a shared counter.  The
 * caller publishes it in `state` (generation, closed flag, joined count);
 * workers join it with a compare-and-swap while it is open, then take
 * items like the caller does.  When the caller finds no items left it
 * closes the run and waits only for the workers that joined: a worker that
 * has lost its core (the machine is shared) never holds up a run it did
 * not join, and a worker that arrives late cannot join a closed run.
 *
 * Idle workers spin on `state` for a while (ops follow each other within
 * microseconds in a forward pass, and a futex wake-up costs more than many
 * small ops) and then sleep on the condition variable.  The spin is short
 * (EC_CPU_SPIN_US, default 100): on a shared machine a spinning thread
 * takes CPU time from the caller's serial work (threads of one process
 * share one scheduler group), and 1 ms spins cost 10% of decode speed.
 * Likewise a caller whose joined worker is late (it lost its core) spins
 * only briefly and then sleeps on `done` until that worker finishes.
 */
#define ST_GEN_SHIFT 33
#define ST_CLOSED (1ull << 32)
#define ST_JOINED_MASK 0xffffffffull
/* how long an idle worker spins for the next run before it sleeps */
#define DEFAULT_SPIN_US 100
/* how long the caller spins for joined workers before it sleeps */
#define CALLER_SPIN_NS 20000

struct ec_cpu_pool {
	uint32_t n_threads; /* including the caller */
	pthread_t *threads; /* (n_threads - 1) workers */
	uint32_t n_started;

	/* the current run; written by the caller before it opens */
	ec_cpu_item_fn fn;
	void *arg;
	uint32_t n_items;
	_Atomic uint32_t next; /* next item to take */
	_Atomic uint32_t done; /* joined workers that finished (a futex) */
	_Atomic uint64_t state;
	_Atomic uint32_t caller_asleep; /* on `done` */

	_Atomic uint32_t sleepers;
	_Atomic bool stop;
	pthread_mutex_t mu;
	pthread_cond_t cv;
	uint64_t spin_ns; /* how long an idle worker spins */
};

static inline void cpu_relax(void)
{
#if defined(__x86_64__) || defined(__i386__)
	__builtin_ia32_pause();
#endif
}

static uint64_t now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + ts.tv_nsec;
}

static void futex_wait(_Atomic uint32_t *addr, uint32_t val, long ns)
{
	struct timespec ts = {0, ns};

	syscall(SYS_futex, addr, FUTEX_WAIT_PRIVATE, val, &ts, NULL, 0);
}

static void futex_wake(_Atomic uint32_t *addr)
{
	syscall(SYS_futex, addr, FUTEX_WAKE_PRIVATE, 1, NULL, NULL, 0);
}

static void take_items(struct ec_cpu_pool *p)
{
	uint32_t i;

	while ((i = atomic_fetch_add_explicit(
		    &p->next, 1, memory_order_relaxed)) < p->n_items)
		p->fn(p->arg, i);
}

/* Is there an open run this worker has not been part of yet? */
static bool joinable(uint64_t s, uint64_t seen_gen)
{
	return !(s & ST_CLOSED) && (s >> ST_GEN_SHIFT) != seen_gen;
}

/* Wait until a new run opens or the pool stops; returns the state seen. */
static uint64_t wait_for_run(struct ec_cpu_pool *p, uint64_t seen_gen)
{
	uint64_t s, t0 = 0;

	for (uint32_t i = 0;; i++) {
		s = atomic_load_explicit(&p->state, memory_order_acquire);
		if (joinable(s, seen_gen) || atomic_load(&p->stop))
			return s;
		cpu_relax();
		if ((i & 1023) != 1023)
			continue;
		if (!t0)
			t0 = now_ns();
		else if (now_ns() - t0 > p->spin_ns)
			break;
	}
	pthread_mutex_lock(&p->mu);
	/* seq_cst: pairs with the caller's state store then sleepers load */
	atomic_fetch_add(&p->sleepers, 1);
	while (!joinable(s = atomic_load(&p->state), seen_gen) &&
	       !atomic_load(&p->stop))
		pthread_cond_wait(&p->cv, &p->mu);
	atomic_fetch_sub(&p->sleepers, 1);
	pthread_mutex_unlock(&p->mu);
	return s;
}

static void *worker_main(void *arg)
{
	struct ec_cpu_pool *p = arg;
	uint64_t seen_gen = 0, s;

	for (;;) {
		s = wait_for_run(p, seen_gen);
		if (atomic_load(&p->stop))
			break;
		if (!joinable(s, seen_gen))
			continue;
		if (!atomic_compare_exchange_weak_explicit(
			&p->state, &s, s + 1, memory_order_acquire,
			memory_order_relaxed))
			continue; /* closed or changed meanwhile */
		seen_gen = s >> ST_GEN_SHIFT;
		take_items(p);
		/* seq_cst: pairs with the caller's asleep store, done load */
		atomic_fetch_add(&p->done, 1);
		if (atomic_load(&p->caller_asleep))
			futex_wake(&p->done);
	}
	return NULL;
}

void ec_cpu_pool_for(struct ec_cpu_pool *p, uint32_t n_items, ec_cpu_item_fn fn,
		     void *arg)
{
	uint64_t s, gen, t0 = 0;
	uint32_t joined, d;

	if (p->n_threads == 1 || n_items <= 1) {
		for (uint32_t i = 0; i < n_items; i++)
			fn(arg, i);
		return;
	}
	p->fn = fn;
	p->arg = arg;
	p->n_items = n_items;
	atomic_store_explicit(&p->next, 0, memory_order_relaxed);
	atomic_store_explicit(&p->done, 0, memory_order_relaxed);
	gen = (atomic_load_explicit(&p->state, memory_order_relaxed) >>
	       ST_GEN_SHIFT) +
	      1;
	atomic_store(&p->state, gen << ST_GEN_SHIFT); /* open, seq_cst */
	if (atomic_load(&p->sleepers)) {
		pthread_mutex_lock(&p->mu);
		pthread_cond_broadcast(&p->cv);
		pthread_mutex_unlock(&p->mu);
	}
	take_items(p);
	s = atomic_fetch_or_explicit(&p->state, ST_CLOSED,
				     memory_order_acq_rel);
	joined = (uint32_t)(s & ST_JOINED_MASK);
	for (uint32_t i = 0;
	     atomic_load_explicit(&p->done, memory_order_acquire) < joined;
	     i++) {
		cpu_relax();
		if ((i & 63) != 63)
			continue;
		if (!t0)
			t0 = now_ns();
		else if (now_ns() - t0 > CALLER_SPIN_NS)
			break;
	}
	/*
	 * A joined worker is still busy: most likely it lost its core (the
	 * machine is shared).  Sleep rather than spin, so as not to take
	 * CPU time from it.
	 */
	while ((d = atomic_load(&p->done)) < joined) {
		atomic_store(&p->caller_asleep, 1);
		if ((d = atomic_load(&p->done)) >= joined)
			break;
		futex_wait(&p->done, d, 1000000);
	}
	atomic_store_explicit(&p->caller_asleep, 0, memory_order_relaxed);
	atomic_thread_fence(memory_order_acquire);
}

uint32_t ec_cpu_pool_size(const struct ec_cpu_pool *p)
{
	return p->n_threads;
}

void ec_cpu_pool_destroy(struct ec_cpu_pool *p)
{
	if (!p)
		return;
	pthread_mutex_lock(&p->mu);
	atomic_store(&p->stop, true);
	pthread_cond_broadcast(&p->cv);
	pthread_mutex_unlock(&p->mu);
	for (uint32_t i = 0; i < p->n_started; i++)
		pthread_join(p->threads[i], NULL);
	pthread_cond_destroy(&p->cv);
	pthread_mutex_destroy(&p->mu);
	free(p->threads);
	free(p);
}

int ec_cpu_pool_create(uint32_t n_threads, struct ec_cpu_pool **out)
{
	struct ec_cpu_pool *p;
	const char *spin = getenv("EC_CPU_SPIN_US");
	int ret;

	if (n_threads < 1 || n_threads > 1024)
		return ec_err(-EC_EINVAL,
			      "cpu backend: %u threads "
			      "(1..1024)",
			      n_threads);
	p = calloc(1, sizeof(*p));
	if (!p)
		return ec_err(-ENOMEM, "cpu backend: thread pool");
	p->n_threads = n_threads;
	p->spin_ns = (spin ? strtoull(spin, NULL, 10) : DEFAULT_SPIN_US) * 1000;
	atomic_init(&p->state, ST_CLOSED);
	pthread_mutex_init(&p->mu, NULL);
	pthread_cond_init(&p->cv, NULL);
	p->threads = calloc(n_threads, sizeof(*p->threads));
	if (!p->threads) {
		ret = ec_err(-ENOMEM, "cpu backend: thread pool");
		goto err;
	}
	for (uint32_t i = 1; i < n_threads; i++) {
		ret = pthread_create(&p->threads[i - 1], NULL, worker_main, p);
		if (ret) {
			ret = ec_err(-ret,
				     "cpu backend: starting worker "
				     "thread %u of %u",
				     i, n_threads);
			goto err;
		}
		p->n_started++;
	}
	*out = p;
	return 0;
err:
	ec_cpu_pool_destroy(p);
	return ret;
}
