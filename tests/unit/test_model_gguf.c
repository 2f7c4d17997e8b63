// SPDX-License-Identifier: MIT
/* GGUF model loader: tiny models of each architecture written to /tmp. */
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "ec_error.h"
#include "ec_gguf.h"
#include "ec_model.h"
#include "ec_test.h"
#include "gguf_build.h"

/* What to put in a test model (sizes tiny; every tensor F32 unless noted) */
struct spec {
	const char *arch;
	uint32_t n_layer, n_embd, n_head, n_head_kv, head_dim, n_expert,
		n_used, n_ff, n_vocab, n_ff_sh;
	bool key_length;	/* write attention.key_length */
	bool expert_ff_key;	/* expert_feed_forward_length, else ffn len */
	bool shexp_ff_key;	/* write expert_shared_feed_forward_length */
	bool tokens;		/* tokenizer.ggml.tokens + bos/eos */
	bool output;		/* output.weight, else tied */
	bool bias, shexp, split;
	int qk_norm;		/* 0 none, 1 per head, 2 full */
	int weights_norm;	/* -1 absent */
	uint32_t expert_type;	/* EC_F32 or EC_Q8_0 */
	float clamp_kqv;	/* 0: no key */
	const char *drop_tensor, *drop_key;
	uint64_t bad_q_rows;	/* != 0: attn_q of layer 0 gets this many */
	uint32_t embd_rows;	/* != 0: token_embd rows, else n_vocab */
};

static const struct spec qwen3 = {
	.arch = "qwen3moe", .n_layer = 2, .n_embd = 8, .n_head = 2,
	.n_head_kv = 1, .head_dim = 6, .n_expert = 4, .n_used = 2, .n_ff = 5,
	.n_vocab = 10, .key_length = true, .expert_ff_key = true,
	.tokens = true, .qk_norm = 1, .weights_norm = -1,
	.expert_type = EC_F32,
};

static char path[256];
static void *bufs[512];
static int n_bufs;

/* A tensor whose f32 elements are base, base + 1, ... (or bytes for Q8_0) */
static void add(struct gguf_build *b, const char *name, uint32_t type,
		uint32_t n_dims, uint64_t ne0, uint64_t ne1, uint64_t ne2)
{
	const uint64_t ne[3] = { ne0, ne1, ne2 };
	uint64_t n = ne0 * ne1 * ne2, i, bytes;
	float *f;

	bytes = type == EC_Q8_0 ? n / 32 * 34 : n * 4;
	f = malloc(bytes);
	for (i = 0; type == EC_F32 && i < n; i++)
		f[i] = (float)(b->n_t * 100000 + i);
	for (i = 0; type != EC_F32 && i < bytes; i++)
		((uint8_t *)f)[i] = (uint8_t)(b->n_t + i);
	bufs[n_bufs++] = f;
	gb_tensor(b, name, type, n_dims, ne, f, bytes);
}

static void key_u32(struct gguf_build *b, const struct spec *s,
		    const char *suffix, uint32_t v)
{
	char key[128];

	snprintf(key, sizeof(key), "%s.%s", s->arch, suffix);
	if (!s->drop_key || strcmp(s->drop_key, key))
		gb_kv_u32(b, key, v);
}

