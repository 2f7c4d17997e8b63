// SPDX-License-Identifier: MIT
/* Loading a Hugging Face tokenizer.json (BPE + ByteLevel) with jansson. */
#include <fcntl.h>
#include <jansson.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "ec_error.h"
#include "tokenizer_internal.h"

static const char *type_of(json_t *o)
{
	const char *t = json_string_value(json_object_get(o, "type"));

	return t ? t : "";
}

static bool flag_of(json_t *o, const char *key)
{
	return json_is_true(json_object_get(o, key));
}

/* "" or null: what the BPE fields we do not implement must be. */
static bool empty_str(json_t *v)
{
	return !v || json_is_null(v) ||
	       (json_is_string(v) && !json_string_length(v));
}

static int check_normalizer(const char *name, json_t *n, unsigned *flags)
{
	size_t i;
	json_t *e = NULL;

	if (!n || json_is_null(n))
		return 0;
	if (!strcmp(type_of(n), "NFC")) {
		*flags |= EC_TOK_NFC;
		return 0;
	}
	if (!strcmp(type_of(n), "Sequence")) {
		json_array_foreach(json_object_get(n, "normalizers"), i, e) {
			if (strcmp(type_of(e), "NFC"))
				break;
			*flags |= EC_TOK_NFC;
		}
		if (i == json_array_size(json_object_get(n, "normalizers")))
			return 0;
		n = e;
	}
	return ec_err(-EC_EUNSUPPORTED, "%s: normalizer '%s' is not supported "
		      "(only NFC)", name, type_of(n));
}

static int check_byte_level(const char *name, json_t *bl, bool want_regex)
{
	json_t *r = json_object_get(bl, "use_regex");
	bool use_regex = !r || json_is_true(r);	/* its default is true */

	if (flag_of(bl, "add_prefix_space"))
		return ec_err(-EC_EUNSUPPORTED, "%s: pre_tokenizer ByteLevel "
			      "add_prefix_space is not supported", name);
	if (use_regex != want_regex)
		return ec_err(-EC_EUNSUPPORTED, "%s: pre_tokenizer ByteLevel "
			      "use_regex=%d in this position is not supported",
			      name, use_regex);
	return 0;
}

/* The pre-tokenizer regex, malloc'd: a Split, or ByteLevel's own. */
static int pre_tokenizer_pattern(const char *name, json_t *pt, char **out)
{
	json_t *split, *pat, *list = json_object_get(pt, "pretokenizers");
	const char *re, *lit;
	char *p;
	size_t i;
	int err;

	*out = NULL;
	if (!strcmp(type_of(pt), "ByteLevel")) {
		err = check_byte_level(name, pt, true);
		if (err)
			return err;
		*out = strdup(ec_tok_pattern_gpt2);
		return *out ? 0 : -ENOMEM;
	}
	if (strcmp(type_of(pt), "Sequence") || json_array_size(list) != 2 ||
	    strcmp(type_of(json_array_get(list, 0)), "Split") ||
	    strcmp(type_of(json_array_get(list, 1)), "ByteLevel"))
		return ec_err(-EC_EUNSUPPORTED, "%s: pre_tokenizer '%s' is not "
			      "supported (ByteLevel, or Sequence of Split and "
			      "ByteLevel)", name, type_of(pt));
	split = json_array_get(list, 0);
	err = check_byte_level(name, json_array_get(list, 1), false);
	if (err)
		return err;
	if (strcmp(json_string_value(json_object_get(split, "behavior")) ?: "",
		   "Isolated") || flag_of(split, "invert"))
		return ec_err(-EC_EUNSUPPORTED, "%s: pre_tokenizer Split: only "
			      "behavior Isolated without invert is supported",
			      name);
	pat = json_object_get(split, "pattern");
	re = json_string_value(json_object_get(pat, "Regex"));
	lit = json_string_value(json_object_get(pat, "String"));
	if (re) {
		*out = strdup(re);
		return *out ? 0 : -ENOMEM;
	}
	if (!lit)
		return ec_err(-EC_EFORMAT, "%s: pre_tokenizer Split has no "
			      "pattern", name);
	/* a literal: quote every ASCII punctuation character */
	p = *out = malloc(2 * strlen(lit) + 1);
	if (!p)
		return -ENOMEM;
	for (i = 0; lit[i]; i++) {
		if ((unsigned char)lit[i] < 0x80 &&
		    !((lit[i] | 0x20) >= 'a' && (lit[i] | 0x20) <= 'z') &&
		    !(lit[i] >= '0' && lit[i] <= '9'))
			*p++ = '\\';
		*p++ = lit[i];
	}
	*p = '\0';
	return 0;
}

