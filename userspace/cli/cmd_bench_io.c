// SPDX-License-Identifier: MIT
/* `expertcache bench-io`: random O_DIRECT reads with our io_uring reader. */
#include <getopt.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include "cli.h"
#include "ec_error.h"
#include "ec_storage.h"

static void usage(FILE *f)
{
	fprintf(f,
		"usage: expertcache bench-io FILE [--qd N] [--bs SIZE] "
		"[--seconds S] [--json]\n\n"
		"Random reads of FILE through the expert reader (io_uring, "
		"O_DIRECT, fixed\nfiles and buffers), like fio --rw=randread "
		"--ioengine=io_uring --direct=1.\n\n"
		"  --qd N          reads in flight (default 32)\n"
		"  --bs SIZE       bytes per read, multiple of 4K (default "
		"1M)\n"
		"  --seconds S     duration (default 10)\n"
		"  --buffered      no O_DIRECT\n"
		"  --sqpoll        kernel submission polling thread\n"
		"  --no-fixed-buffers  plain reads instead of READ_FIXED\n"
		"  --json          one JSON object\n"
		"  -h, --help      this help\n");
}

struct bench {
	struct ec_uring *r;
	uint64_t bs, n_blocks, deadline;
	pthread_mutex_t lock;
	pthread_cond_t cond;
	uint32_t active;
	uint64_t ops, bytes, lat_ns;
	int err;
	char msg[320];
};

struct slot {
	struct bench *b;
	uint8_t *buf;
	uint64_t rng;
};

static uint64_t now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static void done(void *arg, const struct ec_uring_result *res);

static int submit(struct slot *s)
{
	struct bench *b = s->b;
	struct ec_uring_seg seg;

	s->rng ^= s->rng << 13;
	s->rng ^= s->rng >> 7;
	s->rng ^= s->rng << 17;
	seg.file = 0;
	seg.offset = (s->rng % b->n_blocks) * b->bs;
	seg.length = b->bs;
	seg.need = b->bs;
	seg.dst = s->buf;
	return ec_uring_read(b->r, &seg, 1, 0, done, s);
}

/* On the reader's completion thread: count, then keep the slot busy. */
static void done(void *arg, const struct ec_uring_result *res)
{
	struct slot *s = arg;
	struct bench *b = s->b;
	int ret = res->err;

	pthread_mutex_lock(&b->lock);
	if (!ret) {
		b->ops++;
		b->bytes += res->bytes;
		b->lat_ns += res->ns;
	} else if (!b->err) {
		b->err = ret;
		snprintf(b->msg, sizeof(b->msg), "%s", res->msg);
	}
	pthread_mutex_unlock(&b->lock);
	if (!ret && now_ns() < b->deadline)
		ret = submit(s);
	else
		ret = -1;
	if (ret < 0) {
		pthread_mutex_lock(&b->lock);
		if (--b->active == 0)
			pthread_cond_signal(&b->cond);
		pthread_mutex_unlock(&b->lock);
	}
}

