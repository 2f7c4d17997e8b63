// SPDX-License-Identifier: MIT
/* Fiber stacks and contexts for the CUDA emulation (see fiber.h). */
#include "fiber.h"

#include <errno.h>
#include <stdint.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

int ec_emu_stacks_reserve(struct ec_emu_stacks *a, unsigned int n,
			  size_t size)
{
	size_t page = (size_t)sysconf(_SC_PAGESIZE);
	void *p;

	size = (size + page - 1) / page * page;
	a->slot = size + page;
	a->bytes = a->slot * n;
	/* pages are only backed once a fiber's stack reaches them */
	p = mmap(NULL, a->bytes, PROT_READ | PROT_WRITE,
		 MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
	if (p == MAP_FAILED)
		return -errno;
	a->base = p;
	a->size = size;
	a->n = n;
	return 0;
}

int ec_emu_stack_get(struct ec_emu_stacks *a, unsigned int i,
		     struct ec_emu_stack *s)
{
	size_t page = (size_t)sysconf(_SC_PAGESIZE);
	uint8_t *slot = (uint8_t *)a->base + a->slot * i;

	if (i >= a->n)
		return -EINVAL;
	/* an overflow faults on the guard page instead of the next stack */
	if (mprotect(slot, page, PROT_NONE) < 0)
		return -errno;
	s->lo = slot + page;
	s->size = a->size;
	return 0;
}

#if defined(__x86_64__)
extern "C" void ec_emu_ctx_start(void);

void ec_emu_ctx_make(struct ec_emu_ctx *c, const struct ec_emu_stack *s,
		     void (*fn)(void *), void *arg)
{
	uint64_t *top = (uint64_t *)((uint8_t *)s->lo + s->size);
	/* the frame ec_emu_ctx_switch pops; its ret leaves rsp at top */
	uint64_t *sp = top - 7;

	sp[0] = 0;				/* r15 */
	sp[1] = 0;				/* r14 */
	sp[2] = (uint64_t)(uintptr_t)fn;	/* r13 */
	sp[3] = (uint64_t)(uintptr_t)arg;	/* r12 */
	sp[4] = 0;				/* rbx */
	sp[5] = 0;				/* rbp: ends frame chains */
	sp[6] = (uint64_t)(uintptr_t)ec_emu_ctx_start;
	c->sp = sp;
}
#else
static void ctx_entry(unsigned int fhi, unsigned int flo, unsigned int ahi,
		      unsigned int alo)
{
	void (*fn)(void *) = (void (*)(void *))(uintptr_t)(
		((uint64_t)fhi << 32) | flo);
	void *arg = (void *)(uintptr_t)(((uint64_t)ahi << 32) | alo);

	fn(arg);
}

void ec_emu_ctx_make(struct ec_emu_ctx *c, const struct ec_emu_stack *s,
		     void (*fn)(void *), void *arg)
{
	uint64_t f = (uintptr_t)fn, a = (uintptr_t)arg;

	getcontext(&c->uc);
	c->uc.uc_stack.ss_sp = s->lo;
	c->uc.uc_stack.ss_size = s->size;
	c->uc.uc_link = NULL;
	makecontext(&c->uc, (void (*)(void))ctx_entry, 4,
		    (unsigned int)(f >> 32), (unsigned int)f,
		    (unsigned int)(a >> 32), (unsigned int)a);
}

void ec_emu_ctx_swap(struct ec_emu_ctx *from, struct ec_emu_ctx *to)
{
	swapcontext(&from->uc, &to->uc);
}
#endif
