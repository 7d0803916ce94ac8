/* btmmu test guest: page-table management for 32-bit (2-level), PAE
 * (3-level) and IA-32e (4-level) paging. */
#include "guest.h"

int pm;
const char *pm_name = "?";
int nxe_on;
uintptr_t base_root, cur_root;

#define PT_POOL_PAGES 1024
#define FRAME_POOL_PAGES 512
static uint8_t pt_pool[PT_POOL_PAGES * PAGE] __attribute__((aligned(4096)));
static uint8_t frame_pool[FRAME_POOL_PAGES * PAGE] __attribute__((aligned(4096)));
static unsigned pt_used, pt_base_used, frames_used;

int paging_levels(void)
{
    return pm == PM_32 ? 2 : pm == PM_PAE ? 3 : 4;
}

static unsigned ent_index(uint64_t va, int level)
{
    if (pm == PM_32)
        return (unsigned)(va >> (12 + 10 * (level - 1))) & 0x3ff;
    if (pm == PM_PAE && level == 3)
        return (unsigned)(va >> 30) & 3;
    return (unsigned)(va >> (12 + 9 * (level - 1))) & 0x1ff;
}

static unsigned ent_size(void)
{
    return pm == PM_32 ? 4 : 8;
}

static uint64_t addr_mask(void)
{
    return pm == PM_32 ? 0xfffff000ull : 0x000ffffffffff000ull;
}

uint64_t large_size(void)
{
    return pm == PM_32 ? 0x400000ull : 0x200000ull;
}

uint64_t ent_get(volatile void *p)
{
    if (pm == PM_32)
        return *(volatile uint32_t *)p;
    volatile uint32_t *q = p;
    uint32_t lo = q[0], hi = q[1];
    return ((uint64_t)hi << 32) | lo;
}

void ent_set(volatile void *p, uint64_t v)
{
    if (pm == PM_32) {
        *(volatile uint32_t *)p = (uint32_t)v;
        return;
    }
#ifdef __x86_64__
    *(volatile uint64_t *)p = v;
#else
    volatile uint32_t *q = p;
    q[0] = 0;                   /* never expose a half-updated present entry */
    q[1] = (uint32_t)(v >> 32);
    q[0] = (uint32_t)v;
#endif
}

static uintptr_t pt_alloc(void)
{
    if (pt_used >= PT_POOL_PAGES)
        fatal("page-table pool exhausted");
    uintptr_t p = (uintptr_t)&pt_pool[pt_used++ * PAGE];
    memset((void *)p, 0, PAGE);
    return p;
}

static int is_base_table(uintptr_t t)
{
    return t >= (uintptr_t)pt_pool && t < (uintptr_t)pt_pool + pt_base_used * PAGE;
}

uintptr_t frame_alloc(void)
{
    if (frames_used >= FRAME_POOL_PAGES)
        fatal("frame pool exhausted");
    uintptr_t p = (uintptr_t)&frame_pool[frames_used++ * PAGE];
    memset((void *)p, 0, PAGE);
    return p;
}

/* Pointer to the entry at `level` (1 = PTE, 2 = PDE, 3 = PDPTE, 4 = PML4E)
 * for va, creating missing intermediate tables when `create`.  Page tables
 * shared with the base (identity) root are copied before modification.
 * Returns NULL when the walk hits a not-present entry (and !create) or a
 * large page above `level`. */
volatile void *ent_ptr(uintptr_t root, uint64_t va, int level, int create)
{
    uintptr_t table = root;
    for (int l = paging_levels(); l > level; l--) {
        volatile void *e = (volatile uint8_t *)table + ent_index(va, l) * ent_size();
        uint64_t v = ent_get(e);
        if (!(v & PTE_P)) {
            if (!create)
                return NULL;
            uintptr_t t = pt_alloc();
            ent_set(e, t | ((pm == PM_PAE && l == 3) ? PTE_P : PTE_URW));
            /* PAE PDPTEs are loaded into the CPU only on a CR3 write */
            if (pm == PM_PAE && l == 3 && root == cur_root && (rd_cr0() & CR0_PG))
                wr_cr3(cur_root);
            table = t;
            continue;
        }
        if ((v & PTE_PS) && !(pm == PM_PAE && l == 3) && l <= 3)
            return NULL;
        uintptr_t next = (uintptr_t)(v & addr_mask());
        if (create && root != base_root && l - 1 == 1 && is_base_table(next)) {
            uintptr_t t = pt_alloc();
            memcpy((void *)t, (void *)next, PAGE);
            ent_set(e, (v & ~addr_mask()) | t);
            next = t;
        }
        table = next;
    }
    return (volatile uint8_t *)table + ent_index(va, level) * ent_size();
}

