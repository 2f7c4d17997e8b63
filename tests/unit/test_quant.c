// SPDX-License-Identifier: MIT
/* Tensor types, views (slices, rows), fp16/bf16 and block dequantisation. */
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "ec_test.h"
#include "ec_tensor.h"
#include "quant.h"

static void test_dtype_info(void)
{
	static const struct {
		uint32_t type;
		const char *name;
		uint32_t elems, bytes;
	} want[] = {
	    {EC_F32, "F32", 1, 4},	 {EC_F16, "F16", 1, 2},
	    {EC_BF16, "BF16", 1, 2},	 {EC_Q8_0, "Q8_0", 32, 34},
	    {EC_Q4_K, "Q4_K", 256, 144}, {EC_Q6_K, "Q6_K", 256, 210},
	};

	for (size_t i = 0; i < sizeof(want) / sizeof(want[0]); i++) {
		const struct ec_dtype_info *info = ec_dtype_info(want[i].type);

		EC_CHECK(info && !strcmp(info->name, want[i].name) &&
			     info->block_elems == want[i].elems &&
			     info->block_bytes == want[i].bytes,
			 "dtype %u info", want[i].type);
	}
	/* ggml ids we do not compute: Q4_0, Q5_K, IQ types, garbage */
	EC_CHECK(!ec_dtype_info(2) && !ec_dtype_info(13) &&
		     !ec_dtype_info(16) && !ec_dtype_info(31) &&
		     !ec_dtype_info(0xffffffffu),
		 "unsupported ids give NULL");

	EC_CHECK(ec_dtype_bytes(EC_F32, 10) == 40, "f32 bytes");
	EC_CHECK(ec_dtype_bytes(EC_BF16, 7) == 14, "bf16 bytes");
	EC_CHECK(ec_dtype_bytes(EC_Q8_0, 2048) == 64 * 34, "q8_0 bytes");
	EC_CHECK(ec_dtype_bytes(EC_Q4_K, 768) == 3 * 144, "q4_K bytes");
	EC_CHECK(ec_dtype_bytes(EC_Q6_K, 512) == 2 * 210, "q6_K bytes");
	EC_CHECK(ec_dtype_bytes(EC_Q8_0, 33) == 0, "partial block -> 0");
	EC_CHECK(ec_dtype_bytes(EC_Q4_K, 128) == 0, "partial K block -> 0");
	EC_CHECK(ec_dtype_bytes(EC_F32, UINT64_MAX / 2) == 0, "overflow -> 0");
	EC_CHECK(ec_dtype_bytes(EC_Q8_0, UINT64_MAX - UINT64_MAX % 32) == 0,
		 "block overflow -> 0");
	EC_CHECK(ec_dtype_bytes(99, 4) == 0, "unknown type -> 0");
}

