// SPDX-License-Identifier: MIT
/* Size and budget strings ("512M", "4G", "25%") shared by every command. */
#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "ec_error.h"
#include "ec_storage.h"

/* Parse a non-negative decimal number (digits, optional fraction). */
static int parse_number(const char *s, double *v, const char **end)
{
	const char *p = s;
	char *e;

	if (!isdigit((unsigned char)*p) && *p != '.')
		return -1;
	errno = 0;
	*v = strtod(p, &e);
	if (e == p || errno || !isfinite(*v) || *v < 0)
		return -1;
	*end = e;
	return 0;
}

static int unit_shift(const char *u, unsigned *shift)
{
	static const char units[] = "KMGTP";
	const char *pos;

	if (!*u) {
		*shift = 0;
		return 0;
	}
	if (!strcasecmp(u, "B")) {
		*shift = 0;
		return 0;
	}
	pos = strchr(units, toupper((unsigned char)u[0]));
	if (!pos)
		return -1;
	*shift = 10 * (unsigned)(pos - units + 1);
	u++;
	if (!*u || !strcasecmp(u, "B") || !strcasecmp(u, "iB"))
		return 0;
	return -1;
}

int ec_parse_size(const char *s, uint64_t *out)
{
	const char *end;
	unsigned shift;
	double v;

	if (!s || parse_number(s, &v, &end) < 0 || unit_shift(end, &shift) < 0)
		return ec_err(-EC_EINVAL,
			      "size '%s': expected a number with an optional "
			      "unit K, M, G or T (binary), e.g. 512M or 1.5G",
			      s ? s : "(null)");
	v = ldexp(v, (int)shift);
	if (v >= 18446744073709551616.0)
		return ec_err(-EC_EINVAL, "size '%s' is too large", s);
	*out = (uint64_t)v;
	return 0;
}

int ec_parse_budget(const char *s, uint64_t total, uint64_t *out)
{
	size_t n = s ? strlen(s) : 0;
	const char *end;
	double v;

	if (n && s[n - 1] == '%') {
		if (parse_number(s, &v, &end) < 0 || end != s + n - 1)
			return ec_err(-EC_EINVAL,
				      "budget '%s': expected a percentage like "
				      "25%% or a size like 4G", s);
		if (v > 100.0)
			return ec_err(-EC_EINVAL,
				      "budget '%s': more than 100%%", s);
		*out = (uint64_t)floor((double)total * v / 100.0);
		return 0;
	}
	if (ec_parse_size(s, out) < 0)
		return ec_err(-EC_EINVAL,
			      "budget '%s': expected a size like 512M or 4G, "
			      "or a percentage of the expert bytes like 25%%",
			      s ? s : "(null)");
	return 0;
}

const char *ec_format_size(uint64_t bytes, char *buf, size_t n)
{
	static const char *const units[] = { "B", "KiB", "MiB", "GiB",
					     "TiB" };
	double v = (double)bytes;
	unsigned u = 0;

	while (v >= 1024.0 && u < 4) {
		v /= 1024.0;
		u++;
	}
	if (u == 0)
		snprintf(buf, n, "%llu B", (unsigned long long)bytes);
	else
		snprintf(buf, n, "%.2f %s", v, units[u]);
	return buf;
}
