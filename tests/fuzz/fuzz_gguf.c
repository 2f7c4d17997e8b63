// SPDX-License-Identifier: MIT
/* libFuzzer target: parse arbitrary bytes as GGUF and touch all it offers. */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "ec_gguf.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* Read every byte the context claims, so ASan checks the claimed ranges. */
static uint8_t touch(const uint8_t *p, uint64_t n)
{
	uint8_t x = 0;
	uint64_t i;

	for (i = 0; i < n; i++)
		x ^= p[i];
	return x;
}

static void walk(const struct ec_gguf *g)
{
	volatile uint8_t sink = 0;
	uint32_t u32;
	uint64_t i, j, len;
	int64_t i64;
	double d;
	float f;
	bool b;
	const char *s;
	char buf[32];

	for (i = 0; i < g->n_kv; i++) {
		const struct ec_gguf_kv *kv = &g->kv[i];

		if (ec_gguf_find_key(g, kv->key) != kv)
			abort();
		sink ^= touch(kv->val, kv->val_size);
		ec_gguf_get_u32(g, kv->key, &u32);
		ec_gguf_get_i64(g, kv->key, &i64);
		ec_gguf_get_f32(g, kv->key, &f);
		ec_gguf_get_bool(g, kv->key, &b);
		if (!ec_gguf_get_str(g, kv->key, &s, &len))
			sink ^= touch((const uint8_t *)s, len);
		ec_gguf_get_str_copy(g, kv->key, buf, sizeof(buf));
		for (j = 0; kv->type == EC_GGUF_ARRAY && j < kv->count; j++) {
			if (!ec_gguf_arr_str(g, kv, j, &s, &len))
				sink ^= touch((const uint8_t *)s, len);
			ec_gguf_arr_i64(g, kv, j, &i64);
			ec_gguf_arr_f64(g, kv, j, &d);
		}
	}
	for (i = 0; i < g->n_tensors; i++) {
		const struct ec_gguf_tensor *t = &g->tensors[i];
		struct ec_tensor v = ec_gguf_tensor_view(g, t, 0);

		if (ec_gguf_find_tensor(g, t->name) != t)
			abort();
		/* first and last byte: the range must lie in the input */
		sink ^= ((const uint8_t *)v.data)[0];
		sink ^= ((const uint8_t *)v.data)[v.nbytes - 1];
	}
	(void)sink;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct ec_gguf *g = NULL;
	uint8_t *copy;

	/* an exact-size heap copy so over-reads are caught */
	copy = malloc(size ? size : 1);
	if (!copy)
		return 0;
	memcpy(copy, data, size);
	if (ec_gguf_parse(copy, size, "fuzz.gguf", &g) == 0)
		walk(g);
	ec_gguf_free(g);
	free(copy);
	return 0;
}
