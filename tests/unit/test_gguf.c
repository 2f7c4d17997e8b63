// SPDX-License-Identifier: MIT
/* GGUF parser: round trip of every value type, then corrupt files. */
#include <dirent.h>
#include <fcntl.h>
#include <math.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "ec_error.h"
#include "ec_gguf.h"
#include "ec_test.h"
#include "gguf_build.h"

#define FILE_NAME "t.gguf"

static float f32_data[12];		/* (3, 4) */
static uint16_t f16_data[8];		/* (8) */
static uint8_t q8_data[4 * 34];		/* (2, 64) as Q8_0: 4 blocks */
static uint16_t bf16_data[16];		/* (2, 2, 2, 2) */

/* The valid file every corruption starts from. */
static uint8_t *build_valid(struct gguf_build *b, uint32_t version,
			    uint32_t alignment, size_t *len)
{
	static const char *const strs[] = { "x", "", "yz" };
	const uint8_t u8 = 200, a_u8[] = { 1, 2, 3 }, a_bool[] = { 1, 0 };
	const int8_t i8 = -5;
	const uint16_t u16 = 60000;
	const int16_t i16 = -30000;
	const int32_t i32 = -2000000000, a_i32[] = { -1, 7 };
	const uint64_t u64 = 1ull << 40, a_u64[] = { UINT64_MAX };
	const int64_t i64 = -(1ll << 40);
	const float a_f32[] = { 0.5f, -2.0f };
	const double f64 = 2.25, a_f64[] = { 3.5 };
	const uint64_t ne_a[] = { 4, 3 }, ne_b[] = { 8 }, ne_c[] = { 64, 2 };
	const uint64_t ne_d[] = { 2, 2, 2, 2 };
	int i;

	for (i = 0; i < 12; i++)
		f32_data[i] = (float)i * 0.25f;
	for (i = 0; i < 8; i++)
		f16_data[i] = (uint16_t)(0x3c00 + i);
	for (i = 0; i < (int)sizeof(q8_data); i++)
		q8_data[i] = (uint8_t)(i * 7);
	for (i = 0; i < 16; i++)
		bf16_data[i] = (uint16_t)(0x3f80 + i);

	gb_init(b, version, alignment);
	gb_kv_str(b, "general.architecture", "test");
	if (alignment != 32)
		gb_kv_u32(b, "general.alignment", alignment);
	gb_kv(b, "k.u8", EC_GGUF_U8, &u8, 1);
	gb_kv(b, "k.i8", EC_GGUF_I8, &i8, 1);
	gb_kv(b, "k.u16", EC_GGUF_U16, &u16, 2);
	gb_kv(b, "k.i16", EC_GGUF_I16, &i16, 2);
	gb_kv_u32(b, "k.u32", 4000000000u);
	gb_kv(b, "k.i32", EC_GGUF_I32, &i32, 4);
	gb_kv_f32(b, "k.f32", 1.5f);
	gb_kv_bool(b, "k.bool", 1);
	gb_kv_str(b, "k.str", "hello");
	gb_kv(b, "k.u64", EC_GGUF_U64, &u64, 8);
	gb_kv(b, "k.i64", EC_GGUF_I64, &i64, 8);
	gb_kv(b, "k.f64", EC_GGUF_F64, &f64, 8);
	gb_kv_arr(b, "a.u8", EC_GGUF_U8, a_u8, 3, 1);
	gb_kv_arr(b, "a.i32", EC_GGUF_I32, a_i32, 2, 4);
	gb_kv_arr(b, "a.f32", EC_GGUF_F32, a_f32, 2, 4);
	gb_kv_arr_str(b, "a.str", strs, 3);
	gb_kv_arr(b, "a.u64", EC_GGUF_U64, a_u64, 1, 8);
	gb_kv_arr(b, "a.bool", EC_GGUF_BOOL, a_bool, 2, 1);
	gb_kv_arr(b, "a.empty", EC_GGUF_U32, NULL, 0, 4);
	gb_kv_arr(b, "a.f64", EC_GGUF_F64, a_f64, 1, 8);
	gb_tensor(b, "a", EC_F32, 2, ne_a, f32_data, sizeof(f32_data));
	gb_tensor(b, "b", EC_F16, 1, ne_b, f16_data, sizeof(f16_data));
	gb_tensor(b, "c", EC_Q8_0, 2, ne_c, q8_data, sizeof(q8_data));
	gb_tensor(b, "d", EC_BF16, 4, ne_d, bf16_data, sizeof(bf16_data));
	return gb_finish(b, len);
}

