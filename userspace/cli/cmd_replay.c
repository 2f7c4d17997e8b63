// SPDX-License-Identifier: MIT
/* `expertcache replay`: hit rates of cache policies on a routing trace. */
#include <getopt.h>
#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "ec_error.h"
#include "ec_storage.h"

static void usage(FILE *f)
{
	fprintf(f,
		"usage: expertcache replay --trace T.jsonl (--slots-per-layer K"
		" | --capacity PCT)\n"
		"                          [--policy NAME|all] [--warmup-tokens"
		" N] [--json]\n\n"
		"Replays a routing trace (from 'run --record-trace') through "
		"cache policies\nand prints their hit rates, without a model: "
		"size --ram-budget with it.\n\n"
		"  --trace FILE          routing trace, JSONL\n"
		"  --policy NAME         lru, lfu, static, belady or all "
		"(default all)\n"
		"  --slots-per-layer K   one cache of K experts per layer\n"
		"  --capacity PCT        one cache holding PCT%% of all "
		"experts\n"
		"  --warmup-tokens N     do not count the first N tokens\n"
		"  --experts N           experts per layer (default: from the"
		" trace)\n"
		"  --layers N            layers (default: from the trace)\n"
		"  --profile P.json      static: pin the top experts of this "
		"profile\n"
		"                        (default: of the trace itself, in "
		"hindsight)\n"
		"  --json                JSON with per-layer hit rates\n"
		"  -h, --help            this help\n");
}

struct replay_opts {
	const char *trace, *policy, *profile;
	uint32_t slots_per_layer, n_expert, n_layer;
	double capacity_pct;
	uint64_t warmup;
	int json;
};

static int parse(int argc, char **argv, struct replay_opts *o)
{
	static const struct option opts[] = {
		{ "trace", required_argument, NULL, 't' },
		{ "policy", required_argument, NULL, 'p' },
		{ "slots-per-layer", required_argument, NULL, 'k' },
		{ "capacity", required_argument, NULL, 'c' },
		{ "warmup-tokens", required_argument, NULL, 'w' },
		{ "experts", required_argument, NULL, 'e' },
		{ "layers", required_argument, NULL, 'l' },
		{ "profile", required_argument, NULL, 'P' },
		{ "json", no_argument, NULL, 'j' },
		{ "help", no_argument, NULL, 'h' },
		{ 0 },
	};
	uint32_t v;
	char *end;
	int c;

	o->policy = "all";
	o->capacity_pct = -1;
	while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
		switch (c) {
		case 't':
			o->trace = optarg;
			break;
		case 'p':
			o->policy = optarg;
			break;
		case 'P':
			o->profile = optarg;
			break;
		case 'j':
			o->json = 1;
			break;
		case 'k':
		case 'e':
		case 'l':
		case 'w':
			if (ec_cli_parse_uint(optarg, &v) < 0) {
				fprintf(stderr, "expertcache replay: '%s' is "
					"not a count\n", optarg);
				return 2;
			}
			if (c == 'k')
				o->slots_per_layer = v;
			else if (c == 'e')
				o->n_expert = v;
			else if (c == 'l')
				o->n_layer = v;
			else
				o->warmup = v;
			break;
		case 'c':
			o->capacity_pct = strtod(optarg, &end);
			if (end == optarg || (*end && strcmp(end, "%")) ||
			    !(o->capacity_pct > 0 && o->capacity_pct <= 100)) {
				fprintf(stderr, "expertcache replay: "
					"--capacity '%s': expected a "
					"percentage in (0, 100]\n", optarg);
				return 2;
			}
			break;
		case 'h':
			usage(stdout);
			return 0;
		default:
			usage(stderr);
			return 2;
		}
	}
	if (!o->trace || (!o->slots_per_layer) == (o->capacity_pct < 0)) {
		fprintf(stderr, "expertcache replay: need --trace and exactly "
			"one of --slots-per-layer, --capacity\n");
		return 2;
	}
	if (strcmp(o->policy, "all") && !ec_policy_find(o->policy)) {
		fprintf(stderr, "expertcache replay: unknown policy '%s' (%s "
			"or all)\n", o->policy, ec_policy_names());
		return 2;
	}
	return -1;
}

static json_t *result_json(const struct ec_sim_result *r)
{
	json_t *layers = json_array();
	uint32_t l;

	for (l = 0; l < r->n_layer; l++)
		json_array_append_new(layers, json_pack(
			"{s:i, s:f, s:I, s:I}", "layer", (int)l,
			"hit_rate", ec_sim_hit_rate(r->layer_hits[l],
						    r->layer_misses[l]),
			"hits", (json_int_t)r->layer_hits[l],
			"misses", (json_int_t)r->layer_misses[l]));
	return json_pack("{s:f, s:I, s:I, s:I, s:o}", "hit_rate",
			 ec_sim_hit_rate(r->hits, r->misses),
			 "hits", (json_int_t)r->hits,
			 "misses", (json_int_t)r->misses,
			 "bypasses", (json_int_t)r->bypasses,
			 "per_layer", layers);
}

