// SPDX-License-Identifier: MIT
/* Added (special) tokens: registering, finishing the build, matching. */
#include <stdlib.h>
#include <string.h>

#include "ec_error.h"
#include "tokenizer_internal.h"

int ec_tok_add_special(struct ec_tokenizer *tok, const struct ec_tok_added *t)
{
	struct ec_tok_match *m;
	int err;

	if (tok->finished)
		return ec_err(-EC_EINVAL, "%s: tokenizer already finished",
			      tok->name);
	if (t->id < 0 || (uint32_t)t->id >= tok->n_vocab)
		return ec_err(-EC_EFORMAT,
			      "%s: added token '%.*s': id %d past vocabulary "
			      "size %u", tok->name, (int)t->len, t->content,
			      t->id, tok->n_vocab);
	if (!t->len)
		return ec_err(-EC_EFORMAT, "%s: added token id %d is empty",
			      tok->name, t->id);
	if (ec_utf8_valid_len(t->content, t->len) != t->len)
		return ec_err(-EC_EFORMAT,
			      "%s: added token id %d is not valid UTF-8",
			      tok->name, t->id);
	if (tok->n_added == tok->added_cap) {
		uint32_t cap = tok->added_cap ? tok->added_cap * 2 : 32;

		m = realloc(tok->added, cap * sizeof(*m));
		if (!m)
			return -ENOMEM;
		tok->added = m;
		tok->added_cap = cap;
	}
	m = &tok->added[tok->n_added];
	memset(m, 0, sizeof(*m));
	m->id = t->id;
	m->order = tok->n_added;
	m->lstrip = t->lstrip;
	m->rstrip = t->rstrip;
	m->single_word = t->single_word;
	m->normalized = t->normalized;
	m->special = t->special;
	err = ec_tok_arena_put(&tok->added_text, t->content, t->len,
			       &m->orig_off);
	if (err)
		return err;
	m->off = m->orig_off;
	m->len = m->orig_len = t->len;
	/* An added token's id decodes to its content, as id_to_token says. */
	if (tok->spell_off[t->id] == EC_TOK_NONE)
		err = ec_tok_put(tok, t->id, t->content, t->len, false);
	else
		err = ec_tok_set_bytes(tok, t->id, t->content, t->len);
	if (err)
		return err;
	tok->special[t->id] = t->special;
	tok->n_added++;
	return 0;
}

static int match_cmp(const void *pa, const void *pb)
{
	const struct ec_tok_match *a = pa, *b = pb;

	if (a->normalized != b->normalized)
		return a->normalized - b->normalized;
	if (a->first != b->first)
		return a->first - b->first;
	return a->order < b->order ? -1 : a->order > b->order;
}

static pcre2_code *compile_class(const char *pattern)
{
	PCRE2_SIZE erroff;
	int errcode;

	return pcre2_compile((PCRE2_SPTR)pattern, PCRE2_ZERO_TERMINATED,
			     PCRE2_UTF | PCRE2_UCP, &errcode, &erroff, NULL);
}

/* A normalized added token matches (and decodes to) its NFC form. */
static int normalize_added(struct ec_tokenizer *tok, struct ec_tok_match *m,
			   struct ec_tok_scratch *sc)
{
	const char *orig = tok->added_text.buf + m->orig_off, *norm;
	size_t norm_len;
	int err;

	err = ec_tok_nfc(orig, m->orig_len, sc, &norm, &norm_len);
	if (err || norm == orig)
		return err;
	if (!norm_len)
		return ec_err(-EC_EFORMAT,
			      "%s: added token id %d normalizes to ''",
			      tok->name, m->id);
	/* norm lies in sc, not in the arena that may move here */
	err = ec_tok_arena_put(&tok->added_text, norm, norm_len, &m->off);
	if (!err)
		err = ec_tok_set_bytes(tok, m->id, norm, norm_len);
	m->len = norm_len;
	return err;
}

int ec_tok_finish(struct ec_tokenizer *tok)
{
	struct ec_tok_scratch sc = { 0 };
	bool strip = false, word = false;
	char spell[4];
	uint32_t cp, i, g, b;
	int32_t id;
	int err = 0;

	if (tok->finished)
		return 0;
	for (b = 0; b < 256; b++) {
		cp = ec_tok_byte_to_cp(b);
		if (cp < 0x80) {
			spell[0] = cp;
			id = ec_tok_vocab_find(tok, spell, 1);
		} else {
			spell[0] = 0xc0 | cp >> 6;
			spell[1] = 0x80 | (cp & 0x3f);
			id = ec_tok_vocab_find(tok, spell, 2);
		}
		if (id < 0)
			return ec_err(-EC_EFORMAT,
				      "%s: no vocabulary entry for byte 0x%02x "
				      "('%.*s')", tok->name, b,
				      cp < 0x80 ? 1 : 2, spell);
		tok->byte_id[b] = id;
	}
	for (i = 0; i < tok->n_added; i++) {
		struct ec_tok_match *m = &tok->added[i];

		strip |= m->lstrip || m->rstrip;
		word |= m->single_word;
		if (!m->normalized || !(tok->flags & EC_TOK_NFC))
			continue;
		err = normalize_added(tok, m, &sc);
		if (err)
			goto out;
	}
	for (i = 0; i < tok->n_added; i++)
		tok->added[i].first =
			(uint8_t)tok->added_text.buf[tok->added[i].off];
	if (tok->n_added)
		qsort(tok->added, tok->n_added, sizeof(*tok->added),
		      match_cmp);
	for (g = 0; g < 2; g++) {
		i = 0;
		for (b = 0; b <= 256; b++) {
			while (i < tok->n_added &&
			       (tok->added[i].normalized < g ||
				(tok->added[i].normalized == g &&
				 tok->added[i].first < b)))
				i++;
			tok->match_start[g][b] = i;
		}
	}
	/* lstrip/rstrip/single_word use Rust regex's Unicode \s and \w */
	if (strip)
		tok->re_space = compile_class("[\\p{White_Space}]");
	if (word)
		tok->re_word = compile_class("[\\p{Alphabetic}\\p{M}\\p{Nd}"
					     "\\p{Pc}\\p{Join_Control}]");
	if ((strip && !tok->re_space) || (word && !tok->re_word)) {
		err = ec_err(-ENOMEM, "%s: compiling a character class",
			     tok->name);
		goto out;
	}
	tok->finished = true;
out:
	ec_tok_scratch_free(&sc);
	return err;
}