/* Parse a private copy of exactly `len` bytes, so ASan sees over-reads. */
static int parse_copy(const uint8_t *img, size_t len, struct ec_gguf **g)
{
	uint8_t *copy = malloc(len ? len : 1);
	int ret;

	memcpy(copy, img, len);
	ret = ec_gguf_parse(copy, len, FILE_NAME, g);
	if (*g) {	/* keep the copy alive as long as the context */
		ec_gguf_free(*g);
		*g = NULL;
		ret = ec_gguf_parse(img, len, FILE_NAME, g);
	}
	free(copy);
	return ret;
}

static void test_scalars(const struct ec_gguf *g)
{
	uint32_t u32;
	int32_t i32;
	uint64_t u64, len;
	int64_t i64;
	float f;
	bool bo;
	const char *s;
	char buf[8];

	EC_CHECK(!ec_gguf_get_u32(g, "k.u8", &u32) && u32 == 200, "u8->u32");
	EC_CHECK(!ec_gguf_get_u32(g, "k.u16", &u32) && u32 == 60000, "u16");
	EC_CHECK(!ec_gguf_get_u32(g, "k.u32", &u32) && u32 == 4000000000u,
		 "u32");
	EC_CHECK(ec_gguf_get_u32(g, "k.i8", &u32) == -EC_EFORMAT,
		 "negative i8 must not fit u32");
	EC_CHECK(ec_gguf_get_u32(g, "k.u64", &u32) == -EC_EFORMAT &&
			 strstr(ec_error_msg(), "k.u64"),
		 "2^40 must not fit u32: %s", ec_error_msg());
	EC_CHECK(ec_gguf_get_i32(g, "k.u32", &i32) == -EC_EFORMAT,
		 "4e9 must not fit i32");
	EC_CHECK(!ec_gguf_get_i32(g, "k.i16", &i32) && i32 == -30000, "i16");
	EC_CHECK(!ec_gguf_get_i32(g, "k.i32", &i32) && i32 == -2000000000,
		 "i32");
	EC_CHECK(!ec_gguf_get_u64(g, "k.u64", &u64) && u64 == 1ull << 40,
		 "u64");
	EC_CHECK(ec_gguf_get_u64(g, "k.i64", &u64) == -EC_EFORMAT,
		 "negative i64 must not fit u64");
	EC_CHECK(!ec_gguf_get_i64(g, "k.i64", &i64) && i64 == -(1ll << 40),
		 "i64");
	EC_CHECK(!ec_gguf_get_i64(g, "k.u32", &i64) && i64 == 4000000000ll,
		 "u32->i64");
	EC_CHECK(!ec_gguf_get_f32(g, "k.f32", &f) && f == 1.5f, "f32");
	EC_CHECK(!ec_gguf_get_f32(g, "k.f64", &f) && f == 2.25f, "f64");
	EC_CHECK(!ec_gguf_get_f32(g, "k.u8", &f) && f == 200.0f, "u8->f32");
	EC_CHECK(ec_gguf_get_f32(g, "k.str", &f) == -EC_EFORMAT,
		 "string is not a number");
	EC_CHECK(ec_gguf_get_u32(g, "k.f32", &u32) == -EC_EFORMAT,
		 "f32 is not an integer");
	EC_CHECK(!ec_gguf_get_bool(g, "k.bool", &bo) && bo, "bool");
	EC_CHECK(ec_gguf_get_bool(g, "k.u8", &bo) == -EC_EFORMAT,
		 "200 is not a bool");
	EC_CHECK(!ec_gguf_get_str(g, "k.str", &s, &len) && len == 5 &&
			 !memcmp(s, "hello", 5),
		 "string");
	EC_CHECK(ec_gguf_get_str(g, "k.u8", &s, &len) == -EC_EFORMAT,
		 "u8 is not a string");
	EC_CHECK(!ec_gguf_get_str_copy(g, "k.str", buf, 6) &&
			 !strcmp(buf, "hello"),
		 "string copy");
	EC_CHECK(ec_gguf_get_str_copy(g, "k.str", buf, 5) == -EC_EFORMAT,
		 "string copy into a short buffer");
	EC_CHECK(ec_gguf_get_u32(g, "nope", &u32) == -EC_EMISSING &&
			 strstr(ec_error_msg(), "nope") &&
			 strstr(ec_error_msg(), FILE_NAME),
		 "missing key message: %s", ec_error_msg());
	EC_CHECK(ec_gguf_get_u32(g, "a.u8", &u32) == -EC_EFORMAT,
		 "array is not a scalar");
}

