// SPDX-License-Identifier: MIT
/* GGUF parser: checks every count, length and offset of a file image. */
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ec_error.h"
#include "ec_gguf.h"

#if __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
#error "the GGUF reader assumes a little-endian host"
#endif

#define GGUF_MIN_KV_BYTES 13	 /* key length, value type, one u8 */
#define GGUF_MIN_TENSOR_BYTES 24 /* name length, n_dims, type, offset */
#define GGUF_MAX_VERSION 3
#define GGUF_MSG_NAME 80	 /* how much of a raw name goes in a message */

static const char *const gguf_type_names[EC_GGUF_NTYPES] = {
	"u8",  "i8",   "u16",    "i16",   "u32", "i32", "f32",
	"bool", "string", "array", "u64", "i64", "f64",
};

static const uint8_t gguf_type_sizes[EC_GGUF_NTYPES] = {
	1, 1, 2, 2, 4, 4, 4, 1, 0, 0, 8, 8, 8,
};

/* ggml's type ids, including the ones we cannot compute with. */
static const char *const ggml_type_names[] = {
	[0] = "F32",	  [1] = "F16",	    [2] = "Q4_0",    [3] = "Q4_1",
	[6] = "Q5_0",	  [7] = "Q5_1",	    [8] = "Q8_0",    [9] = "Q8_1",
	[10] = "Q2_K",	  [11] = "Q3_K",    [12] = "Q4_K",   [13] = "Q5_K",
	[14] = "Q6_K",	  [15] = "Q8_K",    [16] = "IQ2_XXS", [17] = "IQ2_XS",
	[18] = "IQ3_XXS", [19] = "IQ1_S",   [20] = "IQ4_NL", [21] = "IQ3_S",
	[22] = "IQ2_S",	  [23] = "IQ4_XS",  [24] = "I8",     [25] = "I16",
	[26] = "I32",	  [27] = "I64",	    [28] = "F64",    [29] = "IQ1_M",
	[30] = "BF16",	  [34] = "TQ1_0",   [35] = "TQ2_0",  [39] = "MXFP4",
	[40] = "NVFP4",	  [41] = "Q1_0",
};

const char *ec_gguf_type_name(uint32_t type)
{
	return type < EC_GGUF_NTYPES ? gguf_type_names[type] : "?";
}

uint32_t ec_gguf_type_size(uint32_t type)
{
	return type < EC_GGUF_NTYPES ? gguf_type_sizes[type] : 0;
}

const char *ec_gguf_ggml_type_name(uint32_t type)
{
	size_t n = sizeof(ggml_type_names) / sizeof(ggml_type_names[0]);

	if (type < n && ggml_type_names[type])
		return ggml_type_names[type];
	return "unknown";
}

/* A cursor over the image; `file` names it in messages. */
struct gguf_reader {
	const uint8_t *p;
	uint64_t size;
	uint64_t pos;
	const char *file;
};

__attribute__((format(printf, 4, 5)))
static int gguf_fail(const struct gguf_reader *r, int err, uint64_t off,
		     const char *fmt, ...)
{
	char msg[512];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	return ec_err(err, "%s: byte %" PRIu64 ": %s", r->file, off, msg);
}

static uint64_t rd_left(const struct gguf_reader *r)
{
	return r->size - r->pos;
}

static int rd_bytes(struct gguf_reader *r, uint64_t n, const uint8_t **out,
		    const char *what, const char *field)
{
	if (n > rd_left(r))
		return gguf_fail(r, -EC_EFORMAT, r->pos,
				 "%s: %s needs %" PRIu64 " bytes, %" PRIu64
				 " left (truncated file?)",
				 what, field, n, rd_left(r));
	*out = r->p + r->pos;
	r->pos += n;
	return 0;
}

static int rd_u32(struct gguf_reader *r, uint32_t *v, const char *what,
		  const char *field)
{
	const uint8_t *b = NULL;
	int ret = rd_bytes(r, sizeof(*v), &b, what, field);

	if (!ret)
		memcpy(v, b, sizeof(*v));
	return ret;
}

