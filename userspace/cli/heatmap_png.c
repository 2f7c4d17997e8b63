// SPDX-License-Identifier: MIT
/* Drawing into RGB images, the viridis colour map, and a PNG encoder (zlib). */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zlib.h>

#include "ec_error.h"
#include "heatmap.h"

int ec_image_new(struct ec_image *im, uint32_t w, uint32_t h,
		 const uint8_t bg[3])
{
	size_t i, n = (size_t)w * h;

	im->w = w;
	im->h = h;
	im->rgb = malloc(n * 3 ? n * 3 : 1);
	if (!im->rgb)
		return ec_err(-ENOMEM, "out of memory for a %ux%u image", w, h);
	for (i = 0; i < n; i++)
		memcpy(im->rgb + i * 3, bg, 3);
	return 0;
}

void ec_image_free(struct ec_image *im)
{
	free(im->rgb);
	im->rgb = NULL;
}

static void put(struct ec_image *im, int x, int y, const uint8_t c[3])
{
	if (x >= 0 && y >= 0 && (uint32_t)x < im->w && (uint32_t)y < im->h)
		memcpy(im->rgb + ((size_t)y * im->w + x) * 3, c, 3);
}

void ec_image_fill(struct ec_image *im, int x, int y, int w, int h,
		   const uint8_t c[3])
{
	int i, j;

	for (j = 0; j < h; j++)
		for (i = 0; i < w; i++)
			put(im, x + i, y + j, c);
}

int ec_text_width(const char *s)
{
	return (int)strlen(s) * EC_FONT_W;
}

void ec_image_text(struct ec_image *im, int x, int y, const char *s,
		   const uint8_t c[3], int vertical)
{
	int k, r, col;

	for (k = 0; s[k]; k++) {
		unsigned char ch = (unsigned char)s[k];
		const unsigned char *g;

		if (ch < 32 || ch > 126)
			ch = '?';
		g = ec_font6x13[ch - 32];
		for (r = 0; r < EC_FONT_H; r++) {
			for (col = 0; col < EC_FONT_W; col++) {
				/* glyphs sit in bits 6..1 of each row */
				if (!(g[r] & (0x40 >> col)))
					continue;
				if (vertical)
					put(im, x + r, y - k * EC_FONT_W - col,
					    c);
				else
					put(im, x + k * EC_FONT_W + col, y + r,
					    c);
			}
		}
	}
}

void ec_colormap(double t, uint8_t out[3])
{
	/* matplotlib's viridis at t = 0, 0.1, ..., 1 */
	static const uint8_t stops[11][3] = {
		{ 0x44, 0x01, 0x54 }, { 0x48, 0x24, 0x75 },
		{ 0x41, 0x44, 0x87 }, { 0x35, 0x5f, 0x8d },
		{ 0x2a, 0x78, 0x8e }, { 0x21, 0x91, 0x8c },
		{ 0x22, 0xa8, 0x84 }, { 0x44, 0xbf, 0x70 },
		{ 0x7a, 0xd1, 0x51 }, { 0xbd, 0xdf, 0x26 },
		{ 0xfd, 0xe7, 0x25 },
	};
	double f;
	int i, k;

	if (!(t > 0))	/* also NaN */
		t = 0;
	if (t > 1)
		t = 1;
	i = (int)(t * 10);
	if (i > 9)
		i = 9;
	f = t * 10 - i;
	for (k = 0; k < 3; k++)
		out[k] = (uint8_t)(stops[i][k] + f * (stops[i + 1][k] -
						      stops[i][k]) + 0.5);
}

static void be32(uint8_t *p, uint32_t v)
{
	p[0] = v >> 24;
	p[1] = v >> 16;
	p[2] = v >> 8;
	p[3] = v;
}

/* length, type, data, CRC over type and data */
static int chunk(FILE *f, const char *type, const uint8_t *data, uint32_t n)
{
	uint8_t hdr[8], crc[4];
	uLong c = crc32(0, (const Bytef *)type, 4);

	if (n)
		c = crc32(c, data, n);
	be32(hdr, n);
	memcpy(hdr + 4, type, 4);
	be32(crc, (uint32_t)c);
	return fwrite(hdr, 1, 8, f) == 8 && (!n || fwrite(data, 1, n, f) == n)
	       && fwrite(crc, 1, 4, f) == 4 ? 0 : -1;
}

int ec_png_write(const struct ec_image *im, const char *path)
{
	static const uint8_t sig[8] = { 0x89, 'P', 'N', 'G', 0x0d, 0x0a,
					0x1a, 0x0a };
	static const char text[] = "Software\0expertcache heatmap";
	size_t row = (size_t)im->w * 3 + 1, raw_n = row * im->h;
	uint8_t ihdr[13], *raw = NULL, *z = NULL;
	uLongf z_n = compressBound(raw_n);
	FILE *f = NULL;
	uint32_t y;
	int ret = 0;

	if (!im->w || !im->h || raw_n / row != im->h || z_n > UINT32_MAX)
		return ec_err(-EC_EINVAL, "%s: bad image size %ux%u", path,
			      im->w, im->h);
	raw = malloc(raw_n);
	z = malloc(z_n);
	if (!raw || !z) {
		ret = ec_err(-ENOMEM, "out of memory");
		goto out;
	}
	for (y = 0; y < im->h; y++) {
		raw[y * row] = 0;	/* filter: none */
		memcpy(raw + y * row + 1, im->rgb + (size_t)y * im->w * 3,
		       row - 1);
	}
	if (compress2(z, &z_n, raw, raw_n, 9) != Z_OK) {
		ret = ec_err(-EIO, "%s: zlib compression failed", path);
		goto out;
	}
	be32(ihdr, im->w);
	be32(ihdr + 4, im->h);
	ihdr[8] = 8;		/* bits per sample */
	ihdr[9] = 2;		/* RGB */
	ihdr[10] = ihdr[11] = ihdr[12] = 0;
	f = fopen(path, "wb");
	if (!f) {
		ret = ec_err(-errno, "%s: cannot create: %s", path,
			     strerror(errno));
		goto out;
	}
	if (fwrite(sig, 1, 8, f) != 8 || chunk(f, "IHDR", ihdr, 13) ||
	    chunk(f, "tEXt", (const uint8_t *)text, sizeof(text) - 1) ||
	    chunk(f, "IDAT", z, (uint32_t)z_n) || chunk(f, "IEND", NULL, 0))
		ret = ec_err(-EIO, "%s: write failed", path);
out:
	if (f && fclose(f) && !ret)
		ret = ec_err(-EIO, "%s: write failed", path);
	free(raw);
	free(z);
	return ret;
}
