// SPDX-License-Identifier: MIT
/* `expertcache run`'s storage options: expert cache, plan, trace, stats. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "ec_backend_cuda.h"
#include "ec_cache.h"
#include "ec_error.h"
#include "ec_storage.h"
#include "ec_trace.h"
#include "run_storage.h"

enum {
	OPT_RAM_BUDGET = 1000,
	OPT_POLICY,
	OPT_PLAN,
	OPT_RECORD_TRACE,
	OPT_ON_MISS,
	OPT_PREFETCH,
	OPT_REPLICAS,
	OPT_QD,
	OPT_NO_MODULE,
	OPT_SQPOLL,
	OPT_PROBLEM_ID,
	OPT_LAYOUT,
	OPT_VRAM_PREFETCH,
};

const struct option ec_run_storage_options[] = {
	{ "ram-budget", required_argument, NULL, OPT_RAM_BUDGET },
	{ "policy", required_argument, NULL, OPT_POLICY },
	{ "plan", required_argument, NULL, OPT_PLAN },
	{ "record-trace", required_argument, NULL, OPT_RECORD_TRACE },
	{ "on-miss", required_argument, NULL, OPT_ON_MISS },
	{ "prefetch", required_argument, NULL, OPT_PREFETCH },
	{ "replicas", required_argument, NULL, OPT_REPLICAS },
	{ "qd", required_argument, NULL, OPT_QD },
	{ "no-module", no_argument, NULL, OPT_NO_MODULE },
	{ "sqpoll", no_argument, NULL, OPT_SQPOLL },
	{ "problem-id", required_argument, NULL, OPT_PROBLEM_ID },
	{ "layout", required_argument, NULL, OPT_LAYOUT },
	{ "vram-prefetch", required_argument, NULL, OPT_VRAM_PREFETCH },
	{ 0 },
};

const char ec_run_storage_help[] =
	"expert cache (without --ram-budget experts are read from the file "
	"mapping):\n"
	"  --ram-budget SIZE|PCT pinned host tier for experts, e.g. 4G or "
	"25%\n"
	"                        (of all expert bytes); experts stream from "
	"storage\n"
	"                        with io_uring O_DIRECT\n"
	"  --policy lru|lfu      eviction policy (default lru)\n"
	"  --plan FILE           pin the experts of a plan (expertcache plan),"
	"\n"
	"                        loaded at start-up\n"
	"  --on-miss wait|substitute\n"
	"                        a non-resident expert: load it (exact, "
	"default) or\n"
	"                        use the best-scoring resident one\n"
	"  --prefetch W[:D]      prefetch the top W experts of the next D "
	"layers\n"
	"                        (default D 1) predicted by their routers\n"
	"  --replicas P1,P2      copies of the model file on other devices; "
	"experts\n"
	"                        are striped over them\n"
	"  --layout FILE         read experts from a layout file (expertcache "
	"layout):\n"
	"                        one aligned read per expert; --replicas then "
	"lists\n"
	"                        copies of FILE\n"
	"  --qd N                io_uring queue depth (default 64)\n"
	"  --sqpoll              kernel-side submission polling\n"
	"  --no-module           do not use /dev/expertcache for the host "
	"tier\n"
	"  --record-trace FILE   write the routing trace (JSONL)\n"
	"  --problem-id N        problem_id written into the trace\n"
	"  --vram-prefetch D     CUDA: copy the experts the routers of the "
	"next D\n"
	"                        layers predict into VRAM while a layer "
	"computes\n"
	"                        (0 = off; default 1 when not every expert "
	"fits in\n"
	"                        the VRAM budget; at most 4)\n";

int ec_run_storage_parse(int c, const char *arg, struct run_storage_opts *o)
{
	uint32_t v;
	char *end;

	switch (c) {
	case OPT_RAM_BUDGET:
		o->ram_budget = arg;
		return 1;
	case OPT_POLICY:
		if (strcmp(arg, "lru") && strcmp(arg, "lfu"))
			return -1;
		o->policy = arg;
		return 1;
	case OPT_PLAN:
		o->plan = arg;
		return 1;
	case OPT_RECORD_TRACE:
		o->record_trace = arg;
		return 1;
	case OPT_ON_MISS:
		if (strcmp(arg, "wait") && strcmp(arg, "substitute"))
			return -1;
		o->on_miss = arg;
		return 1;
	case OPT_PREFETCH:
		o->prefetch = arg;
		return 1;
	case OPT_REPLICAS:
		o->replicas = arg;
		return 1;
	case OPT_LAYOUT:
		o->layout = arg;
		return 1;
	case OPT_QD:
		if (ec_cli_parse_uint(arg, &v) < 0 || !v)
			return -1;
		o->queue_depth = v;
		return 1;
	case OPT_NO_MODULE:
		o->no_module = 1;
		return 1;
	case OPT_SQPOLL:
		o->sqpoll = 1;
		return 1;
	case OPT_VRAM_PREFETCH:
		if (ec_cli_parse_uint(arg, &v) < 0 ||
		    v > EC_CUDA_PREFETCH_MAX_DEPTH)
			return -1;
		o->vram_prefetch = v ? (int32_t)v : -1;
		return 1;
	case OPT_PROBLEM_ID:
		o->problem_id = strtoll(arg, &end, 10);
		return end == arg || *end ? -1 : 1;
	default:
		return 0;
	}
}

int ec_run_storage_ctx_params(const struct run_storage_opts *o,
			      struct ec_ctx_params *cp)
{
	unsigned w = 0, d = 1;
	char tail;

	cp->on_miss = o->on_miss && !strcmp(o->on_miss, "substitute") ?
			      EC_MISS_SUBSTITUTE :
			      EC_MISS_WAIT;
	if (o->prefetch) {
		int n = sscanf(o->prefetch, "%u:%u%c", &w, &d, &tail);

		if (n < 1 || n > 2 || !w || !d) {
			fprintf(stderr, "expertcache run: --prefetch wants W "
					"or W:D with positive integers\n");
			return -1;
		}
		cp->prefetch_width = w;
		cp->prefetch_depth = d;
	}
	if ((o->on_miss || o->prefetch) && !o->ram_budget && !o->plan &&
	    !o->layout)
		fprintf(stderr, "expertcache run: note: --on-miss/--prefetch "
				"act only with an expert cache "
				"(--ram-budget)\n");
	return 0;
}

struct run_storage {
	struct ec_cache *cache;
	struct ec_plan *plan;
	struct ec_trace_writer *trace;
	struct ec_uring_file *files;
	char *replica_buf;	/* the --replicas string the paths point into */
	int64_t problem_id;
	int trace_error;
};

