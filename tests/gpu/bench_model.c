// SPDX-License-Identifier: MIT
/*
 * Decode and prefill on a synthetic Qwen3-30B-A3B-shaped model (48 layers,
 * 128 experts of 2048x768, top-8, Q4_K gate/up and Q6_K down as in Q4_K_M)
 * with VRAM budgets of 100%, 50%, 25% and 10% of the expert bytes, each
 * below 100% with VRAM prefetch off, 1 and 2 layers ahead: tokens/s, hit
 * rates, bytes and copies per token, the prefetch counters, the time the
 * GPU sat idle for routing decisions, the host's bookkeeping in moe_ffn and
 * its waits on copies, and the PCIe ceiling: the copy time per token of
 * the misses without prefetch at the measured pinned host-to-device
 * bandwidth, or the full-residency step, whichever is longer.  Misses are
 * copied from the model mapping in host RAM (page-locked).
 *
 *   bench_model [PATH]   (generated there when missing; EC_BENCH_LAYERS=N
 *                         for fewer layers, EC_BENCH_DECODE=N steps,
 *                         EC_BENCH_SMALL=1 a small model of the same
 *                         structure: checks the benchmark itself runs,
 *                         e.g. under the CPU emulation; its timings mean
 *                         nothing there)
 */
#include <sys/stat.h>

#include "synth_model.h"

#define N_PREFILL 128
#define N_DECODE 48
#define N_DECODE_MAX 256

struct point {
	double prefill_tps, decode_tps, hit_rate, miss_mb_tok, copies_tok;
	double bubble_share, host_share, wait_share, copy_s_tok;
};

static struct ec_backend *backend(const struct ec_model *m, uint64_t budget,
				  int32_t prefetch, char *why, size_t len)
{
	struct ec_backend_cuda_params p = { .model = m, .vram_budget = budget,
					    .vram_prefetch = prefetch };

	return gt_cuda_with(&p, why, len);
}

/*
 * One budget and prefetch setting.  ceiling_s: the step time the PCIe
 * ceiling allows (0: this run sets it: the full-residency run, or the
 * prefetch-off run of its budget); the row prints tok/s against it.
 */
