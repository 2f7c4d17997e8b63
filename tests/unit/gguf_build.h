/* SPDX-License-Identifier: MIT */
/*
 * A small GGUF writer for tests: collect keys and tensors, then serialise.
 * Records where each field landed so tests can corrupt it.
 */
#ifndef GGUF_BUILD_H
#define GGUF_BUILD_H

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define GB_MAX_TENSORS 128

struct gb_buf {
	uint8_t *p;
	size_t len, cap;
};

struct gb_tensor {
	char name[80];
	uint32_t type, n_dims;
	uint64_t ne[4];
	const void *data;
	uint64_t nbytes;
	/* filled by gb_finish: byte positions in the output */
	size_t info_at, n_dims_at, type_at, offset_at, data_at;
};

struct gguf_build {
	uint32_t version;
	uint32_t alignment;	/* padding used; write general.alignment too */
	struct gb_buf kv;	/* serialised key/value pairs */
	uint64_t n_kv;
	struct gb_tensor t[GB_MAX_TENSORS];
	uint32_t n_t;
	size_t kv_at;		/* filled by gb_finish: first key */
};

static inline void gb_put(struct gb_buf *b, const void *src, size_t n)
{
	if (!n)
		return;
	if (b->len + n > b->cap) {
		b->cap = (b->len + n) * 2 + 64;
		b->p = realloc(b->p, b->cap);
		if (!b->p)
			abort();
	}
	memcpy(b->p + b->len, src, n);
	b->len += n;
}

static inline void gb_u32(struct gb_buf *b, uint32_t v)
{
	gb_put(b, &v, sizeof(v));
}

static inline void gb_u64(struct gb_buf *b, uint64_t v)
{
	gb_put(b, &v, sizeof(v));
}

static inline void gb_str(struct gb_buf *b, const char *s)
{
	gb_u64(b, strlen(s));
	gb_put(b, s, strlen(s));
}

static inline void gb_init(struct gguf_build *g, uint32_t version,
			   uint32_t alignment)
{
	memset(g, 0, sizeof(*g));
	g->version = version;
	g->alignment = alignment;
}

/* A scalar key of a fixed-size type (`size` bytes at `v`). */
static inline void gb_kv(struct gguf_build *g, const char *key, uint32_t type,
			 const void *v, size_t size)
{
	gb_str(&g->kv, key);
	gb_u32(&g->kv, type);
	gb_put(&g->kv, v, size);
	g->n_kv++;
}

static inline void gb_kv_u32(struct gguf_build *g, const char *key,
			     uint32_t v)
{
	gb_kv(g, key, 4, &v, 4);
}

static inline void gb_kv_f32(struct gguf_build *g, const char *key, float v)
{
	gb_kv(g, key, 6, &v, 4);
}

static inline void gb_kv_bool(struct gguf_build *g, const char *key, int v)
{
	uint8_t b = (uint8_t)v;

	gb_kv(g, key, 7, &b, 1);
}

static inline void gb_kv_str(struct gguf_build *g, const char *key,
			     const char *s)
{
	gb_str(&g->kv, key);
	gb_u32(&g->kv, 8);
	gb_str(&g->kv, s);
	g->n_kv++;
}

/* An array of `n` fixed-size elements of `type`. */
static inline void gb_kv_arr(struct gguf_build *g, const char *key,
			     uint32_t type, const void *v, uint64_t n,
			     size_t elem)
{
	gb_str(&g->kv, key);
	gb_u32(&g->kv, 9);
	gb_u32(&g->kv, type);
	gb_u64(&g->kv, n);
	gb_put(&g->kv, v, n * elem);
	g->n_kv++;
}

static inline void gb_kv_arr_str(struct gguf_build *g, const char *key,
				 const char *const *s, uint64_t n)
{
	uint64_t i;

	gb_str(&g->kv, key);
	gb_u32(&g->kv, 9);
	gb_u32(&g->kv, 8);
	gb_u64(&g->kv, n);
	for (i = 0; i < n; i++)
		gb_str(&g->kv, s[i]);
	g->n_kv++;
}

/* A tensor; `data` (nbytes) must outlive gb_finish.  ne has n_dims values. */
static inline struct gb_tensor *gb_tensor(struct gguf_build *g,
					  const char *name, uint32_t type,
					  uint32_t n_dims, const uint64_t *ne,
					  const void *data, uint64_t nbytes)
{
	struct gb_tensor *t;
	uint32_t j;

	if (g->n_t == GB_MAX_TENSORS)
		abort();
	t = &g->t[g->n_t++];
	memset(t, 0, sizeof(*t));
	snprintf(t->name, sizeof(t->name), "%s", name);
	t->type = type;
	t->n_dims = n_dims;
	for (j = 0; j < 4; j++)
		t->ne[j] = j < n_dims ? ne[j] : 1;
	t->data = data;
	t->nbytes = nbytes;
	return t;
}

/* Drop tensor `name` (to test a missing one); returns 1 if it was there. */
static inline int gb_remove(struct gguf_build *g, const char *name)
{
	uint32_t i;

	for (i = 0; i < g->n_t; i++) {
		if (!strcmp(g->t[i].name, name)) {
			memmove(&g->t[i], &g->t[i + 1],
				(g->n_t - i - 1) * sizeof(g->t[0]));
			g->n_t--;
			return 1;
		}
	}
	return 0;
}

static inline void gb_pad(struct gb_buf *b, uint32_t alignment)
{
	const uint8_t zero = 0;

	while (b->len % alignment)
		gb_put(b, &zero, 1);
}

/*
 * The file image (malloc'd, *len bytes).  Tensor data is laid out in order,
 * each at a multiple of the alignment; nothing follows the last tensor.
 */
static inline uint8_t *gb_finish(struct gguf_build *g, size_t *len)
{
	struct gb_buf b = { 0 };
	uint64_t off = 0;
	uint32_t i, j;

	gb_put(&b, "GGUF", 4);
	gb_u32(&b, g->version);
	gb_u64(&b, g->n_t);
	gb_u64(&b, g->n_kv);
	g->kv_at = b.len;
	if (g->kv.len)
		gb_put(&b, g->kv.p, g->kv.len);
	for (i = 0; i < g->n_t; i++) {
		struct gb_tensor *t = &g->t[i];

		t->info_at = b.len;
		gb_str(&b, t->name);
		t->n_dims_at = b.len;
		gb_u32(&b, t->n_dims);
		for (j = 0; j < t->n_dims; j++)
			gb_u64(&b, t->ne[j]);
		t->type_at = b.len;
		gb_u32(&b, t->type);
		t->offset_at = b.len;
		gb_u64(&b, off);
		off += t->nbytes;
		off = (off + g->alignment - 1) / g->alignment * g->alignment;
	}
	if (g->n_t)
		gb_pad(&b, g->alignment);
	for (i = 0; i < g->n_t; i++) {
		if (i)
			gb_pad(&b, g->alignment);
		g->t[i].data_at = b.len;
		gb_put(&b, g->t[i].data, g->t[i].nbytes);
	}
	*len = b.len;
	return b.p;
}

static inline void gb_free(struct gguf_build *g)
{
	free(g->kv.p);
	g->kv.p = NULL;
}

/* Patch `n` bytes at `at` of an image. */
static inline void gb_patch(uint8_t *img, size_t at, const void *v, size_t n)
{
	memcpy(img + at, v, n);
}

#endif
