// SPDX-License-Identifier: MIT
/*
 * io_uring reader: unaligned payloads read through covering aligned
 * ranges, request splitting and queue limits, striping over replicas,
 * fault injection (EIO, short reads, EAGAIN), truncated files, the
 * buffered fallback, registered buffers, SQPOLL and shutdown.
 */
#define _GNU_SOURCE
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/vfs.h>
#include <unistd.h>

#include "ec_error.h"
#include "ec_storage.h"
#include "ec_test.h"
#include "storage_fixture.h"

#define FILE_SIZE ((1u << 20) + 12345)
#define A 4096ull

struct payload {
	uint64_t off, len;
};

/* Odd payloads, the last one ending at end of file. */
static const struct payload payloads[] = {
	{ 5000, 70001 },
	{ 200003, 4095 },
	{ 1, 1 },
	{ 4096, 8192 },
	{ FILE_SIZE - 9999, 9999 },
};
#define N_PAYLOADS (sizeof(payloads) / sizeof(payloads[0]))

/* Covering aligned ranges into buf; payload i lands at buf + at[i]. */
static uint32_t make_segs(uint8_t *buf, struct ec_uring_seg *segs,
			  uint64_t *at, uint32_t file)
{
	uint64_t cur = 0;
	uint32_t i;

	for (i = 0; i < N_PAYLOADS; i++) {
		uint64_t a = payloads[i].off & ~(A - 1);
		uint64_t end = (payloads[i].off + payloads[i].len + A - 1) &
			       ~(A - 1);

		segs[i].file = file;
		segs[i].offset = a;
		segs[i].length = end - a;
		segs[i].need = payloads[i].off + payloads[i].len - a;
		segs[i].dst = buf + cur;
		at[i] = cur + (payloads[i].off - a);
		cur += end - a;
	}
	return N_PAYLOADS;
}

static uint64_t segs_bytes(void)
{
	uint64_t n = 0;
	uint32_t i;

	for (i = 0; i < N_PAYLOADS; i++)
		n += ((payloads[i].off + payloads[i].len + A - 1) & ~(A - 1)) -
		     (payloads[i].off & ~(A - 1));
	return n;
}

static int payloads_ok(const uint8_t *buf, const uint64_t *at, uint32_t salt)
{
	uint32_t i;

	for (i = 0; i < N_PAYLOADS; i++)
		if (!fx_check(buf + at[i], payloads[i].off, payloads[i].len,
			      salt))
			return 0;
	return 1;
}

static uint8_t *alloc_buf(void)
{
	void *p = NULL;

	if (posix_memalign(&p, A, segs_bytes()))
		return NULL;
	memset(p, 0xEE, segs_bytes());
	return p;
}

/* Read the payloads of file 0 (replica `stripe`) and check them. */
static int read_check(struct ec_uring *r, uint32_t stripe, uint32_t salt,
		      int *err, char *msg)
{
	struct ec_uring_seg segs[N_PAYLOADS];
	uint64_t at[N_PAYLOADS];
	uint8_t *buf = alloc_buf();
	struct fx_wait w;
	int ok = 0, ret;

	fx_wait_init(&w);
	*err = -1;
	if (!buf)
		return 0;
	make_segs(buf, segs, at, 0);
	ret = ec_uring_read(r, segs, N_PAYLOADS, stripe, fx_done, &w);
	if (ret < 0) {
		*err = ret;
		free(buf);
		return 0;
	}
	fx_wait_for(&w, 1);
	*err = w.err;
	if (msg)
		strcpy(msg, w.msg);
	if (!w.err)
		ok = payloads_ok(buf, at, salt);
	free(buf);
	return ok;
}

static char path0[300], path1[300];

static struct ec_uring *open_reader(const struct ec_uring_params *p,
				    const char *a, const char *b)
{
	const char *paths[2] = { a, b };
	struct ec_uring_file f = { paths, b ? 2 : 1 };
	struct ec_uring *r = NULL;
	int ret = ec_uring_create(p, &f, 1, &r);

	if (ret < 0)
		fprintf(stderr, "ec_uring_create: %s\n", ec_error_msg());
	return r;
}

