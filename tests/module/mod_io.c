/* mod_io.c - guest test: O_DIRECT reads through io_uring from the virtio
 * disk into pool memory, bytes verified; registered-buffer behaviour.
 *   mod_io --gen FILE MIB   writes the pattern disk image (on the host)
 *   mod_io DEVICE           runs the tests against DEVICE (in the guest) */
#include <liburing.h>
#include <linux/fs.h>
#include <signal.h>

#include "ecm_test.h"

#define SLOT_BYTES (1u << 20)
#define NSLOT 8
#define CHUNK (256u << 10)

/* Word w of the disk is splitmix64(w): position-dependent, no repeats. */
static uint64_t pattern_word(uint64_t w)
{
	uint64_t z = w + 0x9e3779b97f4a7c15ull * (w + 1);

	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
	return z ^ (z >> 31);
}

static int gen_disk(const char *path, long mib)
{
	uint64_t buf[8192];
	uint64_t w = 0;
	FILE *f = fopen(path, "wb");
	long i;
	size_t j;

	if (!f || mib <= 0)
		return 1;
	for (i = 0; i < mib * (1 << 20) / (long)sizeof(buf); i++) {
		for (j = 0; j < 8192; j++)
			buf[j] = pattern_word(w++);
		if (fwrite(buf, sizeof(buf), 1, f) != 1)
			return 1;
	}
	return fclose(f) ? 1 : 0;
}

/* Mismatching bytes of @len bytes at @p against disk offset @off. */
static size_t verify(const void *p, uint64_t off, size_t len)
{
	const uint64_t *q = p;
	size_t i, bad = 0;

	for (i = 0; i < len / 8; i++)
		bad += q[i] != pattern_word(off / 8 + i);
	return bad;
}

/* Reads @len bytes at disk @off into @dst in CHUNK pieces, all in flight.
 * Returns 0, or the first negative CQE result. */
static int uring_read(struct io_uring *ring, int dfd, void *dst, uint64_t off,
		      size_t len, int fixed)
{
	size_t n = len / CHUNK, i;
	struct io_uring_cqe *cqe;
	int ret = 0;

	for (i = 0; i < n; i++) {
		struct io_uring_sqe *sqe = io_uring_get_sqe(ring);

		if (fixed)
			io_uring_prep_read_fixed(sqe, dfd, (char *)dst +
						 i * CHUNK, CHUNK,
						 off + i * CHUNK, 0);
		else
			io_uring_prep_read(sqe, dfd, (char *)dst + i * CHUNK,
					   CHUNK, off + i * CHUNK);
	}
	io_uring_submit(ring);
	for (i = 0; i < n; i++) {
		if (io_uring_wait_cqe(ring, &cqe))
			return -EIO;
		if (cqe->res != (int)CHUNK && !ret)
			ret = cqe->res < 0 ? cqe->res : -EIO;
		io_uring_cqe_seen(ring, cqe);
	}
	return ret;
}

/* Best of 5 verified reads of @len bytes into @dst; seconds, or -1. */
static double timed_read(struct io_uring *ring, int dfd, void *dst,
			 size_t len, int fixed)
{
	double best = 1e9, t0;
	int rep;

	for (rep = 0; rep < 5; rep++) {
		t0 = ecm_now();
		if (uring_read(ring, dfd, dst, 0, len, fixed) ||
		    verify(dst, 0, len))
			return -1;
		if (ecm_now() - t0 < best)
			best = ecm_now() - t0;
	}
	return best;
}

