// SPDX-License-Identifier: MIT
/* --backend cpu|cuda|auto and --vram-budget for the commands that compute. */
#include <jansson.h>
#include <stdio.h>

#include "cli.h"
#include "ec_backend_cuda.h"
#include "ec_error.h"
#include "ec_model.h"
#include "ec_storage.h"

int ec_cli_backend_open(const char *cmd, const char *kind_arg,
			const char *vram_budget, int32_t vram_prefetch,
			uint32_t threads, const struct ec_model *m,
			struct ec_backend **out)
{
	struct ec_backend_cuda_params cp = { .model = m,
					     .vram_prefetch = vram_prefetch };
	enum ec_backend_kind kind = EC_BACKEND_AUTO;
	char note[512];
	int ret;

	if (kind_arg && ec_backend_kind_parse(kind_arg, &kind) < 0) {
		fprintf(stderr, "expertcache %s: --backend: %s\n", cmd,
			ec_error_msg());
		return -EC_EINVAL;
	}
	if (vram_budget &&
	    ec_parse_budget(vram_budget, ec_model_total_expert_bytes(m),
			    &cp.vram_budget) < 0) {
		fprintf(stderr, "expertcache %s: --vram-budget: %s\n", cmd,
			ec_error_msg());
		return -EC_EINVAL;
	}
	ret = ec_backend_open(kind, threads, &cp, out, note, sizeof(note));
	if (ret < 0) {
		ec_cli_error(kind == EC_BACKEND_CPU ? "cpu backend"
						    : "cuda backend", ret);
		return ret;
	}
	if (note[0])
		fprintf(stderr, "%s\n", note);
	return 0;
}

void ec_cli_backend_describe(struct ec_backend *be, char *buf, size_t len)
{
	struct ec_cuda_stats st;
	const char *isa = ec_backend_cpu_isa(be);

	if (isa)
		snprintf(buf, len, "cpu %s", isa);
	else if (ec_backend_cuda_get_stats(be, &st) == 0)
		snprintf(buf, len, "cuda %s", st.device);
	else
		snprintf(buf, len, "unknown");
}

void ec_cli_backend_stats_json(struct ec_backend *be, json_t *obj)
{
	struct ec_cuda_stats st;
	json_t *o;

	if (!ec_backend_is_cuda(be) || ec_backend_cuda_get_stats(be, &st) < 0)
		return;
	o = json_object();
	if (!o)
		return;
#define U(f) json_object_set_new(o, #f, json_integer((json_int_t)st.f))
	json_object_set_new(o, "device", json_string(st.device));
	U(driver_version);
	U(vram_budget);
	U(slot_bytes);
	U(n_slots);
	U(n_resident);
	U(expert_hits);
	U(expert_misses);
	json_object_set_new(o, "hit_rate",
			    json_real(st.expert_hits + st.expert_misses ?
					      (double)st.expert_hits /
						      (st.expert_hits +
						       st.expert_misses) :
					      0.0));
	U(evictions);
	U(h2d_bytes);
	U(h2d_pageable);
	U(h2d_copies);
	U(weight_bytes);
	U(route_calls);
	U(route_wait_ns);
	U(sync_bubble_ns);
	U(miss_wait_ns);
	U(get_wait_ns);
	U(copy_wait_ns);
	U(moe_host_ns);
	U(puts_pending);
	U(prefetch_depth);
	U(prefetch_issued);
	U(prefetch_used);
	U(prefetch_wasted);
	U(prefetch_pending);
	U(prefetch_bytes);
	U(prefetch_skipped);
	U(prefetch_late);
	U(loading_hits);
	U(host_tier_bytes);
	U(host_tier_regions);
	U(host_tier_refused);
	U(host_tier_registrations);
	json_object_set_new(o, "host_tier_refusal",
			    json_string(st.host_tier_refusal));
#undef U
	json_object_set_new(obj, "cuda", o);
}
