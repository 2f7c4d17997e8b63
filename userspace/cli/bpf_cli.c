// SPDX-License-Identifier: MIT
/* Targets of the BPF commands: pid, cgroup, binary or a started command. */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "bpf_cli.h"
#include "cli.h"
#include "ec_bpf.h"
#include "ec_error.h"

static volatile sig_atomic_t stop_requested;

static void on_signal(int sig)
{
	stop_requested = 1;
}

int ec_bpf_target_opt(struct ec_bpf_target *t, int c, const char *arg,
		      const char *cmd_name)
{
	uint32_t v;
	char *end;

	switch (c) {
	case 'p':
		if (ec_cli_parse_uint(arg, &v) < 0 || !v) {
			fprintf(stderr, "expertcache %s: --pid '%s' is not a "
				"process id\n", cmd_name, arg);
			return -1;
		}
		t->pid = (pid_t)v;
		return 1;
	case 'C':
		t->cgroup = arg;
		return 1;
	case 'B':
		t->binary = arg;
		return 1;
	case 'd':
		errno = 0;
		t->duration = strtod(arg, &end);
		if (errno || end == arg || *end || t->duration <= 0) {
			fprintf(stderr, "expertcache %s: --duration '%s' is "
				"not a positive number of seconds\n", cmd_name,
				arg);
			return -1;
		}
		return 1;
	}
	return 0;
}

/* PATH lookup as execvp does it. */
static int find_program(const char *name, char *out, size_t n)
{
	const char *path = getenv("PATH");
	char buf[PATH_MAX];

	if (strchr(name, '/'))
		return realpath(name, out) && access(out, X_OK) == 0 ? 0 : -1;
	if (!path)
		path = "/usr/local/bin:/usr/bin:/bin";
	while (*path) {
		size_t len = strcspn(path, ":");

		snprintf(buf, sizeof(buf), "%.*s/%s", (int)len, path, name);
		if (access(buf, X_OK) == 0 && realpath(buf, out))
			return 0;
		path += len + (path[len] == ':');
	}
	(void)n;
	return -1;
}

/* fork; the child waits for a byte on a pipe, then execs the command. */
static int spawn_stopped(struct ec_bpf_target *t, const char *cmd_name)
{
	int fds[2];
	pid_t pid;
	char go;

	if (pipe2(fds, O_CLOEXEC) < 0) {
		perror("pipe");
		return -1;
	}
	pid = fork();
	if (pid < 0) {
		perror("fork");
		close(fds[0]);
		close(fds[1]);
		return -1;
	}
	if (pid == 0) {
		close(fds[1]);
		if (read(fds[0], &go, 1) != 1)
			_exit(127);	/* the tracer went away */
		close(fds[0]);
		execv(t->bin, t->cmd);
		fprintf(stderr, "expertcache %s: cannot run %s: %s\n",
			cmd_name, t->bin, strerror(errno));
		_exit(127);
	}
	close(fds[0]);
	t->child = pid;
	t->go_fd = fds[1];
	return 0;
}

int ec_bpf_target_prepare(struct ec_bpf_target *t, int argc, char **argv,
			  int optind, const char *cmd_name)
{
	struct sigaction sa = { .sa_handler = on_signal };
	ssize_t len;
	int ret;

	t->go_fd = -1;
	t->attach_pid = -1;
	if (optind < argc)
		t->cmd = argv + optind;
	if (t->cmd && t->pid) {
		fprintf(stderr, "expertcache %s: give --pid or a command, not "
			"both\n", cmd_name);
		return -1;
	}
	if (t->cgroup) {
		ret = ec_bpf_cgroup_id(t->cgroup, &t->filter_cgid);
		if (ret < 0) {
			ec_bpf_cli_error(cmd_name, "--cgroup", ret);
			return -1;
		}
	}
	if (t->pid) {
		char exe[64];

		snprintf(exe, sizeof(exe), "/proc/%d/exe", (int)t->pid);
		if (kill(t->pid, 0) < 0 && errno == ESRCH) {
			fprintf(stderr, "expertcache %s: no process %d\n",
				cmd_name, (int)t->pid);
			return -1;
		}
		/*
		 * /proc/PID/exe reaches the binary even if it was replaced
		 * on disk (rebuilt) while the process runs.
		 */
		snprintf(t->bin, sizeof(t->bin), "%s",
			 t->binary ? t->binary : exe);
		t->attach_pid = t->pid;
		t->filter_tgid = (uint32_t)t->pid;
	} else if (t->cmd) {
		if (find_program(t->cmd[0], t->bin, sizeof(t->bin)) < 0) {
			fprintf(stderr, "expertcache %s: %s: command not "
				"found\n", cmd_name, t->cmd[0]);
			return -1;
		}
		if (t->binary)
			snprintf(t->bin, sizeof(t->bin), "%s", t->binary);
	} else if (t->binary) {
		snprintf(t->bin, sizeof(t->bin), "%s", t->binary);
	} else {
		len = readlink("/proc/self/exe", t->bin, sizeof(t->bin) - 1);
		if (len <= 0) {
			perror("/proc/self/exe");
			return -1;
		}
		t->bin[len] = 0;
	}
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGTERM, &sa, NULL);
	if (t->cmd) {
		if (spawn_stopped(t, cmd_name) < 0)
			return -1;
		t->filter_tgid = (uint32_t)t->child;
	}
	return 0;
}

