/* SPDX-License-Identifier: MIT */
/*
 * Flavour (b): guest memory through libbtmmu. Every libbtmmu call of the
 * demo is in this file; it is the part to copy into another translator.
 *
 * Setup (bt_setup):
 *   btmmu_open()        one context, with our fault callback
 *   btmmu_ram_create()  guest RAM (a memfd the library creates); the guest
 *                       kernel and the softmmu flavour use the same bytes
 *                       through btmmu_ram_host()
 * Per guest process (address space):
 *   btmmu_space_create()  32-bit VA, 4 KiB pages, one view; its base is
 *                         kept in process.view_base (base_slots)
 *   context switch        env->mem_base = view base: no flush, because the
 *                         next process's entries are in its own space
 *   btmmu_unmap()         when the guest kernel removes PTEs (INVLPG)
 *   btmmu_space_destroy() at exit
 * Translated code accesses guest VA `va` as  mov rdx, [env + mem_base] ;
 * mov eax, [rdx + va]  (jit.c). The first access to a page faults; the
 * library calls bt_fault(), which walks the guest page table:
 *   - present, access allowed: install the page and its present
 *     neighbours in the same page-table leaf (fault-around) with
 *     btmmu_map_batch(), read-only where the guest PTE is; RETRY.
 *   - not present, or a write to a read-only PTE: a guest page fault.
 *     btmmu_fault_leave() and siglongjmp() to the dispatcher (cpu_raise()).
 *   - the install did not help (it cannot happen here, but a callback must
 *     not loop): the library turns RETRY into SLOW and resumes at
 *     resume_pc, the access's slow-path stub, which emulates the access
 *     through the guest page table like softmmu's miss path.
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "demo.h"

#define FAULT_AROUND_MAX 64	/* pages: bounds the request array on the signal stack */

/*
 * Install the shadow entries for va's page and for the present pages
 * around it: the fault_around-aligned group of pages containing va, which
 * lies in one page-table leaf. gen: the fault's generation (0 outside the
 * callback). Returns btmmu_map_batch()'s result (pages now accessible, or
 * -errno), 0 if nothing is present. Async-signal-safe.
 */
static int fill_around(struct machine *m, struct process *p, uint32_t va, uint64_t gen)
{
	struct btmmu_map_req reqs[FAULT_AROUND_MAX];
	uint32_t n = m->fault_around;
	uint32_t first = va & ~(n * GPAGE_SIZE - 1);
	uint32_t pde = *(const uint32_t *)(m->ram + p->cr3 + (va >> 22) * 4);
	const uint32_t *pt;
	unsigned i, k = 0;

	if (!(pde & PTE_P))
		return 0;
	pt = (const uint32_t *)(m->ram + (pde & PTE_FRAME));
	for (i = 0; i < n; i++) {
		uint32_t gva = first + i * GPAGE_SIZE;
		uint32_t pte = pt[(gva >> GPAGE_SHIFT) & 0x3ff];
		uint32_t prot = BTMMU_PROT_READ | ((pte & PTE_W) ? BTMMU_PROT_WRITE : 0);
		struct btmmu_map_req *last = k ? &reqs[k - 1] : NULL;

		/* The page being accessed: fill its host page table entry now. */
		uint32_t flags = gva == (va & ~(GPAGE_SIZE - 1)) ? BTMMU_MAP_POPULATE : 0;

		if (!(pte & PTE_P))
			continue;
		/* Extend the previous request over contiguous frames. */
		if (last && last->gva + last->len == gva &&
		    last->gpa + last->len == (pte & PTE_FRAME) && last->prot == prot &&
		    last->flags == flags) {
			last->len += GPAGE_SIZE;
			continue;
		}
		reqs[k].gva = gva;
		reqs[k].gpa = pte & PTE_FRAME;
		reqs[k].len = GPAGE_SIZE;
		reqs[k].prot = prot;
		reqs[k].flags = flags;
		k++;
	}
	if (!k)
		return 0;
	return btmmu_map_batch(p->space, 0, reqs, k, gen);
}

/*
 * The fault callback: runs in the SIGSEGV handler, on the faulting thread,
 * for an access to an address of one of our spaces' views that has no
 * (sufficient) host mapping. See the file comment.
 */
