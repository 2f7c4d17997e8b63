// SPDX-License-Identifier: MIT
/* Host tier: a pinned, NUMA-local pool of expert slots (module or mmap). */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <numa.h>
#include <numaif.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "ec_error.h"
#include "storage_internal.h"

#define HUGE_2M (2ull << 20)

int ec_numa_node_of_pci(const char *pci_bus_id)
{
	char path[256], buf[32];
	ssize_t n;
	int fd;

	if (!pci_bus_id || !*pci_bus_id || strchr(pci_bus_id, '/'))
		return ec_err(-EC_EINVAL, "PCI bus id '%s': expected a form "
			      "like 0000:3b:00.0",
			      pci_bus_id ? pci_bus_id : "");
	snprintf(path, sizeof(path), "/sys/bus/pci/devices/%s/numa_node",
		 pci_bus_id);
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return ec_err(-errno, "%s: %s (no such PCI device?)", path,
			      strerror(errno));
	n = read(fd, buf, sizeof(buf) - 1);
	close(fd);
	if (n <= 0)
		return ec_err(-EC_EFORMAT, "%s: cannot read", path);
	buf[n] = 0;
	n = strtol(buf, NULL, 10);
	return n < 0 ? -1 : (int)n;
}

static void append_warning(struct ec_host_tier_info *info, const char *msg);

/* The node to bind to, or -1 for none. */
static int choose_node(struct ec_host_tier *t,
		       const struct ec_host_tier_params *p)
{
	int node = -1, cpu;

	if (p->pci_bus_id && *p->pci_bus_id) {
		node = ec_numa_node_of_pci(p->pci_bus_id);
		if (node >= 0)
			return node;
		if (node < -1) {
			char msg[400];

			snprintf(msg, sizeof(msg), "%s; placing the host tier "
				 "by CPU instead.", ec_error_msg());
			append_warning(&t->info, msg);
		}
	}
	if (p->force_node && p->node >= 0)
		return p->node;
	if (numa_available() < 0)
		return -1;
	cpu = sched_getcpu();
	if (cpu >= 0)
		node = numa_node_of_cpu(cpu);
	return node < 0 ? -1 : node;
}

static void append_warning(struct ec_host_tier_info *info, const char *msg)
{
	size_t n = strlen(info->warning);

	snprintf(info->warning + n, sizeof(info->warning) - n, "%s%s",
		 n ? " " : "", msg);
}

static void lock_failed(struct ec_host_tier *t, int err)
{
	struct rlimit rl = { 0 };
	char size[32], lim[32], msg[400];

	getrlimit(RLIMIT_MEMLOCK, &rl);
	ec_format_size(t->map_bytes, size, sizeof(size));
	if (rl.rlim_cur == RLIM_INFINITY)
		snprintf(lim, sizeof(lim), "unlimited");
	else
		ec_format_size(rl.rlim_cur, lim, sizeof(lim));
	snprintf(msg, sizeof(msg),
		 "could not lock %s of host-tier memory (%s; RLIMIT_MEMLOCK "
		 "is %s), continuing unpinned: experts may be swapped out. "
		 "Raise the limit with 'ulimit -l unlimited' (or memlock in "
		 "/etc/security/limits.conf, LimitMEMLOCK= for services) or "
		 "grant CAP_IPC_LOCK.",
		 size, strerror(err), lim);
	append_warning(&t->info, msg);
}

static int map_userspace(struct ec_host_tier *t,
			 const struct ec_host_tier_params *p, uint64_t bytes)
{
	int prot = PROT_READ | PROT_WRITE;
	/* no MAP_NORESERVE: hugetlb must fail here, not SIGBUS later */
	int flags = MAP_PRIVATE | MAP_ANONYMOUS;
	void *base = MAP_FAILED;

	if (!p->no_hugepages) {
		t->map_bytes = ec_align_up(bytes, HUGE_2M);
		base = mmap(NULL, t->map_bytes, prot, flags | MAP_HUGETLB,
			    -1, 0);
		if (base != MAP_FAILED)
			t->info.hugepages = true;
	}
	if (base == MAP_FAILED) {
		t->map_bytes = ec_align_up(bytes, 4096);
		base = mmap(NULL, t->map_bytes, prot, flags, -1, 0);
		if (base == MAP_FAILED)
			return ec_err(-errno, "host tier: cannot map %llu "
				      "bytes: %s",
				      (unsigned long long)t->map_bytes,
				      strerror(errno));
		/* transparent huge pages where the kernel allows them */
		madvise(base, t->map_bytes, MADV_HUGEPAGE);
	}
	t->base = base;
	t->info.kind = "userspace";
	return 0;
}

