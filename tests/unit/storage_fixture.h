/* SPDX-License-Identifier: MIT */
/*
 * Helpers for the storage tests: files of known bytes on a real disk
 * (build/, not /tmp which may be tmpfs), a synchronous wrapper around the
 * reader, and a hand-built model description whose experts sit at odd
 * offsets.
 */
#ifndef EC_STORAGE_FIXTURE_H
#define EC_STORAGE_FIXTURE_H

#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "ec_model.h"
#include "ec_storage.h"

/* The byte at `off` of a file made with `salt`. */
static inline uint8_t fx_byte(uint64_t off, uint32_t salt)
{
	uint64_t x = off * 0x9E3779B97F4A7C15ull + salt * 0xBF58476D1CE4E5B9ull;

	x ^= x >> 29;
	return (uint8_t)(x ^ (x >> 17));
}

static inline int fx_check(const uint8_t *p, uint64_t off, uint64_t n,
			   uint32_t salt)
{
	uint64_t i;

	for (i = 0; i < n; i++)
		if (p[i] != fx_byte(off + i, salt))
			return 0;
	return 1;
}

/* FNV-1a, to compare slot bytes with file bytes by checksum too. */
static inline uint64_t fx_fnv(const uint8_t *p, uint64_t n)
{
	uint64_t h = 1469598103934665603ull, i;

	for (i = 0; i < n; i++)
		h = (h ^ p[i]) * 1099511628211ull;
	return h;
}

static char fx_dir[256];

/* build/test-data/<name>-<pid>: on the disk the build lives on. */
static inline const char *fx_mkdir(const char *name)
{
	mkdir("build", 0755);
	mkdir("build/test-data", 0755);
	snprintf(fx_dir, sizeof(fx_dir), "build/test-data/%s-%d", name,
		 (int)getpid());
	mkdir(fx_dir, 0755);
	return fx_dir;
}

static inline int fx_rm_one(const char *path, const struct stat *st,
			    int flag, struct FTW *ftw)
{
	return remove(path);
}

/* Remove fx_dir and everything in it. */
static inline void fx_cleanup(void)
{
	if (fx_dir[0])
		nftw(fx_dir, fx_rm_one, 16, FTW_DEPTH | FTW_PHYS);
}

static inline int fx_write_file(const char *path, uint64_t size,
				uint32_t salt)
{
	uint8_t buf[65536];
	uint64_t off = 0;
	FILE *f = fopen(path, "wb");

	if (!f)
		return -errno;
	while (off < size) {
		uint64_t n = size - off < sizeof(buf) ? size - off :
			     sizeof(buf), i;

		for (i = 0; i < n; i++)
			buf[i] = fx_byte(off + i, salt);
		if (fwrite(buf, 1, n, f) != n) {
			fclose(f);
			return -EIO;
		}
		off += n;
	}
	return fclose(f) ? -errno : 0;
}

/* Synchronous completion of one ec_uring_read. */
struct fx_wait {
	pthread_mutex_t lock;
	pthread_cond_t cond;
	int done;
	int err;
	char msg[400];
	uint64_t bytes;
};

static inline void fx_wait_init(struct fx_wait *w)
{
	memset(w, 0, sizeof(*w));
	pthread_mutex_init(&w->lock, NULL);
	pthread_cond_init(&w->cond, NULL);
}

static inline void fx_done(void *arg, const struct ec_uring_result *res)
{
	struct fx_wait *w = arg;

	pthread_mutex_lock(&w->lock);
	w->err = res->err;
	snprintf(w->msg, sizeof(w->msg), "%s", res->msg ? res->msg : "");
	w->bytes = res->bytes;
	w->done++;
	pthread_cond_broadcast(&w->cond);
	pthread_mutex_unlock(&w->lock);
}

static inline void fx_wait_for(struct fx_wait *w, int n)
{
	pthread_mutex_lock(&w->lock);
	while (w->done < n)
		pthread_cond_wait(&w->cond, &w->lock);
	pthread_mutex_unlock(&w->lock);
}

