// SPDX-License-Identifier: MIT
/* Hugging Face checkpoint loader: config.json + (sharded) safetensors. */
#include <jansson.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "ec_error.h"
#include "ec_model.h"
#include "ec_safetensors.h"
#include "hfconfig.h"

struct st_shard {
	const char *name;	/* as the index names it */
	uint32_t file;		/* index into m->files */
	struct ec_st_file *st;
};

struct st_loader {
	struct ec_model *m;
	char dir[PATH_MAX];
	char index_path[PATH_MAX];	/* "" for a single file */
	json_t *index;			/* the index JSON, or NULL */
	const json_t *weight_map;	/* tensor name -> shard name */
	uint32_t n_shards;
	struct st_shard *shards;
};

static bool is_file(const char *path)
{
	struct stat st;

	return stat(path, &st) == 0 && S_ISREG(st.st_mode);
}

static bool ends_with(const char *s, const char *suffix)
{
	size_t n = strlen(s), k = strlen(suffix);

	return n >= k && !strcmp(s + n - k, suffix);
}

static int join(char *out, const char *dir, const char *name)
{
	if (snprintf(out, PATH_MAX, "%s/%s", dir, name) >= PATH_MAX)
		return ec_err(-ENAMETOOLONG, "%s/%s: path too long", dir, name);
	return 0;
}

/* Map and parse one shard; `name` must outlive the loader. */
static int add_shard(struct st_loader *L, const char *name, const char *path)
{
	struct ec_model *m = L->m;
	struct st_shard *s;
	int file, ret;

	s = realloc(L->shards, (L->n_shards + 1) * sizeof(*s));
	if (!s)
		return ec_err(-ENOMEM, "%s: out of memory", path);
	L->shards = s;
	file = ec_model_add_file(m, path);
	if (file < 0)
		return file;
	s = &L->shards[L->n_shards];
	s->name = name;
	s->file = file;
	ret = ec_st_parse_header(m->files[file].map, m->files[file].size, path,
				 &s->st);
	if (ret < 0)
		return ret;
	L->n_shards++;
	return 0;
}

/* Open every shard the index names, each once. */
static int open_index(struct st_loader *L)
{
	const char *key, *name;
	json_error_t jerr;
	char path[PATH_MAX];
	json_t *val;
	uint32_t i;
	int ret;

	L->index = json_load_file(L->index_path, JSON_REJECT_DUPLICATES,
				  &jerr);
	if (!L->index)
		return ec_err(-EC_EFORMAT, "%s: line %d column %d: %s",
			      L->index_path, jerr.line, jerr.column,
			      jerr.text);
	L->weight_map = json_object_get(L->index, "weight_map");
	if (!json_is_object(L->weight_map))
		return ec_err(-EC_EFORMAT, "%s: 'weight_map' is %s",
			      L->index_path, L->weight_map ? "not an object" :
			      "missing");
	json_object_foreach((json_t *)L->weight_map, key, val) {
		if (!json_is_string(val))
			return ec_err(-EC_EFORMAT, "%s: weight_map['%s'] is "
				      "not a file name", L->index_path, key);
		name = json_string_value(val);
		if (!*name || strchr(name, '/') || !strcmp(name, "..") ||
		    !strcmp(name, "."))
			return ec_err(-EC_EFORMAT, "%s: weight_map['%s']: "
				      "shard '%s' is not a file name in the "
				      "model directory", L->index_path, key,
				      name);
		for (i = 0; i < L->n_shards; i++)
			if (!strcmp(L->shards[i].name, name))
				break;
		if (i < L->n_shards)
			continue;
		ret = join(path, L->dir, name);
		if (ret < 0)
			return ret;
		ret = add_shard(L, name, path);
		if (ret < 0)
			return ret;
	}
	if (!L->n_shards)
		return ec_err(-EC_EFORMAT, "%s: weight_map is empty",
			      L->index_path);
	return 0;
}

/*
 * Find tensor `name`: 1 and *out when present, 0 when absent, or a negative
 * error (unsupported dtype, index pointing at a shard that lacks it).
 */
static int lookup(struct st_loader *L, const char *name,
		  struct ec_tensor *out)
{
	const struct st_shard *s = &L->shards[0];
	const json_t *v;
	uint32_t i;
	int ret;

	if (L->weight_map) {
		v = json_object_get(L->weight_map, name);
		if (!v)
			return 0;
		for (i = 0; i < L->n_shards; i++)
			if (!strcmp(L->shards[i].name, json_string_value(v)))
				break;
		s = &L->shards[i];
		if (!ec_st_find(s->st, name))
			return ec_err(-EC_EFORMAT, "%s: tensor '%s' is not in "
				      "shard %s, where the index puts it",
				      L->index_path, name, s->name);
	} else if (!ec_st_find(s->st, name)) {
		return 0;
	}
	ret = ec_st_get(s->st, name, s->file, out);
	return ret < 0 ? ret : 1;
}