void ec_bpf_target_start(struct ec_bpf_target *t)
{
	if (t->go_fd >= 0) {
		if (write(t->go_fd, "g", 1) != 1)
			perror("expertcache: starting the command");
		close(t->go_fd);
		t->go_fd = -1;
	}
}

static double now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec + ts.tv_nsec * 1e-9;
}

bool ec_bpf_target_wait(struct ec_bpf_target *t, double seconds)
{
	static double t_start;
	double end, now = now_s();

	if (!t_start)
		t_start = now;
	end = now + seconds;
	if (t->duration > 0 && end > t_start + t->duration)
		end = t_start + t->duration;
	for (;;) {
		struct timespec ts = { 0, 50 * 1000 * 1000 };

		if (stop_requested)
			return false;
		if (t->child && !t->child_done &&
		    waitpid(t->child, &t->child_status, WNOHANG) == t->child)
			t->child_done = true;
		if (t->child_done)
			return false;
		if (t->pid && kill(t->pid, 0) < 0 && errno == ESRCH)
			return false;
		now = now_s();
		if (t->duration > 0 && now >= t_start + t->duration)
			return false;
		if (now >= end)
			return true;
		if (end - now < 0.05)
			ts.tv_nsec = (long)((end - now) * 1e9);
		nanosleep(&ts, NULL);
	}
}

int ec_bpf_target_finish(struct ec_bpf_target *t)
{
	if (t->go_fd >= 0) {	/* never started: it exits on EOF */
		close(t->go_fd);
		t->go_fd = -1;
		if (t->child)
			waitpid(t->child, &t->child_status, 0);
		return 0;
	}
	if (!t->child)
		return 0;
	if (!t->child_done) {
		kill(t->child, SIGINT);
		if (waitpid(t->child, &t->child_status, 0) == t->child)
			t->child_done = true;
	}
	if (!t->child_done)
		return 1;
	if (WIFEXITED(t->child_status))
		return WEXITSTATUS(t->child_status);
	return 128 + (WIFSIGNALED(t->child_status) ?
		      WTERMSIG(t->child_status) : 0);
}

void ec_bpf_cli_error(const char *cmd_name, const char *what, int err)
{
	if (err == -EPERM || err == -EC_EUNSUPPORTED || err == -EACCES)
		fprintf(stderr, "expertcache %s: BPF is unavailable: %s\n",
			cmd_name, ec_error_msg());
	else
		fprintf(stderr, "expertcache %s: %s: %s\n", cmd_name, what,
			*ec_error_msg() ? ec_error_msg() :
					  ec_error_name(err));
}

const char *ec_fmt_ns(double ns, char *buf, size_t n)
{
	if (ns < 1e3)
		snprintf(buf, n, "%.0f ns", ns);
	else if (ns < 1e6)
		snprintf(buf, n, "%.1f us", ns / 1e3);
	else if (ns < 1e9)
		snprintf(buf, n, "%.2f ms", ns / 1e6);
	else
		snprintf(buf, n, "%.2f s", ns / 1e9);
	return buf;
}

double ec_hist_percentile(const __u64 *slots, int n, double q)
{
	uint64_t total = 0, acc = 0;
	int i;

	for (i = 0; i < n; i++)
		total += slots[i];
	if (!total)
		return 0;
	for (i = 0; i < n; i++) {
		acc += slots[i];
		if (acc >= q * total)
			return (double)(2ull << i);	/* bucket's top */
	}
	return (double)(2ull << (n - 1));
}

void ec_hist_print(const __u64 *slots, int n, const char *indent)
{
	uint64_t max = 0;
	int i, lo = -1, hi = -1;

	for (i = 0; i < n; i++) {
		if (!slots[i])
			continue;
		if (lo < 0)
			lo = i;
		hi = i;
		if (slots[i] > max)
			max = slots[i];
	}
	if (lo < 0)
		return;
	printf("%s%21s : %-8s %s\n", indent, "latency", "count",
	       "distribution");
	for (i = lo; i <= hi; i++) {
		char a[24], b[24], row[64];
		int bar = (int)((slots[i] * 40 + max - 1) / max), j;

		ec_fmt_ns((double)(1ull << i), a, sizeof(a));
		ec_fmt_ns((double)(2ull << i), b, sizeof(b));
		snprintf(row, sizeof(row), "%s .. %s", a, b);
		printf("%s%21s : %-8llu |", indent, row,
		       (unsigned long long)slots[i]);
		for (j = 0; j < 40; j++)
			putchar(j < bar ? '*' : ' ');
		printf("|\n");
	}
}
