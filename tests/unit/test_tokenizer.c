// SPDX-License-Identifier: MIT
/* Unit tests of the BPE tokenizer: UTF-8, BPE order, added tokens, decode. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "ec_error.h"
#include "ec_gguf.h"
#include "ec_test.h"
#include "ec_tokenizer.h"
#include "gguf_build.h"

/*
 * GPT-2's bytes_to_unicode, written as in its reference Python: printable
 * bytes keep their value, the rest get 256, 257, ... in byte order.
 */
static void byte_spelling(unsigned b, char out[3])
{
	unsigned cp = b, n = 0, i;

	if (!((b >= '!' && b <= '~') || (b >= 0xa1 && b <= 0xac) ||
	      (b >= 0xae && b <= 0xff))) {
		for (i = 0; i < b; i++)
			if (!((i >= '!' && i <= '~') ||
			      (i >= 0xa1 && i <= 0xac) ||
			      (i >= 0xae && i <= 0xff)))
				n++;
		cp = 256 + n;
	}
	if (cp < 0x80) {
		out[0] = cp;
		out[1] = 0;
	} else {
		out[0] = 0xc0 | cp >> 6;
		out[1] = 0x80 | (cp & 0x3f);
		out[2] = 0;
	}
}

/* Ids 0..255: the bytes; then merged tokens; then added tokens. */
enum { ID_AB = 256, ID_BC, ID_ABC, ID_AA, ID_SP_T, ID_IM, ID_IMX, ID_EOT,
       N_VOCAB };

static struct ec_tokenizer *tiny(void)
{
	static const struct { const char *a, *b, *ab; uint32_t id; } m[] = {
		{ "a", "b", "ab", ID_AB },
		{ "b", "c", "bc", ID_BC },
		{ "ab", "c", "abc", ID_ABC },
		{ "a", "a", "aa", ID_AA },
		{ "\xc4\xa0", "t", "\xc4\xa0t", ID_SP_T },	/* "Ġt" */
	};
	struct ec_tok_added ad = { .special = true };
	struct ec_tokenizer *tok;
	char sp[3];
	unsigned b, i;
	int err;

	err = ec_tok_new("tiny", N_VOCAB, ec_tok_pattern_qwen2, EC_TOK_NFC,
			 &tok);
	EC_CHECK(!err, "ec_tok_new: %s", ec_error_msg());
	if (err)
		return NULL;
	for (b = 0; b < 256; b++) {
		byte_spelling(b, sp);
		err |= ec_tok_set_token(tok, b, sp, strlen(sp));
	}
	for (i = 0; i < sizeof(m) / sizeof(m[0]); i++)
		err |= ec_tok_set_token(tok, m[i].id, m[i].ab, strlen(m[i].ab));
	for (i = 0; i < sizeof(m) / sizeof(m[0]); i++)
		err |= ec_tok_add_merge(tok, m[i].a, strlen(m[i].a), m[i].b,
					strlen(m[i].b));
	ad.id = ID_IM;
	ad.content = "<|im|>";
	ad.len = 6;
	err |= ec_tok_add_special(tok, &ad);
	ad.id = ID_IMX;
	ad.content = "<|im|>x";
	ad.len = 7;
	ad.special = false;
	err |= ec_tok_add_special(tok, &ad);
	ad.id = ID_EOT;
	ad.content = "<|eot|>";
	ad.len = 7;
	ad.special = true;
	err |= ec_tok_add_special(tok, &ad);
	err |= ec_tok_set_ids(tok, -1, ID_EOT, -1);
	err |= ec_tok_finish(tok);
	EC_CHECK(!err, "building the tiny tokenizer: %s", ec_error_msg());
	if (err) {
		ec_tok_free(tok);
		return NULL;
	}
	return tok;
}

