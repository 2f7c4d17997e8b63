/* mod_fuzz.c - guest test: >= 100,000 ioctls with random commands, sizes,
 * fields and pointers (NULL, unmapped, kernel, read-only, straddling a guard
 * page), plus random mmap/munmap/detach/close; then the device must be idle
 * and still work.  mod_fuzz [CALLS [SEED]] */
#include "ecm_test.h"

#define NFD 4
#define NMAP 16

static uint64_t s;

static uint64_t rnd(void)
{
	s ^= s << 13;
	s ^= s >> 7;
	s ^= s << 17;
	return s;
}

static const unsigned int cmds[] = {
	EC_IOC_DEV_INFO, EC_IOC_POOL_CREATE, EC_IOC_POOL_ATTACH,
	EC_IOC_POOL_DETACH, EC_IOC_POOL_INFO, EC_IOC_POOL_STATS,
	EC_IOC_SLOT_OP,
};
static const uint32_t sizes[] = {
	EC_DEV_INFO_SIZE_VER0, EC_POOL_CREATE_SIZE_VER0,
	EC_POOL_ATTACH_SIZE_VER0, 0, EC_POOL_INFO_SIZE_VER0,
	EC_POOL_STATS_SIZE_VER0, EC_SLOT_OP_SIZE_VER0,
};
static const char *const names[] = { "", "fz0", "fz1", "fz2", "a/b" };

static unsigned int pick_cmd(int *which)
{
	unsigned int c, r = rnd() % 10;

	*which = -1;
	if (r < 5) {		/* ours, half with random size bits */
		*which = rnd() % 7;
		c = cmds[*which];
		if (rnd() % 2)
			c = (c & ~(_IOC_SIZEMASK << _IOC_SIZESHIFT)) |
			    ((rnd() & _IOC_SIZEMASK) << _IOC_SIZESHIFT);
		return c;
	}
	if (r < 7)		/* our magic, any number and direction */
		return _IOC(rnd() % 4, EC_IOC_MAGIC, rnd() % 256,
			    rnd() & _IOC_SIZEMASK);
	do {			/* anything but the VFS's own ioctls */
		c = (unsigned int)rnd();
	} while (_IOC_TYPE(c) == 'X' || _IOC_TYPE(c) == 'f' ||
		 _IOC_TYPE(c) == 0);
	return c;
}

/* Fills @buf with a plausible struct for command @which, then mutates. */
static void fill_struct(unsigned char *buf, size_t cap, int which)
{
	size_t i;

	for (i = 0; i < cap; i++)
		buf[i] = rnd() % 4 ? 0 : (unsigned char)rnd();
	if (which == 1) {
		struct ec_pool_create *c = (void *)buf;

		c->flags = rnd() % 3 ? rnd() % 4 : (uint32_t)rnd();
		c->node = (int32_t)(rnd() % 7) - 3;
		c->n_slots = rnd() % 4 ? rnd() % 16 : (uint32_t)rnd();
		c->slot_size = rnd() % 4 ? (rnd() % 20) * 4096 : rnd();
		snprintf(c->name, sizeof(c->name), "%s", names[rnd() % 5]);
	} else if (which == 2) {
		struct ec_pool_attach *a = (void *)buf;

		a->flags = rnd() % 3;
		snprintf(a->name, sizeof(a->name), "%s", names[rnd() % 5]);
	} else if (which == 6) {
		struct ec_slot_op *o = (void *)buf;

		o->op = rnd() % 10;
		o->slot = rnd() % 4 ? rnd() % 20 : (uint32_t)rnd();
		o->flags = rnd() % 4 ? rnd() % 2 : (uint32_t)rnd();
		o->key = rnd() % 8;
	}
	if (which >= 0 && rnd() % 8)
		*(uint32_t *)buf = sizes[which] + (rnd() % 4 ? 0 :
						   (uint32_t)(rnd() % 64));
	else
		*(uint32_t *)buf = rnd() % 2 ? (uint32_t)rnd() : rnd() % 300;
}