static int rd_u64(struct gguf_reader *r, uint64_t *v, const char *what,
		  const char *field)
{
	const uint8_t *b = NULL;
	int ret = rd_bytes(r, sizeof(*v), &b, what, field);

	if (!ret)
		memcpy(v, b, sizeof(*v));
	return ret;
}

/* A length-prefixed string; *s points into the image. */
static int rd_str(struct gguf_reader *r, const char **s, uint64_t *len,
		  const char *what, const char *field)
{
	uint64_t start = r->pos;
	const uint8_t *b = NULL;
	int ret;

	ret = rd_u64(r, len, what, field);
	if (ret)
		return ret;
	if (*len > rd_left(r))
		return gguf_fail(r, -EC_EFORMAT, start,
				 "%s: %s length %" PRIu64
				 " exceeds the %" PRIu64 " bytes left",
				 what, field, *len, rd_left(r));
	ret = rd_bytes(r, *len, &b, what, field);
	*s = (const char *)b;
	return ret;
}

static int gguf_parse_value(struct gguf_reader *r, struct ec_gguf_kv *kv,
			    const char *what)
{
	uint64_t start = r->pos, i, esz;
	const char *s;
	uint64_t len;
	int ret;

	if (kv->elem_type == EC_GGUF_STRING) {
		if (kv->count > rd_left(r) / sizeof(uint64_t))
			return gguf_fail(r, -EC_EFORMAT, r->pos,
					 "%s: %" PRIu64 " strings cannot fit in"
					 " the %" PRIu64 " bytes left",
					 what, kv->count, rd_left(r));
		if (kv->type == EC_GGUF_ARRAY && kv->count) {
			kv->str_off = malloc(kv->count * sizeof(uint64_t));
			if (!kv->str_off)
				return -ENOMEM;
		}
		for (i = 0; i < kv->count; i++) {
			if (kv->str_off)
				kv->str_off[i] = r->pos - start;
			ret = rd_str(r, &s, &len, what, "string");
			if (ret)
				return ret;
		}
	} else {
		esz = gguf_type_sizes[kv->elem_type];
		if (kv->count > rd_left(r) / esz)
			return gguf_fail(r, -EC_EFORMAT, r->pos,
					 "%s: %" PRIu64 " values of type %s"
					 " cannot fit in the %" PRIu64
					 " bytes left",
					 what, kv->count,
					 gguf_type_names[kv->elem_type],
					 rd_left(r));
		r->pos += kv->count * esz;
	}
	kv->val = r->p + start;
	kv->val_size = r->pos - start;
	return 0;
}

static int gguf_parse_kv(struct gguf_reader *r, struct ec_gguf_kv *kv,
			 uint64_t idx)
{
	uint64_t key_at = r->pos, type_at;
	char what[128];
	uint32_t type;
	int ret;

	snprintf(what, sizeof(what), "key #%" PRIu64, idx);
	ret = rd_str(r, &kv->key, &kv->key_len, what, "name");
	if (ret)
		return ret;
	if (memchr(kv->key, 0, kv->key_len))
		return gguf_fail(r, -EC_EFORMAT, key_at,
				 "%s: name contains a NUL byte", what);
	snprintf(what, sizeof(what), "key '%.*s'",
		 (int)(kv->key_len < GGUF_MSG_NAME ? kv->key_len
						   : GGUF_MSG_NAME),
		 kv->key);

	type_at = r->pos;
	ret = rd_u32(r, &type, what, "value type");
	if (ret)
		return ret;
	if (type >= EC_GGUF_NTYPES)
		return gguf_fail(r, -EC_EFORMAT, type_at,
				 "%s: invalid value type %" PRIu32, what, type);
	kv->type = type;
	kv->elem_type = type;
	kv->count = 1;
	if (type == EC_GGUF_ARRAY) {
		type_at = r->pos;
		ret = rd_u32(r, &kv->elem_type, what, "array element type");
		if (!ret)
			ret = rd_u64(r, &kv->count, what, "array length");
		if (ret)
			return ret;
		if (kv->elem_type == EC_GGUF_ARRAY)
			return gguf_fail(r, -EC_EUNSUPPORTED, type_at,
					 "%s: nested arrays are not supported",
					 what);
		if (kv->elem_type >= EC_GGUF_NTYPES)
			return gguf_fail(r, -EC_EFORMAT, type_at,
					 "%s: invalid array element type %"
					 PRIu32, what, kv->elem_type);
	}
	return gguf_parse_value(r, kv, what);
}

