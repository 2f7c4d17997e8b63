// SPDX-License-Identifier: MIT
/* `expertcache run`: generate text from a prompt, streaming to stdout. */
#include <getopt.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>

#include "cli.h"
#include "ec_backend.h"
#include "ec_error.h"
#include "ec_generate.h"
#include "ec_gguf.h"
#include "ec_model.h"
#include "ec_tokenizer.h"
#include "routed_stats.h"
#include "run_storage.h"

struct run_opts {
	const char *model;
	const char *prompt;
	const char *prompt_file;
	const char *stats_json;
	const char *backend, *vram_budget;
	uint32_t n_predict;
	uint32_t threads;
	uint32_t n_ctx;
	int chat;
	struct ec_sampler_params sp;
	struct run_storage_opts st;
};

static void usage(FILE *f)
{
	fprintf(f,
		"usage: expertcache run [-m MODEL] [-p PROMPT | -f FILE] [-n N] "
		"[options]\n\n"
		"Generates text, streaming it to stdout.  Without -m the "
		"bundled model is used.\n\n"
		"  -m, --model PATH      .gguf file or Hugging Face model "
		"directory\n"
		"  -p, --prompt TEXT     the prompt\n"
		"  -f, --file FILE       read the prompt from FILE\n"
		"  -n, --n-predict N     generate at most N tokens (default "
		"128)\n"
		"  --temp T              temperature; 0 = greedy (default 0)\n"
		"  --top-k K             sample from the K most likely "
		"(default 40; 0 = all)\n"
		"  --top-p P             nucleus sampling (default 0.95)\n"
		"  --seed S              random seed (default 42)\n"
		"  --repeat-penalty P    penalise tokens seen in the last "
		"--repeat-last-n\n"
		"                        tokens (default 1 = off; 1.1-1.3 "
		"curbs loops)\n"
		"  --repeat-last-n N     window of the penalty (default 64)\n"
		"  --chat                wrap the prompt in the model's chat "
		"template\n"
		"  -c, --ctx N           context length (default: prompt + N)\n"
		"  -t, --threads N       CPU threads (default: all online)\n"
		"  --backend B           cpu, cuda or auto (default auto)\n"
		"  --vram-budget S       VRAM for expert slots: size or %% "
		"of expert bytes\n"
		"  --stats-json FILE     write run statistics as one JSON "
		"object\n"
		"  -h, --help            this help\n\n%s",
		ec_run_storage_help);
}

static int parse_float(const char *s, float *out)
{
	char *end;

	*out = strtof(s, &end);
	return end == s || *end ? -1 : 0;
}

