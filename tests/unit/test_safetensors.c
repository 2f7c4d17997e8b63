// SPDX-License-Identifier: MIT
/* Tests: safetensors header parser and config.json parsing. */
#include <dirent.h>
#include <jansson.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "ec_error.h"
#include "ec_model.h"
#include "ec_safetensors.h"
#include "ec_test.h"
#include "hfconfig.h"

#define FN "t.safetensors"

/* u64 header length + header + data_len bytes (byte i = i & 0xff) */
static uint8_t *img_make(const char *hdr, size_t data_len, size_t *size)
{
	size_t hl = strlen(hdr), i;
	uint8_t *p = malloc(8 + hl + data_len + 1);

	for (i = 0; i < 8; i++)
		p[i] = (uint64_t)hl >> (8 * i);
	memcpy(p + 8, hdr, hl);
	for (i = 0; i < data_len; i++)
		p[8 + hl + i] = i;
	*size = 8 + hl + data_len;
	return p;
}

static bool has(const char *msg, const char *sub)
{
	return strstr(msg, sub) != NULL;
}

/* Parsing must fail with `err` and a message holding `sub`. */
static void expect_fail(const char *hdr, size_t data_len, int err,
			const char *sub)
{
	struct ec_st_file *f = (void *)1;
	size_t n;
	uint8_t *p = img_make(hdr, data_len, &n);
	int ret = ec_st_parse_header(p, n, FN, &f);

	EC_CHECK(ret == err && !f, "header %s: got %d (%s), want %d", hdr, ret,
		 ec_error_msg(), err);
	EC_CHECK(has(ec_error_msg(), sub) && has(ec_error_msg(), FN),
		 "header %s: message '%s' lacks '%s'", hdr, ec_error_msg(),
		 sub);
	ec_st_free(f);
	free(p);
}

static const char *valid_hdr =
	"{\"__metadata__\":{\"format\":\"pt\"},"
	"\"b\":{\"dtype\":\"BF16\",\"shape\":[4],\"data_offsets\":[24,32]},"
	"\"a\":{\"dtype\":\"F32\",\"shape\":[2,3],\"data_offsets\":[0,24]},"
	"\"z\":{\"dtype\":\"F16\",\"shape\":[0,5],\"data_offsets\":[32,32]},"
	"\"i\":{\"dtype\":\"I64\",\"shape\":[1],\"data_offsets\":[32,40]},"
	"\"big\":{\"dtype\":\"F32\",\"shape\":[1,1,1,1,2],"
	"\"data_offsets\":[40,48]}}  ";

static void test_valid(void)
{
	struct ec_st_file *f;
	struct ec_tensor t;
	size_t n, hl = strlen(valid_hdr);
	uint8_t *p = img_make(valid_hdr, 48, &n);
	const struct ec_st_tensor *a;
	int ret;

	ret = ec_st_parse_header(p, n, FN, &f);
	EC_CHECK(ret == 0, "valid header: %d %s", ret, ec_error_msg());
	if (ret) {
		free(p);
		return;
	}
	EC_CHECK(f->n_tensors == 5, "%u tensors, metadata not skipped?",
		 f->n_tensors);
	EC_CHECK(f->header_len == hl && f->data_offset == 8 + hl,
		 "header_len %llu", (unsigned long long)f->header_len);
	a = ec_st_find(f, "a");
	EC_CHECK(a && a->supported && a->view.type == EC_F32 &&
			 a->view.n_dims == 2 && a->view.ne[0] == 3 &&
			 a->view.ne[1] == 2 && a->view.ne[2] == 1 &&
			 a->view.nbytes == 24,
		 "tensor a: ggml order [3, 2] F32");
	EC_CHECK(!ec_st_find(f, "__metadata__") && !ec_st_find(f, "c"),
		 "absent names found");
	EC_CHECK(ec_st_get(f, "b", 7, &t) == 0 && t.file == 7 &&
			 t.type == EC_BF16 && t.offset == 8 + hl + 24 &&
			 t.data == p + 8 + hl + 24 && t.nbytes == 8 &&
			 ((const uint8_t *)t.data)[0] == 24,
		 "tensor b view: offset %llu", (unsigned long long)t.offset);
	EC_CHECK(ec_st_get(f, "z", 0, &t) == 0 && t.nbytes == 0 &&
			 t.ne[0] == 5 && t.ne[1] == 0 && t.type == EC_F16,
		 "zero-size tensor");
	ret = ec_st_get(f, "i", 0, &t);
	EC_CHECK(ret == -EC_EUNSUPPORTED && has(ec_error_msg(), "'i'") &&
			 has(ec_error_msg(), "I64"),
		 "I64 tensor: %d %s", ret, ec_error_msg());
	ret = ec_st_get(f, "big", 0, &t);
	EC_CHECK(ret == -EC_EUNSUPPORTED && has(ec_error_msg(), "5 dim"),
		 "5-D tensor: %d %s", ret, ec_error_msg());
	ret = ec_st_get(f, "nope", 0, &t);
	EC_CHECK(ret == -EC_EMISSING && has(ec_error_msg(), "'nope'"),
		 "missing tensor: %d %s", ret, ec_error_msg());
	ec_st_free(f);

	/* every truncation of the file must fail cleanly */
	ret = 0;
	for (size_t k = 0; k < n; k++) {
		f = (void *)1;
		if (ec_st_parse_header(p, k, FN, &f) >= 0 || f)
			ret++;
		ec_st_free(f);
	}
	EC_CHECK(ret == 0, "%d truncated images accepted", ret);
	free(p);

	p = img_make("{}", 0, &n);
	EC_CHECK(ec_st_parse_header(p, n, FN, &f) == 0 && f->n_tensors == 0,
		 "empty header: %s", ec_error_msg());
	ec_st_free(f);
	free(p);
}