static void on_route(void *priv, uint32_t layer, uint32_t pos0, uint32_t n,
		     uint32_t k, const int32_t *ids, const float *weights)
{
	struct run_storage *rs = priv;
	uint32_t t;

	for (t = 0; t < n && !rs->trace_error; t++)
		if (ec_trace_write(rs->trace, rs->problem_id, pos0 + t, layer,
				   ids + (size_t)t * k,
				   weights + (size_t)t * k, k) < 0)
			rs->trace_error = 1;
}

static void on_preload(void *arg, uint32_t done, uint32_t total,
		       uint64_t bytes)
{
	ec_progress_update(arg, done, total);
}

/* "a,b" -> one replica list for the model's single file */
static int parse_replicas(const char *s, const struct ec_model *m,
			  const char *layout, struct ec_uring_file **out,
			  char **buf)
{
	struct ec_uring_file *f;
	char *copy, *tok, *save = NULL;
	const char **paths;
	uint32_t n = 1;

	if (m->n_files != 1 && !layout) {
		fprintf(stderr, "expertcache run: --replicas needs a "
				"single-file model\n");
		return -1;
	}
	for (const char *p = s; *p; p++)
		n += *p == ',';
	f = calloc(1, sizeof(*f));
	paths = calloc(n + 1, sizeof(*paths));
	copy = strdup(s);
	if (!f || !paths || !copy) {
		free(f);
		free(paths);
		free(copy);
		return -1;
	}
	n = 0;
	paths[n++] = layout ? layout : m->files[0].path;
	for (tok = strtok_r(copy, ",", &save); tok;
	     tok = strtok_r(NULL, ",", &save))
		paths[n++] = tok;
	f->paths = paths;
	f->n_paths = n;
	*out = f;
	*buf = copy;
	return 0;
}

int ec_run_storage_attach(const struct run_storage_opts *o,
			  const struct ec_model *m, struct ec_ctx *ctx,
			  struct run_storage **out)
{
	struct ec_cache_params cp = { .policy = o->policy ? o->policy :
							    "lru" };
	struct ec_expert_source src;
	struct ec_cache_info info;
	struct run_storage *rs;
	uint32_t *keys = NULL;
	char b1[32], b2[32];
	int ret;

