// SPDX-License-Identifier: MIT
/* Hugging Face config.json -> struct ec_hparams, as transformers 5 reads it. */
#include <jansson.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "ec_error.h"
#include "hfconfig.h"

/* What transformers 5.23's config class of each model_type defaults to. */
struct hf_arch {
	const char *model_type;
	enum ec_arch arch;
	/* expert count: the key transformers stores, its attribute_map alias */
	const char *experts_key, *experts_alias;
	const char *ff_key;	/* expert intermediate size */
	uint32_t vocab, hidden, layers, heads, kv_heads; /* 0: = heads */
	uint32_t ctx, experts, top_k, ff, ff_shexp;
	double eps, theta;
	int32_t bos, eos;
};

static const struct hf_arch hf_archs[] = {
	{ "qwen3_moe", EC_ARCH_QWEN3_MOE, "num_experts", "num_local_experts",
	  "moe_intermediate_size", 151936, 2048, 24, 32, 4, 32768, 128, 8,
	  768, 0, 1e-6, 10000.0, -1, -1 },
	{ "mixtral", EC_ARCH_MIXTRAL, "num_local_experts", "num_experts",
	  "intermediate_size", 32000, 4096, 32, 32, 8, 131072, 8, 2, 14336, 0,
	  1e-5, 1000000.0, 1, 2 },
	{ "olmoe", EC_ARCH_OLMOE, "num_experts", "num_local_experts",
	  "intermediate_size", 50304, 2048, 16, 16, 0, 4096, 64, 8, 2048, 0,
	  1e-5, 10000.0, -1, 50279 },
	{ "qwen2_moe", EC_ARCH_QWEN2_MOE, "num_experts", NULL,
	  "moe_intermediate_size", 151936, 2048, 24, 16, 16, 32768, 60, 4,
	  1408, 5632, 1e-6, 10000.0, -1, -1 },
};

#define N_ARCHS (sizeof(hf_archs) / sizeof(hf_archs[0]))

struct cfg {
	const json_t *root;
	const char *fn;
};

/* NULL when absent or JSON null */
static const json_t *get(const json_t *obj, const char *key)
{
	const json_t *v = json_object_get(obj, key);

	return json_is_null(v) ? NULL : v;
}

/* Absent or null: def; else an integer in [min, UINT32_MAX]. */
static int get_u32(const struct cfg *c, const char *key, uint32_t def,
		   uint32_t min, uint32_t *out)
{
	const json_t *v = get(c->root, key);
	json_int_t i;

	*out = def;
	if (!v)
		return 0;
	if (!json_is_integer(v))
		return ec_err(-EC_EFORMAT, "%s: '%s' is not an integer", c->fn,
			      key);
	i = json_integer_value(v);
	if (i < (json_int_t)min || i > (json_int_t)UINT32_MAX)
		return ec_err(-EC_EFORMAT, "%s: '%s' = %lld is out of range "
			      "[%u, %u]", c->fn, key, (long long)i, min,
			      UINT32_MAX);
	*out = i;
	return 0;
}

/* A number (integer or real) of `obj`, def when absent or null. */
static int get_num(const struct cfg *c, const json_t *obj, const char *key,
		   double def, double *out)
{
	const json_t *v = get(obj, key);

	*out = def;
	if (!v)
		return 0;
	if (!json_is_number(v))
		return ec_err(-EC_EFORMAT, "%s: '%s' is not a number", c->fn,
			      key);
	*out = json_number_value(v);
	return 0;
}

static int get_bool(const struct cfg *c, const char *key, bool def, bool *out)
{
	const json_t *v = get(c->root, key);

	*out = def;
	if (!v)
		return 0;
	if (!json_is_boolean(v))
		return ec_err(-EC_EFORMAT, "%s: '%s' is not true/false", c->fn,
			      key);
	*out = json_is_true(v);
	return 0;
}

/* bos/eos: an integer, a list of them (the first counts) or null (-1). */
static int get_token(const struct cfg *c, const char *key, int32_t def,
		     int32_t *out)
{
	const json_t *v = json_object_get(c->root, key);

	*out = def;
	if (!v)
		return 0;
	*out = -1;
	if (json_is_array(v)) {
		if (!json_array_size(v))
			return 0;
		v = json_array_get(v, 0);
	}
	if (json_is_null(v))
		return 0;
	if (!json_is_integer(v) || json_integer_value(v) < 0 ||
	    json_integer_value(v) > INT32_MAX)
		return ec_err(-EC_EFORMAT, "%s: '%s' is not a token id, a list "
			      "of them or null", c->fn, key);
	*out = json_integer_value(v);
	return 0;
}

/*
 * transformers 5 reads RoPE from `rope_scaling` (legacy) or
 * `rope_parameters`, possibly nested per layer type; rope_theta falls back
 * to the top level, then to the class default.
 */
