// SPDX-License-Identifier: MIT
/* Causal grouped-query attention over the KV cache, split by (token, head). */
#include <math.h>
#include <string.h>

#include "cpu/cpu.h"

/* Keys scored per pass; the softmax is carried across passes online */
#define KEY_CHUNK 128
/* Floats of per-head accumulators one work item keeps on its stack */
#define GROUP_FLOATS 2048
/* Most query heads one work item serves */
#define MAX_SUB 32

struct attn_task {
	const struct ec_cpu_kernels *k;
	float *out;		/* (n, n_head * head_dim) */
	const float *q;		/* (n, n_head * head_dim) */
	const float *kc, *vc;	/* (n_ctx, n_head_kv * head_dim) */
	uint32_t pos0, n, n_head, n_head_kv, head_dim;
	uint32_t group;		/* query heads per kv head */
	uint32_t sub;		/* query heads per work item */
	uint32_t subs;		/* work items per (token, kv head) */
	float scale;
};

/* Running softmax state of one query head */
struct head_state {
	float m, sum;
};

/*
 * softmax(q.K^T * scale) . V for query heads h0..h0+nh-1 of one token,
 * which share kv head kvh: each key and value row is read once for all of
 * them.  Keys go in chunks; each chunk's scores are stored and
 * exponentiated against the running maximum, and when the maximum grows
 * the sums so far are rescaled.  With one chunk (up to KEY_CHUNK
 * positions) this is exactly the two-pass max-subtracted softmax.
 */
static void attend(const struct attn_task *t, uint32_t tok, uint32_t kvh,
		   uint32_t h0, uint32_t nh)
{
	uint32_t hd = t->head_dim, kv_row = t->n_head_kv * hd;
	uint32_t n_keys = t->pos0 + tok + 1;
	const float *q = t->q + ((size_t)tok * t->n_head + h0) * hd;
	float *out = t->out + ((size_t)tok * t->n_head + h0) * hd;
	const float *kc = t->kc + (size_t)kvh * hd;
	const float *vc = t->vc + (size_t)kvh * hd;
	float acc[GROUP_FLOATS];		/* (nh, hd) */
	float sc[MAX_SUB * KEY_CHUNK];		/* (nh, KEY_CHUNK) */
	struct head_state st[MAX_SUB];

	memset(acc, 0, (size_t)nh * hd * sizeof(float));
	for (uint32_t g = 0; g < nh; g++)
		st[g] = (struct head_state){ -INFINITY, 0.0f };
	for (uint32_t j0 = 0; j0 < n_keys; j0 += KEY_CHUNK) {
		uint32_t len = n_keys - j0 < KEY_CHUNK ? n_keys - j0
						       : KEY_CHUNK;
		const float *kr = kc + (size_t)j0 * kv_row;
		const float *vr = vc + (size_t)j0 * kv_row;

		/* the chunk's keys and values stay in L2 across the heads */
		for (uint32_t g = 0; g < nh; g++) {
			float *s = sc + g * KEY_CHUNK, cm = -INFINITY;

			t->k->dot_rows_f32(hd, q + g * hd, kr, kv_row, len, s);
			for (uint32_t j = 0; j < len; j++) {
				s[j] *= t->scale;
				cm = s[j] > cm ? s[j] : cm;
			}
			if (cm > st[g].m) {
				/* 0 on the first chunk */
				float r = expf(st[g].m - cm);

				for (uint32_t d = 0; d < hd; d++)
					acc[g * hd + d] *= r;
				st[g].sum *= r;
				st[g].m = cm;
			}
			st[g].sum += t->k->exp_sum_f32(len, s, st[g].m);
			t->k->axpy_rows_f32(hd, s, vr, kv_row, len,
					    acc + g * hd);
		}
	}
	for (uint32_t g = 0; g < nh; g++)
		for (uint32_t d = 0; d < hd; d++)
			out[g * hd + d] = acc[g * hd + d] / st[g].sum;
}

/* One work item: some query heads of one kv head of one token */
static void attn_item(void *arg, uint32_t item)
{
	const struct attn_task *t = arg;
	uint32_t s = item % t->subs, rest = item / t->subs;
	uint32_t kvh = rest % t->n_head_kv, tok = rest / t->n_head_kv;
	uint32_t h0 = kvh * t->group + s * t->sub;
	uint32_t nh = t->group - s * t->sub < t->sub ? t->group - s * t->sub
						     : t->sub;

	attend(t, tok, kvh, h0, nh);
}

void ec_cpu_attention(struct ec_cpu *cpu, float *out, const float *q,
		      const float *k_cache, const float *v_cache,
		      uint32_t pos0, uint32_t n, uint32_t n_head,
		      uint32_t n_head_kv, uint32_t head_dim)
{
	struct attn_task t = {
		.k = cpu->k, .out = out, .q = q, .kc = k_cache,
		.vc = v_cache, .pos0 = pos0, .n = n, .n_head = n_head,
		.n_head_kv = n_head_kv, .head_dim = head_dim,
		.scale = (float)(1.0 / sqrt((double)head_dim)),
	};
	uint32_t n_items;
	uint64_t work;

	if (!n || !n_head || !n_head_kv || n_head % n_head_kv ||
	    !head_dim || head_dim > EC_CPU_MAX_HEAD_DIM)
		return;
	t.group = n_head / n_head_kv;
	t.sub = GROUP_FLOATS / head_dim;
	if (t.sub > MAX_SUB)
		t.sub = MAX_SUB;
	if (t.sub > t.group)
		t.sub = t.group;
	/* at least two items per thread when there are few kv heads */
	while (t.sub > 1 && (uint64_t)n * n_head_kv * ((t.group + t.sub - 1) /
			     t.sub) < 2 * cpu->n_threads)
		t.sub = (t.sub + 1) / 2;
	t.subs = (t.group + t.sub - 1) / t.sub;
	n_items = n * n_head_kv * t.subs;
	work = (uint64_t)n * n_head * (pos0 + n) * head_dim;
	if (work >= (1u << 15)) {
		ec_cpu_pool_for(cpu->pool, n_items, attn_item, &t);
	} else {
		for (uint32_t i = 0; i < n_items; i++)
			attn_item(&t, i);
	}
}
