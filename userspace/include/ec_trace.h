/* SPDX-License-Identifier: MIT */
/*
 * Routing traces (JSONL), expert access profiles and pinning plans: the
 * files `run --record-trace`, `replay`, `profile` and `plan` exchange.
 * Formats are documented in docs/STORAGE.md.
 */
#ifndef EC_TRACE_H
#define EC_TRACE_H

#include <stdint.h>
#include <stdio.h>

struct ec_model;

/* ------------------------------------------------------------------ */
/* Trace: one record per (token, layer).                               */

/*
 * One JSONL line:
 * {"problem_id": P, "token_idx": T, "layer": L, "experts": [e...],
 *  "gating_probs": [p...]}
 * problem_id (default 0) and gating_probs are optional on input.
 */
struct ec_trace_rec {
	int64_t problem_id;
	int64_t token_idx;
	uint32_t layer;
	uint32_t n;		/* experts routed */
	uint64_t first;		/* index into ec_trace.experts / .probs */
	uint64_t token_seq;	/* 0-based count of distinct tokens so far:
				   bumps when (problem_id, token_idx)
				   changes from the previous line */
};

struct ec_trace {
	uint64_t n_rec;
	struct ec_trace_rec *rec;	/* [n_rec] in file order */
	uint32_t *experts;		/* [n_access] */
	float *probs;			/* [n_access], NaN where absent */
	uint64_t n_access;
	uint64_t n_tokens;		/* distinct tokens */
	uint32_t n_layer;		/* 1 + max layer seen */
	uint32_t n_expert;		/* 1 + max expert seen */
};

/*
 * Read a whole trace.  Errors name the file, line and field ("T.jsonl:12:
 * 'experts': expected an array of non-negative integers").  Blank lines
 * are skipped.
 */
int ec_trace_load(const char *path, struct ec_trace **out);
void ec_trace_free(struct ec_trace *t);

/* Writer for `run --record-trace`: one line per call, flushed on close. */
struct ec_trace_writer;

int ec_trace_writer_open(const char *path, struct ec_trace_writer **out);
/* probs may be NULL (the field is then omitted). */
int ec_trace_write(struct ec_trace_writer *w, int64_t problem_id,
		   int64_t token_idx, uint32_t layer, const int32_t *experts,
		   const float *probs, uint32_t n);
/* Flushes and closes; returns the first write error, if any. */
int ec_trace_writer_close(struct ec_trace_writer *w);

/* ------------------------------------------------------------------ */
/* Profile: per (layer, expert) access counts and recency.             */

struct ec_profile {
	uint32_t n_layer, n_expert;
	uint64_t n_tokens;		/* tokens observed */
	uint64_t n_access;		/* sum of counts */
	uint64_t *count;		/* [n_layer * n_expert] */
	int64_t *last_seen;		/* [n_layer * n_expert] token_seq of
					   the last access, -1 never */
	char source[256];		/* where it came from */
};

/* Counts from a trace, skipping the first warmup_tokens tokens. */
int ec_profile_from_trace(const struct ec_trace *t, uint64_t warmup_tokens,
			  struct ec_profile **out);
/* From runtime counters (e.g. ec_ctx_routed_counts); last_seen = -1. */
int ec_profile_from_counts(uint32_t n_layer, uint32_t n_expert,
			   const uint64_t *counts, uint64_t n_tokens,
			   struct ec_profile **out);
int ec_profile_save(const struct ec_profile *p, const char *path);
int ec_profile_load(const char *path, struct ec_profile **out);
void ec_profile_free(struct ec_profile *p);

/*
 * The most used keys, best first (count, then recency, then key), that
 * have count > 0: up to per_layer of each layer when per_layer > 0, else
 * up to `total` overall.  *keys is malloc'd.
 */
int ec_profile_top_keys(const struct ec_profile *p, uint32_t per_layer,
			uint32_t total, uint32_t **keys, uint32_t *n);

/* ------------------------------------------------------------------ */
/* Plan: which experts to pin in which tier.                           */

struct ec_plan {
	uint32_t n_layer, n_expert;
	uint64_t vram_budget, ram_budget;	/* bytes asked for */
	uint64_t vram_bytes, ram_bytes;		/* bytes chosen */
	uint32_t n_vram, n_ram;
	uint32_t *vram;		/* [n_vram] keys, best first */
	uint32_t *ram;		/* [n_ram] keys, best first */
	double vram_share;	/* share of profiled accesses they cover */
	double ram_share;
};

/*
 * Greedy by count per byte: experts (count > 0) sorted by count / bytes,
 * descending, fill the VRAM budget first and then the RAM budget, each
 * skipping an expert that does not fit and trying the next.  An expert is
 * planned for one tier only (VRAM experts are copied through the host
 * once at start-up and need no host slot afterwards).  expert_bytes is
 * [n_layer * n_expert].
 */
int ec_plan_build(const struct ec_profile *p, const uint64_t *expert_bytes,
		  uint64_t vram_budget, uint64_t ram_budget,
		  struct ec_plan **out);
int ec_plan_save(const struct ec_plan *p, const char *path);
int ec_plan_load(const char *path, struct ec_plan **out);
void ec_plan_free(struct ec_plan *p);

/* Does the plan's shape match the model (n_layer, n_expert)? */
int ec_plan_check(const struct ec_plan *p, const struct ec_model *m);

#endif
