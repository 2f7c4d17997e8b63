// SPDX-License-Identifier: MIT
/*
 * bpf_workload: runs a model through the expert cache (O_DIRECT reads) and
 * prints the runtime's own counters as JSON, for tests/bpf/ to compare
 * with what the BPF programs saw.
 *
 *   bpf_workload MODEL [-p N] [-n N] [--slots N] [--prefetch] [--wait]
 *                [--reps R] [--batch N]
 *   bpf_workload --probe-loop N
 *
 * --slots 0 runs without the cache (weights from the file mapping).
 * --prefetch: after each decode step, prefetch the experts the last token
 * used in each layer (a naive predictor, to exercise the prefetch path).
 * --wait: print "ready <pid>" and wait for SIGUSR1 before running (so a
 * tracer can attach with --pid first).  --reps R: prefill and decode R
 * times (the context reset in between), decode_tok_per_s the best.
 * --batch N: tokens per forward chunk (prefill), default 64.
 * --soak S: see soak_decode().
 */
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "ec_backend.h"
#include "ec_error.h"
#include "ec_generate.h"
#include "ec_infer.h"
#include "ec_model.h"
#include "ec_probes.h"
#include "ec_storage.h"

static volatile sig_atomic_t go;

static void on_usr1(int sig)
{
	go = 1;
}

static void print_grid(const char *name, const uint64_t *v, uint32_t nl,
		       uint32_t ne)
{
	uint32_t l, e;

	printf(", \"%s\": [", name);
	for (l = 0; l < nl; l++) {
		printf("%s[", l ? ", " : "");
		for (e = 0; e < ne; e++)
			printf("%s%llu", e ? ", " : "",
			       (unsigned long long)v[(size_t)l * ne + e]);
		printf("]");
	}
	printf("]");
}

/* Prefetch, per layer, the experts with the largest routed delta. */
static void prefetch_last(struct ec_cache *cache, const uint64_t *routed,
			  uint64_t *prev, uint32_t nl, uint32_t ne)
{
	int32_t ids[64];
	uint32_t l, e, n;

	for (l = 0; l < nl; l++) {
		n = 0;
		for (e = 0; e < ne && n < 64; e++)
			if (routed[(size_t)l * ne + e] !=
			    prev[(size_t)l * ne + e])
				ids[n++] = (int32_t)e;
		ec_cache_prefetch(cache, l, ids, n);
	}
	memcpy(prev, routed, sizeof(*prev) * nl * ne);
}

/*
 * --probe-loop N: the cost of one probe firing, alone: N hit probes and N
 * route_chunk probes (a decode step of 6 layers, 4 experts each) in a loop.
 */
static int time_probes(uint32_t n)
{
	int32_t ids[6 * 4];
	float wts[6 * 4];
	double t0, hit_ns, route_ns;
	uint32_t i;

	for (i = 0; i < 24; i++) {
		ids[i] = (int32_t)((i * 7) % 32);
		wts[i] = 0.25f;
	}
	t0 = ec_now();
	for (i = 0; i < n; i++)
		EC_PROBE_HIT(i & 7, i & 31, EC_TIER_HOST);
	hit_ns = (ec_now() - t0) * 1e9 / n;
	t0 = ec_now();
	for (i = 0; i < n; i++)
		EC_PROBE_ROUTE_CHUNK(6, 32, 1, 4, i, ids, wts);
	route_ns = (ec_now() - t0) * 1e9 / n;
	printf("{\"probe_loop\": %u, \"hit_ns\": %.1f, \"route_chunk_ns\": "
	       "%.1f}\n", n, hit_ns, route_ns);
	return 0;
}

/*
 * --soak S: decode for S seconds in blocks of 32 tokens (context reset
 * after n_d), one line per block: its rate and whether a tracer was
 * attached to route_chunk all through it (the probe's semaphore), so a
 * script can attach and detach while this runs and compare blocks of the
 * same process side by side.  attached -1: it changed during the block.
 */
static int soak_decode(struct ec_ctx *ctx, const int32_t *tok, uint32_t n_p,
		       uint32_t n_d, double seconds)
{
	double end = ec_now() + seconds, t0;
	uint32_t i = n_d, j;
	int a0, a1, ret = 0;

	setvbuf(stdout, NULL, _IOLBF, 0);
	while (ret >= 0 && ec_now() < end) {
		if (i + 32 > n_d) {
			ec_ctx_reset(ctx);
			ret = ec_ctx_eval(ctx, tok, n_p, NULL, 0);
			i = 0;
		}
		a0 = EC_PROBE_ENABLED(route_chunk) != 0;
		t0 = ec_now();
		for (j = 0; ret >= 0 && j < 32; j++, i++)
			ret = ec_ctx_eval(ctx, tok + n_p + i, 1, NULL, 0);
		t0 = ec_now() - t0;
		a1 = EC_PROBE_ENABLED(route_chunk) != 0;
		printf("{\"attached\": %d, \"tok_per_s\": %.3f}\n",
		       a0 == a1 ? a0 : -1, 32 / t0);
	}
	return ret < 0;
}