static int check_model(const char *name, json_t *model, unsigned *flags)
{
	if (!json_is_object(model) ||
	    (json_object_get(model, "type") && strcmp(type_of(model), "BPE")))
		return ec_err(-EC_EUNSUPPORTED, "%s: model type '%s' is not "
			      "supported (only BPE)", name, type_of(model));
	if (!json_is_object(json_object_get(model, "vocab")) ||
	    !json_is_array(json_object_get(model, "merges")))
		return ec_err(-EC_EFORMAT, "%s: model.vocab must be an object "
			      "and model.merges an array", name);
	if (flag_of(model, "byte_fallback") ||
	    !empty_str(json_object_get(model, "continuing_subword_prefix")) ||
	    !empty_str(json_object_get(model, "end_of_word_suffix")) ||
	    json_number_value(json_object_get(model, "dropout")) > 0)
		return ec_err(-EC_EUNSUPPORTED, "%s: model: byte_fallback, "
			      "dropout and subword prefix/suffix are not "
			      "supported", name);
	if (flag_of(model, "ignore_merges"))
		*flags |= EC_TOK_IGNORE_MERGES;
	return 0;
}

static int id_of(const char *name, const char *what, json_t *v,
		 uint32_t *id)
{
	json_int_t i = json_integer_value(v);

	if (!json_is_integer(v) || i < 0 || i >= INT32_MAX / 2)
		return ec_err(-EC_EFORMAT, "%s: %s: id is not an integer in "
			      "range", name, what);
	*id = i;
	return 0;
}

static int load_merges(struct ec_tokenizer *tok, json_t *merges)
{
	const char *a, *b, *sp;
	json_t *m;
	size_t i;
	int err;

	json_array_foreach(merges, i, m) {
		if (json_is_string(m)) {
			a = json_string_value(m);
			sp = strchr(a, ' ');
			if (!sp || strchr(sp + 1, ' '))
				return ec_err(-EC_EFORMAT,
					      "%s: model.merges[%zu]: '%s' is "
					      "not 'left right'", tok->name, i,
					      a);
			err = ec_tok_add_merge(tok, a, sp - a, sp + 1,
					       strlen(sp + 1));
		} else if (json_array_size(m) == 2 &&
			   json_is_string(json_array_get(m, 0)) &&
			   json_is_string(json_array_get(m, 1))) {
			json_t *ja = json_array_get(m, 0);
			json_t *jb = json_array_get(m, 1);

			a = json_string_value(ja);
			b = json_string_value(jb);
			err = ec_tok_add_merge(tok, a, json_string_length(ja),
					       b, json_string_length(jb));
		} else {
			return ec_err(-EC_EFORMAT, "%s: model.merges[%zu] is "
				      "neither a string nor a pair", tok->name,
				      i);
		}
		if (err)
			return err;
	}
	return 0;
}

static int load_added(struct ec_tokenizer *tok, json_t *added)
{
	struct ec_tok_added t;
	uint32_t id = 0;
	json_t *a, *c;
	size_t i;
	int err;

	json_array_foreach(added, i, a) {
		c = json_object_get(a, "content");
		if (!json_is_string(c))
			return ec_err(-EC_EFORMAT, "%s: added_tokens[%zu]: no "
				      "content", tok->name, i);
		err = id_of(tok->name, "added_tokens", json_object_get(a, "id"),
			    &id);
		if (err)
			return err;
		memset(&t, 0, sizeof(t));
		t.id = id;
		t.content = json_string_value(c);
		t.len = json_string_length(c);
		t.special = flag_of(a, "special");
		t.lstrip = flag_of(a, "lstrip");
		t.rstrip = flag_of(a, "rstrip");
		t.single_word = flag_of(a, "single_word");
		t.normalized = flag_of(a, "normalized");
		err = ec_tok_add_special(tok, &t);
		if (err)
			return err;
	}
	return 0;
}

