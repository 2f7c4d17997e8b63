// SPDX-License-Identifier: MIT
/* Tests: the Hugging Face loader on tiny checkpoints written here. */
#include <dirent.h>
#include <jansson.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "ec_error.h"
#include "ec_model.h"
#include "ec_test.h"

/* Tiny dimensions: vocab, hidden, heads, kv heads, head_dim, experts, ff */
enum { V = 32, H = 16, NH = 4, NKV = 2, HD = 4, E = 4, FF = 8, SH = 12,
       NL = 2 };

struct wt {
	char name[96];
	const char *dtype;	/* F32 (element i = id * 65536 + i) or other */
	uint32_t nd;
	uint64_t shape[3];	/* torch order */
	int shard;
};

struct tmodel {
	char dir[64];
	enum ec_arch arch;
	int n;
	struct wt t[256];
};

static void add(struct tmodel *M, uint32_t nd, uint64_t d0, uint64_t d1,
		uint64_t d2, const char *fmt, ...)
{
	struct wt *w = &M->t[M->n++];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(w->name, sizeof(w->name), fmt, ap);
	va_end(ap);
	w->dtype = "F32";
	w->nd = nd;
	w->shape[0] = d0;
	w->shape[1] = d1;
	w->shape[2] = d2;
	w->shard = 0;
}

static int id_of(const struct tmodel *M, const char *name)
{
	int i;

	for (i = 0; i < M->n; i++)
		if (!strcmp(M->t[i].name, name))
			return i;
	return -1;
}

static void drop(struct tmodel *M, const char *name)
{
	int i = id_of(M, name);

	if (i >= 0)
		M->t[i].name[0] = 0;	/* written nowhere */
}

/* The tensors transformers would save for `arch` (see the loader). */
static void build(struct tmodel *M, enum ec_arch arch, bool fused,
		  bool tied)
{
	bool mix = arch == EC_ARCH_MIXTRAL;
	const char *moe = mix && !fused ? "block_sparse_moe" : "mlp";
	const char *g = mix ? "w1" : "gate_proj", *u = mix ? "w3" : "up_proj";
	const char *d = mix ? "w2" : "down_proj";
	int l, j;

	memset(M, 0, sizeof(*M));
	M->arch = arch;
	add(M, 2, V, H, 0, "model.embed_tokens.weight");
	add(M, 1, H, 0, 0, "model.norm.weight");
	if (!tied)
		add(M, 2, V, H, 0, "lm_head.weight");
	for (l = 0; l < NL; l++) {
#define P "model.layers.%d."
		add(M, 1, H, 0, 0, P "input_layernorm.weight", l);
		add(M, 1, H, 0, 0, P "post_attention_layernorm.weight", l);
		add(M, 2, NH * HD, H, 0, P "self_attn.q_proj.weight", l);
		add(M, 2, NKV * HD, H, 0, P "self_attn.k_proj.weight", l);
		add(M, 2, NKV * HD, H, 0, P "self_attn.v_proj.weight", l);
		add(M, 2, H, NH * HD, 0, P "self_attn.o_proj.weight", l);
		if (arch == EC_ARCH_QWEN2_MOE) {
			add(M, 1, NH * HD, 0, 0, P "self_attn.q_proj.bias", l);
			add(M, 1, NKV * HD, 0, 0, P "self_attn.k_proj.bias", l);
			add(M, 1, NKV * HD, 0, 0, P "self_attn.v_proj.bias", l);
		}
		if (arch == EC_ARCH_QWEN3_MOE || arch == EC_ARCH_OLMOE) {
			bool full = arch == EC_ARCH_OLMOE;

			add(M, 1, full ? NH * HD : HD, 0, 0,
			    P "self_attn.q_norm.weight", l);
			add(M, 1, full ? NKV * HD : HD, 0, 0,
			    P "self_attn.k_norm.weight", l);
		}
		add(M, 2, E, H, 0, P "%s.gate.weight", l, moe);
		if (fused) {
			add(M, 3, E, 2 * FF, H, P "%s.experts.gate_up_proj", l,
			    moe);
			add(M, 3, E, H, FF, P "%s.experts.down_proj", l, moe);
		}
		for (j = 0; j < E && !fused; j++) {
			add(M, 2, FF, H, 0, P "%s.experts.%d.%s.weight", l, moe,
			    j, g);
			add(M, 2, FF, H, 0, P "%s.experts.%d.%s.weight", l, moe,
			    j, u);
			add(M, 2, H, FF, 0, P "%s.experts.%d.%s.weight", l, moe,
			    j, d);
		}
		if (arch == EC_ARCH_QWEN2_MOE) {
#define S P "mlp.shared_expert"
			add(M, 2, SH, H, 0, S ".gate_proj.weight", l);
			add(M, 2, SH, H, 0, S ".up_proj.weight", l);
			add(M, 2, H, SH, 0, S ".down_proj.weight", l);
			add(M, 2, 1, H, 0, S "_gate.weight", l);
#undef S
		}
#undef P
	}
}

