/* mod_basic.c - guest test: create, mmap, read/write, slot state machine,
 * ioctl argument validation of /dev/expertcache. */
#include "ecm_test.h"

#define SLOT (64 * 1024)
#define NSLOT 16

static void test_dev_info(int fd)
{
	struct ec_dev_info di;

	ECM_OK(ecm_dev_info(fd, &di), "dev_info");
	ECM_CHECK(di.abi_version == EC_ABI_VERSION && di.page_size == 4096 &&
		  di.max_total_bytes > 0 && di.max_user_bytes > 0,
		  "dev_info fields", "abi %u page %u caps %llu/%llu",
		  di.abi_version, di.page_size,
		  (unsigned long long)di.max_user_bytes,
		  (unsigned long long)di.max_total_bytes);
}

static void test_unbound(int fd)
{
	struct ec_pool_info pi;
	void *p;

	ECM_ERRNO(ecm_pool_info(fd, &pi), ENXIO, "info without pool");
	ECM_ERRNO(ecm_slot(fd, EC_SLOT_OP_CLAIM, 0, 1, 0, NULL), ENXIO,
		  "slot op without pool");
	ECM_ERRNO(ioctl(fd, EC_IOC_POOL_DETACH), ENXIO,
		  "detach without pool");
	p = mmap(NULL, 4096, PROT_READ, MAP_SHARED, fd, 0);
	ECM_CHECK(p == MAP_FAILED && errno == ENXIO, "mmap without pool",
		  "p %p errno %d", p, errno);
}

static void test_validation(int fd)
{
	struct ec_pool_create c;
	char big[8192];

	ECM_ERRNO(ioctl(fd, _IOWR('x', 1, int), big), ENOTTY,
		  "foreign magic -> ENOTTY");
	ECM_ERRNO(ioctl(fd, _IOWR(EC_IOC_MAGIC, 0x7f, int), big), ENOTTY,
		  "unknown nr -> ENOTTY");
	ECM_ERRNO(ioctl(fd, _IOR(EC_IOC_MAGIC, 0x41, struct ec_pool_create),
			big), ENOTTY, "wrong direction -> ENOTTY");
	ECM_ERRNO(ecm_create(fd, NULL, 0, SLOT, 0, -1), EINVAL,
		  "zero slots");
	ECM_ERRNO(ecm_create(fd, NULL, EC_MAX_SLOTS + 1, 4096, 0, -1),
		  EINVAL, "too many slots");
	ECM_ERRNO(ecm_create(fd, NULL, 4, 4095, 0, -1), EINVAL,
		  "unaligned slot size");
	ECM_ERRNO(ecm_create(fd, NULL, 4, 0, 0, -1), EINVAL,
		  "zero slot size");
	ECM_ERRNO(ecm_create(fd, NULL, 4, 4096, 1u << 31, -1), EINVAL,
		  "unknown pool flag");
	ECM_ERRNO(ecm_create(fd, NULL, EC_MAX_SLOTS, 1ull << 62, 0, -1),
		  EOVERFLOW, "size overflow");
	ECM_ERRNO(ecm_create(fd, "bad/name", 4, 4096, 0, -1), EINVAL,
		  "name with slash");
	ECM_ERRNO(ecm_create(fd, "sp ace", 4, 4096, 0, -1), EINVAL,
		  "name with space");
	ECM_ERRNO(ecm_attach(fd, "", 0), EINVAL, "attach empty name");
	ECM_ERRNO(ecm_attach(fd, "nosuchpool", 0), ENOENT,
		  "attach unknown name");

	/* Versioned structs: too small, too big with junk, bad pointers. */
	memset(&c, 0, sizeof(c));
	c.size = EC_POOL_CREATE_SIZE_VER0 - 8;
	c.n_slots = 1;
	c.slot_size = 4096;
	ECM_ERRNO(ioctl(fd, EC_IOC_POOL_CREATE, &c), EINVAL,
		  "struct smaller than ver0");
	memset(big, 0, sizeof(big));
	memcpy(big, &c, sizeof(c));
	((struct ec_pool_create *)big)->size = 200;
	big[150] = 1;
	ECM_ERRNO(ioctl(fd, EC_IOC_POOL_CREATE, big), E2BIG,
		  "non-zero unknown tail -> E2BIG");
	((struct ec_pool_create *)big)->size = 5000;
	ECM_ERRNO(ioctl(fd, EC_IOC_POOL_CREATE, big), EINVAL,
		  "size over a page");
	ECM_ERRNO(ioctl(fd, EC_IOC_POOL_CREATE, NULL), EFAULT, "NULL arg");
	ECM_ERRNO(ioctl(fd, EC_IOC_POOL_CREATE, (void *)0xffffffff81000000ul),
		  EFAULT, "kernel pointer arg");
	ECM_ERRNO(ioctl(fd, EC_IOC_DEV_INFO, (void *)16), EFAULT,
		  "unmapped pointer arg");
}

