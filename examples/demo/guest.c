/* SPDX-License-Identifier: MIT */
/*
 * The guest kernel, written in C on the host side (a paravirtual OS).
 *
 * It owns guest-physical memory (frames of guest RAM), builds for each
 * process a two-level page table that lives in guest RAM (the same format
 * both memory flavours walk), pages data in on demand, schedules processes
 * round-robin (on yield, and when a timeslice of guest instructions runs
 * out, so every run is deterministic) and serves system calls.
 *
 * Each process maps the program text read-only at GUEST_CODE_VA (frames
 * shared by all processes) and a demand-zero data area at GUEST_DATA_VA.
 * A fault elsewhere, a write to the text, an illegal instruction or a bad
 * jump kills the process; the reason is part of its result.
 *
 * At exit, the kernel records the process's guest-visible outcome: exit
 * code, registers, output, instruction and page-fault counts, and a hash
 * of its memory read through its page table from guest RAM.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "demo.h"

/* One step of a 64-bit multiplicative hash. */
uint64_t hash64(uint64_t h, uint64_t v)
{
	h ^= v;
	h *= UINT64_C(0x100000001b3);
	h ^= h >> 29;
	return h;
}

/* ------------------------------------------------------------------ */
/* Frames and page tables                                              */
/* ------------------------------------------------------------------ */

/* A zeroed frame (guest-physical address), or 0 when RAM is full. */
static uint32_t frame_alloc(struct machine *m)
{
	uint32_t gpa;

	if (m->nfree) {
		gpa = m->free_frames[--m->nfree];
	} else if (m->next_frame <= m->ram_size - GPAGE_SIZE) {
		gpa = m->next_frame;
		m->next_frame += GPAGE_SIZE;
	} else {
		return 0;
	}
	memset(m->ram + gpa, 0, GPAGE_SIZE);
	return gpa;
}

static void frame_free(struct machine *m, uint32_t gpa)
{
	m->free_frames[m->nfree++] = gpa;
}

/*
 * The PTE slot of va in p's page table (a host pointer into guest RAM).
 * With alloc, a missing page table is allocated; NULL if there is none.
 */
static uint32_t *pte_slot(struct machine *m, struct process *p, uint32_t va, bool alloc)
{
	uint32_t *pde = (uint32_t *)(m->ram + p->cr3) + (va >> 22);

	if (!(*pde & PTE_P)) {
		uint32_t pt;

		if (!alloc || !(pt = frame_alloc(m)))
			return NULL;
		*pde = pt | PTE_P | PTE_W | PTE_U;
	}
	return (uint32_t *)(m->ram + (*pde & PTE_FRAME)) + ((va >> GPAGE_SHIFT) & 0x3ff);
}

static const struct vma *find_vma(const struct process *p, uint32_t va)
{
	unsigned i;

	for (i = 0; i < p->nvma; i++) {
		if (va >= p->vma[i].start && va < p->vma[i].end)
			return &p->vma[i];
	}
	return NULL;
}

/*
 * Hash of everything p has mapped below GUEST_USER_TOP, in VA order:
 * each page's address, rights and contents.
 */
static void hash_memory(struct machine *m, struct process *p)
{
	const uint32_t *pd = (const uint32_t *)(m->ram + p->cr3);
	uint64_t h = 0;
	uint32_t i, k, w;

	p->mem_pages = 0;
	for (i = 0; i < (GUEST_USER_TOP >> 22); i++) {
		const uint32_t *pt;

		if (!(pd[i] & PTE_P))
			continue;
		pt = (const uint32_t *)(m->ram + (pd[i] & PTE_FRAME));
		for (k = 0; k < 1024; k++) {
			const uint64_t *page;

			if (!(pt[k] & PTE_P))
				continue;
			page = (const uint64_t *)(m->ram + (pt[k] & PTE_FRAME));
			h = hash64(h, (i << 22 | k << 12) | (pt[k] & (PTE_P | PTE_W)));
			for (w = 0; w < GPAGE_SIZE / 8; w++)
				h = hash64(h, page[w]);
			p->mem_pages++;
		}
	}
	p->mem_hash = h;
}

/* Free p's page table and its own frames (not the shared text). */
static void free_address_space(struct machine *m, struct process *p)
{
	uint32_t *pd = (uint32_t *)(m->ram + p->cr3);
	uint32_t i, k;

	for (i = 0; i < 1024; i++) {
		uint32_t *pt;

		if (!(pd[i] & PTE_P))
			continue;
		pt = (uint32_t *)(m->ram + (pd[i] & PTE_FRAME));
		for (k = 0; k < 1024; k++) {
			if ((pt[k] & PTE_P) && !(pt[k] & PTE_SHARED))
				frame_free(m, pt[k] & PTE_FRAME);
		}
		frame_free(m, pd[i] & PTE_FRAME);
	}
	frame_free(m, p->cr3);
	p->cr3 = 0;
}

