// SPDX-License-Identifier: MIT
/* libFuzzer target: ec_st_parse_header on arbitrary safetensors images. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "ec_error.h"
#include "ec_safetensors.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct ec_st_file *f;
	struct ec_tensor t;
	volatile uint8_t sink;
	uint32_t i;

	ec_err(0, "%s", "");
	if (ec_st_parse_header(data, size, "fuzz.safetensors", &f) < 0) {
		if (!ec_error_msg()[0])
			abort();	/* every failure says why */
		return 0;
	}
	for (i = 0; i < f->n_tensors; i++) {
		const struct ec_st_tensor *s = &f->tensors[i];

		if (ec_st_find(f, s->name) != s)
			abort();
		if (ec_st_get(f, s->name, 0, &t) < 0) {
			if (s->supported)
				abort();
			continue;
		}
		/* the whole view must lie in the image (ASan checks) */
		if (t.nbytes) {
			sink = ((const uint8_t *)t.data)[0];
			sink = ((const uint8_t *)t.data)[t.nbytes - 1];
		}
		if (t.data != data + t.offset ||
		    t.nbytes != ec_tensor_row_bytes(&t) * (ec_tensor_nelems(&t)
				/ (t.ne[0] ? t.ne[0] : 1)))
			abort();
	}
	(void)sink;
	ec_st_free(f);
	return 0;
}
