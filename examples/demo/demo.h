/* SPDX-License-Identifier: MIT */
/*
 * The libbtmmu demo: a small full-system dynamic binary translator.
 *
 *   guest.c      the guest "kernel" (paravirtual, in C): physical frames,
 *                2-level page tables in guest RAM, processes, demand
 *                paging, round-robin scheduling, system calls
 *   cpu.c        the dispatcher loop and guest exceptions (precise state)
 *   jit.c        the translator: G32 basic blocks to x86-64 host code
 *   softmmu.c    flavour (a): QEMU-style inline software TLB
 *   mmu-btmmu.c  flavour (b): libbtmmu, guest VA at view base + VA
 *   workloads.c  the guest programs
 *   main.c       runs every workload under both flavours and compares
 *
 * Everything runs on one host thread (one guest vCPU).
 */
#ifndef DEMO_H
#define DEMO_H

#include <setjmp.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <btmmu/btmmu.h>

#include "isa.h"

/* ------------------------------------------------------------------ */
/* Guest MMU: 32-bit VA, 4 KiB pages, 10/10/12 two-level table (x86)   */
/* ------------------------------------------------------------------ */

#define GPAGE_SHIFT	12
#define GPAGE_SIZE	(UINT32_C(1) << GPAGE_SHIFT)
#define GPAGE_MASK	(~(GPAGE_SIZE - 1))

#define PTE_P		0x001u	/* present */
#define PTE_W		0x002u	/* writable */
#define PTE_U		0x004u	/* user (set on every entry: guests run in user mode) */
#define PTE_SHARED	0x200u	/* software bit: the frame is not the process's own */
#define PTE_FRAME	0xfffff000u

/* Guest virtual layout of every process. */
#define GUEST_CODE_VA	0x00400000u	/* program text, read-only, shared frames */
#define GUEST_DATA_VA	0x10000000u	/* demand-zero data, read-write */
#define GUEST_USER_TOP	0xc0000000u	/* nothing is ever mapped above */

/*
 * Walk the guest page table rooted at cr3 (guest-physical) in guest RAM.
 * Returns the PTE, or 0 when there is none. Async-signal-safe.
 */
static inline uint32_t guest_walk(const uint8_t *ram, uint32_t cr3, uint32_t va)
{
	uint32_t pde = *(const uint32_t *)(ram + cr3 + (va >> 22) * 4);

	if (!(pde & PTE_P))
		return 0;
	return *(const uint32_t *)(ram + (pde & PTE_FRAME) + ((va >> 12) & 0x3ff) * 4);
}

/* ------------------------------------------------------------------ */
/* The vCPU state translated code works on                             */
/* ------------------------------------------------------------------ */

/* One softmmu TLB entry (QEMU's CPUTLBEntry, reduced). */
struct tlb_entry {
	uint32_t tag_read;	/* page VA if readable, else TLB_INVALID */
	uint32_t tag_write;	/* page VA if writable, else TLB_INVALID */
	uintptr_t addend;	/* host address = addend + guest VA */
};

#define TLB_INVALID		0xffffffffu	/* never equals a page-aligned VA */
#define TLB_ENTRY_SHIFT		4		/* sizeof(struct tlb_entry) == 16 */
#define TLB_MAX_BITS		16

/*
 * The env: what translated code addresses through rbp. Guest registers
 * live here; a block caches some in host registers but writes them back
 * before every guest memory access, so wherever a guest exception can
 * happen the env holds them all and a fault only has to recover the
 * guest PC (from the block's pcmap).
 */
struct cpu_env {
	uint32_t regs[G32_NREGS];	/* r0 stays 0 */
	uint32_t pc;			/* valid on exit from translated code */
	int32_t budget;			/* guest instructions left in this timeslice */
	uintptr_t mem_base;		/* btmmu: the current process's view base */
	struct machine *m;
	uint64_t pad[5];
	struct tlb_entry tlb[];		/* softmmu: 1 << tlb_bits entries */
};

/* Offsets the JIT encodes (checked against the struct in cpu.c). */
#define ENV_REGS	0
#define ENV_PC		64
#define ENV_BUDGET	68
#define ENV_MEM_BASE	72
#define ENV_TLB		128

