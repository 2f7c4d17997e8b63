// SPDX-License-Identifier: MIT
/* `expertcache tokenize`: text to token ids and ids back to text. */
#include <fcntl.h>
#include <getopt.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "cli.h"
#include "ec_error.h"
#include "ec_gguf.h"
#include "ec_tokenizer.h"

static void usage(FILE *f)
{
	fprintf(f,
		"usage: expertcache tokenize [-m MODEL | --tokenizer FILE]\n"
		"                            (--text T | -f FILE | --jsonl FILE"
		" | --decode IDS)\n\n"
		"Encodes UTF-8 text to token ids (printed comma-separated), or "
		"decodes ids\nback to text (printed as the exact bytes, no "
		"newline added).\n\n"
		"  -m, --model MODEL     a .gguf file (tokenizer.ggml.* "
		"metadata) or a model\n"
		"                        directory with tokenizer.json "
		"(default: the bundled\n"
		"                        model)\n"
		"  -t, --tokenizer FILE  a Hugging Face tokenizer.json\n"
		"  --text T              encode T\n"
		"  -f, --file FILE       encode the contents of FILE (- = "
		"stdin)\n"
		"  --jsonl FILE          encode every line of FILE (a JSON "
		"string, or an\n"
		"                        object with \"text\" or \"prompt\"); "
		"print per line\n"
		"                        {\"ids\": [...], \"decoded\": "
		"\"...\"} (invalid UTF-8\n"
		"                        decoded as U+FFFD)\n"
		"  --decode IDS          decode comma-separated ids\n"
		"  --skip-special        when decoding, drop special tokens\n"
		"  -v, --verbose         timings on stderr\n"
		"  -h, --help            this help\n");
}

static double now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}

static int load_gguf(const char *path, struct ec_tokenizer **tok)
{
	struct ec_gguf *g = NULL;
	void *map = MAP_FAILED;
	struct stat st;
	int fd, err;

	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return ec_err(-errno, "%s: %s", path, strerror(errno));
	if (fstat(fd, &st) < 0) {
		err = ec_err(-errno, "%s: %s", path, strerror(errno));
		goto out;
	}
	if (st.st_size == 0) {
		err = ec_err(-EC_EFORMAT, "%s: empty file", path);
		goto out;
	}
	map = mmap(NULL, st.st_size, PROT_READ, MAP_PRIVATE, fd, 0);
	if (map == MAP_FAILED) {
		err = ec_err(-errno, "%s: mmap: %s", path, strerror(errno));
		goto out;
	}
	err = ec_gguf_parse(map, st.st_size, path, &g);
	if (!err)
		err = ec_tok_load_gguf(g, tok);
out:
	ec_gguf_free(g);
	if (map != MAP_FAILED)
		munmap(map, st.st_size);
	close(fd);
	return err;
}

static int load(const char *model, const char *json, struct ec_tokenizer **tok)
{
	char path[4096 + 32];
	struct stat st;

	if (json)
		return ec_tok_load_json(json, tok);
	if (!stat(model, &st) && S_ISDIR(st.st_mode)) {
		snprintf(path, sizeof(path), "%s/tokenizer.json", model);
		return ec_tok_load_json(path, tok);
	}
	return load_gguf(model, tok);
}

static int read_all(const char *path, char **buf, size_t *len)
{
	FILE *f = strcmp(path, "-") ? fopen(path, "rb") : stdin;
	size_t cap = 1 << 16, n = 0, r;
	char *b = NULL, *t;
	int err = 0;

	if (!f)
		return ec_err(-errno, "%s: %s", path, strerror(errno));
	for (;;) {
		t = realloc(b, cap + 1);
		if (!t) {
			err = -ENOMEM;
			break;
		}
		b = t;
		r = fread(b + n, 1, cap - n, f);
		n += r;
		if (n < cap) {
			if (ferror(f))
				err = ec_err(-EIO, "%s: read error", path);
			break;
		}
		cap *= 2;
	}
	if (f != stdin)
		fclose(f);
	if (err) {
		free(b);
		return err;
	}
	b[n] = '\0';
	*buf = b;
	*len = n;
	return 0;
}

static void print_ids(const int32_t *ids, size_t n)
{
	size_t i;

	for (i = 0; i < n; i++)
		printf(i ? ",%d" : "%d", ids[i]);
	putchar('\n');
}

