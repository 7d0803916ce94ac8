/* btmmu test guest, 64-bit build: multiboot (32-bit) entry that enables
 * long mode with 4-level paging (boot tables: identity 0..4 GiB, 2 MiB
 * pages), then GDT, exception stubs (all on IST1) and the snippet runner.
 * Linked as elf64 and converted to elf32-i386 for QEMU's multiboot loader. */
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
        ljmp    $KCS32, $1f
1:      mov     $KDS, %ax
        mov     %ax, %ds
        mov     %ax, %es
        mov     %ax, %ss
        mov     %ax, %fs
        mov     %ax, %gs
        /* long mode available? (not on qemu-system-i386) */
        mov     $0x80000000, %eax
        cpuid
        cmp     $0x80000001, %eax
        jb      no_long_mode
        mov     $0x80000001, %eax
        cpuid
        bt      $29, %edx
        jnc     no_long_mode
        /* clear .bss */
        mov     $__bss_start, %edi
        mov     $__bss_end, %ecx
        sub     %edi, %ecx
        xor     %eax, %eax
        rep stosb
        /* boot page tables: PML4[0] -> PDPT, PDPT[0..3] -> PD0..3 (2 MiB pages) */
        mov     $boot_pdpt, %eax
        or      $3, %eax
        mov     %eax, boot_pml4
        xor     %ecx, %ecx
2:      mov     %ecx, %eax
        shl     $12, %eax
        add     $boot_pd, %eax
        or      $3, %eax
        mov     %eax, boot_pdpt(, %ecx, 8)
        inc     %ecx
        cmp     $4, %ecx
        jne     2b
        xor     %ecx, %ecx
3:      mov     %ecx, %eax
        shl     $21, %eax
        or      $0x83, %eax
        mov     %eax, boot_pd(, %ecx, 8)
        mov     %ecx, %eax
        shr     $11, %eax
        mov     %eax, boot_pd + 4(, %ecx, 8)
        inc     %ecx
        cmp     $2048, %ecx
        jne     3b
        /* PAE, LME, PG */
        mov     %cr4, %eax
        or      $0x20, %eax
        mov     %eax, %cr4
        mov     $boot_pml4, %eax
        mov     %eax, %cr3
        mov     $0xC0000080, %ecx
        rdmsr
        or      $0x100, %eax
        wrmsr
        mov     %cr0, %eax
        or      $0x80000001, %eax
        mov     %eax, %cr0
        ljmp    $KCS, $long_entry

/* print a TAP bail-out on COM1 and exit through isa-debug-exit (FAIL) */
no_long_mode:
        mov     $no_lm_msg, %esi
1:      lodsb
        test    %al, %al
        jz      2f
        mov     $0x3f8, %dx
        outb    %al, %dx
        jmp     1b
2:      mov     $0xf4, %dx
        mov     $0x11, %eax
        outl    %eax, %dx
3:      cli
        hlt
        jmp     3b

        .code64
long_entry:
        mov     $KDS, %ax
        mov     %ax, %ds
        mov     %ax, %es
        mov     %ax, %ss
        mov     %ax, %fs
        mov     %ax, %gs
        mov     $boot_stack_top, %rsp
        call    kmain
4:      cli
        hlt
        jmp     4b

/* ------------------------------------------------------------------ */
        .macro ISR n
        .globl isr\n
isr\n:
        .if (\n == 8) || (\n == 10) || (\n == 11) || (\n == 12) || (\n == 13) || (\n == 14) || (\n == 17) || (\n == 21)
        .else
        pushq   $0
        .endif
        pushq   $\n
        jmp     isr_common
        .endm

        .irp n, 0,1,2,3,4,5,6,7,8,9,10,11,12,13,14,15,16,17,18,19,20,21,22,23,24,25,26,27,28,29,30,31,128
        ISR \n
        .endr

isr_common:
        push    %rax
        push    %rbx
        push    %rcx
        push    %rdx
        push    %rsi
        push    %rdi
        push    %rbp
        push    %r8
        push    %r9
        push    %r10
        push    %r11
        push    %r12
        push    %r13
        push    %r14
        push    %r15
        mov     $KDS, %ax
        mov     %ax, %ds
        mov     %ax, %es
        cld
        mov     %rsp, %rdi
        call    isr_c
5:      cli
        hlt
        jmp     5b

        .section .rodata
        .align 8
no_lm_msg:
        .asciz "# btmmu-guest64: this CPU has no long mode (use qemu-system-x86_64)\nBail out! no long mode\nFAIL 0/1\n"
        .align 8
        .globl isr_table