static int parse_rope(const struct cfg *c, double def_theta, float *theta)
{
	const char *src = "rope_scaling", *type = "default";
	const json_t *rp = get(c->root, src), *v;
	double t, prf, prf_top;
	int ret;

	if (!rp) {
		src = "rope_parameters";
		rp = get(c->root, src);
	}
	if (rp && !json_is_object(rp))
		return ec_err(-EC_EFORMAT, "%s: '%s' is not an object", c->fn,
			      src);
	if (rp && json_is_object(json_object_get(rp, "full_attention")))
		rp = json_object_get(rp, "full_attention");
	if (rp) {
		v = get(rp, "rope_type");
		if (!v)
			v = get(rp, "type");
		if (v && !json_is_string(v))
			return ec_err(-EC_EFORMAT, "%s: %s.rope_type is not a "
				      "string", c->fn, src);
		if (v)
			type = json_string_value(v);
	}
	if (strcmp(type, "default"))
		return ec_err(-EC_EUNSUPPORTED, "%s: %s: RoPE type '%s' is not "
			      "supported (only 'default', no scaling)", c->fn,
			      src, type);
	ret = get_num(c, c->root, "rope_theta", def_theta, &t);
	if (!ret && rp)
		ret = get_num(c, rp, "rope_theta", t, &t);
	if (!ret)
		ret = get_num(c, c->root, "partial_rotary_factor", 1.0,
			      &prf_top);
	if (!ret)
		ret = get_num(c, rp ? rp : c->root, "partial_rotary_factor",
			      prf_top, &prf);
	if (ret < 0)
		return ret;
	if (prf != 1.0)
		return ec_err(-EC_EUNSUPPORTED, "%s: partial_rotary_factor %g "
			      "is not supported (only 1.0)", c->fn, prf);
	if (!(t > 0 && t < 1e30))
		return ec_err(-EC_EFORMAT, "%s: rope_theta %g is not a "
			      "positive number", c->fn, t);
	*theta = t;
	return 0;
}

/*
 * A sliding window changes attention unless it spans the whole trained
 * context.  `active`: transformers would apply config.sliding_window;
 * `def`: its class default (0: none).
 */
static int check_window(const struct cfg *c, bool active, json_int_t def,
			uint32_t n_ctx)
{
	const json_t *v = json_object_get(c->root, "sliding_window");
	json_int_t w = def;

	if (!active)
		return 0;
	if (json_is_null(v) || (!v && !def))
		return 0;
	if (v && !json_is_integer(v))
		return ec_err(-EC_EFORMAT, "%s: 'sliding_window' is not an "
			      "integer", c->fn);
	if (v)
		w = json_integer_value(v);
	if (w < (json_int_t)n_ctx)
		return ec_err(-EC_EUNSUPPORTED, "%s: sliding-window attention "
			      "(sliding_window %lld < max_position_embeddings "
			      "%u) is not supported", c->fn, (long long)w,
			      n_ctx);
	return 0;
}

/* Qwen2/3-MoE: every layer must be a sparse MoE layer, with full attention */
static int check_qwen_layers(const struct cfg *c, const struct ec_hparams *hp)
{
	const json_t *v = get(c->root, "mlp_only_layers"), *e;
	uint32_t step, mwl;
	bool sliding;
	size_t i;
	int ret;

	ret = get_u32(c, "decoder_sparse_step", 1, 0, &step);
	if (ret < 0)
		return ret;
	if (step != 1)
		return ec_err(-EC_EUNSUPPORTED, "%s: decoder_sparse_step %u: "
			      "dense MLP layers are not supported (only 1)",
			      c->fn, step);
	if (v && !json_is_array(v))
		return ec_err(-EC_EFORMAT, "%s: 'mlp_only_layers' is not a "
			      "list", c->fn);
	json_array_foreach(v, i, e) {
		if (!json_is_integer(e))
			return ec_err(-EC_EFORMAT, "%s: mlp_only_layers[%zu] "
				      "is not an integer", c->fn, i);
		if (json_integer_value(e) >= 0 &&
		    json_integer_value(e) < hp->n_layer)
			return ec_err(-EC_EUNSUPPORTED, "%s: mlp_only_layers "
				      "lists layer %lld: dense MLP layers are "
				      "not supported", c->fn,
				      (long long)json_integer_value(e));
	}
	ret = get_bool(c, "use_sliding_window", false, &sliding);
	if (ret < 0 || hp->arch == EC_ARCH_QWEN3_MOE)
		return ret < 0 ? ret : check_window(c, sliding, 4096,
						    hp->n_ctx);

	/* Qwen2-MoE: per-layer types, given or derived as transformers does */
	v = get(c->root, "layer_types");
	if (v && !json_is_array(v))
		return ec_err(-EC_EFORMAT, "%s: 'layer_types' is not a list",
			      c->fn);
	json_array_foreach(v, i, e) {
		if (!json_is_string(e) ||
		    strcmp(json_string_value(e), "full_attention"))
			return ec_err(-EC_EUNSUPPORTED, "%s: layer_types[%zu] "
				      "is not \"full_attention\" (sliding "
				      "windows are not supported)", c->fn, i);
	}
	if (v)
		return 0;
	ret = get_u32(c, "max_window_layers", 28, 0, &mwl);
	if (ret < 0)
		return ret;
	return check_window(c, sliding && mwl > 0, 4096, hp->n_ctx);
}

