// SPDX-License-Identifier: MIT
/*
 * Whether BPF can work here (privileges, BTF, bpffs, build), libbpf's
 * messages, map reading and pin-directory helpers shared by the loaders.
 */
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <inttypes.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/vfs.h>
#include <unistd.h>

#include "bpf_internal.h"
#include "ec_bpf.h"
#include "ec_error.h"

#define BPF_FS_MAGIC_NUMBER 0xcafe4a11
#define CAP_SYS_ADMIN_BIT 21
#define CAP_PERFMON_BIT 38
#define CAP_BPF_BIT 39

static char libbpf_msg[512];

const char *ec_bpf_last_libbpf_msg(void)
{
	return libbpf_msg;
}

/* Effective capabilities from /proc/self/status (no libcap needed). */
static uint64_t cap_eff(void)
{
	char line[256];
	uint64_t caps = 0;
	FILE *f = fopen("/proc/self/status", "re");

	if (!f)
		return 0;
	while (fgets(line, sizeof(line), f))
		if (sscanf(line, "CapEff: %" SCNx64, &caps) == 1)
			break;
	fclose(f);
	return caps;
}

static int check_privileges(void)
{
	uint64_t caps = cap_eff();
	char exe[PATH_MAX] = "expertcache";
	ssize_t n;

	if (geteuid() == 0 || (caps >> CAP_SYS_ADMIN_BIT & 1) ||
	    ((caps >> CAP_BPF_BIT & 1) && (caps >> CAP_PERFMON_BIT & 1)))
		return 0;
	n = readlink("/proc/self/exe", exe, sizeof(exe) - 1);
	if (n > 0)
		exe[n] = 0;
	return ec_err(-EPERM, "BPF tracing needs root: you are uid %u "
		      "without CAP_BPF + CAP_PERFMON.  Run it with sudo, or "
		      "grant the capabilities to the binary once: sudo setcap "
		      "cap_bpf,cap_perfmon,cap_sys_resource,cap_dac_read_search"
		      "+ep %s.  Without BPF, 'expertcache run --stats-json' "
		      "and 'expertcache profile --from-stats' give the same "
		      "counts from the runtime itself", (unsigned)geteuid(),
		      exe);
}

static int check_btf(void)
{
	const char *custom = getenv("EXPERTCACHE_BTF");

	if (custom && *custom) {
		if (access(custom, R_OK) < 0)
			return ec_err(-errno, "EXPERTCACHE_BTF=%s: %s", custom,
				      strerror(errno));
		return 0;
	}
	if (access("/sys/kernel/btf/vmlinux", R_OK) == 0)
		return 0;
	return ec_err(-EC_EUNSUPPORTED, "the kernel has no BTF type "
		      "information (/sys/kernel/btf/vmlinux is missing: it "
		      "needs CONFIG_DEBUG_INFO_BTF=y), which the CO-RE BPF "
		      "programs need.  Boot a kernel built with it (Debian's "
		      "and most distributions' are), or point EXPERTCACHE_BTF "
		      "at a BTF file for this kernel (e.g. from BTFHub)");
}

static int check_uprobes(void)
{
	if (access("/sys/bus/event_source/devices/uprobe/type", R_OK) == 0)
		return 0;
	return ec_err(-EC_EUNSUPPORTED, "the kernel has no uprobes "
		      "(/sys/bus/event_source/devices/uprobe is missing: it "
		      "needs CONFIG_UPROBE_EVENTS=y), which USDT probes use");
}

int ec_bpf_bpffs_ok(const char *dir)
{
	struct statfs fs;

	if (statfs("/sys/fs/bpf", &fs) == 0 &&
	    (uint32_t)fs.f_type == BPF_FS_MAGIC_NUMBER)
		return 0;
	return ec_err(-ENOENT, "the BPF file system is not mounted at "
		      "/sys/fs/bpf, so maps cannot be pinned under %s: sudo "
		      "mount -t bpf bpf /sys/fs/bpf", dir);
}

