// SPDX-License-Identifier: MIT
/* Expert layout files: model identity, writing, loading and checking. */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "ec_error.h"
#include "ec_layout.h"
#include "storage_internal.h"

#define HEAD_SUM_BYTES (1u << 20)
#define FLUSH_EVERY (256ull << 20)	/* bound the dirty page cache */

/*
 * On disk, little-endian (offsets in bytes):
 *   0 magic[8]  8 version  12 header_bytes  16 n_layer  20 n_expert (u32)
 *  24 model_bytes  32 model_head_sum  40 model_table_sum  48 index_offset
 *  56 index_bytes  64 data_offset  72 file_bytes  80 index_sum
 *  88 header_sum (FNV-1a 64 of bytes 0..87)  96..127 zero
 * then [n_layer * n_expert] entries of 8 u64: offset, length,
 * part_off[3], part_bytes[3].
 */
enum {
	H_VERSION = 8, H_HEADER_BYTES = 12, H_N_LAYER = 16, H_N_EXPERT = 20,
	H_MODEL_BYTES = 24, H_HEAD_SUM = 32, H_TABLE_SUM = 40,
	H_INDEX_OFF = 48, H_INDEX_BYTES = 56, H_DATA_OFF = 64,
	H_FILE_BYTES = 72, H_INDEX_SUM = 80, H_HEADER_SUM = 88,
};

static uint64_t fnv(uint64_t h, const void *p, uint64_t n)
{
	const uint8_t *b = p;
	uint64_t i;

	for (i = 0; i < n; i++)
		h = (h ^ b[i]) * 1099511628211ull;
	return h;
}

#define FNV_INIT 1469598103934665603ull

static void put32(uint8_t *p, uint32_t v)
{
	for (int i = 0; i < 4; i++)
		p[i] = (uint8_t)(v >> (8 * i));
}

static void put64(uint8_t *p, uint64_t v)
{
	for (int i = 0; i < 8; i++)
		p[i] = (uint8_t)(v >> (8 * i));
}

static uint32_t get32(const uint8_t *p)
{
	uint32_t v = 0;

	for (int i = 3; i >= 0; i--)
		v = v << 8 | p[i];
	return v;
}

static uint64_t get64(const uint8_t *p)
{
	uint64_t v = 0;

	for (int i = 7; i >= 0; i--)
		v = v << 8 | p[i];
	return v;
}

void ec_model_identity(const struct ec_model *m, struct ec_model_identity *out)
{
	uint8_t rec[8 * 8];
	uint32_t i, l, e;
	int p, d;

	memset(out, 0, sizeof(*out));
	out->head_sum = FNV_INIT;
	out->table_sum = FNV_INIT;
	for (i = 0; i < m->n_files; i++) {
		const struct ec_model_file *f = &m->files[i];
		uint64_t n = f->size < HEAD_SUM_BYTES ? f->size :
							HEAD_SUM_BYTES;

		out->bytes += f->size;
		if (f->map)
			out->head_sum = fnv(out->head_sum, f->map, n);
	}
	for (l = 0; l < m->hp.n_layer; l++) {
		for (e = 0; e < m->hp.n_expert; e++) {
			const struct ec_expert *x = &m->layers[l].experts[e];

			for (p = 0; p < EC_EXPERT_NPARTS; p++) {
				const struct ec_tensor *t = &x->w[p];

				put64(rec, t->type);
				for (d = 0; d < EC_MAX_DIMS; d++)
					put64(rec + 8 + 8 * d, t->ne[d]);
				put64(rec + 40, t->file);
				put64(rec + 48, t->offset);
				put64(rec + 56, t->nbytes);
				out->table_sum = fnv(out->table_sum, rec,
						     sizeof(rec));
			}
		}
	}
}

static void put_entry(uint8_t *p, const struct ec_layout_entry *x)
{
	put64(p, x->offset);
	put64(p + 8, x->length);
	for (int i = 0; i < EC_EXPERT_NPARTS; i++) {
		put64(p + 16 + 8 * i, x->part_off[i]);
		put64(p + 40 + 8 * i, x->part_bytes[i]);
	}
}

static void get_entry(const uint8_t *p, struct ec_layout_entry *x)
{
	x->offset = get64(p);
	x->length = get64(p + 8);
	for (int i = 0; i < EC_EXPERT_NPARTS; i++) {
		x->part_off[i] = get64(p + 16 + 8 * i);
		x->part_bytes[i] = get64(p + 40 + 8 * i);
	}
}