static const char *config_json(enum ec_arch arch, bool tied)
{
	static char buf[1024];
	static const char *const extra[] = {
		[EC_ARCH_QWEN3_MOE] = "\"model_type\":\"qwen3_moe\","
				      "\"moe_intermediate_size\":8,"
				      "\"num_local_experts\":4",
		[EC_ARCH_MIXTRAL] = "\"model_type\":\"mixtral\","
				    "\"intermediate_size\":8,"
				    "\"num_local_experts\":4",
		[EC_ARCH_OLMOE] = "\"model_type\":\"olmoe\","
				  "\"intermediate_size\":8,\"num_experts\":4",
		[EC_ARCH_QWEN2_MOE] = "\"model_type\":\"qwen2_moe\","
				      "\"moe_intermediate_size\":8,"
				      "\"shared_expert_intermediate_size\":12,"
				      "\"num_experts\":4",
	};

	snprintf(buf, sizeof(buf),
		 "{%s,\"vocab_size\":%d,\"hidden_size\":%d,"
		 "\"num_attention_heads\":%d,\"num_key_value_heads\":%d,"
		 "\"head_dim\":%d,\"num_hidden_layers\":%d,"
		 "\"num_experts_per_tok\":2,\"max_position_embeddings\":64,"
		 "\"tie_word_embeddings\":%s,\"rope_parameters\":"
		 "{\"rope_theta\":1000.0,\"rope_type\":\"default\"}}",
		 extra[arch], V, H, NH, NKV, HD, NL, tied ? "true" : "false");
	return buf;
}

static uint64_t nelems(const struct wt *w)
{
	uint64_t n = 1;
	uint32_t i;

	for (i = 0; i < w->nd; i++)
		n *= w->shape[i];
	return n;
}

static int write_file(const char *dir, const char *name, const void *p,
		      size_t n)
{
	char path[256];
	FILE *f;
	int ok;

	snprintf(path, sizeof(path), "%s/%s", dir, name);
	f = fopen(path, "wb");
	if (!f)
		return -1;
	ok = fwrite(p, 1, n, f) == n;
	return fclose(f) == 0 && ok ? 0 : -1;
}