static int encode_text(const struct ec_tokenizer *tok, const char *text,
		       size_t len)
{
	int32_t *ids;
	size_t n;
	int err = ec_tok_encode(tok, text, len, &ids, &n);

	if (err) {
		ec_cli_error("encode", err);
		return 1;
	}
	print_ids(ids, n);
	free(ids);
	return 0;
}

/*
 * The text ids decode to, through the streaming decoder: bytes that are not
 * UTF-8 become U+FFFD as in tokenizers' decode (String::from_utf8_lossy).
 */
static int decode_lossy(const struct ec_tokenizer *tok, const int32_t *ids,
			size_t n, char **out, size_t *out_len)
{
	struct ec_tok_stream *st;
	size_t len, total = 0, cap = 64, i;
	const char *piece;
	char *buf = malloc(cap), *t;
	int err;

	if (!buf)
		return -ENOMEM;
	err = ec_tok_stream_new(tok, 0, &st);
	for (i = 0; !err && i <= n; i++) {
		if (i < n)
			err = ec_tok_stream_push(st, ids[i], &piece, &len);
		else
			err = ec_tok_stream_flush(st, &piece, &len);
		if (!err && total + len + 1 > cap) {
			while (total + len + 1 > cap)
				cap *= 2;
			t = realloc(buf, cap);
			if (!t)
				err = -ENOMEM;
			else
				buf = t;
		}
		if (!err) {
			memcpy(buf + total, piece, len);
			total += len;
		}
	}
	ec_tok_stream_free(st);
	if (err) {
		free(buf);
		return err;
	}
	*out = buf;
	*out_len = total;
	return 0;
}

/* One JSON line in, {"ids": [...], "decoded": "..."} out. */
static int encode_line(const struct ec_tokenizer *tok, const char *line,
		       size_t lineno, size_t *n_tok)
{
	json_t *in, *out = NULL, *arr = NULL, *t;
	const char *text = NULL;
	int32_t *ids = NULL;
	char *dec = NULL, *s = NULL;
	size_t n = 0, len = 0, dlen, i;
	json_error_t jerr;
	int err = 1, e;

	in = json_loads(line, JSON_ALLOW_NUL, &jerr);
	t = json_is_object(in) ? json_object_get(in, "text") : in;
	if (json_is_object(in) && !t)
		t = json_object_get(in, "prompt");
	if (json_is_string(t)) {
		text = json_string_value(t);
		len = json_string_length(t);
	}
	if (!text) {
		fprintf(stderr, "expertcache: jsonl line %zu: not a JSON "
			"string or an object with \"text\"\n", lineno);
		goto out;
	}
	e = ec_tok_encode(tok, text, len, &ids, &n);
	if (!e)
		e = decode_lossy(tok, ids, n, &dec, &dlen);
	if (e) {
		ec_cli_error("encode", e);
		goto out;
	}
	arr = json_array();
	for (i = 0; arr && i < n; i++)
		if (json_array_append_new(arr, json_integer(ids[i])))
			break;
	out = json_object();
	if (arr && out && i == n && !json_object_set(out, "ids", arr) &&
	    !json_object_set_new(out, "decoded", json_stringn(dec, dlen)))
		s = json_dumps(out, JSON_COMPACT | JSON_ENSURE_ASCII);
	if (!s) {
		fprintf(stderr, "expertcache: jsonl line %zu: out of memory\n",
			lineno);
		goto out;
	}
	puts(s);
	free(s);
	*n_tok += n;
	err = 0;
out:
	json_decref(in);
	json_decref(arr);
	json_decref(out);
	free(ids);
	free(dec);
	return err;
}

static int encode_jsonl(const struct ec_tokenizer *tok, const char *path,
			bool verbose)
{
	size_t len, lineno = 0, n_tok = 0;
	char *buf, *line, *nl;
	double t0 = now_ms();
	int err;

	err = read_all(path, &buf, &len);
	if (err) {
		ec_cli_error("jsonl", err);
		return 1;
	}
	for (line = buf; line < buf + len; line = nl + 1) {
		nl = memchr(line, '\n', buf + len - line);
		if (!nl)
			nl = buf + len;
		*nl = '\0';
		lineno++;
		if (line == nl)
			continue;
		if (encode_line(tok, line, lineno, &n_tok)) {
			free(buf);
			return 1;
		}
	}
	if (verbose)
		fprintf(stderr, "encoded %zu lines, %zu tokens in %.1f ms\n",
			lineno, n_tok, now_ms() - t0);
	free(buf);
	return 0;
}