static int build(const char *name, json_t *root, struct ec_tokenizer **out)
{
	json_t *model = json_object_get(root, "model"), *vocab, *added, *dec;
	struct ec_tokenizer *tok = NULL;
	uint32_t n_vocab = 0, id = 0;
	unsigned flags = 0;
	char *pattern = NULL;
	void *it;
	size_t i;
	int err;

	err = check_model(name, model, &flags);
	if (!err)
		err = check_normalizer(name,
				       json_object_get(root, "normalizer"),
				       &flags);
	if (!err)
		err = pre_tokenizer_pattern(
			name, json_object_get(root, "pre_tokenizer"), &pattern);
	dec = json_object_get(root, "decoder");
	if (!err && dec && !json_is_null(dec) &&
	    strcmp(type_of(dec), "ByteLevel"))
		err = ec_err(-EC_EUNSUPPORTED, "%s: decoder '%s' is not "
			     "supported (only ByteLevel)", name, type_of(dec));
	if (err)
		goto out;
	vocab = json_object_get(model, "vocab");
	added = json_object_get(root, "added_tokens");
	for (it = json_object_iter(vocab); it;
	     it = json_object_iter_next(vocab, it)) {
		err = id_of(name, "model.vocab", json_object_iter_value(it),
			    &id);
		if (err)
			goto out;
		if (id >= n_vocab)
			n_vocab = id + 1;
	}
	for (i = 0; i < json_array_size(added); i++) {
		err = id_of(name, "added_tokens",
			    json_object_get(json_array_get(added, i), "id"),
			    &id);
		if (err)
			goto out;
		if (id >= n_vocab)
			n_vocab = id + 1;
	}
	err = ec_tok_new(name, n_vocab, pattern, flags, &tok);
	for (it = json_object_iter(vocab); !err && it;
	     it = json_object_iter_next(vocab, it)) {
		id = json_integer_value(json_object_iter_value(it));
		err = ec_tok_set_token(tok, id, json_object_iter_key(it),
				       json_object_iter_key_len(it));
	}
	if (!err)
		err = load_merges(tok, json_object_get(model, "merges"));
	if (!err)
		err = load_added(tok, added);
	if (err)
		goto out;
	*out = tok;
	tok = NULL;
out:
	ec_tok_free(tok);
	free(pattern);
	return err;
}

/* bos/eos/pad from a tokenizer_config.json beside tokenizer.json. */
static void load_config_ids(struct ec_tokenizer *tok, const char *path)
{
	static const char *const keys[3] = { "bos_token", "eos_token",
					     "pad_token" };
	int32_t ids[3] = { -1, -1, -1 };
	const char *slash = strrchr(path, '/'), *s;
	char cfg[4096];
	json_t *root, *v;
	int i;

	snprintf(cfg, sizeof(cfg), "%.*stokenizer_config.json",
		 slash ? (int)(slash - path + 1) : 0, path);
	root = json_load_file(cfg, 0, NULL);
	if (!root)
		return;
	for (i = 0; i < 3; i++) {
		v = json_object_get(root, keys[i]);
		if (json_is_object(v))
			v = json_object_get(v, "content");
		s = json_string_value(v);
		if (s)
			ids[i] = ec_tok_lookup(tok, s, strlen(s));
		if (ids[i] < 0)
			ids[i] = -1;
	}
	json_decref(root);
	ec_tok_set_ids(tok, ids[0], ids[1], ids[2]);
}

int ec_tok_load_json_buf(const char *buf, size_t len, const char *name,
			 struct ec_tokenizer **out)
{
	struct ec_tokenizer *tok = NULL;
	json_error_t jerr;
	json_t *root;
	int err;

	*out = NULL;
	root = json_loadb(buf, len, JSON_REJECT_DUPLICATES, &jerr);
	if (!root)
		return ec_err(-EC_EFORMAT, "%s: line %d column %d: %s", name,
			      jerr.line, jerr.column, jerr.text);
	err = build(name, root, &tok);
	json_decref(root);
	if (!err)
		err = ec_tok_finish(tok);
	if (err) {
		ec_tok_free(tok);
		return err;
	}
	*out = tok;
	return 0;
}

int ec_tok_load_json(const char *path, struct ec_tokenizer **out)
{
	struct ec_tokenizer *tok;
	struct stat st;
	char *buf = NULL;
	ssize_t r;
	size_t got = 0;
	int fd, err;

	*out = NULL;
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return ec_err(-errno, "%s: %s", path, strerror(errno));
	if (fstat(fd, &st) < 0) {
		err = ec_err(-errno, "%s: %s", path, strerror(errno));
		goto out;
	}
	buf = malloc(st.st_size + 1);
	if (!buf) {
		err = -ENOMEM;
		goto out;
	}
	while (got < (size_t)st.st_size) {
		r = read(fd, buf + got, st.st_size - got);
		if (r <= 0) {
			err = ec_err(r < 0 ? -errno : -EC_EFORMAT, "%s: %s",
				     path, r < 0 ? strerror(errno) :
				     "file shrank while reading");
			goto out;
		}
		got += r;
	}
	err = ec_tok_load_json_buf(buf, got, path, &tok);
	if (err)
		goto out;
	/* finished already; ids are only bookkeeping */
	load_config_ids(tok, path);
	*out = tok;
out:
	free(buf);
	close(fd);
	return err;
}
