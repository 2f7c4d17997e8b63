/* SPDX-License-Identifier: MIT */
/* Error reporting for libexpertcache: -errno / EC_E* codes plus a message. */
#ifndef EC_ERROR_H
#define EC_ERROR_H

#include <errno.h>

/*
 * Library functions return 0 (or a non-negative count) on success and a
 * negative value on failure: either -errno, or one of the project codes below
 * (all far beyond the errno range).  The failing function records a human
 * readable message, naming the file and the field where it can, which the
 * caller fetches with ec_error_msg().  The message is per thread.
 */
enum {
	EC_EFORMAT = 10000,	/* malformed or truncated file */
	EC_EUNSUPPORTED,	/* valid but unsupported (arch, type, ...) */
	EC_EMISSING,		/* a required tensor or key is absent */
	EC_ESHAPE,		/* a tensor has the wrong shape or type */
	EC_EINVAL,		/* bad argument from the caller */
};

/* Record a message for this thread and return err (for `return ec_err(...)`) */
int ec_err(int err, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

/* Last message recorded on this thread ("" when none). */
const char *ec_error_msg(void);

/* Short name for an error code ("EFORMAT", strerror for errno values). */
const char *ec_error_name(int err);

#endif
