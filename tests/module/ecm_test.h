/* ecm_test.h - shared helpers of the module tests that run inside the guest. */
#ifndef ECM_TEST_H
#define ECM_TEST_H

#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "../../module/uapi/expertcache.h"

/*
 * Every check prints one line the host parses: "ok - NAME" or
 * "FAIL - NAME: detail".  ecm_done() prints "N passed, N failed".
 */
static int ecm_passed, ecm_failed;
static const char *ecm_prog = "ecm";

static inline void __attribute__((format(printf, 3, 4)))
ecm_check(int ok, const char *name, const char *fmt, ...)
{
	if (ok) {
		printf("ok - %s: %s\n", ecm_prog, name);
		ecm_passed++;
	} else {
		va_list ap;

		printf("FAIL - %s: %s: ", ecm_prog, name);
		va_start(ap, fmt);
		vprintf(fmt, ap);
		va_end(ap);
		printf("\n");
		ecm_failed++;
	}
	fflush(stdout);
}

#define ECM_CHECK(cond, name, ...) ecm_check(!!(cond), name, __VA_ARGS__)

/* Expect an ioctl-style call to fail with errno @err. */
#define ECM_ERRNO(call, err, name)					\
	do {								\
		errno = 0;						\
		long r_ = (long)(call);					\
		int e_ = errno;						\
		ECM_CHECK(r_ == -1 && e_ == (err), name,		\
			  "got %ld errno %d (%s), want errno %d (%s)",	\
			  r_, e_, strerror(e_), (err), strerror(err));	\
	} while (0)

#define ECM_OK(call, name)						\
	do {								\
		errno = 0;						\
		long r_ = (long)(call);					\
		int e_ = errno;						\
		ECM_CHECK(r_ == 0, name, "got %ld errno %d (%s)", r_,	\
			  e_, strerror(e_));				\
	} while (0)

static inline int ecm_done(void)
{
	printf("%s: %d passed, %d failed\n", ecm_prog, ecm_passed,
	       ecm_failed);
	fflush(stdout);
	return ecm_failed ? 1 : 0;
}

static inline void ecm_info(const char *fmt, ...)
{
	va_list ap;

	printf("# %s: ", ecm_prog);
	va_start(ap, fmt);
	vprintf(fmt, ap);
	va_end(ap);
	printf("\n");
	fflush(stdout);
}

static inline int ecm_open(void)
{
	return open(EC_DEVICE_PATH, O_RDWR | O_CLOEXEC);
}

static inline int ecm_dev_info(int fd, struct ec_dev_info *di)
{
	memset(di, 0, sizeof(*di));
	di->size = sizeof(*di);
	return ioctl(fd, EC_IOC_DEV_INFO, di);
}

static inline int ecm_create(int fd, const char *name, uint32_t n_slots,
		      uint64_t slot_size, uint32_t flags, int32_t node)
{
	struct ec_pool_create c;

	memset(&c, 0, sizeof(c));
	c.size = sizeof(c);
	c.flags = flags;
	c.node = node;
	c.n_slots = n_slots;
	c.slot_size = slot_size;
	if (name)
		snprintf(c.name, sizeof(c.name), "%s", name);
	return ioctl(fd, EC_IOC_POOL_CREATE, &c);
}

static inline int ecm_attach(int fd, const char *name, uint32_t flags)
{
	struct ec_pool_attach a;

	memset(&a, 0, sizeof(a));
	a.size = sizeof(a);
	a.flags = flags;
	snprintf(a.name, sizeof(a.name), "%s", name);
	return ioctl(fd, EC_IOC_POOL_ATTACH, &a);
}

static inline int ecm_pool_info(int fd, struct ec_pool_info *pi)
{
	memset(pi, 0, sizeof(*pi));
	pi->size = sizeof(*pi);
	return ioctl(fd, EC_IOC_POOL_INFO, pi);
}

static inline int ecm_pool_stats(int fd, struct ec_pool_stats *st)
{
	memset(st, 0, sizeof(*st));
	st->size = sizeof(*st);
	return ioctl(fd, EC_IOC_POOL_STATS, st);
}

/* One slot operation; @out (optional) receives the kernel's answer. */
static inline int ecm_slot(int fd, uint32_t op, uint32_t slot, uint64_t key,
		    uint32_t flags, struct ec_slot_op *out)
{
	struct ec_slot_op o;
	int r;

	memset(&o, 0, sizeof(o));
	o.size = sizeof(o);
	o.op = op;
	o.slot = slot;
	o.key = key;
	o.flags = flags;
	r = ioctl(fd, EC_IOC_SLOT_OP, &o);
	if (out)
		*out = o;
	return r;
}

/* Maps the whole table (read-only) and data (writable if @rw). */
static inline int ecm_map(int fd, const struct ec_pool_info *pi, int rw,
		   void **table, void **data)
{
	*table = mmap(NULL, pi->table_bytes, PROT_READ, MAP_SHARED, fd,
		      pi->table_offset);
	if (*table == MAP_FAILED)
		return -1;
	*data = mmap(NULL, pi->data_bytes, PROT_READ | (rw ? PROT_WRITE : 0),
		     MAP_SHARED, fd, pi->data_offset);
	if (*data == MAP_FAILED) {
		munmap(*table, pi->table_bytes);
		return -1;
	}
	return 0;
}

