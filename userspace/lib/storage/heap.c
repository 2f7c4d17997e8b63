// SPDX-License-Identifier: MIT
/* Indexed binary min-heap of keys by (p1, p2), used by LFU and Belady. */
#include <errno.h>
#include <stdlib.h>

#include "storage_internal.h"

static int less(const struct ec_heap *h, uint32_t a, uint32_t b)
{
	if (h->p1[a] != h->p1[b])
		return h->p1[a] < h->p1[b];
	if (h->p2[a] != h->p2[b])
		return h->p2[a] < h->p2[b];
	return a < b;
}

static void place(struct ec_heap *h, uint32_t i, uint32_t key)
{
	h->keys[i] = key;
	h->pos[key] = (int32_t)i;
}

static void sift_up(struct ec_heap *h, uint32_t i)
{
	uint32_t key = h->keys[i];

	while (i > 0) {
		uint32_t parent = (i - 1) / 2;

		if (!less(h, key, h->keys[parent]))
			break;
		place(h, i, h->keys[parent]);
		i = parent;
	}
	place(h, i, key);
}

static void sift_down(struct ec_heap *h, uint32_t i)
{
	uint32_t key = h->keys[i];

	for (;;) {
		uint32_t c = 2 * i + 1;

		if (c >= h->n)
			break;
		if (c + 1 < h->n && less(h, h->keys[c + 1], h->keys[c]))
			c++;
		if (!less(h, h->keys[c], key))
			break;
		place(h, i, h->keys[c]);
		i = c;
	}
	place(h, i, key);
}

int ec_heap_init(struct ec_heap *h, uint32_t n_keys, uint32_t cap)
{
	uint32_t i;

	h->n = 0;
	h->cap = cap;
	h->keys = malloc((size_t)cap * sizeof(*h->keys));
	h->tmp = malloc((size_t)cap * sizeof(*h->tmp));
	h->pos = malloc((size_t)n_keys * sizeof(*h->pos));
	h->p1 = calloc(n_keys, sizeof(*h->p1));
	h->p2 = calloc(n_keys, sizeof(*h->p2));
	if (!h->keys || !h->tmp || !h->pos || !h->p1 || !h->p2) {
		ec_heap_fini(h);
		return -ENOMEM;
	}
	for (i = 0; i < n_keys; i++)
		h->pos[i] = -1;
	return 0;
}

void ec_heap_fini(struct ec_heap *h)
{
	free(h->keys);
	free(h->tmp);
	free(h->pos);
	free(h->p1);
	free(h->p2);
	h->keys = h->tmp = NULL;
	h->pos = NULL;
	h->p1 = h->p2 = NULL;
}

int ec_heap_set(struct ec_heap *h, uint32_t key, uint64_t p1, uint64_t p2)
{
	int32_t i = h->pos[key];

	h->p1[key] = p1;
	h->p2[key] = p2;
	if (i < 0) {
		if (h->n == h->cap)
			return -ENOSPC;
		place(h, h->n, key);
		h->n++;
		sift_up(h, h->n - 1);
		return 0;
	}
	sift_up(h, (uint32_t)i);
	sift_down(h, (uint32_t)h->pos[key]);
	return 0;
}

void ec_heap_remove(struct ec_heap *h, uint32_t key)
{
	int32_t i = h->pos[key];
	uint32_t last;

	if (i < 0)
		return;
	h->pos[key] = -1;
	last = h->keys[--h->n];
	if ((uint32_t)i == h->n)
		return;
	place(h, (uint32_t)i, last);
	sift_up(h, (uint32_t)i);
	sift_down(h, (uint32_t)h->pos[last]);
}

/* Pop rejected keys aside, then put them back: few are ever rejected. */
int64_t ec_heap_min_where(struct ec_heap *h,
			  _Bool (*ok)(void *arg, uint32_t key), void *arg)
{
	uint32_t n_tmp = 0, i;
	int64_t found = -1;

	while (h->n) {
		uint32_t key = h->keys[0];

		if (!ok || ok(arg, key)) {
			found = key;
			break;
		}
		h->tmp[n_tmp++] = key;
		ec_heap_remove(h, key);
	}
	for (i = 0; i < n_tmp; i++)
		ec_heap_set(h, h->tmp[i], h->p1[h->tmp[i]],
			    h->p2[h->tmp[i]]);
	return found;
}