isr_table:
        .irp n, 0,1,2,3,4,5,6,7,8,9,10,11,12,13,14,15,16,17,18,19,20,21,22,23,24,25,26,27,28,29,30,31
        .quad isr\n
        .endr
        .text

/* ------------------------------------------------------------------ */
/* int snip_run(void): IRETQ to snip_cs:snip_in.ip with snip_ss:snip_in.sp
 * and all GPRs from snip_in (works for 64-bit and compatibility mode,
 * ring 0 and ring 3).  Returns via snip_longjmp(). */
        .globl snip_run
snip_run:
        push    %rbx
        push    %rbp
        push    %r12
        push    %r13
        push    %r14
        push    %r15
        mov     %rsp, host_sp
        pushq   snip_ss
        pushq   snip_in + R_SP
        pushq   snip_in + R_FL
        pushq   snip_cs
        pushq   snip_in + R_IP
        mov     snip_ss, %rax
        mov     %ax, %ds
        mov     %ax, %es
        mov     snip_in + R_BX, %rbx
        mov     snip_in + R_CX, %rcx
        mov     snip_in + R_DX, %rdx
        mov     snip_in + R_SI, %rsi
        mov     snip_in + R_DI, %rdi
        mov     snip_in + R_BP, %rbp
        mov     snip_in + R_R8, %r8
        mov     snip_in + R_R9, %r9
        mov     snip_in + R_R10, %r10
        mov     snip_in + R_R11, %r11
        mov     snip_in + R_R12, %r12
        mov     snip_in + R_R13, %r13
        mov     snip_in + R_R14, %r14
        mov     snip_in + R_R15, %r15
        mov     snip_in + R_AX, %rax
        iretq

        .globl snip_longjmp
snip_longjmp:
        mov     %rdi, %rax
        mov     host_sp, %rsp
        pushq   $2
        popfq
        mov     $KDS, %dx
        mov     %dx, %ds
        mov     %dx, %es
        pop     %r15
        pop     %r14
        pop     %r13
        pop     %r12
        pop     %rbp
        pop     %rbx
        ret

        .globl tj_set
tj_set:
        mov     %rbx, 0(%rdi)
        mov     %rbp, 8(%rdi)
        mov     %r12, 16(%rdi)
        mov     %r13, 24(%rdi)
        mov     %r14, 32(%rdi)
        mov     %r15, 40(%rdi)
        lea     8(%rsp), %rax
        mov     %rax, 48(%rdi)
        mov     (%rsp), %rax
        mov     %rax, 56(%rdi)
        xor     %eax, %eax
        ret

        .globl tj_long
tj_long:
        mov     %esi, %eax
        mov     0(%rdi), %rbx
        mov     8(%rdi), %rbp
        mov     16(%rdi), %r12
        mov     24(%rdi), %r13
        mov     32(%rdi), %r14
        mov     40(%rdi), %r15
        mov     48(%rdi), %rsp
        pushq   $2
        popfq
        mov     $KDS, %dx
        mov     %dx, %ds
        mov     %dx, %es
        jmp     *56(%rdi)

/* ------------------------------------------------------------------ */
        .data
        .align 16
        .globl gdt
gdt:
        .quad 0
        .quad 0x00AF9A000000FFFF        /* 0x08 kernel code, 64-bit */
        .quad 0x00CF92000000FFFF        /* 0x10 kernel data */
        .quad 0x00CF9A000000FFFF        /* 0x18 kernel code, 32-bit */
        .quad 0x00CFFA000000FFFF        /* 0x20 user code, 32-bit */
        .quad 0x00CFF2000000FFFF        /* 0x28 user data */
        .quad 0x00AFFA000000FFFF        /* 0x30 user code, 64-bit */
        .quad 0, 0                      /* 0x38 TSS (filled in by C) */
gdt_end:
        .globl gdt_desc
        .align 8
gdt_desc:
        .word gdt_end - gdt - 1
        .quad gdt

        .globl snip_cs, snip_ss, snip_err, snip_cr2, snip_vec, snip_active
        .align 8
snip_cs:        .quad 0
snip_ss:        .quad 0
snip_err:       .quad 0
snip_cr2:       .quad 0
snip_vec:       .quad 0
snip_active:    .quad 0
host_sp:        .quad 0

        .bss
        .align 4096
boot_pml4:      .space 4096
boot_pdpt:      .space 4096
boot_pd:        .space 4 * 4096
        .align 16
        .globl snip_in, snip_out
snip_in:        .space 18 * RW
snip_out:       .space 18 * RW
        .align 4096
boot_stack:     .space 32768
boot_stack_top:
