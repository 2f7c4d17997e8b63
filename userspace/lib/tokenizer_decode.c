// SPDX-License-Identifier: MIT
/* Decoding ids to bytes, whole or streamed one id at a time. */
#include <stdlib.h>
#include <string.h>

#include "ec_error.h"
#include "tokenizer_internal.h"

struct ec_tok_stream {
	const struct ec_tokenizer *tok;
	unsigned flags;
	unsigned char held[4];	/* an unfinished UTF-8 sequence */
	size_t n_held;
	char *out;		/* [cap] text handed back to the caller */
	size_t cap;
	char *work;		/* [work_cap] held + the new token's bytes */
	size_t work_cap;
};

static const char *id_bytes(const struct ec_tokenizer *tok, int32_t id,
			    size_t *len)
{
	const char *b = ec_tok_token_bytes(tok, id, len);

	if (!b)
		ec_err(-EC_EINVAL, "%s: token id %d is not in the vocabulary "
		       "(size %u)", tok->name, id, tok->n_vocab);
	return b;
}

int ec_tok_decode(const struct ec_tokenizer *tok, const int32_t *ids,
		  size_t n, unsigned flags, char **out, size_t *out_len)
{
	size_t i, len, total = 0;
	const char *b;
	char *buf;

	*out = NULL;
	*out_len = 0;
	for (i = 0; i < n; i++) {
		if (!id_bytes(tok, ids[i], &len))
			return -EC_EINVAL;
		total += len;
	}
	buf = malloc(total + 1);
	if (!buf)
		return -ENOMEM;
	total = 0;
	for (i = 0; i < n; i++) {
		if ((flags & EC_TOK_SKIP_SPECIAL) && tok->special[ids[i]])
			continue;
		b = ec_tok_token_bytes(tok, ids[i], &len);
		memcpy(buf + total, b, len);
		total += len;
	}
	buf[total] = '\0';
	*out = buf;
	*out_len = total;
	return 0;
}

int ec_tok_stream_new(const struct ec_tokenizer *tok, unsigned flags,
		      struct ec_tok_stream **out)
{
	struct ec_tok_stream *st = calloc(1, sizeof(*st));

	*out = NULL;
	if (!st)
		return -ENOMEM;
	st->tok = tok;
	st->flags = flags;
	*out = st;
	return 0;
}

void ec_tok_stream_free(struct ec_tok_stream *st)
{
	if (!st)
		return;
	free(st->out);
	free(st->work);
	free(st);
}

static int stream_reserve(char **buf, size_t *cap, size_t need)
{
	char *p;

	if (need <= *cap)
		return 0;
	p = realloc(*buf, need);
	if (!p)
		return -ENOMEM;
	*buf = p;
	*cap = need;
	return 0;
}

/*
 * Emit the complete characters of held + b[len] and hold back an unfinished
 * tail (at most 3 bytes).  A byte yields at most 3 output bytes (U+FFFD).
 */
static int stream_feed(struct ec_tok_stream *st, const char *b, size_t len,
		       bool final, const char **text, size_t *text_len)
{
	size_t n = st->n_held + len, i = 0, o = 0;
	const unsigned char *p;
	uint32_t cp;
	int k, err;

	err = stream_reserve(&st->work, &st->work_cap, n + 1);
	if (!err)
		err = stream_reserve(&st->out, &st->cap, 3 * n + 1);
	if (err)
		return err;
	memcpy(st->work, st->held, st->n_held);
	if (len)
		memcpy(st->work + st->n_held, b, len);
	st->n_held = 0;
	p = (const unsigned char *)st->work;
	while (i < n) {
		if (p[i] < 0x80) {
			st->out[o++] = p[i++];
			continue;
		}
		k = ec_utf8_seq(p + i, n - i, &cp);
		if (k == 0 && !final) {
			/* only at the end, with fewer than 4 bytes left */
			memcpy(st->held, p + i, n - i);
			st->n_held = n - i;
			break;
		}
		if (k <= 0) {
			memcpy(st->out + o, "\xef\xbf\xbd", 3);
			o += 3;
			i += k ? (size_t)-k : n - i;
		} else {
			memcpy(st->out + o, p + i, k);
			o += k;
			i += k;
		}
	}
	st->out[o] = '\0';
	*text = st->out;
	*text_len = o;
	return 0;
}

int ec_tok_stream_push(struct ec_tok_stream *st, int32_t id,
		       const char **text, size_t *len)
{
	const char *b;
	size_t n;

	*text = "";
	*len = 0;
	b = id_bytes(st->tok, id, &n);
	if (!b)
		return -EC_EINVAL;
	if ((st->flags & EC_TOK_SKIP_SPECIAL) && st->tok->special[id])
		n = 0;
	return stream_feed(st, b, n, false, text, len);
}

int ec_tok_stream_flush(struct ec_tok_stream *st, const char **text,
			size_t *len)
{
	return stream_feed(st, "", 0, true, text, len);
}