static int gguf_parse_dims(struct gguf_reader *r, struct ec_gguf_tensor *t,
			   const char *what)
{
	uint64_t at = r->pos, nelem = 1;
	uint32_t j;
	int ret;

	ret = rd_u32(r, &t->n_dims, what, "n_dims");
	if (ret)
		return ret;
	if (t->n_dims > EC_MAX_DIMS)
		return gguf_fail(r, -EC_EFORMAT, at,
				 "%s: n_dims %" PRIu32 " > %d", what,
				 t->n_dims, EC_MAX_DIMS);
	for (j = 0; j < EC_MAX_DIMS; j++) {
		t->ne[j] = 1;
		if (j >= t->n_dims)
			continue;
		at = r->pos;
		ret = rd_u64(r, &t->ne[j], what, "dimension");
		if (ret)
			return ret;
		if (t->ne[j] == 0 || t->ne[j] > INT64_MAX)
			return gguf_fail(r, -EC_EFORMAT, at,
					 "%s: dimension %" PRIu32
					 " has invalid size %" PRIu64,
					 what, j, t->ne[j]);
		if (nelem > INT64_MAX / t->ne[j])
			return gguf_fail(r, -EC_EFORMAT, at,
					 "%s: element count overflows at"
					 " dimension %" PRIu32, what, j);
		nelem *= t->ne[j];
	}
	return 0;
}

static int gguf_parse_tensor(struct gguf_reader *r, struct ec_gguf_tensor *t,
			     uint64_t idx, uint32_t alignment)
{
	const struct ec_dtype_info *info;
	uint64_t at = r->pos, len, nelem;
	const char *name;
	char what[128];
	int ret;

	snprintf(what, sizeof(what), "tensor #%" PRIu64, idx);
	ret = rd_str(r, &name, &len, what, "name");
	if (ret)
		return ret;
	if (len >= EC_GGUF_MAX_NAME)
		return gguf_fail(r, -EC_EFORMAT, at,
				 "%s: name is %" PRIu64
				 " bytes, must be under %d",
				 what, len, EC_GGUF_MAX_NAME);
	if (memchr(name, 0, len))
		return gguf_fail(r, -EC_EFORMAT, at,
				 "%s: name contains a NUL byte", what);
	memcpy(t->name, name, len);
	t->name[len] = '\0';
	snprintf(what, sizeof(what), "tensor '%s'", t->name);

	ret = gguf_parse_dims(r, t, what);
	if (ret)
		return ret;

	at = r->pos;
	ret = rd_u32(r, &t->type, what, "type");
	if (ret)
		return ret;
	info = ec_dtype_info(t->type);
	if (!info)
		return gguf_fail(r, -EC_EUNSUPPORTED, at,
				 "%s: tensor type %" PRIu32
				 " (%s) is not supported",
				 what, t->type,
				 ec_gguf_ggml_type_name(t->type));
	if (t->ne[0] % info->block_elems)
		return gguf_fail(r, -EC_EFORMAT, at,
				 "%s: row of %" PRIu64 " elements is not a"
				 " multiple of the %s block (%" PRIu32 ")",
				 what, t->ne[0], info->name,
				 info->block_elems);
	nelem = t->ne[0] * t->ne[1] * t->ne[2] * t->ne[3];
	t->nbytes = ec_dtype_bytes((enum ec_dtype)t->type, nelem);
	if (!t->nbytes)
		return gguf_fail(r, -EC_EFORMAT, at,
				 "%s: byte size of %" PRIu64
				 " %s elements overflows",
				 what, nelem, info->name);

	at = r->pos;
	ret = rd_u64(r, &t->offset, what, "data offset");
	if (ret)
		return ret;
	if (t->offset % alignment)
		return gguf_fail(r, -EC_EFORMAT, at,
				 "%s: data offset %" PRIu64
				 " is not a multiple of the alignment %" PRIu32,
				 what, t->offset, alignment);
	return 0;
}

