/* SPDX-License-Identifier: MIT */
/* Private state of the BPE tokenizer, shared by the tokenizer_*.c files. */
#ifndef EC_TOKENIZER_INTERNAL_H
#define EC_TOKENIZER_INTERNAL_H

#define PCRE2_CODE_UNIT_WIDTH 8
#include <pcre2.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "ec_tokenizer.h"

#define EC_TOK_NONE UINT32_MAX

/* A growable byte arena; entries are addressed by offset. */
struct ec_tok_arena {
	char *buf;
	size_t used, cap;
};

/* A growable id vector (encode output). */
struct ec_tok_vec {
	int32_t *v;	/* [cap] */
	size_t n, cap;
};

/* One BPE merge: (left id, right id) -> merged id, by rank. */
struct ec_tok_merge {
	uint64_t key;	/* left << 32 | right */
	/* rank == EC_TOK_NONE marks an empty slot */
	uint32_t rank;
	uint32_t id;
};

/* An added token as matched in text (content NFC'd when normalized). */
struct ec_tok_match {
	int32_t id;
	uint32_t off, len;	/* matched form in added_text */
	uint32_t orig_off, orig_len;	/* content as given */
	uint32_t order;		/* index in the order they were added */
	uint8_t first;		/* first byte of the matched form */
	bool lstrip, rstrip, single_word, normalized, special;
};

struct ec_tokenizer {
	char *name;		/* for messages */
	uint32_t n_vocab;
	unsigned flags;		/* EC_TOK_NFC, EC_TOK_IGNORE_MERGES */
	int32_t bos, eos, pad;
	bool finished;

	/* per id: spelling in the byte alphabet, and the bytes it decodes to */
	uint32_t *spell_off, *spell_len;	/* [n_vocab], NONE = hole */
	uint32_t *bytes_off, *bytes_len;	/* [n_vocab] */
	struct ec_tok_arena spell, bytes;
	uint8_t *special;			/* [n_vocab] bool */

	/* spelling -> id + 1 (0 = empty slot), open addressing */
	uint32_t *vocab_hash;			/* [vocab_mask + 1] */
	uint32_t vocab_mask;

	int32_t byte_id[256];	/* id of each byte's one-byte token */

	struct ec_tok_merge *merges;		/* [merge_mask + 1] */
	uint32_t merge_mask, n_merges;

	/* added tokens, sorted by (normalized, first byte); match_start[g][b]
	 * .. match_start[g][b + 1] are group g's tokens beginning with b */
	struct ec_tok_match *added;		/* [n_added] */
	uint32_t n_added, added_cap;
	uint32_t match_start[2][257];
	struct ec_tok_arena added_text;

	char *pattern;
	pcre2_code *re;		/* pre-tokenizer */
	pcre2_code *re_space;	/* ^\s* / \s*$ for lstrip and rstrip */
	pcre2_code *re_word;	/* one \w character, for single_word */
};

/* A pending merge: ordered by rank, then position (leftmost first). */
struct ec_tok_heap_ent {
	uint64_t key;	/* rank << 32 | pos */
	int32_t id;	/* the merged id it was queued for */
};

/* Reusable buffers for one encode call. */
struct ec_tok_scratch {
	pcre2_match_data *md;
	char *norm;		/* NFC output, [norm_cap] */
	size_t norm_cap;
	void *u16;		/* ICU UTF-16 input, [u16_cap] */
	void *u16_out;		/* ICU UTF-16 output, [u16_out_cap] */
	size_t u16_cap, u16_out_cap;
	/* BPE working set, [cap] each */
	int32_t *sym_id;
	int32_t *sym_prev, *sym_next;
	struct ec_tok_heap_ent *heap;	/* [3 * cap] */
	size_t cap, heap_n;
	char *spell;		/* [2 * cap] byte-alphabet spelling */
};

/* One piece of text after cutting out added tokens. */
struct ec_tok_split {
	size_t start, end;	/* byte range in the text that was split */
	int32_t id;		/* the added token, or -1 for plain text */
};

struct ec_tok_splits {
	struct ec_tok_split *v;	/* [cap] */
	size_t n, cap;
};

/*
 * Cut the added tokens of group `normalized` out of s[len], as tokenizers'
 * AddedVocabulary::find_matches does; appends to out (cleared first).
 */
int ec_tok_split_added(const struct ec_tokenizer *tok, bool normalized,
		       const char *s, size_t len, pcre2_match_data *md,
		       struct ec_tok_splits *out);

/* Set id's spelling (kept in the hash unless taken and !replace). */
int ec_tok_put(struct ec_tokenizer *tok, uint32_t id, const char *s,
	       size_t len, bool replace);
/* Set what id decodes to, from a spelling. */
int ec_tok_set_bytes(struct ec_tokenizer *tok, uint32_t id, const char *s,
		     size_t len);

int ec_tok_arena_put(struct ec_tok_arena *a, const void *s, size_t len,
		     uint32_t *off);
int ec_tok_vec_push(struct ec_tok_vec *v, int32_t id);

uint64_t ec_tok_hash_bytes(const void *s, size_t len);
/* Id of a vocabulary spelling, -1 if none. */
int32_t ec_tok_vocab_find(const struct ec_tokenizer *tok, const char *s,
			  size_t len);
/* The merge for (a, b), NULL if none. */
const struct ec_tok_merge *ec_tok_merge_find(const struct ec_tokenizer *tok,
					     int32_t a, int32_t b);

/* GPT-2 byte alphabet: byte -> code point, and code point -> byte (-1). */
uint32_t ec_tok_byte_to_cp(uint8_t b);
int ec_tok_cp_to_byte(uint32_t cp);

/* Compile a tokenizer.json (Oniguruma) regex to PCRE2 with the same meaning. */
int ec_tok_regex_compile(const char *name, const char *pattern,
			 pcre2_code **out);

/* BPE-merge one pre-tokenized split (raw bytes) into out. */
int ec_tok_bpe(const struct ec_tokenizer *tok, const unsigned char *p,
	       size_t n, struct ec_tok_scratch *sc, struct ec_tok_vec *out);

/* NFC of valid UTF-8 s[len] into sc->norm; *out points at s or sc->norm. */
int ec_tok_nfc(const char *s, size_t len, struct ec_tok_scratch *sc,
	       const char **out, size_t *out_len);
void ec_tok_scratch_free(struct ec_tok_scratch *sc);

#endif