static void test_arrays(const struct ec_gguf *g)
{
	const struct ec_gguf_kv *kv;
	const char *s;
	uint64_t len;
	int64_t i64;
	double d;

	EC_CHECK(!ec_gguf_get_arr(g, "a.str", EC_GGUF_STRING, &kv) &&
			 kv->count == 3,
		 "string array");
	EC_CHECK(!ec_gguf_arr_str(g, kv, 0, &s, &len) && len == 1 &&
			 s[0] == 'x',
		 "a.str[0]");
	EC_CHECK(!ec_gguf_arr_str(g, kv, 1, &s, &len) && len == 0, "a.str[1]");
	EC_CHECK(!ec_gguf_arr_str(g, kv, 2, &s, &len) && len == 2 &&
			 !memcmp(s, "yz", 2),
		 "a.str[2]");
	EC_CHECK(ec_gguf_arr_str(g, kv, 3, &s, &len) == -EC_EINVAL,
		 "index past the end");
	EC_CHECK(ec_gguf_arr_i64(g, kv, 0, &i64) == -EC_EFORMAT,
		 "string element is not an integer");
	EC_CHECK(ec_gguf_get_arr(g, "a.str", EC_GGUF_U8, &kv) == -EC_EFORMAT,
		 "element type mismatch");
	EC_CHECK(ec_gguf_get_arr(g, "k.u8", EC_GGUF_NTYPES, &kv) ==
			 -EC_EFORMAT,
		 "scalar is not an array");
	EC_CHECK(ec_gguf_get_arr(g, "a.nope", EC_GGUF_NTYPES, &kv) ==
			 -EC_EMISSING,
		 "missing array");
	EC_CHECK(!ec_gguf_get_arr(g, "a.u8", EC_GGUF_U8, &kv) &&
			 kv->count == 3 && !ec_gguf_arr_i64(g, kv, 2, &i64) &&
			 i64 == 3,
		 "a.u8[2]");
	EC_CHECK(!ec_gguf_get_arr(g, "a.i32", EC_GGUF_NTYPES, &kv) &&
			 !ec_gguf_arr_i64(g, kv, 0, &i64) && i64 == -1 &&
			 !ec_gguf_arr_i64(g, kv, 1, &i64) && i64 == 7,
		 "a.i32");
	EC_CHECK(!ec_gguf_get_arr(g, "a.f32", EC_GGUF_F32, &kv) &&
			 !ec_gguf_arr_f64(g, kv, 1, &d) && d == -2.0,
		 "a.f32[1]");
	EC_CHECK(!ec_gguf_get_arr(g, "a.f64", EC_GGUF_F64, &kv) &&
			 !ec_gguf_arr_f64(g, kv, 0, &d) && d == 3.5,
		 "a.f64[0]");
	EC_CHECK(!ec_gguf_get_arr(g, "a.u64", EC_GGUF_U64, &kv) &&
			 ec_gguf_arr_i64(g, kv, 0, &i64) == -EC_EFORMAT,
		 "u64 max does not fit i64");
	EC_CHECK(!ec_gguf_get_arr(g, "a.bool", EC_GGUF_BOOL, &kv) &&
			 !ec_gguf_arr_i64(g, kv, 0, &i64) && i64 == 1 &&
			 !ec_gguf_arr_i64(g, kv, 1, &i64) && i64 == 0,
		 "a.bool");
	EC_CHECK(!ec_gguf_get_arr(g, "a.empty", EC_GGUF_U32, &kv) &&
			 kv->count == 0 &&
			 ec_gguf_arr_i64(g, kv, 0, &i64) == -EC_EINVAL,
		 "empty array");
}