static void write_keys(struct gguf_build *b, const struct spec *s)
{
	static const char *const tok[] = { "a", "b", "c", "d", "e",
					   "f", "g", "h", "i", "j" };
	char key[128];

	gb_kv_str(b, "general.architecture", s->arch);
	key_u32(b, s, "block_count", s->n_layer);
	key_u32(b, s, "context_length", 128);
	key_u32(b, s, "embedding_length", s->n_embd);
	key_u32(b, s, "attention.head_count", s->n_head);
	key_u32(b, s, "attention.head_count_kv", s->n_head_kv);
	if (s->key_length)
		key_u32(b, s, "attention.key_length", s->head_dim);
	key_u32(b, s, "expert_count", s->n_expert);
	key_u32(b, s, "expert_used_count", s->n_used);
	key_u32(b, s, s->expert_ff_key ? "expert_feed_forward_length"
				       : "feed_forward_length", s->n_ff);
	if (s->shexp_ff_key)
		key_u32(b, s, "expert_shared_feed_forward_length", s->n_ff_sh);
	snprintf(key, sizeof(key), "%s.rope.freq_base", s->arch);
	gb_kv_f32(b, key, 1000000.0f);
	snprintf(key, sizeof(key), "%s.attention.layer_norm_rms_epsilon",
		 s->arch);
	gb_kv_f32(b, key, 1e-6f);
	if (s->clamp_kqv) {
		snprintf(key, sizeof(key), "%s.attention.clamp_kqv", s->arch);
		gb_kv_f32(b, key, s->clamp_kqv);
	}
	if (s->weights_norm >= 0) {
		snprintf(key, sizeof(key), "%s.expert_weights_norm", s->arch);
		gb_kv_bool(b, key, s->weights_norm);
	}
	if (s->tokens) {
		gb_kv_arr_str(b, "tokenizer.ggml.tokens", tok, s->n_vocab);
		gb_kv_u32(b, "tokenizer.ggml.bos_token_id", 1);
		gb_kv_u32(b, "tokenizer.ggml.eos_token_id", 2);
	}
}

static void write_layer(struct gguf_build *b, const struct spec *s,
			uint32_t l)
{
	static const char *const part[] = { "gate", "up", "down" };
	uint64_t q = s->n_head * s->head_dim, kv = s->n_head_kv * s->head_dim;
	uint32_t p, e;
	char n[96];

#define L(fmt, ...) (snprintf(n, sizeof(n), "blk.%u." fmt, l, ##__VA_ARGS__), n)
	add(b, L("attn_norm.weight"), EC_F32, 1, s->n_embd, 1, 1);
	add(b, L("attn_q.weight"), EC_F32, 2, s->n_embd,
	    l == 0 && s->bad_q_rows ? s->bad_q_rows : q, 1);
	add(b, L("attn_k.weight"), EC_F32, 2, s->n_embd, kv, 1);
	add(b, L("attn_v.weight"), EC_F32, 2, s->n_embd, kv, 1);
	add(b, L("attn_output.weight"), EC_F32, 2, q, s->n_embd, 1);
	if (s->bias) {
		add(b, L("attn_q.bias"), EC_F32, 1, q, 1, 1);
		add(b, L("attn_k.bias"), EC_F32, 1, kv, 1, 1);
		add(b, L("attn_v.bias"), EC_F32, 1, kv, 1, 1);
	}
	if (s->qk_norm) {
		add(b, L("attn_q_norm.weight"), EC_F32, 1,
		    s->qk_norm == 1 ? s->head_dim : q, 1, 1);
		add(b, L("attn_k_norm.weight"), EC_F32, 1,
		    s->qk_norm == 1 ? s->head_dim : kv, 1, 1);
	}
	add(b, L("ffn_norm.weight"), EC_F32, 1, s->n_embd, 1, 1);
	add(b, L("ffn_gate_inp.weight"), EC_F32, 2, s->n_embd, s->n_expert, 1);
	for (p = 0; p < 3; p++) {
		uint64_t in = p == 2 ? s->n_ff : s->n_embd;
		uint64_t out = p == 2 ? s->n_embd : s->n_ff;

		if (!s->split) {
			add(b, L("ffn_%s_exps.weight", part[p]),
			    s->expert_type, 3, in, out, s->n_expert);
			continue;
		}
		for (e = 0; e < s->n_expert; e++)
			add(b, L("ffn_%s.%u.weight", part[p], e),
			    s->expert_type, 2, in, out, 1);
	}
	if (s->shexp) {
		add(b, L("ffn_gate_inp_shexp.weight"), EC_F32, 1, s->n_embd,
		    1, 1);
		add(b, L("ffn_gate_shexp.weight"), EC_F32, 2, s->n_embd,
		    s->n_ff_sh, 1);
		add(b, L("ffn_up_shexp.weight"), EC_F32, 2, s->n_embd,
		    s->n_ff_sh, 1);
		add(b, L("ffn_down_shexp.weight"), EC_F32, 2, s->n_ff_sh,
		    s->n_embd, 1);
	}
#undef L
}