static int measure(const struct ec_model *m, int pct, int32_t prefetch,
		   double h2d, double t_full, double *ceiling_s,
		   uint32_t n_decode, struct point *p)
{
	uint64_t experts = ec_model_total_expert_bytes(m);
	uint64_t slack = (uint64_t)m->hp.n_layer * m->hp.n_expert * 1024;
	uint64_t budget = pct >= 100 ? experts + slack : experts / 100 * pct;
	struct ec_ctx_params cp = { .n_ctx = 512, .n_batch = 64 };
	struct gt_rng r = { 99 };
	int32_t tok[N_PREFILL * 2 + N_DECODE_MAX];
	struct ec_cuda_stats st;
	struct ec_backend *be;
	struct ec_ctx *c = NULL;
	char why[512], pf[16];
	double t0, t_pre, t_dec, ceil;
	int ret;

	for (size_t i = 0; i < sizeof(tok) / sizeof(tok[0]); i++)
		tok[i] = (int32_t)(gt_next(&r) % m->hp.n_vocab);
	be = backend(m, budget, prefetch, why, sizeof(why));
	if (!be) {
		EC_CHECK(0, "%d%%: %s", pct, why);
		return -1;
	}
	ret = ec_ctx_create(m, be, &cp, &c);
	if (ret < 0)
		goto out;
	/* warm: one prefill fills the slots, then time a second one */
	ret = ec_ctx_eval(c, tok, N_PREFILL, NULL, 0);
	ec_ctx_reset(c);
	ec_backend_cuda_reset_stats(be);
	t0 = gt_now();
	if (ret >= 0)
		ret = ec_ctx_eval(c, tok + N_PREFILL, N_PREFILL, NULL, 0);
	t_pre = gt_now() - t0;
	ec_backend_cuda_reset_stats(be);
	t0 = gt_now();
	for (uint32_t i = 0; ret >= 0 && i < n_decode; i++)
		ret = ec_ctx_eval(c, tok + 2 * N_PREFILL + i, 1, NULL, 0);
	t_dec = gt_now() - t0;
	if (ret < 0)
		goto out;
	ec_backend_cuda_get_stats(be, &st);
	p->prefill_tps = N_PREFILL / t_pre;
	p->decode_tps = n_decode / t_dec;
	p->hit_rate = (double)st.expert_hits /
		      (double)(st.expert_hits + st.expert_misses);
	p->miss_mb_tok = st.h2d_bytes / 1e6 / n_decode;
	p->copies_tok = (double)st.h2d_copies / n_decode;
	p->bubble_share = st.sync_bubble_ns * 1e-9 / t_dec;
	p->host_share = st.moe_host_ns * 1e-9 / t_dec;
	p->wait_share = st.copy_wait_ns * 1e-9 / t_dec;
	p->copy_s_tok = st.h2d_bytes / (h2d * 1e9) / n_decode;
	if (*ceiling_s <= 0) {
		double step = t_full > 0 ? t_full : t_dec / n_decode;

		*ceiling_s = p->copy_s_tok > step ? p->copy_s_tok : step;
	}
	ceil = 1.0 / *ceiling_s;
	if (st.prefetch_depth)
		snprintf(pf, sizeof(pf), "%u", st.prefetch_depth);
	else
		snprintf(pf, sizeof(pf), "off");
	printf("| %d%% | %s | %u | %.0f | %.1f | %.3f | %.1f | %.1f | "
	       "%.1f / %.1f / %.1f / %.1f | %.1f%% | %.1f%% | %.1f%% | %.1f | "
	       "%.0f%% |\n", pct, pf, st.n_slots, p->prefill_tps,
	       p->decode_tps, p->hit_rate, p->miss_mb_tok, p->copies_tok,
	       (double)st.prefetch_issued / n_decode,
	       (double)st.prefetch_used / n_decode,
	       (double)st.prefetch_wasted / n_decode,
	       (double)st.prefetch_late / n_decode, 100 * p->bubble_share,
	       100 * p->host_share, 100 * p->wait_share, ceil,
	       100 * p->decode_tps / ceil);
	printf("<!-- %d%% prefetch %s: pageable copies %.0f MB, weights "
	       "%.0f MB, route waits %.1f ms, host in src->get %.1f ms, "
	       "loading hits %llu, picks skipped %llu, over %u tokens -->\n",
	       pct, pf, st.h2d_pageable / 1e6, st.weight_bytes / 1e6,
	       st.route_wait_ns / 1e6, st.get_wait_ns / 1e6,
	       (unsigned long long)st.loading_hits,
	       (unsigned long long)st.prefetch_skipped, n_decode);
	fflush(stdout);
	/* the counters add up however the run went */
	EC_CHECK(st.prefetch_issued == st.prefetch_used + st.prefetch_wasted +
					       st.prefetch_pending,
		 "%d%% prefetch %s: issued %llu != used %llu + wasted %llu + "
		 "pending %u", pct, pf, (unsigned long long)st.prefetch_issued,
		 (unsigned long long)st.prefetch_used,
		 (unsigned long long)st.prefetch_wasted, st.prefetch_pending);
out:
	if (ret < 0)
		EC_CHECK(0, "%d%%: %s", pct, ec_error_msg());
	else
		EC_CHECK(1, "ok");
	ec_ctx_free(c);
	be->ops->destroy(be);
	return ret;
}