static void test_views(void)
{
	/* a stacked expert tensor [E=5, out=3, in=64] of Q8_0 at offset 1000 */
	static uint8_t file[1000 + 5 * 3 * 68];
	struct ec_tensor t = {
	    .type = EC_Q8_0,
	    .n_dims = 3,
	    .ne = {64, 3, 5, 1},
	    .data = file + 1000,
	    .nbytes = 5 * 3 * 68,
	    .file = 2,
	    .offset = 1000,
	};
	struct ec_tensor v;

	EC_CHECK(ec_tensor_row_bytes(&t) == 68, "row bytes");

	v = ec_tensor_slice(&t, 3, 1);
	EC_CHECK(v.n_dims == 2 && v.ne[0] == 64 && v.ne[1] == 3 &&
		     v.ne[2] == 1 && v.ne[3] == 1,
		 "slice(3,1) shape");
	EC_CHECK(v.data == file + 1000 + 3 * 204 &&
		     v.offset == 1000 + 3 * 204 && v.nbytes == 204 &&
		     v.file == 2 && v.type == EC_Q8_0,
		 "slice(3,1) placement");

	v = ec_tensor_slice(&t, 1, 3);
	EC_CHECK(v.n_dims == 3 && v.ne[2] == 3 && v.nbytes == 3 * 204 &&
		     v.offset == 1204,
		 "slice(1,3) keeps the dimension");
	v = ec_tensor_slice(&t, 4, 1);
	EC_CHECK(v.nbytes == 204 && v.offset + v.nbytes == t.offset + t.nbytes,
		 "last slice ends at the tensor's end");
	v = ec_tensor_slice(&t, 4, 2);
	EC_CHECK(!v.data && !v.nbytes, "slice past the end is empty");
	v = ec_tensor_slice(&t, 6, 0);
	EC_CHECK(!v.data && !v.nbytes, "slice starting past the end");
	v = ec_tensor_slice(&t, UINT64_MAX, 2);
	EC_CHECK(!v.data && !v.nbytes, "slice with wrapping range");

	/* slice of a slice: row 2 of expert 1 */
	v = ec_tensor_slice(&t, 1, 1);
	v = ec_tensor_slice(&v, 2, 1);
	EC_CHECK(v.n_dims == 1 && v.ne[0] == 64 && v.ne[1] == 1 &&
		     v.nbytes == 68 && v.offset == 1000 + 204 + 136,
		 "slice of a slice");

	/* rows view flattens the outer dims: rows 4..9 of 15 */
	v = ec_tensor_rows(&t, 4, 6);
	EC_CHECK(v.n_dims == 2 && v.ne[0] == 64 && v.ne[1] == 6 &&
		     v.ne[2] == 1 && v.ne[3] == 1,
		 "rows shape");
	EC_CHECK(v.data == file + 1000 + 4 * 68 && v.offset == 1000 + 272 &&
		     v.nbytes == 6 * 68,
		 "rows placement");
	v = ec_tensor_rows(&t, 10, 5);
	EC_CHECK(v.nbytes == 340 && v.offset + v.nbytes == t.offset + t.nbytes,
		 "last rows");
	v = ec_tensor_rows(&t, 10, 6);
	EC_CHECK(!v.data && !v.nbytes, "rows past the end are empty");

	/* a plain 2-D tensor and a descriptor without data */
	t = (struct ec_tensor){
	    .type = EC_BF16, .n_dims = 2, .ne = {10, 7, 1, 1}, .offset = 64};
	v = ec_tensor_slice(&t, 6, 1);
	EC_CHECK(v.n_dims == 1 && v.ne[0] == 10 && v.offset == 64 + 120 &&
		     v.nbytes == 20 && !v.data,
		 "bf16 row slice");
}

static uint16_t f16_bits(float f)
{
	return ec_f32_to_f16(f);
}

