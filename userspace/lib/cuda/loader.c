// SPDX-License-Identifier: MIT
/* Finds and dlopen()s libexpertcache_cuda.so; picks CUDA or the CPU. */
#include <dlfcn.h>
#include <limits.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cuda/cuda_plugin.h"
#include "ec_error.h"
#include "ec_model.h"

static pthread_once_t load_once = PTHREAD_ONCE_INIT;
static const struct ec_cuda_plugin *plugin;
static char load_error[768];
static char loaded_from[PATH_MAX];	/* $EC_CUDA_LIB when it was used */

static void *try_open(const char *path)
{
	void *h = dlopen(path, RTLD_NOW | RTLD_LOCAL);
	const char *why;

	if (!h && !load_error[0] && (why = dlerror()) &&
	    !strstr(why, "No such file"))
		snprintf(load_error, sizeof(load_error), "%s", why);
	return h;
}

/* $EC_CUDA_LIB, beside the executable, its parent, the linker's path */
static void *open_plugin(void)
{
	char exe[PATH_MAX], path[PATH_MAX + 64], *slash;
	const char *env = getenv("EC_CUDA_LIB");
	ssize_t n;
	void *h;

	if (env && *env) {
		snprintf(loaded_from, sizeof(loaded_from), "%s", env);
		return try_open(env);
	}
	n = readlink("/proc/self/exe", exe, sizeof(exe) - 1);
	if (n > 0) {
		exe[n] = '\0';
		for (int up = 0; up < 2; up++) {
			slash = strrchr(exe, '/');
			if (!slash)
				break;
			*slash = '\0';
			snprintf(path, sizeof(path), "%s/%s", exe,
				 EC_CUDA_PLUGIN_SONAME);
			if (access(path, F_OK) == 0 && (h = try_open(path)))
				return h;
		}
	}
	return try_open(EC_CUDA_PLUGIN_SONAME);
}

static void load_plugin(void)
{
	ec_cuda_plugin_get_fn *get;
	const struct ec_cuda_plugin *p;
	void *h = open_plugin();

	if (!h)
		return;
	get = (ec_cuda_plugin_get_fn *)dlsym(h, EC_CUDA_PLUGIN_SYMBOL);
	p = get ? get() : NULL;
	if (!p || p->abi != EC_CUDA_PLUGIN_ABI) {
		snprintf(load_error, sizeof(load_error),
			 "%s: plugin interface %u, expected %u (rebuild it)",
			 EC_CUDA_PLUGIN_SONAME, p ? p->abi : 0,
			 EC_CUDA_PLUGIN_ABI);
		dlclose(h);
		return;
	}
	/* the CPU emulation is for tests: only ever by explicit request */
	if ((p->flags & EC_CUDA_PLUGIN_EMULATED) && !loaded_from[0]) {
		snprintf(load_error, sizeof(load_error),
			 "%s found by the search is the CPU emulation of CUDA "
			 "(kernels/emu); it is loaded only when EC_CUDA_LIB "
			 "names it", EC_CUDA_PLUGIN_SONAME);
		dlclose(h);
		return;
	}
	plugin = p;	/* never unloaded: CUDA's runtime dislikes dlclose */
}

static int host_policy_create(const char *name, uint32_t n_keys,
			      uint32_t capacity, struct ec_policy **out)
{
	const struct ec_policy_ops *ops = ec_policy_find(name ? name : "lru");
	struct ec_policy_config cfg = { .n_keys = n_keys,
					.capacity = capacity };

	if (!ops || ops->offline)
		return ec_err(-EC_EINVAL,
			      "cuda backend: VRAM slot policy '%s': expected "
			      "one of lru, lfu, static", name);
	return ec_policy_create(ops, &cfg, out);
}

static uint64_t host_ram(void)
{
	long pages = sysconf(_SC_PHYS_PAGES), sz = sysconf(_SC_PAGESIZE);

	return pages > 0 && sz > 0 ? (uint64_t)pages * (uint64_t)sz : 0;
}

static int create(const struct ec_backend_cuda_params *p,
		  struct ec_backend **out, enum ec_cuda_unavailable *why)
{
	struct ec_cuda_host host = {
		.abi = EC_CUDA_PLUGIN_ABI,
		.err = ec_err,
		.error_msg = ec_error_msg,
		.policy_create = host_policy_create,
		.policy_free = ec_policy_free,
		.host_ram = host_ram(),
	};

