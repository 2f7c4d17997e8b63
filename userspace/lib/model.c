// SPDX-License-Identifier: MIT
/* Model open/close, file mapping, validation and expert extents. */
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "ec_error.h"
#include "ec_gguf.h"
#include "ec_model.h"

static const char *const arch_names[] = {
	[EC_ARCH_QWEN3_MOE] = "qwen3_moe",
	[EC_ARCH_MIXTRAL] = "mixtral",
	[EC_ARCH_OLMOE] = "olmoe",
	[EC_ARCH_QWEN2_MOE] = "qwen2_moe",
};

const char *ec_arch_name(enum ec_arch arch)
{
	if ((unsigned)arch < sizeof(arch_names) / sizeof(arch_names[0]))
		return arch_names[arch];
	return "unknown";
}

int ec_model_add_file(struct ec_model *m, const char *path)
{
	struct ec_model_file *files, *f;
	struct stat st;
	void *map;
	int fd;

	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return ec_err(-errno, "%s: cannot open: %s", path,
			      strerror(errno));
	if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode)) {
		close(fd);
		return ec_err(-EC_EFORMAT, "%s: not a regular file", path);
	}
	if (st.st_size == 0) {
		close(fd);
		return ec_err(-EC_EFORMAT, "%s: file is empty", path);
	}
	map = mmap(NULL, st.st_size, PROT_READ, MAP_SHARED, fd, 0);
	if (map == MAP_FAILED) {
		int err = -errno;

		close(fd);
		return ec_err(err, "%s: mmap failed: %s", path,
			      strerror(-err));
	}
	files = realloc(m->files, (m->n_files + 1) * sizeof(*files));
	if (!files) {
		munmap(map, st.st_size);
		close(fd);
		return ec_err(-ENOMEM, "%s: out of memory", path);
	}
	m->files = files;
	f = &files[m->n_files];
	f->path = strdup(path);
	f->fd = fd;
	f->map = map;
	f->size = st.st_size;
	if (!f->path) {
		munmap(map, st.st_size);
		close(fd);
		return ec_err(-ENOMEM, "%s: out of memory", path);
	}
	return m->n_files++;
}

static int is_dir(const char *path)
{
	struct stat st;

	return stat(path, &st) == 0 && S_ISDIR(st.st_mode);
}

static int ends_with(const char *s, const char *suffix)
{
	size_t n = strlen(s), k = strlen(suffix);

	return n >= k && strcmp(s + n - k, suffix) == 0;
}

int ec_model_open(const char *path, struct ec_model **out)
{
	struct ec_model *m;
	int ret;

	*out = NULL;
	m = calloc(1, sizeof(*m));
	if (!m)
		return ec_err(-ENOMEM, "out of memory");
	if (is_dir(path) || ends_with(path, ".json") ||
	    ends_with(path, ".safetensors")) {
		m->format = EC_FORMAT_SAFETENSORS;
		ret = ec_model_load_safetensors(m, path);
	} else {
		m->format = EC_FORMAT_GGUF;
		ret = ec_model_load_gguf(m, path);
	}
	if (ret < 0) {
		ec_model_close(m);
		return ret;
	}
	*out = m;
	return 0;
}

void ec_model_close(struct ec_model *m)
{
	uint32_t i;

	if (!m)
		return;
	if (m->layers) {
		for (i = 0; i < m->hp.n_layer; i++)
			free(m->layers[i].experts);
		free(m->layers);
	}
	if (m->gguf)
		ec_gguf_free(m->gguf);
	if (m->loader_free)
		m->loader_free(m->loader_priv);
	for (i = 0; i < m->n_files; i++) {
		munmap((void *)m->files[i].map, m->files[i].size);
		close(m->files[i].fd);
		free(m->files[i].path);
	}
	free(m->files);
	free(m);
}
