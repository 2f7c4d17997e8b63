// SPDX-License-Identifier: MIT
/*
 * io_uring reader: batches of aligned O_DIRECT reads, a completion thread
 * that resubmits short reads and reports each batch once.
 *
 * Why a completion thread rather than reaping on the caller: prefetches are
 * issued by the forward pass and must complete (slot READY) while it keeps
 * computing, without the forward pass polling; and a get() blocked on one
 * expert must not have to process unrelated completions.  Submission is
 * under `lock` from any thread; the CQ is only touched by the thread.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <limits.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ec_error.h"
#include "storage_internal.h"
#include "uring_internal.h"

#define MAX_RETRIES 64		/* consecutive -EAGAIN / no-progress */
#define CQE_BATCH 64

static void piece_finish(struct ec_uring_piece *pc,
			 struct ec_uring_job **done_list);
static void job_fail(struct ec_uring *r, struct ec_uring_piece *pc, int err,
		     const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));

static void job_fail(struct ec_uring *r, struct ec_uring_piece *pc, int err,
		     const char *fmt, ...)
{
	struct ec_uring_job *job = pc->job;
	va_list ap;

	if (job->err)
		return;		/* keep the first error */
	job->err = err;
	va_start(ap, fmt);
	vsnprintf(job->msg, sizeof(job->msg), fmt, ap);
	va_end(ap);
}

/*
 * Drop the pending pieces of a failed job (they are never submitted), so
 * the pending list only ever holds pieces worth reading.
 */
static void drop_pending(struct ec_uring *r, struct ec_uring_job *job,
			 struct ec_uring_job **done_list)
{
	struct ec_uring_piece **pp = &r->pend_head, *last = NULL;

	while (*pp) {
		struct ec_uring_piece *pc = *pp;

		if (pc->job == job) {
			*pp = pc->next;
			piece_finish(pc, done_list);
		} else {
			last = pc;
			pp = &pc->next;
		}
	}
	r->pend_tail = last;
}

/* A piece is finished (done or failed); queue its job when it was last. */
static void piece_finish(struct ec_uring_piece *pc,
			 struct ec_uring_job **done_list)
{
	struct ec_uring_job *job = pc->job;

	if (--job->remaining == 0) {
		job->next_done = *done_list;
		*done_list = job;
	}
}

void ec_uring_cancel_pending(struct ec_uring *r,
			     struct ec_uring_job **done_list)
{
	while (r->pend_head) {
		struct ec_uring_piece *pc = r->pend_head;

		r->pend_head = pc->next;
		job_fail(r, pc, -ECANCELED, "%s: read cancelled",
			 r->rf[pc->fd_index].path);
		piece_finish(pc, done_list);
	}
	r->pend_tail = NULL;
}

static void pend_push_front(struct ec_uring *r, struct ec_uring_piece *pc)
{
	pc->next = r->pend_head;
	r->pend_head = pc;
	if (!r->pend_tail)
		r->pend_tail = pc;
}

static int find_buf(const struct ec_uring *r, const uint8_t *dst,
		    uint64_t len)
{
	unsigned int i;

	for (i = 0; i < r->n_bufs; i++) {
		const uint8_t *b = r->bufs[i].iov_base;

		if (dst >= b && dst + len <= b + r->bufs[i].iov_len)
			return (int)i;
	}
	return -1;
}

/*
 * Turn pending pieces into SQEs while fewer than queue_depth are in
 * flight; with `submit`, hand everything prepared to the kernel.  The
 * completion thread prepares while it runs callbacks (which often read
 * again) and submits once per batch: one io_uring_enter, not one per read.
 */
static void pump(struct ec_uring *r, bool submit)
{
	int ret, tries = 0;

	while (r->pend_head && r->inflight < r->p.queue_depth) {
		struct ec_uring_piece *pc = r->pend_head;
		struct ec_uring_rfile *f = &r->rf[pc->fd_index];
		struct io_uring_sqe *sqe;
		int fd, bi;

		sqe = io_uring_get_sqe(&r->ring);
		if (!sqe)
			break;
		r->pend_head = pc->next;
		fd = r->fixed_files ? (int)pc->fd_index : f->fd;
		bi = find_buf(r, pc->dst, pc->length);
		if (bi >= 0)
			io_uring_prep_read_fixed(sqe, fd, pc->dst,
						 (unsigned)pc->length,
						 pc->offset, bi);
		else
			io_uring_prep_read(sqe, fd, pc->dst,
					   (unsigned)pc->length, pc->offset);
		if (r->fixed_files)
			io_uring_sqe_set_flags(sqe, IOSQE_FIXED_FILE);
		io_uring_sqe_set_data(sqe, pc);
		r->inflight++;
		r->stats.requests++;
		r->unsubmitted++;
	}
	if (!r->pend_head)
		r->pend_tail = NULL;
	if (!submit || !r->unsubmitted)
		return;
	do {
		ret = io_uring_submit(&r->ring);
		if (ret == -EAGAIN || ret == -EBUSY || ret == -EINTR)
			sched_yield();
	} while ((ret == -EAGAIN || ret == -EBUSY || ret == -EINTR) &&
		 ++tries < 1000);
	if (ret < 0)
		ec_uring_add_notice(r, "io_uring_submit: %s", strerror(-ret));
	else
		r->unsubmitted = 0;
}

