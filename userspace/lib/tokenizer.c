// SPDX-License-Identifier: MIT
/* Building a BPE tokenizer from plain arrays, and looking tokens up. */
#include <stdlib.h>
#include <string.h>

#include "ec_error.h"
#include "tokenizer_internal.h"

const char ec_tok_pattern_qwen2[] =
	"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}|"
	" ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+";
const char ec_tok_pattern_gpt2[] =
	"'s|'t|'re|'ve|'m|'ll|'d| ?\\p{L}+| ?\\p{N}+| ?[^\\s\\p{L}\\p{N}]+|"
	"\\s+(?!\\S)|\\s+";

/*
 * GPT-2's byte alphabet: printable Latin-1 bytes stand for themselves, the
 * other 68 (controls, space, DEL..NBSP, soft hyphen) become U+0100.. in
 * byte order.
 */
uint32_t ec_tok_byte_to_cp(uint8_t b)
{
	if (b <= 32)
		return 256 + b;
	if (b >= 127 && b <= 160)
		return b + 162;
	if (b == 173)
		return 323;
	return b;
}

int ec_tok_cp_to_byte(uint32_t cp)
{
	if (cp < 256)
		return (cp <= 32 || (cp >= 127 && cp <= 160) || cp == 173) ?
			-1 : (int)cp;
	if (cp <= 288)
		return cp - 256;
	if (cp <= 322)
		return cp - 162;
	if (cp == 323)
		return 173;
	return -1;
}

int ec_tok_arena_put(struct ec_tok_arena *a, const void *s, size_t len,
		     uint32_t *off)
{
	if (len > UINT32_MAX - 1 || a->used > UINT32_MAX - 1 - len)
		return -ENOMEM;
	if (a->used + len + 1 > a->cap) {
		size_t cap = a->cap ? a->cap * 2 : 4096;
		char *p;

		while (cap < a->used + len + 1)
			cap *= 2;
		p = realloc(a->buf, cap);
		if (!p)
			return -ENOMEM;
		a->buf = p;
		a->cap = cap;
	}
	if (len)
		memcpy(a->buf + a->used, s, len);
	a->buf[a->used + len] = '\0';
	*off = a->used;
	a->used += len + 1;
	return 0;
}

int ec_tok_vec_push(struct ec_tok_vec *v, int32_t id)
{
	if (v->n == v->cap) {
		size_t cap = v->cap ? v->cap * 2 : 64;
		int32_t *p = realloc(v->v, cap * sizeof(*p));

		if (!p)
			return -ENOMEM;
		v->v = p;
		v->cap = cap;
	}
	v->v[v->n++] = id;
	return 0;
}

uint64_t ec_tok_hash_bytes(const void *s, size_t len)
{
	const unsigned char *p = s;
	uint64_t h = 0xcbf29ce484222325ull;	/* FNV-1a */
	size_t i;

	for (i = 0; i < len; i++)
		h = (h ^ p[i]) * 0x100000001b3ull;
	return h ^ (h >> 29);
}

static uint64_t mix64(uint64_t x)
{
	x ^= x >> 30;
	x *= 0xbf58476d1ce4e5b9ull;
	x ^= x >> 27;
	x *= 0x94d049bb133111ebull;
	return x ^ (x >> 31);
}

int ec_tok_new(const char *name, uint32_t n_vocab, const char *pattern,
	       unsigned flags, struct ec_tokenizer **out)
{
	struct ec_tokenizer *tok;
	uint32_t cap = 16, i;
	int err = -ENOMEM;

	*out = NULL;
	if (!name)
		name = "tokenizer";
	if (!n_vocab || n_vocab >= INT32_MAX / 2)
		return ec_err(-EC_EINVAL, "%s: vocabulary size %u out of range",
			      name, n_vocab);
	tok = calloc(1, sizeof(*tok));
	if (!tok)
		return -ENOMEM;
	tok->n_vocab = n_vocab;
	tok->flags = flags;
	tok->bos = tok->eos = tok->pad = -1;
	while (cap < 2 * n_vocab)
		cap *= 2;
	tok->vocab_mask = cap - 1;
	tok->name = strdup(name);
	tok->pattern = strdup(pattern);
	tok->spell_off = malloc(n_vocab * sizeof(uint32_t));
	tok->spell_len = calloc(n_vocab, sizeof(uint32_t));
	tok->bytes_off = malloc(n_vocab * sizeof(uint32_t));
	tok->bytes_len = calloc(n_vocab, sizeof(uint32_t));
	tok->special = calloc(n_vocab, 1);
	tok->vocab_hash = calloc(cap, sizeof(uint32_t));
	tok->merge_mask = 1023;
	tok->merges = malloc((tok->merge_mask + 1) * sizeof(*tok->merges));
	if (!tok->name || !tok->pattern || !tok->spell_off ||
	    !tok->spell_len || !tok->bytes_off || !tok->bytes_len ||
	    !tok->special || !tok->vocab_hash || !tok->merges)
		goto fail;
	for (i = 0; i < n_vocab; i++)
		tok->spell_off[i] = tok->bytes_off[i] = EC_TOK_NONE;
	for (i = 0; i <= tok->merge_mask; i++)
		tok->merges[i].rank = EC_TOK_NONE;

	err = ec_tok_regex_compile(name, pattern, &tok->re);
	if (err)
		goto fail;
	*out = tok;
	return 0;
fail:
	ec_tok_free(tok);
	return err;
}

