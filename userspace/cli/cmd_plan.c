// SPDX-License-Identifier: MIT
/* `expertcache plan`: which experts to pin in VRAM and RAM, from a profile. */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>

#include "cli.h"
#include "ec_error.h"
#include "ec_model.h"
#include "ec_storage.h"

static void usage(FILE *f)
{
	fprintf(f,
		"usage: expertcache plan --profile P.json --vram-budget B "
		"--ram-budget B\n"
		"                        (-m MODEL | --expert-bytes SIZE) "
		"--out PLAN.json\n\n"
		"Chooses the experts to keep resident, greedily by accesses "
		"per byte: the\nVRAM budget is filled first, then the RAM "
		"budget.  'run --plan' applies it.\n\n"
		"  --profile FILE       from 'expertcache profile'\n"
		"  --vram-budget B      SIZE (512M, 4G) or PCT of the expert "
		"bytes (25%%)\n"
		"  --ram-budget B       likewise, for pinned host memory\n"
		"  -m, --model PATH     the model (expert sizes)\n"
		"  --expert-bytes SIZE  or: every expert has this size\n"
		"  -o, --out FILE       plan to write (JSON)\n"
		"  -h, --help           this help\n");
}

/* [n_layer * n_expert] sizes from the model or one uniform size. */
static int expert_sizes(const struct ec_profile *p, const char *model,
			uint64_t uniform, uint64_t **out, uint64_t *total)
{
	uint64_t n = (uint64_t)p->n_layer * p->n_expert, i;
	struct ec_model *m = NULL;
	uint64_t *b;
	int ret;

	b = calloc(n, sizeof(*b));
	if (!b)
		return ec_err(-ENOMEM, "out of memory");
	*total = 0;
	if (model) {
		ret = ec_model_open(model, &m);
		if (ret < 0)
			goto err;
		if (m->hp.n_layer != p->n_layer ||
		    m->hp.n_expert != p->n_expert) {
			ret = ec_err(-EC_EINVAL, "%s has %u layers x %u "
				     "experts, the profile %u x %u", model,
				     m->hp.n_layer, m->hp.n_expert,
				     p->n_layer, p->n_expert);
			goto err;
		}
	}
	for (i = 0; i < n; i++) {
		b[i] = m ? ec_model_expert_bytes(m, (uint32_t)(i /
							p->n_expert),
						 (uint32_t)(i % p->n_expert)) :
			   uniform;
		*total += b[i];
	}
	ec_model_close(m);
	*out = b;
	return 0;
err:
	ec_model_close(m);
	free(b);
	return ret;
}

int ec_cmd_plan(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "profile", required_argument, NULL, 'p' },
		{ "vram-budget", required_argument, NULL, 'V' },
		{ "ram-budget", required_argument, NULL, 'R' },
		{ "model", required_argument, NULL, 'm' },
		{ "expert-bytes", required_argument, NULL, 'b' },
		{ "out", required_argument, NULL, 'o' },
		{ "help", no_argument, NULL, 'h' },
		{ 0 },
	};
	const char *prof_path = NULL, *vram = "0", *ram = "0", *model = NULL;
	const char *out = NULL, *ebytes = NULL;
	struct ec_profile *p = NULL;
	struct ec_plan *plan = NULL;
	uint64_t *sizes = NULL, total = 0, uniform = 0, vb = 0, rb = 0;
	char s1[32], s2[32];
	int c, ret, rc = 1;

	while ((c = getopt_long(argc, argv, "m:o:h", opts, NULL)) != -1) {
		switch (c) {
		case 'p':
			prof_path = optarg;
			break;
		case 'V':
			vram = optarg;
			break;
		case 'R':
			ram = optarg;
			break;
		case 'm':
			model = optarg;
			break;
		case 'b':
			ebytes = optarg;
			break;
		case 'o':
			out = optarg;
			break;
		case 'h':
			usage(stdout);
			return 0;
		default:
			usage(stderr);
			return 2;
		}
	}
	if (!prof_path || !out || !model == !ebytes) {
		fprintf(stderr, "expertcache plan: need --profile, --out and "
			"one of -m MODEL, --expert-bytes\n");
		return 2;
	}
	if (ebytes && (ec_parse_size(ebytes, &uniform) < 0 || !uniform)) {
		fprintf(stderr, "expertcache plan: --expert-bytes '%s'\n",
			ebytes);
		return 2;
	}
	ret = ec_profile_load(prof_path, &p);
	if (ret >= 0)
		ret = expert_sizes(p, model, uniform, &sizes, &total);
	if (ret >= 0)
		ret = ec_parse_budget(vram, total, &vb);
	if (ret >= 0)
		ret = ec_parse_budget(ram, total, &rb);
	if (ret >= 0)
		ret = ec_plan_build(p, sizes, vb, rb, &plan);
	if (ret >= 0)
		ret = ec_plan_save(plan, out);
	if (ret < 0) {
		ec_cli_error("plan", ret);
		goto out;
	}
	printf("plan %s (expert bytes in all: %s)\n", out,
	       ec_format_size(total, s1, sizeof(s1)));
	printf("  vram: %u experts, %s of %s, %.1f%% of accesses\n",
	       plan->n_vram, ec_format_size(plan->vram_bytes, s1, sizeof(s1)),
	       ec_format_size(vb, s2, sizeof(s2)), 100 * plan->vram_share);
	printf("  ram:  %u experts, %s of %s, %.1f%% of accesses\n",
	       plan->n_ram, ec_format_size(plan->ram_bytes, s1, sizeof(s1)),
	       ec_format_size(rb, s2, sizeof(s2)), 100 * plan->ram_share);
	rc = 0;
out:
	ec_plan_free(plan);
	free(sizes);
	ec_profile_free(p);
	return rc;
}
