/* btmmu test guest: console, formatting, CPU setup, exception dispatch
 * and the TAP test framework. */
#include "guest.h"

/* ------------------------------------------------------------------ */
/* tiny libc                                                            */
void *memset(void *d, int c, size_t n)
{
    uint8_t *p = d;
    while (n--)
        *p++ = (uint8_t)c;
    return d;
}

void *memcpy(void *d, const void *s, size_t n)
{
    uint8_t *p = d;
    const uint8_t *q = s;
    while (n--)
        *p++ = *q++;
    return d;
}

int memcmp(const void *a, const void *b, size_t n)
{
    const uint8_t *p = a, *q = b;
    for (; n; n--, p++, q++)
        if (*p != *q)
            return *p < *q ? -1 : 1;
    return 0;
}

size_t strlen(const char *s)
{
    size_t n = 0;
    while (s[n])
        n++;
    return n;
}

/* ------------------------------------------------------------------ */
/* serial console (COM1)                                                */
#define COM1 0x3f8

void serial_init(void)
{
    outb(COM1 + 1, 0x00);
    outb(COM1 + 3, 0x80);
    outb(COM1 + 0, 0x01);       /* 115200 baud */
    outb(COM1 + 1, 0x00);
    outb(COM1 + 3, 0x03);       /* 8N1 */
    outb(COM1 + 2, 0xC7);
    outb(COM1 + 4, 0x03);
}

static void serial_putc(char c)
{
    int spin = 100000;
    while (!(inb(COM1 + 5) & 0x20) && --spin)
        ;
    outb(COM1, (uint8_t)c);
}

void kputs(const char *s)
{
    while (*s)
        serial_putc(*s++);
}

struct obuf { char *buf; size_t n, pos; };

static void emit(struct obuf *o, char c)
{
    if (o->buf) {
        if (o->pos + 1 < o->n)
            o->buf[o->pos] = c;
    } else {
        serial_putc(c);
    }
    o->pos++;
}

static void vfmt(struct obuf *o, const char *fmt, va_list ap)
{
    for (; *fmt; fmt++) {
        if (*fmt != '%') {
            emit(o, *fmt);
            continue;
        }
        fmt++;
        int alt = 0, zero = 0, width = 0, lng = 0;
        if (*fmt == '#') { alt = 1; fmt++; }
        if (*fmt == '0') { zero = 1; fmt++; }
        while (*fmt >= '0' && *fmt <= '9')
            width = width * 10 + (*fmt++ - '0');
        while (*fmt == 'l') { lng++; fmt++; }
        char tmp[24];
        int n = 0;
        switch (*fmt) {
        case 'c':
            emit(o, (char)va_arg(ap, int));
            break;
        case 's': {
            const char *s = va_arg(ap, const char *);
            if (!s)
                s = "(null)";
            int len = (int)strlen(s);
            for (; len < width; width--)
                emit(o, ' ');
            while (*s)
                emit(o, *s++);
            break;
        }
        case 'd':
        case 'u': {
            long v;
            unsigned long u;
            if (lng)
                v = va_arg(ap, long);
            else
                v = *fmt == 'd' ? va_arg(ap, int) : (long)va_arg(ap, unsigned int);
            if (*fmt == 'd' && v < 0) {
                emit(o, '-');
                u = (unsigned long)-v;
            } else {
                u = *fmt == 'd' ? (unsigned long)v : (lng ? (unsigned long)v : (unsigned long)(unsigned int)v);
            }
            do {
                tmp[n++] = (char)('0' + u % 10);
                u /= 10;
            } while (u);
            for (; n < width; width--)
                emit(o, zero ? '0' : ' ');
            while (n)
                emit(o, tmp[--n]);
            break;
        }
        case 'x':
        case 'p': {
            uint64_t v;
            if (*fmt == 'p') {
                v = (uintptr_t)va_arg(ap, void *);
                alt = 1;
            } else if (lng >= 2) {
                v = va_arg(ap, unsigned long long);
            } else if (lng == 1) {
                v = va_arg(ap, unsigned long);
            } else {
                v = va_arg(ap, unsigned int);
            }
            do {
                tmp[n++] = "0123456789abcdef"[v & 15];
                v >>= 4;
            } while (v);
            if (alt) {
                emit(o, '0');
                emit(o, 'x');
            }
            for (; n < width; width--)
                emit(o, zero ? '0' : ' ');
            while (n)
                emit(o, tmp[--n]);
            break;
        }
        case '%':
            emit(o, '%');
            break;
        default:
            emit(o, '?');
            break;
        }
    }
}

int kprintf(const char *fmt, ...)
{
    struct obuf o = { 0, 0, 0 };
    va_list ap;
    va_start(ap, fmt);
    vfmt(&o, fmt, ap);
    va_end(ap);
    return (int)o.pos;
}

int kvsnprintf(char *buf, size_t n, const char *fmt, va_list ap)
{
    struct obuf o = { buf, n, 0 };
    vfmt(&o, fmt, ap);
    if (n)
        buf[o.pos < n ? o.pos : n - 1] = 0;
    return (int)o.pos;
}

