// SPDX-License-Identifier: MIT
/* Host-side MoE routing: softmax over experts, top-k, renormalisation. */
#include <math.h>

#include "router.h"

void ec_route_topk(const float *logits, uint32_t n, uint32_t n_expert,
		   uint32_t k, bool norm, int32_t *ids, float *weights)
{
	uint32_t t, e, j;

	for (t = 0; t < n; t++) {
		const float *l = logits + (uint64_t)t * n_expert;
		int32_t *id = ids + (uint64_t)t * k;
		float *w = weights + (uint64_t)t * k;
		float max = l[0], sum = 0.0f;

		for (e = 1; e < n_expert; e++)
			if (l[e] > max)
				max = l[e];
		for (e = 0; e < n_expert; e++)
			sum += expf(l[e] - max);
		/* insertion into a sorted top-k list, strict > keeps ties */
		for (j = 0; j < k; j++)
			id[j] = -1;
		for (e = 0; e < n_expert; e++) {
			uint32_t pos = k;

			while (pos > 0 &&
			       (id[pos - 1] < 0 || l[e] > l[id[pos - 1]]))
				pos--;
			if (pos >= k)
				continue;
			for (j = k - 1; j > pos; j--)
				id[j] = id[j - 1];
			id[pos] = (int32_t)e;
		}
		float wsum = 0.0f;

		for (j = 0; j < k; j++) {
			w[j] = expf(l[id[j]] - max) / sum;
			wsum += w[j];
		}
		if (norm)
			for (j = 0; j < k; j++)
				w[j] /= wsum;
	}
}
