/* SPDX-License-Identifier: MIT */
/*
 * Synthetic Qwen3-MoE GGUF files with random weights, streamed to disk so
 * they can be as large as the real model (Qwen3-30B-A3B's shapes for the
 * benchmarks).  With as_f32 the same weights (the same random draws) are
 * written as their exact float32 dequantisation: a quantised file and its
 * F32 twin hold identical values, so an engine computing in f32 must give
 * the same logits on both.
 */
#ifndef EC_SYNTH_MODEL_H
#define EC_SYNTH_MODEL_H

#include "gpu_test.h"

struct synth_spec {
	uint32_t n_layer, n_embd, n_head, n_head_kv, head_dim;
	uint32_t n_expert, n_used, n_ff, n_vocab;
	enum ec_dtype t_embd, t_attn, t_out, t_gate_up, t_down;
	uint64_t seed;
	int as_f32;
	int with_vocab;	/* a byte-level BPE vocabulary, so llama.cpp loads it */
};

struct synth_tensor {
	char name[64];
	uint32_t n_dims;
	uint64_t ne[3];
	enum ec_dtype type;	/* as generated (before as_f32) */
	float amp;		/* amplitude; norms: 1 +- amp */
	int norm;
};

struct synth_w {
	FILE *f;
	uint64_t pos;
	int err;
};

static inline void sw_put(struct synth_w *w, const void *p, size_t n)
{
	if (!w->err && fwrite(p, 1, n, w->f) != n)
		w->err = -EIO;
	w->pos += n;
}

static inline void sw_u32(struct synth_w *w, uint32_t v)
{
	sw_put(w, &v, 4);
}

static inline void sw_u64(struct synth_w *w, uint64_t v)
{
	sw_put(w, &v, 8);
}

static inline void sw_str(struct synth_w *w, const char *s)
{
	sw_u64(w, strlen(s));
	sw_put(w, s, strlen(s));
}

static inline void sw_pad(struct synth_w *w)
{
	static const uint8_t zero[32];

	if (w->pos % 32)
		sw_put(w, zero, 32 - w->pos % 32);
}

static inline void sw_kv_u32(struct synth_w *w, const char *k, uint32_t v)
{
	char key[96];

	snprintf(key, sizeof(key), "qwen3moe.%s", k);
	sw_str(w, key);
	sw_u32(w, 4);	/* GGUF uint32 */
	sw_u32(w, v);
}

static inline void sw_kv_f32(struct synth_w *w, const char *k, float v)
{
	char key[96];

	snprintf(key, sizeof(key), "qwen3moe.%s", k);
	sw_str(w, key);
	sw_u32(w, 6);	/* GGUF float32 */
	sw_put(w, &v, 4);
}

static inline uint32_t synth_tensors(const struct synth_spec *s,
				     struct synth_tensor *t)
{
	uint32_t n = 0, q = s->n_head * s->head_dim;
	uint32_t kv = s->n_head_kv * s->head_dim;
	float a_embd = sqrtf(3.0f / s->n_embd);

#define T(nd, e0, e1, e2, ty, am, nm, ...)                                    \
	do {                                                                  \
		snprintf(t[n].name, sizeof(t[n].name), __VA_ARGS__);          \
		t[n].n_dims = nd;                                             \
		t[n].ne[0] = e0;                                              \
		t[n].ne[1] = e1;                                              \
		t[n].ne[2] = e2;                                              \
		t[n].type = ty;                                               \
		t[n].amp = am;                                                \
		t[n].norm = nm;                                               \
		n++;                                                          \
	} while (0)
	T(2, s->n_embd, s->n_vocab, 1, s->t_embd, 1.0f, 0, "token_embd.weight");
	T(1, s->n_embd, 1, 1, EC_F32, 0.1f, 1, "output_norm.weight");
	T(2, s->n_embd, s->n_vocab, 1, s->t_out, a_embd, 0, "output.weight");
	for (uint32_t l = 0; l < s->n_layer; l++) {
		T(1, s->n_embd, 1, 1, EC_F32, 0.1f, 1, "blk.%u.attn_norm.weight", l);
		T(2, s->n_embd, q, 1, s->t_attn, a_embd, 0, "blk.%u.attn_q.weight", l);
		T(2, s->n_embd, kv, 1, s->t_attn, a_embd, 0, "blk.%u.attn_k.weight", l);
		T(2, s->n_embd, kv, 1, s->t_attn, a_embd, 0, "blk.%u.attn_v.weight", l);
		T(2, q, s->n_embd, 1, s->t_attn, sqrtf(3.0f / q), 0,
		  "blk.%u.attn_output.weight", l);
		T(1, s->head_dim, 1, 1, EC_F32, 0.1f, 1, "blk.%u.attn_q_norm.weight", l);
		T(1, s->head_dim, 1, 1, EC_F32, 0.1f, 1, "blk.%u.attn_k_norm.weight", l);
		T(1, s->n_embd, 1, 1, EC_F32, 0.1f, 1, "blk.%u.ffn_norm.weight", l);
		T(2, s->n_embd, s->n_expert, 1, EC_F32, 4.0f * a_embd, 0,
		  "blk.%u.ffn_gate_inp.weight", l);
		T(3, s->n_embd, s->n_ff, s->n_expert, s->t_gate_up, a_embd, 0,
		  "blk.%u.ffn_gate_exps.weight", l);
		T(3, s->n_embd, s->n_ff, s->n_expert, s->t_gate_up, 1.0f, 0,
		  "blk.%u.ffn_up_exps.weight", l);
		T(3, s->n_ff, s->n_embd, s->n_expert, s->t_down,
		  sqrtf(3.0f / s->n_ff), 0, "blk.%u.ffn_down_exps.weight", l);
	}
#undef T
	return n;
}

static inline void sw_key(struct synth_w *w, const char *k, uint32_t type)
{
	sw_str(w, k);
	sw_u32(w, type);
}

/* GPT-2's printable stand-in for byte b, as UTF-8 into out (<= 3 bytes). */
static inline void synth_byte_token(unsigned b, char out[4])
{
	unsigned cp = b, n = 0;

	if (!((b >= '!' && b <= '~') || (b >= 0xa1 && b <= 0xac) ||
	      (b >= 0xae && b <= 0xff))) {
		/* the bytes without a printable self map to 256.. in order */
		for (unsigned c = 0; c < b; c++)
			if (!((c >= '!' && c <= '~') ||
			      (c >= 0xa1 && c <= 0xac) ||
			      (c >= 0xae && c <= 0xff)))
				n++;
		cp = 256 + n;
	}
	if (cp < 0x80) {
		out[0] = (char)cp;
		out[1] = 0;
	} else {
		out[0] = (char)(0xc0 | (cp >> 6));
		out[1] = (char)(0x80 | (cp & 0x3f));
		out[2] = 0;
	}
}

/*
 * A well-formed byte-level BPE vocabulary of n_vocab tokens (what llama.cpp
 * needs to load the file; expertcache's benchmarks use token ids): the 256
 * byte tokens, the 676 merges of two lowercase letters, filler, and Qwen's
 * three special tokens at the end (at their real ids for a full vocabulary).
 * Keys: tokenizer.ggml.{model,pre,tokens,token_type,merges,eos_token_id}.
 */
static inline void synth_vocab(struct synth_w *w, uint32_t n_vocab)
{
	static const char *const special[3] = { "<|endoftext|>",
						"<|im_start|>", "<|im_end|>" };
	uint32_t sp0 = n_vocab >= 151646 ? 151643 : n_vocab - 3;
	char tok[64];

	sw_key(w, "tokenizer.ggml.model", 8);
	sw_str(w, "gpt2");
	sw_key(w, "tokenizer.ggml.pre", 8);
	sw_str(w, "qwen2");
	sw_key(w, "tokenizer.ggml.tokens", 9);
	sw_u32(w, 8);
	sw_u64(w, n_vocab);
	for (uint32_t i = 0; i < n_vocab; i++) {
		if (i < 256) {
			synth_byte_token(i, tok);
		} else if (i < 256 + 676) {
			tok[0] = (char)('a' + (i - 256) / 26);
			tok[1] = (char)('a' + (i - 256) % 26);
			tok[2] = 0;
		} else if (i >= sp0 && i < sp0 + 3) {
			snprintf(tok, sizeof(tok), "%s", special[i - sp0]);
		} else {
			snprintf(tok, sizeof(tok), "<|synthetic_%u|>", i);
		}
		sw_str(w, tok);
	}
	sw_key(w, "tokenizer.ggml.token_type", 9);
	sw_u32(w, 5);	/* int32: 1 normal, 3 control, 5 unused */
	sw_u64(w, n_vocab);
	for (uint32_t i = 0; i < n_vocab; i++)
		sw_u32(w, i < 256 + 676 ? 1 : (i >= sp0 && i < sp0 + 3) ? 3 : 5);
	sw_key(w, "tokenizer.ggml.merges", 9);
	sw_u32(w, 8);
	sw_u64(w, 676);
	for (uint32_t i = 0; i < 676; i++) {
		snprintf(tok, sizeof(tok), "%c %c", 'a' + i / 26, 'a' + i % 26);
		sw_str(w, tok);
	}
	sw_key(w, "tokenizer.ggml.eos_token_id", 4);
	sw_u32(w, sp0 + 2);
}

