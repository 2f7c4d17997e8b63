// SPDX-License-Identifier: MIT
/*
 * Decode and prefill on a synthetic Qwen3-30B-A3B-shaped model (48 layers,
 * 128 experts of 2048x768, top-8, Q4_K gate/up and Q6_K down as in Q4_K_M)
 * with VRAM budgets of 100%, 50%, 25% and 10% of the expert bytes: tokens/s,
 * hit rates, bytes copied, time the GPU sat idle for routing decisions, and
 * the PCIe ceiling (copy time of the misses at the measured pinned
 * host-to-device bandwidth, or the full-residency step, whichever is
 * longer).  Misses are copied from the model mapping in host RAM.
 *
 *   bench_model [PATH]   (generated there when missing; EC_BENCH_LAYERS=N
 *                         for fewer layers)
 */
#include <sys/stat.h>

#include "synth_model.h"

#define N_PREFILL 128
#define N_DECODE 32

struct point {
	int pct;
	double prefill_tps, decode_tps, hit_rate, miss_mb_tok, bubble_share;
	double wait_share, ceiling_tps;
};



static int measure(const struct ec_model *m, int pct, double h2d,
		   double t_full, struct point *p)
{
	uint64_t experts = ec_model_total_expert_bytes(m);
	uint64_t slack = (uint64_t)m->hp.n_layer * m->hp.n_expert * 1024;
	uint64_t budget = pct >= 100 ? experts + slack : experts / 100 * pct;
	struct ec_ctx_params cp = { .n_ctx = 512, .n_batch = 64 };
	struct gt_rng r = { 99 };
	int32_t tok[N_PREFILL * 2 + N_DECODE];
	struct ec_cuda_stats st;
	struct ec_backend *be;
	struct ec_ctx *c = NULL;
	char why[512];
	double t0, t_pre, t_dec, tc;
	int ret;

	for (size_t i = 0; i < sizeof(tok) / sizeof(tok[0]); i++)
		tok[i] = (int32_t)(gt_next(&r) % m->hp.n_vocab);
	be = gt_cuda(m, budget, why, sizeof(why));
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
	for (int i = 0; ret >= 0 && i < N_DECODE; i++)
		ret = ec_ctx_eval(c, tok + 2 * N_PREFILL + i, 1, NULL, 0);
	t_dec = gt_now() - t0;
	if (ret < 0)
		goto out;
	ec_backend_cuda_get_stats(be, &st);
	p->pct = pct;
	p->prefill_tps = N_PREFILL / t_pre;
	p->decode_tps = N_DECODE / t_dec;
	p->hit_rate = (double)st.expert_hits /
		      (double)(st.expert_hits + st.expert_misses);
	p->miss_mb_tok = st.h2d_bytes / 1e6 / N_DECODE;
	p->bubble_share = st.sync_bubble_ns * 1e-9 / t_dec;
	p->wait_share = st.miss_wait_ns * 1e-9 / t_dec;
	tc = st.h2d_bytes / (h2d * 1e9) / N_DECODE;
	if (t_full <= 0)
		t_full = t_dec / N_DECODE;
	p->ceiling_tps = 1.0 / (tc > t_full ? tc : t_full);
	printf("| %d%% | %u | %.0f | %.1f | %.3f | %.1f | %.1f%% | %.1f%% | "
	       "%.1f | %.0f%% |\n", pct, st.n_slots, p->prefill_tps,
	       p->decode_tps, p->hit_rate, p->miss_mb_tok,
	       100 * p->bubble_share, 100 * p->wait_share, p->ceiling_tps,
	       100 * p->decode_tps / p->ceiling_tps);
	printf("<!-- %d%%: pageable copies %.0f MB, weights %.0f MB, "
	       "route waits %.1f ms, host in moe_ffn %.1f ms over %d tokens -->"
	       "\n", pct, st.h2d_pageable / 1e6, st.weight_bytes / 1e6,
	       st.route_wait_ns / 1e6, st.moe_host_ns / 1e6, N_DECODE);
	fflush(stdout);
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
	const char *path = argc > 1 ? argv[1] : "/tmp/ec-qwen3-30b-a3b.gguf";
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
	struct point p[4];
	double d2d = 0, h2d = 0, t0;
	struct stat sb;
	char why[512];

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
	ec_backend_cuda_measure_copy(probe, 1ull << 30, &d2d, &h2d);
	probe->ops->destroy(probe);
	printf("model: %s, %u layers, %u experts x %.2f MB (%.2f GB of "
	       "experts)\n", path, m->hp.n_layer, m->hp.n_expert,
	       ec_model_expert_bytes(m, 0, 0) / 1e6,
	       ec_model_total_expert_bytes(m) / 1e9);
	printf("pinned host-to-device %.1f GB/s; prefill %d tokens (warm), "
	       "decode %d tokens\n\n", h2d, N_PREFILL, N_DECODE);
	printf("| VRAM budget | slots | prefill tok/s | decode tok/s | hit rate "
	       "| MB copied/token | GPU idle for routing | host waiting on "
	       "copies | ceiling tok/s | of ceiling |\n");
	printf("|---|---|---|---|---|---|---|---|---|---|\n");
	for (int i = 0; i < 4; i++)
		if (measure(m, pcts[i], h2d, i ? 1.0 / p[0].decode_tps : 0,
			    &p[i]) < 0 && i == 0)
			break;
	ec_model_close(m);
	return ec_test_done();
}