static void test_fill_slots(int dfd, uint64_t disk_bytes)
{
	struct io_uring ring;
	struct ec_pool_info pi;
	struct ec_slot_op op;
	struct iovec iov;
	void *table, *data, *anon;
	double t_pool, t_anon;
	size_t bad = 0;
	int fd = ecm_open(), ro, i, ret;

	if (ecm_create(fd, "io", NSLOT, SLOT_BYTES, EC_POOL_F_HUGE, -1) ||
	    ecm_pool_info(fd, &pi) || ecm_map(fd, &pi, 1, &table, &data) ||
	    io_uring_queue_init(64, &ring, 0)) {
		ECM_CHECK(0, "set up pool and ring", "%s", strerror(errno));
		return;
	}

	/* The real flow: ACQUIRE -> O_DIRECT read into the slot -> READY. */
	for (i = 0; i < NSLOT; i++) {
		uint64_t key = 100 + i;
		uint64_t off = ((uint64_t)i * 3 * SLOT_BYTES) %
			       (disk_bytes - SLOT_BYTES);
		char *dst;

		if (ecm_slot(fd, EC_SLOT_OP_ACQUIRE, 0, key, 0, &op) ||
		    !(op.flags & EC_SLOT_F_CLAIMED))
			break;
		dst = (char *)data + (size_t)op.slot * SLOT_BYTES;
		ret = uring_read(&ring, dfd, dst, off, SLOT_BYTES, 0);
		if (ret) {
			ECM_CHECK(0, "O_DIRECT read into pool", "slot %u: %s",
				  op.slot, strerror(-ret));
			ecm_slot(fd, EC_SLOT_OP_ABORT, op.slot, 0, 0, NULL);
			break;
		}
		bad += verify(dst, off, SLOT_BYTES);
		if (ecm_slot(fd, EC_SLOT_OP_READY, op.slot, key,
			     EC_SLOT_F_CHECK_KEY, NULL))
			break;
	}
	ECM_CHECK(i == NSLOT && bad == 0,
		  "io_uring O_DIRECT reads fill every slot, bytes verified",
		  "%d slots, %zu bad words", i, bad);

	/* A read-only attacher's mapping cannot be written by I/O either. */
	ro = ecm_open();
	if (!ecm_attach(ro, "io", 0)) {
		void *rot, *rod;

		if (!ecm_map(ro, &pi, 0, &rot, &rod)) {
			struct io_uring_sqe *sqe = io_uring_get_sqe(&ring);
			struct io_uring_cqe *cqe;

			io_uring_prep_read(sqe, dfd, rod, CHUNK, 0);
			io_uring_submit(&ring);
			io_uring_wait_cqe(&ring, &cqe);
			ECM_CHECK(cqe->res == -EFAULT,
				  "O_DIRECT into a read-only mapping -> EFAULT",
				  "res %d", cqe->res);
			io_uring_cqe_seen(&ring, cqe);
			munmap(rot, pi.table_bytes);
			munmap(rod, pi.data_bytes);
		}
	}
	close(ro);

	/* Registered (fixed) buffers over pool memory. */
	iov.iov_base = data;
	iov.iov_len = pi.data_bytes;
	ret = io_uring_register_buffers(&ring, &iov, 1);
	ECM_CHECK(ret == 0 || ret == -EOPNOTSUPP,
		  "register pool memory: works or EOPNOTSUPP",
		  "ret %d (%s)", ret, strerror(-ret));
	if (ret == 0) {
		memset(data, 0, SLOT_BYTES);
		ret = uring_read(&ring, dfd, data, SLOT_BYTES, SLOT_BYTES, 1);
		ECM_CHECK(!ret && !verify(data, SLOT_BYTES, SLOT_BYTES),
			  "fixed-buffer read into pool verified", "ret %d",
			  ret);
		io_uring_unregister_buffers(&ring);
		ecm_info("registered buffers: supported for module memory");
	} else {
		ecm_info("registered buffers: %s for module memory; "
			 "unregistered O_DIRECT reads are the path",
			 strerror(-ret));
	}

	/* Same read into anonymous memory, for the side-by-side cost. */
	anon = mmap(NULL, pi.data_bytes, PROT_READ | PROT_WRITE,
		    MAP_PRIVATE | MAP_ANONYMOUS | MAP_POPULATE, -1, 0);
	iov.iov_base = anon;
	ret = io_uring_register_buffers(&ring, &iov, 1);
	ECM_CHECK(ret == 0, "register anonymous memory (control)", "ret %d",
		  ret);
	if (!ret)
		io_uring_unregister_buffers(&ring);
	t_pool = timed_read(&ring, dfd, data, pi.data_bytes, 0);
	t_anon = timed_read(&ring, dfd, anon, pi.data_bytes, 0);
	ECM_CHECK(t_pool >= 0 && t_anon >= 0,
		  "8 MiB read into pool and into anonymous memory, verified",
		  "pool %.3f anon %.3f", t_pool, t_anon);
	ecm_info("8 MiB O_DIRECT, best of 5: pool %.1f ms, anonymous %.1f ms "
		 "(TCG guest: relative only)", t_pool * 1e3, t_anon * 1e3);
	munmap(anon, pi.data_bytes);

	/* Free the pool while reads into it are in flight. */
	for (i = 0; i < NSLOT; i++) {
		struct io_uring_sqe *sqe = io_uring_get_sqe(&ring);

		io_uring_prep_read(sqe, dfd, (char *)data + i * SLOT_BYTES,
				   SLOT_BYTES, 0);
	}
	io_uring_submit(&ring);
	munmap(data, pi.data_bytes);
	munmap(table, pi.table_bytes);
	close(fd);
	for (i = 0, bad = 0; i < NSLOT; i++) {
		struct io_uring_cqe *cqe;

		if (io_uring_wait_cqe(&ring, &cqe))
			break;
		bad += cqe->res != (int)SLOT_BYTES && cqe->res != -EFAULT;
		io_uring_cqe_seen(&ring, cqe);
	}
	ECM_CHECK(i == NSLOT && bad == 0,
		  "reads in flight while the pool is freed complete",
		  "%d cqes, %zu bad", i, bad);
	io_uring_queue_exit(&ring);
	ecm_check_idle("idle after io test");
}