static void test_header_length(void)
{
	struct ec_st_file *f;
	uint8_t buf[64] = { 0 };
	int ret;

	memcpy(buf + 8, "{}", 2);
	buf[0] = 3;	/* header length 3 in a 10-byte file */
	ret = ec_st_parse_header(buf, 10, FN, &f);
	EC_CHECK(ret == -EC_EFORMAT && has(ec_error_msg(), "past the end"),
		 "length > file: %d %s", ret, ec_error_msg());
	buf[0] = 0;
	buf[4] = 1;	/* 4 GiB */
	ret = ec_st_parse_header(buf, sizeof(buf), FN, &f);
	EC_CHECK(ret == -EC_EFORMAT && has(ec_error_msg(), "limit"),
		 "length > cap: %d %s", ret, ec_error_msg());
	memset(buf, 0xff, 8);
	ret = ec_st_parse_header(buf, sizeof(buf), FN, &f);
	EC_CHECK(ret == -EC_EFORMAT, "length 2^64-1: %d", ret);
	ret = ec_st_parse_header(buf, 7, FN, &f);
	EC_CHECK(ret == -EC_EFORMAT && has(ec_error_msg(), "too short"),
		 "7-byte file: %d %s", ret, ec_error_msg());
	ret = ec_st_parse_header(NULL, 0, FN, &f);
	EC_CHECK(ret == -EC_EFORMAT, "empty file: %d", ret);
}

#define T(s) "{\"t\":{" s "}}"

