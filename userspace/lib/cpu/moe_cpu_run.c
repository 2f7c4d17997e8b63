// SPDX-License-Identifier: MIT
/* The two parallel passes of the CPU moe_ffn and the weighted sum. */
#include <math.h>
#include <string.h>

#include "cpu/moe_cpu.h"

/*
 * Weight bytes one work item reads, in either pass: long runs of rows keep
 * the hardware prefetchers streaming (items of a few rows of each of eight
 * experts ran 40% slower from memory)
 */
#define ITEM_BYTES (256u << 10)
/* Rows of a weight tile kept hot while every pair of the expert passes */
#define TILE_ROWS 4
/* A pass reading fewer weight bytes runs on the caller alone */
#define SERIAL_BYTES (32u << 10)
/* Tokens quantised or summed on the pool from this many on */
#define PARALLEL_TOKENS 8

/* Pass 1: gate and up rows [r0, r1) of one expert for all its tokens */
static void gate_up_item(void *arg, uint32_t c)
{
	const struct ec_moe_task *t = arg;
	struct ec_cpu_moe *s = t->s;
	struct ec_moe_sel *e = &s->sel[t->batch[c / t->chunks1]];
	uint32_t r0 = c % t->chunks1 * t->rows1;
	uint32_t r1 = r0 + t->rows1 < t->n_ff ? r0 + t->rows1 : t->n_ff;
	const uint8_t *gw = e->w->w[EC_EXPERT_GATE].data;
	const uint8_t *uw = e->w->w[EC_EXPERT_UP].data;
	int ag = e->act[EC_EXPERT_GATE], au = e->act[EC_EXPERT_UP];
	size_t xg_row = ec_cpu_act_row_bytes(ag, t->n_embd);
	size_t xu_row = ec_cpu_act_row_bytes(au, t->n_embd);

	for (uint32_t rt = r0; rt < r1; rt += TILE_ROWS) {
		uint32_t re = rt + TILE_ROWS < r1 ? rt + TILE_ROWS : r1;

		for (uint32_t p = e->p0; p < e->p0 + e->np; p++) {
			const uint8_t *xg = t->xa[ag] + s->ptok[p] * xg_row;
			const uint8_t *xu = t->xa[au] + s->ptok[p] * xu_row;
			float *h = s->h + (size_t)p * t->n_ff;

			for (uint32_t r = rt; r < re; r++) {
				float g = e->dot[EC_EXPERT_GATE](
				    t->n_embd,
				    gw + r * e->row_bytes[EC_EXPERT_GATE], xg);
				float u = e->dot[EC_EXPERT_UP](
				    t->n_embd,
				    uw + r * e->row_bytes[EC_EXPERT_UP], xu);

				/* as ec_cpu_silu_mul */
				h[r] = g / (1.0f + expf(-g)) * u;
			}
		}
	}
	/* the last item of this expert: its hidden rows, quantised once */
	if (atomic_fetch_sub_explicit(&e->left, 1, memory_order_acq_rel) != 1)
		return;
	for (uint32_t p = e->p0; p < e->p0 + e->np; p++)
		ec_cpu_quantize_act(e->act[EC_EXPERT_DOWN], t->n_ff,
				    s->h + (size_t)p * t->n_ff,
				    s->hq + p * t->hq_row);
}

/* Pass 2: down rows [r0, r1) of one expert for all its tokens */
static void down_item(void *arg, uint32_t c)
{
	const struct ec_moe_task *t = arg;
	struct ec_cpu_moe *s = t->s;
	const struct ec_moe_sel *e = &s->sel[t->batch[c / t->chunks2]];
	uint32_t r0 = c % t->chunks2 * t->rows2;
	uint32_t r1 = r0 + t->rows2 < t->n_embd ? r0 + t->rows2 : t->n_embd;
	const uint8_t *dw = e->w->w[EC_EXPERT_DOWN].data;
	uint64_t drow = e->row_bytes[EC_EXPERT_DOWN];

	for (uint32_t rt = r0; rt < r1; rt += TILE_ROWS) {
		uint32_t re = rt + TILE_ROWS < r1 ? rt + TILE_ROWS : r1;

		for (uint32_t p = e->p0; p < e->p0 + e->np; p++) {
			const uint8_t *hq = s->hq + p * t->hq_row;
			float *d = s->d + (size_t)p * t->n_embd;

			for (uint32_t r = rt; r < re; r++)
				d[r] = e->dot[EC_EXPERT_DOWN](
				    t->n_ff, dw + r * drow, hq);
		}
	}
}

/* y(tok) = its pairs' down rows weighted, in ascending expert order */
static void mix_token(void *arg, uint32_t tok)
{
	const struct ec_moe_task *t = arg;
	struct ec_cpu_moe *s = t->s;
	float *y = t->y + (size_t)tok * t->n_embd;

	memset(y, 0, t->n_embd * sizeof(float));
	for (uint32_t j = 0; j < t->k; j++) {
		uint32_t p = s->tpair[tok * t->k + j];
		const float *d = s->d + (size_t)p * t->n_embd;
		float w = s->pw[p];

		/* (w * d) rounded, then added: as scatter_add */
		for (uint32_t r = 0; r < t->n_embd; r++)
			y[r] += w * d[r];
	}
}