/* EC_POOL_F_SHMEM: data in a shmem file, so io_uring may register it. */
static void test_shmem(int dfd)
{
	struct io_uring ring;
	struct ec_pool_info pi;
	struct iovec iov;
	void *table, *data;
	double t_unreg, t_fixed;
	size_t i, nz = 0;
	int fd = ecm_open(), ret, status = 0;
	long off;
	pid_t pid;

	if (ecm_create(fd, "shm", NSLOT, SLOT_BYTES, EC_POOL_F_SHMEM, 1) ||
	    ecm_pool_info(fd, &pi) || ecm_map(fd, &pi, 1, &table, &data) ||
	    io_uring_queue_init(64, &ring, 0)) {
		ECM_CHECK(0, "shmem pool on node 1", "%s", strerror(errno));
		return;
	}
	for (i = 0; i < pi.data_bytes; i++)
		nz += ((unsigned char *)data)[i] != 0;
	off = ecm_pages_off_node(data, pi.data_bytes, 1);
	ECM_CHECK(pi.node == 1 && off == 0 && nz == 0 && pi.huge_bytes == 0,
		  "shmem pool: zeroed, every page on node 1",
		  "node %d, %ld pages elsewhere, %zu non-zero bytes", pi.node,
		  off, nz);
	iov.iov_base = data;
	iov.iov_len = pi.data_bytes;
	ret = io_uring_register_buffers(&ring, &iov, 1);
	ECM_CHECK(ret == 0, "io_uring registers shmem pool memory",
		  "ret %d (%s)", ret, strerror(-ret));
	t_unreg = timed_read(&ring, dfd, data, pi.data_bytes, 0);
	memset(data, 0, pi.data_bytes);
	t_fixed = ret ? -1 : timed_read(&ring, dfd, data, pi.data_bytes, 1);
	ECM_CHECK(t_unreg >= 0 && (ret || t_fixed >= 0),
		  "O_DIRECT reads into shmem pool verified (plain and fixed)",
		  "plain %.3f fixed %.3f", t_unreg, t_fixed);
	ecm_info("8 MiB O_DIRECT into shmem pool, best of 5: plain %.1f ms, "
		 "registered %.1f ms (TCG guest: relative only)",
		 t_unreg * 1e3, t_fixed * 1e3);
	if (!ret)
		io_uring_unregister_buffers(&ring);
	io_uring_queue_exit(&ring);
	munmap(table, pi.table_bytes);
	munmap(data, pi.data_bytes);
	close(fd);
	ecm_check_idle("idle after shmem pool");

	/* Data mappings of a freed shmem pool fault instead of allocating. */
	pid = fork();
	if (pid == 0) {
		int cfd = ecm_open();

		if (ecm_create(cfd, NULL, 2, 4096, EC_POOL_F_SHMEM, -1) ||
		    ecm_pool_info(cfd, &pi) ||
		    ecm_map(cfd, &pi, 1, &table, &data))
			_exit(1);
		((volatile char *)data)[0] = 1;
		munmap(table, pi.table_bytes);
		close(cfd);	/* last device reference: pool freed */
		((volatile char *)data)[4096] = 1;
		_exit(2);
	}
	waitpid(pid, &status, 0);
	ECM_CHECK(WIFSIGNALED(status) && WTERMSIG(status) == SIGBUS,
		  "freed shmem pool: leftover data mapping gets SIGBUS",
		  "status %#x", status);
	ecm_check_idle("idle after shmem lifetime test");
}

int main(int argc, char **argv)
{
	uint64_t disk_bytes = 0;
	int dfd;

	ecm_prog = "io";
	if (argc == 4 && !strcmp(argv[1], "--gen"))
		return gen_disk(argv[2], atol(argv[3]));
	if (argc != 2) {
		fprintf(stderr, "usage: mod_io DEVICE | mod_io --gen FILE MIB\n");
		return 2;
	}
	dfd = open(argv[1], O_RDONLY | O_DIRECT | O_CLOEXEC);
	if (dfd < 0 || ioctl(dfd, BLKGETSIZE64, &disk_bytes) ||
	    disk_bytes < 16u << 20) {
		ECM_CHECK(0, "open disk O_DIRECT", "%s: %s, %llu bytes",
			  argv[1], strerror(errno),
			  (unsigned long long)disk_bytes);
		return ecm_done();
	}
	test_fill_slots(dfd, disk_bytes);
	test_shmem(dfd);
	close(dfd);
	return ecm_done();
}
