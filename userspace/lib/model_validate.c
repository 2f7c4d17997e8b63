// SPDX-License-Identifier: MIT
/* Shape/type validation of a loaded model and expert extent queries. */
#include <stdio.h>
#include <string.h>

#include "ec_error.h"
#include "ec_model.h"

static int is_plain(enum ec_dtype t)
{
	return t == EC_F32 || t == EC_F16 || t == EC_BF16;
}

/*
 * Check a tensor is present with ne[0] = cols and (rows != 0) ne[1] = rows
 * and total elements = cols * max(rows, 1).  Vectors (rows == 0) must be of a
 * plain type; matrices may be of any supported type.
 */
static int check(const struct ec_model *m, const char *what, int layer,
		 const struct ec_tensor *t, uint64_t cols, uint64_t rows)
{
	char name[64];
	uint64_t want = cols * (rows ? rows : 1);

	if (layer >= 0)
		snprintf(name, sizeof(name), "layer %d %s", layer, what);
	else
		snprintf(name, sizeof(name), "%s", what);
	if (!t->data)
		return ec_err(-EC_EMISSING, "%s: tensor %s is missing",
			      m->files ? m->files[0].path : "model", name);
	if (!ec_dtype_info(t->type))
		return ec_err(-EC_EUNSUPPORTED, "%s: tensor %s: type %d",
			      m->files[t->file].path, name, (int)t->type);
	if (t->ne[0] != cols || ec_tensor_nelems(t) != want ||
	    (rows && t->ne[1] != rows))
		return ec_err(-EC_ESHAPE,
			      "%s: tensor %s has shape [%llu, %llu, %llu], "
			      "expected [%llu, %llu] (ggml order)",
			      m->files[t->file].path, name,
			      (unsigned long long)t->ne[0],
			      (unsigned long long)t->ne[1],
			      (unsigned long long)t->ne[2],
			      (unsigned long long)cols,
			      (unsigned long long)(rows ? rows : 1));
	if (!rows && !is_plain(t->type))
		return ec_err(-EC_EUNSUPPORTED,
			      "%s: tensor %s: norm/bias vectors must be "
			      "F32/F16/BF16, not %s",
			      m->files[t->file].path, name,
			      ec_dtype_info(t->type)->name);
	if (t->file >= m->n_files ||
	    t->offset > m->files[t->file].size ||
	    t->nbytes > m->files[t->file].size - t->offset)
		return ec_err(-EC_EFORMAT, "%s: tensor %s lies past the end",
			      m->files[0].path, name);
	return 0;
}

#define CHECK(what, l, t, c, r)                                               \
	do {                                                                  \
		int r_ = check(m, what, l, t, c, r);                          \
		if (r_ < 0)                                                   \
			return r_;                                            \
	} while (0)

