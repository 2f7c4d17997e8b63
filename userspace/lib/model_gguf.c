// SPDX-License-Identifier: MIT
/* GGUF model loader: llama.cpp's key and tensor names -> struct ec_model. */
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ec_error.h"
#include "ec_gguf.h"
#include "ec_model.h"

/* Beyond these the file is not a model we can run (as ec_model_validate). */
#define GGUF_MAX_LAYERS 4096
#define GGUF_MAX_EXPERTS 65536

struct gguf_load {
	struct ec_model *m;
	const struct ec_gguf *g;
	const char *path;
	uint32_t file;
};

/* "{arch}.suffix", as llama.cpp's LLM_KV names them */
static void arch_key(const struct gguf_load *ld, const char *suffix,
		     char key[128])
{
	snprintf(key, 128, "%s.%s", ld->m->arch_name, suffix);
}

/* key_*: absent optional keys take `def`. */

static int key_u32(const struct gguf_load *ld, const char *suffix,
		   bool required, uint32_t def, uint32_t *out)
{
	char key[128];
	int ret;

	arch_key(ld, suffix, key);
	ret = ec_gguf_get_u32(ld->g, key, out);
	if (ret == -EC_EMISSING && !required) {
		*out = def;
		return 0;
	}
	return ret;
}

static int key_f32(const struct gguf_load *ld, const char *suffix,
		   bool required, float def, float *out)
{
	char key[128];
	int ret;

	arch_key(ld, suffix, key);
	ret = ec_gguf_get_f32(ld->g, key, out);
	if (ret == -EC_EMISSING && !required) {
		*out = def;
		return 0;
	}
	return ret;
}

static int key_token(const struct gguf_load *ld, const char *key,
		     int32_t *out)
{
	int ret = ec_gguf_get_i32(ld->g, key, out);

	if (ret == -EC_EMISSING) {
		*out = -1;
		return 0;
	}
	return ret;
}

/*
 * Tensor `fmt...` with shape [ne0, ne1, ne2] (ggml order; trailing 1s are
 * implied, 0 means any).  Returns 0 with *out filled, 1 when absent and
 * optional (*out zeroed), or a negative error.
 */
__attribute__((format(printf, 7, 8)))
static int load_tensor(const struct gguf_load *ld, struct ec_tensor *out,
		       bool required, uint64_t ne0, uint64_t ne1,
		       uint64_t ne2, const char *fmt, ...)
{
	const uint64_t want[EC_MAX_DIMS] = { ne0, ne1, ne2, 1 };
	const struct ec_gguf_tensor *t;
	char name[EC_GGUF_MAX_NAME + 16];
	va_list ap;
	int j;

	va_start(ap, fmt);
	vsnprintf(name, sizeof(name), fmt, ap);
	va_end(ap);
	memset(out, 0, sizeof(*out));
	t = ec_gguf_find_tensor(ld->g, name);
	if (!t) {
		if (!required)
			return 1;
		return ec_err(-EC_EMISSING, "%s: missing tensor '%s'",
			      ld->path, name);
	}
	for (j = 0; j < EC_MAX_DIMS; j++)
		if (want[j] && t->ne[j] != want[j])
			return ec_err(-EC_ESHAPE,
				      "%s: tensor '%s' has shape [%" PRIu64
				      ", %" PRIu64 ", %" PRIu64 ", %" PRIu64
				      "], expected [%" PRIu64 ", %" PRIu64
				      ", %" PRIu64 "] (ggml order)",
				      ld->path, name, t->ne[0], t->ne[1],
				      t->ne[2], t->ne[3], ne0, ne1, ne2);
	*out = ec_gguf_tensor_view(ld->g, t, ld->file);
	return 0;
}