void ec_tok_free(struct ec_tokenizer *tok)
{
	if (!tok)
		return;
	pcre2_code_free(tok->re);
	pcre2_code_free(tok->re_space);
	pcre2_code_free(tok->re_word);
	free(tok->name);
	free(tok->pattern);
	free(tok->spell_off);
	free(tok->spell_len);
	free(tok->bytes_off);
	free(tok->bytes_len);
	free(tok->special);
	free(tok->vocab_hash);
	free(tok->merges);
	free(tok->added);
	free(tok->spell.buf);
	free(tok->bytes.buf);
	free(tok->added_text.buf);
	free(tok);
}

int32_t ec_tok_vocab_find(const struct ec_tokenizer *tok, const char *s,
			  size_t len)
{
	uint64_t h = ec_tok_hash_bytes(s, len);
	uint32_t i = h & tok->vocab_mask, id;

	for (;; i = (i + 1) & tok->vocab_mask) {
		id = tok->vocab_hash[i];
		if (!id)
			return -1;
		id--;
		if (tok->spell_len[id] == len &&
		    !memcmp(tok->spell.buf + tok->spell_off[id], s, len))
			return id;
	}
}

/*
 * What a spelling decodes to, as the ByteLevel decoder does it: through the
 * byte alphabet when every character belongs to it, else its own UTF-8.
 */
int ec_tok_set_bytes(struct ec_tokenizer *tok, uint32_t id, const char *s,
		     size_t len)
{
	const unsigned char *p = (const unsigned char *)s;
	char small[256], *buf = small;
	size_t i = 0, n = 0;
	uint32_t cp;
	int k, b, err;

	if (len > sizeof(small)) {
		buf = malloc(len);
		if (!buf)
			return -ENOMEM;
	}
	while (i < len) {
		k = ec_utf8_seq(p + i, len - i, &cp);
		b = k > 0 ? ec_tok_cp_to_byte(cp) : -1;
		if (b < 0)
			break;
		buf[n++] = (char)b;
		i += k;
	}
	if (i < len)
		err = ec_tok_arena_put(&tok->bytes, s, len,
				       &tok->bytes_off[id]);
	else
		err = ec_tok_arena_put(&tok->bytes, buf, n,
				       &tok->bytes_off[id]);
	tok->bytes_len[id] = i < len ? len : n;
	if (buf != small)
		free(buf);
	return err;
}

/* Record id's spelling; the hash keeps the last id for a spelling. */
int ec_tok_put(struct ec_tokenizer *tok, uint32_t id, const char *s,
	       size_t len, bool replace)
{
	uint32_t i, cur;
	int err;

	err = ec_tok_arena_put(&tok->spell, s, len, &tok->spell_off[id]);
	if (err)
		return err;
	tok->spell_len[id] = len;
	err = ec_tok_set_bytes(tok, id, s, len);
	if (err)
		return err;
	i = ec_tok_hash_bytes(s, len) & tok->vocab_mask;
	for (;; i = (i + 1) & tok->vocab_mask) {
		cur = tok->vocab_hash[i];
		if (!cur) {
			tok->vocab_hash[i] = id + 1;
			return 0;
		}
		cur--;
		if (cur != id && tok->spell_len[cur] == len &&
		    !memcmp(tok->spell.buf + tok->spell_off[cur], s, len)) {
			if (replace)
				tok->vocab_hash[i] = id + 1;
			return 0;
		}
		if (cur == id)
			return 0;
	}
}

int ec_tok_set_token(struct ec_tokenizer *tok, uint32_t id, const char *s,
		     size_t len)
{
	if (tok->finished)
		return ec_err(-EC_EINVAL, "%s: tokenizer already finished",
			      tok->name);
	if (id >= tok->n_vocab)
		return ec_err(-EC_EFORMAT,
			      "%s: token '%.*s': id %u past vocabulary size %u",
			      tok->name, (int)len, s, id, tok->n_vocab);
	if (tok->spell_off[id] != EC_TOK_NONE)
		return ec_err(-EC_EFORMAT, "%s: token id %u given twice",
			      tok->name, id);
	return ec_tok_put(tok, id, s, len, true);
}

const struct ec_tok_merge *ec_tok_merge_find(const struct ec_tokenizer *tok,
					     int32_t a, int32_t b)
{
	uint64_t key = (uint64_t)(uint32_t)a << 32 | (uint32_t)b;
	uint32_t i = mix64(key) & tok->merge_mask;

	for (;; i = (i + 1) & tok->merge_mask) {
		if (tok->merges[i].rank == EC_TOK_NONE)
			return NULL;
		if (tok->merges[i].key == key)
			return &tok->merges[i];
	}
}