/* Apply one completion (res already through the fault hook). */
static void complete_piece(struct ec_uring *r, struct ec_uring_piece *pc,
			   int res, struct ec_uring_job **done_list)
{
	struct ec_uring_rfile *f = &r->rf[pc->fd_index];
	uint64_t adv;

	r->inflight--;
	if (res == -EAGAIN || res == -EINTR) {
		if (++pc->retries <= MAX_RETRIES) {
			r->stats.resubmits++;
			pend_push_front(r, pc);
			return;
		}
	}
	if (res < 0) {
		job_fail(r, pc, res, "%s: read of %llu bytes at offset %llu: "
			 "%s%s", f->path, (unsigned long long)pc->length,
			 (unsigned long long)pc->offset, strerror(-res),
			 res == -EINVAL && f->direct ?
			 " (O_DIRECT alignment refused? try buffered reads)" :
			 "");
		drop_pending(r, pc->job, done_list);
		piece_finish(pc, done_list);
		return;
	}
	if ((uint64_t)res >= pc->need || (uint64_t)res >= pc->length) {
		/* everything needed is here (the rest may lie past EOF) */
		pc->job->bytes += (uint64_t)res;
		piece_finish(pc, done_list);
		return;
	}
	if (res == 0 || (f->direct && res < (int)EC_IO_ALIGN)) {
		/* O_DIRECT returns a partial block only at end of file */
		job_fail(r, pc, -EC_EFORMAT, "%s: file ends at offset %llu, "
			 "%llu bytes before the end of the data: truncated?",
			 f->path, (unsigned long long)(pc->offset + res),
			 (unsigned long long)(pc->need - res));
		drop_pending(r, pc->job, done_list);
		piece_finish(pc, done_list);
		return;
	}
	/* short read: go on from the last aligned byte received */
	adv = f->direct ? ec_align_down((uint64_t)res, EC_IO_ALIGN) :
			  (uint64_t)res;
	pc->job->bytes += adv;
	pc->offset += adv;
	pc->length -= adv;
	pc->need -= adv;
	pc->dst += adv;
	pc->retries = adv ? 0 : pc->retries + 1;
	if (pc->retries > MAX_RETRIES) {
		job_fail(r, pc, -EIO, "%s: no progress reading %llu bytes at "
			 "offset %llu", f->path,
			 (unsigned long long)pc->length,
			 (unsigned long long)pc->offset);
		drop_pending(r, pc->job, done_list);
		piece_finish(pc, done_list);
		return;
	}
	r->stats.resubmits++;
	pend_push_front(r, pc);
}

void ec_uring_run_callbacks(struct ec_uring *r, struct ec_uring_job *list)
{
	while (list) {
		struct ec_uring_job *job = list;
		struct ec_uring_result res = {
			.err = job->err,
			.msg = job->msg,
			.bytes = job->bytes,
			.ns = ec_now_ns() - job->t0,
		};

		list = job->next_done;
		pthread_mutex_lock(&r->lock);
		r->stats.reads++;
		r->stats.bytes += job->bytes;
		if (job->err)
			r->stats.read_errors++;
		pthread_mutex_unlock(&r->lock);
		job->done(job->arg, &res);
		free(job);
	}
}

/*
 * Test-only fault injection.  The hook may sleep or scribble, so it runs
 * without the lock, on copies of the piece fields taken under it.
 */
static void run_hook(struct ec_uring *r, struct io_uring_cqe **cqes,
		     int *res, unsigned int n)
{
	struct ec_uring_fault_ctx ctx[CQE_BATCH];
	ec_uring_fault_fn *hook;
	void *arg;
	unsigned int i;

	pthread_mutex_lock(&r->lock);
	hook = r->hook;
	arg = r->hook_arg;
	for (i = 0; i < n; i++) {
		struct ec_uring_piece *pc = io_uring_cqe_get_data(cqes[i]);

		if (!pc)
			continue;
		ctx[i].path = r->rf[pc->fd_index].path;
		ctx[i].file = pc->fd_index;
		ctx[i].offset = pc->offset;
		ctx[i].length = pc->length;
		ctx[i].buf = pc->dst;
	}
	pthread_mutex_unlock(&r->lock);
	for (i = 0; hook && i < n; i++)
		if (io_uring_cqe_get_data(cqes[i]))
			res[i] = hook(arg, &ctx[i], res[i]);
}

