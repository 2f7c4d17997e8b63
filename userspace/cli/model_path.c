// SPDX-License-Identifier: MIT
/* Finding the bundled model when the user gives no -m. */
#include <dirent.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli.h"

static int find_gguf(const char *dir, char *out, size_t n)
{
	struct dirent *de;
	char best[256] = "";
	DIR *d = opendir(dir);

	if (!d)
		return -1;
	while ((de = readdir(d))) {
		size_t len = strlen(de->d_name);

		if (len > 5 && !strcmp(de->d_name + len - 5, ".gguf") &&
		    len < sizeof(best) &&
		    (!*best || strcmp(de->d_name, best) < 0))
			strcpy(best, de->d_name);
	}
	closedir(d);
	if (!*best)
		return -1;
	snprintf(out, n, "%s/%s", dir, best);
	return 0;
}

int ec_cli_default_model(char *out, size_t n)
{
	const char *env = getenv("EXPERTCACHE_MODEL");
	char exe[PATH_MAX], dir[PATH_MAX + 32];
	static const char *const rel[] = { "/../models", "/../../models",
					   "/../share/expertcache/models" };
	ssize_t len;
	size_t i;
	char *slash;

	if (env && *env) {
		snprintf(out, n, "%s", env);
		return 0;
	}
	len = readlink("/proc/self/exe", exe, sizeof(exe) - 1);
	if (len > 0) {
		exe[len] = 0;
		slash = strrchr(exe, '/');
		if (slash)
			*slash = 0;
		for (i = 0; i < sizeof(rel) / sizeof(rel[0]); i++) {
			snprintf(dir, sizeof(dir), "%s%s", exe, rel[i]);
			if (!find_gguf(dir, out, n))
				return 0;
		}
	}
	return find_gguf("models", out, n);
}
