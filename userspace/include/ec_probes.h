/* SPDX-License-Identifier: MIT */
/*
 * USDT probes of libexpertcache (provider "expertcache"), over <sys/sdt.h>.
 *
 * A probe site is a single `nop` plus a note in .note.stapsdt: it costs
 * nothing while no tracer is attached.  Every probe has a semaphore (a
 * counter the kernel raises while a uprobe is attached), so a site whose
 * arguments are expensive to compute can skip the work:
 *
 *	if (EC_PROBE_ENABLED(route))
 *		for (...) EC_PROBE_ROUTE(layer, e, ec_probe_q16(w), pos);
 *
 * bpf/expert_traffic.bpf.c consumes them; so can bpftrace
 * (`usdt:./build/expertcache:expertcache:hit { @[arg0, arg1] = count(); }`)
 * or `perf probe sdt_expertcache:*`.  The argument lists below are an ABI:
 * append new arguments, never reorder.  Units: bytes, nanoseconds.
 * Tiers are EC_TIER_*; `device` is the replica index a load read from.
 * Build with -DEC_NO_PROBES (or without sys/sdt.h) to compile them out.
 */
#ifndef EC_PROBES_H
#define EC_PROBES_H

#include <stdint.h>

/* Where an expert lives; bpf/expert_traffic.h repeats these numbers. */
enum ec_tier {
	EC_TIER_VRAM = 0,	/* GPU expert slots */
	EC_TIER_HOST = 1,	/* pinned host-memory slots (the cache) */
	EC_TIER_STORAGE = 2,	/* NVMe / model files */
	EC_TIER_NR,
};

/* Gate weight as 16.16 fixed point (1.0 = 65536): probes carry integers. */
static inline uint32_t ec_probe_q16(float w)
{
	return w <= 0.0f ? 0u : w >= 65535.0f ? 0xffffffffu :
	       (uint32_t)(w * 65536.0f + 0.5f);
}

#if !defined(EC_NO_PROBES) && defined(__has_include)
#if __has_include(<sys/sdt.h>)
#define EC_HAVE_PROBES 1
#endif
#endif

#ifdef EC_HAVE_PROBES
#define _SDT_HAS_SEMAPHORES 1
/*
 * Arguments in registers or immediates only: libbpf before 1.3 cannot
 * decode indexed memory operands ("4@(%r12,%rbx)"), which "nor" allows.
 */
#ifndef STAP_SDT_ARG_CONSTRAINT
#define STAP_SDT_ARG_CONSTRAINT nr
#endif
#include <sys/sdt.h>

/* One per probe, defined in userspace/lib/probes.c. */
#define EC_PROBE_SEMAPHORE(ev) expertcache_##ev##_semaphore
extern unsigned short expertcache_route_semaphore;
extern unsigned short expertcache_route_batch_semaphore;
extern unsigned short expertcache_route_chunk_semaphore;
extern unsigned short expertcache_hit_semaphore;
extern unsigned short expertcache_miss_semaphore;
extern unsigned short expertcache_load_issued_semaphore;
extern unsigned short expertcache_load_done_semaphore;
extern unsigned short expertcache_evict_semaphore;
extern unsigned short expertcache_prefetch_issued_semaphore;
extern unsigned short expertcache_prefetch_used_semaphore;
extern unsigned short expertcache_substitute_semaphore;

#define EC_PROBE_ENABLED(ev) \
	__builtin_expect(*(volatile unsigned short *)&EC_PROBE_SEMAPHORE(ev), 0)

/*
 * Routing decision of one (token, expert) pair: layer, expert, gate weight
 * (ec_probe_q16) and the token's position in the sequence.
 */
#define EC_PROBE_ROUTE(layer, expert, weight_q16, pos) \
	STAP_PROBE4(expertcache, route, (uint32_t)(layer), \
		    (uint32_t)(expert), (uint32_t)(weight_q16), \
		    (uint64_t)(pos))

/*
 * Every routing decision of one layer for a chunk of n_tok tokens at once
 * (one trap per layer instead of one per pair, for low-overhead tracers):
 * ids and weights point to (n_tok, k) int32 expert ids and float32 gate
 * weights; the tokens sit at positions pos0 .. pos0 + n_tok - 1.
 */
#define EC_PROBE_ROUTE_BATCH(layer, n_layer, n_expert, n_tok, k, pos0, ids, \
			     weights) \
	STAP_PROBE8(expertcache, route_batch, (uint32_t)(layer), \
		    (uint32_t)(n_layer), (uint32_t)(n_expert), \
		    (uint32_t)(n_tok), (uint32_t)(k), (uint64_t)(pos0), \
		    (const int32_t *)(ids), (const float *)(weights))

