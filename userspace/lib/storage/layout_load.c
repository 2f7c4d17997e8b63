// SPDX-License-Identifier: MIT
/* Expert layout files: loading a layout and checking it against a model. */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "ec_error.h"
#include "layout_internal.h"
#include "storage_internal.h"

static void get_entry(const uint8_t *p, struct ec_layout_entry *x)
{
	x->offset = get64(p);
	x->length = get64(p + 8);
	for (int i = 0; i < EC_EXPERT_NPARTS; i++) {
		x->part_off[i] = get64(p + 16 + 8 * i);
		x->part_bytes[i] = get64(p + 40 + 8 * i);
	}
}

static int pread_all(int fd, void *buf, uint64_t n, uint64_t off,
		     const char *path, const char *what)
{
	uint8_t *b = buf;

	while (n) {
		ssize_t r = pread(fd, b, n, (off_t)off);

		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0)
			return ec_err(-errno, "%s: reading the %s: %s", path,
				      what, strerror(errno));
		if (r == 0)
			return ec_err(-EC_EFORMAT, "%s: file ends inside the "
				      "%s (offset %llu): truncated?", path,
				      what, (unsigned long long)off);
		b += r;
		n -= (uint64_t)r;
		off += (uint64_t)r;
	}
	return 0;
}

static int cmp_u64_pair(const void *a, const void *b)
{
	const uint64_t *x = a, *y = b;

	return x[0] < y[0] ? -1 : x[0] > y[0];
}

/* Every entry aligned, inside the file, parts in order and model-sized,
 * records disjoint. */
static int check_entries(const struct ec_layout *l, const struct ec_model *m,
			 const char *path)
{
	uint64_t n_keys = (uint64_t)l->n_layer * l->n_expert, k;
	uint64_t *span = malloc(n_keys * 2 * sizeof(*span));	/* (n, 2) */
	int ret = 0, p;

	if (!span)
		return ec_err(-ENOMEM, "out of memory");
	for (k = 0; k < n_keys && !ret; k++) {
		const struct ec_layout_entry *en = &l->ent[k];
		const struct ec_expert *x =
			&m->layers[k / l->n_expert].experts[k % l->n_expert];
		uint32_t ly = (uint32_t)(k / l->n_expert);
		uint32_t e = (uint32_t)(k % l->n_expert);
		uint64_t end = 0;

		if (en->offset % EC_IO_ALIGN || en->offset < l->data_offset ||
		    en->offset > l->file_bytes || !en->length ||
		    en->length > l->file_bytes - en->offset) {
			ret = ec_err(-EC_EFORMAT, "%s: index: expert (layer "
				     "%u, expert %u): record %llu+%llu not "
				     "aligned or outside the data (%llu.."
				     "%llu)", path, ly, e,
				     (unsigned long long)en->offset,
				     (unsigned long long)en->length,
				     (unsigned long long)l->data_offset,
				     (unsigned long long)l->file_bytes);
			break;
		}
		for (p = 0; p < EC_EXPERT_NPARTS; p++) {
			if (en->part_bytes[p] != x->w[p].nbytes ||
			    en->part_off[p] < end ||
			    en->part_off[p] % EC_LAYOUT_PART_ALIGN ||
			    en->part_off[p] > en->length ||
			    en->part_bytes[p] > en->length - en->part_off[p]) {
				ret = ec_err(-EC_EFORMAT, "%s: index: expert "
					     "(layer %u, expert %u): part %d "
					     "at %llu+%llu does not fit its "
					     "record (%llu bytes) or the "
					     "model's %llu bytes", path, ly, e,
					     p,
					     (unsigned long long)
					     en->part_off[p],
					     (unsigned long long)
					     en->part_bytes[p],
					     (unsigned long long)en->length,
					     (unsigned long long)
					     x->w[p].nbytes);
				break;
			}
			end = en->part_off[p] + en->part_bytes[p];
		}
		span[2 * k] = en->offset;
		span[2 * k + 1] = en->offset + en->length;
	}
	if (!ret) {
		qsort(span, n_keys, 2 * sizeof(*span), cmp_u64_pair);
		for (k = 1; k < n_keys; k++)
			if (span[2 * k] < span[2 * k - 1]) {
				ret = ec_err(-EC_EFORMAT, "%s: index: records "
					     "overlap at offset %llu", path,
					     (unsigned long long)span[2 * k]);
				break;
			}
	}
	free(span);
	return ret;
}

