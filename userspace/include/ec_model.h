/* SPDX-License-Identifier: MIT */
/* The one internal model description both GGUF and safetensors produce. */
#ifndef EC_MODEL_H
#define EC_MODEL_H

#include <stdbool.h>
#include <stdint.h>

#include "ec_tensor.h"

enum ec_arch {
	EC_ARCH_QWEN3_MOE,
	EC_ARCH_MIXTRAL,
	EC_ARCH_OLMOE,
	EC_ARCH_QWEN2_MOE,
};

const char *ec_arch_name(enum ec_arch arch);

enum ec_rope_style {
	EC_ROPE_NEOX,	/* rotate halves: (x[i], x[i + d/2]) -- HF layout */
	EC_ROPE_NORM,	/* rotate pairs: (x[2i], x[2i+1]) -- GGUF llama */
};

enum ec_qk_norm {
	EC_QK_NORM_NONE,
	EC_QK_NORM_HEAD,	/* Qwen3: RMSNorm over each head (head_dim) */
	EC_QK_NORM_FULL,	/* OLMoE: RMSNorm over the whole projection */
};

enum ec_format {
	EC_FORMAT_GGUF,
	EC_FORMAT_SAFETENSORS,
};

struct ec_hparams {
	enum ec_arch arch;
	uint32_t n_layer;
	uint32_t n_embd;		/* hidden size */
	uint32_t n_head;
	uint32_t n_head_kv;
	uint32_t head_dim;
	uint32_t n_vocab;
	uint32_t n_ctx;			/* trained context length */
	uint32_t n_expert;
	uint32_t n_expert_used;		/* top-k */
	uint32_t n_ff_exp;		/* expert intermediate size */
	uint32_t n_ff_shexp;		/* shared expert size, 0 if none */
	float rms_eps;
	float rope_theta;
	enum ec_rope_style rope_style;
	enum ec_qk_norm qk_norm;
	bool norm_topk_prob;		/* renormalise top-k weights to 1 */
	bool attn_bias;			/* q/k/v projections have biases */
	bool tied_embeddings;		/* output = token embedding */
	float clip_qkv;			/* OLMoE; 0 = off */
	int32_t bos_token, eos_token;	/* -1 when unknown */
};

/* Which of an expert's three matrices. */
enum ec_expert_part {
	EC_EXPERT_GATE,	/* [n_ff_exp, n_embd] */
	EC_EXPERT_UP,	/* [n_ff_exp, n_embd] */
	EC_EXPERT_DOWN,	/* [n_embd, n_ff_exp] */
	EC_EXPERT_NPARTS,
};

/* One contiguous byte range of one model file: the unit the storage streams */
struct ec_extent {
	uint32_t file;
	uint64_t offset;
	uint64_t length;
};

/*
 * An expert (layer, e): views of its gate/up/down matrices as 2-D tensors,
 * whose `file`/`offset`/`nbytes` give the extents.  `data` points into the
 * file mapping; the storage engine substitutes cache-slot pointers.
 */
struct ec_expert {
	struct ec_tensor w[EC_EXPERT_NPARTS];
};

struct ec_layer {
	struct ec_tensor attn_norm;	/* [n_embd] */
	struct ec_tensor wq;		/* [n_head*head_dim, n_embd] */
	struct ec_tensor wk;		/* [n_head_kv*head_dim, n_embd] */
	struct ec_tensor wv;		/* [n_head_kv*head_dim, n_embd] */
	struct ec_tensor wo;		/* [n_embd, n_head*head_dim] */
	struct ec_tensor bq, bk, bv;	/* biases, when attn_bias */
	struct ec_tensor q_norm, k_norm;	/* [head_dim] or full, per qk_norm */
	struct ec_tensor ffn_norm;	/* [n_embd] */
	struct ec_tensor router;	/* [n_expert, n_embd] */
	struct ec_expert *experts;	/* [n_expert] */
	/* Qwen2-MoE shared expert (n_ff_shexp > 0) */
	struct ec_tensor sh_gate, sh_up, sh_down;
	struct ec_tensor sh_router;	/* [1, n_embd]: sigmoid gate */
};

struct ec_model_file {
	char *path;
	int fd;
	const uint8_t *map;	/* whole file, read-only */
	uint64_t size;
};

struct ec_model {
	enum ec_format format;
	struct ec_hparams hp;
	char arch_name[32];		/* as the file calls it */

	uint32_t n_files;
	struct ec_model_file *files;

	struct ec_tensor tok_embd;	/* [n_vocab, n_embd] */
	struct ec_tensor output_norm;	/* [n_embd] */
	struct ec_tensor output;	/* [n_vocab, n_embd] (= tok_embd if tied) */
	struct ec_layer *layers;	/* [n_layer] */

	/* Format-specific state (GGUF context, tokenizer metadata, ...). */
	struct ec_gguf *gguf;		/* NULL unless format == GGUF */
	void *loader_priv;		/* loader-owned, freed by loader_free */
	void (*loader_free)(void *priv);
};

/*
 * Open a model: a .gguf file, a directory holding config.json and
 * *.safetensors (single or sharded), or such a config.json path.  Maps the
 * files and fills the description; no weights are dequantised.  Returns 0 or a
 * negative error with ec_error_msg() naming the file and field.
 */
int ec_model_open(const char *path, struct ec_model **out);
void ec_model_close(struct ec_model *m);

/*
 * Internal, for the format loaders: open and map `path` read-only, append it
 * to m->files and return its index (>= 0) or a negative error.
 */
int ec_model_add_file(struct ec_model *m, const char *path);

/* Internal: format loaders used by ec_model_open. */
int ec_model_load_gguf(struct ec_model *m, const char *path);
int ec_model_load_safetensors(struct ec_model *m, const char *path);

/*
 * Check every tensor's presence, type and shape against hparams.  Called by
 * the loaders; names the offending tensor on failure.
 */
int ec_model_validate(const struct ec_model *m);

/*
 * Bring the non-expert weights (embeddings, attention, norms, routers,
 * shared experts) into memory now rather than at the first token, calling
 * progress(arg, done, total) in bytes as it goes.  Experts stay lazy: the
 * storage engine streams them.  Returns the bytes touched.
 */
uint64_t ec_model_prefault(const struct ec_model *m,
			   void (*progress)(void *arg, uint64_t done,
					    uint64_t total),
			   void *arg);

/* Bytes of one expert (gate + up + down) and of all experts. */
uint64_t ec_model_expert_bytes(const struct ec_model *m, uint32_t layer,
			       uint32_t expert);
uint64_t ec_model_total_expert_bytes(const struct ec_model *m);

/*
 * The extents of expert (layer, e), merged where parts are adjacent in the
 * same file.  Fills up to EC_EXPERT_NPARTS extents, returns how many.
 */
int ec_model_expert_extents(const struct ec_model *m, uint32_t layer,
			    uint32_t expert,
			    struct ec_extent ext[EC_EXPERT_NPARTS]);

#endif