int main(int argc, char **argv)
{
	static const int pcts[] = { 100, 50, 25, 10 };
	static const int32_t pfs[] = { -1, 1, 2 };	/* off first: ceiling */
	const char *denv = getenv("EC_BENCH_DECODE");
	uint32_t n_decode = denv ? (uint32_t)atoi(denv) : N_DECODE;
	const char *senv = getenv("EC_BENCH_SMALL");
	int small = senv && *senv && strcmp(senv, "0");
	const char *path = argc > 1 ? argv[1] :
			   small ? "/tmp/ec-bench-small.gguf" :
				   "/tmp/ec-qwen3-30b-a3b.gguf";
	const char *lenv = getenv("EC_BENCH_LAYERS");
	struct synth_spec s = { .n_layer = lenv ? (uint32_t)atoi(lenv) : 48,
				.n_embd = 2048, .n_head = 32, .n_head_kv = 4,
				.head_dim = 128, .n_expert = 128, .n_used = 8,
				.n_ff = 768, .n_vocab = 151936,
				.t_embd = EC_Q4_K, .t_attn = EC_Q4_K,
				.t_out = EC_Q6_K, .t_gate_up = EC_Q4_K,
				.t_down = EC_Q6_K, .seed = 30 };
	struct ec_backend *probe;
	struct ec_model *m = NULL;
	struct point p;
	double d2d = 0, h2d = 0, t0, t_full = 0, ceiling = 0;
	struct stat sb;
	char why[512];

	if (small) {
		s.n_embd = 256;
		s.n_head = 4;
		s.n_head_kv = 2;
		s.head_dim = 64;
		s.n_expert = 32;
		s.n_used = 4;
		s.n_ff = 256;
		s.n_vocab = 1024;
		if (!lenv)
			s.n_layer = 6;
	}
	if (stat(path, &sb) < 0) {
		t0 = gt_now();
		if (synth_write(path, &s) < 0) {
			fprintf(stderr, "cannot write %s\n", path);
			return 1;
		}
		fprintf(stderr, "generated %s in %.1f s\n", path, gt_now() - t0);
	}
	if (ec_model_open(path, &m) < 0) {
		fprintf(stderr, "%s\n", ec_error_msg());
		return 1;
	}
	probe = gt_cuda(m, 1ull << 30, why, sizeof(why));
	if (!probe) {
		EC_SKIP("model benchmark needs a GPU: %s", why);
		ec_model_close(m);
		return ec_test_done();
	}
	ec_backend_cuda_measure_copy(probe, small ? 64ull << 20 : 1ull << 30,
				     &d2d, &h2d);
	probe->ops->destroy(probe);
	printf("model: %s, %u layers, %u experts x %.2f MB (%.2f GB of "
	       "experts)\n", path, m->hp.n_layer, m->hp.n_expert,
	       ec_model_expert_bytes(m, 0, 0) / 1e6,
	       ec_model_total_expert_bytes(m) / 1e9);
	if (!n_decode || n_decode > N_DECODE_MAX)
		n_decode = N_DECODE;
	printf("pinned host-to-device %.1f GB/s; prefill %d tokens (warm), "
	       "decode %u tokens\n\n", h2d, N_PREFILL, n_decode);
	printf("| VRAM budget | VRAM prefetch | slots | prefill tok/s | decode "
	       "tok/s | hit rate | MB copied/token | copies/token | prefetched "
	       "/ used / wasted / late per token | GPU idle for routing | host "
	       "in moe_ffn | host waiting on copies | ceiling tok/s | of "
	       "ceiling |\n");
	printf("|---|---|---|---|---|---|---|---|---|---|---|---|---|---|\n");
	for (int i = 0; i < 4; i++) {
		for (int j = 0; j < (pcts[i] >= 100 ? 1 : 3); j++) {
			/* full residency: the prefetch default (off) */
			int32_t pf = pcts[i] >= 100 ? 0 : pfs[j];

			if (!j)
				ceiling = 0;
			if (measure(m, pcts[i], pf, h2d, t_full, &ceiling,
				    n_decode, &p) < 0 && !i)
				goto done;
			if (!i)
				t_full = 1.0 / p.decode_tps;
		}
	}
	printf("\nceiling: 1 / max(full-residency step, copy time per token "
	       "of the prefetch-off run at %.1f GB/s); host in moe_ffn "
	       "excludes its waits\n", h2d);
done:
	ec_model_close(m);
	return ec_test_done();
}
