// SPDX-License-Identifier: MIT
/* The header every expertcache JSON file (profile, plan) starts with. */
#include <string.h>

#include "ec_error.h"
#include "storage_internal.h"

int ec_json_file_load(const char *path, const char *format, const char *what,
		      json_t **root_out, uint32_t *n_layer, uint32_t *n_expert)
{
	json_error_t jerr;
	json_int_t nl, ne;
	const char *fmt;
	json_t *root;

	*root_out = NULL;
	root = json_load_file(path, 0, &jerr);
	if (!root)
		return ec_err(-EC_EFORMAT, "%s:%d: %s", path, jerr.line,
			      jerr.text);
	fmt = json_string_value(json_object_get(root, "format"));
	nl = json_integer_value(json_object_get(root, "n_layer"));
	ne = json_integer_value(json_object_get(root, "n_expert"));
	if (!fmt || strcmp(fmt, format) ||
	    json_integer_value(json_object_get(root, "version")) != 1) {
		json_decref(root);
		return ec_err(-EC_EFORMAT, "%s: 'format': not an expertcache "
			      "%s (version 1)", path, what);
	}
	if (nl <= 0 || ne <= 0 || nl > 1024 || ne > 16384) {
		json_decref(root);
		return ec_err(-EC_EFORMAT, "%s: 'n_layer'/'n_expert': %lld x "
			      "%lld out of range", path, (long long)nl,
			      (long long)ne);
	}
	*root_out = root;
	*n_layer = (uint32_t)nl;
	*n_expert = (uint32_t)ne;
	return 0;
}