static void test_tensors(const struct ec_gguf *g, const struct gguf_build *b,
			 const uint8_t *img)
{
	static const char *const names[] = { "a", "b", "c", "d" };
	const struct ec_gguf_tensor *t;
	struct ec_tensor v;
	uint32_t i, j;

	EC_CHECK(g->n_tensors == 4, "4 tensors, got %llu",
		 (unsigned long long)g->n_tensors);
	EC_CHECK(g->data_offset % b->alignment == 0 &&
			 g->data_offset == b->t[0].data_at,
		 "data section at %llu", (unsigned long long)g->data_offset);
	for (i = 0; i < 4; i++) {
		const struct gb_tensor *w = &b->t[i];
		bool same = true;

		t = ec_gguf_find_tensor(g, names[i]);
		if (!t) {
			EC_CHECK(0, "tensor %s not found", names[i]);
			continue;
		}
		for (j = 0; j < 4; j++)
			same = same && t->ne[j] == w->ne[j];
		EC_CHECK(same && t->n_dims == w->n_dims && t->type == w->type,
			 "tensor %s shape/type", names[i]);
		EC_CHECK(t->nbytes == w->nbytes, "tensor %s: %llu bytes",
			 names[i], (unsigned long long)t->nbytes);
		EC_CHECK(t->offset % b->alignment == 0, "tensor %s aligned",
			 names[i]);
		v = ec_gguf_tensor_view(g, t, 3);
		EC_CHECK(v.data == img + w->data_at && v.offset == w->data_at &&
				 v.file == 3 &&
				 !memcmp(v.data, w->data, w->nbytes),
			 "tensor %s data", names[i]);
	}
	EC_CHECK(!ec_gguf_find_tensor(g, "zz"), "absent tensor");
}

static void test_valid(uint32_t version, uint32_t alignment)
{
	struct gguf_build b;
	struct ec_gguf *g = NULL;
	const struct ec_gguf_kv *kv;
	size_t len;
	uint8_t *img = build_valid(&b, version, alignment, &len);
	int ret = ec_gguf_parse(img, len, FILE_NAME, &g);

	EC_CHECK(ret == 0, "v%u align %u: parse: %d %s", version, alignment,
		 ret, ec_error_msg());
	if (!g)
		goto out;
	EC_CHECK(g->version == version && g->alignment == alignment &&
			 g->n_kv == b.n_kv,
		 "header: version %u alignment %u keys %llu", g->version,
		 g->alignment, (unsigned long long)g->n_kv);
	kv = ec_gguf_find_key(g, "k.i16");
	EC_CHECK(kv && kv->type == EC_GGUF_I16 && kv->count == 1 &&
			 kv->val_size == 2,
		 "k.i16 entry");
	kv = ec_gguf_find_key(g, "a.str");
	EC_CHECK(kv && kv->type == EC_GGUF_ARRAY &&
			 kv->elem_type == EC_GGUF_STRING && kv->count == 3,
		 "a.str entry");
	test_scalars(g);
	test_arrays(g);
	test_tensors(g, &b, img);
	ec_gguf_free(g);
out:
	free(img);
	gb_free(&b);
}

/* Every proper prefix of a valid file must fail cleanly. */
static void test_truncated(void)
{
	struct gguf_build b;
	struct ec_gguf *g = NULL;
	size_t len, n, bad = 0;
	uint8_t *img = build_valid(&b, 3, 32, &len);
	int ret;

	for (n = 0; n < len; n++) {
		ret = parse_copy(img, n, &g);
		if (ret != -EC_EFORMAT || g ||
		    !strstr(ec_error_msg(), FILE_NAME)) {
			if (bad++ < 5)
				fprintf(stderr, "prefix %zu: %d %s\n", n, ret,
					ec_error_msg());
			ec_gguf_free(g);
			g = NULL;
		}
	}
	EC_CHECK(bad == 0, "%zu of %zu truncations not rejected", bad, len);
	ret = parse_copy(img, len, &g);
	EC_CHECK(ret == 0 && g, "full file parses");
	ec_gguf_free(g);
	free(img);
	gb_free(&b);
}