/* Expert count under either name; both given must agree. */
static int get_experts(const struct cfg *c, const struct hf_arch *a,
		       uint32_t *out)
{
	uint32_t n1, n2;
	int ret;

	ret = get_u32(c, a->experts_key, a->experts, 1, &n1);
	if (ret < 0 || !a->experts_alias)
		goto done;
	ret = get_u32(c, a->experts_alias, n1, 1, &n2);
	if (ret < 0)
		goto done;
	if (!get(c->root, a->experts_key))
		n1 = n2;
	else if (get(c->root, a->experts_alias) && n1 != n2)
		ret = ec_err(-EC_EFORMAT, "%s: '%s' = %u and '%s' = %u "
			     "disagree", c->fn, a->experts_key, n1,
			     a->experts_alias, n2);
done:
	*out = n1;
	return ret;
}

static int parse_arch(const struct cfg *c, const struct hf_arch *a,
		      struct ec_hparams *hp)
{
	const json_t *v;
	uint32_t hd;
	double d;
	bool b;
	int ret;

	memset(hp, 0, sizeof(*hp));
	hp->arch = a->arch;
	hp->rope_style = EC_ROPE_NEOX;
	if ((ret = get_u32(c, "vocab_size", a->vocab, 1, &hp->n_vocab)) ||
	    (ret = get_u32(c, "hidden_size", a->hidden, 1, &hp->n_embd)) ||
	    (ret = get_u32(c, "num_hidden_layers", a->layers, 1,
			   &hp->n_layer)) ||
	    (ret = get_u32(c, "num_attention_heads", a->heads, 1,
			   &hp->n_head)) ||
	    (ret = get_u32(c, "num_key_value_heads",
			   a->kv_heads ? a->kv_heads : hp->n_head, 1,
			   &hp->n_head_kv)) ||
	    (ret = get_u32(c, "max_position_embeddings", a->ctx, 1,
			   &hp->n_ctx)) ||
	    (ret = get_experts(c, a, &hp->n_expert)) ||
	    (ret = get_u32(c, "num_experts_per_tok", a->top_k, 1,
			   &hp->n_expert_used)) ||
	    (ret = get_u32(c, a->ff_key, a->ff, 1, &hp->n_ff_exp)) ||
	    (ret = get_token(c, "bos_token_id", a->bos, &hp->bos_token)) ||
	    (ret = get_token(c, "eos_token_id", a->eos, &hp->eos_token)) ||
	    (ret = get_bool(c, "tie_word_embeddings", false,
			    &hp->tied_embeddings)) ||
	    (ret = get_num(c, c->root, "rms_norm_eps", a->eps, &d)))
		return ret;
	/* "num_key_value_heads": null means as many as query heads */
	if (json_is_null(json_object_get(c->root, "num_key_value_heads")))
		hp->n_head_kv = hp->n_head;
	if (!(d > 0 && d < 1))
		return ec_err(-EC_EFORMAT, "%s: rms_norm_eps %g is not in "
			      "(0, 1)", c->fn, d);
	hp->rms_eps = d;
	ret = get_u32(c, "head_dim", hp->n_embd / hp->n_head, 1, &hd);
	if (ret < 0)
		return ret;
	hp->head_dim = hd;
	if (hp->n_expert_used > hp->n_expert)
		return ec_err(-EC_EFORMAT, "%s: num_experts_per_tok %u > %u "
			      "experts", c->fn, hp->n_expert_used,
			      hp->n_expert);
	ret = parse_rope(c, a->theta, &hp->rope_theta);
	if (ret < 0)
		return ret;

	v = get(c->root, "hidden_act");
	if (v && (!json_is_string(v) || strcmp(json_string_value(v), "silu")))
		return ec_err(-EC_EUNSUPPORTED, "%s: hidden_act %s is not "
			      "supported (only \"silu\")", c->fn,
			      json_is_string(v) ? json_string_value(v) : "?");
	if (get(c->root, "quantization_config"))
		return ec_err(-EC_EUNSUPPORTED, "%s: quantised checkpoints "
			      "(quantization_config) are not supported",
			      c->fn);

