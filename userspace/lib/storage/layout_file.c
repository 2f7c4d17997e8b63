// SPDX-License-Identifier: MIT
/* Expert layout files: the model's identity and writing a layout. */
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

#define HEAD_SUM_BYTES (1u << 20)
#define FLUSH_EVERY (256ull << 20)	/* bound the dirty page cache */

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

static int pwrite_all(int fd, const void *buf, uint64_t n, uint64_t off,
		      const char *path)
{
	const uint8_t *b = buf;

	while (n) {
		ssize_t w = pwrite(fd, b, n, (off_t)off);

		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0)
			return ec_err(w < 0 ? -errno : -EIO, "%s: write of "
				      "%llu bytes at offset %llu: %s", path,
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

