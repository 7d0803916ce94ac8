/* Multiboot header (a.out kludge) and entry of mbshim.c. build.sh patches
 * load_end_addr, bss_end_addr and the setup header (offsets 0x14, 0x18, 0x20, 0x24). */
#define MB_MAGIC 0x1BADB002
#define MB_FLAGS 0x00010003 /* page-aligned modules, memory info, address fields */
    .section .text.head, "ax"
    .globl mb_header
mb_header:
    .long MB_MAGIC
    .long MB_FLAGS
    .long -(MB_MAGIC + MB_FLAGS)
    .long mb_header          /* header_addr */
    .long mb_header          /* load_addr */
    .globl mb_load_end
mb_load_end:
    .long 0                  /* load_end_addr: patched by build.sh */
    .globl mb_bss_end
mb_bss_end:
    .long 0                  /* bss_end_addr: patched by build.sh */
    .long mb_entry           /* entry_addr */
    .globl setup_hdr_len
setup_hdr_len:
    .long 0                  /* patched by build.sh */
    .globl setup_hdr
setup_hdr:
    .fill 0x100, 1, 0        /* patched by build.sh */

mb_entry:
    cli
    movl $0x00ff0000, %esp   /* below the shim, above low memory structures */
    pushl %ebx               /* multiboot info */
    pushl %eax               /* magic */
    call mbshim_main
1:  hlt
    jmp 1b
    .section .note.GNU-stack,"",@progbits