int ec_bpf_check(bool need_pin)
{
	int ret;

	if (!ec_bpf_built())
		return ec_err(-EC_EUNSUPPORTED, "this expertcache was built "
			      "without BPF support (clang, bpftool or "
			      "libbpf-dev were missing at build time): run "
			      "tools/install-deps.sh and rebuild with make");
	if ((ret = check_privileges()) < 0 || (ret = check_btf()) < 0 ||
	    (ret = check_uprobes()) < 0)
		return ret;
	if (need_pin)
		return ec_bpf_bpffs_ok(EC_BPF_PIN_DIR);
	return 0;
}

int ec_bpf_cgroup_id(const char *path, uint64_t *id)
{
	struct statfs fs;
	struct stat st;

	if (statfs(path, &fs) < 0 || stat(path, &st) < 0)
		return ec_err(-errno, "%s: %s", path, strerror(errno));
	if ((uint32_t)fs.f_type != 0x63677270)	/* CGROUP2_SUPER_MAGIC */
		return ec_err(-EC_EINVAL, "%s: not a cgroup v2 directory "
			      "(the filter uses cgroup v2 ids; look under the "
			      "cgroup2 mount, see 'mount -t cgroup2')", path);
	*id = (uint64_t)st.st_ino;
	return 0;
}

int ec_bpf_unpin_all(const char *dir)
{
	static const char *const names[] = {
		"expert_counts", "load_latency", "traffic_meta",
		"block_latency", "uring_latency",
	};
	char path[PATH_MAX];
	int n = 0;
	size_t i;

	for (i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
		snprintf(path, sizeof(path), "%s/%s", dir, names[i]);
		if (unlink(path) == 0)
			n++;
		else if (errno != ENOENT)
			return ec_err(-errno, "%s: %s", path, strerror(errno));
	}
	if (rmdir(dir) < 0 && errno != ENOENT && errno != ENOTEMPTY)
		return ec_err(-errno, "%s: %s", dir, strerror(errno));
	return n;
}

int ec_bpf_pin_dir(const char *dir)
{
	int ret = ec_bpf_bpffs_ok(dir);

	if (ret < 0)
		return ret;
	if (mkdir(dir, 0700) < 0 && errno != EEXIST)
		return ec_err(-errno, "%s: cannot create: %s", dir,
			      strerror(errno));
	return 0;
}

const char *ec_bpf_dev_name(uint32_t major, uint32_t minor, char *buf,
			    size_t n)
{
	char path[64], link[PATH_MAX];
	ssize_t len;
	const char *slash;

	snprintf(path, sizeof(path), "/sys/dev/block/%u:%u", major, minor);
	len = readlink(path, link, sizeof(link) - 1);
	if (len > 0) {
		link[len] = 0;
		slash = strrchr(link, '/');
		snprintf(buf, n, "%s", slash ? slash + 1 : link);
	} else {
		snprintf(buf, n, "%u:%u", major, minor);
	}
	return buf;
}

const char *ec_bpf_uring_op_name(uint32_t op, char *buf, size_t n)
{
	/* include/uapi/linux/io_uring.h, stable numbers */
	static const char *const names[] = {
		[0] = "NOP", [1] = "READV", [2] = "WRITEV", [3] = "FSYNC",
		[4] = "READ_FIXED", [5] = "WRITE_FIXED", [6] = "POLL_ADD",
		[7] = "POLL_REMOVE", [13] = "ACCEPT", [14] = "ASYNC_CANCEL",
		[18] = "OPENAT", [19] = "CLOSE", [22] = "READ",
		[23] = "WRITE", [26] = "SEND", [27] = "RECV",
	};

	if (op < sizeof(names) / sizeof(names[0]) && names[op])
		snprintf(buf, n, "%s", names[op]);
	else
		snprintf(buf, n, "op %u", op);
	return buf;
}

#ifdef EC_HAVE_BPF
#include <bpf/bpf.h>
#include <bpf/libbpf.h>

bool ec_bpf_built(void)
{
	return true;
}

static int print_fn(enum libbpf_print_level level, const char *fmt,
		    va_list ap)
{
	static int verbose = -1;
	char buf[sizeof(libbpf_msg)];
	size_t n;

	if (verbose < 0)
		verbose = getenv("EXPERTCACHE_BPF_VERBOSE") != NULL;
	if (verbose) {
		va_list cp;

		va_copy(cp, ap);
		vfprintf(stderr, fmt, cp);
		va_end(cp);
	}
	if (level != LIBBPF_WARN)
		return 0;
	vsnprintf(buf, sizeof(buf), fmt, ap);
	n = strlen(buf);
	while (n && (buf[n - 1] == '\n' || buf[n - 1] == ' '))
		buf[--n] = 0;
	memcpy(libbpf_msg, buf, sizeof(libbpf_msg));
	return 0;
}

void ec_bpf_libbpf_init(void)
{
	libbpf_set_print(print_fn);
	libbpf_msg[0] = 0;
}

int ec_bpf_libbpf_err(int err, const char *what)
{
	if (!err)
		err = -EINVAL;
	if (err > 0)
		err = -err;
	return ec_err(err, "%s: %s%s%s", what, strerror(-err),
		      libbpf_msg[0] ? " (libbpf: " : "",
		      libbpf_msg[0] ? libbpf_msg : "");
}

int ec_bpf_map_dump(int fd, size_t key_sz, size_t val_sz, void **keys,
		    void **vals, uint32_t *n)
{
	uint8_t *k = NULL, *v = NULL, prev[64], cur[64];
	uint32_t cap = 0, cnt = 0;
	void *p;
	int ret = 0;

	*keys = *vals = NULL;
	*n = 0;
	if (key_sz > sizeof(cur))
		return ec_err(-EINVAL, "map key of %zu bytes", key_sz);
	if (bpf_map_get_next_key(fd, NULL, cur) < 0)
		goto out;	/* empty (ENOENT) */
	for (;;) {
		if (cnt == cap) {
			cap = cap ? cap * 2 : 256;
			p = realloc(k, (size_t)cap * key_sz);
			if (!p)
				goto nomem;
			k = p;
			p = realloc(v, (size_t)cap * val_sz);
			if (!p)
				goto nomem;
			v = p;
		}
		if (bpf_map_lookup_elem(fd, cur, v + (size_t)cnt * val_sz) ==
		    0) {
			memcpy(k + (size_t)cnt * key_sz, cur, key_sz);
			cnt++;
		}
		memcpy(prev, cur, key_sz);
		if (bpf_map_get_next_key(fd, prev, cur) < 0)
			break;
	}
out:
	*keys = k;
	*vals = v;
	*n = cnt;
	return ret;
nomem:
	free(k);
	free(v);
	return ec_err(-ENOMEM, "out of memory");
}

int ec_bpf_open_pinned(const char *dir, const char *name)
{
	char path[PATH_MAX];
	int fd;

	snprintf(path, sizeof(path), "%s/%s", dir, name);
	fd = bpf_obj_get(path);
	if (fd < 0)
		return ec_err(-errno, "%s: %s%s", path, strerror(errno),
			      errno == ENOENT ? " (nothing pinned: run "
			      "'expertcache trace --pin' first)" : "");
	return fd;
}

int ec_bpf_pin_map(struct bpf_map *map, const char *dir)
{
	char path[PATH_MAX];
	int ret;

	snprintf(path, sizeof(path), "%s/%s", dir, bpf_map__name(map));
	if (unlink(path) < 0 && errno != ENOENT)
		return ec_err(-errno, "%s: %s", path, strerror(errno));
	ret = bpf_map__pin(map, path);
	if (ret < 0)
		return ec_bpf_libbpf_err(ret, path);
	return 0;
}

#else /* !EC_HAVE_BPF */

bool ec_bpf_built(void)
{
	return false;
}

#endif