static int decode_ids(const struct ec_tokenizer *tok, const char *list,
		      unsigned flags)
{
	int32_t *ids;
	uint32_t n;
	size_t len;
	char *out;
	int err;

	if (ec_cli_parse_ids(list, &ids, &n)) {
		fprintf(stderr, "expertcache: --decode: '%s' is not a list of "
			"ids like 1,2,3\n", list);
		return 2;
	}
	err = ec_tok_decode(tok, ids, n, flags, &out, &len);
	free(ids);
	if (err) {
		ec_cli_error("decode", err);
		return 1;
	}
	fwrite(out, 1, len, stdout);
	free(out);
	return 0;
}

int ec_cmd_tokenize(int argc, char **argv)
{
	enum { OPT_TEXT = 256, OPT_JSONL, OPT_DECODE, OPT_SKIP };
	static const struct option opts[] = {
		{ "model", required_argument, NULL, 'm' },
		{ "tokenizer", required_argument, NULL, 't' },
		{ "text", required_argument, NULL, OPT_TEXT },
		{ "file", required_argument, NULL, 'f' },
		{ "jsonl", required_argument, NULL, OPT_JSONL },
		{ "decode", required_argument, NULL, OPT_DECODE },
		{ "skip-special", no_argument, NULL, OPT_SKIP },
		{ "verbose", no_argument, NULL, 'v' },
		{ "help", no_argument, NULL, 'h' },
		{ 0 },
	};
	const char *model = NULL, *json = NULL, *text = NULL, *file = NULL;
	const char *jsonl = NULL, *decode = NULL;
	struct ec_tokenizer *tok = NULL;
	unsigned flags = 0;
	bool verbose = false;
	char def[4096], *buf;
	int c, n_in, ret, err;
	double t0;
	size_t len;

	optind = 1;
	while ((c = getopt_long(argc, argv, "m:t:f:vh", opts, NULL)) != -1) {
		switch (c) {
		case 'm':
			model = optarg;
			break;
		case 't':
			json = optarg;
			break;
		case 'f':
			file = optarg;
			break;
		case 'v':
			verbose = true;
			break;
		case OPT_TEXT:
			text = optarg;
			break;
		case OPT_JSONL:
			jsonl = optarg;
			break;
		case OPT_DECODE:
			decode = optarg;
			break;
		case OPT_SKIP:
			flags |= EC_TOK_SKIP_SPECIAL;
			break;
		case 'h':
			usage(stdout);
			return 0;
		default:
			usage(stderr);
			return 2;
		}
	}
	n_in = !!text + !!file + !!jsonl + !!decode;
	if (optind < argc || n_in != 1 || (model && json)) {
		fprintf(stderr, "expertcache tokenize: give one of --text, -f, "
			"--jsonl, --decode, and at most one of -m, "
			"--tokenizer\n");
		usage(stderr);
		return 2;
	}
	if (!model && !json) {
		if (ec_cli_default_model(def, sizeof(def))) {
			fprintf(stderr, "expertcache tokenize: no model found; "
				"give -m MODEL or --tokenizer FILE\n");
			return 2;
		}
		model = def;
	}
	t0 = now_ms();
	err = load(model, json, &tok);
	if (err) {
		ec_cli_error("tokenizer", err);
		return 1;
	}
	if (verbose)
		fprintf(stderr, "tokenizer: %u ids, loaded in %.1f ms\n",
			ec_tok_n_vocab(tok), now_ms() - t0);
	if (text) {
		ret = encode_text(tok, text, strlen(text));
	} else if (file) {
		err = read_all(file, &buf, &len);
		if (err) {
			ec_cli_error(file, err);
			ret = 1;
		} else {
			ret = encode_text(tok, buf, len);
			free(buf);
		}
	} else if (jsonl) {
		ret = encode_jsonl(tok, jsonl, verbose);
	} else {
		ret = decode_ids(tok, decode, flags);
	}
	ec_tok_free(tok);
	return ret;
}
