// SPDX-License-Identifier: MIT
/* Typed access to GGUF metadata values: scalars, strings, array elements. */
#include <inttypes.h>
#include <string.h>

#include "ec_error.h"
#include "ec_gguf.h"

/* Pointer to fixed-size element i of a numeric or bool value. */
static const uint8_t *kv_elem(const struct ec_gguf_kv *kv, uint64_t i)
{
	return kv->val + i * ec_gguf_type_size(kv->elem_type);
}

/* Element i as an integer; false when the type is not an integer type. */
static bool kv_int(const struct ec_gguf_kv *kv, uint64_t i, bool allow_bool,
		   __int128 *out)
{
	const uint8_t *p = kv_elem(kv, i);
	union {
		uint8_t u8;
		int8_t i8;
		uint16_t u16;
		int16_t i16;
		uint32_t u32;
		int32_t i32;
		uint64_t u64;
		int64_t i64;
	} v;

	switch (kv->elem_type) {
	case EC_GGUF_BOOL:
		if (!allow_bool)
			return false;
		/* fall through */
	case EC_GGUF_U8:
		*out = p[0];
		return true;
	case EC_GGUF_I8:
		memcpy(&v.i8, p, 1);
		*out = v.i8;
		return true;
	case EC_GGUF_U16:
		memcpy(&v.u16, p, 2);
		*out = v.u16;
		return true;
	case EC_GGUF_I16:
		memcpy(&v.i16, p, 2);
		*out = v.i16;
		return true;
	case EC_GGUF_U32:
		memcpy(&v.u32, p, 4);
		*out = v.u32;
		return true;
	case EC_GGUF_I32:
		memcpy(&v.i32, p, 4);
		*out = v.i32;
		return true;
	case EC_GGUF_U64:
		memcpy(&v.u64, p, 8);
		*out = v.u64;
		return true;
	case EC_GGUF_I64:
		memcpy(&v.i64, p, 8);
		*out = v.i64;
		return true;
	default:
		return false;
	}
}

/* Element i as a double; false when the type is not numeric. */
static bool kv_num(const struct ec_gguf_kv *kv, uint64_t i, double *out)
{
	const uint8_t *p = kv_elem(kv, i);
	__int128 n;
	float f;

	if (kv->elem_type == EC_GGUF_F32) {
		memcpy(&f, p, sizeof(f));
		*out = f;
		return true;
	}
	if (kv->elem_type == EC_GGUF_F64) {
		memcpy(out, p, sizeof(*out));
		return true;
	}
	if (!kv_int(kv, i, false, &n))
		return false;
	*out = (double)n;
	return true;
}

static int kv_find_scalar(const struct ec_gguf *g, const char *key,
			  const char *want, const struct ec_gguf_kv **kv)
{
	*kv = ec_gguf_find_key(g, key);
	if (!*kv)
		return ec_err(-EC_EMISSING, "%s: key '%s' not found",
			      g->filename, key);
	if ((*kv)->type == EC_GGUF_ARRAY)
		return ec_err(-EC_EFORMAT,
			      "%s: key '%s' is an array of %s, expected %s",
			      g->filename, key,
			      ec_gguf_type_name((*kv)->elem_type), want);
	return 0;
}

/* Any integer key whose value lies in [lo, hi]. */
static int kv_get_int(const struct ec_gguf *g, const char *key, __int128 lo,
		      __int128 hi, const char *want, __int128 *out)
{
	const struct ec_gguf_kv *kv;
	int ret = kv_find_scalar(g, key, want, &kv);

	if (ret)
		return ret;
	if (!kv_int(kv, 0, false, out))
		return ec_err(-EC_EFORMAT,
			      "%s: key '%s' has type %s, expected %s",
			      g->filename, key, ec_gguf_type_name(kv->type),
			      want);
	if (*out < lo || *out > hi)
		return ec_err(-EC_EFORMAT,
			      "%s: key '%s': value %s%" PRIu64
			      " does not fit in %s",
			      g->filename, key, *out < 0 ? "-" : "",
			      (uint64_t)(*out < 0 ? -*out : *out), want);
	return 0;
}

int ec_gguf_get_u32(const struct ec_gguf *g, const char *key, uint32_t *out)
{
	__int128 v;
	int ret = kv_get_int(g, key, 0, UINT32_MAX, "u32", &v);

	if (!ret)
		*out = (uint32_t)v;
	return ret;
}

int ec_gguf_get_i32(const struct ec_gguf *g, const char *key, int32_t *out)
{
	__int128 v;
	int ret = kv_get_int(g, key, INT32_MIN, INT32_MAX, "i32", &v);

	if (!ret)
		*out = (int32_t)v;
	return ret;
}

int ec_gguf_get_u64(const struct ec_gguf *g, const char *key, uint64_t *out)
{
	__int128 v;
	int ret = kv_get_int(g, key, 0, UINT64_MAX, "u64", &v);

	if (!ret)
		*out = (uint64_t)v;
	return ret;
}

int ec_gguf_get_i64(const struct ec_gguf *g, const char *key, int64_t *out)
{
	__int128 v;
	int ret = kv_get_int(g, key, INT64_MIN, INT64_MAX, "i64", &v);

	if (!ret)
		*out = (int64_t)v;
	return ret;
}

int ec_gguf_get_f32(const struct ec_gguf *g, const char *key, float *out)
{
	const struct ec_gguf_kv *kv;
	double d;
	int ret = kv_find_scalar(g, key, "a number", &kv);

	if (ret)
		return ret;
	if (!kv_num(kv, 0, &d))
		return ec_err(-EC_EFORMAT,
			      "%s: key '%s' has type %s, expected a number",
			      g->filename, key, ec_gguf_type_name(kv->type));
	*out = (float)d;
	return 0;
}