int main(int argc, char **argv)
{
	long calls = argc > 1 ? atol(argv[1]) : 100000;
	unsigned char *arena, *guard_end, *ro_page, *unmapped;
	struct { void *p; size_t len; } maps[NMAP] = { { 0 } };
	long i, errs[5] = { 0 };
	int fds[NFD], k, which;
	double t0 = ecm_now();
	struct ec_pool_info pi;
	void *table, *data;
	char old_total[32];

	ecm_prog = "fuzz";
	s = argc > 2 ? strtoull(argv[2], NULL, 0) : 0x5eed5eedull;
	ecm_info("%ld calls, seed %#llx", calls, (unsigned long long)s);
	snprintf(old_total, sizeof(old_total), "%lld",
		 ecm_read_ll(ECM_PARAM "max_total_bytes"));
	ecm_write_file(ECM_PARAM "max_total_bytes", "33554432");

	/* arena: 2 pages RW, then a PROT_NONE guard page; plus a read-only
	 * page and an address that was unmapped. */
	arena = mmap(NULL, 4 * 4096, PROT_READ | PROT_WRITE,
		     MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	mprotect(arena + 2 * 4096, 4096, PROT_NONE);
	guard_end = arena + 2 * 4096;
	ro_page = arena + 3 * 4096;
	mprotect(ro_page, 4096, PROT_READ);
	unmapped = mmap(NULL, 4096, PROT_READ, MAP_PRIVATE | MAP_ANONYMOUS, -1,
			0);
	munmap(unmapped, 4096);
	for (k = 0; k < NFD; k++)
		fds[k] = ecm_open();

	for (i = 0; i < calls; i++) {
		int fd = fds[rnd() % NFD];
		unsigned int cmd = pick_cmd(&which);
		void *arg;
		long r;

		switch (rnd() % 16) {
		case 0: arg = NULL; break;
		case 1: arg = (void *)(uintptr_t)(rnd() % 65536); break;
		case 2: arg = unmapped; break;
		case 3: arg = (void *)0xffff888000000000ull; break;
		case 4: arg = (void *)0xffffffff81000000ull; break;
		case 5: arg = (void *)(uintptr_t)rnd(); break;
		case 6:	/* straddles the guard page */
			fill_struct(guard_end - 256, 256, which);
			arg = guard_end - (rnd() % 64) - 4;
			break;
		case 7:	/* valid struct on a read-only page */
			mprotect(ro_page, 4096, PROT_READ | PROT_WRITE);
			fill_struct(ro_page, 4096, which);
			mprotect(ro_page, 4096, PROT_READ);
			arg = ro_page;
			break;
		default:
			fill_struct(arena, 2 * 4096, which);
			arg = arena;
			break;
		}
		r = ioctl(fd, cmd, arg);
		errs[r == 0 ? 0 : errno == ENOTTY ? 1 : errno == EFAULT ? 2 :
		     errno == EINVAL ? 3 : 4]++;

		/* Now and then: map, unmap, detach, reopen. */
		switch (rnd() % 64) {
		case 0: {
			int m = rnd() % NMAP;
			size_t len = (rnd() % 8 + 1) * 4096;
			off_t off = (rnd() % 40) * 4096;
			int prot = rnd() % 2 ? PROT_READ :
				   PROT_READ | PROT_WRITE;
			void *p;

			if (maps[m].p)
				break;
			p = mmap(NULL, len, prot, MAP_SHARED, fd, off);
			if (p != MAP_FAILED) {
				*(volatile char *)p;
				maps[m].p = p;
				maps[m].len = len;
			}
			break;
		}
		case 1: {
			int m = rnd() % NMAP;

			if (maps[m].p)
				munmap(maps[m].p, maps[m].len);
			maps[m].p = NULL;
			break;
		}
		case 2:
			ioctl(fd, EC_IOC_POOL_DETACH);
			break;
		case 3:
			k = rnd() % NFD;
			close(fds[k]);
			fds[k] = ecm_open();
			break;
		}
		if (i && i % 25000 == 0)
			ecm_info("%ld calls, %.1f s", i, ecm_now() - t0);
	}
	ecm_info("%ld calls in %.1f s: ok %ld enotty %ld efault %ld einval "
		 "%ld other %ld", calls, ecm_now() - t0, errs[0], errs[1],
		 errs[2], errs[3], errs[4]);
	ECM_CHECK(calls >= 100000 || argc > 1, "at least 100,000 calls",
		  "%ld", calls);
	ECM_CHECK(errs[0] > 100 && errs[1] > 1000 && errs[2] > 1000 &&
		  errs[3] > 1000, "fuzzer reached success and every error path",
		  "ok %ld enotty %ld efault %ld einval %ld", errs[0], errs[1],
		  errs[2], errs[3]);

	for (k = 0; k < NFD; k++)
		close(fds[k]);
	for (k = 0; k < NMAP; k++)
		if (maps[k].p)
			munmap(maps[k].p, maps[k].len);
	ecm_write_file(ECM_PARAM "max_total_bytes", old_total);
	ecm_check_idle("idle after fuzzing");

	/* The device still works. */
	k = ecm_open();
	table = data = NULL;
	ECM_CHECK(!ecm_create(k, "afterfuzz", 4, 4096, 0, -1) &&
		  !ecm_pool_info(k, &pi) && !ecm_map(k, &pi, 1, &table, &data) &&
		  !ecm_slot(k, EC_SLOT_OP_CLAIM, 1, 5, 0, NULL) &&
		  !ecm_slot(k, EC_SLOT_OP_READY, 1, 5, 0, NULL),
		  "device works after fuzzing", "%s", strerror(errno));
	close(k);
	if (data && data != MAP_FAILED) {
		munmap(table, pi.table_bytes);
		munmap(data, pi.data_bytes);
	}
	ecm_check_idle("idle at end");
	return ecm_done();
}
