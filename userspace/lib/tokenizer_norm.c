// SPDX-License-Identifier: MIT
/* NFC normalization for the tokenizer (ICU's normalizer; no own tables). */
#include <stdlib.h>
#include <string.h>
#include <unicode/unorm2.h>
#include <unicode/ustring.h>

#include "ec_error.h"
#include "tokenizer_internal.h"

static int grow(void **p, size_t *cap, size_t need, size_t elem)
{
	void *q;

	if (need <= *cap)
		return 0;
	q = realloc(*p, need * elem);
	if (!q)
		return -ENOMEM;
	*p = q;
	*cap = need;
	return 0;
}

int ec_tok_nfc(const char *s, size_t len, struct ec_tok_scratch *sc,
	       const char **out, size_t *out_len)
{
	const UNormalizer2 *nfc;
	UErrorCode uerr = U_ZERO_ERROR;
	int32_t n16, nout = 0, n8;
	size_t i;
	int err;

	/* Text below U+0300 is NFC as it stands (no combining marks). */
	for (i = 0; i < len; i++)
		if ((unsigned char)s[i] >= 0xcc)
			break;
	if (i == len) {
		*out = s;
		*out_len = len;
		return 0;
	}
	if (len > INT32_MAX / 4)
		return ec_err(-EC_EINVAL, "text of %zu bytes too long to "
			      "normalize", len);
	nfc = unorm2_getNFCInstance(&uerr);
	if (U_FAILURE(uerr))
		return ec_err(-EC_EUNSUPPORTED, "ICU NFC normalizer: %s",
			      u_errorName(uerr));
	/* UTF-16 needs at most one unit per byte; NFC grows it <= 3x */
	err = grow((void **)&sc->u16, &sc->u16_cap, len + 1, sizeof(UChar));
	if (!err)
		err = grow((void **)&sc->u16_out, &sc->u16_out_cap,
			   3 * len + 1, sizeof(UChar));
	if (err)
		return err;
	u_strFromUTF8(sc->u16, sc->u16_cap, &n16, s, len, &uerr);
	if (U_SUCCESS(uerr))
		nout = unorm2_normalize(nfc, sc->u16, n16, sc->u16_out,
					sc->u16_out_cap, &uerr);
	if (uerr == U_BUFFER_OVERFLOW_ERROR) {
		uerr = U_ZERO_ERROR;
		err = grow((void **)&sc->u16_out, &sc->u16_out_cap,
			   (size_t)nout + 1, sizeof(UChar));
		if (err)
			return err;
		nout = unorm2_normalize(nfc, sc->u16, n16, sc->u16_out,
					sc->u16_out_cap, &uerr);
	}
	if (U_FAILURE(uerr))
		return ec_err(-EC_EINVAL, "NFC normalization: %s",
			      u_errorName(uerr));
	err = grow((void **)&sc->norm, &sc->norm_cap, 3 * (size_t)nout + 1, 1);
	if (err)
		return err;
	u_strToUTF8(sc->norm, sc->norm_cap, &n8, sc->u16_out, nout, &uerr);
	if (U_FAILURE(uerr))
		return ec_err(-EC_EINVAL, "NFC normalization: %s",
			      u_errorName(uerr));
	*out = sc->norm;
	*out_len = n8;
	return 0;
}

void ec_tok_scratch_free(struct ec_tok_scratch *sc)
{
	pcre2_match_data_free(sc->md);
	free(sc->norm);
	free(sc->u16);
	free(sc->u16_out);
	free(sc->sym_id);
	free(sc->sym_prev);
	free(sc->sym_next);
	free(sc->heap);
	free(sc->spell);
	memset(sc, 0, sizeof(*sc));
}
