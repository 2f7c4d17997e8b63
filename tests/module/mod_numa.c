/* mod_numa.c - guest test: NUMA node validation and placement, compound
 * (huge) pages, memory-cgroup accounting of pool memory. */
#include <limits.h>
#include <sched.h>
#include <sys/stat.h>

#include "ecm_test.h"

#define CG "/sys/fs/cgroup/ecm"

static int n_nodes(void)
{
	char path[64];
	int n = 0;

	for (;;) {
		snprintf(path, sizeof(path), "/sys/devices/system/node/node%d",
			 n);
		if (access(path, F_OK))
			return n;
		n++;
	}
}

/* PFN runs: each 2 MiB-aligned compound chunk is physically contiguous. */
static int huge_chunks_contiguous(void *p, size_t len, size_t huge_bytes,
				  int *n_contig)
{
	int fd = open("/proc/self/pagemap", O_RDONLY);
	size_t i, chunk = 512, n = len / 4096;
	uint64_t ent, first = 0;
	int runs = 0;

	if (fd < 0)
		return -1;
	for (i = 0; i < n; i++) {
		uintptr_t va = (uintptr_t)p + i * 4096;

		*(volatile char *)va;
		if (pread(fd, &ent, 8, (va / 4096) * 8) != 8)
			break;
		ent &= (1ull << 55) - 1;
		if (i % chunk == 0) {
			first = ent;
			continue;
		}
		if (ent != first + i % chunk)
			first = ~0ull;	/* this chunk is not contiguous */
		if (i % chunk == chunk - 1 && first != ~0ull &&
		    first % chunk == 0)
			runs++;
	}
	close(fd);
	*n_contig = runs;
	return huge_bytes / (2u << 20) <= (size_t)runs ? 0 : 1;
}

static void test_node_validation(int nodes)
{
	int fd = ecm_open();

	ECM_ERRNO(ecm_create(fd, NULL, 1, 4096, 0, -2), EINVAL, "node -2");
	ECM_ERRNO(ecm_create(fd, NULL, 1, 4096, 0, nodes), EINVAL,
		  "node == number of nodes");
	ECM_ERRNO(ecm_create(fd, NULL, 1, 4096, 0, 1024), EINVAL,
		  "node 1024");
	ECM_ERRNO(ecm_create(fd, NULL, 1, 4096, 0, INT_MAX), EINVAL,
		  "node INT_MAX");
	ECM_ERRNO(ecm_create(fd, NULL, 1, 4096, 0, INT_MIN), EINVAL,
		  "node INT_MIN");
	close(fd);
}

static void test_placement(int node, int pin_cpu)
{
	struct ec_pool_info pi;
	void *table, *data;
	char name[96];
	long off;
	int contig = 0, fd = ecm_open(), want = node;

	if (pin_cpu >= 0) {
		cpu_set_t set;

		CPU_ZERO(&set);
		CPU_SET(pin_cpu, &set);
		sched_setaffinity(0, sizeof(set), &set);
		want = pin_cpu;	/* the guest puts cpu N on node N */
	}
	snprintf(name, sizeof(name), "node %d%s", node,
		 pin_cpu >= 0 ? " (local, pinned to cpu)" : "");
	if (ecm_create(fd, NULL, 4, 2u << 20, EC_POOL_F_HUGE, node) ||
	    ecm_pool_info(fd, &pi) || ecm_map(fd, &pi, 1, &table, &data)) {
		ECM_CHECK(0, name, "create/map: %s", strerror(errno));
		close(fd);
		return;
	}
	ECM_CHECK(pi.node == want, name, "info.node %d want %d", pi.node,
		  want);
	off = ecm_pages_off_node(data, pi.data_bytes, want);
	ECM_CHECK(off == 0, "every data page on the node",
		  "%ld pages elsewhere (node %d)", off, want);
	off = ecm_pages_off_node(table, pi.table_bytes, want);
	ECM_CHECK(off == 0, "table pages on the node", "%ld elsewhere", off);
	ECM_CHECK(pi.huge_bytes > 0 && pi.huge_bytes % (2u << 20) == 0 &&
		  pi.huge_bytes <= pi.data_bytes, "compound 2 MiB pages used",
		  "huge_bytes %llu", (unsigned long long)pi.huge_bytes);
	ECM_CHECK(!huge_chunks_contiguous(data, pi.data_bytes, pi.huge_bytes,
					  &contig),
		  "huge chunks physically contiguous and aligned",
		  "%d contiguous 2 MiB runs for %llu huge bytes", contig,
		  (unsigned long long)pi.huge_bytes);
	munmap(table, pi.table_bytes);
	munmap(data, pi.data_bytes);
	close(fd);
	if (pin_cpu >= 0) {
		cpu_set_t set;

		CPU_ZERO(&set);
		CPU_SET(0, &set);
		CPU_SET(1, &set);
		sched_setaffinity(0, sizeof(set), &set);
	}
}