/*
 * Build the valid file, patch `n` bytes at `at`, expect `err` and a message
 * holding `want` (and the file name).
 */
static void expect(const char *what, size_t at, const void *patch, size_t n,
		   int err, const char *want)
{
	struct gguf_build b;
	struct ec_gguf *g = NULL;
	size_t len;
	uint8_t *img = build_valid(&b, 3, 32, &len);
	int ret;

	if (patch)
		gb_patch(img, at, patch, n);
	ret = parse_copy(img, len, &g);
	EC_CHECK(ret == err && !g && strstr(ec_error_msg(), want) &&
			 strstr(ec_error_msg(), FILE_NAME),
		 "%s: got %d '%s', want %d with '%s'", what, ret,
		 ec_error_msg(), err, want);
	ec_gguf_free(g);
	free(img);
	gb_free(&b);
}

/* Where the builder put fields of the valid file. */
static size_t field_at(int tensor, int which)
{
	struct gguf_build b;
	size_t len, at;
	uint8_t *img = build_valid(&b, 3, 32, &len);
	const struct gb_tensor *t = &b.t[tensor];

	at = which == 0 ? t->n_dims_at : which == 1 ? t->type_at
					 : which == 2 ? t->offset_at
						      : b.kv_at;
	free(img);
	gb_free(&b);
	return at;
}

static void test_corrupt(void)
{
	const uint32_t v0 = 0, v1 = 1, v4 = 4, vbe = 0x03000000, five = 5;
	const uint32_t t99 = 99, q4_0 = 2;
	const uint64_t huge62 = 1ull << 62, huge60 = 1ull << 60;
	const uint64_t len63 = 1ull << 63, umax = UINT64_MAX;
	const uint64_t dims[4] = { 1ull << 20, 1ull << 20, 1ull << 20, 16 };
	const uint64_t zero = 0, far = 1ull << 40, top = UINT64_MAX & ~31ull;
	size_t d_dims = field_at(3, 0), c_type = field_at(2, 1);
	size_t b_off = field_at(1, 2), d_off = field_at(3, 2);
	size_t kv0 = field_at(0, 3);
	char want[64];

	expect("bad magic", 0, "GGUX", 4, -EC_EFORMAT, "magic");
	expect("version 0", 4, &v0, 4, -EC_EFORMAT, "version 0");
	expect("version 1", 4, &v1, 4, -EC_EUNSUPPORTED, "version 1");
	expect("version 4", 4, &v4, 4, -EC_EUNSUPPORTED, "version 4");
	expect("big-endian", 4, &vbe, 4, -EC_EUNSUPPORTED, "big-endian");
	expect("2^62 tensors", 8, &huge62, 8, -EC_EFORMAT, "cannot fit");
	expect("2^64-1 tensors", 8, &umax, 8, -EC_EFORMAT, "cannot fit");
	expect("2^60 keys", 16, &huge60, 8, -EC_EFORMAT, "cannot fit");
	expect("key length 2^63", kv0, &len63, 8, -EC_EFORMAT,
	       "name length");
	snprintf(want, sizeof(want), "byte %zu: tensor 'd': n_dims 5", d_dims);
	expect("n_dims 5", d_dims, &five, 4, -EC_EFORMAT, want);
	expect("ne product overflow", d_dims + 4, dims, sizeof(dims),
	       -EC_EFORMAT, "overflows");
	expect("ne 0", d_dims + 4, &zero, 8, -EC_EFORMAT, "invalid size 0");
	expect("ne 2^63", d_dims + 4, &len63, 8, -EC_EFORMAT, "invalid size");
	expect("unknown type", c_type, &t99, 4, -EC_EUNSUPPORTED,
	       "tensor 'c': tensor type 99");
	expect("unsupported type", c_type, &q4_0, 4, -EC_EUNSUPPORTED,
	       "type 2 (Q4_0)");
	snprintf(want, sizeof(want), "byte %zu: tensor 'b': data offset 100",
		 b_off);
	expect("misaligned offset", b_off, &(uint64_t){ 100 }, 8, -EC_EFORMAT,
	       want);
	expect("offset past end", d_off, &far, 8, -EC_EFORMAT,
	       "tensor 'd': data [1099511627776");
	expect("offset + size overflow", d_off, &top, 8, -EC_EFORMAT,
	       "past the end");
	expect("overlap", d_off, &zero, 8, -EC_EFORMAT, "overlaps");
}

