// SPDX-License-Identifier: MIT
/* Strict UTF-8 sequence classification (Unicode 3.9, table 3-7). */
#include "ec_tokenizer.h"

/*
 * Allowed range of the second byte for each lead byte; later continuation
 * bytes are always 80..BF.  This is what rules out overlongs (E0 80..9F,
 * F0 80..8F), surrogates (ED A0..BF) and values past U+10FFFF (F4 90..).
 */
static int utf8_lead(unsigned char c, unsigned char *lo, unsigned char *hi)
{
	*lo = 0x80;
	*hi = 0xbf;
	if (c >= 0xc2 && c <= 0xdf)
		return 2;
	if (c >= 0xe0 && c <= 0xef) {
		if (c == 0xe0)
			*lo = 0xa0;
		else if (c == 0xed)
			*hi = 0x9f;
		return 3;
	}
	if (c >= 0xf0 && c <= 0xf4) {
		if (c == 0xf0)
			*lo = 0x90;
		else if (c == 0xf4)
			*hi = 0x8f;
		return 4;
	}
	return 0;
}

int ec_utf8_seq(const unsigned char *s, size_t n, uint32_t *cp)
{
	unsigned char lo, hi;
	uint32_t v;
	int need, i;

	if (s[0] < 0x80) {
		*cp = s[0];
		return 1;
	}
	need = utf8_lead(s[0], &lo, &hi);
	if (!need)
		return -1;
	v = s[0] & (0xff >> (need + 1));
	for (i = 1; i < need; i++) {
		if ((size_t)i >= n)
			return 0;
		if (s[i] < lo || s[i] > hi)
			return -i;
		v = v << 6 | (s[i] & 0x3f);
		lo = 0x80;
		hi = 0xbf;
	}
	*cp = v;
	return need;
}

size_t ec_utf8_valid_len(const char *s, size_t len)
{
	const unsigned char *p = (const unsigned char *)s;
	size_t i = 0;
	uint32_t cp;
	int k;

	while (i < len) {
		if (p[i] < 0x80) {
			i++;
			continue;
		}
		k = ec_utf8_seq(p + i, len - i, &cp);
		if (k <= 0)
			break;
		i += k;
	}
	return i;
}
