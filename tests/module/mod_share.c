/* mod_share.c - guest test: named pools shared by processes, the slot
 * protocol across them, uid and group permissions, fork and lifetime. */
#include <grp.h>
#include <sys/stat.h>

#include "ecm_test.h"

#define SLOT 8192

/* Parent/child lockstep over two pipes. */
static int p2c[2], c2p[2];

static void say(int fd)
{
	char c = 1;

	if (write(fd, &c, 1) != 1)
		_exit(3);
}

static void hear(int fd)
{
	char c;

	if (read(fd, &c, 1) != 1)
		_exit(3);
}

/* The child attaches, reads and pins what the parent filled. */
static int child_reader(void)
{
	struct ec_pool_info pi;
	struct ec_slot_op op;
	void *table, *data;
	unsigned char *d;
	int fd = ecm_open(), i, bad = 0;

	ecm_prog = "share-child";
	if (ecm_attach(fd, "shared", EC_ATTACH_F_WRITE) ||
	    ecm_pool_info(fd, &pi) || ecm_map(fd, &pi, 1, &table, &data))
		return 10;
	if (ecm_slot(fd, EC_SLOT_OP_ACQUIRE, 0, 7, 0, &op) ||
	    !(op.flags & EC_SLOT_F_PINNED) || op.slot != 2)
		return 11;
	d = (unsigned char *)data + 2 * SLOT;
	for (i = 0; i < SLOT; i++)
		bad += d[i] != (unsigned char)(i ^ 0x5a);
	if (bad)
		return 12;
	/* Write into slot 3 for the parent to see. */
	memset((char *)data + 3 * SLOT, 0xc3, SLOT);
	/* Claim key 99: the parent must see it LOADING. */
	if (ecm_slot(fd, EC_SLOT_OP_ACQUIRE, 0, 99, 0, &op) ||
	    !(op.flags & EC_SLOT_F_CLAIMED))
		return 13;
	say(c2p[1]);
	hear(p2c[0]);		/* parent evicted slot 2 while we pin it */
	for (i = 0; i < SLOT; i++)
		bad += d[i] != (unsigned char)(i ^ 0x5a);
	if (bad)
		return 14;
	if (ecm_slot(fd, EC_SLOT_OP_READY, op.slot, 99, EC_SLOT_F_CHECK_KEY,
		     NULL))
		return 15;
	if (ecm_slot(fd, EC_SLOT_OP_UNPIN, 2, 0, 0, &op) ||
	    op.state != EC_SLOT_EMPTY)
		return 16;
	say(c2p[1]);
	hear(p2c[0]);
	return 0;
}

static void test_two_processes(void)
{
	struct ec_pool_info pi;
	struct ec_slot_entry e;
	struct ec_slot_op op;
	void *table, *data;
	unsigned char *d;
	uint64_t gen;
	int fd = ecm_open(), status = 0, i, bad = 0;
	pid_t pid;

	ECM_OK(ecm_create(fd, "shared", 8, SLOT, 0, -1), "create 'shared'");
	ECM_ERRNO(ecm_create(ecm_open(), "shared", 8, SLOT, 0, -1), EEXIST,
		  "name taken -> EEXIST");
	ecm_pool_info(fd, &pi);
	ECM_OK(ecm_map(fd, &pi, 1, &table, &data), "parent maps");
	d = data;
	ecm_slot(fd, EC_SLOT_OP_CLAIM, 2, 7, 0, NULL);
	for (i = 0; i < SLOT; i++)
		d[2 * SLOT + i] = (unsigned char)(i ^ 0x5a);
	ECM_OK(ecm_slot(fd, EC_SLOT_OP_READY, 2, 7, 0, NULL), "parent fills");

	if (pipe(p2c) || pipe(c2p))
		return;
	pid = fork();
	if (pid == 0)
		_exit(child_reader());
	hear(c2p[0]);
	for (i = 0; i < SLOT; i++)
		bad += d[3 * SLOT + i] != 0xc3;
	ECM_CHECK(!bad, "child's writes visible to the parent", "%d bad",
		  bad);
	ECM_ERRNO(ecm_slot(fd, EC_SLOT_OP_ACQUIRE, 0, 99, 0, NULL), EAGAIN,
		  "key being loaded by another process -> EAGAIN");
	ecm_entry_read(table, 2, &e);
	ECM_CHECK(e.state == EC_SLOT_READY && e.pins == 1,
		  "table shows the child's pin", "state %u pins %u", e.state,
		  e.pins);
	ECM_OK(ecm_slot(fd, EC_SLOT_OP_EVICT, 2, 0, 0, &op),
	       "evict slot pinned by another process");
	ECM_CHECK(op.state == EC_SLOT_EVICTING, "-> EVICTING", "state %u",
		  op.state);
	gen = op.generation;
	say(p2c[1]);
	hear(c2p[0]);
	ecm_entry_read(table, 2, &e);
	ECM_CHECK(e.state == EC_SLOT_EMPTY && e.generation > gen,
		  "child's unpin empties it; generation moved",
		  "state %u gen %llu", e.state,
		  (unsigned long long)e.generation);
	ECM_OK(ecm_slot(fd, EC_SLOT_OP_ACQUIRE, 0, 99, 0, &op),
	       "acquire the child's fill");
	ECM_CHECK(op.flags & EC_SLOT_F_PINNED, "child's fill is READY",
		  "flags %#x", op.flags);
	say(p2c[1]);
	waitpid(pid, &status, 0);
	ECM_CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 0,
		  "child reader protocol", "status %#x", status);
	munmap(table, pi.table_bytes);
	munmap(data, pi.data_bytes);
	close(fd);
	ecm_check_idle("idle after two-process test");
}