static int load_arch(struct gguf_load *ld)
{
	struct ec_model *m = ld->m;
	struct ec_hparams *hp = &m->hp;
	uint32_t n_expert;
	int ret;

	ret = ec_gguf_get_str_copy(ld->g, "general.architecture",
				   m->arch_name, sizeof(m->arch_name));
	if (ret)
		return ret;
	ret = key_u32(ld, "expert_count", false, 0, &n_expert);
	if (ret)
		return ret;
	if (!strcmp(m->arch_name, "qwen3moe")) {
		hp->arch = EC_ARCH_QWEN3_MOE;
	} else if (!strcmp(m->arch_name, "qwen2moe")) {
		hp->arch = EC_ARCH_QWEN2_MOE;
	} else if (!strcmp(m->arch_name, "olmoe")) {
		hp->arch = EC_ARCH_OLMOE;
	} else if (!strcmp(m->arch_name, "llama") && n_expert) {
		hp->arch = EC_ARCH_MIXTRAL;
	} else {
		return ec_err(-EC_EUNSUPPORTED,
			      "%s: architecture '%s'%s is not supported "
			      "(qwen3moe, qwen2moe, olmoe, llama with experts)",
			      ld->path, m->arch_name,
			      n_expert ? "" : " without experts");
	}
	hp->n_expert = n_expert;
	/* llama.cpp's convert_hf_to_gguf permutes Q/K rows for llama only. */
	hp->rope_style = hp->arch == EC_ARCH_MIXTRAL ? EC_ROPE_NORM
						     : EC_ROPE_NEOX;
	hp->qk_norm = hp->arch == EC_ARCH_QWEN3_MOE ? EC_QK_NORM_HEAD
		      : hp->arch == EC_ARCH_OLMOE   ? EC_QK_NORM_FULL
						    : EC_QK_NORM_NONE;
	return 0;
}

static int load_hparams(struct gguf_load *ld)
{
	struct ec_hparams *hp = &ld->m->hp;
	uint32_t v_len, rope_dims;
	bool norm_default;
	char key[128];
	int ret;

	ret = key_u32(ld, "block_count", true, 0, &hp->n_layer);
	if (!ret)
		ret = key_u32(ld, "context_length", true, 0, &hp->n_ctx);
	if (!ret)
		ret = key_u32(ld, "embedding_length", true, 0, &hp->n_embd);
	if (!ret)
		ret = key_u32(ld, "attention.head_count", true, 0,
			      &hp->n_head);
	if (!ret)
		ret = key_u32(ld, "attention.head_count_kv", false,
			      hp->n_head, &hp->n_head_kv);
	if (!ret)
		ret = key_u32(ld, "expert_used_count", true, 0,
			      &hp->n_expert_used);
	if (!ret)
		ret = key_f32(ld, "attention.layer_norm_rms_epsilon", true, 0,
			      &hp->rms_eps);
	if (!ret)
		ret = key_f32(ld, "rope.freq_base", false, 10000.0f,
			      &hp->rope_theta);
	if (!ret)
		ret = key_f32(ld, "attention.clamp_kqv", false, 0,
			      &hp->clip_qkv);
	if (ret)
		return ret;
	if (!hp->n_layer || !hp->n_embd || !hp->n_head)
		return ec_err(-EC_EFORMAT,
			      "%s: block_count %" PRIu32 ", embedding_length %"
			      PRIu32 ", head_count %" PRIu32 " must be > 0",
			      ld->path, hp->n_layer, hp->n_embd, hp->n_head);
	if (hp->n_layer > GGUF_MAX_LAYERS || hp->n_expert > GGUF_MAX_EXPERTS)
		return ec_err(-EC_EUNSUPPORTED,
			      "%s: %" PRIu32 " layers x %" PRIu32
			      " experts is beyond what expertcache supports",
			      ld->path, hp->n_layer, hp->n_expert);

	ret = key_u32(ld, "attention.key_length", false,
		      hp->n_embd / hp->n_head, &hp->head_dim);
	if (!ret)
		ret = key_u32(ld, "attention.value_length", false,
			      hp->head_dim, &v_len);
	if (!ret)
		ret = key_u32(ld, "rope.dimension_count", false, hp->head_dim,
			      &rope_dims);
	if (ret)
		return ret;
	if (v_len != hp->head_dim || rope_dims != hp->head_dim)
		return ec_err(-EC_EUNSUPPORTED,
			      "%s: key_length %" PRIu32
			      ", value_length %" PRIu32
			      ", rope.dimension_count %" PRIu32
			      ": only equal head sizes with full rotary "
			      "embedding are supported",
			      ld->path, hp->head_dim, v_len, rope_dims);

	/* Expert size: expert_feed_forward_length, else feed_forward_length */
	ret = key_u32(ld, "expert_feed_forward_length", false, 0,
		      &hp->n_ff_exp);
	if (!ret && !hp->n_ff_exp)
		ret = key_u32(ld, "feed_forward_length", false, 0,
			      &hp->n_ff_exp);
	if (!ret)
		ret = key_u32(ld, "expert_shared_feed_forward_length", false,
			      0, &hp->n_ff_shexp);
	if (ret)
		return ret;

	/* llama.cpp's per-architecture default when the key is absent */
	norm_default = hp->arch == EC_ARCH_QWEN3_MOE ||
		       hp->arch == EC_ARCH_MIXTRAL;
	arch_key(ld, "expert_weights_norm", key);
	ret = ec_gguf_get_bool(ld->g, key, &hp->norm_topk_prob);
	if (ret == -EC_EMISSING) {
		hp->norm_topk_prob = norm_default;
		ret = 0;
	}
	if (!ret)
		ret = key_token(ld, "tokenizer.ggml.bos_token_id",
				&hp->bos_token);
	if (!ret)
		ret = key_token(ld, "tokenizer.ggml.eos_token_id",
				&hp->eos_token);
	return ret;
}