static void test_basic(void)
{
	struct ec_uring_params p = { .queue_depth = 2, .max_request = 8192 };
	struct ec_uring_stats st;
	struct ec_uring_info info;
	struct ec_uring *r = open_reader(&p, path0, NULL);
	int err;

	EC_CHECK(r, "reader opens");
	if (!r)
		return;
	ec_uring_get_info(r, &info);
	EC_CHECK(info.direct, "O_DIRECT on a disk file (notice: %s)",
		 info.notice);
	EC_CHECK(info.fixed_files, "fixed files registered");
	EC_CHECK(read_check(r, 0, 1, &err, NULL) && err == 0,
		 "unaligned payloads read exactly (err %d)", err);
	ec_uring_get_stats(r, &st);
	/* 8 KiB requests: every range split, at most 2 in flight */
	EC_CHECK(st.requests >= segs_bytes() / 8192, "split into %llu "
		 "requests", (unsigned long long)st.requests);
	EC_CHECK(st.reads == 1 && st.read_errors == 0, "one read reported");
	ec_uring_free(r);

	p.buffered = true;
	r = open_reader(&p, path0, NULL);
	EC_CHECK(r, "buffered reader opens");
	if (r) {
		ec_uring_get_info(r, &info);
		EC_CHECK(!info.direct, "buffered means no O_DIRECT");
		EC_CHECK(read_check(r, 0, 1, &err, NULL) && err == 0,
			 "buffered read exact");
		ec_uring_free(r);
	}
}

static void test_striping(void)
{
	struct ec_uring_params p = { 0 };
	struct ec_uring *r = open_reader(&p, path0, path1);
	int err;

	EC_CHECK(r, "reader with two replicas");
	if (!r)
		return;
	/* replicas differ on purpose: the bytes tell which one was read */
	EC_CHECK(read_check(r, 0, 1, &err, NULL), "stripe 0 -> replica 0");
	EC_CHECK(read_check(r, 1, 2, &err, NULL), "stripe 1 -> replica 1");
	EC_CHECK(read_check(r, 7, 2, &err, NULL), "stripe 7 -> replica 1");
	EC_CHECK(read_check(r, 10, 1, &err, NULL), "stripe 10 -> replica 0");
	ec_uring_free(r);
}

/* Fault hooks. */
static uint64_t eio_at;
static int hook_eio(void *arg, const struct ec_uring_fault_ctx *c, int res)
{
	if (eio_at >= c->offset && eio_at < c->offset + c->length)
		return -EIO;
	return res;
}

static int hook_short(void *arg, const struct ec_uring_fault_ctx *c,
		      int res)
{
	int *count = arg;

	if (res > (int)A) {
		/* scribble what we pretend did not arrive */
		memset((uint8_t *)c->buf + A, 0x5A, (size_t)res - A);
		__atomic_fetch_add(count, 1, __ATOMIC_RELAXED);
		return (int)A;
	}
	return res;
}

static int hook_eagain(void *arg, const struct ec_uring_fault_ctx *c,
		       int res)
{
	int *count = arg;

	/* every other completion is refused once */
	if (__atomic_fetch_add(count, 1, __ATOMIC_RELAXED) % 2 == 0)
		return -EAGAIN;
	return res;
}

static void test_faults(void)
{
	struct ec_uring_params p = { .queue_depth = 4, .max_request = 16384 };
	struct ec_uring *r = open_reader(&p, path0, NULL);
	struct ec_uring_stats st;
	char msg[400];
	int err, count = 0;

	EC_CHECK(r, "reader opens");
	if (!r)
		return;
	eio_at = payloads[0].off + 40000;
	ec_uring_set_fault_hook(r, hook_eio, NULL);
	EC_CHECK(!read_check(r, 0, 1, &err, msg) && err == -EIO,
		 "injected EIO reported (err %d)", err);
	EC_CHECK(strstr(msg, path0) && strstr(msg, "offset"),
		 "message names file and offset: %s", msg);

	ec_uring_set_fault_hook(r, hook_short, &count);
	EC_CHECK(read_check(r, 0, 1, &err, NULL) && err == 0,
		 "short reads resubmitted, bytes exact (err %d)", err);
	ec_uring_get_stats(r, &st);
	EC_CHECK(count > 0 && st.resubmits >= (uint64_t)count,
		 "%d short reads, %llu resubmits", count,
		 (unsigned long long)st.resubmits);

	count = 0;
	ec_uring_set_fault_hook(r, hook_eagain, &count);
	EC_CHECK(read_check(r, 0, 1, &err, NULL) && err == 0,
		 "EAGAIN resubmitted, bytes exact (err %d)", err);

	ec_uring_set_fault_hook(r, NULL, NULL);
	EC_CHECK(read_check(r, 0, 1, &err, NULL) && err == 0,
		 "reads fine again without the hook");
	ec_uring_get_stats(r, &st);
	EC_CHECK(st.read_errors == 1, "one failed read counted (%llu)",
		 (unsigned long long)st.read_errors);
	ec_uring_free(r);
}