static int pwrite_all(int fd, const void *buf, uint64_t n, uint64_t off,
		      const char *path)
{
	const uint8_t *b = buf;

	while (n) {
		ssize_t w = pwrite(fd, b, n, (off_t)off);

		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0)
			return ec_err(w < 0 ? -errno : -EIO, "%s: write of %llu "
				      "bytes at offset %llu: %s", path,
				      (unsigned long long)n,
				      (unsigned long long)off,
				      w < 0 ? strerror(errno) : "no progress");
		b += w;
		n -= (uint64_t)w;
		off += (uint64_t)w;
	}
	return 0;
}

/* Entries for records in `order`; returns the file size. */
static int place_records(const struct ec_model *m, const uint32_t *order,
			 struct ec_layout *l)
{
	uint64_t n_keys = (uint64_t)l->n_layer * l->n_expert, i;
	uint64_t cursor;
	uint8_t *seen = calloc(n_keys, 1);

	if (!seen)
		return ec_err(-ENOMEM, "out of memory");
	cursor = ec_align_up(EC_LAYOUT_HEADER_BYTES +
			     n_keys * EC_LAYOUT_ENTRY_BYTES, EC_IO_ALIGN);
	l->data_offset = cursor;
	for (i = 0; i < n_keys; i++) {
		uint32_t k = order[i];
		const struct ec_expert *x;
		struct ec_layout_entry *en;
		uint64_t off = 0;
		int p;

		if (k >= n_keys || seen[k]) {
			free(seen);
			return ec_err(-EC_EINVAL, "layout order: key %u at "
				      "position %llu %s", k,
				      (unsigned long long)i,
				      k >= n_keys ? "out of range" :
						    "given twice");
		}
		seen[k] = 1;
		x = &m->layers[k / l->n_expert].experts[k % l->n_expert];
		en = &l->ent[k];
		for (p = 0; p < EC_EXPERT_NPARTS; p++) {
			off = ec_align_up(off, EC_LAYOUT_PART_ALIGN);
			en->part_off[p] = off;
			en->part_bytes[p] = x->w[p].nbytes;
			off += x->w[p].nbytes;
		}
		en->offset = cursor;
		en->length = off;
		cursor = ec_align_up(cursor + off, EC_IO_ALIGN);
	}
	l->file_bytes = cursor;
	free(seen);
	return 0;
}

static void encode_head(const struct ec_layout *l, uint8_t *head,
			const uint8_t *index, uint64_t index_bytes)
{
	memset(head, 0, EC_LAYOUT_HEADER_BYTES);
	memcpy(head, EC_LAYOUT_MAGIC, 8);
	put32(head + H_VERSION, EC_LAYOUT_VERSION);
	put32(head + H_HEADER_BYTES, EC_LAYOUT_HEADER_BYTES);
	put32(head + H_N_LAYER, l->n_layer);
	put32(head + H_N_EXPERT, l->n_expert);
	put64(head + H_MODEL_BYTES, l->model.bytes);
	put64(head + H_HEAD_SUM, l->model.head_sum);
	put64(head + H_TABLE_SUM, l->model.table_sum);
	put64(head + H_INDEX_OFF, EC_LAYOUT_HEADER_BYTES);
	put64(head + H_INDEX_BYTES, index_bytes);
	put64(head + H_DATA_OFF, l->data_offset);
	put64(head + H_FILE_BYTES, l->file_bytes);
	put64(head + H_INDEX_SUM, fnv(FNV_INIT, index, index_bytes));
	put64(head + H_HEADER_SUM, fnv(FNV_INIT, head, H_HEADER_SUM));
}