/* ------------------------------------------------------------------ */
/* Guest kernel objects                                                */
/* ------------------------------------------------------------------ */

/* A virtual memory area: where a page fault is legitimate. */
struct vma {
	uint32_t start, end;	/* [start, end), page aligned */
	bool writable;
	bool demand_zero;	/* faults allocate zeroed frames */
};

struct process {
	unsigned pid;
	bool alive;
	uint32_t cr3;			/* guest-physical page directory */
	uint32_t regs[G32_NREGS];	/* saved while not running */
	uint32_t pc;
	struct vma vma[2];
	unsigned nvma;

	/* Results: the guest-visible outcome, compared across flavours. */
	int32_t exit_code;
	const char *killed;		/* NULL, or why the kernel killed it */
	uint32_t kill_va, kill_pc;
	uint64_t insns;			/* guest instructions executed */
	uint64_t page_faults;		/* guest page faults handled */
	uint64_t out_hash;		/* hash of the values it printed */
	uint64_t nout;
	uint64_t reg_hash;		/* registers at exit */
	uint64_t mem_hash;		/* its memory, walked through its page table */
	uint64_t mem_pages;

	/* libbtmmu glue (mmu-btmmu.c). */
	struct btmmu_space *space;
	uintptr_t view_base;		/* kept equal to the view's base (base_slots) */
};

/* A guest exception raised by translated code, handled by the kernel. */
enum guest_fault_kind {
	GF_NOT_PRESENT,		/* no PTE: demand paging, or a wild access */
	GF_PROTECTION,		/* write to a page whose PTE lacks PTE_W */
};

struct guest_fault {
	uint32_t va;
	bool write;
	enum guest_fault_kind kind;
};

enum flavour {
	FLAVOUR_SOFTMMU,
	FLAVOUR_BTMMU,
};

struct machine;

/*
 * What the guest kernel tells the memory flavour: address spaces come and
 * go, the CPU switches between them (a CR3 write), PTEs are removed (the
 * INVLPG a guest kernel would issue), a page fault was just resolved.
 */
struct mmu_ops {
	const char *name;
	int (*proc_init)(struct machine *m, struct process *p);
	void (*proc_fini)(struct machine *m, struct process *p);
	void (*switch_to)(struct machine *m, struct process *p);
	void (*invalidate)(struct machine *m, struct process *p, uint32_t va, uint32_t len);
	void (*fault_resolved)(struct machine *m, struct process *p, uint32_t va, bool write);
};

extern const struct mmu_ops softmmu_ops;
extern const struct mmu_ops btmmu_ops;

struct jit;

/* The whole guest machine (one vCPU). */
struct machine {
	/* Configuration. */
	enum flavour flavour;
	const struct mmu_ops *mmu;
	unsigned tlb_bits;		/* softmmu TLB: 1 << tlb_bits entries */
	int32_t timeslice;		/* guest instructions per timeslice */
	unsigned fault_around;		/* btmmu: pages installed per fault (1..1024) */
	bool prefault;			/* btmmu: install the entry after a guest #PF */
	bool verbose;

	/* The vCPU. */
	struct cpu_env *env;
	sigjmp_buf exit_jb;		/* cpu_run(): where guest exceptions land */
	struct guest_fault fault;	/* the exception being delivered */

	/* Guest-physical memory: frames of guest RAM. */
	uint8_t *ram;
	uint32_t ram_size;
	uint32_t next_frame;		/* bump allocator (guest-physical) */
	uint32_t *free_frames;		/* freed frames, reused first (LIFO) */
	uint32_t nfree;

	/* Processes. */
	struct process *procs;
	unsigned nprocs;
	struct process *current;
	unsigned *runq;			/* ring of runnable pids */
	unsigned rq_head, rq_len;
	int32_t slice_mark;		/* env->budget at the last accounting */
	uint32_t code_frames[16];	/* the program image (shared, read-only) */
	unsigned ncode_frames;

	struct jit *jit;

	/* libbtmmu: one context and one RAM range for the whole demo. */
	struct btmmu *bt;
	struct btmmu_ram *bt_ram;

	/* Time spent on result checksums, excluded from run times. */
	uint64_t excluded_ns;
};