/* fn over items [0, n) on the pool, or on the caller when small */
static void run_items(struct ec_cpu *cpu, uint32_t n, uint64_t bytes,
		      ec_cpu_item_fn fn, void *arg)
{
	if (bytes < SERIAL_BYTES) {
		for (uint32_t i = 0; i < n; i++)
			fn(arg, i);
		return;
	}
	ec_cpu_pool_for(cpu->pool, n, fn, arg);
}

/* Rows per item so it reads about ITEM_BYTES, and every thread gets 4 */
static uint32_t item_rows(struct ec_cpu *cpu, uint32_t rows,
			  uint64_t bytes_per_row, uint32_t n_parallel)
{
	uint64_t r = ITEM_BYTES / (bytes_per_row ? bytes_per_row : 1);
	uint64_t most = ((uint64_t)rows * n_parallel + 4 * cpu->n_threads - 1) /
			(4 * cpu->n_threads);

	if (r > most)
		r = most;
	r = (r + TILE_ROWS - 1) / TILE_ROWS * TILE_ROWS;
	return r ? (uint32_t)r : TILE_ROWS;
}

struct quant_x {
	uint8_t *q;
	const float *x;
	uint32_t n_embd;
	int act;
};

static void quant_x_row(void *arg, uint32_t tok)
{
	const struct quant_x *q = arg;
	size_t row = ec_cpu_act_row_bytes(q->act, q->n_embd);

	ec_cpu_quantize_act(q->act, q->n_embd, q->x + (size_t)tok * q->n_embd,
			    q->q + tok * row);
}

/* x in the formats the gate and up of this batch take, once per call */
static int quantize_x(struct ec_cpu *cpu, struct ec_moe_task *t)
{
	struct ec_cpu_moe *s = t->s;

	for (uint32_t i = 0; i < t->nb; i++) {
		const struct ec_moe_sel *e = &s->sel[t->batch[i]];

		for (int part = EC_EXPERT_GATE; part <= EC_EXPERT_UP; part++) {
			struct quant_x q = {NULL, t->x, t->n_embd,
					    e->act[part]};
			int ret;

			if (t->xa[q.act])
				continue;
			if (q.act == EC_CPU_ACT_F32) {
				t->xa[q.act] = (const uint8_t *)t->x;
				continue;
			}
			ret = ec_cpu_moe_grow(
			    &s->xq[q.act], &s->cap_xq[q.act],
			    t->n * ec_cpu_act_row_bytes(q.act, t->n_embd));
			if (ret < 0)
				return ret;
			q.q = s->xq[q.act];
			t->xa[q.act] = q.q;
			if (t->n >= PARALLEL_TOKENS)
				ec_cpu_pool_for(cpu->pool, t->n, quant_x_row,
						&q);
			else
				for (uint32_t tok = 0; tok < t->n; tok++)
					quant_x_row(&q, tok);
		}
	}
	return 0;
}

int ec_cpu_moe_run_batch(struct ec_cpu *cpu, struct ec_moe_task *t)
{
	struct ec_cpu_moe *s = t->s;
	/* weight bytes of one row; bytes of work (rows times tokens) */
	uint64_t gu_row = 0, down_row = 0, gu_work = 0, down_work = 0;
	int ret = quantize_x(cpu, t);

	if (ret < 0)
		return ret;
	for (uint32_t i = 0; i < t->nb; i++) {
		const struct ec_moe_sel *e = &s->sel[t->batch[i]];
		uint64_t r =
		    e->row_bytes[EC_EXPERT_GATE] + e->row_bytes[EC_EXPERT_UP];

		gu_row = r > gu_row ? r : gu_row;
		gu_work += r * t->n_ff * e->np;
		down_row = e->row_bytes[EC_EXPERT_DOWN] > down_row
			       ? e->row_bytes[EC_EXPERT_DOWN]
			       : down_row;
		down_work += e->row_bytes[EC_EXPERT_DOWN] * t->n_embd * e->np;
	}
	t->rows1 = item_rows(cpu, t->n_ff, gu_row, t->nb);
	t->chunks1 = (t->n_ff + t->rows1 - 1) / t->rows1;
	for (uint32_t i = 0; i < t->nb; i++)
		atomic_store_explicit(&s->sel[t->batch[i]].left, t->chunks1,
				      memory_order_relaxed);
	run_items(cpu, t->nb * t->chunks1, gu_work, gate_up_item, t);

	t->rows2 = item_rows(cpu, t->n_embd, down_row, t->nb);
	t->chunks2 = (t->n_embd + t->rows2 - 1) / t->rows2;
	run_items(cpu, t->nb * t->chunks2, down_work, down_item, t);
	return 0;
}

void ec_cpu_moe_mix(struct ec_cpu *cpu, const struct ec_moe_task *t)
{
	if (t->n >= PARALLEL_TOKENS)
		ec_cpu_pool_for(cpu->pool, t->n, mix_token, (void *)t);
	else
		for (uint32_t tok = 0; tok < t->n; tok++)
			mix_token((void *)t, tok);
}
