// SPDX-License-Identifier: MIT
/* io_uring reader set-up and teardown: files, ring, thread, buffers. */
#define _GNU_SOURCE
#include <errno.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ec_error.h"
#include "storage_internal.h"
#include "uring_internal.h"

#define MAX_REQUEST_CAP (64u << 20)	/* a CQE result is an int */

static int ring_init(struct ec_uring *r)
{
	struct io_uring_params ip = { 0 };
	int ret;

	if (r->p.sqpoll) {
		ip.flags = IORING_SETUP_SQPOLL;
		ip.sq_thread_idle = 50;	/* ms before the poller sleeps */
		ret = io_uring_queue_init_params(r->p.queue_depth, &r->ring,
						 &ip);
		if (ret == 0) {
			r->info.sqpoll = true;
			return 0;
		}
		ec_uring_add_notice(r, "SQPOLL refused (%s), using a normal "
				    "ring", strerror(-ret));
		memset(&ip, 0, sizeof(ip));
	}
	ret = io_uring_queue_init_params(r->p.queue_depth, &r->ring, &ip);
	if (ret < 0)
		return ec_err(ret, "io_uring_queue_init(%u): %s%s",
			      r->p.queue_depth, strerror(-ret),
			      ret == -EPERM ? " (io_uring disabled by "
			      "kernel.io_uring_disabled?)" : "");
	return 0;
}

int ec_uring_create(const struct ec_uring_params *p,
		    const struct ec_uring_file *files, uint32_t n_files,
		    struct ec_uring **out)
{
	struct ec_uring *r;
	int *fds = NULL, ret;
	uint32_t i;

	*out = NULL;
	if (!n_files)
		return ec_err(-EC_EINVAL, "reader: no files");
	r = calloc(1, sizeof(*r));
	if (!r)
		return ec_err(-ENOMEM, "out of memory");
	pthread_mutex_init(&r->lock, NULL);
	r->p = *p;
	if (!r->p.queue_depth)
		r->p.queue_depth = 64;
	if (r->p.queue_depth > 4096)
		r->p.queue_depth = 4096;
	if (!r->p.max_request)
		r->p.max_request = 1u << 20;
	if (r->p.max_request > MAX_REQUEST_CAP)
		r->p.max_request = MAX_REQUEST_CAP;
	r->p.max_request = (uint32_t)ec_align_down(r->p.max_request,
						   EC_IO_ALIGN);
	if (!r->p.max_request)
		r->p.max_request = EC_IO_ALIGN;
	r->info.notice = r->notice;
	r->info.queue_depth = r->p.queue_depth;
	r->info.max_request = r->p.max_request;

	ret = ec_uring_open_files(r, files, n_files);
	if (ret < 0)
		goto err;
	ret = ring_init(r);
	if (ret < 0)
		goto err;
	r->ring_ok = true;
	if (!p->no_fixed_files) {
		fds = malloc(r->n_rf * sizeof(*fds));
		if (!fds) {
			ret = ec_err(-ENOMEM, "out of memory");
			goto err;
		}
		for (i = 0; i < r->n_rf; i++)
			fds[i] = r->rf[i].fd;
		ret = io_uring_register_files(&r->ring, fds, r->n_rf);
		free(fds);
		if (ret == 0)
			r->fixed_files = true;
		else
			ec_uring_add_notice(r, "fixed files refused (%s)",
					    strerror(-ret));
	}
	r->info.fixed_files = r->fixed_files;
	ret = pthread_create(&r->thread, NULL, ec_uring_completion_thread,
			     r);
	if (ret) {
		ret = ec_err(-ret, "reader: cannot start the completion "
			     "thread: %s", strerror(ret));
		goto err;
	}
	r->thread_ok = true;
	*out = r;
	return 0;
err:
	ec_uring_free(r);
	return ret;
}

void ec_uring_free(struct ec_uring *r)
{
	struct ec_uring_job *done_list = NULL;
	struct io_uring_sqe *sqe;

	if (!r)
		return;
	if (r->thread_ok) {
		pthread_mutex_lock(&r->lock);
		r->stopping = true;
		ec_uring_cancel_pending(r, &done_list);
		while (!(sqe = io_uring_get_sqe(&r->ring))) {
			io_uring_submit(&r->ring);
			sched_yield();
		}
		io_uring_prep_nop(sqe);
		io_uring_sqe_set_data(sqe, NULL);
		io_uring_submit(&r->ring);
		r->unsubmitted = 0;
		pthread_mutex_unlock(&r->lock);
		ec_uring_run_callbacks(r, done_list);
		pthread_join(r->thread, NULL);
	}
	if (r->ring_ok)
		io_uring_queue_exit(&r->ring);
	ec_uring_close_files(r);
	free(r->bufs);
	pthread_mutex_destroy(&r->lock);
	free(r);
}

int ec_uring_register_buffers(struct ec_uring *r, const struct iovec *iov,
			      unsigned int n)
{
	int ret;

	if (r->n_bufs)
		return ec_err(-EC_EINVAL, "reader: buffers already "
			      "registered");
	ret = io_uring_register_buffers(&r->ring, iov, n);
	if (ret < 0) {
		ec_uring_add_notice(r, "registered buffers refused (%s%s), "
				    "using plain reads", strerror(-ret),
				    ret == -ENOMEM ? ": over RLIMIT_MEMLOCK?"
						   : "");
		return ec_err(ret, "io_uring_register_buffers (%u regions): "
			      "%s", n, strerror(-ret));
	}
	r->bufs = malloc(n * sizeof(*iov));
	if (!r->bufs) {
		io_uring_unregister_buffers(&r->ring);
		return ec_err(-ENOMEM, "out of memory");
	}
	memcpy(r->bufs, iov, n * sizeof(*iov));
	r->n_bufs = n;
	r->info.fixed_buffers = true;
	return 0;
}

void ec_uring_get_info(const struct ec_uring *r, struct ec_uring_info *out)
{
	*out = r->info;
}

void ec_uring_get_stats(struct ec_uring *r, struct ec_uring_stats *out)
{
	pthread_mutex_lock(&r->lock);
	*out = r->stats;
	pthread_mutex_unlock(&r->lock);
}

void ec_uring_set_fault_hook(struct ec_uring *r, ec_uring_fault_fn *hook,
			     void *arg)
{
	pthread_mutex_lock(&r->lock);
	r->hook_arg = arg;
	__atomic_store_n(&r->hook, hook, __ATOMIC_RELEASE);
	pthread_mutex_unlock(&r->lock);
}