uint64_t get_ent(uint64_t va, int level)
{
    volatile void *p = ent_ptr(cur_root, va, level, 0);
    return p ? ent_get(p) : 0;
}

void set_ent(uint64_t va, int level, uint64_t v)
{
    volatile void *p = ent_ptr(cur_root, va, level, 1);
    if (!p)
        fatal("set_ent: walk blocked by a large page");
    ent_set(p, v);
}

void map_in(uintptr_t root, uint64_t va, uint64_t pa, uint64_t flags)
{
    volatile void *p = ent_ptr(root, va, 1, 1);
    if (!p)
        fatal("map_in: walk blocked by a large page");
    ent_set(p, (pa & addr_mask()) | flags);
}

void map(uint64_t va, uint64_t pa, uint64_t flags)
{
    map_in(cur_root, va, pa, flags);
    invlpg(va);
}

void unmap(uint64_t va)
{
    set_ent(va, 1, 0);
    invlpg(va);
}

/* deep copy of the non-leaf levels; page tables (level 1) stay shared */
static uintptr_t clone_table(uintptr_t t, int level)
{
    uintptr_t n = pt_alloc();
    memcpy((void *)n, (void *)t, PAGE);
    if (level > 2) {
        unsigned cnt = (pm == PM_PAE && level == 3) ? 4 : 512;
        for (unsigned i = 0; i < cnt; i++) {
            volatile void *e = (volatile uint8_t *)n + i * 8;
            uint64_t v = ent_get(e);
            if (!(v & PTE_P) || ((v & PTE_PS) && !(pm == PM_PAE && level == 3)))
                continue;
            uintptr_t c = clone_table((uintptr_t)(v & addr_mask()), level - 1);
            ent_set(e, (v & ~addr_mask()) | c);
        }
    }
    return n;
}

uintptr_t new_root(void)
{
    uintptr_t r = clone_table(base_root, paging_levels());
    if (pm == PM_PAE) {
        /* give every PDPTE a page directory so that mappings can be added
         * to an active root without reloading the PDPTE registers */
        for (unsigned i = 0; i < 4; i++) {
            volatile void *e = (volatile uint8_t *)r + i * 8;
            if (!(ent_get(e) & PTE_P))
                ent_set(e, pt_alloc() | PTE_P);
        }
    }
    return r;
}

void activate(uintptr_t root)
{
    cur_root = root;
    wr_cr3(root);
}

void mmu_test_reset(void)
{
    activate(base_root);
    pt_used = pt_base_used;
    frames_used = 0;
    activate(new_root());
}

void mmu_init(int mode)
{
    pm = mode;
    pm_name = mode == PM_32 ? "pg32" : mode == PM_PAE ? "pae" : "lm";
    pt_used = 0;
    pt_base_used = 0;
    frames_used = 0;
    cur_root = 0;
    base_root = pt_alloc();
    uintptr_t us = (uintptr_t)__user_start, ue = (uintptr_t)__user_end;
    for (uintptr_t pa = PAGE; pa < IDENT_END; pa += PAGE)
        map_in(base_root, pa, pa, PTE_RW | ((pa >= us && pa < ue) ? PTE_U : 0));
    if (cpu.apic)
        map_in(base_root, 0xFEE00000u, 0xFEE00000u, PTE_RW | PTE_PCD | PTE_PWT);
    for (uint32_t pa = 0xFFFF0000u; pa; pa += PAGE)    /* top 64 KiB: BIOS ROM */
        map_in(base_root, pa, pa, PTE_P);
    pt_base_used = pt_used;
    cur_root = base_root;

    ureg cr4 = rd_cr4() & ~(ureg)(CR4_PGE | CR4_SMEP | CR4_SMAP);
    nxe_on = 0;
    if (mode == PM_32) {
        if (cpu.pse)
            cr4 |= CR4_PSE;
        wr_cr4(cr4);
        wr_cr3(base_root);
        wr_cr0(rd_cr0() | CR0_PG | CR0_WP);
    } else {
        cr4 |= CR4_PAE | (cpu.pse ? CR4_PSE : 0);
        if (cpu.nx) {
            wrmsr(MSR_EFER, rdmsr(MSR_EFER) | EFER_NXE);
            nxe_on = 1;
        }
        wr_cr4(cr4);
        wr_cr3(base_root);
        wr_cr0(rd_cr0() | CR0_PG | CR0_WP);
    }
}