void *ec_uring_completion_thread(void *arg)
{
	struct ec_uring *r = arg;
	struct io_uring_cqe *cqes[CQE_BATCH];
	int res[CQE_BATCH];
	bool stop_seen = false;

	for (;;) {
		struct ec_uring_job *done_list = NULL;
		struct io_uring_cqe *cqe;
		unsigned int n, i;
		bool exit_now;
		int ret;

		ret = io_uring_wait_cqe(&r->ring, &cqe);
		if (ret < 0) {
			if (ret != -EINTR && ret != -EAGAIN)
				sched_yield();
			continue;
		}
		n = io_uring_peek_batch_cqe(&r->ring, cqes, CQE_BATCH);
		for (i = 0; i < n; i++)
			res[i] = cqes[i]->res;
		if (__atomic_load_n(&r->hook, __ATOMIC_ACQUIRE))
			run_hook(r, cqes, res, n);
		pthread_mutex_lock(&r->lock);
		for (i = 0; i < n; i++) {
			struct ec_uring_piece *pc = io_uring_cqe_get_data(
				cqes[i]);

			if (!pc)
				stop_seen = true;	/* the NOP from free */
			else
				complete_piece(r, pc, res[i], &done_list);
		}
		io_uring_cq_advance(&r->ring, n);
		pump(r, false);
		pthread_mutex_unlock(&r->lock);
		ec_uring_run_callbacks(r, done_list);
		pthread_mutex_lock(&r->lock);
		pump(r, true);
		exit_now = stop_seen && r->inflight == 0;
		pthread_mutex_unlock(&r->lock);
		if (exit_now)
			return NULL;
	}
}

static int check_seg(const struct ec_uring *r, const struct ec_uring_seg *s)
{
	bool direct;
	uint32_t k;

	if (s->file >= r->n_files)
		return ec_err(-EC_EINVAL, "reader: file %u of %u", s->file,
			      r->n_files);
	if (!s->length || s->need > s->length ||
	    s->offset > (uint64_t)INT64_MAX - s->length)
		return ec_err(-EC_EINVAL, "reader: bad range %llu+%llu",
			      (unsigned long long)s->offset,
			      (unsigned long long)s->length);
	direct = false;
	for (k = 0; k < r->n_rep[s->file]; k++)
		direct |= r->rf[r->first[s->file] + k].direct;
	if (direct && ((s->offset | s->length | (uintptr_t)s->dst) &
		       (EC_IO_ALIGN - 1)))
		return ec_err(-EC_EINVAL, "reader: O_DIRECT read of %llu "
			      "bytes at offset %llu into %p is not %u-byte "
			      "aligned", (unsigned long long)s->length,
			      (unsigned long long)s->offset, s->dst,
			      EC_IO_ALIGN);
	return 0;
}

int ec_uring_read(struct ec_uring *r, const struct ec_uring_seg *segs,
		  uint32_t n_segs, uint32_t stripe, ec_uring_done_fn *done,
		  void *arg)
{
	struct ec_uring_job *job;
	uint64_t n_pieces = 0, off;
	uint32_t i, k = 0;
	int ret;

	for (i = 0; i < n_segs; i++) {
		ret = check_seg(r, &segs[i]);
		if (ret < 0)
			return ret;
		n_pieces += (segs[i].length + r->p.max_request - 1) /
			    r->p.max_request;
	}
	if (!n_pieces || n_pieces > UINT32_MAX)
		return ec_err(-EC_EINVAL, "reader: nothing to read");
	job = calloc(1, sizeof(*job) + n_pieces * sizeof(job->pieces[0]));
	if (!job)
		return ec_err(-ENOMEM, "out of memory");
	job->done = done;
	job->arg = arg;
	job->remaining = (uint32_t)n_pieces;
	for (i = 0; i < n_segs; i++) {
		const struct ec_uring_seg *s = &segs[i];
		uint32_t fi = r->first[s->file] + stripe % r->n_rep[s->file];

		for (off = 0; off < s->length; off += r->p.max_request) {
			struct ec_uring_piece *pc = &job->pieces[k++];
			uint64_t len = s->length - off;

			if (len > r->p.max_request)
				len = r->p.max_request;
			pc->job = job;
			pc->fd_index = fi;
			pc->offset = s->offset + off;
			pc->length = len;
			pc->need = s->need > off ? s->need - off : 0;
			if (pc->need > len)
				pc->need = len;
			pc->dst = (uint8_t *)s->dst + off;
			pc->next = k < n_pieces ? &job->pieces[k] : NULL;
		}
	}
	pthread_mutex_lock(&r->lock);
	if (r->stopping) {
		pthread_mutex_unlock(&r->lock);
		free(job);
		return ec_err(-ECANCELED, "reader: shutting down");
	}
	job->t0 = ec_now_ns();
	if (r->pend_tail)
		r->pend_tail->next = &job->pieces[0];
	else
		r->pend_head = &job->pieces[0];
	r->pend_tail = &job->pieces[n_pieces - 1];
	/* from a callback: the completion thread submits after the batch */
	pump(r, !(r->thread_ok && pthread_equal(pthread_self(), r->thread)));
	pthread_mutex_unlock(&r->lock);
	return 0;
}
