// SPDX-License-Identifier: MIT
/*
 * Test helper: dequantise a raw file of blocks of one type into raw f32
 * (native endian), or with type "F32_TO_F16" convert raw f32 to raw f16.
 * Usage: dequant_dump TYPE IN OUT     (TYPE = F32 F16 BF16 Q8_0 Q4_K Q6_K)
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ec_tensor.h"

static void *read_all(const char *path, size_t *size)
{
	FILE *f = fopen(path, "rb");
	void *buf = NULL;
	long n;

	if (!f)
		return NULL;
	if (fseek(f, 0, SEEK_END) == 0 && (n = ftell(f)) >= 0 &&
	    fseek(f, 0, SEEK_SET) == 0) {
		buf = malloc(n ? n : 1);
		if (buf && fread(buf, 1, n, f) != (size_t)n) {
			free(buf);
			buf = NULL;
		}
		*size = n;
	}
	fclose(f);
	return buf;
}

static int write_all(const char *path, const void *buf, size_t size)
{
	FILE *f = fopen(path, "wb");
	int ok;

	if (!f)
		return -1;
	ok = fwrite(buf, 1, size, f) == size;
	return (fclose(f) == 0 && ok) ? 0 : -1;
}

static int to_f16(const char *in, const char *out)
{
	size_t size, n;
	float *src = read_all(in, &size);
	uint16_t *dst;
	int ret;

	if (!src) {
		fprintf(stderr, "dequant_dump: cannot read %s\n", in);
		return 1;
	}
	n = size / sizeof(float);
	dst = malloc(n * 2 + 1);
	if (!dst)
		return 1;
	for (size_t i = 0; i < n; i++)
		dst[i] = ec_f32_to_f16(src[i]);
	ret = write_all(out, dst, n * 2);
	free(src);
	free(dst);
	return ret ? 1 : 0;
}

int main(int argc, char **argv)
{
	static const enum ec_dtype types[] = {EC_F32,  EC_F16,	EC_BF16,
					      EC_Q8_0, EC_Q4_K, EC_Q6_K};
	const struct ec_dtype_info *info = NULL;
	enum ec_dtype type = EC_F32;
	size_t size, nblocks;
	void *src;
	float *dst;
	int ret;

	if (argc != 4) {
		fprintf(stderr, "usage: %s TYPE IN OUT\n", argv[0]);
		return 2;
	}
	if (!strcmp(argv[1], "F32_TO_F16"))
		return to_f16(argv[2], argv[3]);
	for (size_t i = 0; i < sizeof(types) / sizeof(types[0]); i++) {
		if (!strcmp(ec_dtype_info(types[i])->name, argv[1])) {
			type = types[i];
			info = ec_dtype_info(type);
		}
	}
	if (!info) {
		fprintf(stderr, "dequant_dump: unknown type %s\n", argv[1]);
		return 2;
	}
	src = read_all(argv[2], &size);
	if (!src) {
		fprintf(stderr, "dequant_dump: cannot read %s\n", argv[2]);
		return 1;
	}
	if (size % info->block_bytes) {
		fprintf(stderr,
			"dequant_dump: %s: %zu bytes is not a whole "
			"number of %s blocks\n",
			argv[2], size, info->name);
		free(src);
		return 1;
	}
	nblocks = size / info->block_bytes;
	dst = malloc(nblocks * info->block_elems * sizeof(float) + 1);
	if (!dst) {
		free(src);
		return 1;
	}
	ec_dequantize(type, src, dst, nblocks * info->block_elems);
	ret = write_all(argv[3], dst,
			nblocks * info->block_elems * sizeof(float));
	free(src);
	free(dst);
	return ret ? 1 : 0;
}