/* A larger struct from a newer header with a zero tail is accepted. */
static void test_bigger_struct(void)
{
	char buf[256];
	struct ec_dev_info *di = (struct ec_dev_info *)buf;
	int fd = ecm_open();

	memset(buf, 0xa5, sizeof(buf));
	memset(buf, 0, 200);
	di->size = 200;
	ECM_OK(ioctl(fd, EC_IOC_DEV_INFO, buf), "bigger struct, zero tail");
	ECM_CHECK(di->abi_version == EC_ABI_VERSION &&
		  (unsigned char)buf[sizeof(*di)] == 0 &&
		  (unsigned char)buf[200] == 0xa5,
		  "only known bytes written back", "abi %u", di->abi_version);
	close(fd);
}

static void test_pool(void)
{
	struct ec_pool_info pi;
	struct ec_slot_entry e;
	struct ec_table_header *h;
	struct ec_slot_op op;
	struct ec_pool_stats st;
	void *table, *data;
	unsigned char *d;
	size_t i, nz = 0;
	uint32_t victim = 0;
	int fd = ecm_open(), fd2;

	ECM_OK(ecm_create(fd, NULL, NSLOT, SLOT, 0, EC_NODE_LOCAL),
	       "create anonymous pool");
	ECM_ERRNO(ecm_create(fd, NULL, 1, 4096, 0, -1), EBUSY,
		  "second create on same fd");
	ECM_OK(ecm_pool_info(fd, &pi), "pool info");
	ECM_CHECK(pi.n_slots == NSLOT && pi.slot_size == SLOT &&
		  pi.data_bytes == (uint64_t)NSLOT * SLOT &&
		  pi.table_offset == 0 && pi.data_offset == pi.table_bytes &&
		  pi.table_bytes % 4096 == 0 && pi.access == EC_ATTACH_F_WRITE &&
		  pi.n_attached == 1 && pi.n_mappings == 0 && pi.owner_uid == 0,
		  "pool info fields", "slots %u data %llu table %llu",
		  pi.n_slots, (unsigned long long)pi.data_bytes,
		  (unsigned long long)pi.table_bytes);

	/* mmap validation */
	ECM_CHECK(mmap(NULL, pi.table_bytes, PROT_READ | PROT_WRITE,
		       MAP_SHARED, fd, 0) == MAP_FAILED && errno == EACCES,
		  "table not mappable writable", "errno %d", errno);
	ECM_CHECK(mmap(NULL, pi.table_bytes + 4096, PROT_READ, MAP_SHARED, fd,
		       0) == MAP_FAILED && errno == EINVAL,
		  "mapping across table and data refused", "errno %d", errno);
	ECM_CHECK(mmap(NULL, pi.data_bytes + 4096, PROT_READ, MAP_SHARED, fd,
		       pi.data_offset) == MAP_FAILED && errno == EINVAL,
		  "mapping past the end refused", "errno %d", errno);
	ECM_CHECK(mmap(NULL, 4096, PROT_READ, MAP_PRIVATE, fd,
		       pi.data_offset) == MAP_FAILED && errno == EINVAL,
		  "private mapping refused", "errno %d", errno);

	if (ecm_map(fd, &pi, 1, &table, &data)) {
		ECM_CHECK(0, "mmap table and data", "%s", strerror(errno));
		close(fd);
		return;
	}
	ECM_CHECK(1, "mmap table and data", "-");
	ECM_CHECK(mprotect(table, 4096, PROT_READ | PROT_WRITE) != 0,
		  "table cannot be mprotected writable", "mprotect worked");
	h = table;
	ECM_CHECK(h->magic == EC_TABLE_MAGIC && h->version == EC_ABI_VERSION &&
		  h->n_slots == NSLOT && h->slot_size == SLOT &&
		  h->entry_size == sizeof(struct ec_slot_entry) &&
		  h->header_size == sizeof(*h) &&
		  h->data_offset == pi.data_offset &&
		  h->pool_id == pi.pool_id,
		  "table header", "magic %#x n %u", h->magic, h->n_slots);

	d = data;
	for (i = 0; i < pi.data_bytes; i++)
		nz += d[i] != 0;
	ECM_CHECK(nz == 0, "fresh pool memory is zeroed", "%zu non-zero", nz);
	for (i = 0; i < pi.data_bytes; i++)
		d[i] = (unsigned char)(i * 7 + 3);
	for (nz = 0, i = 0; i < pi.data_bytes; i++)
		nz += d[i] != (unsigned char)(i * 7 + 3);
	ECM_CHECK(nz == 0, "write then read back", "%zu mismatches", nz);

	/* Anonymous pools have no name to attach by. */
	fd2 = ecm_open();
	ECM_ERRNO(ecm_attach(fd2, "anonymous", 0), ENOENT,
		  "anonymous pool not attachable");
	close(fd2);

	/* State machine */
	ECM_OK(ecm_slot(fd, EC_SLOT_OP_CLAIM, 3, 42, 0, &op), "claim slot 3");
	ecm_entry_read(table, 3, &e);
	ECM_CHECK(op.state == EC_SLOT_LOADING && e.state == EC_SLOT_LOADING &&
		  e.key == 42 && e.generation == op.generation &&
		  e.generation % 2 == 0 && e.generation > 0 &&
		  e.loader_pid == (uint32_t)getpid(),
		  "table mirrors LOADING", "state %u key %llu gen %llu pid %u",
		  e.state, (unsigned long long)e.key,
		  (unsigned long long)e.generation, e.loader_pid);
	ECM_ERRNO(ecm_slot(fd, EC_SLOT_OP_CLAIM, 3, 43, 0, NULL), ENOENT,
		  "claim of LOADING slot refused");
	ECM_ERRNO(ecm_slot(fd, EC_SLOT_OP_CLAIM, 4, 42, 0, NULL), EEXIST,
		  "duplicate key refused");
	ECM_ERRNO(ecm_slot(fd, EC_SLOT_OP_PIN, 3, 0, 0, NULL), EAGAIN,
		  "pin of LOADING slot -> EAGAIN");
	ECM_ERRNO(ecm_slot(fd, EC_SLOT_OP_EVICT, 3, 0, 0, NULL), EAGAIN,
		  "evict of LOADING slot -> EAGAIN");
	ECM_ERRNO(ecm_slot(fd, EC_SLOT_OP_READY, 3, 41, EC_SLOT_F_CHECK_KEY,
			   NULL), ESTALE, "ready with wrong key -> ESTALE");
	ECM_ERRNO(ecm_slot(fd, EC_SLOT_OP_ACQUIRE, 0, 42, 0, NULL), EAGAIN,
		  "acquire of a loading key -> EAGAIN");
	ECM_OK(ecm_slot(fd, EC_SLOT_OP_READY, 3, 42, EC_SLOT_F_CHECK_KEY, &op),
	       "ready slot 3");
	ECM_CHECK(op.state == EC_SLOT_READY, "READY state", "%u", op.state);
	ECM_OK(ecm_slot(fd, EC_SLOT_OP_ACQUIRE, 0, 42, 0, &op),
	       "acquire ready key");
	ECM_CHECK(op.slot == 3 && (op.flags & EC_SLOT_F_PINNED) &&
		  op.pins == 1, "acquire pins the slot", "slot %u flags %#x",
		  op.slot, op.flags);
	ECM_OK(ecm_slot(fd, EC_SLOT_OP_EVICT, 3, 0, 0, &op),
	       "evict pinned slot");
	ECM_CHECK(op.state == EC_SLOT_EVICTING, "pinned evict -> EVICTING",
		  "state %u", op.state);
	ECM_ERRNO(ecm_slot(fd, EC_SLOT_OP_PIN, 3, 0, 0, NULL), ENOENT,
		  "no new pins while EVICTING");
	ECM_OK(ecm_slot(fd, EC_SLOT_OP_UNPIN, 3, 0, 0, &op), "unpin");
	ECM_CHECK(op.state == EC_SLOT_EMPTY && op.pins == 0,
		  "last unpin empties EVICTING slot", "state %u pins %u",
		  op.state, op.pins);
	ECM_ERRNO(ecm_slot(fd, EC_SLOT_OP_UNPIN, 3, 0, 0, NULL), EINVAL,
		  "unpin without pin");
	ECM_ERRNO(ecm_slot(fd, EC_SLOT_OP_READY, NSLOT, 0, 0, NULL), EINVAL,
		  "slot index out of range");
	ECM_ERRNO(ecm_slot(fd, EC_SLOT_OP_READY, 0xffffffffu, 0, 0, NULL),
		  EINVAL, "slot index ~0");
	ECM_ERRNO(ecm_slot(fd, 0, 0, 0, 0, NULL), EINVAL, "op 0");
	ECM_ERRNO(ecm_slot(fd, 99, 0, 0, 0, NULL), EINVAL, "op 99");
	ECM_ERRNO(ecm_slot(fd, EC_SLOT_OP_PIN, 0, 0, EC_SLOT_F_CLAIMED, NULL),
		  EINVAL, "out-only flag as input");

	/* Fill every slot through ACQUIRE, then ENOSPC. */
	for (i = 0; i < NSLOT; i++) {
		if (ecm_slot(fd, EC_SLOT_OP_ACQUIRE, 0, 1000 + i, 0, &op) ||
		    !(op.flags & EC_SLOT_F_CLAIMED) ||
		    ecm_slot(fd, EC_SLOT_OP_READY, op.slot, 0, 0, NULL))
			break;
		if (i == 5)
			victim = op.slot;
	}
	ECM_CHECK(i == NSLOT, "acquire claims every slot", "stopped at %zu",
		  i);
	ECM_ERRNO(ecm_slot(fd, EC_SLOT_OP_ACQUIRE, 0, 5000, 0, NULL), ENOSPC,
		  "full pool -> ENOSPC");
	ECM_ERRNO(ecm_slot(fd, EC_SLOT_OP_CLAIM, 0, 0, 0, NULL), ENOENT,
		  "claim of a READY slot refused");
	ECM_ERRNO(ecm_slot(fd, EC_SLOT_OP_EVICT, victim, 1006,
			   EC_SLOT_F_CHECK_KEY, NULL), ESTALE,
		  "evict with wrong key -> ESTALE");
	ECM_OK(ecm_slot(fd, EC_SLOT_OP_EVICT, victim, 1005,
			EC_SLOT_F_CHECK_KEY, &op), "evict with key check");
	ECM_OK(ecm_slot(fd, EC_SLOT_OP_ACQUIRE, 0, 5000, 0, &op),
	       "acquire after evict");
	ECM_CHECK(op.slot == victim && (op.flags & EC_SLOT_F_CLAIMED),
		  "reuses the evicted slot", "slot %u, want %u", op.slot,
		  victim);
	ECM_OK(ecm_slot(fd, EC_SLOT_OP_ABORT, victim, 0, 0, &op),
	       "abort loading");
	ECM_CHECK(op.state == EC_SLOT_EMPTY, "abort -> EMPTY", "%u", op.state);

	ECM_OK(ecm_pool_stats(fd, &st), "pool stats");
	ECM_CHECK(st.claims == 1 + NSLOT + 1 && st.fills == 1 + NSLOT &&
		  st.aborts == 1 && st.evictions == 2 && st.pins == 1 &&
		  st.unpins == 1 && st.n_ready == NSLOT - 1 &&
		  st.n_empty == 1 && st.n_loading == 0 && st.n_evicting == 0 &&
		  st.refused >= 6 && st.pool_id == pi.pool_id,
		  "stats count every transition",
		  "claims %llu fills %llu aborts %llu evict %llu pins %llu "
		  "unpins %llu ready %u empty %u refused %llu",
		  (unsigned long long)st.claims, (unsigned long long)st.fills,
		  (unsigned long long)st.aborts,
		  (unsigned long long)st.evictions,
		  (unsigned long long)st.pins, (unsigned long long)st.unpins,
		  st.n_ready, st.n_empty, (unsigned long long)st.refused);

	/* Claims belong to the open file description, which a mapping made
	 * through it keeps alive after close(). */
	ECM_OK(ecm_slot(fd, EC_SLOT_OP_CLAIM, victim, 77, 0, NULL),
	       "claim before close");
	close(fd);
	ecm_entry_read(table, victim, &e);
	ECM_CHECK(e.state == EC_SLOT_LOADING,
		  "mapping keeps the file description's claims", "state %u",
		  e.state);
	ECM_CHECK(d[12345] == (unsigned char)(12345 * 7 + 3),
		  "mapping outlives the fd", "byte %u", d[12345]);
	munmap(table, pi.table_bytes);
	munmap(data, pi.data_bytes);
	ecm_check_idle("pool freed after close + munmap");
}