/* Write the model to `path`; returns the file size. */
static size_t write_model(const struct spec *s)
{
	struct gguf_build b;
	size_t len;
	uint8_t *img;
	uint32_t l;
	FILE *f;

	gb_init(&b, 3, 32);
	write_keys(&b, s);
	add(&b, "token_embd.weight", EC_F32, 2, s->n_embd,
	    s->embd_rows ? s->embd_rows : s->n_vocab, 1);
	add(&b, "output_norm.weight", EC_F32, 1, s->n_embd, 1, 1);
	if (s->output)
		add(&b, "output.weight", EC_F32, 2, s->n_embd, s->n_vocab, 1);
	for (l = 0; l < s->n_layer; l++)
		write_layer(&b, s, l);
	if (s->drop_tensor && !gb_remove(&b, s->drop_tensor))
		fprintf(stderr, "spec drops unknown tensor %s\n",
			s->drop_tensor);
	img = gb_finish(&b, &len);
	f = fopen(path, "wb");
	if (!f || fwrite(img, 1, len, f) != len)
		perror(path);
	if (f)
		fclose(f);
	free(img);
	gb_free(&b);
	while (n_bufs)
		free(bufs[--n_bufs]);
	return len;
}

/* Open a model written from `s`; expect `err` (0 = success). */
static struct ec_model *open_spec(const struct spec *s, int err,
				  const char *want, const char *what)
{
	struct ec_model *m = NULL;
	int ret;

	write_model(s);
	ret = ec_model_open(path, &m);
	EC_CHECK(ret == err && (!want || (strstr(ec_error_msg(), want) &&
					  strstr(ec_error_msg(), path))),
		 "%s: got %d '%s', want %d with '%s'", what, ret,
		 ec_error_msg(), err, want ? want : "");
	if (ret && m)
		EC_CHECK(0, "%s: model returned on error", what);
	if (ret || err) {	/* callers only use models they expect */
		ec_model_close(m);
		return NULL;
	}
	return m;
}

/* Each expert view is slice e of its stacked tensor, or its own tensor. */
static void check_experts(const struct ec_model *m, const struct spec *s)
{
	static const char *const part[] = { "gate", "up", "down" };
	const struct ec_gguf_tensor *gt;
	uint32_t l, e, p, bad = 0;
	uint64_t per_expert = 0;
	char name[96];

	for (l = 0; l < s->n_layer; l++) {
		for (e = 0; e < s->n_expert; e++) {
			for (p = 0; p < 3; p++) {
				const struct ec_tensor *w =
					&m->layers[l].experts[e].w[p];
				uint64_t in = p == 2 ? s->n_ff : s->n_embd;
				uint64_t out = p == 2 ? s->n_embd : s->n_ff;
				uint64_t nb = s->expert_type == EC_Q8_0
						      ? in * out / 32 * 34
						      : in * out * 4;
				uint64_t at;

				if (s->split)
					snprintf(name, sizeof(name),
						 "blk.%u.ffn_%s.%u.weight", l,
						 part[p], e);
				else
					snprintf(name, sizeof(name),
						 "blk.%u.ffn_%s_exps.weight", l,
						 part[p]);
				gt = ec_gguf_find_tensor(m->gguf, name);
				if (!gt) {
					bad++;
					continue;
				}
				at = m->gguf->data_offset + gt->offset +
				     (s->split ? 0 : e * nb);
				if (w->n_dims != 2 || w->ne[0] != in ||
				    w->ne[1] != out || w->ne[2] != 1 ||
				    w->type != s->expert_type ||
				    w->nbytes != nb || w->offset != at ||
				    w->file != 0 ||
				    w->data != m->files[0].map + at)
					bad++;
				/* F32 values were numbered per tensor */
				if (s->expert_type == EC_F32 && !s->split &&
				    ((const float *)w->data)[0] !=
					    ((const float *)m->files[0].map +
					     (at - e * nb) / 4)[0] +
						    (float)(e * in * out))
					bad++;
				if (l == 0 && e == 0)
					per_expert += nb;
			}
		}
	}
	EC_CHECK(bad == 0, "%s: %u expert views wrong", s->arch, bad);
	EC_CHECK(ec_model_expert_bytes(m, 1, 3) == per_expert &&
			 ec_model_total_expert_bytes(m) ==
				 per_expert * s->n_layer * s->n_expert,
		 "%s: expert bytes", s->arch);
}

