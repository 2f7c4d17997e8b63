// SPDX-License-Identifier: MIT
/*
 * Loader of expert_traffic.bpf.c: sets the filters, attaches the programs
 * to the USDT probes of an expertcache binary, pins and reads the maps.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "bpf_internal.h"
#include "ec_bpf.h"
#include "ec_error.h"
#include "ec_probes.h"

_Static_assert(EC_BPF_TIER_VRAM == EC_TIER_VRAM &&
	       EC_BPF_TIER_HOST == EC_TIER_HOST &&
	       EC_BPF_TIER_STORAGE == EC_TIER_STORAGE &&
	       EC_TIER_NR <= EC_BPF_MAX_TIERS,
	       "bpf/expert_traffic.h and ec_probes.h disagree on tiers");

void ec_traffic_snap_free(struct ec_traffic_snap *s)
{
	free(s->experts);
	s->experts = NULL;
}

#ifdef EC_HAVE_BPF
#include <bpf/bpf.h>
#include <bpf/libbpf.h>

#include "expert_traffic.skel.h"

/* Probe name -> program; the first is required, the rest optional. */
static const struct {
	const char *probe;
	const char *prog;
} probes[] = {
	{ "route_chunk", "ec_route_chunk" },
	{ "hit", "ec_hit" },
	{ "miss", "ec_miss" },
	{ "load_done", "ec_load_done" },
	{ "evict", "ec_evict" },
	{ "prefetch_issued", "ec_prefetch_issued" },
	{ "prefetch_used", "ec_prefetch_used" },
	{ "substitute", "ec_substitute" },
};

#define N_PROBES (sizeof(probes) / sizeof(probes[0]))

struct ec_traffic {
	struct expert_traffic_bpf *skel;
	struct bpf_link *links[N_PROBES];
	char attached[256];
	char failed[512];
};

/*
 * Optional probes first, route_chunk (required) last: its semaphore tells
 * the traced process (and the overhead benchmark) that tracing is on, so
 * it goes up only once everything is in place.
 */
static int attach_all(struct ec_traffic *t, const struct ec_traffic_opts *o)
{
	size_t i, j, len = 0;

	for (j = 0; j < N_PROBES; j++) {
		struct bpf_program *prog;
		struct bpf_link *link;
		int err;

		i = N_PROBES - 1 - j;
		if ((o->routing_only && i > 0) ||
		    (o->light && !strcmp(probes[i].probe, "hit")))
			continue;
		prog = bpf_object__find_program_by_name(t->skel->obj,
							probes[i].prog);
		if (!prog)
			return ec_err(-ENOENT, "BPF program %s missing",
				      probes[i].prog);
		link = bpf_program__attach_usdt(prog, o->pid, o->binary,
						"expertcache",
						probes[i].probe, NULL);
		err = -errno;
		if (!link && i == 0) {
			if (err == -ENOENT)
				return ec_err(err, "%s has no USDT probe "
					      "expertcache:%s: not an "
					      "expertcache binary, or built "
					      "without <sys/sdt.h> "
					      "(systemtap-sdt-dev)", o->binary,
					      probes[i].probe);
			return ec_bpf_libbpf_err(err, o->binary);
		}
		if (!link) {
			size_t f = strlen(t->failed);

			/* ENOENT: a probe this build does not have */
			if (err != -ENOENT)
				snprintf(t->failed + f, sizeof(t->failed) - f,
					 "%s%s: %s", f ? "; " : "",
					 probes[i].probe, strerror(-err));
			continue;
		}
		t->links[i] = link;
	}
	for (i = 0; i < N_PROBES; i++) {
		if (!t->links[i])
			continue;
		len += snprintf(t->attached + len, sizeof(t->attached) - len,
				"%s%s", len ? " " : "", probes[i].probe);
		if (len >= sizeof(t->attached))
			len = sizeof(t->attached) - 1;
	}
	return 0;
}

int ec_traffic_open(const struct ec_traffic_opts *o, struct ec_traffic **out)
{
	LIBBPF_OPTS(bpf_object_open_opts, oo);
	struct ec_traffic *t;
	int ret;

	*out = NULL;
	ret = ec_bpf_check(false);
	if (ret < 0)
		return ret;
	if (access(o->binary, R_OK) < 0)
		return ec_err(-errno, "%s: %s", o->binary, strerror(errno));
	ec_bpf_libbpf_init();
	t = calloc(1, sizeof(*t));
	if (!t)
		return ec_err(-ENOMEM, "out of memory");
	oo.btf_custom_path = getenv("EXPERTCACHE_BTF");
	t->skel = expert_traffic_bpf__open_opts(&oo);
	if (!t->skel) {
		ret = ec_bpf_libbpf_err(-errno, "expert_traffic: open");
		goto err;
	}
	t->skel->rodata->targ_tgid = o->filter_tgid;
	t->skel->rodata->targ_cgid = o->filter_cgid;
	ret = expert_traffic_bpf__load(t->skel);
	if (ret < 0) {
		ret = ec_bpf_libbpf_err(ret, "expert_traffic: load");
		goto err;
	}
	if (o->light) {
		struct ec_traffic_meta m = { .flags = EC_TRAFFIC_DERIVED_HITS };
		uint32_t zero = 0;

		bpf_map_update_elem(bpf_map__fd(t->skel->maps.traffic_meta),
				    &zero, &m, BPF_ANY);
	}
	ret = attach_all(t, o);
	if (ret < 0)
		goto err;
	*out = t;
	return 0;
err:
	ec_traffic_close(t);
	return ret;
}