/* Bind (preferred: never fails an allocation), then fault in and lock. */
static void place_and_lock(struct ec_host_tier *t,
			   const struct ec_host_tier_params *p)
{
	int node = choose_node(t, p);

	t->info.numa_node = node;
	if (node >= 0 && node < 1024) {
		unsigned long mask[1024 / (8 * sizeof(unsigned long))] = { 0 };

		mask[node / (8 * sizeof(unsigned long))] |=
			1ul << (node % (8 * sizeof(unsigned long)));
		if (mbind(t->base, t->map_bytes, MPOL_PREFERRED, mask, 1024,
			  0) == 0) {
			t->info.numa_bound = true;
		} else {
			char msg[160];

			snprintf(msg, sizeof(msg),
				 "could not bind the host tier to NUMA node "
				 "%d (%s); pages go where the kernel puts "
				 "them.", node, strerror(errno));
			append_warning(&t->info, msg);
		}
	}
	if (!p->no_lock) {
		/* the raw call: sanitizers turn mlock() into a silent no-op */
		if (syscall(SYS_mlock, t->base, t->map_bytes) == 0) {
			t->info.locked = true;
			return;
		}
		lock_failed(t, errno);
	}
	/* fault the pages in now (on the bound node), not during decode */
	if (madvise(t->base, t->map_bytes, MADV_POPULATE_WRITE) < 0)
		memset(t->base, 0, t->map_bytes);
}

/* Pools created so far in this process (their generations). */
static uint64_t tier_generation;

int ec_host_tier_create(const struct ec_host_tier_params *p,
			struct ec_host_tier **out)
{
	struct ec_host_tier *t;
	uint64_t slot, bytes;
	int ret;

	*out = NULL;
	if (!p->n_slots || !p->slot_bytes)
		return ec_err(-EC_EINVAL, "host tier: %u slots of %llu bytes",
			      p->n_slots, (unsigned long long)p->slot_bytes);
	slot = ec_align_up(p->slot_bytes, EC_IO_ALIGN);
	if (slot < p->slot_bytes || (uint64_t)p->n_slots > UINT64_MAX / slot)
		return ec_err(-EC_EINVAL, "host tier: size overflows");
	bytes = slot * p->n_slots;
	t = calloc(1, sizeof(*t));
	if (!t)
		return ec_err(-ENOMEM, "out of memory");
	t->module_fd = -1;
	t->generation = __atomic_add_fetch(&tier_generation, 1,
					   __ATOMIC_RELAXED);
	t->info.slot_bytes = slot;
	t->info.n_slots = p->n_slots;
	t->info.bytes = bytes;
	t->info.numa_node = -1;

	ret = p->no_module ? -ENOENT : ec_host_tier_module_attach(t, p);
	if (ret == 0) {
		*out = t;
		return 0;
	}
	if (ret != -ENOENT) {
		char msg[400];

		snprintf(msg, sizeof(msg), "/dev/expertcache is present but "
			 "unusable (%s); using a userspace pool.",
			 ec_error_msg());
		append_warning(&t->info, msg);
	}
	ret = map_userspace(t, p, bytes);
	if (ret < 0) {
		free(t);
		return ret;
	}
	place_and_lock(t, p);
	*out = t;
	return 0;
}

void ec_host_tier_free(struct ec_host_tier *t)
{
	if (!t)
		return;
	if (t->module_fd >= 0) {
		ec_host_tier_module_detach(t);
	} else if (t->base) {
		if (t->info.locked)
			syscall(SYS_munlock, t->base, t->map_bytes);
		munmap(t->base, t->map_bytes);
	}
	free(t);
}

void *ec_host_tier_slot(const struct ec_host_tier *t, uint32_t i)
{
	return t->base + (uint64_t)i * t->info.slot_bytes;
}

void ec_host_tier_region(const struct ec_host_tier *t, void **base,
			 uint64_t *bytes)
{
	*base = t->base;
	*bytes = t->map_bytes;
}

void ec_host_tier_get_info(const struct ec_host_tier *t,
			   struct ec_host_tier_info *out)
{
	*out = t->info;
}