static int bt_fault(struct btmmu_fault *f, void *opaque)
{
	struct machine *m = opaque;
	struct process *p = f->space_opaque;
	const struct pcmap_entry *pe;
	uint32_t va = (uint32_t)f->gva;
	uint32_t pte;
	bool write;
	int ret;

	/* Only translated guest accesses are ours; anything else is a bug. */
	pe = jit_pcmap_lookup(m->jit, f->pc, NULL);
	if (!pe || pe->access_off == UINT32_MAX || p != m->current)
		return BTMMU_FAULT_NOT_MINE;
	/* The translator knows whether this instruction is a store. */
	write = pe->store;

	pte = guest_walk(m->ram, p->cr3, va);
	if (!(pte & PTE_P) || (write && !(pte & PTE_W))) {
		btmmu_fault_leave(f);
		cpu_raise(m, f->pc, va, write, (pte & PTE_P) ? GF_PROTECTION : GF_NOT_PRESENT);
	}

	/* Should the install not make the access possible: emulate it. */
	f->resume_pc = jit_host_addr(m->jit, pe->stub_off);
	if (f->flags & (BTMMU_FAULT_STALE | BTMMU_FAULT_GUARD))
		return BTMMU_FAULT_SLOW;
	ret = fill_around(m, p, va, f->gen);
	return ret > 0 ? BTMMU_FAULT_RETRY : BTMMU_FAULT_SLOW;
}

/*
 * Open the context and create guest RAM (ram_size bytes at guest-physical
 * 0). max_mappings: the host mapping budget, 0 for the library's default.
 * Returns 0 or -errno.
 */
int bt_setup(struct machine *m, uint64_t ram_size, uint64_t max_mappings)
{
	struct btmmu_open_args oa = {
		.size = sizeof(oa),
		.fault_fn = bt_fault,
		.fault_opaque = m,
		.max_mappings = max_mappings,
	};
	struct btmmu_ram_args ra = {
		.size = sizeof(ra),
		.gpa = 0,
		.len = ram_size,
		.fd = -1,
	};
	void *host;
	int ret;

	ret = btmmu_open(&oa, &m->bt);
	if (ret)
		return ret;
	ret = btmmu_ram_create(m->bt, &ra, &m->bt_ram);
	if (ret)
		goto err_close;
	ret = btmmu_ram_host(m->bt_ram, &host);
	if (ret)
		goto err_ram;
	m->ram = host;
	m->ram_size = (uint32_t)ram_size;
	return 0;

err_ram:
	btmmu_ram_destroy(m->bt_ram);
err_close:
	btmmu_close(m->bt);
	m->bt = NULL;
	return ret;
}

void bt_teardown(struct machine *m)
{
	if (!m->bt)
		return;
	btmmu_ram_destroy(m->bt_ram);
	btmmu_close(m->bt);
	m->bt = NULL;
	m->ram = NULL;
}

int bt_stats(struct machine *m, struct btmmu_stats *st)
{
	memset(st, 0, sizeof(*st));
	st->size = sizeof(*st);
	return btmmu_stats_get(m->bt, st);
}

/*
 * A new address space. ring = 1: a process's space is never flushed as a
 * whole (it dies with the process), so it needs no spare regions.
 */
static int bt_proc_init(struct machine *m, struct process *p)
{
	struct btmmu_space_args a = {
		.size = sizeof(a),
		.va_bits = 32,
		.page_shift = GPAGE_SHIFT,
		.nviews = 1,
		.ring = 1,
		.base_slots = &p->view_base,
		.opaque = p,
	};
	struct btmmu_view_info vi = { .size = sizeof(vi) };
	int ret;

	ret = btmmu_space_create(m->bt, &a, &p->space);
	if (ret)
		return ret;
	ret = btmmu_view_info(p->space, 0, &vi);
	if (!ret && (vi.flags & BTMMU_VIEW_CHECK))
		ret = -ENOTSUP;	/* our code has no window check: the 4 GiB must fit */
	if (ret) {
		btmmu_space_destroy(p->space);
		p->space = NULL;
	}
	return ret;
}

static void bt_proc_fini(struct machine *m, struct process *p)
{
	if (p->space)
		btmmu_space_destroy(p->space);
	p->space = NULL;
}

/* A context switch is a base switch. */
static void bt_switch_to(struct machine *m, struct process *p)
{
	m->env->mem_base = p->view_base;
}

static void bt_invalidate(struct machine *m, struct process *p, uint32_t va, uint32_t len)
{
	btmmu_unmap(p->space, 1u, va, len);
}

/*
 * The guest kernel just made va's page present: install it now rather than
 * take one more host fault when the guest retries the access (optional).
 */
static void bt_fault_resolved(struct machine *m, struct process *p, uint32_t va, bool write)
{
	if (m->prefault)
		fill_around(m, p, va, 0);
}

const struct mmu_ops btmmu_ops = {
	.name = "btmmu",
	.proc_init = bt_proc_init,
	.proc_fini = bt_proc_fini,
	.switch_to = bt_switch_to,
	.invalidate = bt_invalidate,
	.fault_resolved = bt_fault_resolved,
};