static const char *where(const struct st_loader *L)
{
	return L->weight_map ? L->index_path : L->shards[0].st->filename;
}

/* Shape in safetensors (torch) order, for messages. */
static void fmt_shape(char *buf, size_t sz, uint32_t n, const uint64_t *ne)
{
	size_t len = 0;
	uint32_t i;

	buf[0] = 0;
	for (i = 0; i < n && len < sz; i++)
		len += snprintf(buf + len, sz - len, "%s%llu", i ? ", " : "",
				(unsigned long long)ne[n - 1 - i]);
}

/*
 * Required tensor `name` of torch shape [d0, d1, ...] (n dims, given
 * innermost first as ggml does: ne = {in, out} for [out, in]).
 */
static int need(struct st_loader *L, const char *name, struct ec_tensor *out,
		uint32_t n, uint64_t ne0, uint64_t ne1, uint64_t ne2)
{
	const uint64_t want[3] = { ne0, ne1, ne2 };
	char a[96], b[96];
	uint32_t i;
	int ret;

	ret = lookup(L, name, out);
	if (ret < 0)
		return ret;
	if (!ret)
		return ec_err(-EC_EMISSING, "%s: tensor '%s' is missing",
			      where(L), name);
	for (i = 0; i < n; i++)
		if (out->ne[i] != want[i])
			break;
	if (out->n_dims != n || i < n) {
		fmt_shape(a, sizeof(a), out->n_dims, out->ne);
		fmt_shape(b, sizeof(b), n, want);
		return ec_err(-EC_ESHAPE, "%s: tensor '%s' has shape [%s], "
			      "expected [%s]",
			      L->m->files[out->file].path, name, a, b);
	}
	return 0;
}

/* need() for "model.layers.<l>.<suffix>" */
static int need_l(struct st_loader *L, uint32_t l, const char *suffix,
		  struct ec_tensor *out, uint32_t n, uint64_t ne0,
		  uint64_t ne1, uint64_t ne2)
{
	char name[192];

	snprintf(name, sizeof(name), "model.layers.%u.%s", l, suffix);
	return need(L, name, out, n, ne0, ne1, ne2);
}

/* need_l() for a tensor that may be absent: 1 present, 0 absent, or < 0 */
static int optional_l(struct st_loader *L, uint32_t l, const char *suffix,
		      struct ec_tensor *out, uint32_t n, uint64_t ne0,
		      uint64_t ne1, uint64_t ne2)
{
	char name[192];
	int ret;

	snprintf(name, sizeof(name), "model.layers.%u.%s", l, suffix);
	ret = lookup(L, name, out);
	if (ret <= 0)
		return ret;
	ret = need(L, name, out, n, ne0, ne1, ne2);
	return ret < 0 ? ret : 1;
}

static int load_attention(struct st_loader *L, uint32_t l)
{
	const struct ec_hparams *hp = &L->m->hp;
	struct ec_layer *ly = &L->m->layers[l];
	uint64_t q = (uint64_t)hp->n_head * hp->head_dim;
	uint64_t kv = (uint64_t)hp->n_head_kv * hp->head_dim;
	uint64_t h = hp->n_embd;
	int ret;

	if ((ret = need_l(L, l, "input_layernorm.weight", &ly->attn_norm, 1,
			  h, 0, 0)) ||
	    (ret = need_l(L, l, "post_attention_layernorm.weight",
			  &ly->ffn_norm, 1, h, 0, 0)) ||
	    (ret = need_l(L, l, "self_attn.q_proj.weight", &ly->wq, 2, h, q,
			  0)) ||
	    (ret = need_l(L, l, "self_attn.k_proj.weight", &ly->wk, 2, h, kv,
			  0)) ||
	    (ret = need_l(L, l, "self_attn.v_proj.weight", &ly->wv, 2, h, kv,
			  0)) ||
	    (ret = need_l(L, l, "self_attn.o_proj.weight", &ly->wo, 2, q, h,
			  0)))
		return ret;
	if (hp->attn_bias &&
	    ((ret = need_l(L, l, "self_attn.q_proj.bias", &ly->bq, 1, q, 0,
			   0)) ||
	     (ret = need_l(L, l, "self_attn.k_proj.bias", &ly->bk, 1, kv, 0,
			   0)) ||
	     (ret = need_l(L, l, "self_attn.v_proj.bias", &ly->bv, 1, kv, 0,
			   0))))
		return ret;
	if (hp->qk_norm == EC_QK_NORM_NONE)
		return 0;
	if (hp->qk_norm == EC_QK_NORM_HEAD)
		q = kv = hp->head_dim;
	if ((ret = need_l(L, l, "self_attn.q_norm.weight", &ly->q_norm, 1, q,
			  0, 0)) ||
	    (ret = need_l(L, l, "self_attn.k_norm.weight", &ly->k_norm, 1, kv,
			  0, 0)))
		return ret;
	return 0;
}