/* Copy every record from the model mapping into fd, in file order. */
static int write_records(const struct ec_model *m, const struct ec_layout *l,
			 const uint32_t *order, int fd, const char *path,
			 ec_layout_progress_fn *progress, void *arg)
{
	uint32_t n_keys = l->n_layer * l->n_expert, i, k;
	uint64_t cap = 0, since_flush = 0;
	uint8_t *buf = NULL;	/* (record bytes rounded up to EC_IO_ALIGN) */
	int ret = 0, p;

	for (k = 0; k < n_keys; k++)
		if (ec_align_up(l->ent[k].length, EC_IO_ALIGN) > cap)
			cap = ec_align_up(l->ent[k].length, EC_IO_ALIGN);
	buf = malloc(cap);
	if (!buf)
		return ec_err(-ENOMEM, "out of memory");
	for (i = 0; i < n_keys && !ret; i++) {
		const struct ec_layout_entry *en = &l->ent[order[i]];
		const struct ec_expert *x;
		uint64_t len = ec_align_up(en->length, EC_IO_ALIGN);

		k = order[i];
		x = &m->layers[k / l->n_expert].experts[k % l->n_expert];
		memset(buf, 0, len);
		for (p = 0; p < EC_EXPERT_NPARTS; p++) {
			const struct ec_tensor *t = &x->w[p];
			const struct ec_model_file *f =
				t->file < m->n_files ? &m->files[t->file] :
						       NULL;

			if (!f || !f->map || t->offset > f->size ||
			    t->nbytes > f->size - t->offset) {
				ret = ec_err(-EC_EFORMAT, "%s: expert (layer "
					     "%u, expert %u): part %d outside "
					     "the model file",
					     f ? f->path : "?",
					     k / l->n_expert, k % l->n_expert,
					     p);
				break;
			}
			memcpy(buf + en->part_off[p], f->map + t->offset,
			       t->nbytes);
		}
		if (!ret)
			ret = pwrite_all(fd, buf, len, en->offset, path);
		since_flush += len;
		if (!ret && since_flush >= FLUSH_EVERY) {
			if (fdatasync(fd) < 0)
				ret = ec_err(-errno, "%s: fdatasync: %s", path,
					     strerror(errno));
			posix_fadvise(fd, 0, 0, POSIX_FADV_DONTNEED);
			since_flush = 0;
		}
		if (progress && !ret)
			progress(arg, i + 1, n_keys);
	}
	free(buf);
	return ret;
}

int ec_layout_write(const struct ec_model *m, const uint32_t *order,
		    const char *path, ec_layout_progress_fn *progress,
		    void *arg)
{
	struct ec_layout l = { .n_layer = m->hp.n_layer,
			       .n_expert = m->hp.n_expert };
	uint64_t n_keys = (uint64_t)l.n_layer * l.n_expert, k;
	uint64_t index_bytes = n_keys * EC_LAYOUT_ENTRY_BYTES;
	uint8_t head[EC_LAYOUT_HEADER_BYTES], *index = NULL;
	char *tmp = NULL;
	int fd = -1, ret;

	if (!n_keys || n_keys > (1u << 26))
		return ec_err(-EC_EINVAL, "layout: the model has %llu experts",
			      (unsigned long long)n_keys);
	l.ent = calloc(n_keys, sizeof(*l.ent));
	index = malloc(index_bytes);
	if (!l.ent || !index || asprintf(&tmp, "%s.tmp", path) < 0) {
		tmp = NULL;
		ret = ec_err(-ENOMEM, "out of memory");
		goto out;
	}
	ec_model_identity(m, &l.model);
	ret = place_records(m, order, &l);
	if (ret < 0)
		goto out;
	for (k = 0; k < n_keys; k++)
		put_entry(index + k * EC_LAYOUT_ENTRY_BYTES, &l.ent[k]);
	encode_head(&l, head, index, index_bytes);
	fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	if (fd < 0) {
		ret = ec_err(-errno, "%s: cannot create: %s", tmp,
			     strerror(errno));
		goto out;
	}
	ret = pwrite_all(fd, head, sizeof(head), 0, tmp);
	if (!ret)
		ret = pwrite_all(fd, index, index_bytes, sizeof(head), tmp);
	if (!ret)
		ret = write_records(m, &l, order, fd, tmp, progress, arg);
	if (!ret && ftruncate(fd, (off_t)l.file_bytes) < 0)
		ret = ec_err(-errno, "%s: ftruncate: %s", tmp, strerror(errno));
	if (!ret && fsync(fd) < 0)
		ret = ec_err(-errno, "%s: fsync: %s", tmp, strerror(errno));
	if (!ret)
		posix_fadvise(fd, 0, 0, POSIX_FADV_DONTNEED);
	if (close(fd) < 0 && !ret)
		ret = ec_err(-errno, "%s: close: %s", tmp, strerror(errno));
	fd = -1;
	if (!ret && rename(tmp, path) < 0)
		ret = ec_err(-errno, "%s: cannot rename to %s: %s", tmp, path,
			     strerror(errno));
out:
	if (fd >= 0)
		close(fd);
	if (ret < 0 && tmp)
		unlink(tmp);
	free(tmp);
	free(index);
	free(l.ent);
	return ret;
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