/* ---- guest.c: the guest kernel ---- */
void kernel_reset(struct machine *m);
int kernel_load_program(struct machine *m, const uint8_t *image, size_t len);
int kernel_spawn(struct machine *m, unsigned pid, uint32_t data_size, const uint32_t *args,
		 unsigned nargs);
void kernel_start(struct machine *m);
void kernel_account(struct machine *m);
void kernel_syscall(struct machine *m);
void kernel_preempt(struct machine *m);
void kernel_page_fault(struct machine *m);
void kernel_kill(struct machine *m, const char *why, uint32_t va);
void kernel_teardown(struct machine *m);
uint64_t hash64(uint64_t h, uint64_t v);

/* ---- cpu.c: execution ---- */
void cpu_run(struct machine *m);
void cpu_restore_state(struct machine *m, uintptr_t host_pc);
__attribute__((noreturn)) void cpu_raise(struct machine *m, uintptr_t host_pc, uint32_t va,
					 bool write, enum guest_fault_kind kind);
void *cpu_translate_slow(struct machine *m, uint32_t va, bool write, uintptr_t host_pc);
uint32_t helper_load(struct cpu_env *env, uint32_t va, uint32_t size);
void helper_store(struct cpu_env *env, uint32_t va, uint32_t val, uint32_t size);

/* ---- softmmu.c ---- */
void softmmu_flush(struct machine *m);
void softmmu_fill(struct machine *m, uint32_t va, uint32_t pte);

/* ---- mmu-btmmu.c ---- */
int bt_setup(struct machine *m, uint64_t ram_size, uint64_t max_mappings);
void bt_teardown(struct machine *m);
int bt_stats(struct machine *m, struct btmmu_stats *st);

/* ---- jit.c: the translator ---- */

/* How translated code returned to the dispatcher (low 3 bits of the result). */
enum jit_exit {
	EXIT_CHAIN = 0,		/* a direct jump to env->pc: chainable (tb, slot) */
	EXIT_BUDGET = 1,	/* the timeslice ran out at a block entry */
	EXIT_SYSCALL = 2,	/* SYSCALL; env->pc is the next instruction */
	EXIT_JUMP = 3,		/* an indirect jump to env->pc */
	EXIT_ILLEGAL = 4,	/* an illegal instruction at env->pc */
};

/* Per memory access of a block: how to map a host PC back to the guest. */
struct pcmap_entry {
	uint32_t access_off;	/* host offset of the direct access (btmmu), or UINT32_MAX */
	uint32_t ret_off;	/* host offset just after the slow-path helper call */
	uint32_t stub_off;	/* host offset of the slow-path stub */
	uint32_t gpc;		/* guest PC of the instruction */
	uint16_t remaining;	/* instructions from this one to the block's end */
	uint8_t store;		/* a store (the host fault says so too, but this is certain) */
	uint8_t pad;
};

/* A translated block. */
struct tb {
	uint32_t pc;		/* guest VA of its first instruction */
	uint32_t phys;		/* guest-physical address of the same */
	uint32_t ninsns;
	uint32_t code_off, code_end;	/* host code [off, end) in the buffer */
	uint32_t map_first, map_n;	/* its pcmap entries */
	uint32_t slot_off[2];	/* offset of each exit jump's rel32, 0: none */
	struct tb *hnext;
};

int jit_create(struct machine *m, struct jit **jp);
void jit_destroy(struct jit *j);
void jit_reset(struct jit *j, enum flavour flavour, unsigned tlb_bits);
struct tb *jit_find(struct machine *m, uint32_t pc, bool *fetch_fault);
uint32_t jit_exec(struct jit *j, struct cpu_env *env, struct tb *tb);
void jit_chain_from_last(struct jit *j, struct tb *next);
void jit_set_last(struct jit *j, uint32_t exit_code);
bool jit_owns(const struct jit *j, uintptr_t host_pc);
const struct pcmap_entry *jit_pcmap_lookup(const struct jit *j, uintptr_t host_pc,
					   const struct tb **tbp);
uintptr_t jit_host_addr(const struct jit *j, uint32_t off);
void jit_stats(const struct jit *j, uint64_t *blocks, uint64_t *chains, size_t *code_bytes);

/* ---- misc ---- */
extern bool demo_wall_clock;
uint64_t now_ns(void);

#endif /* DEMO_H */
