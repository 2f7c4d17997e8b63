// SPDX-License-Identifier: MIT
/* BPE merging of one pre-tokenized split, lowest rank first (a heap). */
#include <stdlib.h>
#include <string.h>

#include "ec_error.h"
#include "tokenizer_internal.h"

static int scratch_reserve(struct ec_tok_scratch *sc, size_t n)
{
	size_t cap = sc->cap ? sc->cap : 64;

	if (n <= sc->cap)
		return 0;
	while (cap < n)
		cap *= 2;
	free(sc->sym_id);
	free(sc->sym_prev);
	free(sc->sym_next);
	free(sc->heap);
	free(sc->spell);
	sc->sym_id = malloc(cap * sizeof(int32_t));
	sc->sym_prev = malloc(cap * sizeof(int32_t));
	sc->sym_next = malloc(cap * sizeof(int32_t));
	sc->heap = malloc(3 * cap * sizeof(*sc->heap));
	sc->spell = malloc(2 * cap);
	if (!sc->sym_id || !sc->sym_prev || !sc->sym_next || !sc->heap ||
	    !sc->spell) {
		sc->cap = 0;
		return -ENOMEM;
	}
	sc->cap = cap;
	return 0;
}

static void heap_push(struct ec_tok_scratch *sc,
		      const struct ec_tok_merge *m, int32_t pos)
{
	struct ec_tok_heap_ent *h = sc->heap, e;
	size_t i = sc->heap_n++, up;

	e.key = (uint64_t)m->rank << 32 | (uint32_t)pos;
	e.id = m->id;
	while (i) {
		up = (i - 1) / 2;
		if (h[up].key <= e.key)
			break;
		h[i] = h[up];
		i = up;
	}
	h[i] = e;
}

static struct ec_tok_heap_ent heap_pop(struct ec_tok_scratch *sc)
{
	struct ec_tok_heap_ent *h = sc->heap, top = h[0], last;
	size_t i = 0, c, n = --sc->heap_n;

	if (!n)
		return top;
	last = h[n];
	for (;;) {
		c = 2 * i + 1;
		if (c >= n)
			break;
		if (c + 1 < n && h[c + 1].key < h[c].key)
			c++;
		if (last.key <= h[c].key)
			break;
		h[i] = h[c];
		i = c;
	}
	h[i] = last;
	return top;
}

/* The split spelled in the byte alphabet, looked up whole. */
static int32_t whole_word(const struct ec_tokenizer *tok,
			  const unsigned char *p, size_t n, char *spell)
{
	size_t i, k = 0;
	uint32_t cp;

	for (i = 0; i < n; i++) {
		cp = ec_tok_byte_to_cp(p[i]);
		if (cp < 0x80) {
			spell[k++] = cp;
		} else {
			spell[k++] = 0xc0 | cp >> 6;
			spell[k++] = 0x80 | (cp & 0x3f);
		}
	}
	return ec_tok_vocab_find(tok, spell, k);
}

/*
 * The same procedure as tokenizers' Word::merge_all: queue every adjacent
 * pair that has a merge; pop the lowest (rank, position); skip it when the
 * pair there changed since it was queued; merge, and queue the pairs the
 * new symbol forms with its neighbours.
 */
int ec_tok_bpe(const struct ec_tokenizer *tok, const unsigned char *p,
	       size_t n, struct ec_tok_scratch *sc, struct ec_tok_vec *out)
{
	const struct ec_tok_merge *m;
	struct ec_tok_heap_ent top;
	int32_t *id, *prev, *next, pos, nx, i;
	int err;

	if (!n)
		return 0;
	if (n == 1)
		return ec_tok_vec_push(out, tok->byte_id[p[0]]);
	if (n > INT32_MAX / 4)
		return ec_err(-EC_EINVAL, "%s: a pre-tokenized piece of %zu "
			      "bytes is too long", tok->name, n);
	err = scratch_reserve(sc, n);
	if (err)
		return err;
	if (tok->flags & EC_TOK_IGNORE_MERGES) {
		i = whole_word(tok, p, n, sc->spell);
		if (i >= 0)
			return ec_tok_vec_push(out, i);
	}
	id = sc->sym_id;
	prev = sc->sym_prev;
	next = sc->sym_next;
	sc->heap_n = 0;
	for (i = 0; i < (int32_t)n; i++) {
		id[i] = tok->byte_id[p[i]];
		prev[i] = i - 1;
		next[i] = i + 1 < (int32_t)n ? i + 1 : -1;
	}
	for (i = 0; i + 1 < (int32_t)n; i++) {
		m = ec_tok_merge_find(tok, id[i], id[i + 1]);
		if (m)
			heap_push(sc, m, i);
	}
	while (sc->heap_n) {
		top = heap_pop(sc);
		pos = (int32_t)(uint32_t)top.key;
		nx = next[pos];
		if (id[pos] < 0 || nx < 0)
			continue;
		m = ec_tok_merge_find(tok, id[pos], id[nx]);
		if (!m || (int32_t)m->id != top.id)
			continue;
		id[pos] = m->id;
		id[nx] = -1;
		next[pos] = next[nx];
		if (next[pos] >= 0)
			prev[next[pos]] = pos;
		if (prev[pos] >= 0) {
			m = ec_tok_merge_find(tok, id[prev[pos]], id[pos]);
			if (m)
				heap_push(sc, m, prev[pos]);
		}
		if (next[pos] >= 0) {
			m = ec_tok_merge_find(tok, id[pos], id[next[pos]]);
			if (m)
				heap_push(sc, m, pos);
		}
	}
	for (pos = 0; pos >= 0; pos = next[pos]) {
		err = ec_tok_vec_push(out, id[pos]);
		if (err)
			return err;
	}
	return 0;
}
