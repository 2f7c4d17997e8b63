/* SPDX-License-Identifier: MIT */
/*
 * What the BPF commands (trace, top, profile --from-bpf) trace: a running
 * process (--pid), a cgroup, every process running a binary, or a command
 * they start themselves (`-- CMD ARGS`), plus the wait-until-done loop.
 */
#ifndef EC_BPF_CLI_H
#define EC_BPF_CLI_H

#include <limits.h>
#include <linux/types.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

struct ec_bpf_target {
	/* from the command line */
	pid_t pid;		/* --pid, 0 = none */
	const char *cgroup;	/* --cgroup DIR */
	const char *binary;	/* --binary PATH */
	char **cmd;		/* after "--", NULL-terminated, or NULL */
	double duration;	/* --duration S, 0 = until done */

	/* resolved by ec_bpf_target_prepare */
	char bin[PATH_MAX];	/* executable to attach the probes to */
	pid_t attach_pid;	/* uprobe pid: the process, or -1 = all */
	uint32_t filter_tgid;	/* in-kernel filters, 0 = off */
	uint64_t filter_cgid;
	pid_t child;		/* the command we started, 0 if none */
	int go_fd;		/* releases the child */
	int child_status;	/* its wait status once reaped */
	bool child_done;
};

/* Options every BPF command takes; "help" text for them. */
#define EC_BPF_TARGET_HELP \
	"  -p, --pid PID      trace this running expertcache process\n" \
	"  --cgroup DIR       trace processes of this cgroup v2 directory\n" \
	"  --binary PATH      probe this executable (default: this one)\n" \
	"  -d, --duration S   stop after S seconds (default: Ctrl-C, or when "\
	"the\n                     process or command exits)\n" \
	"  -- CMD ARGS        start CMD (an expertcache command line) and "\
	"trace it\n"

/*
 * Handle one of the shared options (getopt_long codes 'p', 'C', 'B',
 * 'd'); returns 1 if it was one, 0 if not, -1 on a bad value (printed).
 */
int ec_bpf_target_opt(struct ec_bpf_target *t, int c, const char *arg,
		      const char *cmd_name);

/*
 * After option parsing: take argv[optind..] as the command, resolve the
 * binary and filters, fork the command stopped before exec.  Prints the
 * error and returns -1 on failure.
 */
int ec_bpf_target_prepare(struct ec_bpf_target *t, int argc, char **argv,
			  int optind, const char *cmd_name);

/* Let the command run (after attaching). */
void ec_bpf_target_start(struct ec_bpf_target *t);

/*
 * Sleep up to `seconds` (or less when something ends).  Returns true while
 * tracing should go on: no Ctrl-C/SIGTERM, duration not over, the process
 * alive, the command not exited.
 */
bool ec_bpf_target_wait(struct ec_bpf_target *t, double seconds);

/* Stop and reap the command if still running; its exit code, else 0. */
int ec_bpf_target_finish(struct ec_bpf_target *t);

/* Print "expertcache CMD: BPF unavailable: <why>" for an ec_bpf error. */
void ec_bpf_cli_error(const char *cmd_name, const char *what, int err);

/* "12.3 ms" style. */
const char *ec_fmt_ns(double ns, char *buf, size_t n);

struct ec_io_stats;
/* Percentile (0..1) of a log2 histogram, as the bucket's upper bound. */
double ec_hist_percentile(const __u64 *slots, int n, double q);
/* bcc-style text histogram of log2 ns buckets, in microseconds. */
void ec_hist_print(const __u64 *slots, int n, const char *indent);

#endif