int ec_gguf_get_bool(const struct ec_gguf *g, const char *key, bool *out)
{
	const struct ec_gguf_kv *kv;
	__int128 v;
	int ret = kv_find_scalar(g, key, "bool", &kv);

	if (ret)
		return ret;
	if (!kv_int(kv, 0, true, &v) || v < 0 || v > 1)
		return ec_err(-EC_EFORMAT,
			      "%s: key '%s' (%s) is not a bool or 0/1",
			      g->filename, key, ec_gguf_type_name(kv->type));
	*out = v != 0;
	return 0;
}

/* String at byte `off` of kv's value: length prefix, then the bytes. */
static void kv_str_at(const struct ec_gguf_kv *kv, uint64_t off,
		      const char **s, uint64_t *len)
{
	memcpy(len, kv->val + off, sizeof(*len));
	*s = (const char *)kv->val + off + sizeof(*len);
}

int ec_gguf_get_str(const struct ec_gguf *g, const char *key, const char **s,
		    uint64_t *len)
{
	const struct ec_gguf_kv *kv;
	int ret = kv_find_scalar(g, key, "string", &kv);

	if (ret)
		return ret;
	if (kv->type != EC_GGUF_STRING)
		return ec_err(-EC_EFORMAT,
			      "%s: key '%s' has type %s, expected string",
			      g->filename, key, ec_gguf_type_name(kv->type));
	kv_str_at(kv, 0, s, len);
	return 0;
}

int ec_gguf_get_str_copy(const struct ec_gguf *g, const char *key, char *buf,
			 uint64_t bufsz)
{
	const char *s;
	uint64_t len;
	int ret = ec_gguf_get_str(g, key, &s, &len);

	if (ret)
		return ret;
	if (len >= bufsz)
		return ec_err(-EC_EFORMAT,
			      "%s: key '%s': string of %" PRIu64
			      " bytes is too long (at most %" PRIu64 ")",
			      g->filename, key, len, bufsz ? bufsz - 1 : 0);
	memcpy(buf, s, len);
	buf[len] = '\0';
	return 0;
}

int ec_gguf_get_arr(const struct ec_gguf *g, const char *key,
		    uint32_t elem_type, const struct ec_gguf_kv **kv)
{
	*kv = ec_gguf_find_key(g, key);
	if (!*kv)
		return ec_err(-EC_EMISSING, "%s: key '%s' not found",
			      g->filename, key);
	if ((*kv)->type != EC_GGUF_ARRAY)
		return ec_err(-EC_EFORMAT,
			      "%s: key '%s' has type %s, expected an array",
			      g->filename, key, ec_gguf_type_name((*kv)->type));
	if (elem_type != EC_GGUF_NTYPES && (*kv)->elem_type != elem_type)
		return ec_err(-EC_EFORMAT,
			      "%s: key '%s' is an array of %s, expected %s",
			      g->filename, key,
			      ec_gguf_type_name((*kv)->elem_type),
			      ec_gguf_type_name(elem_type));
	return 0;
}

static int kv_check_index(const struct ec_gguf *g, const struct ec_gguf_kv *kv,
			  uint64_t i)
{
	if (kv->type != EC_GGUF_ARRAY)
		return ec_err(-EC_EINVAL, "%s: key '%s' is not an array",
			      g->filename, kv->key);
	if (i >= kv->count)
		return ec_err(-EC_EINVAL,
			      "%s: key '%s': index %" PRIu64
			      " out of range (%" PRIu64 " elements)",
			      g->filename, kv->key, i, kv->count);
	return 0;
}

int ec_gguf_arr_str(const struct ec_gguf *g, const struct ec_gguf_kv *kv,
		    uint64_t i, const char **s, uint64_t *len)
{
	int ret = kv_check_index(g, kv, i);

	if (ret)
		return ret;
	if (kv->elem_type != EC_GGUF_STRING)
		return ec_err(-EC_EFORMAT,
			      "%s: key '%s' is an array of %s, not strings",
			      g->filename, kv->key,
			      ec_gguf_type_name(kv->elem_type));
	kv_str_at(kv, kv->str_off[i], s, len);
	return 0;
}

int ec_gguf_arr_i64(const struct ec_gguf *g, const struct ec_gguf_kv *kv,
		    uint64_t i, int64_t *out)
{
	__int128 v;
	int ret = kv_check_index(g, kv, i);

	if (ret)
		return ret;
	if (!kv_int(kv, i, true, &v))
		return ec_err(-EC_EFORMAT,
			      "%s: key '%s' is an array of %s, not integers",
			      g->filename, kv->key,
			      ec_gguf_type_name(kv->elem_type));
	if (v > INT64_MAX)
		return ec_err(-EC_EFORMAT,
			      "%s: key '%s': element %" PRIu64
			      " does not fit in i64", g->filename, kv->key, i);
	*out = (int64_t)v;
	return 0;
}

int ec_gguf_arr_f64(const struct ec_gguf *g, const struct ec_gguf_kv *kv,
		    uint64_t i, double *out)
{
	int ret = kv_check_index(g, kv, i);

	if (ret)
		return ret;
	if (!kv_num(kv, i, out))
		return ec_err(-EC_EFORMAT,
			      "%s: key '%s' is an array of %s, not numbers",
			      g->filename, kv->key,
			      ec_gguf_type_name(kv->elem_type));
	return 0;
}
