// SPDX-License-Identifier: MIT
/* Compiling tokenizer.json's Oniguruma regexes with PCRE2 (same meaning). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ec_error.h"
#include "tokenizer_internal.h"

/*
 * Oniguruma (what Hugging Face tokenizers runs) and PCRE2 with PCRE2_UCP
 * spell the same patterns but disagree on two shorthand classes:
 *  - PCRE2's \s also matches U+180E (MONGOLIAN VOWEL SEPARATOR, a space
 *    until Unicode 6.3); Oniguruma's is \t-\r, U+0085 and \p{Z} only;
 *  - PCRE2's \w is [\p{L}\p{N}_]; Oniguruma's is the Unicode word class.
 * So those are spelled out; everything else is passed through.
 */
#define ONIG_SPACE "\\t-\\r\\x{85}\\p{Z}"
#define ONIG_WORD "\\p{Alphabetic}\\p{M}\\p{Nd}\\p{Pc}\\p{Join_Control}"

static int rewrite(const char *name, const char *in, char **out)
{
	size_t n = strlen(in), o = 0, i;
	int depth = 0;
	const char *rep;
	char *buf, c;

	/* every escape grows to at most one bracketed class */
	buf = malloc(n * (sizeof(ONIG_WORD) + 3) + 1);
	if (!buf)
		return -ENOMEM;
	for (i = 0; i < n; i++) {
		c = in[i];
		if (c == '\\' && i + 1 < n) {
			c = in[++i];
			rep = NULL;
			if (c == 's' || c == 'S')
				rep = ONIG_SPACE;
			else if (c == 'w' || c == 'W')
				rep = ONIG_WORD;
			if (!rep) {
				buf[o++] = '\\';
				buf[o++] = c;
				continue;
			}
			if (depth && (c == 'S' || c == 'W')) {
				free(buf);
				return ec_err(-EC_EUNSUPPORTED,
					      "%s: regex: \\%c inside [] is "
					      "not supported", name, c);
			}
			if (!depth)
				o += sprintf(buf + o, "[%s", c == 'S' ||
					     c == 'W' ? "^" : "");
			o += sprintf(buf + o, "%s", rep);
			if (!depth)
				buf[o++] = ']';
			continue;
		}
		buf[o++] = c;
		if (c == '[' && depth && in[i + 1] == ':') {
			/* a POSIX class: copy through its ":]" */
			const char *end = strstr(in + i, ":]");

			if (end) {
				memcpy(buf + o, in + i + 1, end + 1 - (in + i));
				o += end + 1 - (in + i);
				i = end + 1 - in;
			}
		} else if (c == '[') {
			depth++;
			/* "[]" and "[^]" start with a literal ']' */
			if (in[i + 1] == '^')
				buf[o++] = in[++i];
			if (in[i + 1] == ']')
				buf[o++] = in[++i];
		} else if (c == ']' && depth) {
			depth--;
		}
	}
	buf[o] = '\0';
	*out = buf;
	return 0;
}

int ec_tok_regex_compile(const char *name, const char *pattern,
			 pcre2_code **out)
{
	PCRE2_UCHAR msg[256];
	PCRE2_SIZE erroff;
	char *pcre;
	int errcode, err;

	*out = NULL;
	err = rewrite(name, pattern, &pcre);
	if (err)
		return err;
	*out = pcre2_compile((PCRE2_SPTR)pcre, PCRE2_ZERO_TERMINATED,
			     PCRE2_UTF | PCRE2_UCP, &errcode, &erroff, NULL);
	free(pcre);
	if (!*out) {
		pcre2_get_error_message(errcode, msg, sizeof(msg));
		return ec_err(-EC_EFORMAT, "%s: pre-tokenizer regex '%s': %s",
			      name, pattern, (char *)msg);
	}
	/* JIT is only a speed-up: the interpreter gives the same matches. */
	pcre2_jit_compile(*out, PCRE2_JIT_COMPLETE);
	return 0;
}
