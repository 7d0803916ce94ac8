/* btmmu test guest: common declarations (freestanding, 32- and 64-bit). */
#ifndef BTMMU_GUEST_H
#define BTMMU_GUEST_H

#include <stdint.h>
#include <stddef.h>
#include <stdarg.h>
#include "asmdefs.h"

typedef unsigned long ureg;     /* register width: 4 or 8 bytes */

struct regs {
    ureg ax, bx, cx, dx, si, di, bp, sp, fl, ip;
#ifdef __x86_64__
    ureg r8, r9, r10, r11, r12, r13, r14, r15;
#endif
};

/* exception frame built by isr_common (see boot32.S / boot64.S) */
#ifdef __x86_64__
struct frame {
    ureg r15, r14, r13, r12, r11, r10, r9, r8;
    ureg bp, di, si, dx, cx, bx, ax;
    ureg vec, err, ip, cs, fl, sp, ss;
};
#else
struct frame {
    ureg di, si, bp, sp_unused, bx, dx, cx, ax;
    ureg vec, err, ip, cs, fl, usp, uss;   /* usp/uss only from ring 3 */
};
#endif

struct jbuf { ureg r[8]; };
int  tj_set(struct jbuf *jb) __attribute__((returns_twice));
void tj_long(struct jbuf *jb, int v) __attribute__((noreturn));

/* ---- snippet runner (asm) ---- */
extern struct regs snip_in, snip_out;
extern ureg snip_cs, snip_ss, snip_err, snip_cr2, snip_vec;
extern volatile ureg snip_active;
int  snip_run(void);
void snip_longjmp(ureg vec) __attribute__((noreturn));
extern ureg isr_table[];
extern void isr128(void);

/* execution modes for snippets */
enum { M_K = 0, M_U = 1, M_K32 = 2, M_U32 = 3 };

/* ---- small libc ---- */
void *memset(void *d, int c, size_t n);
void *memcpy(void *d, const void *s, size_t n);
int   memcmp(const void *a, const void *b, size_t n);
size_t strlen(const char *s);

