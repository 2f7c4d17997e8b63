// SPDX-License-Identifier: MIT
/* Paging in a model's resident (non-expert) weights ahead of the first token */
#include <sys/mman.h>
#include <unistd.h>

#include "ec_model.h"

/* Every tensor that stays resident, whatever the expert cache does. */
static uint32_t resident_tensors(const struct ec_model *m,
				 const struct ec_tensor **out, uint32_t max)
{
	uint32_t n = 0, l, i;

#define ADD(t)                                                                \
	do {                                                                  \
		if ((t)->data && (t)->nbytes && n < max)                      \
			out[n++] = (t);                                       \
	} while (0)
	ADD(&m->tok_embd);
	ADD(&m->output_norm);
	if (!m->hp.tied_embeddings)
		ADD(&m->output);
	for (l = 0; l < m->hp.n_layer; l++) {
		const struct ec_layer *L = &m->layers[l];
		const struct ec_tensor *ts[] = {
			&L->attn_norm, &L->wq, &L->wk, &L->wv, &L->wo,
			&L->bq, &L->bk, &L->bv, &L->q_norm, &L->k_norm,
			&L->ffn_norm, &L->router, &L->sh_gate, &L->sh_up,
			&L->sh_down, &L->sh_router,
		};
		for (i = 0; i < sizeof(ts) / sizeof(ts[0]); i++)
			ADD(ts[i]);
	}
#undef ADD
	return n;
}

uint64_t ec_model_prefault(const struct ec_model *m,
			   void (*progress)(void *arg, uint64_t done,
					    uint64_t total),
			   void *arg)
{
	uint32_t max = 3 + 16 * m->hp.n_layer, n, i;
	const struct ec_tensor *ts[max];
	uint64_t total = 0, done = 0, page = sysconf(_SC_PAGESIZE), off;
	volatile uint8_t sink = 0;

	n = resident_tensors(m, ts, max);
	for (i = 0; i < n; i++) {
		uintptr_t a = (uintptr_t)ts[i]->data & ~(page - 1);

		total += ts[i]->nbytes;
		madvise((void *)a, (uintptr_t)ts[i]->data + ts[i]->nbytes - a,
			MADV_WILLNEED);
	}
	for (i = 0; i < n; i++) {
		const uint8_t *p = ts[i]->data;

		for (off = 0; off < ts[i]->nbytes; off += page) {
			sink ^= p[off];
			if (progress && ((done + off) & ((64ull << 20) - 1)) <
						page)
				progress(arg, done + off, total);
		}
		done += ts[i]->nbytes;
	}
	if (progress)
		progress(arg, total, total);
	(void)sink;
	return total;
}
