/* SPDX-License-Identifier: MIT */
/* Byte-level BPE tokenizer (GPT-2 / Qwen2 style): load, encode, decode. */
#ifndef EC_TOKENIZER_H
#define EC_TOKENIZER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct ec_gguf;
struct ec_tokenizer;
struct ec_tok_stream;

/*
 * Encoding follows Hugging Face `tokenizers` for a BPE model with a
 * ByteLevel pre-tokenizer and decoder:
 *   1. added tokens with normalized=false are cut out of the raw text
 *      (leftmost-longest match, honouring lstrip/rstrip/single_word);
 *   2. the rest is NFC-normalized when the tokenizer declares it, and added
 *      tokens with normalized=true are cut out of the normalized text;
 *   3. each remaining piece is split by the pre-tokenizer regex (PCRE2 with
 *      Unicode properties), every split is mapped byte-wise to the GPT-2
 *      byte alphabet and merged by BPE rank.
 * A loaded tokenizer is read-only: any number of threads may encode and
 * decode with it at once.
 */

/* One token of the added vocabulary (tokenizer.json "added_tokens"). */
struct ec_tok_added {
	int32_t id;
	const char *content;	/* UTF-8, as written in the text */
	size_t len;		/* bytes of content */
	bool special;		/* control: EC_TOK_SKIP_SPECIAL drops it */
	bool lstrip;		/* also swallow whitespace on its left */
	bool rstrip;		/* also swallow whitespace on its right */
	bool single_word;	/* match only between non-word characters */
	bool normalized;	/* match the normalized text, not the raw one */
};

/* Flags for ec_tok_new(). */
#define EC_TOK_NFC		(1u << 0) /* NFC-normalize before splitting */
#define EC_TOK_IGNORE_MERGES	(1u << 1) /* a split in the vocab is kept */

/* Built-in pre-tokenizer patterns (for loaders that name, not spell them). */
extern const char ec_tok_pattern_qwen2[];
extern const char ec_tok_pattern_gpt2[];

/*
 * Building a tokenizer from plain arrays, as both loaders do:
 * ec_tok_new, then every vocabulary entry (ec_tok_set_token), every merge in
 * rank order (ec_tok_add_merge), every added token (ec_tok_add_special),
 * then ec_tok_finish.  Strings are copied.  `name` (a file name) prefixes
 * every error message.  Vocabulary entries are spelled in the GPT-2 byte
 * alphabet ("Ġthe"); merges name two entries whose concatenation is an
 * entry too.  `pattern` is the pre-tokenizer regex (PCRE2 syntax, which the
 * Oniguruma patterns of tokenizer.json are written in as well).
 */
int ec_tok_new(const char *name, uint32_t n_vocab, const char *pattern,
	       unsigned flags, struct ec_tokenizer **out);
int ec_tok_set_token(struct ec_tokenizer *tok, uint32_t id, const char *s,
		     size_t len);
int ec_tok_add_merge(struct ec_tokenizer *tok, const char *a, size_t a_len,
		     const char *b, size_t b_len);
int ec_tok_add_special(struct ec_tokenizer *tok, const struct ec_tok_added *t);
/* Optional: -1 = none.  Ids must be < n_vocab. */
int ec_tok_set_ids(struct ec_tokenizer *tok, int32_t bos, int32_t eos,
		   int32_t pad);
int ec_tok_finish(struct ec_tokenizer *tok);
void ec_tok_free(struct ec_tokenizer *tok);

/*
 * Loaders.  ec_tok_load_json reads a Hugging Face tokenizer.json (and, when
 * one lies beside it, tokenizer_config.json for bos/eos/pad); _json_buf
 * parses one from memory.  ec_tok_load_gguf reads tokenizer.ggml.* metadata
 * (model "gpt2", pre "qwen2"/"gpt2"/"default").  Errors: -EC_EFORMAT
 * (malformed), -EC_EUNSUPPORTED (another model/normalizer/pre-tokenizer),
 * -EC_EMISSING (a required key), -errno.
 */