/* ------------------------------------------------------------------ */
/* Scheduling                                                          */
/* ------------------------------------------------------------------ */

static void rq_push(struct machine *m, unsigned pid)
{
	m->runq[(m->rq_head + m->rq_len++) % m->nprocs] = pid;
}

static struct process *rq_pop(struct machine *m)
{
	unsigned pid;

	if (!m->rq_len)
		return NULL;
	pid = m->runq[m->rq_head];
	m->rq_head = (m->rq_head + 1) % m->nprocs;
	m->rq_len--;
	return &m->procs[pid];
}

/*
 * Charge the guest instructions run since the last call to the current
 * process (the timeslice counts down in env->budget).
 */
void kernel_account(struct machine *m)
{
	if (m->current)
		m->current->insns += (uint64_t)((int64_t)m->slice_mark - m->env->budget);
	m->slice_mark = m->env->budget;
}

/* Give the vCPU to next (may be the current process, or NULL: halt). */
static void switch_to(struct machine *m, struct process *next)
{
	struct cpu_env *env = m->env;
	struct process *prev = m->current;

	if (next != prev) {
		if (prev && prev->alive) {
			memcpy(prev->regs, env->regs, sizeof(prev->regs));
			prev->pc = env->pc;
		}
		m->current = next;
		if (next) {
			memcpy(env->regs, next->regs, sizeof(env->regs));
			env->pc = next->pc;
			m->mmu->switch_to(m, next);	/* the CR3 write */
		}
	}
	env->budget = m->timeslice;
	m->slice_mark = env->budget;
}

/* Run the next runnable process; requeue the current one if still alive. */
static void schedule(struct machine *m)
{
	struct process *cur = m->current;

	if (cur && cur->alive)
		rq_push(m, cur->pid);
	switch_to(m, rq_pop(m));
}

/* ------------------------------------------------------------------ */
/* Processes                                                           */
/* ------------------------------------------------------------------ */

/* Forget everything; nprocs process slots for the next run. */
void kernel_reset(struct machine *m)
{
	m->next_frame = GPAGE_SIZE;	/* frame 0 stays unused */
	m->nfree = 0;
	m->current = NULL;
	m->rq_head = 0;
	m->rq_len = 0;
	m->ncode_frames = 0;
	m->excluded_ns = 0;
	memset(m->procs, 0, m->nprocs * sizeof(*m->procs));
}

/* Copy the program image into shared frames. Returns 0 or -errno. */
int kernel_load_program(struct machine *m, const uint8_t *image, size_t len)
{
	size_t off;

	if (len > sizeof(m->code_frames) / sizeof(m->code_frames[0]) * GPAGE_SIZE)
		return -E2BIG;
	for (off = 0; off < len; off += GPAGE_SIZE) {
		uint32_t f = frame_alloc(m);

		if (!f)
			return -ENOMEM;
		memcpy(m->ram + f, image + off, len - off < GPAGE_SIZE ? len - off : GPAGE_SIZE);
		m->code_frames[m->ncode_frames++] = f;
	}
	return 0;
}

/*
 * Create process pid running the loaded program, with data_size bytes of
 * demand-zero data. Registers at entry: r1 = pid, r2 = number of
 * processes, r3 = GUEST_DATA_VA, r4.. = args. Returns 0 or -errno.
 */
int kernel_spawn(struct machine *m, unsigned pid, uint32_t data_size, const uint32_t *args,
		 unsigned nargs)
{
	struct process *p = &m->procs[pid];
	unsigned i;
	int ret;

	memset(p, 0, sizeof(*p));
	p->pid = pid;
	p->cr3 = frame_alloc(m);
	if (!p->cr3)
		return -ENOMEM;
	p->vma[0] = (struct vma){ GUEST_CODE_VA, GUEST_CODE_VA + m->ncode_frames * GPAGE_SIZE,
				  false, false };
	p->vma[1] = (struct vma){ GUEST_DATA_VA, GUEST_DATA_VA + data_size, true, true };
	p->nvma = 2;
	for (i = 0; i < m->ncode_frames; i++) {
		uint32_t *pte = pte_slot(m, p, GUEST_CODE_VA + i * GPAGE_SIZE, true);

		if (!pte)
			return -ENOMEM;
		*pte = m->code_frames[i] | PTE_P | PTE_U | PTE_SHARED;
	}
	p->regs[1] = pid;
	p->regs[2] = m->nprocs;
	p->regs[3] = GUEST_DATA_VA;
	for (i = 0; i < nargs && 4 + i < G32_NREGS; i++)
		p->regs[4 + i] = args[i];
	p->pc = GUEST_CODE_VA;
	ret = m->mmu->proc_init(m, p);
	if (ret)
		return ret;
	p->alive = true;
	rq_push(m, pid);
	return 0;
}

/* Run the first process. */
void kernel_start(struct machine *m)
{
	switch_to(m, rq_pop(m));
}