/* Detach keeps mappings valid; the fd can then bind the pool again. */
static void test_detach_rebind(void)
{
	struct ec_pool_info pi;
	void *table, *data, *t2, *d2;
	int fd = ecm_open();

	ECM_OK(ecm_create(fd, "rebind", 2, 4096, 0, -1), "create named");
	ecm_pool_info(fd, &pi);
	ECM_OK(ecm_map(fd, &pi, 1, &table, &data), "map named");
	ECM_OK(ioctl(fd, EC_IOC_POOL_DETACH), "detach");
	((char *)data)[100] = 9;
	ECM_OK(ecm_attach(fd, "rebind", EC_ATTACH_F_WRITE),
	       "re-attach while only a mapping holds the pool");
	ECM_OK(ecm_map(fd, &pi, 0, &t2, &d2), "map again read-only");
	ECM_CHECK(((char *)d2)[100] == 9, "same memory after re-attach",
		  "byte %d", ((char *)d2)[100]);
	munmap(t2, pi.table_bytes);
	munmap(d2, pi.data_bytes);
	close(fd);
	fd = ecm_open();
	ECM_OK(ecm_attach(fd, "rebind", 0), "name lives while mapped");
	close(fd);
	munmap(table, pi.table_bytes);
	munmap(data, pi.data_bytes);
	fd = ecm_open();
	ECM_ERRNO(ecm_attach(fd, "rebind", 0), ENOENT,
		  "name gone with the last mapping");
	close(fd);
}

