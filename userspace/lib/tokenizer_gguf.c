// SPDX-License-Identifier: MIT
/* Loading the tokenizer from GGUF metadata (tokenizer.ggml.*, model gpt2). */
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "ec_error.h"
#include "ec_gguf.h"
#include "tokenizer_internal.h"

/* llama.cpp's token types (enum llama_token_type). */
enum {
	TOKEN_CONTROL = 3,
	TOKEN_USER_DEFINED = 4,
};

/* Pre-tokenizers by tokenizer.ggml.pre name, as llama.cpp names them. */
static const struct {
	const char *name;
	const char *pattern;
	unsigned flags;
} pre_types[] = {
	{ "qwen2", ec_tok_pattern_qwen2, EC_TOK_NFC },
	{ "gpt2", ec_tok_pattern_gpt2, 0 },
	{ "default", ec_tok_pattern_gpt2, 0 },
};

static int get_str(const struct ec_gguf *g, const char *key, char *buf,
		   size_t size)
{
	int err = ec_gguf_get_str_copy(g, key, buf, size);

	if (err == -EC_EMISSING)
		return ec_err(err, "%s: no key '%s'", g->filename, key);
	return err;
}

static int32_t opt_id(const struct ec_gguf *g, const char *key)
{
	uint32_t v;

	if (ec_gguf_get_u32(g, key, &v) || v > INT32_MAX)
		return -1;
	return v;
}

static int load_tokens(struct ec_tokenizer *tok, const struct ec_gguf *g,
		       const struct ec_gguf_kv *tokens,
		       const struct ec_gguf_kv *types)
{
	struct ec_tok_added t;
	const char *s;
	uint64_t i, len;
	int64_t type;
	int err = 0;

	for (i = 0; i < tokens->count; i++) {
		err = ec_gguf_arr_str(g, tokens, i, &s, &len);
		if (!err)
			err = ec_tok_set_token(tok, i, s, len);
		if (err)
			return err;
		if (!types)
			continue;
		err = ec_gguf_arr_i64(g, types, i, &type);
		if (err)
			return err;
		if (type != TOKEN_CONTROL && type != TOKEN_USER_DEFINED)
			continue;
		memset(&t, 0, sizeof(t));
		t.id = i;
		t.content = s;
		t.len = len;
		t.special = type == TOKEN_CONTROL;
		err = ec_tok_add_special(tok, &t);
		if (err)
			return err;
	}
	return err;
}

static int load_merges(struct ec_tokenizer *tok, const struct ec_gguf *g,
		       const struct ec_gguf_kv *merges)
{
	const char *s, *sp;
	uint64_t i, len;
	int err;

	for (i = 0; i < merges->count; i++) {
		err = ec_gguf_arr_str(g, merges, i, &s, &len);
		if (err)
			return err;
		/* as llama.cpp: the first space after the first byte */
		sp = len > 1 ? memchr(s + 1, ' ', len - 1) : NULL;
		if (!sp)
			return ec_err(-EC_EFORMAT, "%s: tokenizer.ggml.merges[%"
				      PRIu64 "]: '%.*s' is not 'left right'",
				      g->filename, i, (int)len, s);
		err = ec_tok_add_merge(tok, s, sp - s, sp + 1,
				       len - (sp + 1 - s));
		if (err)
			return err;
	}
	return 0;
}

int ec_tok_load_gguf(const struct ec_gguf *g, struct ec_tokenizer **out)
{
	const struct ec_gguf_kv *tokens, *merges, *types = NULL;
	struct ec_tokenizer *tok = NULL;
	char model[64], pre[64] = "default";
	size_t i;
	int err;

	*out = NULL;
	err = get_str(g, "tokenizer.ggml.model", model, sizeof(model));
	if (err)
		return err;
	if (strcmp(model, "gpt2"))
		return ec_err(-EC_EUNSUPPORTED, "%s: tokenizer.ggml.model '%s' "
			      "is not supported (only gpt2, byte-level BPE)",
			      g->filename, model);
	err = get_str(g, "tokenizer.ggml.pre", pre, sizeof(pre));
	if (err && err != -EC_EMISSING)
		return err;
	for (i = 0; i < sizeof(pre_types) / sizeof(pre_types[0]); i++)
		if (!strcmp(pre, pre_types[i].name))
			break;
	if (i == sizeof(pre_types) / sizeof(pre_types[0]))
		return ec_err(-EC_EUNSUPPORTED, "%s: tokenizer.ggml.pre '%s' "
			      "is not supported (qwen2, gpt2, default)",
			      g->filename, pre);
	err = ec_gguf_get_arr(g, "tokenizer.ggml.tokens", EC_GGUF_STRING,
			      &tokens);
	if (!err)
		err = ec_gguf_get_arr(g, "tokenizer.ggml.merges",
				      EC_GGUF_STRING, &merges);
	if (err)
		return err;
	err = ec_gguf_get_arr(g, "tokenizer.ggml.token_type", EC_GGUF_NTYPES,
			      &types);
	if (err == -EC_EMISSING)
		types = NULL;
	else if (err)
		return err;
	if (types && types->count != tokens->count)
		return ec_err(-EC_EFORMAT, "%s: tokenizer.ggml.token_type has "
			      "%" PRIu64 " entries for %" PRIu64 " tokens",
			      g->filename, types->count, tokens->count);
	if (tokens->count > INT32_MAX / 2)
		return ec_err(-EC_EFORMAT, "%s: tokenizer.ggml.tokens: %" PRIu64
			      " tokens", g->filename, tokens->count);
	err = ec_tok_new(g->filename, tokens->count, pre_types[i].pattern,
			 pre_types[i].flags, &tok);
	if (!err)
		err = load_tokens(tok, g, tokens, types);
	if (!err)
		err = load_merges(tok, g, merges);
	if (!err)
		err = ec_tok_set_ids(tok,
				     opt_id(g, "tokenizer.ggml.bos_token_id"),
				     opt_id(g, "tokenizer.ggml.eos_token_id"),
				     opt_id(g,
					    "tokenizer.ggml.padding_token_id"));
	if (!err)
		err = ec_tok_finish(tok);
	if (err) {
		ec_tok_free(tok);
		return err;
	}
	*out = tok;
	return 0;
}
