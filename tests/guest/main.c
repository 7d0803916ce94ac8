/* btmmu test guest: entry point (kmain) for both builds. */
#include "guest.h"

void arch_init(void);

static ureg base_cr0, base_cr4;
static uint64_t base_efer;

static void save_baseline(void)
{
    base_cr0 = rd_cr0();
    base_cr4 = rd_cr4();
    base_efer = (cpu.nx || cpu.lm) ? rdmsr(MSR_EFER) : 0;
}

/* called after every test: restore control registers and the base root.
 * Writing CR4 with PGE clear flushes global TLB entries too. */
void test_cleanup(void)
{
    wr_cr4(base_cr4 & ~(ureg)CR4_PGE);
    wr_cr0(base_cr0);
    if (cpu.nx || cpu.lm)
        wrmsr(MSR_EFER, base_efer);
    activate(base_root);
    wr_cr4(base_cr4);
}

static void enable_sse(void)
{
    if (!cpu.sse2)
        return;
    wr_cr0((rd_cr0() & ~(ureg)(CR0_EM | CR0_TS)) | CR0_MP);
    wr_cr4(rd_cr4() | CR4_OSFXSR | CR4_OSXMMEXCPT);
}

void kmain(void)
{
    serial_init();
#ifdef __x86_64__
    kputs("# btmmu-guest64: long mode, 4-level paging\n");
#else
    kputs("# btmmu-guest32: protected mode, 32-bit and PAE paging\n");
#endif
    cpu_probe();
    kprintf("# cpu: pse=%d pae=%d pge=%d sse2=%d cx8=%d cx16=%d apic=%d nx=%d smep=%d smap=%d pdpe1gb=%d lm=%d maxphys=%d\n",
            cpu.pse, cpu.pae, cpu.pge, cpu.sse2, cpu.cx8, cpu.cx16, cpu.apic, cpu.nx,
            cpu.smep, cpu.smap, cpu.pdpe1gb, cpu.lm, cpu.maxphys);
    if ((uintptr_t)_end > PHYS_SCRATCH)
        fatal("kernel image overlaps PHYS_SCRATCH");
    arch_init();
    enable_sse();
#ifdef __x86_64__
    mmu_init(PM_LM);
    save_baseline();
    run_suite();
#else
    mmu_init(PM_32);
    save_baseline();
    run_suite();
    if (cpu.pae) {
        wr_cr0(rd_cr0() & ~(ureg)CR0_PG);
        mmu_init(PM_PAE);
        save_baseline();
        run_suite();
    } else {
        kputs("# PAE not supported by this CPU model: PAE phase not run\n");
    }
#endif
    tap_summary();
}