/* token_embd, output_norm, output (tied to token_embd when absent). */
static int load_globals(struct gguf_load *ld)
{
	struct ec_model *m = ld->m;
	struct ec_hparams *hp = &m->hp;
	const struct ec_gguf_kv *tokens;
	int ret;

	ret = load_tensor(ld, &m->tok_embd, true, hp->n_embd, 0, 1,
			  "token_embd.weight");
	if (ret)
		return ret;
	if (!ec_gguf_get_arr(ld->g, "tokenizer.ggml.tokens", EC_GGUF_STRING,
			     &tokens)) {
		if (tokens->count > UINT32_MAX)
			return ec_err(-EC_EFORMAT, "%s: %" PRIu64 " tokens",
				      ld->path, tokens->count);
		hp->n_vocab = (uint32_t)tokens->count;
	} else {
		hp->n_vocab = (uint32_t)m->tok_embd.ne[1];
	}
	if (m->tok_embd.ne[1] != hp->n_vocab)
		return ec_err(-EC_ESHAPE,
			      "%s: token_embd.weight has %" PRIu64
			      " rows but the vocabulary has %" PRIu32 " tokens",
			      ld->path, m->tok_embd.ne[1], hp->n_vocab);
	ret = load_tensor(ld, &m->output_norm, true, hp->n_embd, 1, 1,
			  "output_norm.weight");
	if (ret)
		return ret;
	ret = load_tensor(ld, &m->output, false, hp->n_embd, hp->n_vocab, 1,
			  "output.weight");
	if (ret < 0)
		return ret;
	hp->tied_embeddings = ret == 1;
	if (hp->tied_embeddings)
		m->output = m->tok_embd;
	return 0;
}

/* Expected [in, out] of an expert part (ggml order). */
static void part_shape(const struct ec_hparams *hp, uint32_t p, uint64_t *in,
		       uint64_t *out)
{
	*in = p == EC_EXPERT_DOWN ? hp->n_ff_exp : hp->n_embd;
	*out = p == EC_EXPERT_DOWN ? hp->n_embd : hp->n_ff_exp;
}

/*
 * Layer `l`'s experts: stacked ffn_{gate,up,down}_exps (the expert dimension
 * outermost, so each expert is one contiguous slice), or, in Mixtral files
 * from before llama.cpp stacked them, one ffn_{gate,up,down}.E.weight each.
 */