int ec_tok_load_json(const char *path, struct ec_tokenizer **out);
int ec_tok_load_json_buf(const char *buf, size_t len, const char *name,
			 struct ec_tokenizer **out);
int ec_tok_load_gguf(const struct ec_gguf *g, struct ec_tokenizer **out);

/* Vocabulary size: every id is below it (ids without a token are holes). */
uint32_t ec_tok_n_vocab(const struct ec_tokenizer *tok);
/* -1 when the tokenizer does not define it. */
int32_t ec_tok_bos_id(const struct ec_tokenizer *tok);
int32_t ec_tok_eos_id(const struct ec_tokenizer *tok);
int32_t ec_tok_pad_id(const struct ec_tokenizer *tok);

/*
 * Id of a token by its written form: an added token ("<|im_start|>") or a
 * vocabulary entry in the byte alphabet ("Ġthe").  Returns the id (>= 0) or
 * -EC_EMISSING with a message naming the token.
 */
int32_t ec_tok_lookup(const struct ec_tokenizer *tok, const char *s,
		      size_t len);
/* Whether id is an added token marked special (control). */
bool ec_tok_is_special(const struct ec_tokenizer *tok, int32_t id);
/* The bytes id decodes to (not NUL-terminated); NULL for a bad id. */
const char *ec_tok_token_bytes(const struct ec_tokenizer *tok, int32_t id,
			       size_t *len);

/*
 * Encode `len` bytes of UTF-8 text.  *ids is malloc'd [*n_ids] (free()
 * it; non-NULL even when empty).  Invalid UTF-8 gives -EC_EINVAL and a
 * message with the byte offset of the first bad byte.
 */
int ec_tok_encode(const struct ec_tokenizer *tok, const char *text,
		  size_t len, int32_t **ids, size_t *n_ids);

/* Flags for decoding. */
#define EC_TOK_SKIP_SPECIAL	(1u << 0) /* drop special added tokens */

/*
 * Decode ids to the exact bytes they stand for (which need not be valid
 * UTF-8 for an arbitrary id sequence).  *out is malloc'd, NUL-terminated,
 * [*out_len] bytes before the NUL.  An id without a token: -EC_EINVAL.
 */
int ec_tok_decode(const struct ec_tokenizer *tok, const int32_t *ids,
		  size_t n, unsigned flags, char **out, size_t *out_len);

/*
 * Streaming decoder for generation: push one id at a time and get the text
 * that became complete.  An incomplete UTF-8 sequence at the end is held
 * back until the next id completes it; bytes that can never be valid are
 * replaced by U+FFFD (one per maximal invalid subpart, as
 * String::from_utf8_lossy does), so the output is always valid UTF-8.
 * Text returned stays valid until the next call on the stream.
 */
int ec_tok_stream_new(const struct ec_tokenizer *tok, unsigned flags,
		      struct ec_tok_stream **out);
int ec_tok_stream_push(struct ec_tok_stream *st, int32_t id,
		       const char **text, size_t *len);
/* End of stream: whatever is held back, as U+FFFD. */
int ec_tok_stream_flush(struct ec_tok_stream *st, const char **text,
			size_t *len);
void ec_tok_stream_free(struct ec_tok_stream *st);

/*
 * UTF-8 (RFC 3629: no overlongs, surrogates or code points past U+10FFFF).
 * ec_utf8_seq looks at the sequence starting at s[0] (n >= 1 bytes left):
 * returns its length (1..4) and *cp when it is complete and valid; 0 when
 * the n bytes are a valid but unfinished start; -k when invalid, k being
 * the length of the maximal invalid subpart (what one U+FFFD replaces).
 */
int ec_utf8_seq(const unsigned char *s, size_t n, uint32_t *cp);
/* Length of the longest valid prefix of s (== len when all valid). */
size_t ec_utf8_valid_len(const char *s, size_t len);

#endif