/* Shard `s` of M as a safetensors file, header padded to 8 as upstream. */
static int write_shard(const struct tmodel *M, int s, const char *name)
{
	json_t *hdr = json_object();
	uint64_t off = 0, hl, n, i;
	uint8_t *buf, *p;
	char *txt;
	int k, ret;

	for (k = 0; k < M->n; k++) {
		const struct wt *w = &M->t[k];
		uint64_t bytes = nelems(w) * (strcmp(w->dtype, "BF16") ? 4 : 2);
		json_t *shape;

		if (!w->name[0] || w->shard != s)
			continue;
		shape = json_array();
		for (i = 0; i < w->nd; i++)
			json_array_append_new(shape, json_integer(w->shape[i]));
		json_object_set_new(hdr, w->name,
				    json_pack("{s:s, s:o, s:[I, I]}", "dtype",
					      w->dtype, "shape", shape,
					      "data_offsets", (json_int_t)off,
					      (json_int_t)(off + bytes)));
		off += bytes;
	}
	txt = json_dumps(hdr, JSON_COMPACT);
	json_decref(hdr);
	hl = (strlen(txt) + 7) / 8 * 8;
	buf = calloc(1, 8 + hl + off);
	for (i = 0; i < 8; i++)
		buf[i] = hl >> (8 * i);
	memset(buf + 8, ' ', hl);
	memcpy(buf + 8, txt, strlen(txt));
	free(txt);
	p = buf + 8 + hl;
	for (k = 0; k < M->n; k++) {
		const struct wt *w = &M->t[k];

		if (!w->name[0] || w->shard != s)
			continue;
		n = nelems(w);
		for (i = 0; i < n; i++) {
			float v = (float)k * 65536 + i;
			uint32_t bits;

			memcpy(&bits, &v, 4);
			if (!strcmp(w->dtype, "BF16")) {
				memcpy(p, (uint8_t *)&bits + 2, 2);
				p += 2;
				continue;
			}
			if (!strcmp(w->dtype, "I32"))
				bits = k * 65536 + i;
			memcpy(p, &bits, 4);
			p += 4;
		}
	}
	ret = write_file(M->dir, name, buf, 8 + hl + off);
	free(buf);
	return ret;
}

/*
 * Write config.json and the weights: one model.safetensors, or `nshards`
 * shards (tensor k in shard k % nshards) with an index.  `index_lie`: the
 * index names shard 0 for the tensor of that id (when >= 0).
 */
static int write_model(struct tmodel *M, bool tied, int nshards,
		       int index_lie)
{
	const char *cfg = config_json(M->arch, tied);
	json_t *map, *idx;
	char name[128];
	int k, s, ret;

	strcpy(M->dir, "/tmp/ec_stl_XXXXXX");
	if (!mkdtemp(M->dir))
		return -1;
	ret = write_file(M->dir, "config.json", cfg, strlen(cfg));
	if (nshards == 1)
		return ret ? ret : write_shard(M, 0, "model.safetensors");
	map = json_object();
	for (k = 0; k < M->n; k++) {
		M->t[k].shard = k % nshards;
		snprintf(name, sizeof(name), "model-%05d-of-%05d.safetensors",
			 (k == index_lie ? 0 : k % nshards) + 1, nshards);
		if (M->t[k].name[0])
			json_object_set_new(map, M->t[k].name,
					    json_string(name));
	}
	for (s = 0; s < nshards && !ret; s++) {
		snprintf(name, sizeof(name), "model-%05d-of-%05d.safetensors",
			 s + 1, nshards);
		ret = write_shard(M, s, name);
	}
	idx = json_pack("{s:{s:i}, s:o}", "metadata", "total_size", 0,
			"weight_map", map);
	snprintf(name, sizeof(name), "%s/model.safetensors.index.json",
		 M->dir);
	if (!ret)
		ret = json_dump_file(idx, name, JSON_INDENT(2));
	json_decref(idx);
	return ret;
}

static void remove_dir(const char *dir)
{
	char path[512];
	struct dirent *e;
	DIR *d = opendir(dir);

	while (d && (e = readdir(d))) {
		if (e->d_name[0] == '.')
			continue;
		snprintf(path, sizeof(path), "%s/%s", dir, e->d_name);
		unlink(path);
	}
	if (d)
		closedir(d);
	rmdir(dir);
}

static float at(const struct ec_tensor *t, uint64_t i)
{
	float v;

	memcpy(&v, (const uint8_t *)t->data + 4 * i, 4);
	return v;
}

/*
 * `t` is the view of tensor `name` starting `first` elements in, with
 * ggml shape [ne0, ne1], mapped where its file and offset say.
 */