static void test_malformed(void)
{
	expect_fail("{\"t\":", 0, -EC_EFORMAT, "JSON");
	expect_fail("{\"t\":{}} x", 0, -EC_EFORMAT, "JSON");
	expect_fail("[1, 2]", 0, -EC_EFORMAT, "'{'");
	expect_fail(" {}", 0, -EC_EFORMAT, "'{'");
	expect_fail("{\"t\":3}", 0, -EC_EFORMAT, "'t'");
	expect_fail("{\"a\":1,\"a\":2}", 0, -EC_EFORMAT, "duplicate");
	expect_fail("{\"__metadata__\":[]}", 0, -EC_EFORMAT, "__metadata__");
	expect_fail("{\"t\xff\":{}}", 0, -EC_EFORMAT, "JSON");
	/* missing or mistyped fields */
	expect_fail(T("\"shape\":[1],\"data_offsets\":[0,4]"), 4, -EC_EFORMAT,
		    "'dtype' is missing");
	expect_fail(T("\"dtype\":\"F32\",\"data_offsets\":[0,4]"), 4,
		    -EC_EFORMAT, "'shape' is missing");
	expect_fail(T("\"dtype\":\"F32\",\"shape\":[1]"), 4, -EC_EFORMAT,
		    "'data_offsets' is missing");
	expect_fail(T("\"dtype\":5,\"shape\":[1],\"data_offsets\":[0,4]"), 4,
		    -EC_EFORMAT, "'dtype'");
	expect_fail(T("\"dtype\":\"F32\",\"shape\":{},\"data_offsets\":[0,4]"),
		    4, -EC_EFORMAT, "'shape'");
	expect_fail(T("\"dtype\":\"F32\",\"shape\":[1],"
		      "\"data_offsets\":[0,4,4]"), 4, -EC_EFORMAT,
		    "data_offsets");
	expect_fail(T("\"dtype\":\"F32\",\"shape\":[-1],"
		      "\"data_offsets\":[0,4]"), 4, -EC_EFORMAT, "shape[0]");
	expect_fail(T("\"dtype\":\"F32\",\"shape\":[1.0],"
		      "\"data_offsets\":[0,4]"), 4, -EC_EFORMAT, "shape[0]");
	expect_fail(T("\"dtype\":\"F32\",\"shape\":[1],"
		      "\"data_offsets\":[0,\"4\"]"), 4, -EC_EFORMAT,
		    "data_offsets");
	expect_fail(T("\"dtype\":\"F32\",\"shape\":[1],"
		      "\"data_offsets\":[-4,0]"), 4, -EC_EFORMAT,
		    "data_offsets");
	/* dtypes */
	expect_fail(T("\"dtype\":\"Q4\",\"shape\":[1],\"data_offsets\":[0,4]"),
		    4, -EC_EUNSUPPORTED, "'Q4'");
	expect_fail(T("\"dtype\":\"F4\",\"shape\":[3],\"data_offsets\":[0,1]"),
		    1, -EC_EFORMAT, "whole bytes");
}

static void test_offsets(void)
{
	/* shape/offset mismatch, past the end, reversed */
	expect_fail(T("\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,4]"),
		    4, -EC_EFORMAT, "need 8");
	expect_fail(T("\"dtype\":\"BF16\",\"shape\":[2,2],"
		      "\"data_offsets\":[0,16]"), 16, -EC_EFORMAT, "need 8");
	expect_fail(T("\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]"),
		    4, -EC_EFORMAT, "past the 4 bytes");
	expect_fail(T("\"dtype\":\"F32\",\"shape\":[0],\"data_offsets\":[8,0]"),
		    8, -EC_EFORMAT, "end before");
	expect_fail(T("\"dtype\":\"F32\",\"shape\":[1],"
		      "\"data_offsets\":[0,9223372036854775807]"),
		    4, -EC_EFORMAT, "past the 4 bytes");
	expect_fail(T("\"dtype\":\"F32\",\"shape\":[1],"
		      "\"data_offsets\":[0,18446744073709551615]"),
		    4, -EC_EFORMAT, "too big integer");
	/* overflowing shapes */
	expect_fail(T("\"dtype\":\"F32\",\"shape\":[4294967296,4294967296,"
		      "4294967296],\"data_offsets\":[0,4]"), 4, -EC_EFORMAT,
		    "overflow");
	expect_fail(T("\"dtype\":\"F32\",\"shape\":[4611686018427387904,4],"
		      "\"data_offsets\":[0,4]"), 4, -EC_EFORMAT, "overflow");
	expect_fail(T("\"dtype\":\"F32\",\"shape\":[2305843009213693952,"
		      "1],\"data_offsets\":[0,0]"), 0, -EC_EFORMAT,
		    "overflow");
	/* tiling: overlap, hole, trailing bytes, not starting at 0 */
	expect_fail("{\"a\":{\"dtype\":\"F32\",\"shape\":[2],"
		    "\"data_offsets\":[0,8]},\"b\":{\"dtype\":\"F32\","
		    "\"shape\":[2],\"data_offsets\":[4,12]}}", 12,
		    -EC_EFORMAT, "overlap");
	expect_fail("{\"a\":{\"dtype\":\"F32\",\"shape\":[1],"
		    "\"data_offsets\":[0,4]},\"b\":{\"dtype\":\"F32\","
		    "\"shape\":[1],\"data_offsets\":[8,12]}}", 12,
		    -EC_EFORMAT, "gap");
	expect_fail(T("\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[4,8]"),
		    8, -EC_EFORMAT, "gap");
	expect_fail(T("\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]"),
		    5, -EC_EFORMAT, "cover 4 bytes");
}