static inline struct ec_slot_entry *ecm_entry(void *table, uint32_t idx)
{
	struct ec_table_header *h = table;

	return (struct ec_slot_entry *)((char *)table + h->header_size +
					(size_t)idx * h->entry_size);
}

/* Seqcount read of one entry, as user space is told to do it. */
static inline void ecm_entry_read(void *table, uint32_t idx,
			   struct ec_slot_entry *out)
{
	volatile struct ec_slot_entry *e = ecm_entry(table, idx);
	uint64_t g1, g2;

	do {
		g1 = __atomic_load_n(&e->generation, __ATOMIC_ACQUIRE);
		out->key = e->key;
		out->state = e->state;
		out->pins = e->pins;
		out->loader_pid = e->loader_pid;
		__atomic_thread_fence(__ATOMIC_ACQUIRE);
		g2 = __atomic_load_n(&e->generation, __ATOMIC_RELAXED);
	} while ((g1 & 1) || g1 != g2);
	out->generation = g1;
}

/* A field of /proc/meminfo in kB, or -1. */
static inline long ecm_meminfo(const char *field)
{
	char line[256];
	size_t n = strlen(field);
	long v = -1;
	FILE *f = fopen("/proc/meminfo", "r");

	if (!f)
		return -1;
	while (fgets(line, sizeof(line), f))
		if (!strncmp(line, field, n) && line[n] == ':') {
			v = strtol(line + n + 1, NULL, 10);
			break;
		}
	fclose(f);
	return v;
}

static inline int ecm_write_file(const char *path, const char *val)
{
	int fd = open(path, O_WRONLY | O_CLOEXEC);
	ssize_t n;

	if (fd < 0)
		return -1;
	n = write(fd, val, strlen(val));
	close(fd);
	return n == (ssize_t)strlen(val) ? 0 : -1;
}

static inline long long ecm_read_ll(const char *path)
{
	char buf[64] = "";
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	ssize_t n;

	if (fd < 0)
		return -1;
	n = read(fd, buf, sizeof(buf) - 1);
	close(fd);
	if (n <= 0)
		return -1;
	buf[n] = 0;
	return strtoll(buf, NULL, 10);
}

static inline double ecm_now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec + ts.tv_nsec / 1e9;
}

#define ECM_PARAM "/sys/module/expertcache/parameters/"
#define ECM_SYSFS "/sys/class/misc/expertcache/"

/* Global usage must be back at zero once a test's pools are gone. */
static inline void ecm_check_idle(const char *name)
{
	struct ec_dev_info di;
	int fd = ecm_open();

	if (fd < 0 || ecm_dev_info(fd, &di)) {
		ECM_CHECK(0, name, "dev info: %s", strerror(errno));
		if (fd >= 0)
			close(fd);
		return;
	}
	ECM_CHECK(di.n_pools == 0 && di.total_pinned_bytes == 0 &&
		  di.pages_allocated == di.pages_freed, name,
		  "n_pools %u pinned %llu pages alloc %llu freed %llu",
		  di.n_pools, (unsigned long long)di.total_pinned_bytes,
		  (unsigned long long)di.pages_allocated,
		  (unsigned long long)di.pages_freed);
	close(fd);
}

/*
 * Free memory in kB counted the way the page allocator holds it: the buddy
 * lists ("pages free") plus the per-CPU lists ("count:") of every zone of
 * /proc/zoneinfo.  MemFree alone misses per-CPU pages, which on this kernel
 * hold tens of MB after a big free.  Page cache is dropped first.
 */
static inline long ecm_memfree_settled(void)
{
	char line[256];
	long pages = 0, v;
	FILE *f;

	sync();
	ecm_write_file("/proc/sys/vm/drop_caches", "3");
	f = fopen("/proc/zoneinfo", "r");
	if (!f)
		return -1;
	while (fgets(line, sizeof(line), f)) {
		if (sscanf(line, " pages free %ld", &v) == 1 ||
		    sscanf(line, " count: %ld", &v) == 1)
			pages += v;
	}
	fclose(f);
	return pages * 4;
}

/* Pages of [p, p + len) not on @node, via move_pages(2) in query mode. */
static inline long ecm_pages_off_node(void *p, size_t len, int node)
{
	size_t n = len / 4096, i;
	void **pages = calloc(n, sizeof(*pages));
	int *status = calloc(n, sizeof(*status));
	long off = 0;

	for (i = 0; i < n; i++) {
		pages[i] = (char *)p + i * 4096;
		*(volatile char *)pages[i];
	}
	if (syscall(SYS_move_pages, 0, n, pages, NULL, status, 0))
		off = -1;
	for (i = 0; off >= 0 && i < n; i++)
		off += status[i] != node;
	free(pages);
	free(status);
	return off;
}

#endif /* ECM_TEST_H */
