/* SPDX-License-Identifier: MIT */
/* The expertcache CLI: one file per command, dispatched from main.c. */
#ifndef EC_CLI_H
#define EC_CLI_H

/*
 * Each command parses its own options (getopt_long), prints --help to stdout,
 * errors to stderr, and returns the process exit code (0 ok, 1 runtime
 * error, 2 usage error).
 */
int ec_cmd_inspect(int argc, char **argv);
int ec_cmd_logits(int argc, char **argv);
int ec_cmd_tokenize(int argc, char **argv);
int ec_cmd_run(int argc, char **argv);
int ec_cmd_bench(int argc, char **argv);
int ec_cmd_replay(int argc, char **argv);
int ec_cmd_profile(int argc, char **argv);
int ec_cmd_plan(int argc, char **argv);
int ec_cmd_bench_io(int argc, char **argv);
int ec_cmd_layout(int argc, char **argv);
int ec_cmd_trace(int argc, char **argv);	/* cmd_trace.c: BPF */
int ec_cmd_top(int argc, char **argv);
int ec_cmd_heatmap(int argc, char **argv);
int ec_cmd_profile_bpf(int argc, char **argv);	/* profile --from-bpf */

#include <stdint.h>

/* "1,2,3" -> malloc'd ids.  -EINVAL on a malformed or empty list. */
int ec_cli_parse_ids(const char *s, int32_t **out, uint32_t *n_out);
int ec_cli_parse_uint(const char *s, uint32_t *out);

/*
 * The bundled model: $EXPERTCACHE_MODEL, else the first *.gguf in the
 * models/ folder next to the executable's build folder.  -1 if none.
 */
#include <stddef.h>
int ec_cli_default_model(char *out, size_t n);

/* Progress bar on stderr, shown only once the work has taken over 1 s. */
struct ec_progress {
	const char *what;
	double t0;
	int shown, tty;
};
void ec_progress_start(struct ec_progress *p, const char *what);
void ec_progress_update(struct ec_progress *p, uint64_t done, uint64_t total);
void ec_progress_done(struct ec_progress *p);

/* Print "expertcache: <what>: <library message>" to stderr. */
void ec_cli_error(const char *what, int err);

/*
 * cli_backend.c: open the backend named by --backend (NULL = auto) with
 * --vram-budget (NULL = automatic; SIZE or PCT of the expert bytes) and
 * --vram-prefetch (ec_backend_cuda_params.vram_prefetch: 0 automatic),
 * printing the CPU-fallback note or the error to stderr.
 */
struct ec_backend;
struct ec_model;
int ec_cli_backend_open(const char *cmd, const char *kind,
			const char *vram_budget, int32_t vram_prefetch,
			uint32_t threads, const struct ec_model *m,
			struct ec_backend **out);
/*
 * The CUDA backend's counters (ec_cuda_stats) as obj["cuda"], with the
 * derived hit rate; nothing for other backends.
 */
struct json_t;
void ec_cli_backend_stats_json(struct ec_backend *be, struct json_t *obj);
/* "cpu avx512" or "cuda NVIDIA H100 80GB HBM3 (sm_90)", for reports. */
void ec_cli_backend_describe(struct ec_backend *be, char *buf, size_t len);

#endif
