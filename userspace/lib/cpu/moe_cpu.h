/* SPDX-License-Identifier: MIT */
/* State of the CPU moe_ffn shared by its two files (moe_cpu*.c). */
#ifndef EC_MOE_CPU_H
#define EC_MOE_CPU_H

#include <stdatomic.h>

#include "cpu/cpu.h"
#include "ec_model.h"

/* One selected expert of the call */
struct ec_moe_sel {
	const struct ec_expert *w;
	int32_t e;
	uint32_t p0, np; /* its pairs [p0, p0 + np) */
	int done;	 /* its down rows are in d */
	ec_cpu_dot_fn dot[EC_EXPERT_NPARTS];
	int act[EC_EXPERT_NPARTS];
	uint64_t row_bytes[EC_EXPERT_NPARTS];
	_Atomic uint32_t left; /* its pass-1 items still running */
};

/* Scratch kept from call to call, grown as needed */
struct ec_cpu_moe {
	uint32_t cap_expert, cap_pairs;
	size_t cap_xq[EC_CPU_ACT_N], cap_h, cap_hq, cap_d;
	struct ec_moe_sel *sel; /* [cap_pairs] */
	int32_t *sel_of;	/* [cap_expert] index in sel, -1 */
	uint32_t *batch;	/* [cap_pairs] indices in sel of one batch */
	int32_t *pend;		/* [cap_pairs] expert ids not yet run */
	int32_t *ptok;		/* [cap_pairs] token of each pair */
	float *pw;		/* [cap_pairs] its routing weight */
	uint32_t *tpair;	/* (n, k) each token's pairs, by expert */
	uint32_t *tcnt;		/* [cap_pairs] fill count of a token's list */
	void *xq[EC_CPU_ACT_N]; /* (n, act row) x quantised */
	float *h;		/* (n_pairs, n_ff) silu(gate) * up */
	uint8_t *hq;		/* (n_pairs, hq_row) h in down's format */
	float *d;		/* (n_pairs, n_embd) down(h) */
};

/* One call; what the passes over one batch of held experts read */
struct ec_moe_task {
	struct ec_cpu_moe *s;
	float *y;			 /* (n, n_embd) */
	const float *x;			 /* (n, n_embd) */
	const uint8_t *xa[EC_CPU_ACT_N]; /* (n, act row): x in each format */
	uint32_t n, k, n_embd, n_ff;
	size_t hq_row;	       /* bytes per pair row of hq */
	const uint32_t *batch; /* [nb] indices in s->sel */
	uint32_t nb;
	uint32_t rows1, chunks1; /* pass 1: rows per item, items per expert */
	uint32_t rows2, chunks2; /* pass 2 likewise */
};

/* Both passes over the held experts t->batch[0..nb): their rows of d */
int ec_cpu_moe_run_batch(struct ec_cpu *cpu, struct ec_moe_task *t);

/* y from the rows of d, once every pair has its row */
void ec_cpu_moe_mix(struct ec_cpu *cpu, const struct ec_moe_task *t);

/* *p grown to at least `size` bytes (64-aligned, contents dropped) */
int ec_cpu_moe_grow(void **p, size_t *cap, size_t size);

#endif