/* A child of a process with a mapping keeps the pool alive. */
static void test_fork_lifetime(void)
{
	struct ec_pool_info pi;
	struct ec_dev_info di;
	void *table, *data;
	int fd = ecm_open(), status = 0;
	pid_t pid;

	ecm_create(fd, NULL, 4, 4096, 0, -1);
	ecm_pool_info(fd, &pi);
	ECM_OK(ecm_map(fd, &pi, 1, &table, &data), "map before fork");
	memset(data, 0x11, pi.data_bytes);
	if (pipe(p2c))
		return;
	pid = fork();
	if (pid == 0) {
		hear(p2c[0]);
		_exit(((unsigned char *)data)[4095] == 0x11 ? 0 : 1);
	}
	munmap(table, pi.table_bytes);
	munmap(data, pi.data_bytes);
	close(fd);
	fd = ecm_open();
	ecm_dev_info(fd, &di);
	ECM_CHECK(di.n_pools == 1, "forked child's mapping holds the pool",
		  "n_pools %u", di.n_pools);
	say(p2c[1]);
	waitpid(pid, &status, 0);
	ECM_CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 0,
		  "child reads the inherited mapping", "status %#x", status);
	close(fd);
	ecm_check_idle("pool freed when the child exits");
}

/* Runs @fn as uid/gid 1000 with supplementary group @group (or none). */
static int as_user(int (*fn)(void), gid_t group)
{
	int status = 0;
	pid_t pid = fork();

	if (pid == 0) {
		gid_t groups[1] = { group };

		if (setgroups(group ? 1 : 0, groups) || setgid(1000) ||
		    setuid(1000))
			_exit(20);
		_exit(fn());
	}
	waitpid(pid, &status, 0);
	return WIFEXITED(status) ? WEXITSTATUS(status) : 100;
}

static int user_open_denied(void)
{
	return ecm_open() < 0 && errno == EACCES ? 0 : 1;
}

/* As uid 1000 in the device's group. */
static int user_in_group(void)
{
	struct ec_pool_info pi;
	struct ec_dev_info di;
	int fd = ecm_open(), ro;
	void *p;

	if (fd < 0)
		return 1;
	if (ecm_attach(fd, "rootpriv", 0) != -1 || errno != EACCES)
		return 2;
	if (ecm_attach(fd, "rootshared", EC_ATTACH_F_WRITE) != -1 ||
	    errno != EACCES)
		return 3;
	if (ecm_attach(fd, "rootshared", 0) || ecm_pool_info(fd, &pi))
		return 4;
	if (pi.owner_uid != 0 || pi.access != 0)
		return 5;
	p = mmap(NULL, pi.data_bytes, PROT_READ | PROT_WRITE, MAP_SHARED, fd,
		 pi.data_offset);
	if (p != MAP_FAILED || errno != EACCES)
		return 6;
	p = mmap(NULL, pi.data_bytes, PROT_READ, MAP_SHARED, fd,
		 pi.data_offset);
	if (p == MAP_FAILED || ((unsigned char *)p)[10] != 0x77)
		return 7;
	if (!mprotect(p, 4096, PROT_READ | PROT_WRITE))
		return 8;
	if (ecm_slot(fd, EC_SLOT_OP_EVICT, 0, 0, 0, NULL) != -1 ||
	    errno != EACCES)
		return 9;
	close(fd);
	munmap(p, pi.data_bytes);
	/* Own pool, charged to uid 1000. */
	fd = ecm_open();
	if (ecm_create(fd, "userpool", 4, 4096, 0, -1) || ecm_dev_info(fd, &di))
		return 10;
	if (di.user_pinned_bytes != 4 * 4096 + 4096)
		return 11;
	/* A read-only open may not create pools. */
	ro = open(EC_DEVICE_PATH, O_RDONLY);
	if (ro < 0 || ecm_create(ro, NULL, 1, 4096, 0, -1) != -1 ||
	    errno != EACCES)
		return 12;
	if (ecm_attach(ro, "userpool", EC_ATTACH_F_WRITE) != -1 ||
	    errno != EACCES)
		return 13;
	close(ro);
	close(fd);
	return 0;
}

static void test_permissions(void)
{
	int priv = ecm_open(), shared = ecm_open(), r;
	struct ec_pool_info pi;
	void *t, *d;

	ECM_OK(ecm_create(priv, "rootpriv", 2, 4096, 0, -1), "root pool");
	ECM_OK(ecm_create(shared, "rootshared", 2, 4096, EC_POOL_F_SHARE_RO,
			  -1), "root pool shared read-only");
	ecm_pool_info(shared, &pi);
	ecm_map(shared, &pi, 1, &t, &d);
	memset(d, 0x77, 64);

	chown(EC_DEVICE_PATH, 0, 0);
	chmod(EC_DEVICE_PATH, 0660);
	r = as_user(user_open_denied, 0);
	ECM_CHECK(r == 0, "mode 0660 root:root: other users cannot open",
		  "child %d", r);
	chown(EC_DEVICE_PATH, 0, 1234);	/* what the udev rule does */
	r = as_user(user_open_denied, 0);
	ECM_CHECK(r == 0, "user outside the group cannot open", "child %d", r);
	r = as_user(user_in_group, 1234);
	ECM_CHECK(r == 0, "group member: own pools, read-only sharing only",
		  "child step %d failed", r);
	chown(EC_DEVICE_PATH, 0, 0);
	munmap(t, pi.table_bytes);
	munmap(d, pi.data_bytes);
	close(priv);
	close(shared);
	ecm_check_idle("idle after permission test");
}

int main(void)
{
	ecm_prog = "share";
	test_two_processes();
	test_fork_lifetime();
	test_permissions();
	return ecm_done();
}