static int load_experts(struct gguf_load *ld, uint32_t l)
{
	static const char *const part[EC_EXPERT_NPARTS] = { "gate", "up",
							     "down" };
	const struct ec_hparams *hp = &ld->m->hp;
	struct ec_layer *L = &ld->m->layers[l];
	struct ec_tensor stacked[EC_EXPERT_NPARTS];
	char name[EC_GGUF_MAX_NAME];
	uint64_t in, out;
	uint32_t p, e;
	bool split;
	int ret;

	snprintf(name, sizeof(name), "blk.%" PRIu32 ".ffn_gate_exps.weight",
		 l);
	split = hp->arch == EC_ARCH_MIXTRAL &&
		!ec_gguf_find_tensor(ld->g, name);
	for (p = 0; p < EC_EXPERT_NPARTS && !split; p++) {
		part_shape(hp, p, &in, &out);
		ret = load_tensor(ld, &stacked[p], true, in, out, hp->n_expert,
				  "blk.%" PRIu32 ".ffn_%s_exps.weight", l,
				  part[p]);
		if (ret)
			return ret;
	}
	/* Allocated only now that the stacked shapes bound n_expert. */
	L->experts = calloc(hp->n_expert, sizeof(*L->experts));
	if (!L->experts)
		return ec_err(-ENOMEM, "%s: out of memory", ld->path);
	for (e = 0; e < hp->n_expert; e++) {
		for (p = 0; p < EC_EXPERT_NPARTS; p++) {
			struct ec_tensor *w = &L->experts[e].w[p];

			if (!split) {
				*w = ec_tensor_slice(&stacked[p], e, 1);
				continue;
			}
			part_shape(hp, p, &in, &out);
			ret = load_tensor(ld, w, true, in, out, 1,
					  "blk.%" PRIu32 ".ffn_%s.%" PRIu32
					  ".weight", l, part[p], e);
			if (ret)
				return ret;
		}
	}
	return 0;
}

static int load_layer(struct gguf_load *ld, uint32_t l)
{
	const struct ec_hparams *hp = &ld->m->hp;
	struct ec_layer *L = &ld->m->layers[l];
	uint64_t q_dim = (uint64_t)hp->n_head * hp->head_dim;
	uint64_t kv_dim = (uint64_t)hp->n_head_kv * hp->head_dim;
	uint64_t qn = hp->qk_norm == EC_QK_NORM_HEAD ? hp->head_dim : q_dim;
	uint64_t kn = hp->qk_norm == EC_QK_NORM_HEAD ? hp->head_dim : kv_dim;
	bool bias = hp->attn_bias, qk = hp->qk_norm != EC_QK_NORM_NONE;
	bool sh = hp->n_ff_shexp != 0;
	int ret;

#define T(dst, req, a, b, c, name)                                            \
	do {                                                                  \
		ret = load_tensor(ld, dst, req, a, b, c,                      \
				  "blk.%" PRIu32 "." name, l);                \
		if (ret < 0)                                                  \
			return ret;                                           \
	} while (0)
	T(&L->attn_norm, true, hp->n_embd, 1, 1, "attn_norm.weight");
	T(&L->wq, true, hp->n_embd, q_dim, 1, "attn_q.weight");
	T(&L->wk, true, hp->n_embd, kv_dim, 1, "attn_k.weight");
	T(&L->wv, true, hp->n_embd, kv_dim, 1, "attn_v.weight");
	T(&L->wo, true, q_dim, hp->n_embd, 1, "attn_output.weight");
	if (bias) {
		T(&L->bq, true, q_dim, 1, 1, "attn_q.bias");
		T(&L->bk, true, kv_dim, 1, 1, "attn_k.bias");
		T(&L->bv, true, kv_dim, 1, 1, "attn_v.bias");
	}
	if (qk) {
		T(&L->q_norm, true, qn, 1, 1, "attn_q_norm.weight");
		T(&L->k_norm, true, kn, 1, 1, "attn_k_norm.weight");
	}
	T(&L->ffn_norm, true, hp->n_embd, 1, 1, "ffn_norm.weight");
	T(&L->router, true, hp->n_embd, hp->n_expert, 1,
	  "ffn_gate_inp.weight");
	if (sh) {
		T(&L->sh_router, true, hp->n_embd, 1, 1,
		  "ffn_gate_inp_shexp.weight");
		T(&L->sh_gate, true, hp->n_embd, hp->n_ff_shexp, 1,
		  "ffn_gate_shexp.weight");
		T(&L->sh_up, true, hp->n_embd, hp->n_ff_shexp, 1,
		  "ffn_up_shexp.weight");
		T(&L->sh_down, true, hp->n_ff_shexp, hp->n_embd, 1,
		  "ffn_down_shexp.weight");
	}
#undef T
	return load_experts(ld, l);
}