/* Corruptions that need a differently built file. */
static void test_built_bad(void)
{
	static const char *const s2[] = { "a", "b" };
	const uint64_t ne48[] = { 48 }, ne1[] = { 1 }, count = 1ull << 61;
	const uint32_t arr_u32[] = { 1, 2 }, nested = 9, bad_type = 13;
	uint8_t q[36] = { 0 };
	float one = 1;
	struct {
		const char *what;
		int err;
		const char *want;
	} c[] = {
		{ "Q8_0 row of 48", -EC_EFORMAT, "multiple of the Q8_0 block" },
		{ "duplicate tensor", -EC_EFORMAT, "duplicate tensor name" },
		{ "duplicate key", -EC_EFORMAT, "duplicate key 'k'" },
		{ "long name", -EC_EFORMAT, "must be under 64" },
		{ "alignment 48", -EC_EFORMAT, "power of two" },
		{ "alignment 0", -EC_EFORMAT, "power of two" },
		{ "alignment string", -EC_EFORMAT, "general.alignment" },
		{ "u32 array count 2^61", -EC_EFORMAT, "key 'arr'" },
		{ "string array 2^61", -EC_EFORMAT, "strings cannot fit" },
		{ "nested array", -EC_EUNSUPPORTED, "key 'arr': nested" },
		{ "value type 13", -EC_EFORMAT, "invalid value type 13" },
	};
	size_t i, len, arr_at;
	struct gguf_build b;
	struct ec_gguf *g;
	uint8_t *img;
	int ret;

	for (i = 0; i < sizeof(c) / sizeof(c[0]); i++) {
		gb_init(&b, 3, 32);
		arr_at = 0;
		switch (i) {
		case 0:
			gb_tensor(&b, "x", EC_Q8_0, 1, ne48, q, 34);
			break;
		case 1:
			gb_tensor(&b, "x", EC_F32, 1, ne1, &one, 4);
			gb_tensor(&b, "x", EC_F32, 1, ne1, &one, 4);
			break;
		case 2:
			gb_kv_u32(&b, "k", 1);
			gb_kv_u32(&b, "k", 2);
			break;
		case 3:
			gb_tensor(&b, "a_name_that_is_far_too_long_for_ggml_"
				      "which_allows_63_bytes_only_really",
				  EC_F32, 1, ne1, &one, 4);
			break;
		case 4:
		case 5:
			gb_kv_u32(&b, "general.alignment", i == 4 ? 48 : 0);
			gb_tensor(&b, "x", EC_F32, 1, ne1, &one, 4);
			break;
		case 6:
			gb_kv_str(&b, "general.alignment", "64");
			break;
		case 7:
		case 9:
		case 10:
			gb_kv_arr(&b, "arr", EC_GGUF_U32, arr_u32, 2, 4);
			arr_at = 8 + 3 + 4;	/* after name and ARRAY tag */
			break;
		case 8:
			gb_kv_arr_str(&b, "arr", s2, 2);
			arr_at = 8 + 3 + 4;
			break;
		}
		img = gb_finish(&b, &len);
		if (i == 7 || i == 8)
			gb_patch(img, b.kv_at + arr_at + 4, &count, 8);
		if (i == 9)
			gb_patch(img, b.kv_at + arr_at, &nested, 4);
		if (i == 10)
			gb_patch(img, b.kv_at + arr_at - 4, &bad_type, 4);
		g = NULL;
		ret = parse_copy(img, len, &g);
		EC_CHECK(ret == c[i].err && strstr(ec_error_msg(), c[i].want),
			 "%s: got %d '%s', want %d with '%s'", c[i].what, ret,
			 ec_error_msg(), c[i].err, c[i].want);
		ec_gguf_free(g);
		free(img);
		gb_free(&b);
	}
}

