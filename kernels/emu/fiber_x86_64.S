/* SPDX-License-Identifier: MIT */
/*
 * The x86-64 fiber switch of the CUDA emulation (fiber.h): push the
 * callee-saved registers, swap stack pointers, pop.  No system call,
 * unlike swapcontext.  The SSE and x87 control words are not switched
 * (ldmxcsr and fldcw cost more than the rest together): every fiber runs
 * with the floating-point environment of the thread that runs the grid.
 */
#if defined(__x86_64__)
	.text

/* void ec_emu_ctx_switch(void **save_sp, void *to_sp) */
	.globl	ec_emu_ctx_switch
	.hidden	ec_emu_ctx_switch
	.type	ec_emu_ctx_switch, @function
ec_emu_ctx_switch:
	.cfi_startproc
	pushq	%rbp
	pushq	%rbx
	pushq	%r12
	pushq	%r13
	pushq	%r14
	pushq	%r15
	movq	%rsp, (%rdi)
	movq	%rsi, %rsp
	popq	%r15
	popq	%r14
	popq	%r13
	popq	%r12
	popq	%rbx
	popq	%rbp
	ret
	.cfi_endproc
	.size	ec_emu_ctx_switch, .-ec_emu_ctx_switch

/* First "return" of a new fiber: call r13(r12) on an aligned stack. */
	.globl	ec_emu_ctx_start
	.hidden	ec_emu_ctx_start
	.type	ec_emu_ctx_start, @function
ec_emu_ctx_start:
	.cfi_startproc
	.cfi_undefined rip
	xorl	%ebp, %ebp
	movq	%r12, %rdi
	callq	*%r13
	ud2
	.cfi_endproc
	.size	ec_emu_ctx_start, .-ec_emu_ctx_start
#endif
	.section .note.GNU-stack,"",@progbits