/* Releasing a file description (last close, no mapping through it) or
 * DETACH gives back its pins and its LOADING slots. */
static void test_release_on_close(void)
{
	struct ec_pool_info pi;
	struct ec_slot_entry e0, e1;
	void *table, *data;
	int a = ecm_open(), b = ecm_open(), c = ecm_open();

	ECM_OK(ecm_create(a, "release", 4, 4096, 0, -1), "create 'release'");
	ECM_OK(ecm_attach(b, "release", 0), "attach read-only viewer");
	ECM_OK(ecm_attach(c, "release", EC_ATTACH_F_WRITE), "attach writer");
	ecm_pool_info(b, &pi);
	ECM_OK(ecm_map(b, &pi, 0, &table, &data), "viewer maps");
	ECM_CHECK(pi.access == 0, "viewer is read-only", "access %u",
		  pi.access);
	ECM_ERRNO(ecm_slot(b, EC_SLOT_OP_CLAIM, 0, 1, 0, NULL), EACCES,
		  "read-only fd cannot claim");
	ECM_ERRNO(ecm_slot(b, EC_SLOT_OP_ACQUIRE, 0, 1, 0, NULL), ENOENT,
		  "read-only acquire of a missing key -> ENOENT");
	ecm_slot(a, EC_SLOT_OP_CLAIM, 1, 11, 0, NULL);
	ecm_slot(a, EC_SLOT_OP_READY, 1, 0, 0, NULL);
	ECM_OK(ecm_slot(a, EC_SLOT_OP_CLAIM, 0, 10, 0, NULL), "a claims 0");
	ECM_OK(ecm_slot(a, EC_SLOT_OP_PIN, 1, 0, 0, NULL), "a pins 1");
	ECM_OK(ecm_slot(a, EC_SLOT_OP_PIN, 1, 0, 0, NULL), "a pins 1 again");
	ECM_OK(ecm_slot(b, EC_SLOT_OP_PIN, 1, 11, EC_SLOT_F_CHECK_KEY, NULL),
	       "viewer pins 1");
	ECM_ERRNO(ecm_slot(c, EC_SLOT_OP_READY, 0, 0, 0, NULL), EPERM,
		  "only the claiming fd makes a slot READY");
	close(a);
	ecm_entry_read(table, 0, &e0);
	ecm_entry_read(table, 1, &e1);
	ECM_CHECK(e0.state == EC_SLOT_EMPTY && e0.loader_pid == 0,
		  "close aborts the fd's LOADING slot", "state %u", e0.state);
	ECM_CHECK(e1.state == EC_SLOT_READY && e1.pins == 1,
		  "close drops the fd's pins only", "state %u pins %u",
		  e1.state, e1.pins);
	ECM_OK(ecm_slot(c, EC_SLOT_OP_EVICT, 1, 0, 0, NULL), "evict pinned");
	ECM_OK(ioctl(b, EC_IOC_POOL_DETACH), "viewer detaches");
	ecm_entry_read(table, 1, &e1);
	ECM_CHECK(e1.state == EC_SLOT_EMPTY && e1.pins == 0,
		  "detach drops pins; EVICTING slot empties", "state %u pins %u",
		  e1.state, e1.pins);
	munmap(table, pi.table_bytes);
	munmap(data, pi.data_bytes);
	close(b);
	close(c);
	ecm_check_idle("idle after release test");
}

int main(void)
{
	int fd;

	ecm_prog = "basic";
	fd = ecm_open();
	if (fd < 0) {
		ECM_CHECK(0, "open " EC_DEVICE_PATH, "%s", strerror(errno));
		return ecm_done();
	}
	test_dev_info(fd);
	test_unbound(fd);
	test_validation(fd);
	close(fd);
	test_bigger_struct();
	test_pool();
	test_detach_rebind();
	test_release_on_close();
	ecm_check_idle("idle at end");
	return ecm_done();
}
