// SPDX-License-Identifier: MIT
/*
 * libFuzzer target: encode arbitrary bytes, decode them back, stream-decode
 * arbitrary ids.  Uses a small built-in tokenizer.json (or the one named
 * by $EC_FUZZ_TOKENIZER, e.g. the unpacked Qwen3 tokenizer.json).
 */
#include <jansson.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ec_error.h"
#include "ec_tokenizer.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define CHECK(c)                                                             \
	do {                                                                 \
		if (!(c)) {                                                  \
			fprintf(stderr, "%s:%d: check failed: %s (%s)\n",    \
				__FILE__, __LINE__, #c, ec_error_msg());     \
			abort();                                             \
		}                                                            \
	} while (0)

/* raw bytes -> GPT-2 byte alphabet (UTF-8), as in its reference Python */
static void spell(const char *raw, size_t n, char *out)
{
	size_t i, o = 0;
	unsigned b, cp, k, m;

	for (i = 0; i < n; i++) {
		b = (unsigned char)raw[i];
		cp = b;
		if (!((b >= '!' && b <= '~') || (b >= 0xa1 && b <= 0xac) ||
		      (b >= 0xae))) {
			for (k = 0, m = 0; k < b; k++)
				if (!((k >= '!' && k <= '~') ||
				      (k >= 0xa1 && k <= 0xac) || (k >= 0xae)))
					m++;
			cp = 256 + m;
		}
		if (cp < 0x80) {
			out[o++] = cp;
		} else {
			out[o++] = 0xc0 | cp >> 6;
			out[o++] = 0x80 | (cp & 0x3f);
		}
	}
	out[o] = 0;
}

static json_t *added(int id, const char *content, const char *flags)
{
	return json_pack("{s:i, s:s, s:b, s:b, s:b, s:b, s:b}", "id", id,
			 "content", content, "special", !!strchr(flags, 'S'),
			 "lstrip", !!strchr(flags, 'L'), "rstrip",
			 !!strchr(flags, 'R'), "single_word",
			 !!strchr(flags, 'W'), "normalized",
			 !!strchr(flags, 'N'));
}

/*
 * The built-in tokenizer: 256 byte tokens, merges that chain (he, " t",
 * " the", "00" "0000", a 3-byte euro, ...), added tokens.  With `flags`
 * the added tokens strip spaces, match single words or normalized text,
 * which loses text on purpose; without, decode(encode(x)) == x.
 */
static struct ec_tokenizer *builtin(bool flags)
{
	static const char *const merges[][2] = {
		{ "h", "e" }, { " ", "t" }, { " t", "he" }, { "a", "b" },
		{ "ab", "c" }, { "b", "c" }, { "\xc3", "\xa9" },
		{ "\xe2", "\x82" }, { "\xe2\x82", "\xac" }, { "0", "0" },
		{ "00", "00" }, { " ", " " }, { "  ", "  " }, { "\n", "\n" },
		{ "'", "s" }, { "i", "n" }, { " ", "in" }, { "e", "\xcc" },
	};
	json_t *root, *vocab, *mlist, *alist;
	struct ec_tokenizer *tok = NULL;
	char a[32], b[32], ab[64], raw[32], *js;
	unsigned i, n = 256;
	int err;

	vocab = json_object();
	mlist = json_array();
	alist = json_array();
	for (i = 0; i < 256; i++) {
		raw[0] = i;
		spell(raw, 1, a);
		json_object_set_new(vocab, a, json_integer(i));
	}
	for (i = 0; i < sizeof(merges) / sizeof(merges[0]); i++) {
		spell(merges[i][0], strlen(merges[i][0]), a);
		spell(merges[i][1], strlen(merges[i][1]), b);
		snprintf(ab, sizeof(ab), "%s%s", a, b);
		if (!json_object_get(vocab, ab))
			json_object_set_new(vocab, ab, json_integer(n++));
		json_array_append_new(mlist, json_pack("[s, s]", a, b));
	}
	json_array_append_new(alist, added(n++, "<|im|>", "S"));
	json_array_append_new(alist, added(n++, "<|im|>x", ""));
	json_array_append_new(alist, added(n++, "<|eot|>", "S"));
	if (flags) {
		json_array_append_new(alist, added(n++, "<m>", "LR"));
		json_array_append_new(alist, added(n++, "[L]", "L"));
		json_array_append_new(alist, added(n++, "ony", "W"));
		json_array_append_new(alist, added(n++, "\xc3\xa9t\xc3\xa9",
						   "N"));
		json_array_append_new(alist, added(n++, "\xe2\x84\xa6", "NS"));
	}
	root = json_pack(
		"{s:{s:s, s:o, s:o}, s:o, s:o, s:{s:s, s:[{s:s, s:{s:s}, "
		"s:s, s:b}, {s:s, s:b, s:b}]}, s:{s:s}}",
		"model", "type", "BPE", "vocab", vocab, "merges", mlist,
		"added_tokens", alist,
		"normalizer", flags ? json_pack("{s:s}", "type", "NFC") :
				      json_null(),
		"pre_tokenizer", "type", "Sequence", "pretokenizers", "type",
		"Split", "pattern", "Regex", ec_tok_pattern_qwen2, "behavior",
		"Isolated", "invert", 0, "type", "ByteLevel",
		"add_prefix_space", 0, "use_regex", 0, "decoder", "type",
		"ByteLevel");
	CHECK(root);
	js = json_dumps(root, JSON_COMPACT);
	CHECK(js);
	err = ec_tok_load_json_buf(js, strlen(js), "builtin", &tok);
	CHECK(!err);
	free(js);
	json_decref(root);
	return tok;
}

static struct ec_tokenizer *tok_exact, *tok_flags;

static void setup(void)
{
	const char *path = getenv("EC_FUZZ_TOKENIZER");

	if (tok_exact)
		return;
	if (path && *path) {
		/* a real tokenizer normalizes: only the lossy checks apply */
		CHECK(!ec_tok_load_json(path, &tok_flags));
		tok_exact = builtin(false);
	} else {
		tok_exact = builtin(false);
		tok_flags = builtin(true);
	}
}

/* Stream-decode ids; the output must be valid UTF-8 and, when the plain
 * decode is valid UTF-8 itself, identical to it. */
static void check_stream(const struct ec_tokenizer *tok, const int32_t *ids,
			 size_t n, const char *plain, size_t plain_len)
{
	struct ec_tok_stream *st;
	size_t cap = 4 * plain_len + 16, used = 0, len, i;
	char *buf = malloc(cap);
	const char *t;

	CHECK(buf && !ec_tok_stream_new(tok, 0, &st));
	for (i = 0; i <= n; i++) {
		if (i < n)
			CHECK(!ec_tok_stream_push(st, ids[i], &t, &len));
		else
			CHECK(!ec_tok_stream_flush(st, &t, &len));
		CHECK(used + len <= cap);
		memcpy(buf + used, t, len);
		used += len;
		CHECK(ec_utf8_valid_len(buf, used) == used);
	}
	if (ec_utf8_valid_len(plain, plain_len) == plain_len)
		CHECK(used == plain_len && !memcmp(buf, plain, used));
	ec_tok_stream_free(st);
	free(buf);
}

static void round_trip(const struct ec_tokenizer *tok, const char *text,
		       size_t size, bool exact)
{
	bool valid = ec_utf8_valid_len(text, size) == size;
	int32_t *ids;
	size_t n, len, i;
	char *out;
	int err;

	err = ec_tok_encode(tok, text, size, &ids, &n);
	if (!valid) {
		CHECK(err == -EC_EINVAL);
		return;
	}
	CHECK(!err);
	for (i = 0; i < n; i++)
		CHECK(ids[i] >= 0 && (uint32_t)ids[i] < ec_tok_n_vocab(tok));
	CHECK(!ec_tok_decode(tok, ids, n, 0, &out, &len));
	if (exact)
		CHECK(len == size && !memcmp(out, text, size));
	check_stream(tok, ids, n, out, len);
	free(out);
	free(ids);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const char *text = (const char *)data;
	int32_t ids[64];
	size_t n, i, len;
	char *out;

	setup();
	round_trip(tok_exact, text, size, true);
	round_trip(tok_flags, text, size, false);

	/* the bytes as ids (some out of range), through both decoders */
	n = size / 2 < 64 ? size / 2 : 64;
	for (i = 0; i < n; i++)
		ids[i] = (data[2 * i] | data[2 * i + 1] << 8) %
			 (ec_tok_n_vocab(tok_exact) + 2);
	if (!ec_tok_decode(tok_exact, ids, n, 0, &out, &len)) {
		check_stream(tok_exact, ids, n, out, len);
		free(out);
	} else {
		CHECK(strstr(ec_error_msg(), "not in the vocabulary"));
	}
	return 0;
}