/* Encode text and compare with the expected ids (terminated by -1). */
static void expect_ids(const struct ec_tokenizer *tok, const char *text,
		       const int32_t *want)
{
	int32_t *ids;
	size_t n, k = 0, i;
	int err;

	while (want[k] >= 0)
		k++;
	err = ec_tok_encode(tok, text, strlen(text), &ids, &n);
	EC_CHECK(!err, "encode '%s': %s", text, ec_error_msg());
	if (err)
		return;
	for (i = 0; i < n && i < k && ids[i] == want[i]; i++)
		;
	EC_CHECK(n == k && i == k, "encode '%s': %zu ids, first difference at "
		 "%zu (got %d, want %d)", text, n, i, i < n ? ids[i] : -1,
		 i < k ? want[i] : -1);
	free(ids);
}

static void test_utf8(void)
{
	static const struct { const char *s; int want; } v[] = {
		{ "A", 1 }, { "\xc3\xa9", 2 }, { "\xe2\x82\xac", 3 },
		{ "\xf0\x9f\x98\x80", 4 },
		{ "\xc0\x80", -1 },		/* overlong NUL */
		{ "\xc1\xbf", -1 },		/* overlong */
		{ "\xe0\x80\x80", -1 },		/* overlong, 3 bytes */
		{ "\xf0\x80\x80\x80", -1 },	/* overlong, 4 bytes */
		{ "\xed\xa0\x80", -1 },		/* surrogate U+D800 */
		{ "\xf4\x90\x80\x80", -1 },	/* U+110000 */
		{ "\xf5\x80\x80\x80", -1 },
		{ "\x80", -1 },			/* lone continuation */
		{ "\xe2\x28\xa1", -1 },		/* bad second byte */
		{ "\xe2\x82\x28", -2 },		/* bad third byte */
		{ "\xe2\x82", 0 },		/* unfinished */
		{ "\xf0\x9f\x98", 0 },
	};
	uint32_t cp;
	size_t i;

	for (i = 0; i < sizeof(v) / sizeof(v[0]); i++) {
		int k = ec_utf8_seq((const unsigned char *)v[i].s,
				    strlen(v[i].s), &cp);

		EC_CHECK(k == v[i].want, "ec_utf8_seq case %zu: %d, want %d",
			 i, k, v[i].want);
	}
	ec_utf8_seq((const unsigned char *)"\xf0\x9f\x98\x80", 4, &cp);
	EC_CHECK(cp == 0x1f600, "code point of U+1F600: %x", cp);
	EC_CHECK(ec_utf8_valid_len("ab\xc3\xa9\xff", 5) == 4,
		 "valid prefix length");
	EC_CHECK(ec_utf8_valid_len("", 0) == 0, "empty valid prefix");
}

static void test_encode(const struct ec_tokenizer *tok)
{
	int32_t *ids = NULL;
	size_t n = 99;
	int err;

	expect_ids(tok, "abc", (const int32_t[]){ ID_ABC, -1 });
	/* (b, c) merges; nothing joins b with bc */
	expect_ids(tok, "bbc", (const int32_t[]){ 'b', ID_BC, -1 });
	/* equal ranks: the leftmost pair first */
	expect_ids(tok, "aaa", (const int32_t[]){ ID_AA, 'a', -1 });
	/* (a, b) outranks (b, c), and then (ab, c) applies */
	expect_ids(tok, "abcbc", (const int32_t[]){ ID_ABC, ID_BC, -1 });
	/* " t" is one split; the byte for ' ' is spelled Ġ */
	expect_ids(tok, "a t", (const int32_t[]){ 'a', ID_SP_T, -1 });
	/* added tokens: leftmost, then longest; matched inside words */
	expect_ids(tok, "<|im|>x<|im|>ab<|eot|>",
		   (const int32_t[]){ ID_IMX, ID_IM, ID_AB, ID_EOT, -1 });
	expect_ids(tok, "<|im|<|im|>", (const int32_t[]){ '<', '|', 'i', 'm',
		   '|', ID_IM, -1 });
	/* NFC first: a + U+0301 encodes like U+00E1 (bytes c3 a1) */
	expect_ids(tok, "a\xcc\x81", (const int32_t[]){ 0xc3, 0xa1, -1 });

	err = ec_tok_encode(tok, "", 0, &ids, &n);
	EC_CHECK(!err && n == 0 && ids, "empty input: err %d, %zu ids", err,
		 n);
	free(ids);

	err = ec_tok_encode(tok, "abc\xe2\x28\xa1", 6, &ids, &n);
	EC_CHECK(err == -EC_EINVAL, "invalid UTF-8: err %d", err);
	EC_CHECK(strstr(ec_error_msg(), "offset 3"),
		 "invalid UTF-8 message names the offset: '%s'",
		 ec_error_msg());
	EC_CHECK(!ids && n == 0, "no ids on error");
	err = ec_tok_encode(tok, "a\0b", 3, &ids, &n);
	EC_CHECK(!err && n == 3 && ids[1] == 0, "a NUL byte is text: %d %zu",
		 err, n);
	free(ids);
}

