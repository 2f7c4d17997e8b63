/* SPDX-License-Identifier: MIT */
/* Hugging Face config.json -> struct ec_hparams (internal to the library). */
#ifndef EC_HFCONFIG_H
#define EC_HFCONFIG_H

#include <stddef.h>

#include "ec_model.h"

/*
 * Parse a config.json text of `len` bytes (`filename` only for messages)
 * into *hp, following transformers 5's config classes: keys that are absent
 * take the class default of that model_type.  model_type must be qwen3_moe,
 * mixtral, olmoe or qwen2_moe; it is copied into model_type (at most
 * model_type_size bytes with the NUL).  Features we would compute wrongly
 * (RoPE scaling, sliding windows, dense layers among MoE ones, biases on the
 * output projection, activations other than SiLU, quantised checkpoints)
 * give -EC_EUNSUPPORTED; wrong JSON types -EC_EFORMAT.
 */
int ec_hf_config_parse(const char *text, size_t len, const char *filename,
		       struct ec_hparams *hp, char *model_type,
		       size_t model_type_size);

/* The same for a file. */
int ec_hf_config_load(const char *path, struct ec_hparams *hp,
		      char *model_type, size_t model_type_size);

#endif