/* Write the model; 0 or a negative error. */
static inline int synth_write(const char *path, const struct synth_spec *s)
{
	uint32_t max_t = 3 + 12 * s->n_layer, n;
	struct synth_tensor *t = calloc(max_t, sizeof(*t));
	struct synth_w w = { 0 };
	struct gt_rng r = { s->seed };
	uint64_t off = 0;
	size_t chunk_elems = 1u << 22;
	void *q = malloc(chunk_elems * 4);
	float *f = malloc(chunk_elems * 4);

	if (!t || !q || !f)
		return -ENOMEM;
	n = synth_tensors(s, t);
	w.f = fopen(path, "wb");
	if (!w.f) {
		free(t);
		free(q);
		free(f);
		return -errno;
	}
	sw_u32(&w, 0x46554747);	/* "GGUF" */
	sw_u32(&w, 3);
	sw_u64(&w, n);
	/* the keys below, and the vocabulary's six */
	sw_u64(&w, 14 + (s->with_vocab ? 6 : 0));
	sw_str(&w, "general.architecture");
	sw_u32(&w, 8);
	sw_str(&w, "qwen3moe");
	sw_kv_u32(&w, "block_count", s->n_layer);
	sw_kv_u32(&w, "context_length", 4096);
	sw_kv_u32(&w, "embedding_length", s->n_embd);
	sw_kv_u32(&w, "attention.head_count", s->n_head);
	sw_kv_u32(&w, "attention.head_count_kv", s->n_head_kv);
	sw_kv_u32(&w, "attention.key_length", s->head_dim);
	sw_kv_u32(&w, "attention.value_length", s->head_dim);
	sw_kv_u32(&w, "expert_count", s->n_expert);
	sw_kv_u32(&w, "expert_used_count", s->n_used);
	sw_kv_u32(&w, "expert_feed_forward_length", s->n_ff);
	sw_kv_f32(&w, "rope.freq_base", 1000000.0f);
	sw_kv_f32(&w, "attention.layer_norm_rms_epsilon", 1e-6f);
	/* Qwen3-30B-A3B's dense width; llama.cpp reads it, we do not */
	sw_kv_u32(&w, "feed_forward_length", 6144);
	if (s->with_vocab)
		synth_vocab(&w, s->n_vocab);
	for (uint32_t i = 0; i < n; i++) {
		enum ec_dtype ty = s->as_f32 ? EC_F32 : t[i].type;
		uint64_t ne = t[i].ne[0] * t[i].ne[1] * t[i].ne[2];

		sw_str(&w, t[i].name);
		sw_u32(&w, t[i].n_dims);
		for (uint32_t d = 0; d < t[i].n_dims; d++)
			sw_u64(&w, t[i].ne[d]);
		sw_u32(&w, ty);
		sw_u64(&w, off);
		off += (ec_dtype_bytes(ty, ne) + 31) / 32 * 32;
	}
	sw_pad(&w);
	for (uint32_t i = 0; i < n && !w.err; i++) {
		uint64_t cols = t[i].ne[0];
		uint64_t rows = t[i].ne[1] * t[i].ne[2];
		uint64_t per = chunk_elems / cols;

		if (!per)
			per = 1;
		for (uint64_t r0 = 0; r0 < rows; r0 += per) {
			uint64_t rc = rows - r0 < per ? rows - r0 : per;
			uint64_t ne = rc * cols;

			gt_fill(&r, t[i].type, q, ne, t[i].amp);
			if (t[i].norm)
				for (uint64_t j = 0; j < ne; j++)
					((float *)q)[j] += 1.0f;
			if (s->as_f32 && t[i].type != EC_F32) {
				ec_dequantize(t[i].type, q, f, ne);
				sw_put(&w, f, ne * 4);
			} else {
				sw_put(&w, q, ec_dtype_bytes(t[i].type, ne));
			}
		}
		sw_pad(&w);
	}
	if (fclose(w.f) && !w.err)
		w.err = -EIO;
	free(t);
	free(q);
	free(f);
	return w.err;
}

#endif
