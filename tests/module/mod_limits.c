/* mod_limits.c - guest test: pinned-bytes caps per user and in total, their
 * counters (ioctl, sysfs, ftrace), free memory back to its starting value
 * after every test and after kill -9 of a process holding a pool. */
#include <grp.h>
#include <signal.h>
#include <sys/stat.h>

#include "ecm_test.h"

#define MIB (1ull << 20)
#define TRACE "/sys/kernel/tracing/"
/* Per-CPU page lists and slab noise, in kB. */
#define MEM_SLACK_KB 4096

static long mem_base_kb;

static void check_mem_back(const char *name)
{
	long now = ecm_memfree_settled();

	ECM_CHECK(now >= mem_base_kb - MEM_SLACK_KB, name,
		  "free %ld kB, started at %ld kB", now, mem_base_kb);
}

static void set_caps(uint64_t total, uint64_t user)
{
	char v[32];

	snprintf(v, sizeof(v), "%llu", (unsigned long long)total);
	ecm_write_file(ECM_PARAM "max_total_bytes", v);
	snprintf(v, sizeof(v), "%llu", (unsigned long long)user);
	ecm_write_file(ECM_PARAM "max_user_bytes", v);
}

/* As uid 1000: 6 MiB fits, 4 MiB more breaks the total cap. */
static int user_child(void)
{
	struct ec_dev_info di;
	int a, b;

	if (setgroups(0, NULL) || setgid(1234) || setuid(1000))
		return 20;
	a = ecm_open();
	b = ecm_open();
	if (a < 0 || b < 0)
		return 1;
	if (ecm_create(a, NULL, 6, MIB, 0, -1))
		return 2;
	if (ecm_create(b, NULL, 4, MIB, 0, -1) != -1 || errno != ENOMEM)
		return 3;
	if (ecm_dev_info(a, &di) || di.user_refusals != 1 ||
	    di.user_pinned_bytes != 6 * MIB + 4096)
		return 4;
	return 0;
}

static void test_caps(void)
{
	struct ec_dev_info d0, d1;
	long long sys_ref0, sys_ref1, sys_pinned;
	char trace[8192] = "";
	int a = ecm_open(), b = ecm_open(), status = 0, tfd;
	pid_t pid;
	ssize_t n;

	set_caps(16 * MIB, 12 * MIB);
	ecm_dev_info(a, &d0);
	sys_ref0 = ecm_read_ll(ECM_SYSFS "total_refusals");
	ECM_CHECK(d0.max_total_bytes == 16 * MIB &&
		  d0.max_user_bytes == 12 * MIB, "caps set via module params",
		  "%llu %llu", (unsigned long long)d0.max_total_bytes,
		  (unsigned long long)d0.max_user_bytes);
	ecm_write_file(TRACE "trace", "");
	ecm_write_file(TRACE "events/expertcache/limit_refused/enable", "1");

	ECM_OK(ecm_create(a, NULL, 8, MIB, 0, -1), "8 MiB under the caps");
	ECM_ERRNO(ecm_create(b, NULL, 8, MIB, 0, -1), ENOMEM,
		  "8 MiB more: over the user cap -> ENOMEM");
	ecm_dev_info(a, &d1);
	sys_ref1 = ecm_read_ll(ECM_SYSFS "total_refusals");
	sys_pinned = ecm_read_ll(ECM_SYSFS "total_pinned_bytes");
	ECM_CHECK(d1.user_refusals == d0.user_refusals + 1 &&
		  d1.total_refusals == d0.total_refusals + 1 &&
		  sys_ref1 == sys_ref0 + 1, "refusal counted once",
		  "user %llu->%llu total %llu->%llu sysfs %lld->%lld",
		  (unsigned long long)d0.user_refusals,
		  (unsigned long long)d1.user_refusals,
		  (unsigned long long)d0.total_refusals,
		  (unsigned long long)d1.total_refusals, sys_ref0, sys_ref1);
	ECM_CHECK(d1.user_pinned_bytes == 8 * MIB + 4096 &&
		  d1.total_pinned_bytes == 8 * MIB + 4096 &&
		  sys_pinned == (long long)(8 * MIB + 4096) && d1.n_pools == 1,
		  "pinned bytes: pool + its table page",
		  "user %llu total %llu sysfs %lld pools %u",
		  (unsigned long long)d1.user_pinned_bytes,
		  (unsigned long long)d1.total_pinned_bytes, sys_pinned,
		  d1.n_pools);

	/* Another user: charged separately, still bound by the total. */
	chown(EC_DEVICE_PATH, 0, 1234);
	pid = fork();
	if (pid == 0)
		_exit(user_child());
	waitpid(pid, &status, 0);
	chown(EC_DEVICE_PATH, 0, 0);
	ECM_CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 0,
		  "second uid: own account, total cap applies",
		  "child step %d", WEXITSTATUS(status));
	ecm_dev_info(a, &d1);
	ECM_CHECK(d1.total_refusals == d0.total_refusals + 2 &&
		  d1.user_refusals == d0.user_refusals + 1 &&
		  d1.total_pinned_bytes == 8 * MIB + 4096,
		  "per-user and total counters",
		  "total refusals %llu user %llu pinned %llu",
		  (unsigned long long)d1.total_refusals,
		  (unsigned long long)d1.user_refusals,
		  (unsigned long long)d1.total_pinned_bytes);

	set_caps(1ull << 40, 1ull << 40);
	ECM_ERRNO(ecm_create(b, NULL, 1u << 20, 1ull << 30, 0, -1), ENOMEM,
		  "1 PiB request -> ENOMEM");

	ecm_write_file(TRACE "events/expertcache/limit_refused/enable", "0");
	tfd = open(TRACE "trace", O_RDONLY);
	n = tfd >= 0 ? read(tfd, trace, sizeof(trace) - 1) : -1;
	trace[n > 0 ? n : 0] = 0;
	close(tfd);
	ECM_CHECK(strstr(trace, "limit_refused: uid=0 requested=8392704") &&
		  strstr(trace, "limit_refused: uid=1000 requested=4198400"),
		  "ftrace shows expertcache:limit_refused events", "%s",
		  trace);
	close(a);
	close(b);
	ecm_check_idle("idle after cap test");
	check_mem_back("free memory back after cap test");
}