	switch (a->arch) {
	case EC_ARCH_MIXTRAL:
		hp->norm_topk_prob = true;	/* its router always does */
		break;
	case EC_ARCH_OLMOE:
		hp->qk_norm = EC_QK_NORM_FULL;
		if (hp->head_dim * hp->n_head != hp->n_embd)
			return ec_err(-EC_EUNSUPPORTED, "%s: head_dim %u x %u "
				      "heads != hidden_size %u (OLMoE's q/k "
				      "norms need them equal)", c->fn,
				      hp->head_dim, hp->n_head, hp->n_embd);
		if ((ret = get_num(c, c->root, "clip_qkv", 0, &d)))
			return ret;
		if (get(c->root, "clip_qkv") && !(d > 0 && d < 1e30))
			return ec_err(-EC_EFORMAT, "%s: clip_qkv %g is not "
				      "positive", c->fn, d);
		hp->clip_qkv = d;
		break;
	case EC_ARCH_QWEN3_MOE:
		hp->qk_norm = EC_QK_NORM_HEAD;
		break;
	case EC_ARCH_QWEN2_MOE:
		if ((ret = get_bool(c, "qkv_bias", true, &hp->attn_bias)) ||
		    (ret = get_u32(c, "shared_expert_intermediate_size",
				   a->ff_shexp, 1, &hp->n_ff_shexp)))
			return ret;
		break;
	}
	if (a->arch == EC_ARCH_QWEN3_MOE || a->arch == EC_ARCH_OLMOE) {
		/* biases on q/k/v *and* o: we have no o_proj bias */
		if ((ret = get_bool(c, "attention_bias", false, &b)))
			return ret;
		if (b)
			return ec_err(-EC_EUNSUPPORTED, "%s: attention_bias "
				      "(a bias on o_proj too) is not "
				      "supported", c->fn);
	}
	if (a->arch != EC_ARCH_MIXTRAL) {
		ret = get_bool(c, "norm_topk_prob", false, &hp->norm_topk_prob);
		if (ret < 0)
			return ret;
	}
	if (a->arch == EC_ARCH_MIXTRAL || a->arch == EC_ARCH_OLMOE)
		return check_window(c, true, 0, hp->n_ctx);
	return check_qwen_layers(c, hp);
}

static int parse_root(const json_t *root, const char *fn,
		      struct ec_hparams *hp, char *model_type,
		      size_t model_type_size)
{
	struct cfg c = { .root = root, .fn = fn };
	const json_t *v;
	const char *mt;
	size_t i;

	if (!json_is_object(root))
		return ec_err(-EC_EFORMAT, "%s: not a JSON object", fn);
	v = json_object_get(root, "model_type");
	if (!v)
		return ec_err(-EC_EMISSING, "%s: no 'model_type'", fn);
	if (!json_is_string(v))
		return ec_err(-EC_EFORMAT, "%s: 'model_type' is not a string",
			      fn);
	mt = json_string_value(v);
	for (i = 0; i < N_ARCHS; i++) {
		if (strcmp(mt, hf_archs[i].model_type))
			continue;
		if (model_type_size)
			snprintf(model_type, model_type_size, "%s", mt);
		return parse_arch(&c, &hf_archs[i], hp);
	}
	return ec_err(-EC_EUNSUPPORTED, "%s: model_type '%s' is not supported "
		      "(supported: qwen3_moe, mixtral, olmoe, qwen2_moe)", fn,
		      mt);
}

int ec_hf_config_parse(const char *text, size_t len, const char *filename,
		       struct ec_hparams *hp, char *model_type,
		       size_t model_type_size)
{
	json_error_t jerr;
	json_t *root;
	int ret;

	root = json_loadb(text, len, JSON_REJECT_DUPLICATES, &jerr);
	if (!root)
		return ec_err(-EC_EFORMAT, "%s: line %d column %d: %s",
			      filename, jerr.line, jerr.column, jerr.text);
	ret = parse_root(root, filename, hp, model_type, model_type_size);
	json_decref(root);
	return ret;
}

int ec_hf_config_load(const char *path, struct ec_hparams *hp,
		      char *model_type, size_t model_type_size)
{
	json_error_t jerr;
	json_t *root;
	FILE *fp;
	int ret;

	fp = fopen(path, "re");
	if (!fp)
		return ec_err(-errno, "%s: cannot open: %s", path,
			      strerror(errno));
	root = json_loadf(fp, JSON_REJECT_DUPLICATES, &jerr);
	fclose(fp);
	if (!root)
		return ec_err(-EC_EFORMAT, "%s: line %d column %d: %s", path,
			      jerr.line, jerr.column, jerr.text);
	ret = parse_root(root, path, hp, model_type, model_type_size);
	json_decref(root);
	return ret;
}