/* Header fields against the file and the model. */
static int check_head(const uint8_t *head, struct ec_layout *l,
		      const struct ec_model *m, uint64_t size,
		      const char *path)
{
	uint64_t n_keys, index_bytes;
	struct ec_model_identity id;

	if (memcmp(head, EC_LAYOUT_MAGIC, 8))
		return ec_err(-EC_EFORMAT, "%s: not an expertcache layout file"
			      " (no '%s' magic)", path, EC_LAYOUT_MAGIC);
	if (get32(head + H_VERSION) != EC_LAYOUT_VERSION)
		return ec_err(-EC_EUNSUPPORTED, "%s: layout version %u (this "
			      "build reads version %u)", path,
			      get32(head + H_VERSION), EC_LAYOUT_VERSION);
	if (get64(head + H_HEADER_SUM) != fnv(FNV_INIT, head, H_HEADER_SUM))
		return ec_err(-EC_EFORMAT, "%s: header checksum mismatch: "
			      "the file is corrupt", path);
	l->n_layer = get32(head + H_N_LAYER);
	l->n_expert = get32(head + H_N_EXPERT);
	l->model.bytes = get64(head + H_MODEL_BYTES);
	l->model.head_sum = get64(head + H_HEAD_SUM);
	l->model.table_sum = get64(head + H_TABLE_SUM);
	l->data_offset = get64(head + H_DATA_OFF);
	l->file_bytes = get64(head + H_FILE_BYTES);
	n_keys = (uint64_t)l->n_layer * l->n_expert;
	index_bytes = get64(head + H_INDEX_BYTES);
	if (get32(head + H_HEADER_BYTES) != EC_LAYOUT_HEADER_BYTES ||
	    get64(head + H_INDEX_OFF) != EC_LAYOUT_HEADER_BYTES ||
	    !n_keys || n_keys > (1u << 26) ||
	    index_bytes != n_keys * EC_LAYOUT_ENTRY_BYTES ||
	    l->data_offset % EC_IO_ALIGN ||
	    l->data_offset < EC_LAYOUT_HEADER_BYTES + index_bytes ||
	    l->file_bytes % EC_IO_ALIGN || l->file_bytes < l->data_offset)
		return ec_err(-EC_EFORMAT, "%s: header: inconsistent sizes "
			      "(%u x %u experts, index %llu bytes, data at "
			      "%llu, file %llu bytes)", path, l->n_layer,
			      l->n_expert, (unsigned long long)index_bytes,
			      (unsigned long long)l->data_offset,
			      (unsigned long long)l->file_bytes);
	if (l->n_layer != m->hp.n_layer || l->n_expert != m->hp.n_expert)
		return ec_err(-EC_ESHAPE, "%s: layout of %u layers x %u "
			      "experts, the model has %u x %u", path,
			      l->n_layer, l->n_expert, m->hp.n_layer,
			      m->hp.n_expert);
	ec_model_identity(m, &id);
	if (id.bytes != l->model.bytes || id.head_sum != l->model.head_sum ||
	    id.table_sum != l->model.table_sum)
		return ec_err(-EC_EINVAL, "%s: made from another model (%llu "
			      "bytes, checksums %016llx/%016llx) than %s "
			      "(%llu bytes, %016llx/%016llx): rebuild it "
			      "with 'expertcache layout'", path,
			      (unsigned long long)l->model.bytes,
			      (unsigned long long)l->model.head_sum,
			      (unsigned long long)l->model.table_sum,
			      m->files[0].path, (unsigned long long)id.bytes,
			      (unsigned long long)id.head_sum,
			      (unsigned long long)id.table_sum);
	if (size != l->file_bytes)
		return ec_err(-EC_EFORMAT, "%s: %llu bytes, the header says "
			      "%llu: truncated or appended to", path,
			      (unsigned long long)size,
			      (unsigned long long)l->file_bytes);
	return 0;
}

int ec_layout_load(const char *path, const struct ec_model *m,
		   struct ec_layout **out)
{
	uint8_t head[EC_LAYOUT_HEADER_BYTES], *index = NULL;
	struct ec_layout *l;
	uint64_t n_keys, k;
	struct stat st;
	int fd, ret;

	*out = NULL;
	l = calloc(1, sizeof(*l));
	if (!l)
		return ec_err(-ENOMEM, "out of memory");
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0) {
		ret = ec_err(-errno, "%s: cannot open: %s", path,
			     strerror(errno));
		goto out;
	}
	if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode)) {
		ret = ec_err(-EC_EINVAL, "%s: not a regular file", path);
		goto out;
	}
	ret = pread_all(fd, head, sizeof(head), 0, path, "header");
	if (ret < 0)
		goto out;
	ret = check_head(head, l, m, (uint64_t)st.st_size, path);
	if (ret < 0)
		goto out;
	n_keys = (uint64_t)l->n_layer * l->n_expert;
	index = malloc(n_keys * EC_LAYOUT_ENTRY_BYTES);
	l->ent = calloc(n_keys, sizeof(*l->ent));
	if (!index || !l->ent) {
		ret = ec_err(-ENOMEM, "out of memory");
		goto out;
	}
	ret = pread_all(fd, index, n_keys * EC_LAYOUT_ENTRY_BYTES,
			EC_LAYOUT_HEADER_BYTES, path, "index");
	if (ret < 0)
		goto out;
	if (get64(head + H_INDEX_SUM) !=
	    fnv(FNV_INIT, index, n_keys * EC_LAYOUT_ENTRY_BYTES)) {
		ret = ec_err(-EC_EFORMAT, "%s: index checksum mismatch: the "
			     "file is corrupt", path);
		goto out;
	}
	for (k = 0; k < n_keys; k++)
		get_entry(index + k * EC_LAYOUT_ENTRY_BYTES, &l->ent[k]);
	ret = check_entries(l, m, path);
out:
	if (fd >= 0)
		close(fd);
	free(index);
	if (ret < 0)
		ec_layout_free(l);
	else
		*out = l;
	return ret;
}

void ec_layout_free(struct ec_layout *l)
{
	if (!l)
		return;
	free(l->ent);
	free(l);
}