static void test_memory_back(void)
{
	struct ec_pool_info pi;
	void *t, *d;
	long during;
	int fd = ecm_open();

	ECM_OK(ecm_create(fd, "big", 32, 2 * MIB, EC_POOL_F_HUGE, -1),
	       "64 MiB pool");
	ecm_pool_info(fd, &pi);
	ecm_map(fd, &pi, 1, &t, &d);
	memset(d, 1, pi.data_bytes);
	during = ecm_memfree_settled();
	ECM_CHECK(mem_base_kb - during >= 60 * 1024, "64 MiB really taken",
		  "free memory dropped by %ld kB", mem_base_kb - during);
	munmap(t, pi.table_bytes);
	munmap(d, pi.data_bytes);
	close(fd);
	ecm_check_idle("idle after 64 MiB pool");
	check_mem_back("free memory back after 64 MiB pool");
}

static void test_kill_holder(void)
{
	struct ec_dev_info di;
	int sync_pipe[2], fd, status = 0;
	long during;
	char c;
	pid_t pid;

	if (pipe(sync_pipe))
		return;
	pid = fork();
	if (pid == 0) {
		struct ec_pool_info pi;
		void *t, *d;
		int cfd = ecm_open();

		if (ecm_create(cfd, "victim", 16, 2 * MIB, EC_POOL_F_HUGE, -1) ||
		    ecm_pool_info(cfd, &pi) || ecm_map(cfd, &pi, 1, &t, &d))
			_exit(1);
		memset(d, 2, pi.data_bytes);
		ecm_slot(cfd, EC_SLOT_OP_CLAIM, 0, 1, 0, NULL);
		ecm_slot(cfd, EC_SLOT_OP_CLAIM, 1, 2, 0, NULL);
		ecm_slot(cfd, EC_SLOT_OP_READY, 1, 2, 0, NULL);
		ecm_slot(cfd, EC_SLOT_OP_PIN, 1, 2, 0, NULL);
		if (write(sync_pipe[1], "x", 1) != 1)
			_exit(1);
		for (;;)
			pause();
	}
	close(sync_pipe[1]);
	if (read(sync_pipe[0], &c, 1) != 1) {
		ECM_CHECK(0, "holder set up its pool", "child died");
		waitpid(pid, &status, 0);
		return;
	}
	close(sync_pipe[0]);
	fd = ecm_open();
	ecm_dev_info(fd, &di);
	during = ecm_memfree_settled();
	ECM_CHECK(di.n_pools == 1 && di.total_pinned_bytes >= 32 * MIB &&
		  mem_base_kb - during >= 30 * 1024,
		  "holder has 32 MiB pinned", "pools %u pinned %llu",
		  di.n_pools, (unsigned long long)di.total_pinned_bytes);
	kill(pid, SIGKILL);
	waitpid(pid, &status, 0);
	ECM_CHECK(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL,
		  "holder killed with SIGKILL", "status %#x", status);
	close(fd);
	ecm_check_idle("pool freed after kill -9 of its holder");
	check_mem_back("free memory back after kill -9");
}

/* SIGKILL while the kernel is still allocating and zeroing a pool. */
static void test_kill_during_create(void)
{
	int status = 0;
	pid_t pid = fork();

	if (pid == 0) {
		int cfd = ecm_open();

		ecm_create(cfd, NULL, 128, 2 * MIB, 0, -1);
		_exit(0);
	}
	usleep(20000);
	kill(pid, SIGKILL);
	waitpid(pid, &status, 0);
	ecm_info("creator %s", WIFSIGNALED(status) ?
		 "killed during create" : "finished before the kill");
	ecm_check_idle("idle after kill during create");
	check_mem_back("free memory back after kill during create");
}

int main(void)
{
	char old_total[32], old_user[32];

	ecm_prog = "limits";
	snprintf(old_total, sizeof(old_total), "%lld",
		 ecm_read_ll(ECM_PARAM "max_total_bytes"));
	snprintf(old_user, sizeof(old_user), "%lld",
		 ecm_read_ll(ECM_PARAM "max_user_bytes"));
	mem_base_kb = ecm_memfree_settled();
	ecm_info("free memory at start %ld kB (buddy + per-cpu lists)", mem_base_kb);
	test_caps();
	test_memory_back();
	test_kill_holder();
	test_kill_during_create();
	ecm_write_file(ECM_PARAM "max_total_bytes", old_total);
	ecm_write_file(ECM_PARAM "max_user_bytes", old_user);
	return ecm_done();
}