static void check_common(const struct ec_model *m, const struct spec *s)
{
	const struct ec_hparams *hp = &m->hp;
	struct ec_extent ext[EC_EXPERT_NPARTS];
	const struct ec_tensor *g;
	int n;

	EC_CHECK(m->format == EC_FORMAT_GGUF && m->gguf && m->n_files == 1 &&
			 !strcmp(m->arch_name, s->arch),
		 "%s: format/arch", s->arch);
	EC_CHECK(hp->n_layer == s->n_layer && hp->n_embd == s->n_embd &&
			 hp->n_head == s->n_head &&
			 hp->n_head_kv == s->n_head_kv &&
			 hp->head_dim == s->head_dim &&
			 hp->n_vocab == s->n_vocab && hp->n_ctx == 128 &&
			 hp->n_expert == s->n_expert &&
			 hp->n_expert_used == s->n_used &&
			 hp->n_ff_exp == s->n_ff &&
			 hp->n_ff_shexp == (s->shexp ? s->n_ff_sh : 0),
		 "%s: sizes: layers %u embd %u heads %u/%u hd %u vocab %u "
		 "experts %u/%u ff %u sh %u", s->arch, hp->n_layer, hp->n_embd,
		 hp->n_head, hp->n_head_kv, hp->head_dim, hp->n_vocab,
		 hp->n_expert, hp->n_expert_used, hp->n_ff_exp, hp->n_ff_shexp);
	EC_CHECK(hp->rope_theta == 1000000.0f && hp->rms_eps == 1e-6f &&
			 hp->clip_qkv == s->clamp_kqv,
		 "%s: floats", s->arch);
	EC_CHECK(hp->bos_token == (s->tokens ? 1 : -1) &&
			 hp->eos_token == (s->tokens ? 2 : -1),
		 "%s: bos %d eos %d", s->arch, hp->bos_token, hp->eos_token);
	EC_CHECK(hp->tied_embeddings == !s->output &&
			 (m->output.data == m->tok_embd.data) == !s->output &&
			 m->output.ne[1] == s->n_vocab,
		 "%s: output/tied", s->arch);
	EC_CHECK(hp->attn_bias == s->bias && (!s->bias ||
			 m->layers[1].bk.ne[0] == s->n_head_kv * s->head_dim),
		 "%s: bias", s->arch);
	g = &m->layers[1].wq;
	EC_CHECK(g->ne[0] == s->n_embd && g->ne[1] == s->n_head * s->head_dim &&
			 g->offset + g->nbytes <= m->files[0].size &&
			 g->data == m->files[0].map + g->offset,
		 "%s: blk.1.attn_q view", s->arch);
	check_experts(m, s);
	n = ec_model_expert_extents(m, 1, 2, ext);
	EC_CHECK(n == 3 && ext[0].offset ==
			 m->layers[1].experts[2].w[EC_EXPERT_GATE].offset,
		 "%s: extents (%d)", s->arch, n);
}