static bool view_ok(const struct ec_model *m, const struct tmodel *M,
		    const struct ec_tensor *t, const char *name,
		    uint64_t first, uint64_t ne0, uint64_t ne1)
{
	int k = id_of(M, name);
	uint64_t n = ne0 * (ne1 ? ne1 : 1);

	if (k < 0 || !t->data || t->type != EC_F32 || t->ne[0] != ne0 ||
	    (ne1 && t->ne[1] != ne1) || ec_tensor_nelems(t) != n ||
	    t->nbytes != 4 * n || t->file >= m->n_files ||
	    t->data != m->files[t->file].map + t->offset) {
		fprintf(stderr, "view of %s: wrong shape/place\n", name);
		return false;
	}
	if (at(t, 0) != (float)k * 65536 + first ||
	    at(t, n - 1) != (float)k * 65536 + first + n - 1) {
		fprintf(stderr, "view of %s: data %g, want %g\n", name,
			at(t, 0), (float)k * 65536 + first);
		return false;
	}
	return true;
}

/* Every expert and a sample of the other tensors point at the right data */
static void check_model(const struct ec_model *m, const struct tmodel *M,
			bool fused, bool tied, const char *what)
{
	bool mix = M->arch == EC_ARCH_MIXTRAL;
	const char *moe = mix && !fused ? "block_sparse_moe" : "mlp";
	const char *part[3][2] = { { "gate_proj", "w1" }, { "up_proj", "w3" },
				   { "down_proj", "w2" } };
	char name[128], gu[128], dn[128];
	int bad = 0, l, j, p;

	EC_CHECK(m->hp.arch == M->arch && m->hp.n_layer == NL &&
			 m->hp.n_expert == E && m->hp.n_ff_exp == FF &&
			 m->hp.head_dim == HD && m->hp.rope_theta == 1000.0f &&
			 m->format == EC_FORMAT_SAFETENSORS &&
			 !strcmp(m->arch_name, ec_arch_name(M->arch)),
		 "%s: hparams", what);
	EC_CHECK(view_ok(m, M, &m->tok_embd, "model.embed_tokens.weight", 0,
			 H, V) &&
			 view_ok(m, M, &m->output_norm, "model.norm.weight", 0,
				 H, 0),
		 "%s: embeddings", what);
	if (tied)
		EC_CHECK(m->output.data == m->tok_embd.data,
			 "%s: output not tied", what);
	else if (m->output.type == EC_F32)
		EC_CHECK(view_ok(m, M, &m->output, "lm_head.weight", 0, H, V),
			 "%s: lm_head", what);
	for (l = 0; l < NL; l++) {
		const struct ec_layer *L = &m->layers[l];

		snprintf(name, sizeof(name),
			 "model.layers.%d.self_attn.k_proj.weight", l);
		bad += !view_ok(m, M, &L->wk, name, 0, H, NKV * HD);
		snprintf(name, sizeof(name),
			 "model.layers.%d.self_attn.o_proj.weight", l);
		bad += !view_ok(m, M, &L->wo, name, 0, NH * HD, H);
		snprintf(name, sizeof(name), "model.layers.%d.%s.gate.weight",
			 l, moe);
		bad += !view_ok(m, M, &L->router, name, 0, H, E);
		snprintf(gu, sizeof(gu),
			 "model.layers.%d.%s.experts.gate_up_proj", l, moe);
		snprintf(dn, sizeof(dn),
			 "model.layers.%d.%s.experts.down_proj", l, moe);
		for (j = 0; j < E; j++) {
			const struct ec_tensor *w = L->experts[j].w;

			if (fused) {
				bad += !view_ok(m, M, &w[0], gu,
						j * 2 * FF * H, H, FF);
				bad += !view_ok(m, M, &w[1], gu,
						j * 2 * FF * H + FF * H, H, FF);
				bad += !view_ok(m, M, &w[2], dn, j * H * FF,
						FF, H);
				continue;
			}
			for (p = 0; p < 3; p++) {
				snprintf(name, sizeof(name),
					 "model.layers.%d.%s.experts.%d.%s."
					 "weight", l, moe, j, part[p][mix]);
				bad += !view_ok(m, M, &w[p], name, 0,
						p == 2 ? FF : H,
						p == 2 ? H : FF);
			}
		}
		if (M->arch == EC_ARCH_QWEN2_MOE) {
			snprintf(name, sizeof(name),
				 "model.layers.%d.self_attn.v_proj.bias", l);
			bad += !view_ok(m, M, &L->bv, name, 0, NKV * HD, 0);
			snprintf(name, sizeof(name), "model.layers.%d.mlp."
				 "shared_expert.down_proj.weight", l);
			bad += !view_ok(m, M, &L->sh_down, name, 0, SH, H);
			snprintf(name, sizeof(name), "model.layers.%d.mlp."
				 "shared_expert_gate.weight", l);
			bad += !view_ok(m, M, &L->sh_router, name, 0, H, 1);
		}
		if (M->arch == EC_ARCH_OLMOE) {
			snprintf(name, sizeof(name),
				 "model.layers.%d.self_attn.q_norm.weight", l);
			bad += !view_ok(m, M, &L->q_norm, name, 0, NH * HD, 0);
		}
	}
	EC_CHECK(bad == 0, "%s: %d views wrong", what, bad);
}

