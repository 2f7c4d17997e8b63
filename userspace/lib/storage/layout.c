// SPDX-License-Identifier: MIT
/* Where an expert's extents land in a slot: covering aligned ranges. */
#include <errno.h>
#include <string.h>

#include "ec_error.h"
#include "storage_internal.h"

int ec_expert_layout_compute(const struct ec_model *m, uint32_t layer,
			     uint32_t e, struct ec_expert_layout *out)
{
	const struct ec_expert *x = &m->layers[layer].experts[e];
	struct ec_extent ext[EC_EXPERT_NPARTS];
	uint64_t cursor = 0;
	int n, i, p;

	memset(out, 0, sizeof(*out));
	n = ec_model_expert_extents(m, layer, e, ext);
	for (i = 0; i < n; i++) {
		const struct ec_extent *x0 = &ext[i];
		const struct ec_model_file *f;
		uint64_t a, end;

		if (x0->file >= m->n_files)
			return ec_err(-EC_EFORMAT, "expert (layer %u, expert "
				      "%u): file index %u of %u", layer, e,
				      x0->file, m->n_files);
		f = &m->files[x0->file];
		if (!x0->length || x0->offset > f->size ||
		    x0->length > f->size - x0->offset)
			return ec_err(-EC_EFORMAT, "%s: expert (layer %u, "
				      "expert %u): bytes %llu+%llu past the "
				      "end of the file (%llu bytes)", f->path,
				      layer, e,
				      (unsigned long long)x0->offset,
				      (unsigned long long)x0->length,
				      (unsigned long long)f->size);
		a = ec_align_down(x0->offset, EC_IO_ALIGN);
		end = ec_align_up(x0->offset + x0->length, EC_IO_ALIGN);
		out->ext[i].file = x0->file;
		out->ext[i].offset = a;
		out->ext[i].length = end - a;
		out->need[i] = x0->offset + x0->length - a;
		out->seg_off[i] = cursor;
		cursor += end - a;
		out->payload += x0->length;
	}
	out->n_seg = (uint32_t)n;
	out->bytes = cursor;
	for (p = 0; p < EC_EXPERT_NPARTS; p++) {
		const struct ec_tensor *t = &x->w[p];

		for (i = 0; i < n; i++) {
			uint64_t lo = out->ext[i].offset;

			if (t->file == out->ext[i].file && t->offset >= lo &&
			    t->offset + t->nbytes <= lo + out->ext[i].length)
				break;
		}
		if (i == n)	/* cannot happen: extents cover every part */
			return ec_err(-EC_EFORMAT, "expert (layer %u, expert "
				      "%u): part %d outside its extents",
				      layer, e, p);
		out->part_off[p] = out->seg_off[i] +
				   (t->offset - out->ext[i].offset);
	}
	return 0;
}