static void test_lookup(struct ec_tokenizer *tok)
{
	int32_t id;

	EC_CHECK(ec_tok_lookup(tok, "<|eot|>", 7) == ID_EOT, "lookup special");
	EC_CHECK(ec_tok_lookup(tok, "ab", 2) == ID_AB, "lookup vocab");
	id = ec_tok_lookup(tok, "<|nope|>", 8);
	EC_CHECK(id == -EC_EMISSING, "unknown token: %d", id);
	EC_CHECK(strstr(ec_error_msg(), "<|nope|>"),
		 "message names the token: '%s'", ec_error_msg());
	EC_CHECK(ec_tok_eos_id(tok) == ID_EOT && ec_tok_bos_id(tok) == -1,
		 "eos/bos ids");
	EC_CHECK(ec_tok_is_special(tok, ID_IM) &&
		 !ec_tok_is_special(tok, ID_IMX) && !ec_tok_is_special(tok, 5),
		 "special flags");
	EC_CHECK(ec_tok_set_token(tok, 1, "x", 1) == -EC_EINVAL,
		 "no changes after finish");
}

static void test_decode(const struct ec_tokenizer *tok)
{
	const int32_t ids[] = { ID_IM, ID_ABC, ' ', ID_SP_T, ID_EOT };
	const int32_t bad[] = { 1, N_VOCAB };
	char *out;
	size_t len;
	int err;

	err = ec_tok_decode(tok, ids, 5, 0, &out, &len);
	EC_CHECK(!err && len == 19 && !strcmp(out, "<|im|>abc  t<|eot|>"),
		 "decode: %d '%.*s'", err, (int)len, out ? out : "");
	free(out);
	err = ec_tok_decode(tok, ids, 5, EC_TOK_SKIP_SPECIAL, &out, &len);
	EC_CHECK(!err && len == 6 && !strcmp(out, "abc  t"),
		 "decode skipping specials: '%s'", out ? out : "");
	free(out);
	err = ec_tok_decode(tok, bad, 2, 0, &out, &len);
	EC_CHECK(err == -EC_EINVAL && !out, "bad id: %d", err);
	err = ec_tok_decode(tok, ids, 0, 0, &out, &len);
	EC_CHECK(!err && len == 0 && out && !*out, "decode nothing");
	free(out);
}

/* Push ids one at a time; compare the concatenated text. */
static void expect_stream(const struct ec_tokenizer *tok, const int32_t *ids,
			  size_t n, const char *want, const char *what)
{
	struct ec_tok_stream *st;
	char got[64] = "";
	const char *t;
	size_t len, used = 0, i;
	int err;

	err = ec_tok_stream_new(tok, EC_TOK_SKIP_SPECIAL, &st);
	EC_CHECK(!err, "stream_new");
	if (err)
		return;
	for (i = 0; i <= n && !err; i++) {
		if (i < n)
			err = ec_tok_stream_push(st, ids[i], &t, &len);
		else
			err = ec_tok_stream_flush(st, &t, &len);
		if (!err && used + len < sizeof(got)) {
			memcpy(got + used, t, len);
			used += len;
			got[used] = 0;
		}
		/* what came out so far is always whole characters */
		EC_CHECK(ec_utf8_valid_len(got, used) == used,
			 "%s: partial character after id %zu", what, i);
	}
	EC_CHECK(!err && !strcmp(got, want), "%s: got '%s' want '%s'", what,
		 got, want);
	ec_tok_stream_free(st);
}