/* What the first layer's tensors say where the keys were silent. */
static int infer_from_tensors(struct gguf_load *ld)
{
	struct ec_hparams *hp = &ld->m->hp;
	const struct ec_gguf_tensor *t;

	hp->attn_bias = hp->arch == EC_ARCH_QWEN2_MOE ||
			ec_gguf_find_tensor(ld->g, "blk.0.attn_q.bias");
	if (!hp->n_ff_exp) {
		t = ec_gguf_find_tensor(ld->g, "blk.0.ffn_gate_exps.weight");
		if (!t)
			t = ec_gguf_find_tensor(ld->g,
						"blk.0.ffn_gate.0.weight");
		if (!t || t->ne[1] > UINT32_MAX)
			return ec_err(-EC_EMISSING,
				      "%s: no expert_feed_forward_length or "
				      "feed_forward_length key and no "
				      "blk.0.ffn_gate_exps.weight",
				      ld->path);
		hp->n_ff_exp = (uint32_t)t->ne[1];
	}
	t = ec_gguf_find_tensor(ld->g, "blk.0.ffn_up_shexp.weight");
	if (hp->arch != EC_ARCH_QWEN2_MOE || !t)
		hp->n_ff_shexp = 0;
	else if (!hp->n_ff_shexp && t->ne[1] <= UINT32_MAX)
		hp->n_ff_shexp = (uint32_t)t->ne[1];

	/* Shapes below are checked against these: 0 would match anything. */
	if (!hp->n_expert || !hp->n_expert_used || !hp->n_head_kv ||
	    !hp->head_dim || !hp->n_ff_exp)
		return ec_err(-EC_EFORMAT,
			      "%s: expert_count %" PRIu32
			      ", expert_used_count %" PRIu32
			      ", head_count_kv %" PRIu32 ", key_length %" PRIu32
			      ", expert feed_forward_length %" PRIu32
			      " must all be > 0",
			      ld->path, hp->n_expert, hp->n_expert_used,
			      hp->n_head_kv, hp->head_dim, hp->n_ff_exp);
	return 0;
}

int ec_model_load_gguf(struct ec_model *m, const char *path)
{
	struct gguf_load ld = { .m = m, .path = path };
	uint32_t l;
	int ret;

	ret = ec_model_add_file(m, path);
	if (ret < 0)
		return ret;
	ld.file = (uint32_t)ret;
	ret = ec_gguf_parse(m->files[ld.file].map, m->files[ld.file].size,
			    path, &m->gguf);
	if (ret)
		return ret;
	ld.g = m->gguf;
	m->format = EC_FORMAT_GGUF;

	ret = load_arch(&ld);
	if (!ret)
		ret = load_hparams(&ld);
	if (!ret)
		ret = infer_from_tensors(&ld);
	if (!ret)
		ret = load_globals(&ld);
	if (ret)
		return ret;

	m->layers = calloc(m->hp.n_layer, sizeof(*m->layers));
	if (!m->layers)
		return ec_err(-ENOMEM, "%s: out of memory", path);
	for (l = 0; l < m->hp.n_layer; l++) {
		ret = load_layer(&ld, l);
		if (ret)
			return ret;
	}
	return ec_model_validate(m);
}
