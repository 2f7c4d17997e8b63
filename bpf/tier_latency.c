// SPDX-License-Identifier: MIT
/*
 * Loader of tier_latency.bpf.c: picks the io_uring tracepoints the running
 * kernel has, attaches what it can (saying what it could not), pins and
 * reads the per-device and per-opcode maps.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "bpf_internal.h"
#include "ec_bpf.h"
#include "ec_error.h"

void ec_tierlat_snap_free(struct ec_tierlat_snap *s)
{
	free(s->dev);
	free(s->op);
	s->dev = s->op = NULL;
	s->n_dev = s->n_op = 0;
}

#ifdef EC_HAVE_BPF
#include <bpf/bpf.h>
#include <bpf/libbpf.h>

#include "tier_latency.skel.h"

struct ec_tierlat {
	struct tier_latency_bpf *skel;
	struct bpf_link *links[8];
	uint32_t n_links;
	char notes[768];
};

static void note(struct ec_tierlat *t, const char *fmt, const char *a,
		 const char *b)
{
	size_t n = strlen(t->notes);

	snprintf(t->notes + n, sizeof(t->notes) - n, fmt, a, b);
}

/* libbpf resolves tracepoint ids through debugfs if it exists, else tracefs */
static int tracepoint_exists(const char *cat, const char *name)
{
	char path[256];
	const char *root = access("/sys/kernel/debug/tracing", F_OK) == 0 ?
			   "/sys/kernel/debug/tracing" : "/sys/kernel/tracing";

	snprintf(path, sizeof(path), "%s/events/%s/%s/id", root, cat, name);
	return access(path, R_OK) == 0;
}

static int tracefs_mounted(void)
{
	return access("/sys/kernel/tracing/events", F_OK) == 0 ||
	       access("/sys/kernel/debug/tracing/events", F_OK) == 0;
}

/*
 * The io_uring submit tracepoint: io_uring_submit_req since 6.4,
 * io_uring_submit_sqe in 5.x .. 6.3.  NULL (and a note) when neither can
 * be attached.
 */
static const char *pick_uring(struct ec_tierlat *t)
{
	static const char *const names[] = { "io_uring_submit_req",
					     "io_uring_submit_sqe" };
	size_t i;

	for (i = 0; i < 2; i++) {
		if (libbpf_find_vmlinux_btf_id(names[i], BPF_TRACE_RAW_TP) <= 0)
			continue;
		if (!tracefs_mounted()) {
			note(t, "io_uring: not traced: tracefs is not mounted "
			     "(sudo mount -t tracefs tracefs "
			     "/sys/kernel/tracing)%s%s\n", "", "");
			return NULL;
		}
		if (!tracepoint_exists("io_uring", names[i]) ||
		    !tracepoint_exists("io_uring", "io_uring_complete")) {
			note(t, "io_uring: not traced: no tracepoint "
			     "io_uring/%s in tracefs%s\n", names[i], "");
			return NULL;
		}
		return names[i];
	}
	note(t, "io_uring: not traced: this kernel has no io_uring "
	     "tracepoints%s%s\n", "", "");
	return NULL;
}

static void attach(struct ec_tierlat *t, struct bpf_program *prog,
		   const char *what)
{
	struct bpf_link *link = bpf_program__attach(prog);

	if (!link) {
		note(t, "%s: attach failed: %s\n", what, strerror(errno));
		return;
	}
	t->links[t->n_links++] = link;
}

int ec_tierlat_open(uint32_t filter_tgid, uint64_t filter_cgid,
		    struct ec_tierlat **out)
{
	LIBBPF_OPTS(bpf_object_open_opts, oo);
	struct ec_tierlat *t;
	const char *uring;
	bool io_start;
	int ret;

	*out = NULL;
	ret = ec_bpf_check(false);
	if (ret < 0)
		return ret;
	ec_bpf_libbpf_init();
	t = calloc(1, sizeof(*t));
	if (!t)
		return ec_err(-ENOMEM, "out of memory");
	oo.btf_custom_path = getenv("EXPERTCACHE_BTF");
	t->skel = tier_latency_bpf__open_opts(&oo);
	if (!t->skel) {
		ret = ec_bpf_libbpf_err(-errno, "tier_latency: open");
		goto err;
	}
	t->skel->rodata->targ_tgid = filter_tgid;
	t->skel->rodata->targ_cgid = filter_cgid;
	uring = pick_uring(t);
	bpf_program__set_autoload(t->skel->progs.ec_uring_submit_req,
				  uring && !strcmp(uring,
						   "io_uring_submit_req"));
	bpf_program__set_autoload(t->skel->progs.ec_uring_submit_sqe,
				  uring && !strcmp(uring,
						   "io_uring_submit_sqe"));
	bpf_program__set_autoload(t->skel->progs.ec_uring_complete, !!uring);
	io_start = libbpf_find_vmlinux_btf_id("block_io_start",
					      BPF_TRACE_RAW_TP) > 0;
	bpf_program__set_autoload(t->skel->progs.ec_io_start, io_start);
	ret = tier_latency_bpf__load(t->skel);
	if (ret < 0) {
		ret = ec_bpf_libbpf_err(ret, "tier_latency: load");
		goto err;
	}
	if (io_start)
		attach(t, t->skel->progs.ec_io_start, "block_io_start");
	attach(t, t->skel->progs.ec_bio_queue, "block_bio_queue");
	attach(t, t->skel->progs.ec_bio_split, "block_split");
	attach(t, t->skel->progs.ec_rq_issue, "block_rq_issue");
	attach(t, t->skel->progs.ec_rq_complete, "block_rq_complete");
	if (uring) {
		attach(t, !strcmp(uring, "io_uring_submit_req") ?
			  t->skel->progs.ec_uring_submit_req :
			  t->skel->progs.ec_uring_submit_sqe, uring);
		attach(t, t->skel->progs.ec_uring_complete,
		       "io_uring_complete");
		note(t, "io_uring: %s -> io_uring_complete\n", uring, "");
	}
	if (!t->n_links) {
		ret = ec_err(-ENOENT, "tier_latency: nothing could be "
			     "attached: %s", t->notes);
		goto err;
	}
	*out = t;
	return 0;
err:
	ec_tierlat_close(t);
	return ret;
}