/* Walk everything a parsed context offers; return 1 if an invariant fails */
static int walk(const struct ec_gguf *g)
{
	const char *s;
	uint64_t i, j, len;
	int64_t i64;
	double d;

	for (i = 0; i < g->n_kv; i++) {
		const struct ec_gguf_kv *kv = &g->kv[i];

		if (ec_gguf_find_key(g, kv->key) != kv)
			return 1;
		if (kv->val < g->data || kv->val_size > g->size ||
		    kv->val + kv->val_size > g->data + g->size)
			return 1;
		for (j = 0; kv->type == EC_GGUF_ARRAY && j < kv->count; j++) {
			if (!ec_gguf_arr_str(g, kv, j, &s, &len) &&
			    (s < (const char *)g->data ||
			     len > (uint64_t)((const char *)g->data + g->size -
					      s)))
				return 1;
			ec_gguf_arr_i64(g, kv, j, &i64);
			ec_gguf_arr_f64(g, kv, j, &d);
		}
	}
	for (i = 0; i < g->n_tensors; i++) {
		const struct ec_gguf_tensor *t = &g->tensors[i];

		if (ec_gguf_find_tensor(g, t->name) != t ||
		    g->data_offset + t->offset + t->nbytes > g->size ||
		    t->offset % g->alignment || g->data_offset % g->alignment)
			return 1;
	}
	return 0;
}

/* Random byte corruption: never crash, and what parses is consistent. */
static void test_mutations(void)
{
	struct gguf_build b;
	struct ec_gguf *g;
	size_t len, i, k, parsed = 0, broken = 0;
	uint8_t *img = build_valid(&b, 3, 32, &len);
	uint8_t *m = malloc(len);
	uint64_t x = 0x9e3779b97f4a7c15ull;

	for (i = 0; i < 20000; i++) {
		memcpy(m, img, len);
		for (k = 0; k < 1 + i % 4; k++) {
			x ^= x << 13;
			x ^= x >> 7;
			x ^= x << 17;
			m[(x >> 8) % len] = (uint8_t)x;
		}
		g = NULL;
		if (!ec_gguf_parse(m, len, FILE_NAME, &g)) {
			parsed++;
			broken += walk(g);
		}
		ec_gguf_free(g);
	}
	EC_CHECK(broken == 0, "%zu of %zu parsed mutants inconsistent",
		 broken, parsed);
	EC_CHECK(parsed > 0 && parsed < 20000, "mutants parsed: %zu", parsed);
	free(m);
	free(img);
	gb_free(&b);
}

/* What make_gguf_seeds.py put in all_types.gguf, as we read it */
static void check_all_types(const struct ec_gguf *g, const char *path)
{
	const struct ec_gguf_tensor *t;
	const struct ec_gguf_kv *kv;
	const char *s;
	uint64_t len, u64;
	uint32_t u32;
	int32_t i32;
	int64_t i64;
	float f;
	double d;
	bool bo;

	EC_CHECK(!ec_gguf_get_u32(g, "s.u8", &u32) && u32 == 200 &&
			 !ec_gguf_get_i32(g, "s.i8", &i32) && i32 == -5 &&
			 !ec_gguf_get_u32(g, "s.u16", &u32) && u32 == 60000 &&
			 !ec_gguf_get_i32(g, "s.i16", &i32) && i32 == -30000 &&
			 !ec_gguf_get_u32(g, "s.u32", &u32) &&
			 u32 == 4000000000u &&
			 !ec_gguf_get_i32(g, "s.i32", &i32) &&
			 i32 == -2000000000,
		 "%s: small integers", path);
	EC_CHECK(!ec_gguf_get_u64(g, "s.u64", &u64) && u64 == 1ull << 40 &&
			 !ec_gguf_get_i64(g, "s.i64", &i64) &&
			 i64 == -(1ll << 40) &&
			 !ec_gguf_get_f32(g, "s.f32", &f) && f == 1.5f &&
			 !ec_gguf_get_f32(g, "s.f64", &f) && f == 2.25f &&
			 !ec_gguf_get_bool(g, "s.bool", &bo) && bo &&
			 !ec_gguf_get_str(g, "s.str", &s, &len) && len == 5 &&
			 !memcmp(s, "hello", 5),
		 "%s: wide scalars", path);
	EC_CHECK(!ec_gguf_get_arr(g, "a.i32", EC_GGUF_I32, &kv) &&
			 kv->count == 3 && !ec_gguf_arr_i64(g, kv, 2, &i64) &&
			 i64 == 9 &&
			 !ec_gguf_get_arr(g, "a.f32", EC_GGUF_F32, &kv) &&
			 !ec_gguf_arr_f64(g, kv, 1, &d) && d == -2.0 &&
			 !ec_gguf_get_arr(g, "a.str", EC_GGUF_STRING, &kv) &&
			 kv->count == 3 &&
			 !ec_gguf_arr_str(g, kv, 2, &s, &len) && len == 2 &&
			 !memcmp(s, "yz", 2),
		 "%s: arrays", path);
	t = ec_gguf_find_tensor(g, "t.q8_0");
	EC_CHECK(t && t->type == EC_Q8_0 && t->ne[0] == 32 && t->ne[1] == 2 &&
			 t->nbytes == 68,
		 "%s: t.q8_0", path);
	t = ec_gguf_find_tensor(g, "t.bf16");
	EC_CHECK(t && t->type == EC_BF16 && t->ne[0] == 8 && t->nbytes == 16,
		 "%s: t.bf16", path);
}

