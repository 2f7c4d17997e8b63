// SPDX-License-Identifier: MIT
/* `expertcache heatmap`: a layer x expert PNG of a profile or a trace. */
#include <getopt.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "ec_error.h"
#include "ec_storage.h"
#include "heatmap.h"

static const uint8_t BG[3] = { 0xff, 0xff, 0xff };
static const uint8_t INK[3] = { 0x22, 0x22, 0x22 };
static const uint8_t GRID[3] = { 0xe8, 0xe8, 0xe8 };

static void usage(FILE *f)
{
	fprintf(f,
		"usage: expertcache heatmap (--profile P.json | --trace "
		"T.jsonl) --out heat.png\n"
		"                           [--log] [--per-layer] [--title "
		"TEXT]\n\n"
		"Draws how often each (layer, expert) was used: one row per "
		"layer, one\ncolumn per expert, colour = accesses (viridis), "
		"with axes and a colour bar.\n\n"
		"  --profile FILE   a profile (expertcache profile, "
		"--from-trace/--from-bpf)\n"
		"  --trace FILE     a routing trace (run --record-trace), "
		"JSONL\n"
		"  -o, --out FILE   PNG to write\n"
		"  --log            logarithmic colour scale\n"
		"  --per-layer      colour = share of its layer's accesses "
		"(rows comparable)\n"
		"  --title TEXT     title (default: where the data came "
		"from)\n"
		"  -h, --help       this help\n");
}

struct layout {
	int cell, gap;		/* cell pitch and the gap inside it */
	int gx, gy, gw, gh;	/* grid */
	int bx, by, bh;		/* colour bar */
	int w, h;
};

/* Smallest "nice" label step so labels `px` wide fit in cells of `cell`. */
static uint32_t tick_step(int cell, int px)
{
	static const uint32_t nice[] = { 1, 2, 4, 5, 8, 10, 16, 20, 25, 32,
					 50, 64, 100, 128, 200, 256, 500,
					 1000 };
	size_t i;

	for (i = 0; i < sizeof(nice) / sizeof(nice[0]); i++)
		if ((int)nice[i] * cell >= px)
			return nice[i];
	return 1000;
}

static void plan(struct layout *lo, const struct ec_profile *p,
		 const char *title)
{
	int c1 = 900 / (int)p->n_expert, c2 = 640 / (int)p->n_layer;
	int cell = c1 < c2 ? c1 : c2, min_w;

	if (cell > 32)
		cell = 32;
	if (cell < 2)
		cell = 2;
	lo->cell = cell;
	lo->gap = cell >= 6;
	lo->gx = 24 + EC_FONT_H + 4 * EC_FONT_W;	/* "layer" + ticks */
	lo->gy = 16 + 2 * (EC_FONT_H + 4);		/* two title lines */
	lo->gw = cell * (int)p->n_expert;
	lo->gh = cell * (int)p->n_layer;
	lo->bh = lo->gh < 120 ? 120 : lo->gh;
	lo->bx = lo->gx + lo->gw + 24;
	lo->by = lo->gy;
	lo->w = lo->bx + 16 + 4 + 10 * EC_FONT_W + 8;
	min_w = 16 + ec_text_width(title) + 16;
	if (lo->w < min_w)
		lo->w = min_w;
	/* below the grid: ticks, their labels and "expert"; below the bar:
	 * its label */
	lo->h = lo->gy + lo->gh + 12 + 2 * EC_FONT_H + 10;
	if (lo->h < lo->by + lo->bh + 8 + EC_FONT_H + 10)
		lo->h = lo->by + lo->bh + 8 + EC_FONT_H + 10;
}

static double value(const struct ec_profile *p, const uint64_t *row_max,
		    uint64_t max, uint32_t l, uint32_t e, int log_scale)
{
	uint64_t v = p->count[(size_t)l * p->n_expert + e];
	uint64_t m = row_max ? row_max[l] : max;

	if (!m)
		return 0;
	if (log_scale)
		return log1p((double)v) / log1p((double)m);
	return (double)v / m;
}