/* Read a whole file (NULL if it cannot) */
static uint8_t *slurp(const char *path, size_t *size)
{
	FILE *fp = fopen(path, "rb");
	uint8_t *p = NULL;
	long n;

	if (!fp)
		return NULL;
	if (fseek(fp, 0, SEEK_END) == 0 && (n = ftell(fp)) >= 0 &&
	    fseek(fp, 0, SEEK_SET) == 0 && (p = malloc(n + 1)) &&
	    fread(p, 1, n, fp) == (size_t)n)
		*size = n;
	else {
		free(p);
		p = NULL;
	}
	fclose(fp);
	return p;
}

static float f32_at(const struct ec_tensor *t, uint64_t i)
{
	uint16_t h;
	float v;

	if (t->type == EC_F32) {
		memcpy(&v, (const uint8_t *)t->data + 4 * i, 4);
		return v;
	}
	memcpy(&h, (const uint8_t *)t->data + 2 * i, 2);
	return t->type == EC_F16 ? ec_f16_to_f32(h) : ec_bf16_to_f32(h);
}

/*
 * The fuzz seeds, written by the reference `safetensors` package
 * (tests/fuzz/make_safetensors_seeds.py), parse to what that script wrote.
 */
static void test_seeds(void)
{
	static const char *const seeds[] = { "minimal", "all_dtypes",
					     "shapes" };
	static const char *const other[] = { "F64", "I64", "I32", "I16",
					     "I8", "U8", "BOOL" };
	struct ec_st_file *f;
	struct ec_tensor t;
	char path[128], name[32];
	size_t n, k, i, bad;
	uint8_t *p;
	int ret;

	for (k = 0; k < 3; k++) {
		snprintf(path, sizeof(path),
			 "tests/fuzz/corpus/safetensors/%s.safetensors",
			 seeds[k]);
		p = slurp(path, &n);
		if (!p) {
			EC_SKIP("%s unreadable (run from the repository root)",
				path);
			continue;
		}
		ret = ec_st_parse_header(p, n, path, &f);
		EC_CHECK(ret == 0, "%s: %s", path, ec_error_msg());
		if (ret) {
			free(p);
			continue;
		}
		ret = ec_st_get(f, "seed.ramp", 0, &t);
		for (i = 0, bad = 0; !ret && i < 6; i++)
			bad += f32_at(&t, i) != i;
		EC_CHECK(!ret && t.type == EC_F32 && t.ne[0] == 3 &&
				 t.ne[1] == 2 && t.n_dims == 2 && !bad,
			 "%s: seed.ramp", path);
		if (k == 1) {
			EC_CHECK(ec_st_get(f, "dtype.F16", 0, &t) == 0 &&
					 f32_at(&t, 0) == 1 &&
					 f32_at(&t, 1) == 2 &&
					 !ec_st_get(f, "dtype.BF16", 0, &t) &&
					 t.type == EC_BF16 &&
					 f32_at(&t, 1) == 2,
				 "%s: F16/BF16 values", path);
			for (i = 0, bad = 0; i < 7; i++) {
				snprintf(name, sizeof(name), "dtype.%s",
					 other[i]);
				bad += ec_st_get(f, name, 0, &t) !=
					       -EC_EUNSUPPORTED ||
				       !has(ec_error_msg(), other[i]) ||
				       !ec_st_find(f, name);
			}
			EC_CHECK(f->n_tensors == 11 && !bad,
				 "%s: %zu unsupported dtypes mishandled", path,
				 bad);
		}
		if (k == 2) {
			EC_CHECK(ec_st_get(f, "empty", 0, &t) == 0 &&
					 t.type == EC_F16 && t.ne[0] == 4 &&
					 t.ne[1] == 0 && t.nbytes == 0,
				 "%s: empty", path);
			EC_CHECK(ec_st_get(f, "scalar", 0, &t) == 0 &&
					 t.n_dims == 0 &&
					 ec_tensor_nelems(&t) == 1 &&
					 f32_at(&t, 0) == 7,
				 "%s: scalar", path);
			EC_CHECK(ec_st_get(f, "rank5", 0, &t) ==
					 -EC_EUNSUPPORTED,
				 "%s: rank5", path);
			/* [E=2, 4, 3]: element (1, 2, 1) = 12 + 6 + 1 */
			snprintf(path, sizeof(path), "model.layers.0.mlp."
				 "experts.gate_up_proj");
			ret = ec_st_get(f, path, 0, &t);
			EC_CHECK(ret == 0 && t.type == EC_BF16 &&
					 t.ne[0] == 3 && t.ne[1] == 4 &&
					 t.ne[2] == 2 && f32_at(&t, 19) == 19,
				 "%s: stacked", path);
		}
		ec_st_free(f);
		for (i = 0, bad = 0; i < n; i++) {
			f = NULL;
			bad += ec_st_parse_header(p, i, path, &f) >= 0;
			ec_st_free(f);
		}
		EC_CHECK(!bad, "%s: %zu truncations accepted", path, bad);
		free(p);
	}
}