/* Build, write, open `path_suffix` under the directory, check. */
static void good(enum ec_arch arch, bool fused, bool tied, int nshards,
		 const char *path_suffix, const char *what)
{
	static struct tmodel M;
	struct ec_model *m = NULL;
	char path[128];
	int ret;

	build(&M, arch, fused, tied);
	if (arch == EC_ARCH_QWEN2_MOE)
		M.t[id_of(&M, "lm_head.weight")].dtype = "BF16";
	EC_CHECK(write_model(&M, tied, nshards, -1) == 0, "%s: write", what);
	snprintf(path, sizeof(path), "%s%s", M.dir, path_suffix);
	ret = ec_model_open(path, &m);
	EC_CHECK(ret == 0, "%s: open: %d %s", what, ret, ec_error_msg());
	if (!ret) {
		check_model(m, &M, fused, tied, what);
		EC_CHECK(m->n_files == (uint32_t)nshards, "%s: %u files", what,
			 m->n_files);
		if (arch == EC_ARCH_QWEN2_MOE)
			EC_CHECK(m->output.type == EC_BF16 &&
					 m->output.nbytes == 2 * V * H &&
					 m->hp.attn_bias &&
					 m->hp.n_ff_shexp == SH,
				 "%s: BF16 lm_head", what);
	}
	ec_model_close(m);
	remove_dir(M.dir);
}

static bool has_all(const char *msg, const char *a, const char *b)
{
	return strstr(msg, a) && (!b || strstr(msg, b));
}

/* A broken checkpoint: open must fail with err and a message with sub. */
static void bad(struct tmodel *M, int nshards, int index_lie, int err,
		const char *sub1, const char *sub2)
{
	struct ec_model *m = (void *)1;
	int ret;

	EC_CHECK(write_model(M, false, nshards, index_lie) == 0, "write");
	ret = ec_model_open(M->dir, &m);
	EC_CHECK(ret == err && !m && has_all(ec_error_msg(), sub1, sub2),
		 "got %d '%s', want %d '%s' '%s'", ret, ec_error_msg(), err,
		 sub1, sub2);
	remove_dir(M->dir);
}

