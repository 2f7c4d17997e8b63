// SPDX-License-Identifier: MIT
/* Writing float32 arrays as NumPy .npy files (format version 1.0). */
#include <stdio.h>
#include <string.h>

#include "ec_error.h"
#include "ec_npy.h"

int ec_npy_write_f32(const char *path, const float *data, uint64_t rows,
		     uint64_t cols)
{
	char hdr[128];
	int len, pad;
	FILE *f;

	len = snprintf(hdr, sizeof(hdr),
		       "{'descr': '<f4', 'fortran_order': False, "
		       "'shape': (%llu, %llu), }",
		       (unsigned long long)rows, (unsigned long long)cols);
	/* magic(6) + version(2) + len(2) + header + '\n' is 64-aligned */
	pad = 64 - (10 + len + 1) % 64;
	if (pad == 64)
		pad = 0;
	f = fopen(path, "wb");
	if (!f)
		return ec_err(-errno, "%s: cannot create: %s", path,
			      strerror(errno));
	uint16_t hlen = (uint16_t)(len + pad + 1);
	unsigned char pre[10] = { 0x93, 'N', 'U', 'M', 'P', 'Y', 1, 0,
				  (unsigned char)(hlen & 0xff),
				  (unsigned char)(hlen >> 8) };
	fwrite(pre, 1, sizeof(pre), f);
	fwrite(hdr, 1, len, f);
	for (int i = 0; i < pad; i++)
		fputc(' ', f);
	fputc('\n', f);
	fwrite(data, sizeof(float), rows * cols, f);
	if (ferror(f) | fclose(f))
		return ec_err(-EIO, "%s: write failed", path);
	return 0;
}