static void test_truncated(const char *dir)
{
	struct ec_uring_params p = { 0 };
	struct ec_uring_seg seg;
	struct ec_uring *r;
	struct fx_wait w;
	char path[300];
	uint8_t *buf = NULL;
	int err;

	snprintf(path, sizeof(path), "%s/trunc.bin", dir);
	if (fx_write_file(path, FILE_SIZE, 1) < 0) {
		EC_CHECK(0, "cannot write %s", path);
		return;
	}
	r = open_reader(&p, path, NULL);
	EC_CHECK(r, "reader opens");
	if (!r)
		return;
	/* cut the file while it is open: the last payloads are gone */
	EC_CHECK(truncate(path, 300000) == 0, "truncate");
	EC_CHECK(!read_check(r, 0, 1, &err, NULL) && err == -EC_EFORMAT,
		 "truncated file is a format error (err %d)", err);
	fx_wait_init(&w);
	EC_CHECK(!posix_memalign((void **)&buf, A, 3 * A), "alloc");
	/* the tail of the new last block: need ends exactly at EOF */
	seg = (struct ec_uring_seg){ 0, 294912, 2 * A, 300000 - 294912, buf };
	EC_CHECK(ec_uring_read(r, &seg, 1, 0, fx_done, &w) == 0, "submit");
	fx_wait_for(&w, 1);
	EC_CHECK(w.err == 0 && fx_check(buf, 294912, 300000 - 294912, 1),
		 "a range ending at the new EOF still reads (err %d: %s)",
		 w.err, w.msg);
	seg.need += 1;
	fx_wait_init(&w);
	EC_CHECK(ec_uring_read(r, &seg, 1, 0, fx_done, &w) == 0, "submit");
	fx_wait_for(&w, 1);
	EC_CHECK(w.err == -EC_EFORMAT && strstr(w.msg, "truncated"),
		 "one byte past EOF is an error: %s", w.msg);
	/* misaligned O_DIRECT request refused up front */
	seg = (struct ec_uring_seg){ 0, 100, A, A, buf };
	EC_CHECK(ec_uring_read(r, &seg, 1, 0, fx_done, &w) == -EC_EINVAL,
		 "misaligned O_DIRECT range rejected");
	free(buf);
	ec_uring_free(r);
}

static void test_tmpfs_fallback(void)
{
	struct ec_uring_params p = { 0 };
	struct ec_uring_info info;
	struct statfs sf;
	struct ec_uring *r;
	char path[300];
	int err;

	if (statfs("/dev/shm", &sf) < 0 || sf.f_type != 0x01021994) {
		EC_SKIP("no tmpfs at /dev/shm for the O_DIRECT fallback");
		return;
	}
	snprintf(path, sizeof(path), "/dev/shm/ec-test-%d.bin", (int)getpid());
	if (fx_write_file(path, FILE_SIZE, 1) < 0) {
		EC_SKIP("cannot write %s", path);
		return;
	}
	r = open_reader(&p, path, NULL);
	EC_CHECK(r, "reader opens a tmpfs file");
	if (r) {
		ec_uring_get_info(r, &info);
		if (info.direct)	/* tmpfs has O_DIRECT since Linux 6.6 */
			EC_SKIP("tmpfs accepts O_DIRECT on this kernel: the "
				"buffered fallback is not exercised");
		else
			EC_CHECK(strstr(info.notice, "O_DIRECT"),
				 "falls back to buffered with a notice: %s",
				 info.notice);
		EC_CHECK(read_check(r, 0, 1, &err, NULL) && err == 0,
			 "buffered fallback reads exact");
		ec_uring_free(r);
	}
	unlink(path);
}

