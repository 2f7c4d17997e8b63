// SPDX-License-Identifier: MIT
/* `expertcache trace`: attach the BPF programs, print a summary on exit. */
#include <getopt.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "bpf_cli.h"
#include "cli.h"
#include "ec_bpf.h"
#include "ec_error.h"
#include "ec_storage.h"
#include "trace_report.h"

static void usage(FILE *f)
{
	fprintf(f,
		"usage: expertcache trace [--pid PID | --cgroup DIR | -- CMD "
		"ARGS] [--duration S]\n"
		"                         [--pin] [--json FILE] [--no-block] "
		"[--light]\n"
		"       expertcache trace --unpin\n\n"
		"Counts expert traffic of a running expertcache with eBPF "
		"(USDT probes:\nrouted, hits, misses and loaded bytes per "
		"(layer, expert); load latency per\ntier) and its storage "
		"I/O as the kernel sees it (block layer per device,\n"
		"io_uring per opcode), and prints a summary when it stops.  "
		"Needs root.\n\n"
		EC_BPF_TARGET_HELP
		"  --pin              leave the maps pinned under "
		EC_BPF_PIN_DIR "\n"
		"                     (bpftool map dump pinned "
		EC_BPF_PIN_DIR "/expert_counts)\n"
		"  --unpin            remove what --pin left there, and exit\n"
		"  --json FILE        also write the summary as JSON\n"
		"  --no-block         skip the block-layer / io_uring "
		"programs\n"
		"  --light            no trap per expert lookup: derive cache "
		"hits as\n                     lookups - misses (lower "
		"overhead, docs/BPF.md)\n"
		"  -n, --top N        experts listed per layer (default 4)\n"
		"  -h, --help         this help\n\n"
		"Example:  sudo expertcache trace -- expertcache run -p "
		"'def f(x):' -n 64\n");
}

static int unpin(void)
{
	int ret = ec_bpf_unpin_all(EC_BPF_PIN_DIR);

	if (ret < 0) {
		ec_bpf_cli_error("trace", "--unpin", ret);
		return 1;
	}
	printf("unpinned %d maps from %s\n", ret, EC_BPF_PIN_DIR);
	return 0;
}

