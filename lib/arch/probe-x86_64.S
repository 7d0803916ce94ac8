/* SPDX-License-Identifier: MIT */
/*
 * btmmu_load*() / btmmu_store*(): one host access each, between
 * btmmu__probe_begin and btmmu__probe_end. When the fault callback answers
 * BTMMU_FAULT_SLOW for a fault in here, the dispatcher resumes at
 * btmmu__probe_fixup, which returns 1. The functions are leaves with no
 * stack adjustment, so the fixup's ret returns to their caller.
 */
#ifdef __CET__
#define ENDBR endbr64
#else
#define ENDBR
#endif

#define FUNC(name)			\
	.globl name;			\
	.type name, @function;		\
	.p2align 4;			\
name:					\
	ENDBR

	.text
	.globl btmmu__probe_begin
	.hidden btmmu__probe_begin
	.globl btmmu__probe_end
	.hidden btmmu__probe_end
	.globl btmmu__probe_fixup
	.hidden btmmu__probe_fixup

btmmu__probe_begin:

FUNC(btmmu_load8)
	movzbl	(%rdi), %eax
	movb	%al, (%rsi)
	xorl	%eax, %eax
	ret
	.size btmmu_load8, .-btmmu_load8

FUNC(btmmu_load16)
	movzwl	(%rdi), %eax
	movw	%ax, (%rsi)
	xorl	%eax, %eax
	ret
	.size btmmu_load16, .-btmmu_load16

FUNC(btmmu_load32)
	movl	(%rdi), %eax
	movl	%eax, (%rsi)
	xorl	%eax, %eax
	ret
	.size btmmu_load32, .-btmmu_load32

FUNC(btmmu_load64)
	movq	(%rdi), %rax
	movq	%rax, (%rsi)
	xorl	%eax, %eax
	ret
	.size btmmu_load64, .-btmmu_load64

FUNC(btmmu_store8)
	movb	%sil, (%rdi)
	xorl	%eax, %eax
	ret
	.size btmmu_store8, .-btmmu_store8

FUNC(btmmu_store16)
	movw	%si, (%rdi)
	xorl	%eax, %eax
	ret
	.size btmmu_store16, .-btmmu_store16

FUNC(btmmu_store32)
	movl	%esi, (%rdi)
	xorl	%eax, %eax
	ret
	.size btmmu_store32, .-btmmu_store32

FUNC(btmmu_store64)
	movq	%rsi, (%rdi)
	xorl	%eax, %eax
	ret
	.size btmmu_store64, .-btmmu_store64

btmmu__probe_end:

	.p2align 4
btmmu__probe_fixup:
	movl	$1, %eax
	ret

	.section .note.GNU-stack,"",@progbits
