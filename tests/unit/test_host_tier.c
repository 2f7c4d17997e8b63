// SPDX-License-Identifier: MIT
/*
 * Host tier: slots usable and distinct, NUMA node reported, locked when
 * allowed, and -- in a child without CAP_IPC_LOCK under a tiny
 * RLIMIT_MEMLOCK -- a working unpinned pool with a warning that says what
 * to do.
 */
#define _GNU_SOURCE
#include <dirent.h>
#include <linux/capability.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include "ec_error.h"
#include "ec_storage.h"
#include "ec_test.h"

static int fill_and_check(struct ec_host_tier *t, uint32_t n, uint64_t sz)
{
	uint32_t i;
	uint64_t j;

	for (i = 0; i < n; i++)
		memset(ec_host_tier_slot(t, i), (int)(i + 1), sz);
	for (i = 0; i < n; i++) {
		const uint8_t *p = ec_host_tier_slot(t, i);

		if ((uintptr_t)p % EC_IO_ALIGN)
			return 0;
		for (j = 0; j < sz; j++)
			if (p[j] != (uint8_t)(i + 1))
				return 0;
	}
	return 1;
}

static void test_basic(void)
{
	struct ec_host_tier_params p = { .slot_bytes = 10000, .n_slots = 5 };
	struct ec_host_tier_info info;
	struct ec_host_tier *t = NULL;

	EC_CHECK(ec_host_tier_create(&p, &t) == 0, "create: %s",
		 ec_error_msg());
	if (!t)
		return;
	ec_host_tier_get_info(t, &info);
	EC_CHECK(info.slot_bytes == 12288 && info.n_slots == 5,
		 "slot rounded up to 12288 (%llu)",
		 (unsigned long long)info.slot_bytes);
	EC_CHECK(fill_and_check(t, 5, info.slot_bytes),
		 "slots aligned and independent");
	{
		void *base;
		uint64_t bytes;

		ec_host_tier_region(t, &base, &bytes);
		EC_CHECK(base == ec_host_tier_slot(t, 0) &&
			 bytes >= 5 * info.slot_bytes, "one region");
	}
	EC_CHECK(!strcmp(info.kind, "userspace") || !strcmp(info.kind,
							      "module"),
		 "kind %s", info.kind);
	EC_CHECK(info.numa_node >= -1, "node %d", info.numa_node);
	if (geteuid() == 0)
		EC_CHECK(info.locked, "root can lock (warning: %s)",
			 info.warning);
	ec_host_tier_free(t);

	p.n_slots = 0;
	EC_CHECK(ec_host_tier_create(&p, &t) == -EC_EINVAL, "0 slots");
}

static void test_pci(void)
{
	struct dirent *d;
	DIR *dir = opendir("/sys/bus/pci/devices");
	int node = -2;

	EC_CHECK(ec_numa_node_of_pci("0000:ff:1f.7") < -1 &&
		 strstr(ec_error_msg(), "numa_node"),
		 "missing device: %s", ec_error_msg());
	EC_CHECK(ec_numa_node_of_pci("../../etc") == -EC_EINVAL,
		 "path-like id refused");
	if (!dir) {
		EC_SKIP("no /sys/bus/pci/devices");
		return;
	}
	while ((d = readdir(dir)))
		if (d->d_name[0] != '.') {
			node = ec_numa_node_of_pci(d->d_name);
			break;
		}
	closedir(dir);
	EC_CHECK(node >= -1, "a real device has node %d", node);
}

/* Drop CAP_IPC_LOCK from the effective set (mlock then obeys the limit). */
static int drop_ipc_lock(void)
{
	struct __user_cap_header_struct h = { _LINUX_CAPABILITY_VERSION_3, 0 };
	struct __user_cap_data_struct d[2];

	if (syscall(SYS_capget, &h, d) < 0)
		return -1;
	d[CAP_IPC_LOCK / 32].effective &= ~(1u << (CAP_IPC_LOCK % 32));
	return syscall(SYS_capset, &h, d) < 0 ? -1 : 0;
}

/* Child: exit 0 when the pool works unpinned and the warning is right. */
static int child_unpinned(void)
{
	struct ec_host_tier_params p = { .slot_bytes = 1 << 20, .n_slots = 4,
					 .no_hugepages = 1,
					 .no_module = 1 };
	struct rlimit rl = { 64 << 10, 64 << 10 };
	struct ec_host_tier_info info;
	struct ec_host_tier *t = NULL;

	if (drop_ipc_lock() < 0 || setrlimit(RLIMIT_MEMLOCK, &rl) < 0)
		return 3;
	if (ec_host_tier_create(&p, &t) < 0)
		return 4;
	ec_host_tier_get_info(t, &info);
	if (info.locked)
		return 5;
	if (!strstr(info.warning, "RLIMIT_MEMLOCK") ||
	    !strstr(info.warning, "ulimit -l"))
		return 6;
	if (!fill_and_check(t, 4, info.slot_bytes))
		return 7;
	ec_host_tier_free(t);
	return 0;
}

static void test_unpinned(void)
{
	int status = 0;
	pid_t pid;

	fflush(NULL);
	pid = fork();
	if (pid == 0)
		_exit(child_unpinned());
	waitpid(pid, &status, 0);
	if (WIFEXITED(status) && WEXITSTATUS(status) == 3) {
		EC_SKIP("cannot drop CAP_IPC_LOCK or lower RLIMIT_MEMLOCK");
		return;
	}
	EC_CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 0,
		 "unpinned fallback with RLIMIT_MEMLOCK advice (child status "
		 "%d)", WIFEXITED(status) ? WEXITSTATUS(status) : -1);
}

int main(void)
{
	test_basic();
	test_pci();
	test_unpinned();
	return ec_test_done();
}