int32_t ec_tok_lookup(const struct ec_tokenizer *tok, const char *s,
		      size_t len)
{
	uint32_t i;
	int32_t id;

	for (i = 0; i < tok->n_added; i++) {
		const struct ec_tok_match *m = &tok->added[i];

		if (m->orig_len == len &&
		    !memcmp(tok->added_text.buf + m->orig_off, s, len))
			return m->id;
	}
	id = ec_tok_vocab_find(tok, s, len);
	if (id < 0)
		return ec_err(-EC_EMISSING, "%s: no token '%.*s'", tok->name,
			      (int)len, s);
	return id;
}

/* Length of the class character at s[at], 0 if none there. */
static size_t class_at(const pcre2_code *re, const char *s, size_t len,
		       size_t at, pcre2_match_data *md)
{
	PCRE2_SIZE *ov;

	if (at >= len)
		return 0;
	if (pcre2_match(re, (PCRE2_SPTR)s, len, at,
			PCRE2_ANCHORED | PCRE2_NO_UTF_CHECK, md, NULL) < 0)
		return 0;
	ov = pcre2_get_ovector_pointer(md);
	return ov[1] - ov[0];
}

static size_t prev_char(const char *s, size_t at)
{
	do
		at--;
	while (at && ((unsigned char)s[at] & 0xc0) == 0x80);
	return at;
}

static int splits_push(struct ec_tok_splits *out, size_t start, size_t end,
		       int32_t id)
{
	if (out->n == out->cap) {
		size_t cap = out->cap ? out->cap * 2 : 16;
		struct ec_tok_split *v = realloc(out->v, cap * sizeof(*v));

		if (!v)
			return -ENOMEM;
		out->v = v;
		out->cap = cap;
	}
	out->v[out->n].start = start;
	out->v[out->n].end = end;
	out->v[out->n].id = id;
	out->n++;
	return 0;
}

/* Leftmost-longest match at or after pos: token index, or -1. */
static int find_added(const struct ec_tokenizer *tok, unsigned g,
		      const char *s, size_t len, size_t *pos)
{
	const struct ec_tok_match *m;
	const unsigned char *p = (const unsigned char *)s;
	uint32_t lo, hi, j;
	int best;
	size_t i;

	for (i = *pos; i < len; i++) {
		lo = tok->match_start[g][p[i]];
		hi = tok->match_start[g][p[i] + 1];
		best = -1;
		for (j = lo; j < hi; j++) {
			m = &tok->added[j];
			if (m->len > len - i ||
			    memcmp(tok->added_text.buf + m->off, s + i, m->len))
				continue;
			if (best < 0 || m->len > tok->added[best].len)
				best = j;
		}
		if (best >= 0) {
			*pos = i;
			return best;
		}
	}
	return -1;
}

int ec_tok_split_added(const struct ec_tokenizer *tok, bool normalized,
		       const char *s, size_t len, pcre2_match_data *md,
		       struct ec_tok_splits *out)
{
	const struct ec_tok_match *m;
	size_t pos = 0, start, stop, at, done = 0;
	unsigned g = normalized;
	int k, err;

	out->n = 0;
	/* group g's tokens are added[match_start[g][0] .. [g][256]) */
	while (tok->match_start[g][0] < tok->match_start[g][256] &&
	       (k = find_added(tok, g, s, len, &pos)) >= 0) {
		m = &tok->added[k];
		start = pos;
		stop = pos + m->len;
		pos = stop;
		if (m->single_word &&
		    ((start && class_at(tok->re_word, s, len,
					prev_char(s, start), md)) ||
		     class_at(tok->re_word, s, len, stop, md)))
			continue;
		if (m->lstrip) {
			at = start;
			while (at && class_at(tok->re_space, s, start,
					      prev_char(s, at), md))
				at = prev_char(s, at);
			start = at > done ? at : done;
		}
		if (m->rstrip) {
			while ((k = class_at(tok->re_space, s, len, stop, md)))
				stop += k;
		}
		if (done < start) {
			err = splits_push(out, done, start, -1);
			if (err)
				return err;
		}
		err = splits_push(out, start, stop, m->id);
		if (err)
			return err;
		done = stop;
	}
	if (done < len)
		return splits_push(out, done, len, -1);
	return 0;
}