/*
 * A model of n_layer x n_expert experts in one file: gate, up and down of
 * every expert live in three stacked regions starting at odd offsets, like
 * GGUF's ffn_{gate,up,down}_exps tensors, each part `part` bytes (odd).
 */
struct fx_model {
	struct ec_model m;
	struct ec_model_file file;
	struct ec_layer *layers;
	uint64_t region[EC_EXPERT_NPARTS];
	uint64_t part[EC_EXPERT_NPARTS];
	uint64_t size;
};

static inline int fx_model_init(struct fx_model *fm, const char *path,
				uint32_t n_layer, uint32_t n_expert,
				uint32_t salt, int write)
{
	uint32_t l, e, p;
	uint64_t off = 1001;	/* odd: nothing is aligned */

	memset(fm, 0, sizeof(*fm));
	fm->m.hp.n_layer = n_layer;
	fm->m.hp.n_expert = n_expert;
	fm->part[0] = 12289;	/* gate: 3 pages + 1 */
	fm->part[1] = 12289;	/* up */
	fm->part[2] = 9001;	/* down */
	for (p = 0; p < EC_EXPERT_NPARTS; p++) {
		fm->region[p] = off;
		off += fm->part[p] * n_layer * n_expert + 777;
	}
	fm->size = off + 333;
	fm->layers = calloc(n_layer, sizeof(*fm->layers));
	if (!fm->layers)
		return -ENOMEM;
	for (l = 0; l < n_layer; l++) {
		fm->layers[l].experts = calloc(n_expert,
					       sizeof(struct ec_expert));
		if (!fm->layers[l].experts)
			return -ENOMEM;
		for (e = 0; e < n_expert; e++) {
			for (p = 0; p < EC_EXPERT_NPARTS; p++) {
				struct ec_tensor *t =
					&fm->layers[l].experts[e].w[p];

				t->type = EC_F32;
				t->n_dims = 1;
				t->ne[0] = fm->part[p] / 4;
				t->ne[1] = t->ne[2] = t->ne[3] = 1;
				t->nbytes = fm->part[p];
				t->file = 0;
				t->offset = fm->region[p] +
					    (uint64_t)(l * n_expert + e) *
						    fm->part[p];
			}
		}
	}
	fm->file.path = strdup(path);
	fm->file.fd = -1;
	fm->file.size = fm->size;
	fm->m.files = &fm->file;
	fm->m.n_files = 1;
	fm->m.layers = fm->layers;
	return write ? fx_write_file(path, fm->size, salt) : 0;
}

static inline void fx_model_fini(struct fx_model *fm)
{
	uint32_t l;

	for (l = 0; fm->layers && l < fm->m.hp.n_layer; l++)
		free(fm->layers[l].experts);
	free(fm->layers);
	free(fm->file.path);
}

/* Are expert (l, e)'s three parts in `x` the file's bytes? */
static inline int fx_expert_ok(const struct fx_model *fm,
			       const struct ec_expert *x, uint32_t l,
			       uint32_t e, uint32_t salt)
{
	const struct ec_expert *ref = &fm->layers[l].experts[e];
	int p;

	for (p = 0; p < EC_EXPERT_NPARTS; p++) {
		const struct ec_tensor *t = &ref->w[p];
		uint8_t *want = malloc(t->nbytes);
		uint64_t i;
		int ok;

		if (!want)
			return 0;
		for (i = 0; i < t->nbytes; i++)
			want[i] = fx_byte(t->offset + i, salt);
		ok = x->w[p].nbytes == t->nbytes &&
		     fx_fnv(x->w[p].data, t->nbytes) ==
			     fx_fnv(want, t->nbytes) &&
		     !memcmp(x->w[p].data, want, t->nbytes);
		free(want);
		if (!ok)
			return 0;
	}
	return 1;
}

#endif