/* A request larger than one node must fail, not spill to another node. */
static void test_thisnode(int nodes)
{
	char old_total[32], old_user[32];
	long long node_kb = ecm_meminfo("MemTotal") / nodes;
	uint64_t want = (uint64_t)(node_kb + 64 * 1024) * 1024;
	uint32_t nslot = (uint32_t)(want / (2u << 20));
	double t0;
	int fd = ecm_open();

	snprintf(old_total, sizeof(old_total), "%lld",
		 ecm_read_ll(ECM_PARAM "max_total_bytes"));
	snprintf(old_user, sizeof(old_user), "%lld",
		 ecm_read_ll(ECM_PARAM "max_user_bytes"));
	ecm_write_file(ECM_PARAM "max_total_bytes", "1099511627776");
	ecm_write_file(ECM_PARAM "max_user_bytes", "1099511627776");
	t0 = ecm_now();
	ECM_ERRNO(ecm_create(fd, NULL, nslot, 2u << 20, EC_POOL_F_HUGE, 1),
		  ENOMEM, "more than node 1 holds -> ENOMEM, no spill");
	ecm_info("refused %u MiB on node 1 after %.2f s", nslot * 2,
		 ecm_now() - t0);
	ecm_write_file(ECM_PARAM "max_total_bytes", old_total);
	ecm_write_file(ECM_PARAM "max_user_bytes", old_user);
	close(fd);
	ecm_check_idle("idle after node exhaustion");
}

/* In a child moved into a fresh memory cgroup. */
static int memcg_child(void)
{
	long long before, during, after;
	struct ec_pool_info pi;
	void *t, *d;
	int fd = ecm_open();

	if (ecm_write_file(CG "/cgroup.procs", "0"))
		return 1;
	before = ecm_read_ll(CG "/memory.current");
	if (ecm_create(fd, NULL, 8, 2u << 20, 0, -1) || ecm_pool_info(fd, &pi))
		return 2;
	during = ecm_read_ll(CG "/memory.current");
	if (during - before < (long long)pi.data_bytes)
		return 3;
	if (ecm_map(fd, &pi, 1, &t, &d))
		return 4;
	close(fd);
	munmap(t, pi.table_bytes);
	munmap(d, pi.data_bytes);
	after = ecm_read_ll(CG "/memory.current");
	if (after - before > (1 << 20))
		return 5;
	/* The cgroup's limit binds pool memory. */
	if (ecm_write_file(CG "/memory.max", "8388608"))
		return 6;
	fd = ecm_open();
	if (ecm_create(fd, NULL, 8, 2u << 20, 0, -1) != -1 || errno != ENOMEM)
		return 7;
	if (ecm_create(fd, NULL, 1, 2u << 20, 0, -1))
		return 8;
	close(fd);
	printf("# numa: memcg: pool of %llu bytes raised memory.current by "
	       "%lld\n", (unsigned long long)pi.data_bytes, during - before);
	return 0;
}

static void test_memcg(void)
{
	int status = 0;
	pid_t pid;

	ecm_write_file("/sys/fs/cgroup/cgroup.subtree_control", "+memory");
	mkdir(CG, 0755);
	pid = fork();
	if (pid == 0)
		_exit(memcg_child());
	waitpid(pid, &status, 0);
	ECM_CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 0,
		  "pool memory charged to the caller's memory cgroup and "
		  "bounded by memory.max", "child step %d failed",
		  WIFEXITED(status) ? WEXITSTATUS(status) : -1);
	rmdir(CG);
	ecm_check_idle("idle after memcg test");
}

int main(void)
{
	int nodes = n_nodes();

	ecm_prog = "numa";
	ECM_CHECK(nodes == 2, "guest has 2 NUMA nodes", "%d", nodes);
	test_node_validation(nodes);
	test_placement(0, -1);
	if (nodes > 1) {
		test_placement(1, -1);
		test_placement(EC_NODE_LOCAL, 1);
		test_thisnode(nodes);
	}
	test_memcg();
	return ecm_done();
}
