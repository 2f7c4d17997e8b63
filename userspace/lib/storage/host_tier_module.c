// SPDX-License-Identifier: MIT
/* Host tier from /dev/expertcache: a pinned NUMA-local pool of the module. */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <unistd.h>

#include "ec_error.h"
#include "storage_internal.h"

#if __has_include("../../../module/uapi/expertcache.h")
#include "../../../module/uapi/expertcache.h"
#define EC_HAVE_MODULE_UAPI 1
#endif

#ifdef EC_HAVE_MODULE_UAPI

static int choose_node(const struct ec_host_tier_params *p)
{
	int node;

	if (p->pci_bus_id && *p->pci_bus_id) {
		node = ec_numa_node_of_pci(p->pci_bus_id);
		if (node >= 0)
			return node;
	}
	return p->force_node && p->node >= 0 ? p->node : EC_NODE_LOCAL;
}

/* Create the pool, or attach to it when a named one already exists. */
static int pool_bind(int fd, const struct ec_host_tier_params *p,
		     uint64_t slot)
{
	struct ec_pool_create cr = { .size = sizeof(cr) };
	struct ec_pool_attach at = { .size = sizeof(at) };

	cr.flags = p->no_hugepages ? 0 : EC_POOL_F_HUGE;
	cr.node = choose_node(p);
	cr.n_slots = p->n_slots;
	cr.slot_size = slot;
	if (p->pool_name)
		snprintf(cr.name, sizeof(cr.name), "%s", p->pool_name);
	if (ioctl(fd, EC_IOC_POOL_CREATE, &cr) == 0)
		return 0;
	if (errno != EEXIST || !p->pool_name)
		return ec_err(-errno, "%s: EC_IOC_POOL_CREATE (%u slots of "
			      "%llu bytes): %s", EC_DEVICE_PATH, p->n_slots,
			      (unsigned long long)slot, strerror(errno));
	at.flags = EC_ATTACH_F_WRITE;
	snprintf(at.name, sizeof(at.name), "%s", p->pool_name);
	if (ioctl(fd, EC_IOC_POOL_ATTACH, &at) < 0)
		return ec_err(-errno, "%s: attach to pool '%s': %s",
			      EC_DEVICE_PATH, p->pool_name, strerror(errno));
	return 0;
}

int ec_host_tier_module_attach(struct ec_host_tier *t,
			       const struct ec_host_tier_params *p)
{
	struct ec_dev_info dev = { .size = sizeof(dev) };
	struct ec_pool_info info = { .size = sizeof(info) };
	uint64_t slot = t->info.slot_bytes;
	void *data;
	int fd, ret;

	fd = open(EC_DEVICE_PATH, O_RDWR | O_CLOEXEC);
	if (fd < 0) {
		if (errno == ENOENT || errno == ENXIO || errno == ENODEV)
			return -ENOENT;
		return ec_err(-errno, "%s: %s", EC_DEVICE_PATH,
			      strerror(errno));
	}
	if (ioctl(fd, EC_IOC_DEV_INFO, &dev) < 0) {
		ret = ec_err(-errno, "%s: EC_IOC_DEV_INFO: %s",
			     EC_DEVICE_PATH, strerror(errno));
		goto err;
	}
	if (dev.abi_version != EC_ABI_VERSION || slot % dev.page_size) {
		ret = ec_err(-EC_EUNSUPPORTED, "%s: ABI version %u (want %u), "
			     "page size %u", EC_DEVICE_PATH, dev.abi_version,
			     EC_ABI_VERSION, dev.page_size);
		goto err;
	}
	ret = pool_bind(fd, p, slot);
	if (ret < 0)
		goto err;
	if (ioctl(fd, EC_IOC_POOL_INFO, &info) < 0) {
		ret = ec_err(-errno, "%s: EC_IOC_POOL_INFO: %s",
			     EC_DEVICE_PATH, strerror(errno));
		goto err;
	}
	if (info.slot_size != slot || info.n_slots < p->n_slots ||
	    !(info.access & EC_ATTACH_F_WRITE)) {
		ret = ec_err(-EC_EINVAL, "%s: pool has %u slots of %llu bytes"
			     " (want %u of %llu, writable)", EC_DEVICE_PATH,
			     info.n_slots, (unsigned long long)info.slot_size,
			     p->n_slots, (unsigned long long)slot);
		goto err;
	}
	data = mmap(NULL, info.data_bytes, PROT_READ | PROT_WRITE, MAP_SHARED,
		    fd, (off_t)info.data_offset);
	if (data == MAP_FAILED) {
		ret = ec_err(-errno, "%s: mmap of %llu data bytes: %s",
			     EC_DEVICE_PATH,
			     (unsigned long long)info.data_bytes,
			     strerror(errno));
		goto err;
	}
	t->base = data;
	t->map_bytes = info.data_bytes;
	t->module_fd = fd;
	t->info.kind = "module";
	t->info.numa_node = info.node;
	t->info.numa_bound = info.node >= 0;
	t->info.hugepages = info.huge_bytes > 0;
	t->info.locked = true;	/* module pages are pinned */
	return 0;
err:
	close(fd);
	return ret;
}

void ec_host_tier_module_detach(struct ec_host_tier *t)
{
	/* the pool is freed when its last fd and mapping are gone */
	munmap(t->base, t->map_bytes);
	close(t->module_fd);
	t->module_fd = -1;
}

#else /* no uapi header at build time: userspace pools only */

int ec_host_tier_module_attach(struct ec_host_tier *t,
			       const struct ec_host_tier_params *p)
{
	return -ENOENT;
}

void ec_host_tier_module_detach(struct ec_host_tier *t)
{
}

#endif