int ec_cmd_bench_io(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "qd", required_argument, NULL, 'q' },
		{ "bs", required_argument, NULL, 'b' },
		{ "seconds", required_argument, NULL, 's' },
		{ "buffered", no_argument, NULL, 'B' },
		{ "sqpoll", no_argument, NULL, 'S' },
		{ "no-fixed-buffers", no_argument, NULL, 'F' },
		{ "json", no_argument, NULL, 'j' },
		{ "help", no_argument, NULL, 'h' },
		{ 0 },
	};
	struct ec_uring_params up = { 0 };
	struct ec_uring_info info;
	struct bench b = { .bs = 1 << 20 };
	struct slot *slots = NULL;
	uint32_t qd = 32, secs = 10, i;
	int c, json = 0, no_fixed = 0, rc = 1, ret;
	uint8_t *mem = NULL;
	const char *path;
	struct iovec iov;
	struct stat st;
	uint64_t t0, t1;
	double s, gbps;

	while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
		switch (c) {
		case 'q':
		case 's':
			if (ec_cli_parse_uint(optarg, c == 'q' ? &qd : &secs) <
				    0 || !(c == 'q' ? qd : secs)) {
				fprintf(stderr, "expertcache bench-io: '%s' is"
					" not a positive count\n", optarg);
				return 2;
			}
			break;
		case 'b':
			if (ec_parse_size(optarg, &b.bs) < 0 || !b.bs ||
			    b.bs % EC_IO_ALIGN || b.bs > (64u << 20)) {
				fprintf(stderr, "expertcache bench-io: --bs "
					"'%s': a multiple of 4K up to 64M\n",
					optarg);
				return 2;
			}
			break;
		case 'B':
			up.buffered = true;
			break;
		case 'S':
			up.sqpoll = true;
			break;
		case 'F':
			no_fixed = 1;
			break;
		case 'j':
			json = 1;
			break;
		case 'h':
			usage(stdout);
			return 0;
		default:
			usage(stderr);
			return 2;
		}
	}
	if (optind != argc - 1) {
		usage(stderr);
		return 2;
	}
	path = argv[optind];
	if (stat(path, &st) < 0 || (uint64_t)st.st_size < b.bs) {
		fprintf(stderr, "expertcache bench-io: %s: missing or smaller "
			"than one block\n", path);
		return 1;
	}
	b.n_blocks = (uint64_t)st.st_size / b.bs;
	up.queue_depth = qd;
	up.max_request = (uint32_t)b.bs;
	ret = ec_uring_create(&up, &(struct ec_uring_file){ &path, 1 }, 1,
			      &b.r);
	if (ret < 0) {
		ec_cli_error("bench-io", ret);
		return 1;
	}
	slots = calloc(qd, sizeof(*slots));
	if (!slots || posix_memalign((void **)&mem, EC_IO_ALIGN, qd * b.bs)) {
		fprintf(stderr, "expertcache bench-io: out of memory\n");
		goto out;
	}
	memset(mem, 0, qd * b.bs);
	iov.iov_base = mem;
	iov.iov_len = qd * b.bs;
	if (!no_fixed && iov.iov_len <= (1u << 30))
		ec_uring_register_buffers(b.r, &iov, 1);	/* optional */
	ec_uring_get_info(b.r, &info);
	pthread_mutex_init(&b.lock, NULL);
	pthread_cond_init(&b.cond, NULL);
	t0 = now_ns();
	b.deadline = t0 + (uint64_t)secs * 1000000000ull;
	pthread_mutex_lock(&b.lock);
	for (i = 0; i < qd; i++) {
		slots[i] = (struct slot){ &b, mem + i * b.bs,
					  0x9E3779B97F4A7C15ull * (i + 1) };
		b.active++;
	}
	pthread_mutex_unlock(&b.lock);
	for (i = 0; i < qd; i++) {
		if (submit(&slots[i]) < 0) {
			pthread_mutex_lock(&b.lock);
			b.active--;
			pthread_mutex_unlock(&b.lock);
		}
	}
	pthread_mutex_lock(&b.lock);
	while (b.active)
		pthread_cond_wait(&b.cond, &b.lock);
	pthread_mutex_unlock(&b.lock);
	t1 = now_ns();
	if (b.err) {
		fprintf(stderr, "expertcache bench-io: %s\n", b.msg);
		goto out;
	}
	s = (double)(t1 - t0) / 1e9;
	gbps = (double)b.bytes / s / 1e9;
	if (json)
		printf("{\"file\": \"%s\", \"bs\": %llu, \"qd\": %u, "
		       "\"seconds\": %.3f, \"bytes\": %llu, \"gbps\": %.4f, "
		       "\"mibps\": %.1f, \"iops\": %.1f, \"lat_us\": %.1f, "
		       "\"direct\": %s, \"fixed_buffers\": %s, "
		       "\"sqpoll\": %s}\n", path,
		       (unsigned long long)b.bs, qd, s,
		       (unsigned long long)b.bytes, gbps,
		       (double)b.bytes / s / 1048576.0, (double)b.ops / s,
		       b.ops ? (double)b.lat_ns / b.ops / 1e3 : 0.0,
		       info.direct ? "true" : "false",
		       info.fixed_buffers ? "true" : "false",
		       info.sqpoll ? "true" : "false");
	else
		printf("bench-io %s: bs %llu, qd %u, %.1f s, %s%s%s\n"
		       "  %.3f GB/s (%.1f MiB/s), %.0f IOPS, avg latency "
		       "%.1f us\n", path, (unsigned long long)b.bs, qd, s,
		       info.direct ? "O_DIRECT" : "buffered",
		       info.fixed_buffers ? ", fixed buffers" : "",
		       info.sqpoll ? ", SQPOLL" : "", gbps,
		       (double)b.bytes / s / 1048576.0, (double)b.ops / s,
		       b.ops ? (double)b.lat_ns / b.ops / 1e3 : 0.0);
	if (*info.notice)
		fprintf(stderr, "expertcache bench-io: note: %s\n",
			info.notice);
	rc = 0;
out:
	ec_uring_free(b.r);
	free(mem);
	free(slots);
	return rc;
}