static void test_half(void)
{
	int bad = 0;

	/* every non-NaN f16 survives f16 -> f32 -> f16 */
	for (uint32_t h = 0; h < 65536; h++) {
		float f = ec_f16_to_f32(h);

		if (isnan(f)) {
			uint16_t back = ec_f32_to_f16(f);

			bad += (h & 0x7c00) != 0x7c00 || !(h & 0x3ff) ||
			       (back & 0x7c00) != 0x7c00 || !(back & 0x3ff);
		} else {
			bad += ec_f32_to_f16(f) != h;
		}
	}
	EC_CHECK(!bad, "f16 round trip: %d bad", bad);

	EC_CHECK(ec_f16_to_f32(0x3c00) == 1.0f, "f16 1.0");
	EC_CHECK(ec_f16_to_f32(0xc000) == -2.0f, "f16 -2.0");
	EC_CHECK(ec_f16_to_f32(0x7bff) == 65504.0f, "f16 max");
	EC_CHECK(ec_f16_to_f32(0x0001) == ldexpf(1, -24), "f16 min subnormal");
	EC_CHECK(ec_f16_to_f32(0x03ff) == ldexpf(1023, -24),
		 "f16 max subnormal");
	EC_CHECK(isinf(ec_f16_to_f32(0xfc00)) && ec_f16_to_f32(0xfc00) < 0,
		 "f16 -inf");
	EC_CHECK(signbit(ec_f16_to_f32(0x8000)), "f16 -0");

	EC_CHECK(f16_bits(65519.0f) == 0x7bff, "65519 rounds down to max");
	EC_CHECK(f16_bits(65520.0f) == 0x7c00, "65520 rounds to inf");
	EC_CHECK(f16_bits(1e9f) == 0x7c00 && f16_bits(-INFINITY) == 0xfc00,
		 "overflow to inf");
	EC_CHECK(f16_bits(ldexpf(1, -25)) == 0, "2^-25 ties to even (0)");
	EC_CHECK(f16_bits(ldexpf(1.5f, -25)) == 1, "1.5 * 2^-25 -> 1");
	EC_CHECK(f16_bits(ldexpf(3, -25)) == 2, "3 * 2^-25 ties to even (2)");
	EC_CHECK(f16_bits(1.0f + ldexpf(1, -11)) == 0x3c00,
		 "1 + half ulp ties to even");
	EC_CHECK(f16_bits(1.0f + ldexpf(3, -11)) == 0x3c02,
		 "1 + 3 half ulps ties to even");
	EC_CHECK(f16_bits(ldexpf(1023.5f, -24)) == 0x0400,
		 "subnormal rounds up into the normals");
	EC_CHECK(f16_bits(-0.0f) == 0x8000, "-0");

	EC_CHECK(ec_bf16_to_f32(0x3f80) == 1.0f &&
		     ec_bf16_to_f32(0xc0a0) == -5.0f,
		 "bf16 values");
	EC_CHECK(isnan(ec_bf16_to_f32(0x7fc1)) && isinf(ec_bf16_to_f32(0xff80)),
		 "bf16 nan/inf");
	EC_CHECK(ec_bf16_to_f32(0x0001) == ldexpf(1, -133), "bf16 subnormal");
}

/* Test-local Q8_0 quantiser (ggml's reference algorithm) */
static void quantize_q8_0(const float *x, struct ec_block_q8_0 *y, int nb)
{
	for (int i = 0; i < nb; i++, x += 32) {
		float amax = 0, d, id;

		for (int j = 0; j < 32; j++)
			amax = fmaxf(amax, fabsf(x[j]));
		d = amax / 127;
		id = d ? 1 / d : 0;
		y[i].d = ec_f32_to_f16(d);
		for (int j = 0; j < 32; j++)
			y[i].qs[j] = (int8_t)lrintf(x[j] * id);
	}
}

static void test_q8_0(void)
{
	struct ec_block_q8_0 b[4];
	float x[128], y[130];
	double worst = 0;
	uint32_t seed = 7;

	for (int i = 0; i < 128; i++) {
		seed = seed * 1664525u + 1013904223u;
		x[i] = ((int32_t)seed >> 8) * 1e-6f;
	}
	quantize_q8_0(x, b, 4);
	y[128] = y[129] = 12345.0f;
	ec_dequantize(EC_Q8_0, b, y, 128);
	for (int i = 0; i < 128; i++) {
		float d = ec_f16_to_f32(b[i / 32].d);

		/* error of rounding to the grid, plus d's f16 rounding */
		worst =
		    fmax(worst, fabs(y[i] - x[i]) / (d / 2 + 127 * d / 2048));
	}
	EC_CHECK(worst <= 1.0, "q8_0 round trip within half a step (%g)",
		 worst);
	EC_CHECK(y[128] == 12345.0f, "dequantize writes only n values");

	/* exact values: d = 0.5, qs = -128..127 */
	b[0].d = 0x3800;
	for (int j = 0; j < 32; j++)
		b[0].qs[j] = (int8_t)(j * 8 - 128);
	ec_dequantize(EC_Q8_0, b, y, 32);
	EC_CHECK(y[0] == -64.0f && y[31] == 60.0f && y[16] == 0.0f,
		 "q8_0 exact values");

	/* a partial trailing block: only its head is written */
	y[20] = 777.0f;
	ec_dequantize(EC_Q8_0, b, y, 20);
	EC_CHECK(y[19] == (19 * 8 - 128) * 0.5f && y[20] == 777.0f,
		 "q8_0 partial block");
}