void ec_tierlat_close(struct ec_tierlat *t)
{
	uint32_t i;

	if (!t)
		return;
	for (i = 0; i < t->n_links; i++)
		bpf_link__destroy(t->links[i]);
	tier_latency_bpf__destroy(t->skel);
	free(t);
}

const char *ec_tierlat_notes(const struct ec_tierlat *t)
{
	return t->notes;
}

int ec_tierlat_pin(struct ec_tierlat *t, const char *dir)
{
	int ret = ec_bpf_pin_dir(dir);

	if (ret == 0)
		ret = ec_bpf_pin_map(t->skel->maps.block_latency, dir);
	if (ret == 0)
		ret = ec_bpf_pin_map(t->skel->maps.uring_latency, dir);
	return ret;
}

static int cmp_row(const void *a, const void *b)
{
	const struct ec_io_row *x = a, *y = b;

	if (x->key[0] != y->key[0])
		return x->key[0] < y->key[0] ? -1 : 1;
	return x->key[1] < y->key[1] ? -1 : x->key[1] > y->key[1];
}

/* A hash map of 4- or 8-byte keys into rows. */
static int read_rows(int fd, size_t key_sz, struct ec_io_row **rows,
		     uint32_t *n_rows)
{
	uint32_t *keys = NULL, n = 0, i;
	struct ec_io_stats *vals = NULL;
	struct ec_io_row *r;
	int ret;

	*rows = NULL;
	*n_rows = 0;
	ret = ec_bpf_map_dump(fd, key_sz, sizeof(*vals), (void **)&keys,
			      (void **)&vals, &n);
	if (ret < 0)
		return ret;
	r = calloc(n ? n : 1, sizeof(*r));
	if (!r) {
		ret = ec_err(-ENOMEM, "out of memory");
		goto out;
	}
	for (i = 0; i < n; i++) {
		memcpy(r[i].key, (uint8_t *)keys + i * key_sz, key_sz);
		r[i].st = vals[i];
	}
	qsort(r, n, sizeof(*r), cmp_row);
	*rows = r;
	*n_rows = n;
out:
	free(keys);
	free(vals);
	return ret;
}

static int read_fds(int fd_dev, int fd_op, struct ec_tierlat_snap *s)
{
	int ret;

	memset(s, 0, sizeof(*s));
	ret = read_rows(fd_dev, sizeof(struct ec_dev_key), &s->dev, &s->n_dev);
	if (ret == 0)
		ret = read_rows(fd_op, sizeof(struct ec_uring_key), &s->op,
				&s->n_op);
	if (ret < 0)
		ec_tierlat_snap_free(s);
	return ret;
}

int ec_tierlat_read(struct ec_tierlat *t, struct ec_tierlat_snap *s)
{
	return read_fds(bpf_map__fd(t->skel->maps.block_latency),
			bpf_map__fd(t->skel->maps.uring_latency), s);
}

int ec_tierlat_read_pinned(const char *dir, struct ec_tierlat_snap *s)
{
	int fd_dev = -1, fd_op = -1, ret;

	memset(s, 0, sizeof(*s));
	ret = ec_bpf_check(true);
	if (ret < 0)
		return ret;
	fd_dev = ec_bpf_open_pinned(dir, "block_latency");
	if (fd_dev < 0)
		return fd_dev;
	fd_op = ec_bpf_open_pinned(dir, "uring_latency");
	ret = fd_op < 0 ? fd_op : read_fds(fd_dev, fd_op, s);
	close(fd_dev);
	if (fd_op >= 0)
		close(fd_op);
	return ret;
}

#else /* !EC_HAVE_BPF */

int ec_tierlat_open(uint32_t filter_tgid, uint64_t filter_cgid,
		    struct ec_tierlat **out)
{
	*out = NULL;
	return ec_bpf_check(false);
}

void ec_tierlat_close(struct ec_tierlat *t)
{
}

const char *ec_tierlat_notes(const struct ec_tierlat *t)
{
	return "";
}

int ec_tierlat_pin(struct ec_tierlat *t, const char *dir)
{
	return ec_bpf_check(true);
}

int ec_tierlat_read(struct ec_tierlat *t, struct ec_tierlat_snap *s)
{
	memset(s, 0, sizeof(*s));
	return ec_bpf_check(false);
}

int ec_tierlat_read_pinned(const char *dir, struct ec_tierlat_snap *s)
{
	memset(s, 0, sizeof(*s));
	return ec_bpf_check(true);
}

#endif