static void test_stream(const struct ec_tokenizer *tok)
{
	struct ec_tok_stream *st;
	const char *t;
	size_t len;

	/* € is e2 82 ac: nothing comes out until its last byte */
	expect_stream(tok, (const int32_t[]){ 'a', 0xe2, 0x82, 0xac, 'b' }, 5,
		      "a\xe2\x82\xac" "b", "euro split in three");
	expect_stream(tok, (const int32_t[]){ 0xf0, 0x9f, 0x98, 0x80 }, 4,
		      "\xf0\x9f\x98\x80", "emoji byte by byte");
	/* a sequence cut short: one U+FFFD, then the next character */
	expect_stream(tok, (const int32_t[]){ 0xe2, 0x82, 'x' }, 3,
		      "\xef\xbf\xbdx", "broken sequence");
	expect_stream(tok, (const int32_t[]){ 0xff, 'y', 0xc3 }, 3,
		      "\xef\xbf\xbdy\xef\xbf\xbd", "bad byte, unfinished end");
	/* special tokens are skipped; held bytes survive them */
	expect_stream(tok, (const int32_t[]){ 0xc3, ID_EOT, 0xa9 }, 3,
		      "\xc3\xa9", "special token inside a character");

	ec_tok_stream_new(tok, 0, &st);
	EC_CHECK(ec_tok_stream_push(st, -5, &t, &len) == -EC_EINVAL,
		 "stream: bad id");
	ec_tok_stream_free(st);
}

static const char tiny_json_head[] =
	"{\"model\": {\"vocab\": {";

/* A tokenizer.json: the 256 byte tokens, then `tail` closes it. */
static char *json_with(const char *tail)
{
	size_t cap = 16384, n;
	char *s = malloc(cap), sp[3];
	unsigned b;

	n = snprintf(s, cap, "%s", tiny_json_head);
	for (b = 0; b < 256; b++) {
		byte_spelling(b, sp);
		if (b == '"' || b == '\\')
			n += snprintf(s + n, cap - n, "\"\\%s\": %u, ", sp, b);
		else
			n += snprintf(s + n, cap - n, "\"%s\": %u, ", sp, b);
	}
	snprintf(s + n, cap - n, "%s", tail);
	return s;
}

static void expect_json(const char *tail, int want, const char *what,
			const char *msg_part)
{
	struct ec_tokenizer *tok = NULL;
	char *js = json_with(tail);
	int err = ec_tok_load_json_buf(js, strlen(js), "t.json", &tok);

	EC_CHECK(err == want, "%s: err %d want %d (%s)", what, err, want,
		 ec_error_msg());
	if (msg_part)
		EC_CHECK(strstr(ec_error_msg(), msg_part),
			 "%s: message '%s' lacks '%s'", what, ec_error_msg(),
			 msg_part);
	if (!err) {
		int32_t *ids;
		size_t n;

		err = ec_tok_encode(tok, "abab", 4, &ids, &n);
		EC_CHECK(!err && n == 2 && ids[0] == 256 && ids[1] == 256,
			 "%s: 'abab' -> ab ab", what);
		if (!err)
			free(ids);
	}
	ec_tok_free(tok);
	free(js);
}