int ksnprintf(char *buf, size_t n, const char *fmt, ...)
{
    struct obuf o = { buf, n, 0 };
    va_list ap;
    va_start(ap, fmt);
    vfmt(&o, fmt, ap);
    va_end(ap);
    if (n)
        buf[o.pos < n ? o.pos : n - 1] = 0;
    return (int)o.pos;
}

/* isa-debug-exit at 0xf4: QEMU exits with status (value << 1) | 1.
 * PASS writes 0x10 -> status 33 (0x21); FAIL writes 0x11 -> status 35 (0x23). */
void guest_exit(int pass)
{
    outl(0xf4, pass ? 0x10 : 0x11);
    for (;;)
        __asm__ volatile("cli; hlt");
}

void fatal(const char *msg)
{
    kprintf("# FATAL: %s\nBail out! %s\nFAIL 0/0\n", msg, msg);
    guest_exit(0);
}

/* ------------------------------------------------------------------ */
/* CPU features                                                         */
struct features cpu;

void cpu_probe(void)
{
    uint32_t a, b, c, d, max, emax;
    cpuid(0, 0, &max, &b, &c, &d);
    cpuid(1, 0, &a, &b, &c, &d);
    cpu.pse = !!(d & (1u << 3));
    cpu.pae = !!(d & (1u << 6));
    cpu.cx8 = !!(d & (1u << 8));
    cpu.apic = !!(d & (1u << 9));
    cpu.pge = !!(d & (1u << 13));
    cpu.sse2 = (d & (1u << 25)) && (d & (1u << 26)) && (d & (1u << 24));
    cpu.cx16 = !!(c & (1u << 13));
    if (max >= 7) {
        cpuid(7, 0, &a, &b, &c, &d);
        cpu.smep = !!(b & (1u << 7));
        cpu.smap = !!(b & (1u << 20));
    }
    cpuid(0x80000000u, 0, &emax, &b, &c, &d);
    if (emax >= 0x80000001u && emax < 0x8000ffffu) {
        cpuid(0x80000001u, 0, &a, &b, &c, &d);
        cpu.nx = !!(d & (1u << 20));
        cpu.pdpe1gb = !!(d & (1u << 26));
        cpu.lm = !!(d & (1u << 29));
    }
    cpu.maxphys = cpu.pae ? 36 : 32;
    if (emax >= 0x80000008u && emax < 0x8000ffffu) {
        cpuid(0x80000008u, 0, &a, &b, &c, &d);
        cpu.maxphys = (int)(a & 0xff);
    }
}

/* ------------------------------------------------------------------ */
/* descriptor tables                                                    */
extern uint64_t gdt[];
extern uint8_t gdt_desc[];
static uint8_t isr_stack[16384] __attribute__((aligned(16)));

#ifdef __x86_64__
struct __attribute__((packed)) tss {
    uint32_t rsvd0;
    uint64_t rsp[3];
    uint64_t rsvd1;
    uint64_t ist[7];
    uint64_t rsvd2;
    uint16_t rsvd3, iomap;
};
static struct tss tss __attribute__((aligned(16)));
static uint64_t idt[256 * 2] __attribute__((aligned(16)));

static void set_gate(int vec, uintptr_t handler, int dpl)
{
    idt[vec * 2] = (handler & 0xffff) | ((uint64_t)KCS << 16) |
                   (1ull << 32) /* IST1 */ | ((uint64_t)(0x8E | (dpl << 5)) << 40) |
                   ((uint64_t)(handler >> 16 & 0xffff) << 48);
    idt[vec * 2 + 1] = handler >> 32;
}
#else
struct __attribute__((packed)) tss {
    uint32_t link, esp0, ss0, esp1, ss1, esp2, ss2, cr3, eip, eflags;
    uint32_t eax, ecx, edx, ebx, esp, ebp, esi, edi;
    uint32_t es, cs, ss, ds, fs, gs, ldt;
    uint16_t trap, iomap;
};
static struct tss tss __attribute__((aligned(16)));
static uint64_t idt[256] __attribute__((aligned(16)));

static void set_gate(int vec, uintptr_t handler, int dpl)
{
    idt[vec] = (handler & 0xffff) | ((uint64_t)KCS << 16) |
               ((uint64_t)(0x8E | (dpl << 5)) << 40) |
               ((uint64_t)(handler >> 16 & 0xffff) << 48);
}
#endif