static void merge_insert(struct ec_tok_merge *tab, uint32_t mask,
			 const struct ec_tok_merge *m)
{
	uint32_t i = mix64(m->key) & mask;

	while (tab[i].rank != EC_TOK_NONE && tab[i].key != m->key)
		i = (i + 1) & mask;
	tab[i] = *m;
}

static int merges_grow(struct ec_tokenizer *tok)
{
	uint32_t mask = tok->merge_mask * 2 + 1, i;
	struct ec_tok_merge *tab = malloc((mask + 1ull) * sizeof(*tab));

	if (!tab)
		return -ENOMEM;
	for (i = 0; i <= mask; i++)
		tab[i].rank = EC_TOK_NONE;
	for (i = 0; i <= tok->merge_mask; i++)
		if (tok->merges[i].rank != EC_TOK_NONE)
			merge_insert(tab, mask, &tok->merges[i]);
	free(tok->merges);
	tok->merges = tab;
	tok->merge_mask = mask;
	return 0;
}

int ec_tok_add_merge(struct ec_tokenizer *tok, const char *a, size_t a_len,
		     const char *b, size_t b_len)
{
	struct ec_tok_merge m;
	int32_t ia, ib, iab;
	char small[256], *ab = small;
	int err;

	if (tok->finished)
		return ec_err(-EC_EINVAL, "%s: tokenizer already finished",
			      tok->name);
	if (a_len + b_len > sizeof(small)) {
		ab = malloc(a_len + b_len);
		if (!ab)
			return -ENOMEM;
	}
	memcpy(ab, a, a_len);
	memcpy(ab + a_len, b, b_len);
	ia = ec_tok_vocab_find(tok, a, a_len);
	ib = ec_tok_vocab_find(tok, b, b_len);
	iab = ec_tok_vocab_find(tok, ab, a_len + b_len);
	if (ab != small)
		free(ab);
	if (ia < 0 || ib < 0)
		return ec_err(-EC_EFORMAT,
			      "%s: merge %u ('%.*s' '%.*s'): '%.*s' is not in "
			      "the vocabulary", tok->name, tok->n_merges,
			      (int)a_len, a, (int)b_len, b,
			      (int)(ia < 0 ? a_len : b_len), ia < 0 ? a : b);
	if (iab < 0)
		return ec_err(-EC_EFORMAT,
			      "%s: merge %u ('%.*s' '%.*s'): their "
			      "concatenation is not in the vocabulary",
			      tok->name, tok->n_merges, (int)a_len, a,
			      (int)b_len, b);
	if (tok->n_merges >= INT32_MAX)
		return ec_err(-EC_EFORMAT, "%s: too many merges", tok->name);
	if ((tok->n_merges + 1) * 2ull > tok->merge_mask) {
		err = merges_grow(tok);
		if (err)
			return err;
	}
	/* A repeated pair takes the later rank, as tokenizers' HashMap does. */
	m.key = (uint64_t)(uint32_t)ia << 32 | (uint32_t)ib;
	m.rank = tok->n_merges++;
	m.id = iab;
	merge_insert(tok->merges, tok->merge_mask, &m);
	return 0;
}

int ec_tok_set_ids(struct ec_tokenizer *tok, int32_t bos, int32_t eos,
		   int32_t pad)
{
	int32_t v[3] = { bos, eos, pad };
	int i;

	for (i = 0; i < 3; i++)
		if (v[i] < -1 || v[i] >= (int32_t)tok->n_vocab)
			return ec_err(-EC_EFORMAT,
				      "%s: %s token id %d out of range",
				      tok->name, i == 0 ? "bos" :
				      i == 1 ? "eos" : "padding", v[i]);
	tok->bos = bos;
	tok->eos = eos;
	tok->pad = pad;
	return 0;
}

uint32_t ec_tok_n_vocab(const struct ec_tokenizer *tok)
{
	return tok->n_vocab;
}

int32_t ec_tok_bos_id(const struct ec_tokenizer *tok)
{
	return tok->bos;
}

int32_t ec_tok_eos_id(const struct ec_tokenizer *tok)
{
	return tok->eos;
}

int32_t ec_tok_pad_id(const struct ec_tokenizer *tok)
{
	return tok->pad;
}

bool ec_tok_is_special(const struct ec_tokenizer *tok, int32_t id)
{
	return id >= 0 && (uint32_t)id < tok->n_vocab && tok->special[id];
}

const char *ec_tok_token_bytes(const struct ec_tokenizer *tok, int32_t id,
			       size_t *len)
{
	if (id < 0 || (uint32_t)id >= tok->n_vocab ||
	    tok->bytes_off[id] == EC_TOK_NONE)
		return NULL;
	*len = tok->bytes_len[id];
	return tok->bytes.buf + tok->bytes_off[id];
}