static void draw(struct ec_image *im, const struct layout *lo,
		 const struct ec_profile *p, const char *title, int log_scale,
		 int per_layer)
{
	uint64_t max = 0, *row_max = NULL, total_l;
	uint32_t l, e, step;
	char buf[128];
	uint8_t c[3];
	int i;

	if (per_layer)
		row_max = calloc(p->n_layer, sizeof(*row_max));
	for (l = 0; l < p->n_layer; l++) {
		total_l = 0;
		for (e = 0; e < p->n_expert; e++) {
			uint64_t v = p->count[(size_t)l * p->n_expert + e];

			total_l += v;
			if (v > max)
				max = v;
			if (row_max && v > row_max[l])
				row_max[l] = v;
		}
	}
	ec_image_text(im, 16, 12, title, INK, 0);
	snprintf(buf, sizeof(buf), "%u layers x %u experts, %llu tokens, "
		 "%llu accesses", p->n_layer, p->n_expert,
		 (unsigned long long)p->n_tokens,
		 (unsigned long long)p->n_access);
	ec_image_text(im, 16, 12 + EC_FONT_H + 4, buf, INK, 0);
	/* cells */
	for (l = 0; l < p->n_layer; l++) {
		for (e = 0; e < p->n_expert; e++) {
			ec_colormap(value(p, row_max, max, l, e, log_scale), c);
			ec_image_fill(im, lo->gx + (int)e * lo->cell,
				      lo->gy + (int)l * lo->cell,
				      lo->cell - lo->gap, lo->cell - lo->gap,
				      c);
		}
	}
	/* expert ticks below, layer ticks left */
	step = tick_step(lo->cell, 3 * EC_FONT_W + 4);
	for (e = 0; e < p->n_expert; e += step) {
		int x = lo->gx + (int)e * lo->cell + lo->cell / 2;

		snprintf(buf, sizeof(buf), "%u", e);
		ec_image_fill(im, x, lo->gy + lo->gh, 1, 4, INK);
		ec_image_text(im, x - ec_text_width(buf) / 2,
			      lo->gy + lo->gh + 5, buf, INK, 0);
	}
	ec_image_text(im, lo->gx + lo->gw / 2 - ec_text_width("expert") / 2,
		      lo->gy + lo->gh + 8 + EC_FONT_H, "expert", INK, 0);
	step = tick_step(lo->cell, EC_FONT_H);
	for (l = 0; l < p->n_layer; l += step) {
		int y = lo->gy + (int)l * lo->cell + lo->cell / 2;

		snprintf(buf, sizeof(buf), "%u", l);
		ec_image_fill(im, lo->gx - 4, y, 4, 1, INK);
		ec_image_text(im, lo->gx - 6 - ec_text_width(buf),
			      y - EC_FONT_H / 2, buf, INK, 0);
	}
	ec_image_text(im, 8, lo->gy + lo->gh / 2 + ec_text_width("layer") / 2,
		      "layer", INK, 1);
	ec_image_fill(im, lo->gx - 1, lo->gy - 1, lo->gw + 1, 1, GRID);
	/* colour bar, max at the top */
	for (i = 0; i < lo->bh; i++) {
		ec_colormap(1.0 - (double)i / (lo->bh - 1), c);
		ec_image_fill(im, lo->bx, lo->by + i, 16, 1, c);
	}
	if (per_layer)
		snprintf(buf, sizeof(buf), "max of layer");
	else
		snprintf(buf, sizeof(buf), "%llu", (unsigned long long)max);
	ec_image_text(im, lo->bx + 20, lo->by - 2, buf, INK, 0);
	if (!log_scale) {
		if (per_layer)
			snprintf(buf, sizeof(buf), "half");
		else
			snprintf(buf, sizeof(buf), "%.0f", max / 2.0);
		ec_image_text(im, lo->bx + 20, lo->by + lo->bh / 2 -
			      EC_FONT_H / 2, buf, INK, 0);
	}
	ec_image_text(im, lo->bx + 20, lo->by + lo->bh - EC_FONT_H + 2, "0",
		      INK, 0);
	ec_image_text(im, lo->bx - 4, lo->by + lo->bh + 6,
		      log_scale ? "accesses (log)" : "accesses", INK, 0);
	free(row_max);
}

int ec_cmd_heatmap(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "profile", required_argument, NULL, 'p' },
		{ "trace", required_argument, NULL, 't' },
		{ "out", required_argument, NULL, 'o' },
		{ "log", no_argument, NULL, 'l' },
		{ "per-layer", no_argument, NULL, 'L' },
		{ "title", required_argument, NULL, 'T' },
		{ "help", no_argument, NULL, 'h' },
		{ 0 },
	};
	const char *prof = NULL, *trace = NULL, *out = NULL, *title = NULL;
	struct ec_profile *p = NULL;
	struct ec_trace *t = NULL;
	struct ec_image im = { 0 };
	struct layout lo;
	int c, ret, rc = 1, log_scale = 0, per_layer = 0;
	char tbuf[300];

	while ((c = getopt_long(argc, argv, "o:h", opts, NULL)) != -1) {
		switch (c) {
		case 'p':
			prof = optarg;
			break;
		case 't':
			trace = optarg;
			break;
		case 'o':
			out = optarg;
			break;
		case 'l':
			log_scale = 1;
			break;
		case 'L':
			per_layer = 1;
			break;
		case 'T':
			title = optarg;
			break;
		case 'h':
			usage(stdout);
			return 0;
		default:
			usage(stderr);
			return 2;
		}
	}
	if (!out || !prof == !trace || optind != argc) {
		fprintf(stderr, "expertcache heatmap: need --out and one of "
			"--profile or --trace\n");
		return 2;
	}
	if (prof) {
		ret = ec_profile_load(prof, &p);
	} else {
		ret = ec_trace_load(trace, &t);
		if (ret >= 0)
			ret = ec_profile_from_trace(t, 0, &p);
		if (ret >= 0)
			snprintf(p->source, sizeof(p->source), "trace:%s",
				 trace);
	}
	if (ret < 0) {
		ec_cli_error(prof ? prof : trace, ret);
		goto out;
	}
	if (p->n_layer > 4096 || p->n_expert > 4096) {
		fprintf(stderr, "expertcache heatmap: %u x %u is too big to "
			"draw\n", p->n_layer, p->n_expert);
		goto out;
	}
	if (!title) {
		snprintf(tbuf, sizeof(tbuf), "expert accesses - %s",
			 p->source[0] ? p->source : prof ? prof : trace);
		title = tbuf;
	}
	plan(&lo, p, title);
	ret = ec_image_new(&im, (uint32_t)lo.w, (uint32_t)lo.h, BG);
	if (ret >= 0) {
		draw(&im, &lo, p, title, log_scale, per_layer);
		ret = ec_png_write(&im, out);
	}
	if (ret < 0) {
		ec_cli_error(out, ret);
		goto out;
	}
	printf("wrote %s (%dx%d): %u layers x %u experts, %llu accesses; "
	       "grid at %d,%d, cells of %d px\n", out, lo.w, lo.h, p->n_layer,
	       p->n_expert, (unsigned long long)p->n_access, lo.gx, lo.gy,
	       lo.cell);
	rc = 0;
out:
	ec_image_free(&im);
	ec_profile_free(p);
	ec_trace_free(t);
	return rc;
}
