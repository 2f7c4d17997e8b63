// SPDX-License-Identifier: MIT
/* moe_ffn on the CPU: a layer's routed experts fetched, checked and run. */
#include <stdlib.h>
#include <string.h>

#include "cpu/moe_cpu.h"
#include "ec_error.h"
#include "ec_infer.h"

/*
 * The (token, expert) pairs are bucketed by expert, in ascending expert
 * order, and x is quantised once per activation format.  Pass 1 splits the
 * gate and up rows of every expert into items of about ITEM_BYTES of
 * weights; an item runs its rows for all tokens of the expert and writes
 * silu(gate) * up into each pair's hidden row, and the item that finishes
 * an expert last quantises its hidden rows for down.  Pass 2 splits the
 * down rows of every expert likewise into one output row per pair.  Last,
 * each token sums its pairs with their routing weights in ascending expert
 * order.  That is the arithmetic of the per-expert path in forward.c (the
 * same quantised activations, dot kernels, silu and order of the sums), so
 * the results are the same bits -- also when experts come from a cache in
 * any order -- in two thread-pool runs instead of three matmuls (each
 * quantising again) per expert.
 *
 * Experts the source would have to load (resident() says no) are not held
 * while others are pinned: they run after the resident ones, a batch at a
 * time, each batch starting with a blocking get of one while nothing else
 * is held, so a cache with a single free slot still makes progress.  (They
 * are not passed to the source's prefetch hook: its statistics measure the
 * look-ahead of --prefetch.)
 */

void ec_cpu_moe_free(struct ec_cpu_moe *s)
{
	if (!s)
		return;
	free(s->sel);
	free(s->sel_of);
	free(s->batch);
	free(s->pend);
	free(s->ptok);
	free(s->pw);
	free(s->tpair);
	free(s->tcnt);
	for (int a = 0; a < EC_CPU_ACT_N; a++)
		free(s->xq[a]);
	free(s->h);
	free(s->hq);
	free(s->d);
	free(s);
}

int ec_cpu_moe_grow(void **p, size_t *cap, size_t size)
{
	void *q;

	if (size <= *cap)
		return 0;
	size = (size + 4095) & ~(size_t)4095;
	q = aligned_alloc(64, size);
	if (!q)
		return ec_err(-ENOMEM, "cpu moe_ffn: %zu bytes of scratch",
			      size);
	free(*p);
	*p = q;
	*cap = size;
	return 0;
}

static int grow_index(struct ec_cpu_moe *s, uint32_t n_expert, uint32_t n_pairs)
{
	if (n_expert > s->cap_expert) {
		free(s->sel_of);
		s->sel_of = malloc(n_expert * sizeof(*s->sel_of));
		s->cap_expert = s->sel_of ? n_expert : 0;
		if (!s->sel_of)
			goto nomem;
	}
	if (n_pairs > s->cap_pairs) {
		free(s->sel);
		free(s->batch);
		free(s->pend);
		free(s->ptok);
		free(s->pw);
		free(s->tpair);
		free(s->tcnt);
		s->sel = calloc(n_pairs, sizeof(*s->sel));
		s->batch = malloc(n_pairs * sizeof(*s->batch));
		s->pend = malloc(n_pairs * sizeof(*s->pend));
		s->ptok = malloc(n_pairs * sizeof(*s->ptok));
		s->pw = malloc(n_pairs * sizeof(*s->pw));
		s->tpair = malloc(n_pairs * sizeof(*s->tpair));
		s->tcnt = malloc(n_pairs * sizeof(*s->tcnt));
		s->cap_pairs = 0;
		if (!s->sel || !s->batch || !s->pend || !s->ptok || !s->pw ||
		    !s->tpair || !s->tcnt)
			goto nomem;
		s->cap_pairs = n_pairs;
	}
	return 0;
nomem:
	return ec_err(-ENOMEM, "cpu moe_ffn: index of %u pairs", n_pairs);
}

