// SPDX-License-Identifier: MIT
/* safetensors header parser: 8-byte length + JSON header -> tensor views. */
#include <jansson.h>
#include <stdlib.h>
#include <string.h>

#include "ec_error.h"
#include "ec_safetensors.h"

struct st_dtype {
	const char *name;
	uint32_t bits;
	int ec_type;	/* enum ec_dtype; -1: we cannot compute with it */
};

/* Every dtype of the safetensors specification, so any file's tiling checks */
static const struct st_dtype st_dtypes[] = {
	{ "F32", 32, EC_F32 },	   { "F16", 16, EC_F16 },
	{ "BF16", 16, EC_BF16 },   { "BOOL", 8, -1 },
	{ "U8", 8, -1 },	   { "I8", 8, -1 },
	{ "F8_E5M2", 8, -1 },	   { "F8_E4M3", 8, -1 },
	{ "F8_E8M0", 8, -1 },	   { "I16", 16, -1 },
	{ "U16", 16, -1 },	   { "I32", 32, -1 },
	{ "U32", 32, -1 },	   { "F64", 64, -1 },
	{ "I64", 64, -1 },	   { "U64", 64, -1 },
	{ "C64", 64, -1 },	   { "F4", 4, -1 },
	{ "F6_E2M3", 6, -1 },	   { "F6_E3M2", 6, -1 },
};

static const struct st_dtype *st_dtype_find(const char *name)
{
	size_t i;

	for (i = 0; i < sizeof(st_dtypes) / sizeof(st_dtypes[0]); i++)
		if (!strcmp(st_dtypes[i].name, name))
			return &st_dtypes[i];
	return NULL;
}

static uint64_t get_le64(const uint8_t *p)
{
	uint64_t v = 0;
	int i;

	for (i = 7; i >= 0; i--)
		v = v << 8 | p[i];
	return v;
}

/* A JSON integer >= 0 */
static int json_u64(const json_t *v, uint64_t *out)
{
	json_int_t i;

	if (!json_is_integer(v))
		return -1;
	i = json_integer_value(v);
	if (i < 0)
		return -1;
	*out = (uint64_t)i;
	return 0;
}

/*
 * Fill `t` (except name) from the header entry `v` of tensor `name`:
 * `data_size` bytes of tensor data start at absolute offset `data_offset`.
 */
static int parse_tensor(const struct ec_st_file *f, const char *name,
			const json_t *v, uint64_t data_size,
			struct ec_st_tensor *t)
{
	const char *fn = f->filename;
	const struct st_dtype *dt;
	const json_t *jd, *js, *jo;
	uint64_t nelems = 1, dim, nbits, nbytes;
	size_t i, n;

	if (!json_is_object(v))
		return ec_err(-EC_EFORMAT, "%s: tensor '%s': entry is not a "
			      "JSON object", fn, name);
	jd = json_object_get(v, "dtype");
	js = json_object_get(v, "shape");
	jo = json_object_get(v, "data_offsets");
	if (!json_is_string(jd))
		return ec_err(-EC_EFORMAT, "%s: tensor '%s': 'dtype' is %s",
			      fn, name, jd ? "not a string" : "missing");
	if (!json_is_array(js))
		return ec_err(-EC_EFORMAT, "%s: tensor '%s': 'shape' is %s",
			      fn, name, js ? "not an array" : "missing");
	if (!json_is_array(jo) || json_array_size(jo) != 2)
		return ec_err(-EC_EFORMAT, "%s: tensor '%s': 'data_offsets' is "
			      "%s", fn, name,
			      jo ? "not an array [begin, end]" : "missing");
	dt = st_dtype_find(json_string_value(jd));
	if (!dt)
		return ec_err(-EC_EUNSUPPORTED,
			      "%s: tensor '%s': unknown dtype '%s'", fn, name,
			      json_string_value(jd));

