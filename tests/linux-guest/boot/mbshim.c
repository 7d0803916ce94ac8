/* Multiboot shim: boots Debian's uncompressed i386 vmlinux through QEMU's
 * multiboot loader, skipping the bzImage's XZ decompressor (~1.5 s under TCG).
 *
 * Image layout (built by build.sh): this shim, padded to 4 KiB and loaded at
 * 0x1000000 - 4 KiB, then the flat kernel image (objcopy -O binary vmlinux)
 * which lands at its link address 0x1000000 (LOAD_PHYSICAL_ADDR: no
 * relocation, no KASLR). The multiboot header uses the a.out kludge, so the
 * build patches its load_end_addr/bss_end_addr. The initramfs is multiboot
 * module 0. The shim fills a boot_params page (setup header copied from the
 * bzImage by the build, e820 from the multiboot memory map, command line,
 * initrd) and enters startup_32 like the decompressor does: %esi =
 * boot_params, flat segments, paging and interrupts off. */
#include <stdint.h>

#define KERNEL_ENTRY 0x1000000u
#define BOOT_PARAMS 0x10000u
#define CMDLINE 0x11000u
#define CMDLINE_MAX 2048u

struct mb_info {
    uint32_t flags, mem_lower, mem_upper, boot_device, cmdline, mods_count, mods_addr;
    uint32_t syms[4], mmap_length, mmap_addr;
};
struct mb_mod {
    uint32_t start, end, string, reserved;
};
struct mb_mmap {
    uint32_t size;
    uint64_t addr, len;
    uint32_t type;
} __attribute__((packed));
struct e820 {
    uint64_t addr, size;
    uint32_t type;
} __attribute__((packed));

/* Patched by build.sh: length and bytes of the setup header (offset 0x1f1). */
extern volatile uint32_t setup_hdr_len;
extern volatile uint8_t setup_hdr[];

static void outs(const char *s)
{
    for (; *s; s++)
        __asm__ volatile("outb %0, %1" : : "a"(*s), "Nd"((uint16_t)0x3f8));
}

static void halt(const char *msg)
{
    outs("mbshim: ");
    outs(msg);
    outs("\n");
    for (;;)
        __asm__ volatile("cli; hlt");
}

__attribute__((used, noreturn)) void mbshim_main(uint32_t magic, struct mb_info *mbi)
{
    volatile uint8_t *bp = (volatile uint8_t *)BOOT_PARAMS;
    if (magic != 0x2BADB002u)
        halt("not started by a multiboot loader");
    for (uint32_t i = 0; i < 4096; i++)
        bp[i] = 0;
    if (setup_hdr_len == 0 || setup_hdr_len > 0x290 - 0x1f1)
        halt("no setup header");
    for (uint32_t i = 0; i < setup_hdr_len; i++)
        bp[0x1f1 + i] = setup_hdr[i];
    bp[0x210] = 0xff;  /* type_of_loader: undefined loader */
    bp[0x211] |= 0x01; /* loadflags: LOADED_HIGH */

    /* Command line: QEMU passes "KERNEL_PATH ARGS"; drop the path. */
    volatile char *cl = (volatile char *)CMDLINE;
    const char *src = (mbi->flags & (1u << 2)) ? (const char *)mbi->cmdline : "";
    while (*src && *src != ' ')
        src++;
    while (*src == ' ')
        src++;
    uint32_t n = 0;
    while (src[n] && n < CMDLINE_MAX - 1) {
        cl[n] = src[n];
        n++;
    }
    cl[n] = 0;
    *(volatile uint32_t *)(bp + 0x228) = CMDLINE; /* cmd_line_ptr */

    if ((mbi->flags & (1u << 3)) && mbi->mods_count > 0) {
        struct mb_mod *m = (struct mb_mod *)mbi->mods_addr;
        *(volatile uint32_t *)(bp + 0x218) = m->start; /* ramdisk_image */
        *(volatile uint32_t *)(bp + 0x21c) = m->end - m->start;
    }

    if (!(mbi->flags & (1u << 6)))
        halt("no memory map");
    volatile struct e820 *e = (volatile struct e820 *)(bp + 0x2d0);
    uint32_t count = 0;
    for (uint32_t off = 0; off < mbi->mmap_length && count < 128;) {
        struct mb_mmap *mm = (struct mb_mmap *)(mbi->mmap_addr + off);
        e[count].addr = mm->addr;
        e[count].size = mm->len;
        e[count].type = mm->type;
        count++;
        off += mm->size + 4;
    }
    bp[0x1e8] = (uint8_t)count; /* e820_entries */

    __asm__ volatile("cld\n\t"
                     "xorl %%ebx, %%ebx\n\t"
                     "xorl %%ebp, %%ebp\n\t"
                     "xorl %%edi, %%edi\n\t"
                     "jmp *%%eax"
                     :
                     : "S"(BOOT_PARAMS), "a"(KERNEL_ENTRY)
                     : "memory");
    __builtin_unreachable();
}