/* ---- console / port I/O ---- */
static inline void outb(uint16_t p, uint8_t v) { __asm__ volatile("outb %0,%1" :: "a"(v), "Nd"(p)); }
static inline uint8_t inb(uint16_t p) { uint8_t v; __asm__ volatile("inb %1,%0" : "=a"(v) : "Nd"(p)); return v; }
static inline void outl(uint16_t p, uint32_t v) { __asm__ volatile("outl %0,%1" :: "a"(v), "Nd"(p)); }
void serial_init(void);
void kputs(const char *s);
int  kprintf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
int  ksnprintf(char *buf, size_t n, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
int  kvsnprintf(char *buf, size_t n, const char *fmt, va_list ap);
void guest_exit(int pass) __attribute__((noreturn));
void fatal(const char *msg) __attribute__((noreturn));

/* ---- control registers ---- */
static inline ureg rd_cr0(void) { ureg v; __asm__ volatile("mov %%cr0,%0" : "=r"(v)); return v; }
static inline ureg rd_cr2(void) { ureg v; __asm__ volatile("mov %%cr2,%0" : "=r"(v)); return v; }
static inline ureg rd_cr3(void) { ureg v; __asm__ volatile("mov %%cr3,%0" : "=r"(v)); return v; }
static inline ureg rd_cr4(void) { ureg v; __asm__ volatile("mov %%cr4,%0" : "=r"(v)); return v; }
static inline void wr_cr0(ureg v) { __asm__ volatile("mov %0,%%cr0\n\tjmp 1f\n1:" :: "r"(v) : "memory"); }
static inline void wr_cr3(ureg v) { __asm__ volatile("mov %0,%%cr3" :: "r"(v) : "memory"); }
static inline void wr_cr4(ureg v) { __asm__ volatile("mov %0,%%cr4" :: "r"(v) : "memory"); }
static inline void invlpg(uint64_t va) { __asm__ volatile("invlpg (%0)" :: "r"((uintptr_t)va) : "memory"); }
static inline uint64_t rdmsr(uint32_t m) { uint32_t lo, hi; __asm__ volatile("rdmsr" : "=a"(lo), "=d"(hi) : "c"(m)); return ((uint64_t)hi << 32) | lo; }
static inline void wrmsr(uint32_t m, uint64_t v) { __asm__ volatile("wrmsr" :: "c"(m), "a"((uint32_t)v), "d"((uint32_t)(v >> 32)) : "memory"); }
static inline void cpuid(uint32_t leaf, uint32_t sub, uint32_t *a, uint32_t *b, uint32_t *c, uint32_t *d)
{
    __asm__ volatile("cpuid" : "=a"(*a), "=b"(*b), "=c"(*c), "=d"(*d) : "a"(leaf), "c"(sub));
}

#define CR0_PE  0x1u
#define CR0_MP  0x2u
#define CR0_EM  0x4u
#define CR0_TS  0x8u
#define CR0_WP  0x10000u
#define CR0_PG  0x80000000u
#define CR4_PSE 0x10u
#define CR4_PAE 0x20u
#define CR4_PGE 0x80u
#define CR4_OSFXSR 0x200u
#define CR4_OSXMMEXCPT 0x400u
#define CR4_SMEP 0x100000u
#define CR4_SMAP 0x200000u
#define MSR_EFER 0xC0000080u
#define EFER_NXE (1u << 11)
#define FL_AC 0x40000u

/* ---- CPU features ---- */
struct features {
    int pse, pae, pge, sse2, cx8, cx16, apic, nx, smep, smap, pdpe1gb, lm;
    int maxphys;
};
extern struct features cpu;
void cpu_probe(void);

/* ---- paging ---- */
enum { PM_32 = 0, PM_PAE = 1, PM_LM = 2 };
extern int pm;                  /* current paging mode */
extern const char *pm_name;
extern int nxe_on;              /* EFER.NXE set by us */

#define PTE_P   0x001ull
#define PTE_W   0x002ull
#define PTE_U   0x004ull
#define PTE_PWT 0x008ull
#define PTE_PCD 0x010ull
#define PTE_A   0x020ull
#define PTE_D   0x040ull
#define PTE_PS  0x080ull
#define PTE_G   0x100ull
#define PTE_NX  (1ull << 63)
#define PTE_RW  (PTE_P | PTE_W)
#define PTE_URW (PTE_P | PTE_W | PTE_U)

#define PAGE 4096u

extern uintptr_t base_root, cur_root;
extern char __user_start[], __user_end[], _end[];

void mmu_init(int mode);                         /* build identity tables, enable paging */
uintptr_t new_root(void);                        /* clone of base (identity) */
void activate(uintptr_t root);                   /* write CR3 */
void mmu_test_reset(void);                       /* fresh test root active, pools reset */
volatile void *ent_ptr(uintptr_t root, uint64_t va, int level, int create);
uint64_t ent_get(volatile void *p);
void ent_set(volatile void *p, uint64_t v);
uint64_t get_ent(uint64_t va, int level);        /* on cur_root */
void set_ent(uint64_t va, int level, uint64_t v);
static inline uint64_t get_pte(uint64_t va) { return get_ent(va, 1); }
static inline void set_pte(uint64_t va, uint64_t v) { set_ent(va, 1, v); }
static inline uint64_t get_pde(uint64_t va) { return get_ent(va, 2); }
static inline void set_pde(uint64_t va, uint64_t v) { set_ent(va, 2, v); }
void map_in(uintptr_t root, uint64_t va, uint64_t pa, uint64_t flags);
void map(uint64_t va, uint64_t pa, uint64_t flags);      /* set PTE + invlpg */
void unmap(uint64_t va);                                 /* P=0 + invlpg */
uintptr_t frame_alloc(void);                     /* zeroed 4 KiB frame */
uint64_t large_size(void);                       /* 4 MiB (pg32) or 2 MiB */
int  paging_levels(void);

/* ---- tests ---- */
void run_suite(void);
void run_test(const char *name, void (*fn)(void));
void test_skip(const char *reason);
void check_eq(const char *what, uint64_t exp, uint64_t got);
void check_true(const char *what, int cond);
void test_failf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
int  test_failed(void);
void tap_summary(void) __attribute__((noreturn));
extern struct jbuf test_jb;
extern volatile int in_test;
extern char test_msg[];

#define CHECK_EQ(what, exp, got) check_eq((what), (uint64_t)(exp), (uint64_t)(got))
#define CHECK(what, cond) check_true((what), !!(cond))

/* physical layout */
#define IDENT_END     0x02000000u    /* identity-mapped RAM: 0 .. 32 MiB */
#define PHYS_SCRATCH  0x00F00000u    /* used by the CR0.PG test */
#define STRESS_PHYS   0x01000000u    /* 4 MiB of frames for stress / large pages */
#define SHADOW_PHYS   0x01400000u    /* 4 MiB reference copy for stress */
#define STRESS_PAGES  1024u

#endif