/* Per-pair rows for n_pairs pairs of the shapes t has now */
static int grow_rows(struct ec_moe_task *t, uint32_t n_pairs)
{
	struct ec_cpu_moe *s = t->s;
	size_t hq_row = 0;
	int ret;

	for (int a = 0; a < EC_CPU_ACT_N; a++) {
		size_t r = ec_cpu_act_row_bytes(a, t->n_ff);

		hq_row = r > hq_row ? r : hq_row;
	}
	t->hq_row = (hq_row + 63) & ~(size_t)63;
	ret = ec_cpu_moe_grow((void **)&s->h, &s->cap_h,
			      (size_t)n_pairs * t->n_ff * sizeof(float));
	if (ret >= 0)
		ret = ec_cpu_moe_grow((void **)&s->d, &s->cap_d,
				      (size_t)n_pairs * t->n_embd *
					  sizeof(float));
	if (ret >= 0)
		ret = ec_cpu_moe_grow((void **)&s->hq, &s->cap_hq,
				      n_pairs * t->hq_row);
	return ret;
}

/* Bucket the pairs by expert (ascending) into s->sel; returns how many */
static uint32_t bucket(struct ec_cpu_moe *s, uint32_t n, uint32_t n_expert,
		       uint32_t k, const int32_t *ids, const float *weights)
{
	uint32_t n_sel = 0, p = 0, i;

	for (i = 0; i < n_expert; i++)
		s->sel_of[i] = -1;
	for (i = 0; i < n * k; i++)
		s->sel_of[ids[i]] = 0;
	for (i = 0; i < n_expert; i++) {
		if (s->sel_of[i] < 0)
			continue;
		s->sel_of[i] = (int32_t)n_sel;
		memset(&s->sel[n_sel], 0, sizeof(s->sel[n_sel]));
		s->sel[n_sel++].e = (int32_t)i;
	}
	for (i = 0; i < n * k; i++)
		s->sel[s->sel_of[ids[i]]].np++;
	for (i = 0; i < n_sel; i++) {
		s->sel[i].p0 = p;
		p += s->sel[i].np;
		s->sel[i].np = 0;
	}
	for (i = 0; i < n * k; i++) {
		struct ec_moe_sel *e = &s->sel[s->sel_of[ids[i]]];

		s->ptok[e->p0 + e->np] = (int32_t)(i / k);
		s->pw[e->p0 + e->np++] = weights[i];
	}
	/* each token's pairs, in ascending expert order */
	memset(s->tcnt, 0, n * sizeof(*s->tcnt));
	for (p = 0; p < n * k; p++) {
		uint32_t tok = (uint32_t)s->ptok[p];

		s->tpair[tok * k + s->tcnt[tok]++] = p;
	}
	return n_sel;
}

/* e's views checked against the call's shapes; its dot kernels chosen */
static int check_expert(struct ec_cpu *cpu, struct ec_moe_task *t,
			struct ec_moe_sel *e, uint32_t layer)
{
	static const char *const part[] = {"gate", "up", "down"};

	if (!t->n_embd) { /* the first expert sets the shapes */
		t->n_embd = (uint32_t)e->w->w[EC_EXPERT_GATE].ne[0];
		t->n_ff = (uint32_t)e->w->w[EC_EXPERT_GATE].ne[1];
	}
	for (int p = 0; p < EC_EXPERT_NPARTS; p++) {
		const struct ec_tensor *w = &e->w->w[p];
		const struct ec_dtype_info *info = ec_dtype_info(w->type);
		uint64_t cols = p == EC_EXPERT_DOWN ? t->n_ff : t->n_embd;
		uint64_t rows = p == EC_EXPERT_DOWN ? t->n_embd : t->n_ff;

		e->act[p] = ec_cpu_dot_of(cpu->k, w->type, &e->dot[p]);
		if (!info || e->act[p] < 0)
			return ec_err(-EC_EUNSUPPORTED,
				      "cpu moe_ffn: layer %u expert %d %s: "
				      "weight type %u unsupported",
				      layer, e->e, part[p], w->type);
		if (!cols || w->ne[0] != cols || w->ne[1] != rows ||
		    ec_tensor_nelems(w) != cols * rows ||
		    cols % info->block_elems || !w->data)
			return ec_err(-EC_ESHAPE,
				      "cpu moe_ffn: layer %u expert %d %s: "
				      "%s [%llu, %llu], expected [%llu, %llu] "
				      "in whole blocks of %u",
				      layer, e->e, part[p], info->name,
				      (unsigned long long)w->ne[1],
				      (unsigned long long)w->ne[0],
				      (unsigned long long)rows,
				      (unsigned long long)cols,
				      info->block_elems);
		e->row_bytes[p] = ec_tensor_row_bytes(w);
	}
	return 0;
}

