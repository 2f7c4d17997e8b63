// SPDX-License-Identifier: MIT
/* expertcache CLI entry point: dispatches to one file per command. */
#include <stdio.h>
#include <string.h>

#include "cli.h"

struct ec_command {
	const char *name;
	int (*fn)(int argc, char **argv);
	const char *summary;
};

static const struct ec_command commands[] = {
	{ "run", ec_cmd_run,
	  "generate text from a prompt (default: the bundled model)" },
	{ "inspect", ec_cmd_inspect,
	  "describe a model: architecture, experts, sizes, tensor types" },
	{ "logits", ec_cmd_logits,
	  "run tokens through a model and save the logits as .npy" },
	{ "bench", ec_cmd_bench,
	  "prefill and decode speed on token ids (like llama-bench)" },
	{ "tokenize", ec_cmd_tokenize,
	  "text to token ids and back" },
	{ "replay", ec_cmd_replay,
	  "hit rates of cache policies on a routing trace (no model)" },
	{ "profile", ec_cmd_profile,
	  "per-expert access counts from a routing trace" },
	{ "plan", ec_cmd_plan,
	  "which experts to pin in VRAM and RAM, from a profile" },
	{ "layout", ec_cmd_layout,
	  "write experts in a profile-guided order for fewer, larger reads" },
	{ "bench-io", ec_cmd_bench_io,
	  "random O_DIRECT read speed of our io_uring reader (cf. fio)" },
	{ "trace", ec_cmd_trace,
	  "expert traffic and storage latency of a running model (eBPF)" },
	{ "top", ec_cmd_top,
	  "live view: hottest experts, hit rates, read bandwidth (eBPF)" },
	{ "heatmap", ec_cmd_heatmap,
	  "layer x expert PNG heat map of a profile or a routing trace" },
};

static void usage(FILE *f)
{
	size_t i;

	fprintf(f, "usage: expertcache COMMAND [OPTIONS]\n\n"
		   "Runs Mixture-of-Experts language models whose experts do "
		   "not fit in memory.\n\ncommands:\n");
	for (i = 0; i < sizeof(commands) / sizeof(commands[0]); i++)
		fprintf(f, "  %-10s %s\n", commands[i].name,
			commands[i].summary);
	fprintf(f, "\n'expertcache COMMAND --help' describes a command.\n");
}

int main(int argc, char **argv)
{
	size_t i;

	if (argc < 2) {
		usage(stderr);
		return 2;
	}
	if (!strcmp(argv[1], "--help") || !strcmp(argv[1], "-h") ||
	    !strcmp(argv[1], "help")) {
		usage(stdout);
		return 0;
	}
	for (i = 0; i < sizeof(commands) / sizeof(commands[0]); i++)
		if (!strcmp(argv[1], commands[i].name))
			return commands[i].fn(argc - 1, argv + 1);
	fprintf(stderr, "expertcache: unknown command '%s'\n\n", argv[1]);
	usage(stderr);
	return 2;
}
