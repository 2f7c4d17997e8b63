// SPDX-License-Identifier: MIT
/* y = x . W^T straight from the stored weight type, split over the pool. */
#include <stdlib.h>
#include <string.h>

#include "cpu/cpu.h"
#include "ec_error.h"

/* Weight rows kept hot in L1 while every token of a tile passes over them */
#define ROW_TILE_BYTES (16u << 10)
/* Activation rows kept in L2 while the weight rows stream past */
#define TOK_TILE_BYTES (256u << 10)
/*
 * Weight bytes of one work item at most, so that a thread that lost its
 * core holds up little (the output head is 330 MB); smaller items, 256 KB,
 * made decode 6% slower
 */
#define ITEM_BYTES (2048u << 10)

struct mm_task {
	ec_cpu_dot_fn dot;
	float *y;	  /* (n, rows) */
	const uint8_t *w; /* (rows, w_row) stored type */
	uint64_t w_row;	  /* bytes per weight row */
	const uint8_t *x; /* (n, x_row) f32 or quantised */
	size_t x_row;	  /* bytes per activation row */
	uint32_t cols, rows, n;
	int accumulate;
	uint32_t chunk; /* rows per work item */
	uint32_t n_chunks;
	uint32_t row_tile, tok_tile;
};

static void mm_rows(const struct mm_task *t, uint32_t r0, uint32_t r1)
{
	for (uint32_t t0 = 0; t0 < t->n; t0 += t->tok_tile) {
		uint32_t t1 = t0 + t->tok_tile < t->n ? t0 + t->tok_tile : t->n;

		for (uint32_t rb = r0; rb < r1; rb += t->row_tile) {
			uint32_t re =
			    rb + t->row_tile < r1 ? rb + t->row_tile : r1;

			for (uint32_t tok = t0; tok < t1; tok++) {
				const uint8_t *x = t->x + tok * t->x_row;
				float *y = t->y + (size_t)tok * t->rows;

				for (uint32_t r = rb; r < re; r++) {
					float v = t->dot(
					    t->cols, t->w + r * t->w_row, x);

					y[r] = t->accumulate ? y[r] + v : v;
				}
			}
		}
	}
}

/* One work item: a run of contiguous rows */
static void mm_item(void *arg, uint32_t c)
{
	const struct mm_task *t = arg;
	uint32_t r0 = c * t->chunk;
	uint32_t r1 = r0 + t->chunk < t->rows ? r0 + t->chunk : t->rows;

	mm_rows(t, r0, r1);
}

struct quant_task {
	int act;
	const float *x; /* (n, cols) */
	void *q;	/* (n, x_row) */
	size_t x_row;
	uint32_t cols, n;
};

static void quant_row(void *arg, uint32_t i)
{
	struct quant_task *qt = arg;
	void *dst = (uint8_t *)qt->q + i * qt->x_row;
	const float *src = qt->x + (size_t)i * qt->cols;

	ec_cpu_quantize_act(qt->act, qt->cols, src, dst);
}

static int grow_qbuf(struct ec_cpu *cpu, size_t size)
{
	void *p;

	if (size <= cpu->qbuf_size)
		return 0;
	size = (size + 4095) & ~(size_t)4095;
	p = aligned_alloc(64, size);
	if (!p)
		return ec_err(-ENOMEM,
			      "cpu matmul: %zu bytes of quantised "
			      "activations",
			      size);
	free(cpu->qbuf);
	cpu->qbuf = p;
	cpu->qbuf_size = size;
	return 0;
}

int ec_cpu_matmul(struct ec_cpu *cpu, float *y, const struct ec_tensor *w,
		  const float *x, uint32_t n, int accumulate)
{
	const struct ec_dtype_info *info = ec_dtype_info(w->type);
	struct mm_task t = {
	    .y = y, .w = w->data, .n = n, .accumulate = accumulate};
	uint64_t cols = w->ne[0], rows = cols ? ec_tensor_nelems(w) / cols : 0;
	int act, ret;

	if (!info)
		return ec_err(-EC_EUNSUPPORTED,
			      "cpu matmul: weight type %u unsupported",
			      w->type);
	if (!cols || cols % info->block_elems || cols > UINT32_MAX ||
	    rows > UINT32_MAX || !w->data)
		return ec_err(-EC_ESHAPE,
			      "cpu matmul: %s weight [%llu, %llu] "
			      "(row length must be a multiple of %u)",
			      info->name, (unsigned long long)rows,
			      (unsigned long long)cols, info->block_elems);
	if (!n || !rows)
		return 0;
	t.cols = cols;
	t.rows = rows;
	t.w_row = ec_tensor_row_bytes(w);
	act = ec_cpu_dot_of(cpu->k, w->type, &t.dot);
	if (act < 0)
		return ec_err(-EC_EUNSUPPORTED,
			      "cpu matmul: weight type %s unsupported",
			      info->name);
	if (act != EC_CPU_ACT_F32)
		t.x_row = ec_cpu_act_row_bytes(act, t.cols);
	if (t.x_row) {
		struct quant_task qt = {.act = act,
					.x = x,
					.x_row = t.x_row,
					.cols = t.cols,
					.n = n};

		ret = grow_qbuf(cpu, (size_t)n * t.x_row);
		if (ret)
			return ret;
		qt.q = cpu->qbuf;
		ec_cpu_pool_for(cpu->pool, n, quant_row, &qt);
		t.x = cpu->qbuf;
	} else {
		t.x = (const uint8_t *)x;
		t.x_row = cols * sizeof(float);
	}

	t.row_tile = ROW_TILE_BYTES / t.w_row ? ROW_TILE_BYTES / t.w_row : 1;
	t.tok_tile = TOK_TILE_BYTES / t.x_row ? TOK_TILE_BYTES / t.x_row : 1;
	/* at least 4 work items per thread, whole row tiles each */
	t.chunk = (t.rows + 4 * cpu->n_threads - 1) / (4 * cpu->n_threads);
	if (t.chunk > ITEM_BYTES / t.w_row)
		t.chunk = ITEM_BYTES / t.w_row;
	t.chunk = (t.chunk + t.row_tile - 1) / t.row_tile * t.row_tile;
	if (!t.chunk)
		t.chunk = 1;
	t.n_chunks = (t.rows + t.chunk - 1) / t.chunk;
	if ((uint64_t)t.rows * t.w_row * n < 32768)
		mm_rows(&t, 0, t.rows); /* too small to share */
	else
		ec_cpu_pool_for(cpu->pool, t.n_chunks, mm_item, &t);
	return 0;
}