/* Files written by gguf-py (tests/fuzz/make_gguf_seeds.py) must parse. */
static void test_gguf_py(void)
{
	const char *dir = "tests/fuzz/corpus/gguf";
	const struct ec_gguf_tensor *t;
	char path[512];
	struct ec_gguf *g;
	struct dirent *de;
	struct stat st;
	int n = 0, fd, ret;
	DIR *d = opendir(dir);
	void *map;

	if (!d) {
		EC_SKIP("%s not found (run from the repository root)", dir);
		return;
	}
	while ((de = readdir(d))) {
		if (!strstr(de->d_name, ".gguf"))
			continue;
		snprintf(path, sizeof(path), "%s/%s", dir, de->d_name);
		fd = open(path, O_RDONLY);
		if (fd < 0 || fstat(fd, &st) || !st.st_size) {
			EC_CHECK(0, "%s: cannot open", path);
			if (fd >= 0)
				close(fd);
			continue;
		}
		map = mmap(NULL, st.st_size, PROT_READ, MAP_PRIVATE, fd, 0);
		close(fd);
		g = NULL;
		ret = ec_gguf_parse(map, st.st_size, path, &g);
		EC_CHECK(ret == 0 &&
				 ec_gguf_find_key(g, "general.architecture"),
			 "%s: %d %s", path, ret, ec_error_msg());
		/* every seed holds 'seed.ramp': F32 [3, 2] = 0, 1, ... 5 */
		t = g ? ec_gguf_find_tensor(g, "seed.ramp") : NULL;
		if (t) {
			struct ec_tensor v = ec_gguf_tensor_view(g, t, 0);
			const float *f = v.data;

			EC_CHECK(t->ne[0] == 3 && t->ne[1] == 2 &&
					 t->type == EC_F32 && f[0] == 0 &&
					 f[5] == 5,
				 "%s: seed.ramp", path);
		} else {
			EC_CHECK(0, "%s: no seed.ramp tensor", path);
		}
		if (g && !strcmp(de->d_name, "all_types.gguf"))
			check_all_types(g, path);
		ec_gguf_free(g);
		munmap(map, st.st_size);
		n++;
	}
	closedir(d);
	if (!n)
		EC_SKIP("no seeds in %s", dir);
}

int main(void)
{
	test_valid(3, 32);
	test_valid(3, 64);
	test_valid(2, 32);
	test_truncated();
	test_corrupt();
	test_built_bad();
	test_mutations();
	test_gguf_py();
	EC_CHECK(!strcmp(ec_gguf_type_name(EC_GGUF_F64), "f64") &&
			 !strcmp(ec_gguf_type_name(99), "?") &&
			 !strcmp(ec_gguf_ggml_type_name(13), "Q5_K") &&
			 !strcmp(ec_gguf_ggml_type_name(4), "unknown"),
		 "type names");
	return ec_test_done();
}
