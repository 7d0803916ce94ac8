/* SPDX-License-Identifier: MIT */
/*
 * The vCPU: the dispatcher loop that runs translated blocks, and the way
 * guest exceptions leave translated code.
 *
 * A guest page fault is detected deep inside translated code: in a softmmu
 * helper (TLB miss, the guest page table says no) or in the libbtmmu fault
 * callback (a host SIGSEGV on base + VA, the guest page table says no).
 * Either way cpu_raise() makes the guest state precise (guest registers
 * are always in the env; the guest PC and the timeslice come from the
 * block's pcmap) and siglongjmp()s to cpu_run(), which lets the guest
 * kernel handle the fault and then resumes at the faulting instruction.
 * Nothing of the faulting instruction was committed: the host access
 * faulted (btmmu) or never happened (softmmu).
 */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "demo.h"

_Static_assert(offsetof(struct cpu_env, regs) == ENV_REGS, "env layout");
_Static_assert(offsetof(struct cpu_env, pc) == ENV_PC, "env layout");
_Static_assert(offsetof(struct cpu_env, budget) == ENV_BUDGET, "env layout");
_Static_assert(offsetof(struct cpu_env, mem_base) == ENV_MEM_BASE, "env layout");
_Static_assert(offsetof(struct cpu_env, tlb) == ENV_TLB, "env layout");
_Static_assert(sizeof(struct tlb_entry) == 1u << TLB_ENTRY_SHIFT, "TLB entry size");

/*
 * The clock runs are timed with: by default the CPU time of this thread
 * (user + system: libbtmmu's fault handling runs here too), which ignores
 * time lost to other processes on a shared machine; or wall-clock time.
 */
bool demo_wall_clock;

uint64_t now_ns(void)
{
	struct timespec ts;

	clock_gettime(demo_wall_clock ? CLOCK_MONOTONIC : CLOCK_THREAD_CPUTIME_ID, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

/*
 * Make the env precise for the guest instruction whose access is at host_pc
 * (a direct access or a helper's return address): set the guest PC and give
 * back the timeslice of the block instructions that did not run.
 * Async-signal-safe.
 */
void cpu_restore_state(struct machine *m, uintptr_t host_pc)
{
	const struct pcmap_entry *pe = jit_pcmap_lookup(m->jit, host_pc, NULL);

	if (!pe) {
		static const char msg[] = "btmmu-demo: no guest state for a host PC\n";

		(void)!write(2, msg, sizeof(msg) - 1);
		abort();
	}
	m->env->pc = pe->gpc;
	m->env->budget += pe->remaining;
}

/*
 * Raise a guest page fault for the access at host_pc and leave translated
 * code. Called from a softmmu helper or from the libbtmmu fault callback
 * (after btmmu_fault_leave()). Does not return. Async-signal-safe.
 */
void cpu_raise(struct machine *m, uintptr_t host_pc, uint32_t va, bool write,
	       enum guest_fault_kind kind)
{
	cpu_restore_state(m, host_pc);
	m->fault.va = va;
	m->fault.write = write;
	m->fault.kind = kind;
	siglongjmp(m->exit_jb, 1);
}

/*
 * Translate va for an access made by translated code at host_pc, through
 * the guest page table (softmmu: filling the TLB on the way). Raises the
 * guest page fault if the access is not allowed.
 */
void *cpu_translate_slow(struct machine *m, uint32_t va, bool write, uintptr_t host_pc)
{
	uint32_t pte = guest_walk(m->ram, m->current->cr3, va);

	if (!(pte & PTE_P))
		cpu_raise(m, host_pc, va, write, GF_NOT_PRESENT);
	if (write && !(pte & PTE_W))
		cpu_raise(m, host_pc, va, write, GF_PROTECTION);
	if (m->flavour == FLAVOUR_SOFTMMU)
		softmmu_fill(m, va, pte);
	return m->ram + (pte & PTE_FRAME) + (va & ~GPAGE_MASK);
}

/*
 * The slow path of a guest load, called by translated code (softmmu: TLB
 * miss; btmmu: the fault callback chose BTMMU_FAULT_SLOW). A page-crossing
 * access checks both pages, in address order, before reading any byte.
 */
__attribute__((noinline)) uint32_t helper_load(struct cpu_env *env, uint32_t va, uint32_t size)
{
	uintptr_t ra = (uintptr_t)__builtin_return_address(0);
	struct machine *m = env->m;
	uint32_t in_page = GPAGE_SIZE - (va & ~GPAGE_MASK);
	const uint8_t *h0, *h1;
	uint32_t v = 0, i;

	h0 = cpu_translate_slow(m, va, false, ra);
	if (size <= in_page) {
		memcpy(&v, h0, size);
		return v;
	}
	h1 = cpu_translate_slow(m, (va | ~GPAGE_MASK) + 1, false, ra);
	for (i = 0; i < size; i++)
		v |= (uint32_t)(i < in_page ? h0[i] : h1[i - in_page]) << (8 * i);
	return v;
}

/* The slow path of a guest store; see helper_load(). */
__attribute__((noinline)) void helper_store(struct cpu_env *env, uint32_t va, uint32_t val,
					    uint32_t size)
{
	uintptr_t ra = (uintptr_t)__builtin_return_address(0);
	struct machine *m = env->m;
	uint32_t in_page = GPAGE_SIZE - (va & ~GPAGE_MASK);
	uint8_t *h0, *h1;
	uint32_t i;

	h0 = cpu_translate_slow(m, va, true, ra);
	if (size <= in_page) {
		memcpy(h0, &val, size);
		return;
	}
	h1 = cpu_translate_slow(m, (va | ~GPAGE_MASK) + 1, true, ra);
	for (i = 0; i < size; i++) {
		uint8_t byte = (uint8_t)(val >> (8 * i));

		if (i < in_page)
			h0[i] = byte;
		else
			h1[i - in_page] = byte;
	}
}

/*
 * Run the guest until no process is left: find (or translate) the block
 * at env->pc, chain it to the block that just left, run it, and act on
 * how it left. Guest exceptions land at the sigsetjmp().
 */
void cpu_run(struct machine *m)
{
	struct cpu_env *env = m->env;
	struct jit *j = m->jit;

	if (sigsetjmp(m->exit_jb, 0)) {
		/* From cpu_raise(): env is precise at the faulting instruction. */
		jit_set_last(j, EXIT_JUMP);
		kernel_page_fault(m);
	}
	while (m->current) {
		bool fetch_fault = false;
		struct tb *tb = jit_find(m, env->pc, &fetch_fault);
		uint32_t ret;

		if (!tb) {
			jit_set_last(j, EXIT_JUMP);
			kernel_kill(m, "instruction fetch fault", env->pc);
			continue;
		}
		jit_chain_from_last(j, tb);
		ret = jit_exec(j, env, tb);
		jit_set_last(j, ret);
		switch (ret & 7) {
		case EXIT_CHAIN:
		case EXIT_JUMP:
			break;
		case EXIT_BUDGET:
			kernel_preempt(m);
			break;
		case EXIT_SYSCALL:
			kernel_syscall(m);
			break;
		case EXIT_ILLEGAL:
			kernel_kill(m, "illegal instruction", env->pc);
			break;
		}
	}
}