static void test_json(void)
{
	static const char pre[] =
		"\"pre_tokenizer\": {\"type\": \"ByteLevel\", "
		"\"add_prefix_space\": false, \"use_regex\": true}";
	char tail[1024];
	struct ec_tokenizer *tok = NULL;

	snprintf(tail, sizeof(tail), "\"ab\": 256}, \"merges\": [\"a b\"], "
		 "\"type\": \"BPE\"}, \"added_tokens\": [{\"id\": 257, "
		 "\"content\": \"<s>\", "
		 "\"special\": true}], %s}", pre);
	expect_json(tail, 0, "valid, string merges", NULL);
	snprintf(tail, sizeof(tail), "\"ab\": 256}, \"merges\": [[\"a\", "
		 "\"b\"]]}, \"normalizer\": {\"type\": \"NFC\"}, %s}", pre);
	expect_json(tail, 0, "valid, pair merges", NULL);
	snprintf(tail, sizeof(tail), "\"ab\": 256}, \"merges\": [\"a zz\"]}, "
		 "%s}", pre);
	expect_json(tail, -EC_EFORMAT, "merge of an unknown token", "'zz'");
	snprintf(tail, sizeof(tail), "\"ab\": 256}, \"merges\": [\"a b\"]}, "
		 "\"normalizer\": {\"type\": \"Lowercase\"}, %s}", pre);
	expect_json(tail, -EC_EUNSUPPORTED, "unsupported normalizer",
		    "Lowercase");
	snprintf(tail, sizeof(tail), "\"ab\": 256}, \"merges\": []}, "
		 "\"pre_tokenizer\": {\"type\": \"Sequence\", \"pretokenizers\""
		 ": [{\"type\": \"Split\", \"pattern\": {\"Regex\": \"(\"}, "
		 "\"behavior\": \"Isolated\"}, {\"type\": \"ByteLevel\", "
		 "\"use_regex\": false}]}}");
	expect_json(tail, -EC_EFORMAT, "bad regex", "regex");
	snprintf(tail, sizeof(tail), "\"ab\": 256}, \"merges\": [], \"type\":"
		 " \"WordPiece\"}, %s}", pre);
	expect_json(tail, -EC_EUNSUPPORTED, "WordPiece", "WordPiece");
	snprintf(tail, sizeof(tail), "\"ab\": 256}, \"merges\": []}, "
		 "\"added_tokens\": [{\"id\": 999999999999, \"content\": "
		 "\"<s>\"}], %s}", pre);
	expect_json(tail, -EC_EFORMAT, "added token id out of range", NULL);
	EC_CHECK(ec_tok_load_json_buf("{\"model\": ", 10, "cut.json", &tok) ==
		 -EC_EFORMAT && strstr(ec_error_msg(), "cut.json"),
		 "truncated JSON: '%s'", ec_error_msg());
	EC_CHECK(ec_tok_load_json("/nonexistent/tokenizer.json", &tok) ==
		 -ENOENT, "missing file");
	/* no byte tokens at all */
	snprintf(tail, sizeof(tail), "{\"model\": {\"vocab\": {\"a\": 0}, "
		 "\"merges\": []}, %s}", pre);
	EC_CHECK(ec_tok_load_json_buf(tail, strlen(tail), "n.json", &tok) ==
		 -EC_EFORMAT && strstr(ec_error_msg(), "byte"),
		 "missing byte tokens: '%s'", ec_error_msg());
}