static void test_fixed_buffers(void)
{
	struct ec_uring_params p = { .max_request = 65536 };
	struct ec_uring_seg segs[N_PAYLOADS];
	struct ec_uring_info info;
	uint64_t at[N_PAYLOADS];
	struct ec_uring *r = open_reader(&p, path0, NULL);
	uint8_t *buf = alloc_buf();
	struct iovec iov;
	struct fx_wait w;
	int ret;

	if (!r || !buf) {
		EC_CHECK(0, "setup");
		free(buf);
		ec_uring_free(r);
		return;
	}
	iov.iov_base = buf;
	iov.iov_len = segs_bytes();
	ret = ec_uring_register_buffers(r, &iov, 1);
	if (ret < 0) {
		EC_SKIP("io_uring_register_buffers refused: %s",
			ec_error_msg());
	} else {
		ec_uring_get_info(r, &info);
		EC_CHECK(info.fixed_buffers, "fixed buffers in use");
		fx_wait_init(&w);
		make_segs(buf, segs, at, 0);
		EC_CHECK(ec_uring_read(r, segs, N_PAYLOADS, 0, fx_done, &w) ==
			 0, "submit");
		fx_wait_for(&w, 1);
		EC_CHECK(w.err == 0 && payloads_ok(buf, at, 1),
			 "READ_FIXED bytes exact (err %d)", w.err);
	}
	ec_uring_free(r);
	free(buf);
}

static void test_sqpoll(void)
{
	struct ec_uring_params p = { .sqpoll = true };
	struct ec_uring_info info;
	struct ec_uring *r = open_reader(&p, path0, NULL);
	int err;

	EC_CHECK(r, "reader with SQPOLL (or its fallback) opens");
	if (!r)
		return;
	ec_uring_get_info(r, &info);
	if (!info.sqpoll)
		EC_CHECK(strstr(info.notice, "SQPOLL"), "fallback says why");
	EC_CHECK(read_check(r, 0, 1, &err, NULL) && err == 0,
		 "SQPOLL read exact (sqpoll=%d)", info.sqpoll);
	ec_uring_free(r);
}

/* Free with reads queued: every callback still runs exactly once. */
static void test_shutdown(void)
{
	struct ec_uring_params p = { .queue_depth = 1, .max_request = 4096 };
	struct ec_uring *r = open_reader(&p, path0, NULL);
	struct ec_uring_seg seg;
	struct fx_wait w;
	uint8_t *buf;
	int i, n = 0;

	if (!r || posix_memalign((void **)&buf, A, 64 * A)) {
		EC_CHECK(0, "setup");
		ec_uring_free(r);
		return;
	}
	fx_wait_init(&w);
	for (i = 0; i < 16; i++) {
		seg = (struct ec_uring_seg){ 0, (uint64_t)i * 4 * A, 4 * A,
					     4 * A, buf + i * 4 * A };
		n += ec_uring_read(r, &seg, 1, 0, fx_done, &w) == 0;
	}
	ec_uring_free(r);
	EC_CHECK(n == 16 && w.done == 16, "%d of %d callbacks ran", w.done,
		 n);
	free(buf);
}

int main(void)
{
	const char *dir = fx_mkdir("uring");

	snprintf(path0, sizeof(path0), "%s/replica0.bin", dir);
	snprintf(path1, sizeof(path1), "%s/replica1.bin", dir);
	if (fx_write_file(path0, FILE_SIZE, 1) < 0 ||
	    fx_write_file(path1, FILE_SIZE, 2) < 0) {
		EC_CHECK(0, "cannot write test files under %s", dir);
		return ec_test_done();
	}
	test_basic();
	test_striping();
	test_faults();
	test_truncated(dir);
	test_tmpfs_fallback();
	test_fixed_buffers();
	test_sqpoll();
	test_shutdown();
	fx_cleanup();
	return ec_test_done();
}