void arch_init(void)
{
    uintptr_t tb = (uintptr_t)&tss;
    memset(&tss, 0, sizeof tss);
    tss.iomap = sizeof tss;
#ifdef __x86_64__
    tss.rsp[0] = (uintptr_t)(isr_stack + sizeof isr_stack);
    tss.ist[0] = (uintptr_t)(isr_stack + sizeof isr_stack);
    gdt[TSS_SEL / 8] = (sizeof tss - 1) | ((uint64_t)(tb & 0xffffff) << 16) |
                       (0x89ull << 40) | ((uint64_t)(tb >> 24 & 0xff) << 56);
    gdt[TSS_SEL / 8 + 1] = (uint64_t)tb >> 32;
#else
    tss.esp0 = (uintptr_t)(isr_stack + sizeof isr_stack);
    tss.ss0 = KDS;
    gdt[TSS_SEL / 8] = (sizeof tss - 1) | ((uint64_t)(tb & 0xffffff) << 16) |
                       (0x89ull << 40) | ((uint64_t)(tb >> 24 & 0xff) << 56);
#endif
    __asm__ volatile("lgdt (%0)" :: "r"(gdt_desc) : "memory");
    __asm__ volatile("ltr %w0" :: "r"(TSS_SEL));

    for (int i = 0; i < 32; i++)
        set_gate(i, isr_table[i], 0);
    set_gate(SNIP_END_VEC, (uintptr_t)isr128, 3);
    struct __attribute__((packed)) { uint16_t lim; uintptr_t base; } d = { sizeof idt - 1, (uintptr_t)idt };
    __asm__ volatile("lidt %0" :: "m"(d));
}

/* ------------------------------------------------------------------ */
/* exception dispatch                                                   */
volatile int in_test;
struct jbuf test_jb;
char test_msg[256];
static int tfail, tskip;


void isr_c(struct frame *f)
{
    ureg cr2 = f->vec == 14 ? rd_cr2() : 0;
    if (snip_active) {
        snip_active = 0;
        snip_out.ax = f->ax; snip_out.bx = f->bx; snip_out.cx = f->cx; snip_out.dx = f->dx;
        snip_out.si = f->si; snip_out.di = f->di; snip_out.bp = f->bp;
        snip_out.ip = f->ip; snip_out.fl = f->fl;
#ifdef __x86_64__
        snip_out.sp = f->sp;
        snip_out.r8 = f->r8; snip_out.r9 = f->r9; snip_out.r10 = f->r10; snip_out.r11 = f->r11;
        snip_out.r12 = f->r12; snip_out.r13 = f->r13; snip_out.r14 = f->r14; snip_out.r15 = f->r15;
#else
        snip_out.sp = (f->cs & 3) ? f->usp : (ureg)&f->usp;
#endif
        snip_vec = f->vec;
        snip_err = f->err;
        snip_cr2 = cr2;
        snip_longjmp(f->vec);
    }
    if (in_test) {
        test_failf("unexpected exception %lu err %#lx ip %#lx cr2 %#lx",
                   (unsigned long)f->vec, (unsigned long)f->err, (unsigned long)f->ip, (unsigned long)cr2);
        tj_long(&test_jb, 1);
    }
    kprintf("# exception %lu err %#lx ip %#lx cr2 %#lx outside of a test\n",
            (unsigned long)f->vec, (unsigned long)f->err, (unsigned long)f->ip, (unsigned long)cr2);
    fatal("unexpected exception");
}

/* ------------------------------------------------------------------ */
/* TAP framework                                                        */
static int tnum, npass, nfail, nskip;
static char skip_reason[128];

void test_failf(const char *fmt, ...)
{
    if (tfail++)
        return;
    struct obuf o = { test_msg, sizeof test_msg, 0 };
    va_list ap;
    va_start(ap, fmt);
    vfmt(&o, fmt, ap);
    va_end(ap);
    test_msg[o.pos < sizeof test_msg ? o.pos : sizeof test_msg - 1] = 0;
}

void check_eq(const char *what, uint64_t exp, uint64_t got)
{
    if (exp != got)
        test_failf("expected %#llx got %#llx (%s)", (unsigned long long)exp, (unsigned long long)got, what);
}

void check_true(const char *what, int cond)
{
    if (!cond)
        test_failf("expected true got false (%s)", what);
}

int test_failed(void)
{
    return tfail;
}

void test_skip(const char *reason)
{
    if (!tskip) {
        tskip = 1;
        ksnprintf(skip_reason, sizeof skip_reason, "%s", reason);
    }
}

extern void test_cleanup(void);

void run_test(const char *name, void (*fn)(void))
{
    tnum++;
    tfail = 0;
    tskip = 0;
    test_msg[0] = 0;
    mmu_test_reset();
    in_test = 1;
    if (tj_set(&test_jb) == 0)
        fn();
    in_test = 0;
    test_cleanup();
    if (tfail) {
        nfail++;
        kprintf("not ok %d - %s/%s: %s\n", tnum, pm_name, name, test_msg);
    } else if (tskip) {
        nskip++;
        kprintf("ok %d - %s/%s # SKIP %s\n", tnum, pm_name, name, skip_reason);
    } else {
        npass++;
        kprintf("ok %d - %s/%s\n", tnum, pm_name, name);
    }
}

void tap_summary(void)
{
    int ok = npass + nskip;
    kprintf("1..%d\n", tnum);
    kprintf("btmmu-guest: %d passed, %d failed, %d skipped\n", npass, nfail, nskip);
    if (nfail == 0 && tnum > 0)
        kprintf("PASS %d/%d\n", ok, tnum);
    else
        kprintf("FAIL %d/%d\n", ok, tnum);
    guest_exit(nfail == 0 && tnum > 0);
}