static int parse_args(int argc, char **argv, struct run_opts *o)
{
	static const struct option base[] = {
		{ "model", required_argument, NULL, 'm' },
		{ "prompt", required_argument, NULL, 'p' },
		{ "file", required_argument, NULL, 'f' },
		{ "n-predict", required_argument, NULL, 'n' },
		{ "temp", required_argument, NULL, 'T' },
		{ "top-k", required_argument, NULL, 'K' },
		{ "top-p", required_argument, NULL, 'P' },
		{ "seed", required_argument, NULL, 'S' },
		{ "repeat-penalty", required_argument, NULL, 'R' },
		{ "repeat-last-n", required_argument, NULL, 'L' },
		{ "chat", no_argument, NULL, 'C' },
		{ "ctx", required_argument, NULL, 'c' },
		{ "threads", required_argument, NULL, 't' },
		{ "stats-json", required_argument, NULL, 'J' },
		{ "backend", required_argument, NULL, 'B' },
		{ "vram-budget", required_argument, NULL, 'V' },
		{ "help", no_argument, NULL, 'h' },
	};
	struct option opts[sizeof(base) / sizeof(base[0]) + 16];
	unsigned long long seed;
	size_t nb = sizeof(base) / sizeof(base[0]), i;
	char *end;
	int c, r, li = -1;

	memcpy(opts, base, sizeof(base));
	for (i = 0; ec_run_storage_options[i].name; i++)
		opts[nb + i] = ec_run_storage_options[i];
	memset(&opts[nb + i], 0, sizeof(opts[0]));
	for (;;) {
		li = -1;
		c = getopt_long(argc, argv, "m:p:f:n:c:t:h", opts, &li);
		if (c == -1)
			break;
		r = ec_run_storage_parse(c, optarg, &o->st);
		if (r > 0)
			continue;
		if (r < 0)
			goto bad;
		switch (c) {
		case 'm':
			o->model = optarg;
			break;
		case 'p':
			o->prompt = optarg;
			break;
		case 'f':
			o->prompt_file = optarg;
			break;
		case 'n':
			if (ec_cli_parse_uint(optarg, &o->n_predict) < 0)
				goto bad;
			break;
		case 'T':
			if (parse_float(optarg, &o->sp.temperature) < 0 ||
			    o->sp.temperature < 0)
				goto bad;
			break;
		case 'K':
			if (ec_cli_parse_uint(optarg, &o->sp.top_k) < 0)
				goto bad;
			break;
		case 'P':
			if (parse_float(optarg, &o->sp.top_p) < 0 ||
			    !(o->sp.top_p > 0 && o->sp.top_p <= 1))
				goto bad;
			break;
		case 'S':
			seed = strtoull(optarg, &end, 10);
			if (end == optarg || *end)
				goto bad;
			o->sp.seed = seed;
			break;
		case 'R':
			if (parse_float(optarg, &o->sp.repeat_penalty) < 0 ||
			    o->sp.repeat_penalty <= 0)
				goto bad;
			break;
		case 'L':
			if (ec_cli_parse_uint(optarg, &o->sp.repeat_last_n) < 0)
				goto bad;
			break;
		case 'C':
			o->chat = 1;
			break;
		case 'c':
			if (ec_cli_parse_uint(optarg, &o->n_ctx) < 0)
				goto bad;
			break;
		case 't':
			if (ec_cli_parse_uint(optarg, &o->threads) < 0)
				goto bad;
			break;
		case 'J':
			o->stats_json = optarg;
			break;
		case 'B':
			o->backend = optarg;
			break;
		case 'V':
			o->vram_budget = optarg;
			break;
		case 'h':
			usage(stdout);
			exit(0);
		default:
			usage(stderr);
			return -1;
		}
	}
	if (optind != argc) {
		fprintf(stderr, "expertcache run: unexpected argument '%s'\n",
			argv[optind]);
		return -1;
	}
	if (o->prompt && o->prompt_file) {
		fprintf(stderr, "expertcache run: give -p or -f, not both\n");
		return -1;
	}
	return 0;
bad:
	if (li >= 0)
		fprintf(stderr, "expertcache run: invalid value '%s' for --%s\n",
			optarg, opts[li].name);
	else
		fprintf(stderr, "expertcache run: invalid value '%s' for -%c\n",
			optarg, c);
	return -1;
}

static char *read_file(const char *path, size_t *len)
{
	FILE *f = fopen(path, "rb");
	char *buf = NULL;
	size_t cap = 0, n = 0, r;

	if (!f)
		return NULL;
	do {
		if (n + 4096 > cap) {
			char *t = realloc(buf, cap = cap * 2 + 8192);

			if (!t) {
				free(buf);
				fclose(f);
				return NULL;
			}
			buf = t;
		}
		r = fread(buf + n, 1, cap - n - 1, f);
		n += r;
	} while (r > 0);
	fclose(f);
	buf[n] = 0;
	*len = n;
	return buf;
}

/* Qwen's ChatML, the template Qwen3 GGUFs carry (we do not run Jinja). */
static char *chat_wrap(const char *prompt, size_t len, size_t *out_len)
{
	static const char pre[] = "<|im_start|>user\n";
	static const char post[] = "<|im_end|>\n<|im_start|>assistant\n";
	char *s = malloc(sizeof(pre) + len + sizeof(post));

	if (!s)
		return NULL;
	memcpy(s, pre, sizeof(pre) - 1);
	memcpy(s + sizeof(pre) - 1, prompt, len);
	memcpy(s + sizeof(pre) - 1 + len, post, sizeof(post));
	*out_len = sizeof(pre) - 1 + len + sizeof(post) - 1;
	return s;
}

static void on_load_progress(void *arg, uint64_t done, uint64_t total)
{
	ec_progress_update(arg, done, total);
}

struct stream_out {
	struct ec_tok_stream *st;
};

static int on_token(void *priv, int32_t id)
{
	struct stream_out *so = priv;
	const char *text;
	size_t len;

	if (ec_tok_stream_push(so->st, id, &text, &len) == 0 && len) {
		fwrite(text, 1, len, stdout);
		fflush(stdout);
	}
	return 0;
}

static int load_tokenizer(const struct ec_model *m, const char *model_path,
			  struct ec_tokenizer **tok)
{
	char path[PATH_MAX];
	const char *slash;