	*why = EC_CUDA_AVAILABLE;
	*out = NULL;
	/* no driver library: say so without loading CUDA's runtime at all */
	if (!getenv("EC_CUDA_LIB") && !dlopen("libcuda.so.1",
					       RTLD_LAZY | RTLD_LOCAL)) {
		*why = EC_CUDA_NO_DRIVER;
		return ec_err(-ENODEV, "no NVIDIA driver found");
	}
	pthread_once(&load_once, load_plugin);
	if (!plugin) {
		if (load_error[0])
			return ec_err(-ENOENT, "cuda backend: %s", load_error);
		return ec_err(-ENOENT, "cuda backend: %s not found (built "
			      "without nvcc?)", EC_CUDA_PLUGIN_SONAME);
	}
	if (!p || !p->model)
		return ec_err(-EC_EINVAL, "cuda backend: no model given");
	return plugin->create(&host, p, out, why);
}

int ec_backend_cuda_create(const struct ec_backend_cuda_params *p,
			   struct ec_backend **out)
{
	enum ec_cuda_unavailable why;
	int ret = create(p, out, &why);

	/* the message is already recorded; only the code changes */
	return ret < 0 && why != EC_CUDA_AVAILABLE ? -ENODEV : ret;
}

int ec_backend_is_cuda(const struct ec_backend *be)
{
	return be && be->ops && be->ops->name &&
	       !strcmp(be->ops->name, "cuda");
}

int ec_backend_cuda_get_stats(struct ec_backend *be,
			      struct ec_cuda_stats *out)
{
	if (!ec_backend_is_cuda(be) || !plugin)
		return ec_err(-EC_EINVAL, "not a cuda backend");
	return plugin->get_stats(be, out);
}

void ec_backend_cuda_reset_stats(struct ec_backend *be)
{
	if (ec_backend_is_cuda(be) && plugin)
		plugin->reset_stats(be);
}

int ec_backend_cuda_measure_copy(struct ec_backend *be, uint64_t bytes,
				 double *d2d_gbps, double *h2d_gbps)
{
	if (!ec_backend_is_cuda(be) || !plugin)
		return ec_err(-EC_EINVAL, "not a cuda backend");
	return plugin->measure_copy(be, bytes, d2d_gbps, h2d_gbps);
}

int ec_backend_kind_parse(const char *s, enum ec_backend_kind *out)
{
	if (!strcmp(s, "auto"))
		*out = EC_BACKEND_AUTO;
	else if (!strcmp(s, "cpu"))
		*out = EC_BACKEND_CPU;
	else if (!strcmp(s, "cuda"))
		*out = EC_BACKEND_CUDA;
	else
		return ec_err(-EC_EINVAL, "backend '%s': expected cpu, cuda "
			      "or auto", s);
	return 0;
}

int ec_backend_open(enum ec_backend_kind kind, uint32_t n_threads,
		    const struct ec_backend_cuda_params *cp,
		    struct ec_backend **out, char *note, size_t note_len)
{
	enum ec_cuda_unavailable why = EC_CUDA_AVAILABLE;
	int ret;

	if (note_len)
		note[0] = '\0';
	*out = NULL;
	if (kind == EC_BACKEND_CPU)
		return ec_backend_cpu_create(n_threads, out);
	ret = create(cp, out, &why);
	if (ret >= 0 && (plugin->flags & EC_CUDA_PLUGIN_EMULATED))
		snprintf(note, note_len, "cuda backend: the CPU emulation of "
			 "CUDA (%s): kernels are checked, timings mean "
			 "nothing", loaded_from);
	if (ret >= 0)
		return ret;
	if (why == EC_CUDA_NO_DRIVER)
		snprintf(note, note_len,
			 "no NVIDIA driver found; using the CPU backend");
	else if (why == EC_CUDA_NO_DEVICE)
		snprintf(note, note_len,
			 "no CUDA device found; using the CPU backend");
	else if (kind == EC_BACKEND_AUTO && ret == -ENOENT && !load_error[0])
		;	/* not built: nothing worth saying */
	else if (kind == EC_BACKEND_AUTO)
		snprintf(note, note_len, "%s; using the CPU backend",
			 ec_error_msg());
	else
		return ret;
	return ec_backend_cpu_create(n_threads, out);
}
