// SPDX-License-Identifier: MIT
/* --backend cpu|cuda|auto and --vram-budget for the commands that compute. */
#include <stdio.h>

#include "cli.h"
#include "ec_backend_cuda.h"
#include "ec_error.h"
#include "ec_model.h"
#include "ec_storage.h"

int ec_cli_backend_open(const char *cmd, const char *kind_arg,
			const char *vram_budget, uint32_t threads,
			const struct ec_model *m, struct ec_backend **out)
{
	struct ec_backend_cuda_params cp = { .model = m };
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
