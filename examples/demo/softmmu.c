/* SPDX-License-Identifier: MIT */
/*
 * Flavour (a): a software MMU as QEMU's TCG does it. One direct-mapped TLB
 * per vCPU (in the env, 1 << tlb_bits entries of {tag, addend}); translated
 * code looks it up inline (jit.c) and calls helper_load/helper_store on a
 * miss, which walk the guest page table and fill the entry (cpu.c).
 *
 * As in QEMU for an x86 guest without PCID, a context switch (a CR3 write)
 * flushes the whole TLB, and removed PTEs are flushed page by page.
 */
#include <string.h>

#include "demo.h"

/* Invalidate every entry. */
void softmmu_flush(struct machine *m)
{
	memset(m->env->tlb, 0xff, sizeof(struct tlb_entry) << m->tlb_bits);
}

/* Fill va's entry from its (present) PTE. */
void softmmu_fill(struct machine *m, uint32_t va, uint32_t pte)
{
	struct tlb_entry *e = &m->env->tlb[(va >> GPAGE_SHIFT) & ((1u << m->tlb_bits) - 1)];
	uint32_t page = va & GPAGE_MASK;

	e->tag_read = page;
	e->tag_write = (pte & PTE_W) ? page : TLB_INVALID;
	e->addend = (uintptr_t)m->ram + (pte & PTE_FRAME) - page;
}

static int soft_proc_init(struct machine *m, struct process *p)
{
	return 0;
}

static void soft_proc_fini(struct machine *m, struct process *p)
{
	if (p == m->current)
		softmmu_flush(m);
}

/* A CR3 write: nothing in the TLB says which address space it came from. */
static void soft_switch_to(struct machine *m, struct process *p)
{
	softmmu_flush(m);
}

/* INVLPG for each page of [va, va + len) (only the running process has entries). */
static void soft_invalidate(struct machine *m, struct process *p, uint32_t va, uint32_t len)
{
	uint32_t mask = (1u << m->tlb_bits) - 1, off;

	if (p != m->current)
		return;
	for (off = 0; off < len; off += GPAGE_SIZE) {
		uint32_t page = (va & GPAGE_MASK) + off;
		struct tlb_entry *e = &m->env->tlb[(page >> GPAGE_SHIFT) & mask];

		if (e->tag_read == page || e->tag_write == page)
			e->tag_read = e->tag_write = TLB_INVALID;
	}
}

/* The retried access refills the TLB by itself (a cheap miss). */
static void soft_fault_resolved(struct machine *m, struct process *p, uint32_t va, bool write)
{
}

const struct mmu_ops softmmu_ops = {
	.name = "softmmu",
	.proc_init = soft_proc_init,
	.proc_fini = soft_proc_fini,
	.switch_to = soft_switch_to,
	.invalidate = soft_invalidate,
	.fault_resolved = soft_fault_resolved,
};