	if (m->gguf)
		return ec_tok_load_gguf(m->gguf, tok);
	slash = strrchr(model_path, '/');
	if (strstr(model_path, ".json") && slash)
		snprintf(path, sizeof(path), "%.*s/tokenizer.json",
			 (int)(slash - model_path), model_path);
	else
		snprintf(path, sizeof(path), "%s/tokenizer.json", model_path);
	return ec_tok_load_json(path, tok);
}

static void write_stats(const char *path, const struct ec_gen_stats *st,
			struct ec_backend *be, uint32_t threads,
			struct run_storage *rs, struct ec_ctx *ctx,
			const struct ec_model *m)
{
	struct rusage ru;
	json_t *o = json_object();

	if (!o)
		return;
	getrusage(RUSAGE_SELF, &ru);
	json_object_set_new(o, "prompt_tokens",
			    json_integer(st->prompt_tokens));
	json_object_set_new(o, "generated_tokens",
			    json_integer(st->generated_tokens));
	json_object_set_new(o, "prompt_tok_per_s",
			    json_real(st->prompt_seconds > 0 ?
					      st->prompt_tokens /
						      st->prompt_seconds :
					      0.0));
	json_object_set_new(o, "decode_tok_per_s",
			    json_real(st->decode_seconds > 0 ?
					      st->decode_steps /
						      st->decode_seconds :
					      0.0));
	json_object_set_new(o, "prompt_seconds",
			    json_real(st->prompt_seconds));
	json_object_set_new(o, "decode_seconds",
			    json_real(st->decode_seconds));
	json_object_set_new(o, "stopped_at_eos",
			    json_boolean(st->stopped_at_eos));
	json_object_set_new(o, "peak_rss_bytes",
			    json_integer((json_int_t)ru.ru_maxrss * 1024));
	json_object_set_new(o, "backend", json_string(be->ops->name));
	if (ec_backend_cpu_isa(be))
		json_object_set_new(o, "cpu_isa",
				    json_string(ec_backend_cpu_isa(be)));
	json_object_set_new(o, "threads", json_integer(threads));
	ec_cli_backend_stats_json(be, o);	/* CUDA: decode and prefill */
	ec_run_storage_stats(rs, ctx, o,
			     st->prompt_seconds + st->decode_seconds);
	ec_routed_stats_json(o, m, ctx);	/* for profile --from-stats */
	if (json_dump_file(o, path, JSON_COMPACT) < 0)
		fprintf(stderr, "expertcache run: cannot write %s\n", path);
	json_decref(o);
}