static void test_archs(void)
{
	struct ec_model *m;
	struct spec s;

	/* qwen3moe: tied output, per-head q/k norm, top-k renormalised */
	m = open_spec(&qwen3, 0, NULL, "qwen3moe");
	if (m) {
		check_common(m, &qwen3);
		EC_CHECK(m->hp.arch == EC_ARCH_QWEN3_MOE &&
				 m->hp.rope_style == EC_ROPE_NEOX &&
				 m->hp.qk_norm == EC_QK_NORM_HEAD &&
				 m->hp.norm_topk_prob &&
				 m->layers[0].k_norm.ne[0] == 6,
			 "qwen3moe style");
		ec_model_close(m);
	}

	/* output present, no tokenizer, explicit expert_weights_norm false */
	s = qwen3;
	s.output = true;
	s.tokens = false;
	s.weights_norm = 0;
	s.n_vocab = 12;
	m = open_spec(&s, 0, NULL, "qwen3moe untied");
	if (m) {
		check_common(m, &s);
		EC_CHECK(!m->hp.norm_topk_prob, "explicit weights_norm");
		ec_model_close(m);
	}

	/* Q8_0 experts: slices of a quantised stack */
	s = qwen3;
	s.n_embd = 32;
	s.n_head = 4;
	s.head_dim = 8;
	s.n_ff = 64;
	s.expert_type = EC_Q8_0;
	m = open_spec(&s, 0, NULL, "qwen3moe Q8_0 experts");
	if (m) {
		check_common(m, &s);
		ec_model_close(m);
	}

	/* olmoe: full q/k norm, no key_length (n_embd / n_head), clamp */
	s = qwen3;
	s.arch = "olmoe";
	s.key_length = false;
	s.head_dim = 4;
	s.qk_norm = 2;
	s.clamp_kqv = 8.0f;
	m = open_spec(&s, 0, NULL, "olmoe");
	if (m) {
		check_common(m, &s);
		EC_CHECK(m->hp.arch == EC_ARCH_OLMOE &&
				 m->hp.qk_norm == EC_QK_NORM_FULL &&
				 m->layers[1].q_norm.ne[0] == 8 &&
				 m->layers[1].k_norm.ne[0] == 4 &&
				 !m->hp.norm_topk_prob &&
				 m->hp.rope_style == EC_ROPE_NEOX,
			 "olmoe style");
		ec_model_close(m);
	}

	/* qwen2moe: q/k/v biases and a shared expert */
	s = qwen3;
	s.arch = "qwen2moe";
	s.qk_norm = 0;
	s.bias = true;
	s.shexp = true;
	s.n_ff_sh = 7;
	s.shexp_ff_key = true;
	m = open_spec(&s, 0, NULL, "qwen2moe");
	if (m) {
		check_common(m, &s);
		EC_CHECK(m->hp.arch == EC_ARCH_QWEN2_MOE &&
				 m->hp.qk_norm == EC_QK_NORM_NONE &&
				 !m->hp.norm_topk_prob &&
				 m->layers[1].sh_router.ne[0] == 8 &&
				 m->layers[1].sh_down.ne[0] == 7 &&
				 m->layers[1].sh_up.ne[1] == 7,
			 "qwen2moe style");
		ec_model_close(m);
	}
	s.shexp_ff_key = false;	/* size from ffn_up_shexp instead */
	m = open_spec(&s, 0, NULL, "qwen2moe without shexp size key");
	if (m) {
		EC_CHECK(m->hp.n_ff_shexp == 7, "shexp size from tensor");
		ec_model_close(m);
	}

	/* Mixtral: llama + experts, feed_forward_length, NORM rope */
	s = qwen3;
	s.arch = "llama";
	s.qk_norm = 0;
	s.expert_ff_key = false;
	s.head_dim = 4;
	m = open_spec(&s, 0, NULL, "mixtral");
	if (m) {
		check_common(m, &s);
		EC_CHECK(m->hp.arch == EC_ARCH_MIXTRAL &&
				 m->hp.rope_style == EC_ROPE_NORM &&
				 m->hp.norm_topk_prob,
			 "mixtral style");
		ec_model_close(m);
	}
	s.split = true;	/* pre-2024 files: one tensor per expert */
	m = open_spec(&s, 0, NULL, "mixtral, split experts");
	if (m) {
		check_common(m, &s);
		ec_model_close(m);
	}
}