/*
 * The experts of layer l, whose MoE block is called `moe` ("mlp", or
 * Mixtral's original "block_sparse_moe").  Either stacked, as transformers
 * 5 holds them in memory (save_pretrained(save_original_format=False)):
 *   <moe>.experts.gate_up_proj [E, 2*ff, hidden], gate rows first,
 *   <moe>.experts.down_proj    [E, hidden, ff],
 * or one tensor per expert, as save_pretrained writes by default:
 *   <moe>.experts.<j>.{gate,up,down}_proj.weight (Mixtral: w1, w3, w2).
 * Each expert's matrices end up as contiguous 2-D views either way.
 */
static int load_experts(struct st_loader *L, uint32_t l, const char *moe)
{
	const struct ec_hparams *hp = &L->m->hp;
	struct ec_layer *ly = &L->m->layers[l];
	bool w123 = hp->arch == EC_ARCH_MIXTRAL;
	const char *part[EC_EXPERT_NPARTS] = {
		[EC_EXPERT_GATE] = w123 ? "w1.weight" : "gate_proj.weight",
		[EC_EXPERT_UP] = w123 ? "w3.weight" : "up_proj.weight",
		[EC_EXPERT_DOWN] = w123 ? "w2.weight" : "down_proj.weight",
	};
	uint64_t E = hp->n_expert, ff = hp->n_ff_exp, h = hp->n_embd;
	struct ec_tensor gu, dn;
	char name[128];
	int has_gu, has_dn, ret, p;
	uint32_t j;

	snprintf(name, sizeof(name), "%s.experts.gate_up_proj", moe);
	has_gu = optional_l(L, l, name, &gu, 3, h, 2 * ff, E);
	if (has_gu < 0)
		return has_gu;
	snprintf(name, sizeof(name), "%s.experts.down_proj", moe);
	has_dn = optional_l(L, l, name, &dn, 3, ff, h, E);
	if (has_dn < 0)
		return has_dn;

	for (j = 0; j < E; j++) {
		struct ec_tensor *w = ly->experts[j].w;

		if (has_gu) {
			w[EC_EXPERT_GATE] = ec_tensor_rows(&gu, j * 2 * ff, ff);
			w[EC_EXPERT_UP] = ec_tensor_rows(&gu, j * 2 * ff + ff,
							 ff);
		}
		if (has_dn)
			w[EC_EXPERT_DOWN] = ec_tensor_rows(&dn, j * h, h);
		for (p = 0; p < EC_EXPERT_NPARTS; p++) {
			bool down = p == EC_EXPERT_DOWN;

			if (down ? has_dn : has_gu)
				continue;
			snprintf(name, sizeof(name), "%s.experts.%u.%s", moe,
				 j, part[p]);
			ret = need_l(L, l, name, &w[p], 2, down ? ff : h,
				     down ? h : ff, 0);
			if (ret < 0)
				return ret;
		}
	}
	return 0;
}

static int load_moe(struct st_loader *L, uint32_t l)
{
	const struct ec_hparams *hp = &L->m->hp;
	struct ec_layer *ly = &L->m->layers[l];
	uint64_t h = hp->n_embd, sh = hp->n_ff_shexp;
	const char *moe = "mlp";
	struct ec_tensor t;
	char name[128];
	int ret;

	if (hp->arch == EC_ARCH_MIXTRAL) {
		snprintf(name, sizeof(name),
			 "model.layers.%u.block_sparse_moe.gate.weight", l);
		ret = lookup(L, name, &t);
		if (ret < 0)
			return ret;
		if (ret)
			moe = "block_sparse_moe";
	}
	snprintf(name, sizeof(name), "%s.gate.weight", moe);
	ret = need_l(L, l, name, &ly->router, 2, h, hp->n_expert, 0);
	if (ret < 0)
		return ret;
	ret = load_experts(L, l, moe);
	if (ret < 0 || !sh)
		return ret;
	if ((ret = need_l(L, l, "mlp.shared_expert.gate_proj.weight",
			  &ly->sh_gate, 2, h, sh, 0)) ||
	    (ret = need_l(L, l, "mlp.shared_expert.up_proj.weight",
			  &ly->sh_up, 2, h, sh, 0)) ||
	    (ret = need_l(L, l, "mlp.shared_expert.down_proj.weight",
			  &ly->sh_down, 2, sh, h, 0)) ||
	    (ret = need_l(L, l, "mlp.shared_expert_gate.weight",
			  &ly->sh_router, 2, h, 1, 0)))
		return ret;
	return 0;
}