/* The current process ends: record its outcome, free its memory, schedule. */
static void proc_exit(struct machine *m, int32_t code)
{
	struct process *p = m->current;
	uint64_t t0 = now_ns(), h = 0;
	unsigned i;

	memcpy(p->regs, m->env->regs, sizeof(p->regs));
	p->pc = m->env->pc;
	p->exit_code = code;
	p->alive = false;
	for (i = 0; i < G32_NREGS; i++)
		h = hash64(h, p->regs[i]);
	p->reg_hash = hash64(h, p->pc);
	hash_memory(m, p);
	m->excluded_ns += now_ns() - t0;

	m->mmu->proc_fini(m, p);
	free_address_space(m, p);
	schedule(m);
}

/* Kill the current process (why: a static string; va: the culprit address). */
void kernel_kill(struct machine *m, const char *why, uint32_t va)
{
	struct process *p = m->current;

	kernel_account(m);
	p->killed = why;
	p->kill_va = va;
	p->kill_pc = m->env->pc;
	if (m->verbose)
		printf("  [%s] pid %u killed: %s at va %#x, pc %#x\n", m->mmu->name, p->pid, why,
		       va, m->env->pc);
	proc_exit(m, -1);
}

/* The timeslice ran out. */
void kernel_preempt(struct machine *m)
{
	kernel_account(m);
	schedule(m);
}

/*
 * A guest page fault at m->fault, delivered precisely: env->pc is the
 * faulting instruction, which runs again once we return (if the process
 * survives).
 */
void kernel_page_fault(struct machine *m)
{
	const struct guest_fault *f = &m->fault;
	struct process *p = m->current;
	const struct vma *vma;
	uint32_t *pte, frame;

	kernel_account(m);
	vma = find_vma(p, f->va);
	if (!vma) {
		kernel_kill(m, "segmentation fault", f->va);
		return;
	}
	if (f->kind == GF_PROTECTION || (f->write && !vma->writable)) {
		kernel_kill(m, "write to a read-only page", f->va);
		return;
	}
	pte = pte_slot(m, p, f->va, true);
	if (pte && (*pte & PTE_P))
		return;		/* already there: nothing to do but retry */
	if (!vma->demand_zero || !pte || !(frame = frame_alloc(m))) {
		kernel_kill(m, "out of memory", f->va);
		return;
	}
	*pte = frame | PTE_P | PTE_U | (vma->writable ? PTE_W : 0);
	p->page_faults++;
	m->mmu->fault_resolved(m, p, f->va, f->write);
}

/* SYS_UNMAP: drop the pages of [va, va + len) of the data area. */
static int32_t sys_unmap(struct machine *m, struct process *p, uint32_t va, uint32_t len)
{
	const struct vma *vma = find_vma(p, va);
	uint32_t off, n = 0;

	if ((va | len) & ~GPAGE_MASK || !len || !vma || !vma->demand_zero ||
	    len > vma->end - va)
		return -EINVAL;
	for (off = 0; off < len; off += GPAGE_SIZE) {
		uint32_t *pte = pte_slot(m, p, va + off, false);

		if (pte && (*pte & PTE_P)) {
			frame_free(m, *pte & PTE_FRAME);
			*pte = 0;
			n++;
		}
	}
	/* The INVLPG: no translation of these pages may survive. */
	m->mmu->invalidate(m, p, va, len);
	return (int32_t)n;
}

/* A SYSCALL: r1 is the number, r2..r4 the arguments, r1 the result. */
void kernel_syscall(struct machine *m)
{
	struct process *p = m->current;
	uint32_t *r = m->env->regs;

	kernel_account(m);
	switch (r[1]) {
	case G32_SYS_EXIT:
		proc_exit(m, (int32_t)r[2]);
		return;
	case G32_SYS_YIELD:
		r[1] = 0;
		schedule(m);
		return;
	case G32_SYS_PRINT:
		p->out_hash = hash64(p->out_hash, r[2]);
		p->nout++;
		if (m->verbose)
			printf("  [%s] pid %u: %#x (%d)\n", m->mmu->name, p->pid, r[2],
			       (int32_t)r[2]);
		r[1] = 0;
		return;
	case G32_SYS_UNMAP:
		r[1] = (uint32_t)sys_unmap(m, p, r[2], r[3]);
		return;
	case G32_SYS_GETPID:
		r[1] = p->pid;
		return;
	default:
		r[1] = (uint32_t)-ENOSYS;
		return;
	}
}

/* After a run: processes that never exited (none, normally) are released. */
void kernel_teardown(struct machine *m)
{
	unsigned i;

	for (i = 0; i < m->nprocs; i++) {
		struct process *p = &m->procs[i];

		if (p->alive || p->space) {
			m->mmu->proc_fini(m, p);
			p->alive = false;
		}
	}
	m->current = NULL;
}
