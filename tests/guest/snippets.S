/* Test snippets.  Each snippet performs the access under test as its FIRST
 * instruction (so a fault reports IP == snippet start) and ends with
 * "int $0x80", which returns to snip_run()'s caller.  Every snippet exists
 * twice: k_NAME in supervisor .text and u_NAME in the user-accessible
 * .usertext section (mapped U=1), so it can run at CPL0 or CPL3.
 * Registers: SI = source address, DI = destination address. */
#include "asmdefs.h"

#ifdef __x86_64__
#define SI %rsi
#define DI %rdi
#define AX %rax
#else
#define SI %esi
#define DI %edi
#define AX %eax
#endif

        .macro SNIP name
        .pushsection .usertext, "ax"
        .globl u_\name
u_\name:
        B_\name
        int     $0x80
        .popsection
        .text
        .globl k_\name
k_\name:
        B_\name
        int     $0x80
        .endm

        .macro B_nop
        nop
        .endm
        .macro B_ld8
        movzbl  (SI), %eax
        .endm
        .macro B_ld16
        movzwl  (SI), %eax
        .endm
        .macro B_ld32
        movl    (SI), %eax
        .endm
#ifdef __x86_64__
        .macro B_ld64
        movq    (SI), %rax
        .endm
        .macro B_st64
        movq    %rax, (DI)
        .endm
        .macro B_cmpxchg16b
        lock cmpxchg16b (DI)
        .endm
#else
        .macro B_ld64
        movq    (SI), %xmm0
        .endm
        .macro B_st64
        movq    %xmm0, (DI)
        .endm
#endif
        .macro B_ld128
        movdqu  (SI), %xmm0
        .endm
        .macro B_st8
        movb    %al, (DI)
        .endm
        .macro B_st16
        movw    %ax, (DI)
        .endm
        .macro B_st32
        movl    %eax, (DI)
        .endm
        .macro B_st128
        movdqu  %xmm0, (DI)
        .endm
        .macro B_st128ps
        movups  %xmm0, (DI)
        .endm
        .macro B_setx0
        movdqu  (SI), %xmm0
        .endm
        .macro B_getx0
        movdqu  %xmm0, (DI)
        .endm
        .macro B_add
        addl    %eax, (DI)
        .endm
        .macro B_push
        push    AX
        .endm
        .macro B_rep_movsb
        rep movsb
        .endm
        .macro B_rep_stosl
        rep stosl
        .endm
        .macro B_movsl
        movsl
        .endm
        .macro B_xadd
        lock xaddl %eax, (DI)
        .endm
        .macro B_cmpxchg
        lock cmpxchgl %ecx, (DI)
        .endm
        .macro B_cmpxchg_nolock
        cmpxchgl %ecx, (DI)
        .endm
        .macro B_xchg
        xchgl   %eax, (DI)
        .endm
        .macro B_cmpxchg8b
        lock cmpxchg8b (DI)
        .endm
        .macro B_lockinc
        lock incl (DI)
        .endm

        .text
        SNIP nop
        SNIP ld8
        SNIP ld16
        SNIP ld32
        SNIP ld64
        SNIP ld128
        SNIP st8
        SNIP st16
        SNIP st32
        SNIP st64
        SNIP st128
        SNIP st128ps
        SNIP setx0
        SNIP getx0
        SNIP add
        SNIP push
        SNIP rep_movsb
        SNIP rep_stosl
        SNIP movsl
        SNIP xadd
        SNIP cmpxchg
        SNIP cmpxchg_nolock
        SNIP xchg
        SNIP cmpxchg8b
        SNIP lockinc

/* svm_global: the nested guest's code (entered by VMRUN, not snip_run),
 * ring 0 (k_) and ring 3 (u_): one load, then VMMCALL (intercepted:
 * #VMEXIT back to the host). */
        .macro B_l2_ld32
        movl    (SI), %eax
        vmmcall
        ud2
        .endm
        SNIP l2_ld32

#ifdef __x86_64__
        SNIP cmpxchg16b

/* compatibility-mode (32-bit code segment) snippets: c_ (CPL0), uc_ (CPL3) */
        .macro CSNIP name
        .pushsection .usertext, "ax"
        .code32
        .globl uc_\name
uc_\name:
        C_\name
        int     $0x80
        .code64
        .popsection
        .text
        .code32
        .globl c_\name
c_\name:
        C_\name
        int     $0x80
        .code64
        .endm

        .macro C_ld32
        movl    (%esi), %eax
        .endm
        .macro C_st32
        movl    %eax, (%edi)
        .endm
        .macro C_push
        push    %eax
        .endm
        .macro C_rep_movsb
        rep movsb
        .endm
        .macro C_xadd
        lock xaddl %eax, (%edi)
        .endm
        .macro C_st128
        movdqu  %xmm0, (%edi)
        .endm
        .macro C_st128ps
        movups  %xmm0, (%edi)
        .endm

        CSNIP ld32
        CSNIP st32
        CSNIP push
        CSNIP rep_movsb
        CSNIP xadd
        CSNIP st128
        CSNIP st128ps
#endif