/*
 * `path` is a model directory, its config.json, a *.safetensors file or a
 * *.safetensors.index.json: find the directory, config and weights.
 */
static int locate(struct st_loader *L, const char *path, char *config,
		  char *single)
{
	struct stat st;
	char *slash;
	int ret;

	if (stat(path, &st) < 0)
		return ec_err(-errno, "%s: %s", path, strerror(errno));
	if (snprintf(L->dir, PATH_MAX, "%s", path) >= PATH_MAX)
		return ec_err(-ENAMETOOLONG, "%s: path too long", path);
	if (!S_ISDIR(st.st_mode)) {
		slash = strrchr(L->dir, '/');
		if (slash == L->dir)
			slash[1] = 0;
		else if (slash)
			*slash = 0;
		else
			strcpy(L->dir, ".");
	}
	ret = join(config, L->dir, "config.json");
	if (ret < 0)
		return ret;
	if (!S_ISDIR(st.st_mode)) {
		if (ends_with(path, ".safetensors")) {
			strcpy(single, path);
			return 0;
		}
		if (ends_with(path, ".safetensors.index.json")) {
			strcpy(L->index_path, path);
			return 0;
		}
		strcpy(config, path);
	}
	if ((ret = join(single, L->dir, "model.safetensors")) < 0 ||
	    is_file(single))
		return ret;
	single[0] = 0;
	if ((ret = join(L->index_path, L->dir,
			"model.safetensors.index.json")) < 0 ||
	    is_file(L->index_path))
		return ret;
	return ec_err(-EC_EMISSING, "%s: neither model.safetensors nor "
		      "model.safetensors.index.json is there", L->dir);
}

int ec_model_load_safetensors(struct ec_model *m, const char *path)
{
	struct st_loader L = { .m = m };
	struct ec_hparams *hp = &m->hp;
	char config[PATH_MAX], single[PATH_MAX] = "";
	uint32_t l, i;
	int ret;

	m->format = EC_FORMAT_SAFETENSORS;
	ret = locate(&L, path, config, single);
	if (ret < 0)
		goto out;
	ret = ec_hf_config_load(config, hp, m->arch_name,
				sizeof(m->arch_name));
	if (ret < 0)
		goto out;
	if (hp->n_layer > 4096 || hp->n_expert > 65536) {
		ret = ec_err(-EC_EUNSUPPORTED, "%s: %u layers x %u experts is "
			     "beyond what expertcache supports", config,
			     hp->n_layer, hp->n_expert);
		goto out;
	}
	ret = single[0] ? add_shard(&L, single, single) : open_index(&L);
	if (ret < 0)
		goto out;

	ret = -ENOMEM;
	m->layers = calloc(hp->n_layer, sizeof(*m->layers));
	if (!m->layers)
		goto out;
	for (l = 0; l < hp->n_layer; l++) {
		m->layers[l].experts = calloc(hp->n_expert,
					      sizeof(*m->layers[l].experts));
		if (!m->layers[l].experts)
			goto out;
	}

	if ((ret = need(&L, "model.embed_tokens.weight", &m->tok_embd, 2,
			hp->n_embd, hp->n_vocab, 0)) ||
	    (ret = need(&L, "model.norm.weight", &m->output_norm, 1,
			hp->n_embd, 0, 0)))
		goto out;
	ret = hp->tied_embeddings ? 0 : lookup(&L, "lm_head.weight",
					       &m->output);
	if (ret < 0)
		goto out;
	if (ret)
		ret = need(&L, "lm_head.weight", &m->output, 2, hp->n_embd,
			   hp->n_vocab, 0);
	else {
		/* tied, or no lm_head saved: transformers ties them */
		m->output = m->tok_embd;
		hp->tied_embeddings = true;
	}
	if (ret < 0)
		goto out;
	for (l = 0; l < hp->n_layer; l++) {
		if ((ret = load_attention(&L, l)) || (ret = load_moe(&L, l)))
			goto out;
	}
	ret = ec_model_validate(m);
out:
	if (ret == -ENOMEM)
		ec_err(ret, "%s: out of memory", path);
	for (i = 0; i < L.n_shards; i++)
		ec_st_free(L.shards[i].st);
	free(L.shards);
	json_decref(L.index);
	return ret;
}