int main(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "slots", required_argument, NULL, 's' },
		{ "prefetch", no_argument, NULL, 'f' },
		{ "wait", no_argument, NULL, 'w' },
		{ "reps", required_argument, NULL, 'r' },
		{ "batch", required_argument, NULL, 'b' },
		{ "soak", required_argument, NULL, 'k' },
		{ "probe-loop", required_argument, NULL, 'L' },
		{ 0 },
	};
	uint32_t n_p = 16, n_d = 32, slots = 4, i, nl, ne;
	int c, ret, prefetch = 0, wait = 0;
	struct ec_cache_params cp = { .policy = "lru" };
	struct ec_ctx_params xp = { 0 };
	struct ec_expert_source src;
	struct ec_cache_stats st = { 0 };
	struct ec_cache_info info = { 0 };
	struct ec_cache *cache = NULL;
	struct ec_backend *be = NULL;
	struct ec_model *m = NULL;
	struct ec_ctx *ctx = NULL;
	uint64_t *prev = NULL, x = 0x9e3779b97f4a7c15ull;
	double t0, t_decode = 0;
	uint32_t r, reps = 1, probe_loop = 0;
	double soak = 0;
	int32_t *tok;

	while ((c = getopt_long(argc, argv, "p:n:", opts, NULL)) != -1) {
		switch (c) {
		case 'p':
			n_p = (uint32_t)atoi(optarg);
			break;
		case 'n':
			n_d = (uint32_t)atoi(optarg);
			break;
		case 's':
			slots = (uint32_t)atoi(optarg);
			break;
		case 'f':
			prefetch = 1;
			break;
		case 'w':
			wait = 1;
			break;
		case 'r':
			reps = (uint32_t)atoi(optarg);
			break;
		case 'b':
			xp.n_batch = (uint32_t)atoi(optarg);
			break;
		case 'k':
			soak = atof(optarg);
			break;
		case 'L':
			probe_loop = (uint32_t)atoi(optarg);
			break;
		default:
			return 2;
		}
	}
	if (probe_loop)
		return time_probes(probe_loop);
	if (optind + 1 != argc || !n_p || !reps)
		return 2;
	if (wait) {
		signal(SIGUSR1, on_usr1);
		printf("ready %d\n", (int)getpid());
		fflush(stdout);
		while (!go)
			pause();
	}
	ret = ec_model_open(argv[optind], &m);
	if (ret >= 0)
		ret = ec_backend_cpu_create(1, &be);
	xp.n_ctx = n_p + n_d + 1;
	if (ret >= 0)
		ret = ec_ctx_create(m, be, &xp, &ctx);
	if (ret >= 0 && slots) {
		cp.n_slots = slots;
		ret = ec_cache_create(m, &cp, &cache);
		if (ret >= 0) {
			ec_cache_expert_source(cache, &src);
			ec_ctx_set_expert_source(ctx, &src);
		}
	}
	if (ret < 0) {
		fprintf(stderr, "bpf_workload: %s\n", ec_error_msg());
		return 1;
	}
	nl = m->hp.n_layer;
	ne = m->hp.n_expert;
	tok = malloc(sizeof(*tok) * (n_p + n_d));
	prev = calloc((size_t)nl * ne, sizeof(*prev));
	if (!tok || !prev)
		return 1;
	for (i = 0; i < n_p + n_d; i++) {
		x ^= x << 13;
		x ^= x >> 7;
		x ^= x << 17;
		tok[i] = (int32_t)(x % m->hp.n_vocab);
	}
	if (soak)
		return soak_decode(ctx, tok, n_p, n_d, soak);
	for (r = 0; ret >= 0 && r < reps; r++) {
		ec_ctx_reset(ctx);
		ret = ec_ctx_eval(ctx, tok, n_p, NULL, 0);
		t0 = ec_now();
		for (i = 0; ret >= 0 && i < n_d; i++) {
			if (prefetch && cache)
				prefetch_last(cache, ec_ctx_routed_counts(ctx),
					      prev, nl, ne);
			ret = ec_ctx_eval(ctx, tok + n_p + i, 1, NULL, 0);
		}
		t0 = ec_now() - t0;
		if (n_d && (!t_decode || t0 < t_decode))
			t_decode = t0;	/* best of reps */
	}
	if (ret < 0) {
		fprintf(stderr, "bpf_workload: %s\n", ec_error_msg());
		return 1;
	}
	if (cache) {
		ec_ctx_set_expert_source(ctx, NULL);
		/* prefetches may still be loading: every started load ends
		 * READY, evicted or failed */
		for (;;) {
			ec_cache_get_stats(cache, &st);
			if (st.n_resident + st.evictions + st.load_errors >=
			    st.loads)
				break;
			usleep(1000);
		}
		ec_cache_get_info(cache, &info);
	}
	printf("{\"pid\": %d, \"n_layer\": %u, \"n_expert\": %u, "
	       "\"n_tokens\": %u, \"direct\": %s, \"hits\": %llu, "
	       "\"misses\": %llu, \"loads\": %llu, \"evictions\": %llu, "
	       "\"bytes_read\": %llu, \"prefetch_issued\": %llu, "
	       "\"prefetch_used\": %llu, \"decode_tok_per_s\": %.3f",
	       (int)getpid(), nl, ne, reps * (n_p + n_d),
	       info.io.direct ? "true" : "false",
	       (unsigned long long)st.hits, (unsigned long long)st.misses,
	       (unsigned long long)st.loads, (unsigned long long)st.evictions,
	       (unsigned long long)st.bytes_read,
	       (unsigned long long)st.prefetch_issued,
	       (unsigned long long)st.prefetch_used,
	       t_decode > 0 ? n_d / t_decode : 0.0);
	print_grid("routed", ec_ctx_routed_counts(ctx), nl, ne);
	printf("}\n");
	ec_cache_free(cache);	/* waits for prefetches in flight */
	ec_ctx_free(ctx);
	be->ops->destroy(be);
	ec_model_close(m);
	free(tok);
	free(prev);
	return 0;
}
