// SPDX-License-Identifier: MIT
/* Small helpers shared by the CLI commands: errors and list parsing. */
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>

#include "cli.h"
#include "ec_error.h"

void ec_cli_error(const char *what, int err)
{
	const char *msg = ec_error_msg();

	if (msg && *msg)
		fprintf(stderr, "expertcache: %s: %s\n", what, msg);
	else
		fprintf(stderr, "expertcache: %s: %s\n", what,
			ec_error_name(err));
}

int ec_cli_parse_ids(const char *s, int32_t **out, uint32_t *n_out)
{
	uint32_t n = 0, cap = 16;
	int32_t *ids = malloc(cap * sizeof(*ids));
	const char *p = s;

	if (!ids)
		return -ENOMEM;
	while (*p) {
		char *end;
		long v;

		errno = 0;
		v = strtol(p, &end, 10);
		if (end == p || errno || v < 0 || v > INT32_MAX ||
		    (*end && *end != ',')) {
			free(ids);
			return -EINVAL;
		}
		if (n == cap) {
			int32_t *t = realloc(ids, (cap *= 2) * sizeof(*ids));

			if (!t) {
				free(ids);
				return -ENOMEM;
			}
			ids = t;
		}
		ids[n++] = (int32_t)v;
		p = *end ? end + 1 : end;
	}
	if (!n) {
		free(ids);
		return -EINVAL;
	}
	*out = ids;
	*n_out = n;
	return 0;
}

int ec_cli_parse_uint(const char *s, uint32_t *out)
{
	char *end;
	unsigned long v;

	errno = 0;
	v = strtoul(s, &end, 10);
	if (end == s || *end || errno || v > UINT32_MAX || *s == '-')
		return -EINVAL;
	*out = (uint32_t)v;
	return 0;
}