/* Static pins: the top experts of --profile, else of the trace. */
static int static_pins(const struct replay_opts *o, const struct ec_trace *t,
		       const struct ec_sim_params *p, uint32_t **keys,
		       uint32_t *n)
{
	struct ec_profile *prof = NULL;
	int ret;

	if (o->profile)
		ret = ec_profile_load(o->profile, &prof);
	else
		ret = ec_profile_from_trace(t, 0, &prof);
	if (ret < 0)
		return ret;
	if (prof->n_expert != p->n_expert && o->profile) {
		ret = ec_err(-EC_EINVAL, "%s: %u experts per layer, the trace"
			     " has %u", o->profile, prof->n_expert,
			     p->n_expert);
	} else {
		ret = ec_profile_top_keys(prof, p->slots_per_layer,
					  p->capacity, keys, n);
	}
	ec_profile_free(prof);
	return ret;
}

int ec_cmd_replay(int argc, char **argv)
{
	static const char *const all[] = { "lru", "lfu", "static", "belady" };
	struct replay_opts o = { 0 };
	struct ec_sim_params p = { 0 };
	struct ec_trace *t = NULL;
	json_t *out = NULL, *pol = NULL;
	uint32_t *pins = NULL, n_pins = 0, i;
	int ret, rc = 1;
	uint64_t keys;

	ret = parse(argc, argv, &o);
	if (ret >= 0)
		return ret;
	ret = ec_trace_load(o.trace, &t);
	if (ret < 0) {
		ec_cli_error("replay", ret);
		return 1;
	}
	if ((o.n_expert && o.n_expert < t->n_expert) ||
	    (o.n_layer && o.n_layer < t->n_layer)) {
		fprintf(stderr, "expertcache replay: %s: the trace has %u "
			"layers x %u experts, more than --layers/--experts\n",
			o.trace, t->n_layer, t->n_expert);
		goto out;
	}
	p.n_layer = o.n_layer ? o.n_layer : t->n_layer;
	p.n_expert = o.n_expert ? o.n_expert : t->n_expert;
	p.warmup_tokens = o.warmup;
	p.slots_per_layer = o.slots_per_layer;
	keys = (uint64_t)p.n_layer * p.n_expert;
	if (o.capacity_pct > 0) {
		double s = floor(o.capacity_pct * (double)keys / 100.0);

		p.capacity = s < 1 ? 1 : (uint32_t)s;
	}
	if (!strcmp(o.policy, "all") || !strcmp(o.policy, "static")) {
		ret = static_pins(&o, t, &p, &pins, &n_pins);
		if (ret < 0) {
			ec_cli_error("replay", ret);
			goto out;
		}
		p.pinned = pins;
		p.n_pinned = n_pins;
	}
	out = json_pack("{s:s, s:I, s:i, s:i, s:I, s:I}", "trace", o.trace,
			"tokens", (json_int_t)t->n_tokens, "n_layer",
			(int)p.n_layer, "n_expert", (int)p.n_expert,
			"accesses", (json_int_t)t->n_access,
			"warmup_tokens", (json_int_t)o.warmup);
	pol = json_object();
	if (p.slots_per_layer)
		json_object_set_new(out, "slots_per_layer",
				    json_integer(p.slots_per_layer));
	else
		json_object_set_new(out, "capacity_slots",
				    json_integer(p.capacity));
	json_object_set_new(out, "static_pins_from",
			    json_string(o.profile ? o.profile :
					"trace (hindsight)"));
	if (!o.json) {
		printf("trace %s: %llu tokens, %u layers x %u experts, %llu "
		       "expert accesses\n", o.trace,
		       (unsigned long long)t->n_tokens, p.n_layer, p.n_expert,
		       (unsigned long long)t->n_access);
		if (p.slots_per_layer)
			printf("cache: %u slots per layer (%.1f%% of "
			       "experts)", p.slots_per_layer,
			       100.0 * p.slots_per_layer / p.n_expert);
		else
			printf("cache: %u slots (%.1f%% of experts)",
			       p.capacity, 100.0 * p.capacity / (double)keys);
		printf(", warm-up %llu tokens\n\n%-8s %9s %12s %12s\n",
		       (unsigned long long)o.warmup, "policy", "hit rate",
		       "hits", "misses");
	}
	for (i = 0; i < 4; i++) {
		struct ec_sim_result r;

		if (strcmp(o.policy, "all") && strcmp(o.policy, all[i]))
			continue;
		ret = ec_sim_run(t, ec_policy_find(all[i]), &p, &r);
		if (ret < 0) {
			ec_cli_error("replay", ret);
			goto out;
		}
		if (!o.json)
			printf("%-8s %8.2f%% %12llu %12llu\n", all[i],
			       100.0 * ec_sim_hit_rate(r.hits, r.misses),
			       (unsigned long long)r.hits,
			       (unsigned long long)r.misses);
		json_object_set_new(pol, all[i], result_json(&r));
		ec_sim_result_free(&r);
	}
	json_object_set_new(out, "policies", pol);
	pol = NULL;
	if (o.json) {
		json_dumpf(out, stdout, JSON_INDENT(1) | JSON_PRESERVE_ORDER);
		putchar('\n');
	} else if (!strcmp(o.policy, "all") || !strcmp(o.policy, "static")) {
		printf("\nstatic pins the most used experts of %s; belady is "
		       "the offline optimum.\n", o.profile ? o.profile :
		       "the trace itself (hindsight)");
	}
	rc = 0;
out:
	json_decref(pol);
	json_decref(out);
	free(pins);
	ec_trace_free(t);
	return rc;
}