static void test_errors(void)
{
	struct ec_model *m;
	struct spec s;

	s = qwen3;
	s.drop_tensor = "blk.1.ffn_up_exps.weight";
	open_spec(&s, -EC_EMISSING, "'blk.1.ffn_up_exps.weight'",
		  "missing stacked expert");
	s.drop_tensor = "blk.0.attn_k_norm.weight";
	open_spec(&s, -EC_EMISSING, "'blk.0.attn_k_norm.weight'",
		  "missing k norm");
	s.drop_tensor = "output_norm.weight";
	open_spec(&s, -EC_EMISSING, "'output_norm.weight'",
		  "missing output norm");
	s.drop_tensor = NULL;
	s.drop_key = "qwen3moe.block_count";
	open_spec(&s, -EC_EMISSING, "'qwen3moe.block_count'", "missing key");
	s.drop_key = NULL;
	s.bad_q_rows = 13;
	open_spec(&s, -EC_ESHAPE, "'blk.0.attn_q.weight' has shape [8, 13",
		  "wrong attn_q shape");
	s.bad_q_rows = 0;
	s.embd_rows = 11;
	open_spec(&s, -EC_ESHAPE, "token_embd.weight has 11 rows",
		  "vocabulary / embedding mismatch");
	s.embd_rows = 0;

	s = qwen3;
	s.arch = "qwen2moe";
	s.qk_norm = 0;
	s.drop_tensor = "blk.1.attn_v.bias";
	s.bias = true;
	open_spec(&s, -EC_EMISSING, "'blk.1.attn_v.bias'", "missing bias");

	s = qwen3;
	s.arch = "llama";
	s.qk_norm = 0;
	s.head_dim = 4;
	s.drop_key = "llama.expert_count";
	open_spec(&s, -EC_EUNSUPPORTED, "'llama' without experts",
		  "dense llama");
	s.drop_key = NULL;
	s.arch = "gpt2";
	open_spec(&s, -EC_EUNSUPPORTED, "'gpt2'", "unknown arch");

	s = qwen3;
	s.split = true;	/* only llama files may split experts */
	open_spec(&s, -EC_EMISSING, "'blk.0.ffn_gate_exps.weight'",
		  "split experts outside llama");

	/* a truncated file is a format error naming the file */
	s = qwen3;
	if (truncate(path, (off_t)write_model(&s) - 100) == 0) {
		int ret = ec_model_open(path, &m);

		EC_CHECK(ret == -EC_EFORMAT && strstr(ec_error_msg(), path) &&
				 !m,
			 "truncated model: %d %s", ret, ec_error_msg());
	}
	EC_CHECK(ec_model_open("/nonexistent/x.gguf", &m) == -ENOENT && !m,
		 "missing file");
}

/* The gguf-py-written seed (names from gguf-py's constants) must load. */
static void test_gguf_py_model(void)
{
	const char *p = "tests/fuzz/corpus/gguf/tiny_qwen3moe.gguf";
	struct ec_model *m = NULL;
	int ret;

	if (access(p, R_OK)) {
		EC_SKIP("%s not found (run from the repository root)", p);
		return;
	}
	ret = ec_model_open(p, &m);
	EC_CHECK(ret == 0, "%s: %d %s", p, ret, ec_error_msg());
	if (!m)
		return;
	/* make_gguf_seeds.py: N_LAYER, N_EMBD, ... */
	EC_CHECK(m->hp.arch == EC_ARCH_QWEN3_MOE && m->hp.n_layer == 2 &&
			 m->hp.n_embd == 8 && m->hp.n_head == 2 &&
			 m->hp.n_head_kv == 1 && m->hp.head_dim == 4 &&
			 m->hp.n_expert == 4 && m->hp.n_expert_used == 2 &&
			 m->hp.n_ff_exp == 6 && m->hp.n_vocab == 10 &&
			 !m->hp.tied_embeddings && m->hp.bos_token == 1 &&
			 m->hp.eos_token == 2 && m->hp.rms_eps == 1e-6f &&
			 m->hp.qk_norm == EC_QK_NORM_HEAD,
		 "%s: hparams", p);
	EC_CHECK(m->layers[1].experts[3].w[EC_EXPERT_DOWN].ne[0] == 6 &&
			 m->layers[1].experts[3].w[EC_EXPERT_DOWN].ne[1] == 8,
		 "%s: expert view", p);
	ec_model_close(m);
}

int main(void)
{
	snprintf(path, sizeof(path), "/tmp/ec_test_model_gguf_%d.gguf",
		 (int)getpid());
	test_archs();
	test_errors();
	test_gguf_py_model();
	unlink(path);
	return ec_test_done();
}
