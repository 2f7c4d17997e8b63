// SPDX-License-Identifier: MIT
/* Encoding text: added tokens, NFC, regex pre-tokenization, then BPE. */
#include <stdlib.h>
#include <string.h>

#include "ec_error.h"
#include "tokenizer_internal.h"

/* Split s[len] with the pre-tokenizer regex ("Isolated": the text between
 * matches is kept too) and BPE every piece. */
static int pretokenize(const struct ec_tokenizer *tok, const char *s,
		       size_t len, struct ec_tok_scratch *sc,
		       struct ec_tok_vec *out)
{
	const unsigned char *p = (const unsigned char *)s;
	size_t from = 0, search = 0, ms, me;
	PCRE2_UCHAR msg[128];
	PCRE2_SIZE *ov;
	int rc, err;

	while (search < len) {
		rc = pcre2_match(tok->re, p, len, search, PCRE2_NO_UTF_CHECK,
				 sc->md, NULL);
		if (rc == PCRE2_ERROR_NOMATCH)
			break;
		if (rc < 0) {
			pcre2_get_error_message(rc, msg, sizeof(msg));
			return ec_err(-EC_EINVAL, "%s: pre-tokenizer regex at "
				      "byte %zu: %s", tok->name, search,
				      (char *)msg);
		}
		ov = pcre2_get_ovector_pointer(sc->md);
		ms = ov[0];
		me = ov[1];
		if (ms > from) {
			err = ec_tok_bpe(tok, p + from, ms - from, sc, out);
			if (err)
				return err;
		}
		if (me > ms) {
			err = ec_tok_bpe(tok, p + ms, me - ms, sc, out);
			if (err)
				return err;
			from = search = me;
		} else {
			/* an empty match only cuts; step over one character */
			from = ms;
			search = ms + 1;
			while (search < len && (p[search] & 0xc0) == 0x80)
				search++;
		}
	}
	if (from < len)
		return ec_tok_bpe(tok, p + from, len - from, sc, out);
	return 0;
}

/* A piece without raw-text added tokens: normalize, then the rest. */
static int encode_plain(const struct ec_tokenizer *tok, const char *s,
			size_t len, struct ec_tok_scratch *sc,
			struct ec_tok_splits *sp, struct ec_tok_vec *out)
{
	const char *norm = s;
	size_t norm_len = len, i;
	int err;

	if (tok->flags & EC_TOK_NFC) {
		err = ec_tok_nfc(s, len, sc, &norm, &norm_len);
		if (err)
			return err;
	}
	err = ec_tok_split_added(tok, true, norm, norm_len, sc->md, sp);
	for (i = 0; !err && i < sp->n; i++) {
		if (sp->v[i].id >= 0)
			err = ec_tok_vec_push(out, sp->v[i].id);
		else
			err = pretokenize(tok, norm + sp->v[i].start,
					  sp->v[i].end - sp->v[i].start, sc,
					  out);
	}
	return err;
}

int ec_tok_encode(const struct ec_tokenizer *tok, const char *text,
		  size_t len, int32_t **ids, size_t *n_ids)
{
	struct ec_tok_splits raw = { 0 }, norm = { 0 };
	struct ec_tok_scratch sc = { 0 };
	struct ec_tok_vec out = { 0 };
	size_t valid, i;
	int err = 0;

	*ids = NULL;
	*n_ids = 0;
	if (!tok->finished)
		return ec_err(-EC_EINVAL, "%s: tokenizer not finished",
			      tok->name);
	valid = ec_utf8_valid_len(text, len);
	if (valid != len)
		return ec_err(-EC_EINVAL,
			      "%s: input is not valid UTF-8 at byte offset %zu "
			      "(0x%02x)", tok->name, valid,
			      (unsigned char)text[valid]);
	sc.md = pcre2_match_data_create_from_pattern(tok->re, NULL);
	if (!sc.md) {
		err = -ENOMEM;
		goto out;
	}
	err = ec_tok_split_added(tok, false, text, len, sc.md, &raw);
	for (i = 0; !err && i < raw.n; i++) {
		if (raw.v[i].id >= 0)
			err = ec_tok_vec_push(&out, raw.v[i].id);
		else
			err = encode_plain(tok, text + raw.v[i].start,
					   raw.v[i].end - raw.v[i].start, &sc,
					   &norm, &out);
	}
	if (!err && !out.v) {
		out.v = malloc(sizeof(*out.v));
		if (!out.v)
			err = -ENOMEM;
	}
out:
	ec_tok_scratch_free(&sc);
	free(raw.v);
	free(norm.v);
	if (err) {
		free(out.v);
		return err;
	}
	*ids = out.v;
	*n_ids = out.n;
	return 0;
}
