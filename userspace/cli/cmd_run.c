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

struct run_opts {
	const char *model;
	const char *prompt;
	const char *prompt_file;
	const char *stats_json;
	uint32_t n_predict;
	uint32_t threads;
	uint32_t n_ctx;
	int chat;
	struct ec_sampler_params sp;
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
		"  --chat                wrap the prompt in the model's chat "
		"template\n"
		"  -c, --ctx N           context length (default: prompt + N)\n"
		"  -t, --threads N       CPU threads (default: all online)\n"
		"  --stats-json FILE     write run statistics as one JSON "
		"object\n"
		"  -h, --help            this help\n");
}

static int parse_float(const char *s, float *out)
{
	char *end;

	*out = strtof(s, &end);
	return end == s || *end ? -1 : 0;
}

static int parse_args(int argc, char **argv, struct run_opts *o)
{
	static const struct option opts[] = {
		{ "model", required_argument, NULL, 'm' },
		{ "prompt", required_argument, NULL, 'p' },
		{ "file", required_argument, NULL, 'f' },
		{ "n-predict", required_argument, NULL, 'n' },
		{ "temp", required_argument, NULL, 'T' },
		{ "top-k", required_argument, NULL, 'K' },
		{ "top-p", required_argument, NULL, 'P' },
		{ "seed", required_argument, NULL, 'S' },
		{ "chat", no_argument, NULL, 'C' },
		{ "ctx", required_argument, NULL, 'c' },
		{ "threads", required_argument, NULL, 't' },
		{ "stats-json", required_argument, NULL, 'J' },
		{ "help", no_argument, NULL, 'h' },
		{ 0 },
	};
	unsigned long long seed;
	char *end;
	int c;

	while ((c = getopt_long(argc, argv, "m:p:f:n:c:t:h", opts, NULL)) !=
	       -1) {
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
	fprintf(stderr, "expertcache run: invalid value '%s' for --%s\n",
		optarg, argv[optind - 1] + (argv[optind - 1][1] == '-' ? 2 : 1));
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
			const char *isa, uint32_t threads)
{
	struct rusage ru;
	FILE *f = fopen(path, "w");

	if (!f) {
		fprintf(stderr, "expertcache run: cannot write %s\n", path);
		return;
	}
	getrusage(RUSAGE_SELF, &ru);
	fprintf(f,
		"{\"prompt_tokens\": %u, \"generated_tokens\": %u, "
		"\"prompt_tok_per_s\": %.3f, \"decode_tok_per_s\": %.3f, "
		"\"prompt_seconds\": %.6f, \"decode_seconds\": %.6f, "
		"\"stopped_at_eos\": %s, \"peak_rss_bytes\": %lld, "
		"\"backend\": \"cpu\", \"cpu_isa\": \"%s\", \"threads\": %u}\n",
		st->prompt_tokens, st->generated_tokens,
		st->prompt_seconds > 0 ? st->prompt_tokens / st->prompt_seconds
				       : 0.0,
		st->decode_seconds > 0 ? st->decode_steps / st->decode_seconds
				       : 0.0,
		st->prompt_seconds, st->decode_seconds,
		st->stopped_at_eos ? "true" : "false",
		(long long)ru.ru_maxrss * 1024, isa, threads);
	fclose(f);
}

int ec_cmd_run(int argc, char **argv)
{
	struct run_opts o = {
		.n_predict = 128,
		.sp = { .temperature = 0.0f, .top_k = 40, .top_p = 0.95f,
			.seed = 42 },
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
	ret = ec_backend_cpu_create(o.threads, &be);
	if (ret < 0) {
		ec_cli_error("cpu backend", ret);
		goto out;
	}
	ret = ec_ctx_create(m, be, &cp, &ctx);
	if (ret < 0) {
		ec_cli_error("context", ret);
		goto out;
	}
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
		write_stats(o.stats_json, &st, ec_backend_cpu_isa(be),
			    o.threads);
	rc = 0;
out:
	ec_tok_stream_free(so.st);
	free(is_stop);
	ec_sampler_free(smp);
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