int ec_cmd_trace(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "pid", required_argument, NULL, 'p' },
		{ "cgroup", required_argument, NULL, 'C' },
		{ "binary", required_argument, NULL, 'B' },
		{ "duration", required_argument, NULL, 'd' },
		{ "pin", no_argument, NULL, 'P' },
		{ "unpin", no_argument, NULL, 'U' },
		{ "json", required_argument, NULL, 'j' },
		{ "no-block", no_argument, NULL, 'b' },
		{ "light", no_argument, NULL, 'L' },
		{ "top", required_argument, NULL, 'n' },
		{ "help", no_argument, NULL, 'h' },
		{ 0 },
	};
	struct ec_bpf_target tg = { 0 };
	struct ec_traffic_opts to = { 0 };
	struct ec_trace_report rep = { .top = 4 };
	struct ec_traffic *tr = NULL;
	struct ec_tierlat *tl = NULL;
	const char *json_path = NULL;
	int c, ret, rc = 1, pin = 0, no_block = 0, child_rc;
	struct timespec t0, t1;

	while ((c = getopt_long(argc, argv, "+p:d:n:h", opts, NULL)) != -1) {
		ret = ec_bpf_target_opt(&tg, c, optarg, "trace");
		if (ret < 0)
			return 2;
		if (ret)
			continue;
		switch (c) {
		case 'P':
			pin = 1;
			break;
		case 'U':
			return unpin();
		case 'j':
			json_path = optarg;
			break;
		case 'b':
			no_block = 1;
			break;
		case 'L':
			to.light = true;
			break;
		case 'n':
			if (ec_cli_parse_uint(optarg, &rep.top) < 0) {
				fprintf(stderr, "expertcache trace: --top '%s'"
					"\n", optarg);
				return 2;
			}
			break;
		case 'h':
			usage(stdout);
			return 0;
		default:
			usage(stderr);
			return 2;
		}
	}
	ret = ec_bpf_check(pin);
	if (ret < 0) {
		ec_bpf_cli_error("trace", "BPF", ret);
		return 1;
	}
	if (ec_bpf_target_prepare(&tg, argc, argv, optind, "trace") < 0)
		return 1;
	to.binary = tg.bin;
	to.pid = tg.attach_pid;
	to.filter_tgid = tg.filter_tgid;
	to.filter_cgid = tg.filter_cgid;
	ret = ec_traffic_open(&to, &tr);
	if (ret < 0) {
		ec_bpf_cli_error("trace", tg.bin, ret);
		goto out;
	}
	if (*ec_traffic_failed(tr))
		fprintf(stderr, "expertcache trace: warning: probes not "
			"attached: %s\n", ec_traffic_failed(tr));
	if (!no_block && (tg.filter_tgid || tg.filter_cgid)) {
		ret = ec_tierlat_open(tg.filter_tgid, tg.filter_cgid, &tl);
		if (ret < 0)
			fprintf(stderr, "expertcache trace: block layer not "
				"traced: %s\n", ec_error_msg());
	} else if (!no_block) {
		fprintf(stderr, "expertcache trace: block layer not traced: "
			"give --pid, --cgroup or a command to say whose I/O\n");
	}
	if (pin) {
		ret = ec_traffic_pin(tr, EC_BPF_PIN_DIR);
		if (ret >= 0 && tl)
			ret = ec_tierlat_pin(tl, EC_BPF_PIN_DIR);
		if (ret < 0) {
			ec_bpf_cli_error("trace", "--pin", ret);
			goto out;
		}
	}
	fprintf(stderr, "expertcache trace: probing %s%s (%s)%s; Ctrl-C to "
		"stop\n", tg.bin, tg.pid ? " for its running process" :
		tg.cmd ? " for the command" : " for every process",
		ec_traffic_probes(tr), pin ? ", maps pinned under "
		EC_BPF_PIN_DIR : "");
	clock_gettime(CLOCK_MONOTONIC, &t0);
	ec_bpf_target_start(&tg);
	while (ec_bpf_target_wait(&tg, 1.0))
		;
	clock_gettime(CLOCK_MONOTONIC, &t1);
	rep.seconds = (t1.tv_sec - t0.tv_sec) + (t1.tv_nsec - t0.tv_nsec) *
		      1e-9;
	rep.binary = tg.bin;
	rep.tgid = tg.filter_tgid;
	rep.probes = ec_traffic_probes(tr);
	rep.io_notes = tl ? ec_tierlat_notes(tl) : NULL;
	ret = ec_traffic_read(tr, &rep.traffic);
	if (ret >= 0 && tl)
		ret = ec_tierlat_read(tl, &rep.io);
	if (ret < 0) {
		ec_bpf_cli_error("trace", "reading the maps", ret);
		goto out;
	}
	rep.have_io = tl != NULL;
	ec_trace_report_print(&rep);
	if (json_path && ec_trace_report_json(&rep, json_path) < 0) {
		ec_cli_error(json_path, -EIO);
		goto out;
	}
	if (pin)
		fprintf(stderr, "maps left pinned under %s (remove: "
			"expertcache trace --unpin)\n", EC_BPF_PIN_DIR);
	rc = 0;
out:
	ec_traffic_snap_free(&rep.traffic);
	ec_tierlat_snap_free(&rep.io);
	ec_tierlat_close(tl);
	ec_traffic_close(tr);
	child_rc = ec_bpf_target_finish(&tg);
	if (tg.cmd && child_rc) {
		fprintf(stderr, "expertcache trace: %s exited with status "
			"%d\n", tg.cmd[0], child_rc);
		if (!rc)
			rc = 1;
	}
	return rc;
}
