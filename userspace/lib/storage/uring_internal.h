/* SPDX-License-Identifier: MIT */
/* The io_uring reader's private state, shared by its two source files. */
#ifndef EC_URING_INTERNAL_H
#define EC_URING_INTERNAL_H

#include <liburing.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>

#include "ec_storage.h"

struct ec_uring_job;

/* One request: a range of one segment, advanced as bytes arrive. */
struct ec_uring_piece {
	struct ec_uring_piece *next;	/* pending list */
	struct ec_uring_job *job;
	uint32_t fd_index;		/* into ec_uring.rf */
	uint64_t offset, length;	/* still to read */
	uint64_t need;			/* of those, bytes that must exist */
	uint8_t *dst;
	uint32_t retries;		/* consecutive -EAGAIN / no progress */
};

/* One ec_uring_read call. */
struct ec_uring_job {
	ec_uring_done_fn *done;
	void *arg;
	uint32_t remaining;		/* pieces not finished */
	int err;
	uint64_t bytes, t0;
	struct ec_uring_job *next_done;
	char msg[320];
	struct ec_uring_piece pieces[];
};

/* One open replica. */
struct ec_uring_rfile {
	int fd;
	bool direct;
	char *path;
};

struct ec_uring {
	struct io_uring ring;
	bool ring_ok;
	pthread_mutex_t lock;
	pthread_t thread;
	bool thread_ok;
	struct ec_uring_params p;

	uint32_t n_files;
	uint32_t *first;		/* [n_files] index of replica 0 in rf */
	uint32_t *n_rep;		/* [n_files] */
	uint32_t n_rf;
	struct ec_uring_rfile *rf;	/* [n_rf] */
	bool fixed_files;

	struct iovec *bufs;		/* registered buffers */
	unsigned int n_bufs;

	struct ec_uring_piece *pend_head, *pend_tail;
	uint32_t inflight;	/* SQEs prepared and not yet completed */
	uint32_t unsubmitted;	/* of those, not yet handed to the kernel */
	bool stopping;

	ec_uring_fault_fn *hook;
	void *hook_arg;

	struct ec_uring_info info;
	char notice[512];
	struct ec_uring_stats stats;
};

/* uring_reader.c: the I/O path */
void *ec_uring_completion_thread(void *arg);
/* Run (and free) finished jobs' callbacks; no lock held. */
void ec_uring_run_callbacks(struct ec_uring *r, struct ec_uring_job *list);
/* Fail every pending piece with -ECANCELED; r->lock held. */
void ec_uring_cancel_pending(struct ec_uring *r,
			     struct ec_uring_job **done_list);

/* uring_files.c: open every replica (O_DIRECT with fallback). */
int ec_uring_open_files(struct ec_uring *r, const struct ec_uring_file *files,
			uint32_t n_files);
void ec_uring_close_files(struct ec_uring *r);
void ec_uring_add_notice(struct ec_uring *r, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

#endif