/* bos/eos/pad come from a tokenizer_config.json beside tokenizer.json. */
static void test_json_config(void)
{
	char dir[] = "/tmp/ec_tok_XXXXXX", path[64], tail[512];
	struct ec_tokenizer *tok = NULL;
	FILE *f;
	char *js;
	int err;

	if (!mkdtemp(dir)) {
		EC_SKIP("tokenizer_config.json: no temporary directory");
		return;
	}
	snprintf(tail, sizeof(tail), "\"ab\": 256}, \"merges\": [\"a b\"]}, "
		 "\"added_tokens\": [{\"id\": 257, \"content\": \"<s>\"}], "
		 "\"pre_tokenizer\": {\"type\": \"ByteLevel\"}}");
	js = json_with(tail);
	snprintf(path, sizeof(path), "%s/tokenizer_config.json", dir);
	f = fopen(path, "w");
	fputs("{\"bos_token\": null, \"eos_token\": \"<s>\", "
	      "\"pad_token\": {\"content\": \"ab\"}}", f);
	fclose(f);
	snprintf(path, sizeof(path), "%s/tokenizer.json", dir);
	f = fopen(path, "w");
	fputs(js, f);
	fclose(f);
	err = ec_tok_load_json(path, &tok);
	EC_CHECK(!err && ec_tok_eos_id(tok) == 257 && ec_tok_pad_id(tok) ==
		 256 && ec_tok_bos_id(tok) == -1,
		 "ids from tokenizer_config.json: %d (%s)", err, ec_error_msg());
	ec_tok_free(tok);
	remove(path);
	snprintf(path, sizeof(path), "%s/tokenizer_config.json", dir);
	remove(path);
	rmdir(dir);
	free(js);
}

/* What to get wrong in a tokenizer GGUF. */
enum { GG_OK, GG_MODEL, GG_PRE, GG_NO_MERGES, GG_TYPES, GG_MERGE, GG_EOS };

/* 256 byte tokens, "ab", a control and a user-defined token, "a b". */
static int load_gguf_variant(int what, struct ec_tokenizer **tok)
{
	static char spelled[256][3];
	const char *tokens[259], *merges[1] = { what == GG_MERGE ? "ab" :
						"a b" };
	int32_t types[259];
	struct gguf_build gb;
	struct ec_gguf *g = NULL;
	uint8_t *img;
	size_t len;
	int i, err;

	for (i = 0; i < 256; i++) {
		byte_spelling(i, spelled[i]);
		tokens[i] = spelled[i];
		types[i] = 6;	/* byte */
	}
	tokens[256] = "ab";
	tokens[257] = "<|s|>";
	tokens[258] = "<u>";
	types[256] = 1;
	types[257] = 3;
	types[258] = 4;
	gb_init(&gb, 3, 32);
	gb_kv_str(&gb, "general.architecture", "qwen3moe");
	gb_kv_str(&gb, "tokenizer.ggml.model", what == GG_MODEL ? "llama" :
		  "gpt2");
	gb_kv_str(&gb, "tokenizer.ggml.pre", what == GG_PRE ? "deepseek" :
		  "qwen2");
	gb_kv_arr_str(&gb, "tokenizer.ggml.tokens", tokens, 259);
	gb_kv_arr(&gb, "tokenizer.ggml.token_type", 5 /* i32 */, types,
		  what == GG_TYPES ? 258 : 259, 4);
	if (what != GG_NO_MERGES)
		gb_kv_arr_str(&gb, "tokenizer.ggml.merges", merges, 1);
	gb_kv_u32(&gb, "tokenizer.ggml.eos_token_id",
		  what == GG_EOS ? 259 : 257);
	img = gb_finish(&gb, &len);
	err = ec_gguf_parse(img, len, "t.gguf", &g);
	EC_CHECK(!err, "parse the test GGUF: %s", ec_error_msg());
	if (!err)
		err = ec_tok_load_gguf(g, tok);
	ec_gguf_free(g);
	gb_free(&gb);
	free(img);
	return err;
}

