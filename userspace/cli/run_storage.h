/* SPDX-License-Identifier: MIT */
/* `expertcache run`'s storage options: expert cache, plan, trace, stats. */
#ifndef EC_RUN_STORAGE_H
#define EC_RUN_STORAGE_H

#include <getopt.h>
#include <jansson.h>

#include "ec_infer.h"
#include "ec_model.h"

struct run_storage_opts {
	const char *ram_budget;		/* NULL: experts read from the mapping */
	const char *policy;		/* lru | lfu */
	const char *plan;
	const char *record_trace;
	const char *on_miss;		/* wait | substitute */
	const char *prefetch;		/* "W" or "W:D" */
	const char *replicas;		/* comma-separated copies of the file */
	const char *layout;		/* expertcache layout file */
	uint32_t queue_depth;
	int no_module;
	int sqpoll;
	int64_t problem_id;
	int32_t vram_prefetch;		/* ec_backend_cuda_params.vram_prefetch:
					 * 0 automatic, -1 off, else depth */
};

struct run_storage;

/* getopt_long entries (ids >= 1000) and their help text. */
extern const struct option ec_run_storage_options[];
extern const char ec_run_storage_help[];
/* 1 if `c` was one of ours (parsed into o), 0 if not, -1 on a bad value */
int ec_run_storage_parse(int c, const char *arg, struct run_storage_opts *o);

/* Context parameters implied by the options (miss policy, prefetch). */
int ec_run_storage_ctx_params(const struct run_storage_opts *o,
			      struct ec_ctx_params *cp);

/*
 * Set up what the options ask for on ctx: the expert cache (and its plan),
 * the trace writer.  Prints notices to stderr.  0 or -1 (message printed).
 */
int ec_run_storage_attach(const struct run_storage_opts *o,
			  const struct ec_model *m, struct ec_ctx *ctx,
			  struct run_storage **out);

/* Add the storage fields to the --stats-json object. */
void ec_run_storage_stats(struct run_storage *rs, struct ec_ctx *ctx,
			  json_t *obj, double wall_s);

/* Zero the cache counters (e.g. to count decode steps only). */
void ec_run_storage_reset_stats(struct run_storage *rs);

void ec_run_storage_detach(struct run_storage *rs, struct ec_ctx *ctx);

#endif