int ec_cmd_run(int argc, char **argv)
{
	struct run_opts o = {
		.n_predict = 128,
		.sp = { .temperature = 0.0f, .top_k = 40, .top_p = 0.95f,
			.seed = 42, .repeat_penalty = 1.0f,
			.repeat_last_n = 64 },
	};
	char model_buf[PATH_MAX];
	struct ec_model *m = NULL;
	struct ec_tokenizer *tok = NULL;
	struct ec_backend *be = NULL;
	struct ec_ctx *ctx = NULL;
	struct ec_sampler *smp = NULL;
	struct stream_out so = { 0 };
	struct ec_ctx_params cp = { 0 };
	struct ec_gen_stats st;
	struct run_storage *rs = NULL;
	char *text = NULL, *wrapped = NULL;
	int32_t *ids = NULL;
	uint8_t *is_stop = NULL;
	size_t len = 0, n_ids = 0;
	const char *tail;
	int ret, rc = 1;

	if (parse_args(argc, argv, &o) < 0)
		return 2;
	if (!o.model) {
		if (ec_cli_default_model(model_buf, sizeof(model_buf)) < 0) {
			fprintf(stderr, "expertcache run: no -m given and no "
					"bundled model found in models/\n");
			return 1;
		}
		o.model = model_buf;
	}
	if (o.prompt_file) {
		text = read_file(o.prompt_file, &len);
		if (!text) {
			fprintf(stderr, "expertcache run: cannot read %s\n",
				o.prompt_file);
			return 1;
		}
	} else {
		text = strdup(o.prompt ? o.prompt : "def fibonacci(n):\n");
		len = strlen(text);
	}
	ret = ec_model_open(o.model, &m);
	if (ret < 0) {
		ec_cli_error(o.model, ret);
		goto out;
	}
	{
		struct ec_progress pr;

		ec_progress_start(&pr, "loading model");
		ec_model_prefault(m, on_load_progress, &pr);
		ec_progress_done(&pr);
	}
	ret = load_tokenizer(m, o.model, &tok);
	if (ret < 0) {
		ec_cli_error("tokenizer", ret);
		goto out;
	}
	if (o.chat) {
		wrapped = chat_wrap(text, len, &len);
		if (!wrapped)
			goto out;
	}
	ret = ec_tok_encode(tok, wrapped ? wrapped : text, len, &ids, &n_ids);
	if (ret < 0) {
		ec_cli_error(o.prompt_file ? o.prompt_file : "prompt", ret);
		goto out;
	}
	if (!n_ids) {
		fprintf(stderr, "expertcache run: the prompt is empty\n");
		goto out;
	}
	cp.n_ctx = o.n_ctx ? o.n_ctx : (uint32_t)n_ids + o.n_predict;
	if (m->hp.n_ctx && cp.n_ctx > m->hp.n_ctx && !o.n_ctx)
		cp.n_ctx = m->hp.n_ctx;
	if (n_ids >= cp.n_ctx) {
		fprintf(stderr,
			"expertcache run: the prompt has %zu tokens but the "
			"context holds %u (the model was trained for %u); "
			"shorten the prompt\n",
			n_ids, cp.n_ctx, m->hp.n_ctx);
		goto out;
	}
	ret = ec_cli_backend_open("run", o.backend, o.vram_budget,
				  o.st.vram_prefetch, o.threads, m, &be);
	if (ret < 0)
		goto out;
	if (ec_run_storage_ctx_params(&o.st, &cp) < 0)
		goto out;
	ret = ec_ctx_create(m, be, &cp, &ctx);
	if (ret < 0) {
		ec_cli_error("context", ret);
		goto out;
	}
	if (ec_run_storage_attach(&o.st, m, ctx, &rs) < 0)
		goto out;
	ret = ec_sampler_create(&o.sp, m->hp.n_vocab, &smp);
	if (ret < 0) {
		ec_cli_error("sampler", ret);
		goto out;
	}
	is_stop = calloc(m->hp.n_vocab, 1);
	if (!is_stop)
		goto out;
	{
		static const char *const stops[] = { "<|endoftext|>",
						     "<|im_end|>" };
		int32_t id;

		for (size_t i = 0; i < 2; i++) {
			id = ec_tok_lookup(tok, stops[i], strlen(stops[i]));
			if (id >= 0 && (uint32_t)id < m->hp.n_vocab)
				is_stop[id] = 1;
		}
		id = ec_tok_eos_id(tok);
		if (id >= 0 && (uint32_t)id < m->hp.n_vocab)
			is_stop[id] = 1;
	}
	ret = ec_tok_stream_new(tok, EC_TOK_SKIP_SPECIAL, &so.st);
	if (ret < 0) {
		ec_cli_error("tokenizer", ret);
		goto out;
	}
	if (!o.chat) {
		fwrite(text, 1, len, stdout);
		fflush(stdout);
	}
	ret = ec_generate(ctx, smp, ids, (uint32_t)n_ids, o.n_predict,
			  is_stop, on_token, &so, &st);
	if (ec_tok_stream_flush(so.st, &tail, &len) == 0 && len)
		fwrite(tail, 1, len, stdout);
	printf("\n");
	fflush(stdout);
	if (ret < 0) {
		ec_cli_error("generation", ret);
		goto out;
	}
	fprintf(stderr,
		"[%u prompt tokens at %.1f tok/s, %u generated at %.1f tok/s%s]\n",
		st.prompt_tokens,
		st.prompt_seconds > 0 ? st.prompt_tokens / st.prompt_seconds : 0,
		st.generated_tokens,
		st.decode_seconds > 0 ? st.decode_steps / st.decode_seconds : 0,
		st.stopped_at_eos ? ", stopped at end of text" : "");
	if (o.stats_json)
		write_stats(o.stats_json, &st, be, o.threads, rs, ctx, m);
	rc = 0;
out:
	ec_tok_stream_free(so.st);
	free(is_stop);
	ec_sampler_free(smp);
	ec_run_storage_detach(rs, ctx);
	ec_ctx_free(ctx);
	if (be)
		be->ops->destroy(be);
	ec_tok_free(tok);
	free(ids);
	free(wrapped);
	free(text);
	ec_model_close(m);
	return rc;
}