void ec_traffic_close(struct ec_traffic *t)
{
	size_t i;

	if (!t)
		return;
	for (i = 0; i < N_PROBES; i++)
		bpf_link__destroy(t->links[i]);
	expert_traffic_bpf__destroy(t->skel);
	free(t);
}

const char *ec_traffic_probes(const struct ec_traffic *t)
{
	return t->attached;
}

const char *ec_traffic_failed(const struct ec_traffic *t)
{
	return t->failed;
}

int ec_traffic_pin(struct ec_traffic *t, const char *dir)
{
	struct bpf_map *maps[] = {
		t->skel->maps.expert_counts, t->skel->maps.load_latency,
		t->skel->maps.traffic_meta,
	};
	size_t i;
	int ret = ec_bpf_pin_dir(dir);

	for (i = 0; ret == 0 && i < sizeof(maps) / sizeof(maps[0]); i++)
		ret = ec_bpf_pin_map(maps[i], dir);
	return ret;
}

/* fds: expert_counts, load_latency, traffic_meta */
static int read_fds(const int fd[3], struct ec_traffic_snap *s)
{
	struct ec_expert_key *keys = NULL;
	struct ec_expert_stats *vals = NULL;
	uint32_t n = 0, i, zero = 0, nl, ne;
	int ret;

	memset(s, 0, sizeof(*s));
	if (bpf_map_lookup_elem(fd[2], &zero, &s->meta) < 0)
		return ec_err(-errno, "traffic_meta: %s", strerror(errno));
	for (i = 0; i < EC_BPF_MAX_TIERS; i++)
		if (bpf_map_lookup_elem(fd[1], &i, &s->tiers[i]) < 0)
			return ec_err(-errno, "load_latency: %s",
				      strerror(errno));
	ret = ec_bpf_map_dump(fd[0], sizeof(*keys), sizeof(*vals),
			      (void **)&keys, (void **)&vals, &n);
	if (ret < 0)
		return ret;
	nl = s->meta.n_layer;
	ne = s->meta.n_expert;
	for (i = 0; i < n; i++) {
		if (keys[i].layer >= nl)
			nl = keys[i].layer + 1;
		if (keys[i].expert >= ne)
			ne = keys[i].expert + 1;
	}
	if (nl > EC_BPF_MAX_LAYERS || (uint64_t)nl * ne > EC_BPF_MAX_KEYS) {
		ret = ec_err(-EC_EFORMAT, "expert_counts: %u layers x %u "
			     "experts out of range", nl, ne);
		goto out;
	}
	s->n_layer = nl;
	s->n_expert = ne;
	s->n_keys = n;
	if (nl && ne) {
		s->experts = calloc((size_t)nl * ne, sizeof(*s->experts));
		if (!s->experts) {
			ret = ec_err(-ENOMEM, "out of memory");
			goto out;
		}
	}
	for (i = 0; i < n; i++)
		s->experts[(size_t)keys[i].layer * ne + keys[i].expert] =
			vals[i];
	/* derived hits only where a cache showed up (else nothing to hit) */
	if ((s->meta.flags & EC_TRAFFIC_DERIVED_HITS) &&
	    (s->tiers[EC_BPF_TIER_HOST].misses ||
	     s->tiers[EC_BPF_TIER_HOST].loads)) {
		struct ec_tier_stats *host = &s->tiers[EC_BPF_TIER_HOST];

		host->hits = 0;
		for (i = 0; i < (uint64_t)nl * ne; i++) {
			struct ec_expert_stats *x = &s->experts[i];

			x->hits = x->lookups > x->misses ?
				  x->lookups - x->misses : 0;
			host->hits += x->hits;
		}
	}
	s->n_tokens = s->meta.tokens;
out:
	free(keys);
	free(vals);
	return ret;
}

int ec_traffic_read(struct ec_traffic *t, struct ec_traffic_snap *s)
{
	int fd[3] = {
		bpf_map__fd(t->skel->maps.expert_counts),
		bpf_map__fd(t->skel->maps.load_latency),
		bpf_map__fd(t->skel->maps.traffic_meta),
	};

	return read_fds(fd, s);
}

int ec_traffic_read_pinned(const char *dir, struct ec_traffic_snap *s)
{
	static const char *const names[3] = {
		"expert_counts", "load_latency", "traffic_meta",
	};
	int fd[3] = { -1, -1, -1 }, ret = 0, i;

	memset(s, 0, sizeof(*s));
	ret = ec_bpf_check(true);
	for (i = 0; ret >= 0 && i < 3; i++) {
		fd[i] = ec_bpf_open_pinned(dir, names[i]);
		if (fd[i] < 0)
			ret = fd[i];
	}
	if (ret >= 0)
		ret = read_fds(fd, s);
	for (i = 0; i < 3; i++)
		if (fd[i] >= 0)
			close(fd[i]);
	return ret;
}

#else /* !EC_HAVE_BPF: every entry point explains */

int ec_traffic_open(const struct ec_traffic_opts *o, struct ec_traffic **out)
{
	*out = NULL;
	return ec_bpf_check(false);
}

void ec_traffic_close(struct ec_traffic *t)
{
}

const char *ec_traffic_probes(const struct ec_traffic *t)
{
	return "";
}

const char *ec_traffic_failed(const struct ec_traffic *t)
{
	return "";
}

int ec_traffic_pin(struct ec_traffic *t, const char *dir)
{
	return ec_bpf_check(true);
}

int ec_traffic_read(struct ec_traffic *t, struct ec_traffic_snap *s)
{
	memset(s, 0, sizeof(*s));
	return ec_bpf_check(false);
}

int ec_traffic_read_pinned(const char *dir, struct ec_traffic_snap *s)
{
	memset(s, 0, sizeof(*s));
	return ec_bpf_check(true);
}

#endif