/* ---- config.json ---- */

static int cfg(const char *json, struct ec_hparams *hp)
{
	char mt[32] = "";

	memset(hp, 0xa5, sizeof(*hp));
	return ec_hf_config_parse(json, strlen(json), "config.json", hp, mt,
				  sizeof(mt));
}

static void cfg_fail(const char *json, int err, const char *sub)
{
	struct ec_hparams hp;
	int ret = cfg(json, &hp);

	EC_CHECK(ret == err && has(ec_error_msg(), sub) &&
			 has(ec_error_msg(), "config.json"),
		 "config %s: got %d '%s', want %d '%s'", json, ret,
		 ec_error_msg(), err, sub);
}

/* Expected values were read back with transformers 5.23's AutoConfig. */
static void test_config(void)
{
	struct ec_hparams hp;
	char mt[32];
	int ret;

	ret = cfg("{\"architectures\":[\"Qwen3MoeForCausalLM\"],"
		  "\"attention_bias\":false,\"bos_token_id\":null,"
		  "\"decoder_sparse_step\":1,\"eos_token_id\":null,"
		  "\"head_dim\":16,\"hidden_act\":\"silu\",\"hidden_size\":64,"
		  "\"intermediate_size\":128,\"max_position_embeddings\":32768,"
		  "\"mlp_only_layers\":[],\"model_type\":\"qwen3_moe\","
		  "\"moe_intermediate_size\":32,\"norm_topk_prob\":false,"
		  "\"num_attention_heads\":4,\"num_experts_per_tok\":2,"
		  "\"num_hidden_layers\":2,\"num_key_value_heads\":2,"
		  "\"num_local_experts\":8,\"rms_norm_eps\":1e-06,"
		  "\"rope_parameters\":{\"rope_theta\":10000.0,"
		  "\"rope_type\":\"default\"},\"sliding_window\":null,"
		  "\"tie_word_embeddings\":false,\"use_sliding_window\":false,"
		  "\"vocab_size\":128}", &hp);
	EC_CHECK(ret == 0 && hp.arch == EC_ARCH_QWEN3_MOE && hp.n_layer == 2 &&
			 hp.n_embd == 64 && hp.n_head == 4 &&
			 hp.n_head_kv == 2 && hp.head_dim == 16 &&
			 hp.n_vocab == 128 && hp.n_ctx == 32768 &&
			 hp.n_expert == 8 && hp.n_expert_used == 2 &&
			 hp.n_ff_exp == 32 && hp.n_ff_shexp == 0 &&
			 hp.rms_eps == 1e-6f && hp.rope_theta == 10000.0f &&
			 hp.rope_style == EC_ROPE_NEOX &&
			 hp.qk_norm == EC_QK_NORM_HEAD && !hp.norm_topk_prob &&
			 !hp.attn_bias && !hp.tied_embeddings &&
			 hp.clip_qkv == 0 && hp.bos_token == -1 &&
			 hp.eos_token == -1,
		 "qwen3_moe (transformers 5): %d %s", ret, ec_error_msg());

	ret = cfg("{\"model_type\":\"qwen3_moe\",\"hidden_size\":2048,"
		  "\"num_hidden_layers\":48,\"num_attention_heads\":32,"
		  "\"num_key_value_heads\":4,\"head_dim\":128,"
		  "\"vocab_size\":151936,\"max_position_embeddings\":40960,"
		  "\"num_experts\":128,\"num_experts_per_tok\":8,"
		  "\"moe_intermediate_size\":768,\"rms_norm_eps\":1e-06,"
		  "\"rope_theta\":1000000.0,\"rope_scaling\":null,"
		  "\"norm_topk_prob\":true,\"bos_token_id\":151643,"
		  "\"eos_token_id\":151645,\"use_sliding_window\":false,"
		  "\"sliding_window\":null,\"max_window_layers\":48}", &hp);
	EC_CHECK(ret == 0 && hp.n_layer == 48 && hp.head_dim == 128 &&
			 hp.n_expert == 128 && hp.n_ctx == 40960 &&
			 hp.rope_theta == 1e6f && hp.norm_topk_prob &&
			 hp.bos_token == 151643 && hp.eos_token == 151645,
		 "qwen3_moe (legacy): %d %s", ret, ec_error_msg());

	ret = cfg("{\"model_type\":\"qwen3_moe\"}", &hp);
	EC_CHECK(ret == 0 && hp.n_layer == 24 && hp.n_embd == 2048 &&
			 hp.n_head == 32 && hp.n_head_kv == 4 &&
			 hp.head_dim == 64 && hp.n_expert == 128 &&
			 hp.n_expert_used == 8 && hp.n_ff_exp == 768 &&
			 hp.rope_theta == 10000.0f,
		 "qwen3_moe defaults: %d %s", ret, ec_error_msg());

	ret = cfg("{\"model_type\":\"mixtral\",\"hidden_size\":4096,"
		  "\"intermediate_size\":14336,\"num_hidden_layers\":32,"
		  "\"num_attention_heads\":32,\"num_key_value_heads\":8,"
		  "\"head_dim\":null,\"vocab_size\":32000,"
		  "\"max_position_embeddings\":32768,\"num_local_experts\":8,"
		  "\"num_experts_per_tok\":2,\"rms_norm_eps\":1e-05,"
		  "\"rope_theta\":1000000.0,\"sliding_window\":null,"
		  "\"bos_token_id\":1,\"eos_token_id\":2}", &hp);
	EC_CHECK(ret == 0 && hp.arch == EC_ARCH_MIXTRAL && hp.head_dim == 128 &&
			 hp.n_ff_exp == 14336 && hp.n_expert == 8 &&
			 hp.n_ctx == 32768 && hp.norm_topk_prob &&
			 hp.qk_norm == EC_QK_NORM_NONE && !hp.attn_bias &&
			 hp.rms_eps == 1e-5f && hp.bos_token == 1 &&
			 hp.eos_token == 2,
		 "mixtral: %d %s", ret, ec_error_msg());
	ret = cfg("{\"model_type\":\"mixtral\"}", &hp);
	EC_CHECK(ret == 0 && hp.rope_theta == 1e6f && hp.n_ctx == 131072 &&
			 hp.n_head_kv == 8 && hp.n_vocab == 32000,
		 "mixtral defaults: %d %s", ret, ec_error_msg());

	ret = cfg("{\"model_type\":\"olmoe\",\"hidden_size\":2048,"
		  "\"intermediate_size\":1024,\"num_hidden_layers\":16,"
		  "\"num_attention_heads\":16,\"num_key_value_heads\":16,"
		  "\"vocab_size\":50304,\"max_position_embeddings\":4096,"
		  "\"num_experts\":64,\"num_experts_per_tok\":8,"
		  "\"rms_norm_eps\":1e-05,\"rope_theta\":10000.0,"
		  "\"rope_scaling\":null,\"clip_qkv\":null,"
		  "\"norm_topk_prob\":false,\"bos_token_id\":null,"
		  "\"eos_token_id\":50279,\"pad_token_id\":1}", &hp);
	EC_CHECK(ret == 0 && hp.arch == EC_ARCH_OLMOE && hp.n_ff_exp == 1024 &&
			 hp.head_dim == 128 && hp.qk_norm == EC_QK_NORM_FULL &&
			 hp.clip_qkv == 0 && !hp.norm_topk_prob &&
			 hp.bos_token == -1 && hp.eos_token == 50279,
		 "olmoe: %d %s", ret, ec_error_msg());
	ret = cfg("{\"model_type\":\"olmoe\",\"hidden_size\":64,"
		  "\"num_attention_heads\":4,\"clip_qkv\":8.0,"
		  "\"eos_token_id\":[7,9],\"tie_word_embeddings\":true,"
		  "\"rope_parameters\":{\"rope_type\":\"default\","
		  "\"rope_theta\":500000.0}}", &hp);
	EC_CHECK(ret == 0 && hp.clip_qkv == 8.0f && hp.eos_token == 7 &&
			 hp.tied_embeddings && hp.rope_theta == 500000.0f &&
			 hp.n_head_kv == 4 && hp.head_dim == 16 &&
			 hp.n_ff_exp == 2048 && hp.n_expert == 64,
		 "olmoe clip/tied: %d %s", ret, ec_error_msg());

	ret = cfg("{\"model_type\":\"qwen2_moe\",\"hidden_size\":2048,"
		  "\"intermediate_size\":5632,\"moe_intermediate_size\":1408,"
		  "\"shared_expert_intermediate_size\":5632,"
		  "\"num_hidden_layers\":24,\"num_attention_heads\":16,"
		  "\"num_key_value_heads\":16,\"vocab_size\":151936,"
		  "\"max_position_embeddings\":8192,\"num_experts\":60,"
		  "\"num_experts_per_tok\":4,\"rms_norm_eps\":1e-06,"
		  "\"rope_theta\":1000000.0,\"norm_topk_prob\":false,"
		  "\"decoder_sparse_step\":1,\"mlp_only_layers\":[],"
		  "\"use_sliding_window\":false,\"sliding_window\":32768,"
		  "\"max_window_layers\":21,\"bos_token_id\":151643,"
		  "\"eos_token_id\":151643}", &hp);
	EC_CHECK(ret == 0 && hp.arch == EC_ARCH_QWEN2_MOE &&
			 hp.n_ff_exp == 1408 && hp.n_ff_shexp == 5632 &&
			 hp.attn_bias && hp.qk_norm == EC_QK_NORM_NONE &&
			 hp.n_expert == 60 && hp.n_expert_used == 4 &&
			 hp.n_ctx == 8192 && hp.rope_theta == 1e6f,
		 "qwen2_moe: %d %s", ret, ec_error_msg());
	ret = cfg("{\"model_type\":\"qwen2_moe\",\"qkv_bias\":false}", &hp);
	EC_CHECK(ret == 0 && !hp.attn_bias && hp.n_head == 16 &&
			 hp.n_head_kv == 16 && hp.n_ff_shexp == 5632,
		 "qwen2_moe defaults: %d %s", ret, ec_error_msg());

	/* a file, and model_type copied out */
	{
		char path[] = "/tmp/ec_cfg_XXXXXX";
		int fd = mkstemp(path);
		const char *s = "{\"model_type\": \"olmoe\"}\n";

		EC_CHECK(fd >= 0 &&
				 write(fd, s, strlen(s)) == (ssize_t)strlen(s),
			 "temp file");
		close(fd);
		ret = ec_hf_config_load(path, &hp, mt, sizeof(mt));
		EC_CHECK(ret == 0 && !strcmp(mt, "olmoe") &&
				 hp.arch == EC_ARCH_OLMOE,
			 "load file: %d %s", ret, ec_error_msg());
		unlink(path);
		ret = ec_hf_config_load(path, &hp, mt, sizeof(mt));
		EC_CHECK(ret == -ENOENT, "absent file: %d", ret);
	}
}

