// SPDX-License-Identifier: MIT
/*
 * The expert source's host memory page-locked for CUDA: the ranges its
 * host_regions hook names (the storage cache's host tier) registered with
 * cudaHostRegister, so expert misses copy from them by DMA instead of
 * being staged by the driver as pageable memory.
 *
 * Checked before every expert copy (one call of the hook and a compare):
 * the first source with regions is registered, a source with other
 * regions (or a pool mapped anew at the same address: another
 * generation) replaces them, a source without any releases them.  A range
 * CUDA refuses (memory it cannot pin, limits) is only noted in the stats
 * and copied as before; nothing here fails the forward pass.
 */
#include <stdio.h>
#include <string.h>

#include "common.cuh"

void ec_cuda_host_tier_init(struct ec_cuda *cu,
			    const struct ec_backend_cuda_params *p)
{
	struct ec_cuda_host_tier *ht = &cu->host_tier;
	int ro = 0;

	ht->off = p->no_host_register;
	/* read-only: the device only reads these pages (the host writes) */
	if (cudaDeviceGetAttribute(&ro,
				   cudaDevAttrHostRegisterReadOnlySupported,
				   cu->device) != cudaSuccess) {
		cudaGetLastError();
		ro = 0;
	}
	ht->flags = cudaHostRegisterPortable |
		    (ro ? cudaHostRegisterReadOnly : 0u);
}

void ec_cuda_host_tier_release(struct ec_cuda *cu)
{
	struct ec_cuda_host_tier *ht = &cu->host_tier;

	if (ht->n_reg && cu->copy)
		/* queued copies may still read them */
		cudaStreamSynchronize(cu->copy);
	for (uint32_t i = 0; i < ht->n_reg; i++)
		if (cudaHostUnregister((void *)ht->reg[i].p) != cudaSuccess)
			cudaGetLastError();	/* unmapped since: nothing
						 * left to give back */
	ht->n_reg = 0;
	ht->bytes = 0;
	ht->refused = 0;
	ht->why[0] = '\0';
	ht->n_seen = 0;
}

static void refuse(struct ec_cuda_host_tier *ht, const char *why)
{
	ht->refused++;
	snprintf(ht->why, sizeof(ht->why), "%s", why);
}

static void register_one(struct ec_cuda_host_tier *ht,
			 const struct ec_host_region *r)
{
	cudaError_t e;
	char msg[sizeof(ht->why)];

	e = cudaHostRegister(r->base, r->bytes, ht->flags);
	if (e != cudaSuccess && (ht->flags & cudaHostRegisterReadOnly)) {
		cudaGetLastError();
		e = cudaHostRegister(r->base, r->bytes,
				     cudaHostRegisterPortable);
	}
	if (e != cudaSuccess) {
		/* not sticky: clear it, or the next launch check sees it */
		cudaGetLastError();
		snprintf(msg, sizeof(msg), "cudaHostRegister of %llu bytes at "
			 "%p: %s", (unsigned long long)r->bytes, r->base,
			 cudaGetErrorString(e));
		refuse(ht, msg);
		return;
	}
	ht->reg[ht->n_reg].p = r->base;
	ht->reg[ht->n_reg].len = r->bytes;
	ht->n_reg++;
	ht->bytes += r->bytes;
	ht->registrations++;
}

static bool same_regions(const struct ec_cuda_host_tier *ht,
			 const struct ec_host_region *r, uint32_t n)
{
	if (n != ht->n_seen)
		return false;
	for (uint32_t i = 0; i < n; i++)
		if (r[i].base != ht->seen[i].base ||
		    r[i].bytes != ht->seen[i].bytes ||
		    r[i].generation != ht->seen[i].generation)
			return false;
	return true;
}

void ec_cuda_host_tier_check(struct ec_cuda *cu,
			     const struct ec_expert_source *src)
{
	struct ec_cuda_host_tier *ht = &cu->host_tier;
	struct ec_host_region r[EC_CUDA_MAX_HOST_REGIONS];
	uint32_t n = 0, kept;
	int got = 0;

	if (src->host_regions)
		got = src->host_regions(src->priv, r,
					EC_CUDA_MAX_HOST_REGIONS);
	if (got > 0)
		n = (uint32_t)got;
	kept = n < EC_CUDA_MAX_HOST_REGIONS ? n : EC_CUDA_MAX_HOST_REGIONS;
	if (same_regions(ht, r, kept))
		return;
	ec_cuda_host_tier_release(cu);
	memcpy(ht->seen, r, kept * sizeof(*r));
	ht->n_seen = kept;
	if (ht->off) {
		if (kept) {
			ht->refused = kept - 1;
			refuse(ht, "not registered: no_host_register is set");
		}
		return;
	}
	for (uint32_t i = 0; i < kept; i++)
		if (r[i].base && r[i].bytes)
			register_one(ht, &r[i]);
	if (n > kept) {
		char msg[sizeof(ht->why)];

		snprintf(msg, sizeof(msg), "the source has %u host regions; "
			 "only the first %u are registered", n, kept);
		ht->refused += n - kept - 1;
		refuse(ht, msg);
	}
}

bool ec_cuda_host_tier_has(const struct ec_cuda *cu, const void *p,
			   uint64_t bytes)
{
	const struct ec_cuda_host_tier *ht = &cu->host_tier;

	for (uint32_t i = 0; i < ht->n_reg; i++) {
		uint64_t off = (uintptr_t)p - (uintptr_t)ht->reg[i].p;

		if (off < ht->reg[i].len && bytes <= ht->reg[i].len - off)
			return true;
	}
	return false;
}
