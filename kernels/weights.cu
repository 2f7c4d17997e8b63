// SPDX-License-Identifier: MIT
/*
 * Non-expert weights in VRAM: uploaded once on first use and found again
 * by their host data pointer (an open-addressing hash).  Only immutable
 * tensors (the model mapping) may come here: expert weights, whose host
 * copies move between cache slots, go through the VRAM slots instead.
 */
#include <stdlib.h>
#include <string.h>

#include "dequant.cuh"

struct weight_entry {
	const void *host;	/* key (with as_f32) */
	int as_f32;
	void *dev;
	uint64_t bytes;
};

struct ec_weight_map {
	struct weight_entry *e;
	uint32_t cap, used;	/* cap a power of two */
};

uint64_t ec_cuda_row_bytes(enum ec_dtype type, uint64_t cols)
{
	switch (type) {
	case EC_F32:
		return cols * 4;
	case EC_F16:
	case EC_BF16:
		return cols * 2;
	case EC_Q8_0:
		return cols / 32 * 34;
	case EC_Q4_K:
		return cols / 256 * 144;
	case EC_Q6_K:
		return cols / 256 * 210;
	}
	return 0;
}

static uint32_t hash_ptr(const void *p, int as_f32)
{
	uint64_t v = (uint64_t)(uintptr_t)p * 0x9E3779B97F4A7C15ull;

	return (uint32_t)(v >> 32) ^ (uint32_t)as_f32;
}

int ec_cuda_weights_create(struct ec_cuda *cu)
{
	struct ec_weight_map *m = (struct ec_weight_map *)calloc(1, sizeof(*m));

	if (!m)
		return ec_cuda_errorf(-ENOMEM, "cuda backend: out of memory");
	m->cap = 1024;
	m->e = (struct weight_entry *)calloc(m->cap, sizeof(*m->e));
	if (!m->e) {
		free(m);
		return ec_cuda_errorf(-ENOMEM, "cuda backend: out of memory");
	}
	cu->weights = m;
	return 0;
}

void ec_cuda_weights_destroy(struct ec_cuda *cu)
{
	struct ec_weight_map *m = cu->weights;

	if (!m)
		return;
	for (uint32_t i = 0; i < m->cap; i++)
		if (m->e[i].dev)
			cudaFree(m->e[i].dev);
	free(m->e);
	free(m);
	cu->weights = NULL;
}

static struct weight_entry *slot_for(struct ec_weight_map *m, const void *p,
				     int as_f32)
{
	uint32_t i = hash_ptr(p, as_f32) & (m->cap - 1);

	while (m->e[i].host && !(m->e[i].host == p &&
				 m->e[i].as_f32 == as_f32))
		i = (i + 1) & (m->cap - 1);
	return &m->e[i];
}

static int grow(struct ec_weight_map *m)
{
	struct weight_entry *old = m->e;
	uint32_t old_cap = m->cap;

	m->e = (struct weight_entry *)calloc(old_cap * 2, sizeof(*m->e));
	if (!m->e) {
		m->e = old;
		return ec_cuda_errorf(-ENOMEM, "cuda backend: out of memory");
	}
	m->cap = old_cap * 2;
	for (uint32_t i = 0; i < old_cap; i++)
		if (old[i].host)
			*slot_for(m, old[i].host, old[i].as_f32) = old[i];
	free(old);
	return 0;
}

template <int T>
__global__ void to_f32_kernel(float *dst, const uint8_t *src, uint32_t n)
{
	uint32_t i = blockIdx.x * blockDim.x + threadIdx.x;

	if (i < n)
		dst[i] = ec_elem<T>(src, i);
}

static int lookup(struct ec_cuda *cu, const struct ec_tensor *t, int as_f32,
		  const void **dptr)
{
	struct ec_weight_map *m = cu->weights;
	struct weight_entry *e = slot_for(m, t->data, as_f32);
	uint64_t n = t->ne[0] * t->ne[1] * t->ne[2] * t->ne[3];
	void *raw = NULL, *dev = NULL;
	uint64_t bytes;
	int ret;

	if (e->host) {
		*dptr = e->dev;
		return 0;
	}
	if (!ec_cuda_type_ok(t->type))
		return ec_cuda_errorf(-EC_EUNSUPPORTED, "cuda backend: weight "
				      "type %d is not supported",
				      (int)t->type);
	if ((m->used + 1) * 2 > m->cap) {
		ret = grow(m);
		if (ret < 0)
			return ret;
		e = slot_for(m, t->data, as_f32);
	}
	EC_CUDA_CHECK(cudaMalloc(&raw, t->nbytes ? t->nbytes : 1));
	ret = ec_cuda_fail(cudaMemcpy(raw, t->data, t->nbytes,
				      cudaMemcpyHostToDevice),
			   "cudaMemcpy(weight)", __FILE__, __LINE__);
	if (!as_f32 || ret < 0) {
		dev = raw;
		bytes = t->nbytes;
	} else {
		bytes = n * sizeof(float);
		if (n > UINT32_MAX) {
			cudaFree(raw);
			return ec_cuda_errorf(-EC_EINVAL, "cuda backend: vector "
					      "of %llu elements",
					      (unsigned long long)n);
		}
		ret = ec_cuda_fail(cudaMalloc(&dev, bytes), "cudaMalloc",
				   __FILE__, __LINE__);
		if (ret >= 0) {
			EC_TYPE_SWITCH(t->type, T,
				       EC_LAUNCH(ec_cuda_blocks(n, 256), 256, 0,
						  cu->stream, to_f32_kernel<T>)(
						(float *)dev,
							(const uint8_t *)raw,
							(uint32_t)n));
			ret = ec_cuda_fail(cudaStreamSynchronize(cu->stream),
					   "to_f32_kernel", __FILE__,
					   __LINE__);
		}
		cudaFree(raw);
	}
	if (ret < 0) {
		cudaFree(dev);	/* raw when the copy failed, else freed */
		return ret;
	}
	e->host = t->data;
	e->as_f32 = as_f32;
	e->dev = dev;
	e->bytes = bytes;
	m->used++;
	cu->weight_bytes += bytes;
	*dptr = dev;
	return 0;
}

int ec_cuda_weight(struct ec_cuda *cu, const struct ec_tensor *t,
		   const void **dptr)
{
	return lookup(cu, t, 0, dptr);
}

int ec_cuda_weight_f32(struct ec_cuda *cu, const struct ec_tensor *t,
		       const float **dptr)
{
	if (t->type == EC_F32)
		return lookup(cu, t, 0, (const void **)dptr);
	return lookup(cu, t, 1, (const void **)dptr);
}