/* Get s->sel[i] from the source into the batch */
static int take(struct ec_cpu *cpu, struct ec_moe_task *t, uint32_t i,
		uint32_t layer, const struct ec_expert_source *src)
{
	struct ec_moe_sel *e = &t->s->sel[i];
	int ret = src->get(src->priv, layer, (uint32_t)e->e, &e->w);

	if (ret < 0)
		return ret;
	t->s->batch[t->nb++] = i;
	return check_expert(cpu, t, e, layer);
}

/* Run the batch and put its experts back */
static int run_held(struct ec_cpu *cpu, struct ec_moe_task *t, uint32_t layer,
		    const struct ec_expert_source *src)
{
	int ret = 0;

	if (t->nb)
		ret = grow_rows(t, t->n * t->k);
	if (ret >= 0 && t->nb)
		ret = ec_cpu_moe_run_batch(cpu, t);
	for (uint32_t i = 0; i < t->nb; i++) {
		struct ec_moe_sel *e = &t->s->sel[t->batch[i]];

		src->put(src->priv, layer, (uint32_t)e->e);
		e->done = 1;
	}
	t->nb = 0;
	return ret;
}

int ec_cpu_moe_ffn(struct ec_cpu *cpu, float *y, const float *x, uint32_t n,
		   uint32_t layer, uint32_t n_expert, uint32_t k,
		   const int32_t *ids, const float *weights,
		   const struct ec_expert_source *src)
{
	struct ec_moe_task t = {.y = y, .x = x, .n = n, .k = k};
	struct ec_cpu_moe *s = cpu->moe;
	uint32_t n_sel, n_pend = 0, i, j;
	int ret;

	if (!k || k > n_expert)
		return ec_err(-EC_EINVAL,
			      "cpu moe_ffn: layer %u: top %u of "
			      "%u experts",
			      layer, k, n_expert);
	for (i = 0; i < n * k; i++)
		if (ids[i] < 0 || (uint32_t)ids[i] >= n_expert)
			return ec_err(-EC_EINVAL,
				      "cpu moe_ffn: layer %u: "
				      "expert id %d of %u (token %u)",
				      layer, ids[i], n_expert, i / k);
	if (!n)
		return 0;
	if (!s) {
		s = cpu->moe = calloc(1, sizeof(*s));
		if (!s)
			return ec_err(-ENOMEM, "cpu moe_ffn: scratch");
	}
	ret = grow_index(s, n_expert, n * k);
	if (ret < 0)
		return ret;
	t.s = s;
	t.batch = s->batch;
	n_sel = bucket(s, n, n_expert, k, ids, weights);

	/* the experts get() would not wait for, all held at once */
	for (i = 0; i < n_sel; i++) {
		if (src->resident &&
		    !src->resident(src->priv, layer, (uint32_t)s->sel[i].e)) {
			s->pend[n_pend++] = s->sel[i].e;
			continue;
		}
		ret = take(cpu, &t, i, layer, src);
		if (ret < 0)
			goto err;
	}
	ret = run_held(cpu, &t, layer, src);
	if (ret < 0)
		return ret;

	/* the rest: wait for one, take whichever others are ready by then */
	for (j = 0; j < n_pend; j++) {
		if (s->sel[s->sel_of[s->pend[j]]].done)
			continue;
		for (i = j; i < n_pend; i++) {
			uint32_t si = (uint32_t)s->sel_of[s->pend[i]];

			if (s->sel[si].done ||
			    (i > j && !src->resident(src->priv, layer,
						     (uint32_t)s->pend[i])))
				continue;
			ret = take(cpu, &t, si, layer, src);
			if (ret < 0)
				goto err;
		}
		ret = run_held(cpu, &t, layer, src);
		if (ret < 0)
			return ret;
	}
	ec_cpu_moe_mix(cpu, &t);
	return 0;
err:
	for (i = 0; i < t.nb; i++)
		src->put(src->priv, layer, (uint32_t)s->sel[t.batch[i]].e);
	return ret;
}