static void test_config_reject(void)
{
	cfg_fail("{\"model_type\":\"llama\"}", -EC_EUNSUPPORTED,
		 "'llama' is not supported (supported: qwen3_moe, mixtral");
	cfg_fail("{\"hidden_size\":4}", -EC_EMISSING, "model_type");
	cfg_fail("[]", -EC_EFORMAT, "object");
	cfg_fail("{\"model_type\":", -EC_EFORMAT, "line 1");
	cfg_fail("{\"model_type\":\"qwen3_moe\",\"rope_scaling\":"
		 "{\"type\":\"yarn\",\"factor\":4.0}}", -EC_EUNSUPPORTED,
		 "'yarn'");
	cfg_fail("{\"model_type\":\"qwen2_moe\",\"rope_parameters\":"
		 "{\"rope_type\":\"linear\",\"factor\":2.0}}",
		 -EC_EUNSUPPORTED, "'linear'");
	cfg_fail("{\"model_type\":\"olmoe\",\"partial_rotary_factor\":0.5}",
		 -EC_EUNSUPPORTED, "partial_rotary_factor");
	cfg_fail("{\"model_type\":\"qwen3_moe\",\"use_sliding_window\":true}",
		 -EC_EUNSUPPORTED, "sliding");
	cfg_fail("{\"model_type\":\"mixtral\",\"sliding_window\":4096}",
		 -EC_EUNSUPPORTED, "sliding_window 4096");
	cfg_fail("{\"model_type\":\"qwen2_moe\",\"use_sliding_window\":true,"
		 "\"sliding_window\":1024}", -EC_EUNSUPPORTED, "sliding");
	cfg_fail("{\"model_type\":\"qwen2_moe\",\"layer_types\":"
		 "[\"full_attention\",\"sliding_attention\"]}",
		 -EC_EUNSUPPORTED, "layer_types[1]");
	cfg_fail("{\"model_type\":\"qwen2_moe\",\"mlp_only_layers\":[3]}",
		 -EC_EUNSUPPORTED, "layer 3");
	cfg_fail("{\"model_type\":\"qwen3_moe\",\"decoder_sparse_step\":2}",
		 -EC_EUNSUPPORTED, "decoder_sparse_step");
	cfg_fail("{\"model_type\":\"mixtral\",\"hidden_act\":\"gelu\"}",
		 -EC_EUNSUPPORTED, "gelu");
	cfg_fail("{\"model_type\":\"qwen3_moe\",\"attention_bias\":true}",
		 -EC_EUNSUPPORTED, "attention_bias");
	cfg_fail("{\"model_type\":\"olmoe\",\"quantization_config\":{}}",
		 -EC_EUNSUPPORTED, "quantization_config");
	cfg_fail("{\"model_type\":\"olmoe\",\"head_dim\":32}",
		 -EC_EUNSUPPORTED, "head_dim");
	cfg_fail("{\"model_type\":\"mixtral\",\"num_local_experts\":8,"
		 "\"num_experts\":4}", -EC_EFORMAT, "disagree");
	cfg_fail("{\"model_type\":\"mixtral\",\"hidden_size\":64.0}",
		 -EC_EFORMAT, "'hidden_size' is not an integer");
	cfg_fail("{\"model_type\":\"mixtral\",\"num_hidden_layers\":0}",
		 -EC_EFORMAT, "'num_hidden_layers' = 0");
	cfg_fail("{\"model_type\":\"mixtral\",\"num_experts_per_tok\":9}",
		 -EC_EFORMAT, "num_experts_per_tok 9");
	cfg_fail("{\"model_type\":\"olmoe\",\"clip_qkv\":0}", -EC_EFORMAT,
		 "clip_qkv");
	cfg_fail("{\"model_type\":\"olmoe\",\"eos_token_id\":\"x\"}",
		 -EC_EFORMAT, "eos_token_id");
	cfg_fail("{\"model_type\":\"olmoe\",\"rms_norm_eps\":-1}",
		 -EC_EFORMAT, "rms_norm_eps");
	/* harmless windows: spanning the context, or switched off */
	{
		struct ec_hparams hp;

		EC_CHECK(cfg("{\"model_type\":\"mixtral\",\"sliding_window\":"
			     "131072}", &hp) == 0,
			 "window = context: %s", ec_error_msg());
		EC_CHECK(cfg("{\"model_type\":\"qwen3_moe\","
			     "\"use_sliding_window\":false,"
			     "\"sliding_window\":128}", &hp) == 0,
			 "window off: %s", ec_error_msg());
		EC_CHECK(cfg("{\"model_type\":\"qwen2_moe\","
			     "\"mlp_only_layers\":[24]}", &hp) == 0,
			 "mlp_only_layers past the last layer: %s",
			 ec_error_msg());
	}
}

int main(void)
{
	test_valid();
	test_header_length();
	test_malformed();
	test_offsets();
	test_seeds();
	test_config();
	test_config_reject();
	return ec_test_done();
}
