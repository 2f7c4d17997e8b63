// SPDX-License-Identifier: MIT
/* Per-thread error messages behind ec_err()/ec_error_msg(). */
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "ec_error.h"

static __thread char ec_msg[1024];

int ec_err(int err, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(ec_msg, sizeof(ec_msg), fmt, ap);
	va_end(ap);
	return err;
}

const char *ec_error_msg(void)
{
	return ec_msg;
}

const char *ec_error_name(int err)
{
	if (err < 0)
		err = -err;
	switch (err) {
	case EC_EFORMAT:
		return "malformed file";
	case EC_EUNSUPPORTED:
		return "unsupported";
	case EC_EMISSING:
		return "missing";
	case EC_ESHAPE:
		return "wrong shape";
	case EC_EINVAL:
		return "invalid argument";
	default:
		return strerror(err);
	}
}