static void test_gguf(void)
{
	static const struct { int what, err; const char *msg; } bad[] = {
		{ GG_MODEL, -EC_EUNSUPPORTED, "llama" },
		{ GG_PRE, -EC_EUNSUPPORTED, "deepseek" },
		{ GG_NO_MERGES, -EC_EMISSING, "merges" },
		{ GG_TYPES, -EC_EFORMAT, "token_type" },
		{ GG_MERGE, -EC_EFORMAT, "merges[0]" },
		{ GG_EOS, -EC_EFORMAT, "eos" },
	};
	struct ec_tokenizer *tok = NULL;
	size_t i;
	int err;

	err = load_gguf_variant(GG_OK, &tok);
	EC_CHECK(!err, "load tokenizer from GGUF: %s", ec_error_msg());
	if (!err) {
		expect_ids(tok, "xab<|s|><u>a\xcc\x81",
			   (const int32_t[]){ 'x', 256, 257, 258, 0xc3, 0xa1,
					      -1 });
		EC_CHECK(ec_tok_eos_id(tok) == 257 && ec_tok_pad_id(tok) == -1,
			 "GGUF eos/pad ids");
		EC_CHECK(ec_tok_is_special(tok, 257) &&
			 !ec_tok_is_special(tok, 258),
			 "control is special, user-defined is not");
		ec_tok_free(tok);
	}
	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		tok = NULL;
		err = load_gguf_variant(bad[i].what, &tok);
		EC_CHECK(err == bad[i].err && !tok && strstr(ec_error_msg(),
							     bad[i].msg),
			 "bad GGUF %d: err %d want %d, message '%s'",
			 bad[i].what, err, bad[i].err, ec_error_msg());
	}
}

/* The real Qwen3 tokenizer, when gzip can unpack the repo's fixture. */
static void test_qwen3(void)
{
	static const char *const path =
		"tests/fixtures/qwen3-tokenizer/tokenizer.json.gz";
	/* ids from Hugging Face tokenizers 0.23 (add_special_tokens=False) */
	static const struct { const char *text; int32_t ids[12]; } v[] = {
		{ "Hello world", { 9707, 1879, -1 } },
		{ "def f(x):\n    return x  # ok\n",
		  { 750, 282, 2075, 982, 262, 470, 856, 220, 671, 5394, 198,
		    -1 } },
		{ "<|im_start|>user\n\xe4\xbd\xa0\xe5\xa5\xbd<|im_end|>",
		  { 151644, 872, 198, 108386, 151645, -1 } },
		{ "caf\xc3\xa9 cafe\xcc\x81", { 924, 58858, 51950, -1 } },
		{ "\xe2\x82\xac", { 15056, -1 } },
	};
	struct ec_tokenizer *tok = NULL;
	size_t len = 0, cap = 1 << 24, r, i;
	char cmd[256], *buf;
	FILE *f;
	int err;

	snprintf(cmd, sizeof(cmd), "gzip -dc %s 2>/dev/null", path);
	f = access(path, R_OK) ? NULL : popen(cmd, "r");
	buf = malloc(cap);
	while (f && buf && (r = fread(buf + len, 1, cap - len, f)) > 0) {
		len += r;
		if (len == cap)
			buf = realloc(buf, cap *= 2);
	}
	if (f)
		pclose(f);
	if (!f || !buf || len < 1000) {
		EC_SKIP("Qwen3 checks: cannot unpack %s (run from the repo "
			"root)", path);
		free(buf);
		return;
	}
	err = ec_tok_load_json_buf(buf, len, "qwen3/tokenizer.json", &tok);
	free(buf);
	EC_CHECK(!err, "load Qwen3 tokenizer.json: %s", ec_error_msg());
	if (err)
		return;
	EC_CHECK(ec_tok_n_vocab(tok) == 151669, "Qwen3 vocabulary %u",
		 ec_tok_n_vocab(tok));
	for (i = 0; i < sizeof(v) / sizeof(v[0]); i++)
		expect_ids(tok, v[i].text, v[i].ids);
	EC_CHECK(ec_tok_lookup(tok, "<|im_end|>", 10) == 151645,
		 "<|im_end|> id");
	ec_tok_free(tok);
}

int main(void)
{
	struct ec_tokenizer *tok;

	test_utf8();
	tok = tiny();
	if (tok) {
		test_encode(tok);
		test_lookup(tok);
		test_decode(tok);
		test_stream(tok);
		ec_tok_free(tok);
	}
	test_json();
	test_json_config();
	test_gguf();
	test_qwen3();
	return ec_test_done();
}
