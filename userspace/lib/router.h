/* SPDX-License-Identifier: MIT */
/* Host-side MoE routing: softmax over experts, top-k, renormalisation. */
#ifndef EC_ROUTER_H
#define EC_ROUTER_H

#include <stdbool.h>
#include <stdint.h>

/*
 * For each of n tokens: probabilities = softmax(logits (n, n_expert)) in
 * float32 (as transformers computes them), the k largest (ties to the lower
 * index, like torch.topk on CPU), weights renormalised to sum 1 when `norm`.
 * ids (n, k), weights (n, k).
 */
void ec_route_topk(const float *logits, uint32_t n, uint32_t n_expert,
		   uint32_t k, bool norm, int32_t *ids, float *weights);

#endif
