/* SPDX-License-Identifier: MIT */
/* See probe-x86_64.S: the same contract for aarch64 hosts. */
#define FUNC(name)			\
	.globl name;			\
	.type name, %function;		\
	.p2align 4;			\
name:					\
	hint	#34 /* bti c */

	.text
	.globl btmmu__probe_begin
	.hidden btmmu__probe_begin
	.globl btmmu__probe_end
	.hidden btmmu__probe_end
	.globl btmmu__probe_fixup
	.hidden btmmu__probe_fixup

btmmu__probe_begin:

FUNC(btmmu_load8)
	ldrb	w2, [x0]
	strb	w2, [x1]
	mov	w0, #0
	ret
	.size btmmu_load8, .-btmmu_load8

FUNC(btmmu_load16)
	ldrh	w2, [x0]
	strh	w2, [x1]
	mov	w0, #0
	ret
	.size btmmu_load16, .-btmmu_load16

FUNC(btmmu_load32)
	ldr	w2, [x0]
	str	w2, [x1]
	mov	w0, #0
	ret
	.size btmmu_load32, .-btmmu_load32

FUNC(btmmu_load64)
	ldr	x2, [x0]
	str	x2, [x1]
	mov	w0, #0
	ret
	.size btmmu_load64, .-btmmu_load64

FUNC(btmmu_store8)
	strb	w1, [x0]
	mov	w0, #0
	ret
	.size btmmu_store8, .-btmmu_store8

FUNC(btmmu_store16)
	strh	w1, [x0]
	mov	w0, #0
	ret
	.size btmmu_store16, .-btmmu_store16

FUNC(btmmu_store32)
	str	w1, [x0]
	mov	w0, #0
	ret
	.size btmmu_store32, .-btmmu_store32

FUNC(btmmu_store64)
	str	x1, [x0]
	mov	w0, #0
	ret
	.size btmmu_store64, .-btmmu_store64

btmmu__probe_end:

	.p2align 4
btmmu__probe_fixup:
	mov	w0, #1
	ret

	.section .note.GNU-stack,"",%progbits