	n = json_array_size(js);
	memset(&t->view, 0, sizeof(t->view));
	for (i = 0; i < EC_MAX_DIMS; i++)
		t->view.ne[i] = 1;
	for (i = 0; i < n; i++) {
		if (json_u64(json_array_get(js, i), &dim) < 0)
			return ec_err(-EC_EFORMAT,
				      "%s: tensor '%s': shape[%zu] is not a "
				      "non-negative integer", fn, name, i);
		if (dim && nelems > UINT64_MAX / dim)
			return ec_err(-EC_EFORMAT, "%s: tensor '%s': shape "
				      "element count overflows", fn, name);
		nelems *= dim;
		if (n - 1 - i < EC_MAX_DIMS)
			t->view.ne[n - 1 - i] = dim;
	}
	if (nelems > UINT64_MAX / dt->bits)
		return ec_err(-EC_EFORMAT, "%s: tensor '%s': shape byte size "
			      "overflows", fn, name);
	nbits = nelems * dt->bits;
	if (nbits % 8)
		return ec_err(-EC_EFORMAT, "%s: tensor '%s': %llu elements of "
			      "%s do not fill whole bytes", fn, name,
			      (unsigned long long)nelems, dt->name);
	nbytes = nbits / 8;

	if (json_u64(json_array_get(jo, 0), &t->begin) < 0 ||
	    json_u64(json_array_get(jo, 1), &t->end) < 0)
		return ec_err(-EC_EFORMAT, "%s: tensor '%s': data_offsets are "
			      "not non-negative integers", fn, name);
	if (t->begin > t->end)
		return ec_err(-EC_EFORMAT, "%s: tensor '%s': data_offsets "
			      "[%llu, %llu] end before they begin", fn, name,
			      (unsigned long long)t->begin,
			      (unsigned long long)t->end);
	if (t->end > data_size)
		return ec_err(-EC_EFORMAT, "%s: tensor '%s': data_offsets end "
			      "%llu is past the %llu bytes of tensor data "
			      "(file truncated?)", fn, name,
			      (unsigned long long)t->end,
			      (unsigned long long)data_size);
	if (t->end - t->begin != nbytes)
		return ec_err(-EC_EFORMAT, "%s: tensor '%s': data_offsets "
			      "[%llu, %llu] hold %llu bytes but shape and "
			      "dtype %s need %llu", fn, name,
			      (unsigned long long)t->begin,
			      (unsigned long long)t->end,
			      (unsigned long long)(t->end - t->begin), dt->name,
			      (unsigned long long)nbytes);

	t->dtype = dt->name;
	t->n_dims = n;
	t->supported = dt->ec_type >= 0 && n <= EC_MAX_DIMS;
	if (t->supported) {
		t->view.type = dt->ec_type;
		t->view.n_dims = n;
		t->view.offset = f->data_offset + t->begin;
		t->view.data = f->data + t->view.offset;
		t->view.nbytes = nbytes;
	}
	return 0;
}

static int cmp_offsets(const void *a, const void *b)
{
	const struct ec_st_tensor *x = a, *y = b;

	if (x->begin != y->begin)
		return x->begin < y->begin ? -1 : 1;
	if (x->end != y->end)
		return x->end < y->end ? -1 : 1;
	return 0;
}

static int cmp_names(const void *a, const void *b)
{
	const struct ec_st_tensor *x = a, *y = b;

	return strcmp(x->name, y->name);
}

/* The tensors must cover the data section exactly, in some order. */
static int check_tiling(struct ec_st_file *f, uint64_t data_size)
{
	uint64_t pos = 0;
	uint32_t i;

	qsort(f->tensors, f->n_tensors, sizeof(*f->tensors), cmp_offsets);
	for (i = 0; i < f->n_tensors; i++) {
		const struct ec_st_tensor *t = &f->tensors[i];

		if (t->begin != pos)
			return ec_err(-EC_EFORMAT, "%s: tensor '%s': "
				      "data_offsets [%llu, %llu] %s the "
				      "previous tensor's data, which ends at "
				      "%llu", f->filename, t->name,
				      (unsigned long long)t->begin,
				      (unsigned long long)t->end,
				      t->begin < pos ? "overlap" :
				      "leave a gap after",
				      (unsigned long long)pos);
		pos = t->end;
	}
	if (pos != data_size)
		return ec_err(-EC_EFORMAT, "%s: tensors cover %llu bytes but "
			      "the data section holds %llu", f->filename,
			      (unsigned long long)pos,
			      (unsigned long long)data_size);
	qsort(f->tensors, f->n_tensors, sizeof(*f->tensors), cmp_names);
	return 0;
}