/* Open-addressing table of index + 1, keyed by kv or tensor name. */
static uint64_t gguf_hash(const char *s)
{
	uint64_t h = 0xcbf29ce484222325ull;

	while (*s)
		h = (h ^ (uint8_t)*s++) * 0x100000001b3ull;
	return h;
}

static const char *gguf_name_at(const struct ec_gguf *g, bool tensor,
				uint64_t i)
{
	return tensor ? g->tensors[i].name : g->kv[i].key;
}

/* Index of `name`, or -1.  With insert = i, adds i when absent. */
static int64_t gguf_hash_probe(const struct ec_gguf *g, bool tensor,
			       const char *name, int64_t insert)
{
	uint64_t *tab = tensor ? g->tensor_hash : g->kv_hash;
	uint64_t mask = tensor ? g->tensor_hash_mask : g->kv_hash_mask;
	uint64_t h;

	if (!tab)
		return -1;
	for (h = gguf_hash(name) & mask; tab[h]; h = (h + 1) & mask)
		if (!strcmp(gguf_name_at(g, tensor, tab[h] - 1), name))
			return (int64_t)(tab[h] - 1);
	if (insert >= 0)
		tab[h] = (uint64_t)insert + 1;
	return -1;
}

static int gguf_hash_alloc(uint64_t n, uint64_t **tab, uint64_t *mask)
{
	uint64_t cap = 16;

	while (cap < 2 * n)
		cap *= 2;
	*tab = calloc(cap, sizeof(uint64_t));
	if (!*tab)
		return -ENOMEM;
	*mask = cap - 1;
	return 0;
}

/* Copy the keys NUL-terminated, index them, reject duplicates. */
static int gguf_index_keys(struct gguf_reader *r, struct ec_gguf *g)
{
	uint64_t i, total = 0;
	char *p;
	int ret;

	for (i = 0; i < g->n_kv; i++)
		total += g->kv[i].key_len + 1;	/* <= file size */
	g->key_arena = malloc(total ? total : 1);
	if (!g->key_arena)
		return -ENOMEM;
	p = g->key_arena;
	for (i = 0; i < g->n_kv; i++) {
		memcpy(p, g->kv[i].key, g->kv[i].key_len);
		p[g->kv[i].key_len] = '\0';
		g->kv[i].key = p;
		p += g->kv[i].key_len + 1;
	}
	ret = gguf_hash_alloc(g->n_kv, &g->kv_hash, &g->kv_hash_mask);
	if (ret)
		return ret;
	for (i = 0; i < g->n_kv; i++)
		if (gguf_hash_probe(g, false, g->kv[i].key, i) >= 0)
			return gguf_fail(r, -EC_EFORMAT,
					 (uint64_t)(g->kv[i].val - r->p),
					 "duplicate key '%.*s'", GGUF_MSG_NAME,
					 g->kv[i].key);
	return 0;
}

static int gguf_alignment(struct ec_gguf *g)
{
	uint32_t a = EC_GGUF_DEFAULT_ALIGNMENT;
	int ret;

	ret = ec_gguf_get_u32(g, "general.alignment", &a);
	if (ret && ret != -EC_EMISSING)
		return ret;
	if (!a || (a & (a - 1)))
		return ec_err(-EC_EFORMAT,
			      "%s: general.alignment %" PRIu32
			      " is not a power of two", g->filename, a);
	g->alignment = a;
	return 0;
}

