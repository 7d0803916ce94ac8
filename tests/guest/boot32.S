/* btmmu test guest, 32-bit build: multiboot entry, GDT, exception stubs,
 * snippet runner.  Runs in 32-bit protected mode; paging is set up in C. */
#include "asmdefs.h"

#define MB_MAGIC 0x1BADB002
#define MB_FLAGS 0x00000003

        .section .multiboot, "a"
        .align 4
        .long MB_MAGIC
        .long MB_FLAGS
        .long -(MB_MAGIC + MB_FLAGS)

        .text
        .code32
        .globl _start
_start:
        cli
        cld
        mov     $boot_stack_top, %esp
        lgdt    gdt_desc
        ljmp    $KCS, $1f
1:      mov     $KDS, %ax
        mov     %ax, %ds
        mov     %ax, %es
        mov     %ax, %ss
        mov     %ax, %fs
        mov     %ax, %gs
        /* clear .bss */
        mov     $__bss_start, %edi
        mov     $__bss_end, %ecx
        sub     %edi, %ecx
        xor     %eax, %eax
        rep stosb
        call    kmain
2:      cli
        hlt
        jmp     2b

/* ------------------------------------------------------------------ */
/* exception / interrupt stubs                                          */
        .macro ISR n
        .globl isr\n
isr\n:
        .if (\n == 8) || (\n == 10) || (\n == 11) || (\n == 12) || (\n == 13) || (\n == 14) || (\n == 17) || (\n == 21)
        .else
        pushl   $0
        .endif
        pushl   $\n
        jmp     isr_common
        .endm

        .irp n, 0,1,2,3,4,5,6,7,8,9,10,11,12,13,14,15,16,17,18,19,20,21,22,23,24,25,26,27,28,29,30,31,128
        ISR \n
        .endr

isr_common:
        pusha
        mov     $KDS, %ax
        mov     %ax, %ds
        mov     %ax, %es
        mov     %ax, %fs
        mov     %ax, %gs
        cld
        push    %esp
        call    isr_c
3:      cli
        hlt
        jmp     3b

        .section .rodata
        .align 4
        .globl isr_table
isr_table:
        .irp n, 0,1,2,3,4,5,6,7,8,9,10,11,12,13,14,15,16,17,18,19,20,21,22,23,24,25,26,27,28,29,30,31
        .long isr\n
        .endr
        .text

/* ------------------------------------------------------------------ */
/* int snip_run(void): run the code at snip_in.ip with all registers
 * loaded from snip_in, at CPL (snip_cs & 3).  Entered via IRET (which is
 * serializing).  Returns through snip_longjmp() from the exception
 * handler, with the vector number (0x80 = the snippet's final int $0x80). */
        .globl snip_run
snip_run:
        push    %ebp
        push    %ebx
        push    %esi
        push    %edi
        mov     %esp, host_sp
        testl   $3, snip_cs
        jnz     1f
        /* ring 0: the IRET frame goes on the snippet stack */
        mov     snip_in + R_SP, %esp
        pushl   snip_in + R_FL
        pushl   snip_cs
        pushl   snip_in + R_IP
        jmp     2f
1:      pushl   snip_ss
        pushl   snip_in + R_SP
        pushl   snip_in + R_FL
        pushl   snip_cs
        pushl   snip_in + R_IP
        mov     $UDS, %ax
        mov     %ax, %ds
        mov     %ax, %es
        mov     %ax, %fs
        mov     %ax, %gs
2:      mov     snip_in + R_BX, %ebx
        mov     snip_in + R_CX, %ecx
        mov     snip_in + R_DX, %edx
        mov     snip_in + R_SI, %esi
        mov     snip_in + R_DI, %edi
        mov     snip_in + R_BP, %ebp
        mov     snip_in + R_AX, %eax
        iret

/* void snip_longjmp(ureg vec) */
        .globl snip_longjmp
snip_longjmp:
        mov     4(%esp), %eax
        mov     host_sp, %esp
        pushl   $2
        popfl
        pop     %edi
        pop     %esi
        pop     %ebx
        pop     %ebp
        ret

/* int tj_set(struct jbuf *) / void tj_long(struct jbuf *, int) */
        .globl tj_set
tj_set:
        mov     4(%esp), %eax
        mov     %ebx, 0(%eax)
        mov     %esi, 4(%eax)
        mov     %edi, 8(%eax)
        mov     %ebp, 12(%eax)
        lea     4(%esp), %ecx
        mov     %ecx, 16(%eax)
        mov     (%esp), %ecx
        mov     %ecx, 20(%eax)
        xor     %eax, %eax
        ret

        .globl tj_long
tj_long:
        mov     4(%esp), %edx
        mov     8(%esp), %eax
        mov     0(%edx), %ebx
        mov     4(%edx), %esi
        mov     8(%edx), %edi
        mov     12(%edx), %ebp
        mov     16(%edx), %esp
        pushl   $2
        popfl
        jmp     *20(%edx)

/* ------------------------------------------------------------------ */
        .data
        .align 16
        .globl gdt
gdt:
        .quad 0
        .quad 0x00CF9A000000FFFF        /* 0x08 kernel code */
        .quad 0x00CF92000000FFFF        /* 0x10 kernel data */
        .quad 0x00CFFA000000FFFF        /* 0x18 user code   */
        .quad 0x00CFF2000000FFFF        /* 0x20 user data   */
        .quad 0                         /* 0x28 TSS (filled in by C) */
gdt_end:
        .globl gdt_desc
gdt_desc:
        .word gdt_end - gdt - 1
        .long gdt

        .globl snip_cs, snip_ss, snip_err, snip_cr2, snip_vec, snip_active
snip_cs:        .long 0
snip_ss:        .long 0
snip_err:       .long 0
snip_cr2:       .long 0
snip_vec:       .long 0
snip_active:    .long 0
host_sp:        .long 0

        .bss
        .align 16
        .globl snip_in, snip_out
snip_in:        .space 10 * RW
snip_out:       .space 10 * RW
        .align 4096
boot_stack:     .space 32768
boot_stack_top:
