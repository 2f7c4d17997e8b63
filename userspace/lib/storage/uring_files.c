// SPDX-License-Identifier: MIT
/* The reader's files: open replicas with O_DIRECT, or buffered as fallback. */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "ec_error.h"
#include "uring_internal.h"

void ec_uring_add_notice(struct ec_uring *r, const char *fmt, ...)
{
	size_t n = strlen(r->notice);
	va_list ap;

	if (n && n + 2 < sizeof(r->notice)) {
		r->notice[n++] = ';';
		r->notice[n++] = ' ';
		r->notice[n] = 0;
	}
	va_start(ap, fmt);
	vsnprintf(r->notice + n, sizeof(r->notice) - n, fmt, ap);
	va_end(ap);
}

/*
 * Some file systems (tmpfs, some FUSE and network ones) refuse O_DIRECT at
 * open, others only at the first read: probe one aligned block.
 */
static int direct_works(int fd)
{
	void *buf;
	ssize_t n;

	if (posix_memalign(&buf, EC_IO_ALIGN, EC_IO_ALIGN))
		return 1;	/* cannot tell; let reads report */
	n = pread(fd, buf, EC_IO_ALIGN, 0);
	free(buf);
	return !(n < 0 && errno == EINVAL);
}

static int open_one(struct ec_uring *r, struct ec_uring_rfile *f,
		    const char *path)
{
	struct stat st;
	int fd = -1;

	f->fd = -1;
	f->path = strdup(path);
	if (!f->path)
		return ec_err(-ENOMEM, "out of memory");
	if (!r->p.buffered) {
		fd = open(path, O_RDONLY | O_DIRECT | O_CLOEXEC);
		if (fd < 0 && errno != EINVAL)
			return ec_err(-errno, "%s: cannot open: %s", path,
				      strerror(errno));
		if (fd >= 0 && !direct_works(fd)) {
			close(fd);
			fd = -1;
		}
		if (fd < 0)
			ec_uring_add_notice(r, "%s: the file system does not "
					    "support O_DIRECT (tmpfs?), using "
					    "buffered reads", path);
	}
	if (fd < 0) {
		fd = open(path, O_RDONLY | O_CLOEXEC);
		if (fd < 0)
			return ec_err(-errno, "%s: cannot open: %s", path,
				      strerror(errno));
	} else {
		f->direct = true;
	}
	f->fd = fd;
	if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode))
		return ec_err(-EC_EINVAL, "%s: not a regular file", path);
	return 0;
}

int ec_uring_open_files(struct ec_uring *r, const struct ec_uring_file *files,
			uint32_t n_files)
{
	uint32_t i, j, k = 0, total = 0;
	int ret;

	for (i = 0; i < n_files; i++) {
		if (!files[i].n_paths || !files[i].paths)
			return ec_err(-EC_EINVAL, "reader: file %u has no "
				      "path", i);
		total += files[i].n_paths;
	}
	r->n_files = n_files;
	r->first = calloc(n_files, sizeof(*r->first));
	r->n_rep = calloc(n_files, sizeof(*r->n_rep));
	r->rf = calloc(total, sizeof(*r->rf));
	if (!r->first || !r->n_rep || !r->rf)
		return ec_err(-ENOMEM, "out of memory");
	for (i = 0; i < total; i++)
		r->rf[i].fd = -1;
	r->n_rf = total;
	r->info.direct = true;
	for (i = 0; i < n_files; i++) {
		r->first[i] = k;
		r->n_rep[i] = files[i].n_paths;
		for (j = 0; j < files[i].n_paths; j++, k++) {
			ret = open_one(r, &r->rf[k], files[i].paths[j]);
			if (ret < 0)
				return ret;
			if (!r->rf[k].direct)
				r->info.direct = false;
		}
	}
	return 0;
}

void ec_uring_close_files(struct ec_uring *r)
{
	uint32_t i;

	for (i = 0; r->rf && i < r->n_rf; i++) {
		if (r->rf[i].fd >= 0)
			close(r->rf[i].fd);
		free(r->rf[i].path);
	}
	free(r->rf);
	free(r->first);
	free(r->n_rep);
	r->rf = NULL;
	r->first = r->n_rep = NULL;
}