/*
 * Every routing decision of a whole forward chunk, all layers, in one trap
 * (the cheapest for a tracer: once per decoded token): ids and weights
 * point to (n_layer, n_tok, k) int32 ids (-1 where a layer did not route)
 * and float32 weights; fired at the end of the chunk, only while traced
 * (probe_route.c buffers the layers).
 */
#define EC_PROBE_ROUTE_CHUNK(n_layer, n_expert, n_tok, k, pos0, ids, \
			     weights) \
	STAP_PROBE7(expertcache, route_chunk, (uint32_t)(n_layer), \
		    (uint32_t)(n_expert), (uint32_t)(n_tok), (uint32_t)(k), \
		    (uint64_t)(pos0), (const int32_t *)(ids), \
		    (const float *)(weights))

/* A lookup of (layer, expert) in `tier` found it ready. */
#define EC_PROBE_HIT(layer, expert, tier) \
	STAP_PROBE3(expertcache, hit, (uint32_t)(layer), (uint32_t)(expert), \
		    (uint32_t)(tier))

/* A lookup in `tier` had to load (or wait for a load in flight). */
#define EC_PROBE_MISS(layer, expert, tier) \
	STAP_PROBE3(expertcache, miss, (uint32_t)(layer), \
		    (uint32_t)(expert), (uint32_t)(tier))

/* A load of `bytes` into `tier` was issued; prefetch: 1 if speculative. */
#define EC_PROBE_LOAD_ISSUED(layer, expert, bytes, tier, device, prefetch) \
	STAP_PROBE6(expertcache, load_issued, (uint32_t)(layer), \
		    (uint32_t)(expert), (uint64_t)(bytes), (uint32_t)(tier), \
		    (uint32_t)(device), (uint32_t)(prefetch))

/* A load finished: bytes moved, ns from issue to completion, err 0 / -errno */
#define EC_PROBE_LOAD_DONE(layer, expert, bytes, ns, tier, device, err) \
	STAP_PROBE7(expertcache, load_done, (uint32_t)(layer), \
		    (uint32_t)(expert), (uint64_t)(bytes), (uint64_t)(ns), \
		    (uint32_t)(tier), (uint32_t)(device), (int32_t)(err))

/* (layer, expert) was evicted from `tier`. */
#define EC_PROBE_EVICT(layer, expert, tier) \
	STAP_PROBE3(expertcache, evict, (uint32_t)(layer), \
		    (uint32_t)(expert), (uint32_t)(tier))

#define EC_PROBE_PREFETCH_ISSUED(layer, expert, tier) \
	STAP_PROBE3(expertcache, prefetch_issued, (uint32_t)(layer), \
		    (uint32_t)(expert), (uint32_t)(tier))

/* A prefetched expert was asked for before it was evicted. */
#define EC_PROBE_PREFETCH_USED(layer, expert, tier) \
	STAP_PROBE3(expertcache, prefetch_used, (uint32_t)(layer), \
		    (uint32_t)(expert), (uint32_t)(tier))

/* The miss policy ran resident expert `used` instead of `wanted`. */
#define EC_PROBE_SUBSTITUTE(layer, wanted, used) \
	STAP_PROBE3(expertcache, substitute, (uint32_t)(layer), \
		    (uint32_t)(wanted), (uint32_t)(used))

#else /* !EC_HAVE_PROBES */

#define EC_PROBE_ENABLED(ev) 0
#define EC_PROBE_ROUTE(layer, expert, weight_q16, pos) do { } while (0)
#define EC_PROBE_ROUTE_BATCH(layer, n_layer, n_expert, n_tok, k, pos0, ids, \
			     weights) do { } while (0)
#define EC_PROBE_ROUTE_CHUNK(n_layer, n_expert, n_tok, k, pos0, ids, \
			     weights) do { } while (0)
#define EC_PROBE_HIT(layer, expert, tier) do { } while (0)
#define EC_PROBE_MISS(layer, expert, tier) do { } while (0)
#define EC_PROBE_LOAD_ISSUED(layer, expert, bytes, tier, device, prefetch) \
	do { } while (0)
#define EC_PROBE_LOAD_DONE(layer, expert, bytes, ns, tier, device, err) \
	do { } while (0)
#define EC_PROBE_EVICT(layer, expert, tier) do { } while (0)
#define EC_PROBE_PREFETCH_ISSUED(layer, expert, tier) do { } while (0)
#define EC_PROBE_PREFETCH_USED(layer, expert, tier) do { } while (0)
#define EC_PROBE_SUBSTITUTE(layer, wanted, used) do { } while (0)

#endif /* EC_HAVE_PROBES */

#endif /* EC_PROBES_H */