int ec_model_validate(const struct ec_model *m)
{
	const struct ec_hparams *hp = &m->hp;
	uint64_t q_dim = (uint64_t)hp->n_head * hp->head_dim;
	uint64_t kv_dim = (uint64_t)hp->n_head_kv * hp->head_dim;
	uint32_t l, e;

	if (!hp->n_layer || !hp->n_embd || !hp->n_head || !hp->n_head_kv ||
	    !hp->head_dim || !hp->n_vocab || !hp->n_expert ||
	    !hp->n_expert_used || !hp->n_ff_exp)
		return ec_err(-EC_EFORMAT,
			      "%s: a required hyper-parameter is zero "
			      "(layers %u, hidden %u, heads %u/%u, head_dim %u, "
			      "vocab %u, experts %u, used %u, expert ff %u)",
			      m->files[0].path, hp->n_layer, hp->n_embd,
			      hp->n_head, hp->n_head_kv, hp->head_dim,
			      hp->n_vocab, hp->n_expert, hp->n_expert_used,
			      hp->n_ff_exp);
	if (hp->n_head % hp->n_head_kv)
		return ec_err(-EC_EFORMAT,
			      "%s: %u attention heads is not a multiple of "
			      "%u key/value heads",
			      m->files[0].path, hp->n_head, hp->n_head_kv);
	if (hp->n_expert_used > hp->n_expert)
		return ec_err(-EC_EFORMAT, "%s: top-k %u > %u experts",
			      m->files[0].path, hp->n_expert_used,
			      hp->n_expert);
	if (hp->head_dim % 2)
		return ec_err(-EC_EFORMAT, "%s: odd head_dim %u",
			      m->files[0].path, hp->head_dim);
	if (hp->n_expert > 65536 || hp->n_layer > 4096)
		return ec_err(-EC_EUNSUPPORTED, "%s: %u layers x %u experts "
			      "is beyond what expertcache supports",
			      m->files[0].path, hp->n_layer, hp->n_expert);

	CHECK("token_embd", -1, &m->tok_embd, hp->n_embd, hp->n_vocab);
	CHECK("output_norm", -1, &m->output_norm, hp->n_embd, 0);
	CHECK("output", -1, &m->output, hp->n_embd, hp->n_vocab);
	if (!m->layers)
		return ec_err(-EC_EMISSING, "%s: no layers", m->files[0].path);
	for (l = 0; l < hp->n_layer; l++) {
		const struct ec_layer *L = &m->layers[l];

		CHECK("attn_norm", l, &L->attn_norm, hp->n_embd, 0);
		CHECK("attn_q", l, &L->wq, hp->n_embd, q_dim);
		CHECK("attn_k", l, &L->wk, hp->n_embd, kv_dim);
		CHECK("attn_v", l, &L->wv, hp->n_embd, kv_dim);
		CHECK("attn_output", l, &L->wo, q_dim, hp->n_embd);
		if (hp->attn_bias) {
			CHECK("attn_q.bias", l, &L->bq, q_dim, 0);
			CHECK("attn_k.bias", l, &L->bk, kv_dim, 0);
			CHECK("attn_v.bias", l, &L->bv, kv_dim, 0);
		}
		if (hp->qk_norm == EC_QK_NORM_HEAD) {
			CHECK("attn_q_norm", l, &L->q_norm, hp->head_dim, 0);
			CHECK("attn_k_norm", l, &L->k_norm, hp->head_dim, 0);
		} else if (hp->qk_norm == EC_QK_NORM_FULL) {
			CHECK("attn_q_norm", l, &L->q_norm, q_dim, 0);
			CHECK("attn_k_norm", l, &L->k_norm, kv_dim, 0);
		}
		CHECK("ffn_norm", l, &L->ffn_norm, hp->n_embd, 0);
		CHECK("ffn_gate_inp", l, &L->router, hp->n_embd, hp->n_expert);
		if (!L->experts)
			return ec_err(-EC_EMISSING, "%s: layer %u: no experts",
				      m->files[0].path, l);
		for (e = 0; e < hp->n_expert; e++) {
			const struct ec_expert *x = &L->experts[e];
			char what[48];

			snprintf(what, sizeof(what), "expert %u gate", e);
			CHECK(what, l, &x->w[EC_EXPERT_GATE], hp->n_embd,
			      hp->n_ff_exp);
			snprintf(what, sizeof(what), "expert %u up", e);
			CHECK(what, l, &x->w[EC_EXPERT_UP], hp->n_embd,
			      hp->n_ff_exp);
			snprintf(what, sizeof(what), "expert %u down", e);
			CHECK(what, l, &x->w[EC_EXPERT_DOWN], hp->n_ff_exp,
			      hp->n_embd);
		}
		if (hp->n_ff_shexp) {
			CHECK("ffn_gate_shexp", l, &L->sh_gate, hp->n_embd,
			      hp->n_ff_shexp);
			CHECK("ffn_up_shexp", l, &L->sh_up, hp->n_embd,
			      hp->n_ff_shexp);
			CHECK("ffn_down_shexp", l, &L->sh_down, hp->n_ff_shexp,
			      hp->n_embd);
			CHECK("ffn_gate_inp_shexp", l, &L->sh_router,
			      hp->n_embd, 1);
		}
	}
	return 0;
}

uint64_t ec_model_expert_bytes(const struct ec_model *m, uint32_t layer,
			       uint32_t expert)
{
	const struct ec_expert *x = &m->layers[layer].experts[expert];

	return x->w[0].nbytes + x->w[1].nbytes + x->w[2].nbytes;
}

uint64_t ec_model_total_expert_bytes(const struct ec_model *m)
{
	uint64_t sum = 0;
	uint32_t l, e;

	for (l = 0; l < m->hp.n_layer; l++)
		for (e = 0; e < m->hp.n_expert; e++)
			sum += ec_model_expert_bytes(m, l, e);
	return sum;
}

int ec_model_expert_extents(const struct ec_model *m, uint32_t layer,
			    uint32_t expert,
			    struct ec_extent ext[EC_EXPERT_NPARTS])
{
	const struct ec_expert *x = &m->layers[layer].experts[expert];
	int n = 0, p;

	for (p = 0; p < EC_EXPERT_NPARTS; p++) {
		const struct ec_tensor *t = &x->w[p];

		if (n && ext[n - 1].file == t->file &&
		    ext[n - 1].offset + ext[n - 1].length == t->offset) {
			ext[n - 1].length += t->nbytes;
			continue;
		}
		ext[n].file = t->file;
		ext[n].offset = t->offset;
		ext[n].length = t->nbytes;
		n++;
	}
	return n;
}
