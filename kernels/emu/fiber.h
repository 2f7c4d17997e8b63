/* SPDX-License-Identifier: MIT */
/*
 * Fibers for the emulated GPU threads: stacks (mmap'ed, with a guard page
 * below, reused across launches) and a context switch that saves only the
 * callee-saved registers (fiber_x86_64.S; swapcontext elsewhere, which is
 * about ten times slower because it also switches the signal mask).
 */
#ifndef EC_EMU_FIBER_H
#define EC_EMU_FIBER_H

#include <stddef.h>

#if !defined(__x86_64__)
#include <ucontext.h>
#endif

struct ec_emu_stack {
	void *lo;		/* lowest usable byte (above the guard page) */
	size_t size;
};

/* Room for n stacks side by side: one region, so the sanitizers can be
 * told about switches into and out of it rather than between fibers. */
struct ec_emu_stacks {
	void *base;
	size_t bytes, slot, size;
	unsigned int n;
};

struct ec_emu_ctx {
#if defined(__x86_64__)
	void *sp;		/* saved stack pointer while switched out */
#else
	ucontext_t uc;
#endif
};

/* Reserve n stacks of size bytes (address space only): 0 or -errno. */
int ec_emu_stacks_reserve(struct ec_emu_stacks *a, unsigned int n,
			  size_t size);
/* Stack i (< n) of a reservation, its guard page below it: 0 or -errno. */
int ec_emu_stack_get(struct ec_emu_stacks *a, unsigned int i,
		     struct ec_emu_stack *s);

/* A context that will call fn(arg) on stack s when first switched to;
 * fn must never return. */
void ec_emu_ctx_make(struct ec_emu_ctx *c, const struct ec_emu_stack *s,
		     void (*fn)(void *), void *arg);
/* Save the running context into from and resume to. */
#if defined(__x86_64__)
extern "C" void ec_emu_ctx_switch(void **save_sp, void *to_sp);

static inline void ec_emu_ctx_swap(struct ec_emu_ctx *from,
				   struct ec_emu_ctx *to)
{
	ec_emu_ctx_switch(&from->sp, to->sp);
}
#else
void ec_emu_ctx_swap(struct ec_emu_ctx *from, struct ec_emu_ctx *to);
#endif

#endif