struct gguf_span {
	uint64_t start, end, idx;
};

static int gguf_span_cmp(const void *a, const void *b)
{
	const struct gguf_span *x = a, *y = b;

	return x->start < y->start ? -1 : x->start > y->start;
}

/* Every tensor's data lies inside the file and no two overlap. */
static int gguf_check_data(struct gguf_reader *r, struct ec_gguf *g)
{
	uint64_t room, i;
	struct gguf_span *s;
	int ret = 0;

	if (!g->n_tensors)
		return 0;
	if (g->data_offset > g->size)
		return gguf_fail(r, -EC_EFORMAT, g->size,
				 "tensor data section starts at %" PRIu64
				 ", past the end of the file",
				 g->data_offset);
	room = g->size - g->data_offset;
	s = malloc(g->n_tensors * sizeof(*s));
	if (!s)
		return -ENOMEM;
	for (i = 0; i < g->n_tensors; i++) {
		const struct ec_gguf_tensor *t = &g->tensors[i];

		if (t->offset > room || t->nbytes > room - t->offset) {
			ret = gguf_fail(r, -EC_EFORMAT, g->data_offset,
					"tensor '%s': data [%" PRIu64 ", +%"
					PRIu64 ") of the data section runs"
					" past the end of the file (%" PRIu64
					" bytes of data)", t->name, t->offset,
					t->nbytes, room);
			goto out;
		}
		s[i].start = t->offset;
		s[i].end = t->offset + t->nbytes;
		s[i].idx = i;
	}
	qsort(s, g->n_tensors, sizeof(*s), gguf_span_cmp);
	for (i = 1; i < g->n_tensors; i++) {
		if (s[i].start < s[i - 1].end) {
			ret = gguf_fail(r, -EC_EFORMAT,
					g->data_offset + s[i].start,
					"tensor '%s' overlaps tensor '%s'",
					g->tensors[s[i].idx].name,
					g->tensors[s[i - 1].idx].name);
			goto out;
		}
	}
out:
	free(s);
	return ret;
}

static int gguf_parse_header(struct gguf_reader *r, struct ec_gguf *g)
{
	uint64_t at;
	int ret;

	if (r->size < 4 || memcmp(r->p, "GGUF", 4))
		return gguf_fail(r, -EC_EFORMAT, 0,
				 "bad magic, not a GGUF file");
	r->pos = 4;
	ret = rd_u32(r, &g->version, "header", "version");
	if (ret)
		return ret;
	if (g->version && !(g->version & 0xffff))
		return gguf_fail(r, -EC_EUNSUPPORTED, 4,
				 "version 0x%08" PRIx32 ": a big-endian file?",
				 g->version);
	if (g->version < 2 || g->version > GGUF_MAX_VERSION)
		return gguf_fail(r, g->version ? -EC_EUNSUPPORTED : -EC_EFORMAT,
				 4, "GGUF version %" PRIu32
				 " is not supported (2 and 3 are)", g->version);
	at = r->pos;
	ret = rd_u64(r, &g->n_tensors, "header", "tensor count");
	if (!ret)
		ret = rd_u64(r, &g->n_kv, "header", "key count");
	if (ret)
		return ret;
	/* Each entry takes some bytes: bound the counts before allocating. */
	if (g->n_tensors > rd_left(r) / GGUF_MIN_TENSOR_BYTES ||
	    g->n_kv > rd_left(r) / GGUF_MIN_KV_BYTES ||
	    g->n_tensors * GGUF_MIN_TENSOR_BYTES +
			    g->n_kv * GGUF_MIN_KV_BYTES > rd_left(r))
		return gguf_fail(r, -EC_EFORMAT, at,
				 "%" PRIu64 " tensors and %" PRIu64
				 " keys cannot fit in the %" PRIu64
				 " bytes left", g->n_tensors, g->n_kv,
				 rd_left(r));
	return 0;
}