int ec_st_parse_header(const uint8_t *data, uint64_t size,
		       const char *filename, struct ec_st_file **out)
{
	struct ec_st_file *f = NULL;
	json_t *root = NULL;
	json_error_t jerr;
	const char *key;
	json_t *val;
	uint64_t hlen, data_size;
	size_t count;
	int ret;

	*out = NULL;
	if (!filename)
		filename = "(safetensors)";
	if (size < 8)
		return ec_err(-EC_EFORMAT, "%s: %llu bytes is too short for "
			      "the 8-byte header length", filename,
			      (unsigned long long)size);
	hlen = get_le64(data);
	if (hlen > EC_ST_MAX_HEADER)
		return ec_err(-EC_EFORMAT, "%s: header length %llu exceeds "
			      "the %llu byte limit", filename,
			      (unsigned long long)hlen, EC_ST_MAX_HEADER);
	if (hlen > size - 8)
		return ec_err(-EC_EFORMAT, "%s: header length %llu is past the "
			      "end of the %llu byte file", filename,
			      (unsigned long long)hlen,
			      (unsigned long long)size);
	if (hlen == 0 || data[8] != '{')
		return ec_err(-EC_EFORMAT, "%s: header does not start with "
			      "'{'", filename);
	data_size = size - 8 - hlen;

	root = json_loadb((const char *)data + 8, hlen, JSON_REJECT_DUPLICATES,
			  &jerr);
	if (!root)
		return ec_err(-EC_EFORMAT, "%s: header JSON, byte %d: %s",
			      filename, 8 + jerr.position, jerr.text);
	ret = -ENOMEM;
	f = calloc(1, sizeof(*f));
	if (!f)
		goto out;
	f->filename = strdup(filename);
	count = json_object_size(root);
	f->tensors = calloc(count ? count : 1, sizeof(*f->tensors));
	if (!f->filename || !f->tensors)
		goto out;
	f->data = data;
	f->size = size;
	f->header_len = hlen;
	f->data_offset = 8 + hlen;

	if (!json_is_object(root)) {
		ret = ec_err(-EC_EFORMAT, "%s: header is not a JSON object",
			     filename);
		goto out;
	}
	json_object_foreach(root, key, val) {
		struct ec_st_tensor *t = &f->tensors[f->n_tensors];

		if (!strcmp(key, "__metadata__")) {
			if (!json_is_object(val)) {
				ret = ec_err(-EC_EFORMAT, "%s: __metadata__ "
					     "is not a JSON object", filename);
				goto out;
			}
			continue;
		}
		ret = parse_tensor(f, key, val, data_size, t);
		if (ret < 0)
			goto out;
		t->name = strdup(key);
		if (!t->name) {
			ret = -ENOMEM;
			goto out;
		}
		f->n_tensors++;
	}
	ret = check_tiling(f, data_size);
	if (ret < 0)
		goto out;
	*out = f;
	f = NULL;
	ret = 0;
out:
	if (ret == -ENOMEM)
		ec_err(ret, "%s: out of memory parsing the header", filename);
	json_decref(root);
	ec_st_free(f);
	return ret;
}

void ec_st_free(struct ec_st_file *f)
{
	uint32_t i;

	if (!f)
		return;
	for (i = 0; i < f->n_tensors; i++)
		free(f->tensors[i].name);
	free(f->tensors);
	free(f->filename);
	free(f);
}

const struct ec_st_tensor *ec_st_find(const struct ec_st_file *f,
				      const char *name)
{
	struct ec_st_tensor key = { .name = (char *)name };

	if (!f->n_tensors)
		return NULL;
	return bsearch(&key, f->tensors, f->n_tensors, sizeof(*f->tensors),
		       cmp_names);
}

int ec_st_get(const struct ec_st_file *f, const char *name, uint32_t file,
	      struct ec_tensor *out)
{
	const struct ec_st_tensor *t = ec_st_find(f, name);

	if (!t)
		return ec_err(-EC_EMISSING, "%s: tensor '%s' is missing",
			      f->filename, name);
	if (!t->supported) {
		if (st_dtype_find(t->dtype)->ec_type < 0)
			return ec_err(-EC_EUNSUPPORTED, "%s: tensor '%s': "
				      "dtype %s is not supported (F32, F16 "
				      "and BF16 are)", f->filename, name,
				      t->dtype);
		return ec_err(-EC_EUNSUPPORTED, "%s: tensor '%s' has %u "
			      "dimensions, at most %d are supported",
			      f->filename, name, t->n_dims, EC_MAX_DIMS);
	}
	*out = t->view;
	out->file = file;
	return 0;
}
