/* SPDX-License-Identifier: MIT */
/* RGB images for `expertcache heatmap`: drawing, text, colour map, PNG. */
#ifndef EC_HEATMAP_H
#define EC_HEATMAP_H

#include <stdint.h>

#define EC_FONT_W 6
#define EC_FONT_H 13

/* Glyphs of ' ' .. '~': EC_FONT_H rows, bit 7 = leftmost column. */
extern const unsigned char ec_font6x13[95][EC_FONT_H];

struct ec_image {
	uint32_t w, h;
	uint8_t *rgb;		/* (h, w, 3) */
};

/* Allocate w x h filled with bg.  0 or -ENOMEM. */
int ec_image_new(struct ec_image *im, uint32_t w, uint32_t h,
		 const uint8_t bg[3]);
void ec_image_free(struct ec_image *im);

/* Fill a rectangle, clipped to the image. */
void ec_image_fill(struct ec_image *im, int x, int y, int w, int h,
		   const uint8_t c[3]);

/* Text with its top-left corner at (x, y); vertical: rotated 90 degrees
 * counter-clockwise, reading upwards, (x, y) its bottom-left corner. */
void ec_image_text(struct ec_image *im, int x, int y, const char *s,
		   const uint8_t c[3], int vertical);
/* Width in pixels of s in the font. */
int ec_text_width(const char *s);

/* Perceptual colour map (viridis), t in [0, 1]. */
void ec_colormap(double t, uint8_t out[3]);

/* Write an 8-bit RGB PNG (zlib).  0 or a negative error with a message. */
int ec_png_write(const struct ec_image *im, const char *path);

#endif