static void test_q4_k(void)
{
	struct ec_block_q4_k b;
	float y[256];
	int ok = 1;

	memset(&b, 0, sizeof(b));
	b.d = ec_f32_to_f16(0.5f);
	b.dmin = ec_f32_to_f16(0.25f);
	/*
	 * sub-block j: scale j + 1 and min 2 * j, packed as ggml does: 6 low
	 * bits of scales 0-3 / mins 0-3 in bytes 0-3 / 4-7, scales and mins
	 * 4-7 as nibbles of bytes 8-11 with their top 2 bits in the top bits
	 * of bytes 0-3 / 4-7.  Make scale 7 = 63 and min 7 = 50 to use them.
	 */
	uint8_t sc[8] = {1, 2, 3, 4, 5, 6, 7, 63};
	uint8_t mn[8] = {0, 2, 4, 6, 8, 10, 12, 50};

	for (int j = 0; j < 4; j++) {
		b.scales[j] = sc[j] | ((sc[j + 4] >> 4) << 6);
		b.scales[j + 4] = mn[j] | ((mn[j + 4] >> 4) << 6);
		b.scales[j + 8] = (sc[j + 4] & 0xF) | ((mn[j + 4] & 0xF) << 4);
	}
	for (int l = 0; l < 128; l++)
		b.qs[l] = (uint8_t)((l % 16) | ((15 - l % 16) << 4));
	ec_dequantize(EC_Q4_K, &b, y, 256);
	for (int i = 0; i < 256; i++) {
		int j = i / 32, l = i % 32, chunk = i / 64;
		uint8_t byte = b.qs[chunk * 32 + l];
		int q = (j % 2) ? byte >> 4 : byte & 0xF;
		float want = 0.5f * sc[j] * q - 0.25f * mn[j];

		ok &= y[i] == want;
	}
	EC_CHECK(ok, "q4_K values (y[255] = %g)", y[255]);
}

static void test_q6_k(void)
{
	struct ec_block_q6_k b;
	float y[256];
	int ok = 1;

	memset(&b, 0, sizeof(b));
	b.d = ec_f32_to_f16(0.125f);
	for (int j = 0; j < 16; j++)
		b.scales[j] = (int8_t)(j * 17 - 128);
	/* element i holds q = i % 64: low nibble in ql, top 2 bits in qh */
	for (int i = 0; i < 256; i++) {
		int h = i / 128, r = i % 128, quad = r / 32, l = r % 32;
		int q = i % 64;
		uint8_t *ql = &b.ql[64 * h + l + (quad & 1) * 32];
		uint8_t *qh = &b.qh[32 * h + l];

		*ql |= (quad < 2 ? (q & 0xF) : (q & 0xF) << 4);
		*qh |= (q >> 4) << (2 * quad);
	}
	ec_dequantize(EC_Q6_K, &b, y, 256);
	for (int i = 0; i < 256; i++) {
		float want = 0.125f * b.scales[i / 16] * (i % 64 - 32);

		ok &= y[i] == want;
	}
	EC_CHECK(ok, "q6_K values (y[1] = %g)", y[1]);
}

static void test_plain(void)
{
	uint16_t h[4] = {0x3c00, 0x0001, 0x7c00, 0xbc00};
	uint16_t bf[3] = {0x3f80, 0x4049, 0xff80};
	float f[3] = {1.5f, -2.0f, 3.25f}, y[4];

	ec_dequantize(EC_F16, h, y, 4);
	EC_CHECK(y[0] == 1 && y[1] == ldexpf(1, -24) && isinf(y[2]) &&
		     y[3] == -1,
		 "f16 dequantize");
	ec_dequantize(EC_BF16, bf, y, 3);
	EC_CHECK(y[0] == 1 && y[1] == 3.140625f && isinf(y[2]),
		 "bf16 dequantize");
	ec_dequantize(EC_F32, f, y, 3);
	EC_CHECK(!memcmp(f, y, sizeof(f)), "f32 dequantize");
}

int main(void)
{
	test_dtype_info();
	test_views();
	test_half();
	test_q8_0();
	test_q4_k();
	test_q6_k();
	test_plain();
	return ec_test_done();
}