static int gguf_parse(struct gguf_reader *r, struct ec_gguf *g)
{
	uint64_t i;
	int ret;

	ret = gguf_parse_header(r, g);
	if (ret)
		return ret;
	g->kv = calloc(g->n_kv ? g->n_kv : 1, sizeof(*g->kv));
	g->tensors = calloc(g->n_tensors ? g->n_tensors : 1,
			    sizeof(*g->tensors));
	if (!g->kv || !g->tensors)
		return -ENOMEM;
	for (i = 0; i < g->n_kv; i++) {
		ret = gguf_parse_kv(r, &g->kv[i], i);
		if (ret)
			return ret;
	}
	ret = gguf_index_keys(r, g);
	if (!ret)
		ret = gguf_alignment(g);
	if (ret)
		return ret;

	ret = gguf_hash_alloc(g->n_tensors, &g->tensor_hash,
			      &g->tensor_hash_mask);
	if (ret)
		return ret;
	for (i = 0; i < g->n_tensors; i++) {
		uint64_t at = r->pos;

		ret = gguf_parse_tensor(r, &g->tensors[i], i, g->alignment);
		if (ret)
			return ret;
		if (gguf_hash_probe(g, true, g->tensors[i].name, i) >= 0)
			return gguf_fail(r, -EC_EFORMAT, at,
					 "duplicate tensor name '%s'",
					 g->tensors[i].name);
	}

	/* The data section starts at the next multiple of the alignment. */
	g->data_offset = r->pos + (g->alignment - r->pos % g->alignment) %
					  g->alignment;
	return gguf_check_data(r, g);
}

int ec_gguf_parse(const uint8_t *data, uint64_t size, const char *filename,
		  struct ec_gguf **out)
{
	struct gguf_reader r = { .p = data, .size = size };
	struct ec_gguf *g;
	int ret;

	*out = NULL;
	if (!filename)
		filename = "<memory>";
	if (!data && size)
		return ec_err(-EC_EINVAL, "%s: no data", filename);
	g = calloc(1, sizeof(*g));
	if (!g)
		return -ENOMEM;
	g->filename = strdup(filename);
	if (!g->filename) {
		ret = -ENOMEM;
		goto err;
	}
	g->data = data;
	g->size = size;
	g->alignment = EC_GGUF_DEFAULT_ALIGNMENT;
	r.file = g->filename;
	ret = gguf_parse(&r, g);
	if (ret)
		goto err;
	*out = g;
	return 0;
err:
	if (ret == -ENOMEM)
		ec_err(ret, "%s: out of memory parsing GGUF", filename);
	ec_gguf_free(g);
	return ret;
}

void ec_gguf_free(struct ec_gguf *g)
{
	uint64_t i;

	if (!g)
		return;
	for (i = 0; g->kv && i < g->n_kv; i++)
		free(g->kv[i].str_off);
	free(g->kv);
	free(g->tensors);
	free(g->kv_hash);
	free(g->tensor_hash);
	free(g->key_arena);
	free(g->filename);
	free(g);
}

const struct ec_gguf_kv *ec_gguf_find_key(const struct ec_gguf *g,
					  const char *key)
{
	int64_t i = gguf_hash_probe(g, false, key, -1);

	return i < 0 ? NULL : &g->kv[i];
}

const struct ec_gguf_tensor *ec_gguf_find_tensor(const struct ec_gguf *g,
						 const char *name)
{
	int64_t i = gguf_hash_probe(g, true, name, -1);

	return i < 0 ? NULL : &g->tensors[i];
}

struct ec_tensor ec_gguf_tensor_view(const struct ec_gguf *g,
				     const struct ec_gguf_tensor *t,
				     uint32_t file)
{
	struct ec_tensor v = {
		.type = (enum ec_dtype)t->type,
		.n_dims = t->n_dims,
		.nbytes = t->nbytes,
		.file = file,
		.offset = g->data_offset + t->offset,
	};

	memcpy(v.ne, t->ne, sizeof(v.ne));
	v.data = g->data + v.offset;
	return v;
}