	*out = NULL;
	rs = calloc(1, sizeof(*rs));
	if (!rs)
		return -1;
	rs->problem_id = o->problem_id;
	if (o->record_trace) {
		ret = ec_trace_writer_open(o->record_trace, &rs->trace);
		if (ret < 0) {
			ec_cli_error(o->record_trace, ret);
			goto err;
		}
		ec_ctx_set_route_hook(ctx, on_route, rs);
	}
	if (!o->ram_budget && !o->plan && !o->layout) {
		*out = rs;
		return 0;
	}
	if (o->plan) {
		ret = ec_plan_load(o->plan, &rs->plan);
		if (ret >= 0)
			ret = ec_plan_check(rs->plan, m);
		if (ret < 0) {
			ec_cli_error(o->plan, ret);
			goto err;
		}
		keys = malloc(sizeof(*keys) *
			      (rs->plan->n_vram + rs->plan->n_ram + 1));
		if (!keys)
			goto err;
		memcpy(keys, rs->plan->vram, sizeof(*keys) * rs->plan->n_vram);
		memcpy(keys + rs->plan->n_vram, rs->plan->ram,
		       sizeof(*keys) * rs->plan->n_ram);
		cp.policy = "static";
		cp.pinned = keys;
		cp.n_pinned = rs->plan->n_vram + rs->plan->n_ram;
	}
	ret = ec_parse_budget(o->ram_budget ? o->ram_budget : "100%",
			      ec_model_total_expert_bytes(m), &cp.ram_budget);
	if (ret < 0) {
		ec_cli_error("--ram-budget", ret);
		goto err;
	}
	if (rs->plan && !o->ram_budget)
		cp.ram_budget = rs->plan->vram_bytes + rs->plan->ram_bytes +
				ec_model_expert_bytes(m, 0, 0);
	cp.io.queue_depth = o->queue_depth;
	cp.io.sqpoll = o->sqpoll;
	cp.tier.no_module = o->no_module;
	if (o->replicas) {
		if (parse_replicas(o->replicas, m, o->layout, &rs->files,
				   &rs->replica_buf) < 0)
			goto err;
		cp.files = rs->files;
	}
	cp.layout_path = o->layout;
	ret = ec_cache_create(m, &cp, &rs->cache);
	if (ret < 0) {
		ec_cli_error("expert cache", ret);
		goto err;
	}
	ec_cache_get_info(rs->cache, &info);
	fprintf(stderr,
		"expert cache: %u slots of %s (%s), %s host tier%s, policy %s, "
		"%s reads\n",
		info.n_slots, ec_format_size(info.slot_bytes, b1, sizeof(b1)),
		ec_format_size((uint64_t)info.n_slots * info.slot_bytes, b2,
			       sizeof(b2)),
		info.tier.kind, info.tier.locked ? " (locked)" : "",
		info.policy, info.io.direct ? "O_DIRECT" : "buffered");
	if (o->layout)
		fprintf(stderr, "expert cache: experts read from layout %s\n",
			o->layout);
	if (info.tier.warning[0])
		fprintf(stderr, "expert cache: %s\n", info.tier.warning);
	if (info.io.notice && info.io.notice[0])
		fprintf(stderr, "expert cache: %s\n", info.io.notice);
	if (keys) {
		struct ec_progress pr;

		ec_progress_start(&pr, "loading plan");
		ret = ec_cache_preload(rs->cache, keys, cp.n_pinned,
				       on_preload, &pr);
		ec_progress_done(&pr);
		if (ret < 0) {
			ec_cli_error(o->plan, ret);
			goto err;
		}
	}
	free(keys);
	ec_cache_expert_source(rs->cache, &src);
	ec_ctx_set_expert_source(ctx, &src);
	*out = rs;
	return 0;
err:
	free(keys);
	ec_run_storage_detach(rs, ctx);
	return -1;
}

void ec_run_storage_stats(struct run_storage *rs, struct ec_ctx *ctx,
			  json_t *obj, double wall_s)
{
	const struct ec_ctx_counters *ctr = ec_ctx_counters(ctx);
	struct ec_cache_stats st;
	struct ec_cache_info info;
	json_t *cs;

	json_object_set_new(obj, "routed", json_integer(ctr->routed));
	json_object_set_new(obj, "substitutions",
			    json_integer(ctr->substitutions));
	if (ctr->prefetch_checked)
		json_object_set_new(obj, "prefetch_prediction_accuracy",
				    json_real((double)ctr->prefetch_predicted /
					      ctr->prefetch_checked));
	if (!rs || !rs->cache) {
		json_object_set_new(obj, "expert_cache", json_false());
		return;
	}
	ec_cache_get_stats(rs->cache, &st);
	ec_cache_get_info(rs->cache, &info);
	st.substitutions += ctr->substitutions;
	cs = ec_cache_stats_json(&st, wall_s);
	if (cs) {
		json_object_update(obj, cs);
		json_decref(cs);
	}
	json_object_set_new(obj, "host_tier", json_string(info.tier.kind));
	json_object_set_new(obj, "cache_policy", json_string(info.policy));
	json_object_set_new(obj, "cache_slots", json_integer(info.n_slots));
}

void ec_run_storage_reset_stats(struct run_storage *rs)
{
	if (rs && rs->cache)
		ec_cache_reset_stats(rs->cache);
}

void ec_run_storage_detach(struct run_storage *rs, struct ec_ctx *ctx)
{
	if (!rs)
		return;
	if (ctx) {
		ec_ctx_set_expert_source(ctx, NULL);
		ec_ctx_set_route_hook(ctx, NULL, NULL);
	}
	if (rs->trace && ec_trace_writer_close(rs->trace) < 0)
		ec_cli_error("trace", -EIO);
	if (rs->trace_error)
		fprintf(stderr, "expertcache run: writing the trace failed\n");
	ec_cache_free(rs->cache);
	ec_plan_free(rs->plan);
	if (rs->files) {
		free((void *)rs->files->paths);
		free(rs->files);
	}
	free(rs->replica_buf);
	free(rs);
}