static void test_broken(void)
{
	static struct tmodel M;
	struct ec_model *m;
	char path[256];
	FILE *f;
	int ret;

	build(&M, EC_ARCH_QWEN3_MOE, false, false);
	drop(&M, "model.layers.1.mlp.experts.3.up_proj.weight");
	bad(&M, 1, -1, -EC_EMISSING,
	    "'model.layers.1.mlp.experts.3.up_proj.weight' is missing",
	    "model.safetensors");

	build(&M, EC_ARCH_QWEN3_MOE, false, false);
	M.t[id_of(&M, "model.layers.0.self_attn.q_proj.weight")].shape[0] = 12;
	bad(&M, 2, -1, -EC_ESHAPE, "q_proj.weight' has shape [12, 16]",
	    "expected [16, 16]");

	build(&M, EC_ARCH_QWEN3_MOE, true, false);
	M.t[id_of(&M, "model.layers.1.mlp.experts.down_proj")].shape[2] = 4;
	bad(&M, 1, -1, -EC_ESHAPE, "down_proj' has shape [4, 16, 4]",
	    "expected [4, 16, 8]");

	build(&M, EC_ARCH_MIXTRAL, false, false);
	M.t[id_of(&M, "model.layers.1.block_sparse_moe.gate.weight")].dtype =
		"I32";
	bad(&M, 1, -1, -EC_EUNSUPPORTED, "block_sparse_moe.gate.weight'",
	    "I32");

	build(&M, EC_ARCH_OLMOE, false, false);
	bad(&M, 3, id_of(&M, "model.layers.0.self_attn.k_norm.weight"),
	    -EC_EFORMAT, "k_norm.weight' is not in shard", "index");

	/* no lm_head saved, though not tied: transformers ties them */
	build(&M, EC_ARCH_QWEN3_MOE, false, true);
	EC_CHECK(write_model(&M, false, 1, -1) == 0, "write");
	ret = ec_model_open(M.dir, &m);
	EC_CHECK(ret == 0 && m->output.data == m->tok_embd.data &&
			 m->hp.tied_embeddings,
		 "lm_head absent: %d %s", ret, ec_error_msg());
	ec_model_close(ret ? NULL : m);
	remove_dir(M.dir);

	/* shard missing, outside the directory, truncated; no weights */
	build(&M, EC_ARCH_QWEN2_MOE, false, false);
	EC_CHECK(write_model(&M, false, 2, -1) == 0, "write");
	snprintf(path, sizeof(path), "%s/model-00002-of-00002.safetensors",
		 M.dir);
	EC_CHECK(truncate(path, 4000) == 0, "truncate");
	ret = ec_model_open(M.dir, &m);
	EC_CHECK(ret == -EC_EFORMAT && has_all(ec_error_msg(), path, NULL),
		 "truncated shard: %d %s", ret, ec_error_msg());
	unlink(path);
	ret = ec_model_open(M.dir, &m);
	EC_CHECK(ret == -ENOENT && has_all(ec_error_msg(), path, NULL),
		 "absent shard: %d %s", ret, ec_error_msg());
	snprintf(path, sizeof(path), "%s/model.safetensors.index.json", M.dir);
	f = fopen(path, "w");
	fputs("{\"weight_map\": {\"model.norm.weight\": "
	      "\"../model.safetensors\"}}", f);
	fclose(f);
	ret = ec_model_open(M.dir, &m);
	EC_CHECK(ret == -EC_EFORMAT && has_all(ec_error_msg(),
					       "../model.safetensors", path),
		 "shard outside the directory: %d %s", ret, ec_error_msg());
	unlink(path);
	ret = ec_model_open(M.dir, &m);
	EC_CHECK(ret == -EC_EMISSING && has_all(ec_error_msg(), M.dir,
						"model.safetensors"),
		 "no weights: %d %s", ret, ec_error_msg());
	remove_dir(M.dir);
}

int main(void)
{
	good(EC_ARCH_QWEN3_MOE, false, false, 1, "", "qwen3_moe");
	good(EC_ARCH_QWEN3_MOE, false, false, 1, "/config.json",
	     "qwen3_moe via config.json");
	good(EC_ARCH_QWEN3_MOE, false, false, 1, "/model.safetensors",
	     "qwen3_moe via model.safetensors");
	good(EC_ARCH_QWEN3_MOE, true, false, 3, "",
	     "qwen3_moe fused, 3 shards");
	good(EC_ARCH_MIXTRAL, false, false, 2, "/model.safetensors.index.json",
	     "mixtral, 2 shards");
	good(EC_ARCH_MIXTRAL, true, false, 1, "", "mixtral fused");
	good(EC_ARCH_OLMOE, false, true, 1, "", "olmoe tied");
	good(EC_ARCH_OLMOE, true, false, 2, "", "olmoe fused, 2 shards");
	good(EC_ARCH_QWEN2_MOE, false, false, 2, "", "qwen2_moe, 2 shards");
	good(EC_ARCH_QWEN2_MOE, true, false, 1, "", "qwen2_moe fused");
	test_broken();
	return ec_test_done();
}
