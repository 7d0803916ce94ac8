/* SPDX-License-Identifier: MIT */
/*
 * The translator: G32 basic blocks to x86-64 host code, one fixed template
 * per guest instruction (a "template JIT").
 *
 * Guest registers live in the env (rbp). Within a block, the most used ones
 * are cached in host registers, loaded on first use and written back
 * ("synced") before every guest memory access and every exit, the way
 * QEMU's TCG syncs globals before a qemu_ld/st: wherever a guest exception
 * can happen, the env holds every guest register.
 *
 * A block ends at a control transfer, a SYSCALL, the end of its guest page
 * or after MAX_BLOCK_INSNS instructions. Its host code is laid out as
 *
 *	entry:	cmp dword [rbp+budget], 0 ; jle budget_stub
 *		sub dword [rbp+budget], ninsns
 *		... one template per instruction ...
 *		jmp exit_stub_0 / exit_stub_1	(patched to chain blocks)
 *	cold:	budget_stub, exit stubs, one slow-path stub per memory access
 *
 * Memory accesses are where the two flavours differ; both are emitted here
 * (emit_access()): softmmu inlines a TLB lookup and calls a C helper on a
 * miss; btmmu loads the view base from the env and accesses base + VA.
 * Every access gets a pcmap entry so that a host PC (a faulting direct
 * access, or a helper's return address) maps back to the guest PC and to
 * the number of block instructions not executed: guest state is precise.
 *
 * Blocks are cached by (guest-physical PC, guest virtual PC), so processes
 * running the same program share translations, and direct jumps within one
 * guest page are chained, as QEMU does. Guest code is read-only in every
 * process, so there is no self-modifying code to detect (a DBT that allows
 * it would write-protect code frames with btmmu_protect()).
 *
 * The buffer is mapped read-write-execute for simplicity; when it fills up
 * every translation is dropped at once.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#include "demo.h"

#define CODE_SIZE	(32u << 20)
#define MAX_TBS		(1u << 16)
#define MAX_PCMAP	(1u << 20)
#define HASH_BITS	12
#define MAX_BLOCK_INSNS	64
#define MAX_BLOCK_CODE	(MAX_BLOCK_INSNS * 320 + 512)	/* generous bound per block */

/*
 * x86 registers. rax, rcx, rdx are the templates' scratch registers, ebx
 * holds the value of a store, rbp the env; the rest cache guest registers.
 */
enum {
	X86_RAX, X86_RCX, X86_RDX, X86_RBX, X86_RSP, X86_RBP, X86_RSI, X86_RDI,
	X86_R8, X86_R9, X86_R10, X86_R11, X86_R12, X86_R13, X86_R14, X86_R15,
};

/*
 * Host registers that cache guest registers within a block, the most used
 * guest registers first. The first NCALLEE survive the C helper calls of
 * the slow paths; the others are reloaded from the env after one.
 */
static const uint8_t cache_hreg[] = {
	X86_R12, X86_R13, X86_R14, X86_R15,			/* callee-saved */
	X86_RSI, X86_RDI, X86_R8, X86_R9, X86_R10, X86_R11,	/* call-clobbered */
};
#define NCACHE	(sizeof(cache_hreg) / sizeof(cache_hreg[0]))
#define NCALLEE	4

/* State of a cached guest register. */
enum { RC_NONE, RC_CLEAN, RC_DIRTY };	/* not loaded / equal to the env / newer */

/* x86 condition codes. */
enum { CC_B = 0x2, CC_AE = 0x3, CC_E = 0x4, CC_NE = 0x5, CC_L = 0xc, CC_GE = 0xd, CC_LE = 0xe };

typedef uint32_t (*jit_enter_fn)(struct cpu_env *env, const void *code);

struct jit {
	struct machine *m;
	uint8_t *buf;
	uint32_t used;			/* bytes of buf in use */
	uint32_t base_used;		/* prologue and epilogue */
	uint32_t epilogue_off;
	jit_enter_fn enter;

	struct tb *tbs;			/* in code order: sorted by code_off */
	unsigned ntbs;
	struct tb *hash[1u << HASH_BITS];
	struct pcmap_entry *map;
	unsigned nmap;

	enum flavour flavour;
	unsigned tlb_bits;

	struct tb *last;		/* the block that just left by a chainable exit */
	unsigned last_slot;

	uint64_t blocks, chains;
};

/* ------------------------------------------------------------------ */
/* Emitter                                                             */
/* ------------------------------------------------------------------ */

enum cold_kind { COLD_BUDGET, COLD_EXIT, COLD_SLOW };

/* Out-of-line code of a block, emitted after its body. */
struct cold {
	enum cold_kind kind;
	uint8_t *patch;		/* rel32 to aim at the stub, or NULL */
	uint8_t *done;		/* COLD_SLOW: where the stub returns */
	uint32_t gpc;		/* COLD_BUDGET: block PC; COLD_EXIT: target PC */
	unsigned slot;		/* COLD_EXIT */
	unsigned size;		/* COLD_SLOW: access size */
	bool store;		/* COLD_SLOW */
	unsigned map;		/* COLD_SLOW: pcmap index */
	uint16_t reload;	/* COLD_SLOW: guest registers to reload after the call */
};

struct emit {
	struct jit *j;
	struct tb *tb;
	uint8_t *p;
	int8_t slot[G32_NREGS];		/* cache_hreg index of each guest register, -1 */
	uint8_t state[G32_NREGS];	/* RC_* */
	struct cold cold[2 * MAX_BLOCK_INSNS + 4];
	unsigned ncold;
};

static void b(struct emit *e, uint8_t v)
{
	*e->p++ = v;
}

static void b32(struct emit *e, uint32_t v)
{
	memcpy(e->p, &v, 4);
	e->p += 4;
}

static void b64(struct emit *e, uint64_t v)
{
	memcpy(e->p, &v, 8);
	e->p += 8;
}

static uint32_t off_of(const struct emit *e, const uint8_t *p)
{
	return (uint32_t)(p - e->j->buf);
}

/* Point the rel32 at `at` to target. */
static void patch32(uint8_t *at, const uint8_t *target)
{
	int32_t rel = (int32_t)(target - (at + 4));

	memcpy(at, &rel, 4);
}

/* REX prefix, when needed, for a ModRM reg field `reg` and r/m register `rm`. */
static void rex(struct emit *e, bool w, unsigned reg, unsigned rm)
{
	uint8_t v = (uint8_t)(0x40 | w << 3 | (reg >> 3) << 2 | (rm >> 3));

	if (v != 0x40)
		b(e, v);
}

/* ModRM (and displacement) for [rbp + disp] with the given reg field. */
static void rbp_mem(struct emit *e, unsigned reg, int32_t disp)
{
	if (disp >= -128 && disp <= 127) {
		b(e, (uint8_t)(0x45 | (reg & 7) << 3));
		b(e, (uint8_t)disp);
	} else {
		b(e, (uint8_t)(0x85 | (reg & 7) << 3));
		b32(e, (uint32_t)disp);
	}
}

/* "op reg, [rbp + disp]" (or "op [rbp + disp], reg") for a 32-bit opcode. */
static void op_mem(struct emit *e, uint8_t op, unsigned reg, int32_t disp)
{
	rex(e, false, reg, X86_RBP);
	b(e, op);
	rbp_mem(e, reg, disp);
}

/* Register-direct "op reg, rm" for a one-byte 32-bit opcode. */
static void op_rr(struct emit *e, uint8_t op, unsigned reg, unsigned rm)
{
	rex(e, false, reg, rm);
	b(e, op);
	b(e, (uint8_t)(0xc0 | (reg & 7) << 3 | (rm & 7)));
}

/* Group-1 "op rm, imm32" (81 /digit). */
static void op_imm(struct emit *e, unsigned digit, unsigned rm, uint32_t imm)
{
	rex(e, false, 0, rm);
	b(e, 0x81);
	b(e, (uint8_t)(0xc0 | digit << 3 | (rm & 7)));
	b32(e, imm);
}

/* mov dword [rbp + disp], imm */
static void store_env_imm(struct emit *e, int32_t disp, uint32_t imm)
{
	b(e, 0xc7);
	rbp_mem(e, 0, disp);
	b32(e, imm);
}

static int32_t greg_disp(unsigned r)
{
	return ENV_REGS + 4 * (int32_t)r;
}

/* ---- the register cache ---- */

static bool cached(const struct emit *e, unsigned r)
{
	return e->slot[r] >= 0;
}

/* The host register caching r, loaded from the env on first use. */
static unsigned ensure(struct emit *e, unsigned r)
{
	unsigned h = cache_hreg[e->slot[r]];

	if (e->state[r] == RC_NONE) {
		op_mem(e, 0x8b, h, greg_disp(r));	/* mov h, [rbp + 4r] */
		e->state[r] = RC_CLEAN;
	}
	return h;
}

/* Host register reg = guest register r. */
static void get(struct emit *e, unsigned reg, unsigned r)
{
	if (r == 0)
		op_rr(e, 0x31, reg, reg);		/* xor reg, reg */
	else if (cached(e, r))
		op_rr(e, 0x8b, reg, ensure(e, r));	/* mov reg, h */
	else
		op_mem(e, 0x8b, reg, greg_disp(r));	/* mov reg, [rbp + 4r] */
}

/*
 * "op reg, <guest r>" for an opcode taking r/m32 as its source (or, with
 * reg a /digit, as its operand): the cached host register or the env.
 * r0 is never cached; its env slot holds 0.
 */
static void op_src(struct emit *e, uint8_t op, unsigned reg, unsigned r)
{
	if (cached(e, r))
		op_rr(e, op, reg, ensure(e, r));
	else
		op_mem(e, op, reg, greg_disp(r));
}

/* Guest register r = host register reg (writes to r0 vanish). */
static void def(struct emit *e, unsigned r, unsigned reg)
{
	if (r == 0)
		return;
	if (cached(e, r)) {
		op_rr(e, 0x89, reg, cache_hreg[e->slot[r]]);	/* mov h, reg */
		e->state[r] = RC_DIRTY;
	} else {
		op_mem(e, 0x89, reg, greg_disp(r));		/* mov [rbp + 4r], reg */
	}
}

/* Guest register r = imm. */
static void def_imm(struct emit *e, unsigned r, uint32_t imm)
{
	unsigned h;

	if (r == 0)
		return;
	if (!cached(e, r)) {
		store_env_imm(e, greg_disp(r), imm);
		return;
	}
	h = cache_hreg[e->slot[r]];
	rex(e, false, 0, h);
	b(e, (uint8_t)(0xb8 | (h & 7)));		/* mov h, imm32 */
	b32(e, imm);
	e->state[r] = RC_DIRTY;
}

/*
 * Write every dirty cached register back to the env: before each guest
 * memory access (the access may raise a guest exception, which must see
 * every register in the env) and before leaving the block. Stores only:
 * flags and scratch registers are untouched.
 */
static void sync(struct emit *e)
{
	unsigned r;

	for (r = 1; r < G32_NREGS; r++) {
		if (e->state[r] != RC_DIRTY)
			continue;
		op_mem(e, 0x89, cache_hreg[e->slot[r]], greg_disp(r));
		e->state[r] = RC_CLEAN;
	}
}

/* Guest registers held in call-clobbered host registers right now. */
static uint16_t clobbered_by_call(const struct emit *e)
{
	uint16_t mask = 0;
	unsigned r;

	for (r = 1; r < G32_NREGS; r++) {
		if (cached(e, r) && e->slot[r] >= NCALLEE && e->state[r] != RC_NONE)
			mask |= (uint16_t)(1u << r);
	}
	return mask;
}

/* ---- control flow ---- */

/* jcc rel32 (to be patched); returns the rel32's address. */
static uint8_t *jcc32(struct emit *e, unsigned cc)
{
	uint8_t *rel;

	b(e, 0x0f);
	b(e, (uint8_t)(0x80 | cc));
	rel = e->p;
	b32(e, 0);
	return rel;
}

/* jmp rel32 (to be patched); returns the rel32's address. */
static uint8_t *jmp32(struct emit *e)
{
	uint8_t *rel;

	b(e, 0xe9);
	rel = e->p;
	b32(e, 0);
	return rel;
}

/* mov eax, code; jmp epilogue: leave translated code. */
static void exit_to_dispatcher(struct emit *e, uint32_t code)
{
	b(e, 0xb8);
	b32(e, code);
	patch32(jmp32(e), e->j->buf + e->j->epilogue_off);
}

static struct cold *add_cold(struct emit *e, enum cold_kind kind, uint8_t *patch)
{
	struct cold *c = &e->cold[e->ncold++];

	memset(c, 0, sizeof(*c));
	c->kind = kind;
	c->patch = patch;
	return c;
}

/* A direct exit to target through the block's exit slot (chainable). */
static void emit_exit_slot(struct emit *e, unsigned slot, uint32_t target)
{
	uint8_t *rel = jmp32(e);
	struct cold *c = add_cold(e, COLD_EXIT, rel);

	e->tb->slot_off[slot] = off_of(e, rel);
	c->slot = slot;
	c->gpc = target;
}

/* ------------------------------------------------------------------ */
/* Memory accesses: where the two flavours differ                      */
/* ------------------------------------------------------------------ */

/*
 * The host access itself, at [rdx + rcx]: rcx is the zero-extended guest
 * VA, rdx the TLB addend (softmmu) or the view base (btmmu). Loads go to
 * eax (zero-extended), stores take ebx.
 */
static void host_access(struct emit *e, unsigned size, bool store)
{
	if (store) {
		if (size == 2)
			b(e, 0x66);
		b(e, size == 1 ? 0x88 : 0x89);	/* mov [rdx + rcx], bl/bx/ebx */
		b(e, 0x1c);
		b(e, 0x0a);
	} else {
		if (size != 4)
			b(e, 0x0f);		/* movzx eax, byte/word [rdx + rcx] */
		b(e, size == 1 ? 0xb6 : size == 2 ? 0xb7 : 0x8b);
		b(e, 0x04);
		b(e, 0x0a);
	}
}

/*
 * A guest memory access of size bytes at the VA in ecx (rcx zero-extended);
 * dirty guest registers have been written back.
 *
 * softmmu, as QEMU's tcg/i386 backend (with the table inside the env):
 *	mov eax, ecx ; shr eax, 8 ; and eax, (ntlb-1)<<4	index * 16
 *	lea edx, [rcx+size-1] ; and edx, PAGE_MASK		page of the last byte
 *	cmp edx, [rbp+rax+tlb+tag] ; jne slow			hit?
 *	mov rdx, [rbp+rax+tlb+addend]
 *	mov eax, [rdx+rcx]					the access
 * btmmu, two instructions:
 *	mov rdx, [rbp+mem_base]
 *	mov eax, [rdx+rcx]					the access (may fault)
 * Both have a cold stub calling helper_load/helper_store: softmmu reaches
 * it on a TLB miss (or a page-crossing access), btmmu only when the fault
 * callback answers BTMMU_FAULT_SLOW.
 */
static void emit_access(struct emit *e, unsigned size, bool store, uint32_t gpc,
			unsigned remaining)
{
	struct jit *j = e->j;
	unsigned mi = j->nmap++;
	struct pcmap_entry *pe = &j->map[mi];
	uint8_t *miss = NULL;
	struct cold *c;

	memset(pe, 0, sizeof(*pe));
	pe->access_off = UINT32_MAX;
	pe->gpc = gpc;
	pe->remaining = (uint16_t)remaining;
	pe->store = store;

	if (j->flavour == FLAVOUR_SOFTMMU) {
		b(e, 0x89);			/* mov eax, ecx */
		b(e, 0xc8);
		b(e, 0xc1);			/* shr eax, PAGE_SHIFT - ENTRY_SHIFT */
		b(e, 0xe8);
		b(e, GPAGE_SHIFT - TLB_ENTRY_SHIFT);
		b(e, 0x25);			/* and eax, index mask */
		b32(e, ((UINT32_C(1) << j->tlb_bits) - 1) << TLB_ENTRY_SHIFT);
		if (size == 1) {
			b(e, 0x89);		/* mov edx, ecx */
			b(e, 0xca);
		} else {
			b(e, 0x8d);		/* lea edx, [rcx + size - 1] */
			b(e, 0x51);
			b(e, (uint8_t)(size - 1));
		}
		b(e, 0x81);			/* and edx, PAGE_MASK */
		b(e, 0xe2);
		b32(e, GPAGE_MASK);
		b(e, 0x3b);			/* cmp edx, [rbp + rax + tlb + tag] */
		b(e, 0x94);
		b(e, 0x05);
		b32(e, ENV_TLB + (store ? offsetof(struct tlb_entry, tag_write) :
					  offsetof(struct tlb_entry, tag_read)));
		miss = jcc32(e, CC_NE);
		b(e, 0x48);			/* mov rdx, [rbp + rax + tlb + addend] */
		b(e, 0x8b);
		b(e, 0x94);
		b(e, 0x05);
		b32(e, ENV_TLB + offsetof(struct tlb_entry, addend));
	} else {
		b(e, 0x48);			/* mov rdx, [rbp + mem_base] */
		b(e, 0x8b);
		rbp_mem(e, X86_RDX, ENV_MEM_BASE);
		pe->access_off = off_of(e, e->p);
	}
	host_access(e, size, store);

	c = add_cold(e, COLD_SLOW, miss);
	c->done = e->p;
	c->size = size;
	c->store = store;
	c->map = mi;
	c->reload = clobbered_by_call(e);
}

/*
 * The slow-path stub: call the C helper, reload the cached guest registers
 * the call clobbered (the env is up to date: they were synced before the
 * access), continue after the access.
 */
static void emit_slow_stub(struct emit *e, const struct cold *c)
{
	struct pcmap_entry *pe = &e->j->map[c->map];
	unsigned r;

	pe->stub_off = off_of(e, e->p);
	b(e, 0x48);				/* mov rdi, rbp */
	b(e, 0x89);
	b(e, 0xef);
	b(e, 0x89);				/* mov esi, ecx */
	b(e, 0xce);
	if (c->store) {
		b(e, 0x89);			/* mov edx, ebx */
		b(e, 0xda);
		b(e, 0xb9);			/* mov ecx, size */
		b32(e, c->size);
		b(e, 0x48);			/* mov rax, helper_store */
		b(e, 0xb8);
		b64(e, (uint64_t)(uintptr_t)helper_store);
	} else {
		b(e, 0xba);			/* mov edx, size */
		b32(e, c->size);
		b(e, 0x48);			/* mov rax, helper_load */
		b(e, 0xb8);
		b64(e, (uint64_t)(uintptr_t)helper_load);
	}
	b(e, 0xff);				/* call rax */
	b(e, 0xd0);
	pe->ret_off = off_of(e, e->p);
	for (r = 1; r < G32_NREGS; r++) {
		if (c->reload & (1u << r))
			op_mem(e, 0x8b, cache_hreg[e->slot[r]], greg_disp(r));
	}
	patch32(jmp32(e), c->done);
}

/* ------------------------------------------------------------------ */
/* Templates                                                           */
/* ------------------------------------------------------------------ */

/* "op r32, r/m32" opcodes of the two-operand ALU instructions. */
static const uint8_t alu_rr_op[] = {
	[G32_ADD] = 0x03, [G32_SUB] = 0x2b, [G32_AND] = 0x23,
	[G32_OR] = 0x0b,  [G32_XOR] = 0x33,
};

/* Group-1 immediate forms: 81 /digit. */
static const uint8_t alu_ri_digit[] = {
	[G32_ADD] = 0, [G32_SUB] = 5, [G32_AND] = 4, [G32_OR] = 1, [G32_XOR] = 6,
};

/* Shift group: d3 /digit (by cl) and c1 /digit ib. */
static const uint8_t shift_digit[] = {
	[G32_SHL] = 4, [G32_SHR] = 5, [G32_SAR] = 7,
};

/* rd = rs op rt, or rd = rs op imm (op is the register form's opcode). */
static void emit_alu(struct emit *e, unsigned op, const struct g32_insn *in, bool imm)
{
	bool in_place = in->rd && in->rd == in->rs && cached(e, in->rd);
	unsigned out = X86_RAX, h;

	switch (op) {
	case G32_ADD:
	case G32_SUB:
	case G32_AND:
	case G32_OR:
	case G32_XOR:
		if (imm && !in->imm && op != G32_AND) {
			/* a move */
			if (!in_place) {
				get(e, X86_RAX, in->rs);
				break;
			}
			return;
		}
		if (in_place) {
			/* rd op= src, in the cached register */
			h = ensure(e, in->rd);
			if (imm)
				op_imm(e, alu_ri_digit[op], h, (uint32_t)in->imm);
			else
				op_src(e, alu_rr_op[op], h, in->rt);
			e->state[in->rd] = RC_DIRTY;
			return;
		}
		get(e, X86_RAX, in->rs);
		if (imm)
			op_imm(e, alu_ri_digit[op], X86_RAX, (uint32_t)in->imm);
		else
			op_src(e, alu_rr_op[op], X86_RAX, in->rt);
		break;
	case G32_SHL:
	case G32_SHR:
	case G32_SAR:
		if (imm) {
			h = in_place ? ensure(e, in->rd) : X86_RAX;
			if (!in_place)
				get(e, X86_RAX, in->rs);
			rex(e, false, 0, h);
			b(e, 0xc1);		/* shift h, imm8 */
			b(e, (uint8_t)(0xc0 | shift_digit[op] << 3 | (h & 7)));
			b(e, (uint8_t)(in->imm & 31));
			if (in_place) {
				e->state[in->rd] = RC_DIRTY;
				return;
			}
			break;
		}
		get(e, X86_RAX, in->rs);
		get(e, X86_RCX, in->rt);
		b(e, 0xd3);			/* shift eax, cl (mod 32) */
		b(e, (uint8_t)(0xc0 | shift_digit[op] << 3));
		break;
	case G32_MUL:
		if (imm) {
			/* imul eax, src, imm32 */
			if (cached(e, in->rs)) {
				h = ensure(e, in->rs);
				rex(e, false, X86_RAX, h);
				b(e, 0x69);
				b(e, (uint8_t)(0xc0 | (h & 7)));
			} else {
				b(e, 0x69);
				rbp_mem(e, X86_RAX, greg_disp(in->rs));
			}
			b32(e, (uint32_t)in->imm);
		} else {
			get(e, X86_RAX, in->rs);
			if (cached(e, in->rt)) {	/* imul eax, src */
				h = ensure(e, in->rt);
				rex(e, false, X86_RAX, h);
				b(e, 0x0f);
				b(e, 0xaf);
				b(e, (uint8_t)(0xc0 | (h & 7)));
			} else {
				b(e, 0x0f);
				b(e, 0xaf);
				rbp_mem(e, X86_RAX, greg_disp(in->rt));
			}
		}
		break;
	case G32_MULHU:
		get(e, X86_RAX, in->rs);
		if (imm) {
			b(e, 0xb9);		/* mov ecx, imm32 ; mul ecx */
			b32(e, (uint32_t)in->imm);
			b(e, 0xf7);
			b(e, 0xe1);
		} else {
			op_src(e, 0xf7, 4, in->rt);	/* mul src */
		}
		out = X86_RDX;
		break;
	case G32_SLT:
	case G32_SLTU:
		op_rr(e, 0x31, X86_RDX, X86_RDX);	/* xor edx, edx */
		get(e, X86_RAX, in->rs);
		if (imm)
			op_imm(e, 7, X86_RAX, (uint32_t)in->imm);	/* cmp eax, imm32 */
		else
			op_src(e, 0x3b, X86_RAX, in->rt);		/* cmp eax, src */
		b(e, 0x0f);			/* setl / setb dl */
		b(e, op == G32_SLT ? 0x9c : 0x92);
		b(e, 0xc2);
		out = X86_RDX;
		break;
	}
	def(e, in->rd, out);
}

/* ecx = rs + imm: the VA of a load or store. */
static void emit_address(struct emit *e, const struct g32_insn *in)
{
	get(e, X86_RCX, in->rs);
	if (in->imm)
		op_imm(e, 0, X86_RCX, (uint32_t)in->imm);	/* add ecx, imm32 */
}

/* Translate one instruction at guest PC pc; remaining counts it and the rest of the block. */
static void emit_insn(struct emit *e, const struct g32_insn *in, uint32_t pc,
		      unsigned remaining)
{
	static const uint8_t bcc[] = {
		[G32_BEQ - G32_BEQ] = CC_E,  [G32_BNE - G32_BEQ] = CC_NE,
		[G32_BLT - G32_BEQ] = CC_L,  [G32_BGE - G32_BEQ] = CC_GE,
		[G32_BLTU - G32_BEQ] = CC_B, [G32_BGEU - G32_BEQ] = CC_AE,
	};
	unsigned size;

	switch (in->op) {
	case G32_ADD ... G32_SLTU:
		emit_alu(e, in->op, in, false);
		break;
	case G32_ADDI ... G32_SLTIU:
		emit_alu(e, in->op - 0x10, in, true);
		break;
	case G32_MOVI:
		def_imm(e, in->rd, (uint32_t)in->imm);
		break;
	case G32_LDB:
	case G32_LDH:
	case G32_LDW:
		size = 1u << (in->op - G32_LDB);
		emit_address(e, in);
		sync(e);
		emit_access(e, size, false, pc, remaining);
		def(e, in->rd, X86_RAX);
		break;
	case G32_STB:
	case G32_STH:
	case G32_STW:
		size = 1u << (in->op - G32_STB);
		emit_address(e, in);
		get(e, X86_RBX, in->rt);
		sync(e);
		emit_access(e, size, true, pc, remaining);
		break;
	case G32_BEQ ... G32_BGEU:
		sync(e);
		get(e, X86_RAX, in->rs);
		op_src(e, 0x3b, X86_RAX, in->rt);		/* cmp eax, rt */
		b(e, (uint8_t)(0x70 | bcc[in->op - G32_BEQ]));	/* jcc over the next jmp */
		b(e, 5);
		emit_exit_slot(e, 1, pc + G32_INSN_SIZE);
		emit_exit_slot(e, 0, pc + (uint32_t)in->imm);
		break;
	case G32_JAL:
		def_imm(e, in->rd, pc + G32_INSN_SIZE);
		/* fall through */
	case G32_JMP:
		sync(e);
		emit_exit_slot(e, 0, pc + (uint32_t)in->imm);
		break;
	case G32_JR:
		get(e, X86_RAX, in->rs);
		if (in->imm)
			op_imm(e, 0, X86_RAX, (uint32_t)in->imm);	/* add eax, imm32 */
		op_mem(e, 0x89, X86_RAX, ENV_PC);		/* mov [rbp + pc], eax */
		sync(e);
		exit_to_dispatcher(e, EXIT_JUMP);
		break;
	case G32_SYSCALL:
		sync(e);
		store_env_imm(e, ENV_PC, pc + G32_INSN_SIZE);
		exit_to_dispatcher(e, EXIT_SYSCALL);
		break;
	default:
		sync(e);
		store_env_imm(e, ENV_PC, pc);
		exit_to_dispatcher(e, EXIT_ILLEGAL);
		break;
	}
}

static bool op_valid(unsigned op)
{
	return (op >= G32_ADD && op <= G32_SLTU) || (op >= G32_ADDI && op <= G32_SLTIU) ||
	       op == G32_MOVI || (op >= G32_LDB && op <= G32_LDW) ||
	       (op >= G32_STB && op <= G32_STW) || (op >= G32_BEQ && op <= G32_BGEU) ||
	       (op >= G32_JMP && op <= G32_JR) || op == G32_SYSCALL;
}

/* Does this instruction end a block? (Invalid ones do: they raise.) */
static bool ends_block(unsigned op)
{
	return !op_valid(op) || (op >= G32_BEQ && op <= G32_BGEU) ||
	       (op >= G32_JMP && op <= G32_JR) || op == G32_SYSCALL;
}

/* Add the register operands of in to the use counts. */
static void count_uses(const struct g32_insn *in, unsigned *uses)
{
	unsigned op = in->op;

	if ((op >= G32_ADD && op <= G32_SLTU) || (op >= G32_STB && op <= G32_STW) ||
	    (op >= G32_BEQ && op <= G32_BGEU))
		uses[in->rt]++;
	if ((op >= G32_ADD && op <= G32_SLTIU) || (op >= G32_LDB && op <= G32_STW) ||
	    (op >= G32_BEQ && op <= G32_BGEU) || op == G32_JR)
		uses[in->rs]++;
	if ((op >= G32_ADD && op <= G32_LDW) || op == G32_JAL)
		uses[in->rd]++;
}

/*
 * Choose which guest registers the block caches: those used at least
 * twice, most used first (they get the call-preserved host registers).
 */
static void alloc_regs(struct emit *e, const struct g32_insn *insns, unsigned n)
{
	unsigned uses[G32_NREGS] = { 0 }, i, k;

	for (i = 0; i < n; i++)
		count_uses(&insns[i], uses);
	uses[0] = 0;	/* r0 is never cached */
	memset(e->slot, -1, sizeof(e->slot));
	memset(e->state, RC_NONE, sizeof(e->state));
	for (k = 0; k < NCACHE; k++) {
		unsigned best = 0;

		for (i = 1; i < G32_NREGS; i++) {
			if (e->slot[i] < 0 && uses[i] > uses[best])
				best = i;
		}
		if (!best || uses[best] < 2)
			break;
		e->slot[best] = (int8_t)k;
	}
}

/* Emit the block's out-of-line code. */
static void emit_cold(struct emit *e)
{
	unsigned i;

	for (i = 0; i < e->ncold; i++) {
		struct cold *c = &e->cold[i];

		if (c->patch)
			patch32(c->patch, e->p);
		switch (c->kind) {
		case COLD_BUDGET:
			store_env_imm(e, ENV_PC, c->gpc);
			exit_to_dispatcher(e, EXIT_BUDGET);
			break;
		case COLD_EXIT:
			store_env_imm(e, ENV_PC, c->gpc);
			exit_to_dispatcher(e, (uint32_t)(e->tb - e->j->tbs) << 4 |
						      c->slot << 3 | EXIT_CHAIN);
			break;
		case COLD_SLOW:
			emit_slow_stub(e, c);
			break;
		}
	}
}

/* Translate the block at guest pc (guest-physical phys). There is room. */
static struct tb *translate(struct machine *m, uint32_t pc, uint32_t phys)
{
	struct jit *j = m->jit;
	struct g32_insn insns[MAX_BLOCK_INSNS];
	unsigned n = 0, i, left = (GPAGE_SIZE - (pc & ~GPAGE_MASK)) / G32_INSN_SIZE;
	struct emit e;
	struct tb *tb;
	uint8_t *to_budget;

	/* Decode first: the entry code needs the block's length. */
	while (n < MAX_BLOCK_INSNS && n < left) {
		g32_decode(m->ram + phys + n * G32_INSN_SIZE, &insns[n]);
		if (ends_block(insns[n++].op))
			break;
	}

	tb = &j->tbs[j->ntbs++];
	memset(tb, 0, sizeof(*tb));
	tb->pc = pc;
	tb->phys = phys;
	tb->ninsns = n;
	tb->code_off = j->used;
	tb->map_first = j->nmap;

	e.j = j;
	e.tb = tb;
	e.p = j->buf + j->used;
	e.ncold = 0;
	alloc_regs(&e, insns, n);

	/* Timeslice: leave before the block if it is used up, else charge it. */
	b(&e, 0x83);				/* cmp dword [rbp + budget], 0 */
	rbp_mem(&e, 7, ENV_BUDGET);
	b(&e, 0);
	to_budget = jcc32(&e, CC_LE);
	add_cold(&e, COLD_BUDGET, to_budget)->gpc = pc;
	b(&e, 0x83);				/* sub dword [rbp + budget], n */
	rbp_mem(&e, 5, ENV_BUDGET);
	b(&e, (uint8_t)n);

	for (i = 0; i < n; i++)
		emit_insn(&e, &insns[i], pc + i * G32_INSN_SIZE, n - i);
	if (!ends_block(insns[n - 1].op)) {
		sync(&e);
		emit_exit_slot(&e, 0, pc + n * G32_INSN_SIZE);
	}
	emit_cold(&e);

	tb->code_end = off_of(&e, e.p);
	tb->map_n = j->nmap - tb->map_first;
	j->used = tb->code_end;
	j->blocks++;

	i = (phys >> 3) & ((1u << HASH_BITS) - 1);
	tb->hnext = j->hash[i];
	j->hash[i] = tb;
	return tb;
}

/* ------------------------------------------------------------------ */
/* Cache, chaining, execution                                          */
/* ------------------------------------------------------------------ */

/* Drop every translation. */
static void jit_flush(struct jit *j)
{
	j->used = j->base_used;
	j->ntbs = 0;
	j->nmap = 0;
	j->last = NULL;
	memset(j->hash, 0, sizeof(j->hash));
}

/*
 * The prologue (jit_enter_fn: save the callee-saved registers we use, rbp =
 * env, jump to the block) and the epilogue every exit jumps to. The stack
 * stays 16-byte aligned inside translated code, so the slow-path stubs can
 * call C helpers directly.
 */
static void emit_prologue(struct jit *j)
{
	static const uint8_t pro[] = {
		0x55,			/* push rbp */
		0x53,			/* push rbx */
		0x41, 0x54,		/* push r12 */
		0x41, 0x55,		/* push r13 */
		0x41, 0x56,		/* push r14 */
		0x41, 0x57,		/* push r15 */
		0x48, 0x83, 0xec, 0x08,	/* sub rsp, 8 */
		0x48, 0x89, 0xfd,	/* mov rbp, rdi */
		0xff, 0xe6,		/* jmp rsi */
	};
	static const uint8_t epi[] = {
		0x48, 0x83, 0xc4, 0x08,	/* add rsp, 8 */
		0x41, 0x5f,		/* pop r15 */
		0x41, 0x5e,		/* pop r14 */
		0x41, 0x5d,		/* pop r13 */
		0x41, 0x5c,		/* pop r12 */
		0x5b,			/* pop rbx */
		0x5d,			/* pop rbp */
		0xc3,			/* ret */
	};

	memcpy(j->buf, pro, sizeof(pro));
	j->epilogue_off = 32;
	memcpy(j->buf + j->epilogue_off, epi, sizeof(epi));
	j->base_used = 64;
	j->enter = (jit_enter_fn)(void *)j->buf;
}

/* Allocate the translator and its RWX code buffer. Returns 0 or -errno. */
int jit_create(struct machine *m, struct jit **jp)
{
	struct jit *j = calloc(1, sizeof(*j));

	if (!j)
		return -ENOMEM;
	j->m = m;
	j->buf = mmap(NULL, CODE_SIZE, PROT_READ | PROT_WRITE | PROT_EXEC,
		      MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	j->tbs = calloc(MAX_TBS, sizeof(*j->tbs));
	j->map = calloc(MAX_PCMAP, sizeof(*j->map));
	if (j->buf == MAP_FAILED || !j->tbs || !j->map) {
		if (j->buf != MAP_FAILED)
			munmap(j->buf, CODE_SIZE);
		free(j->tbs);
		free(j->map);
		free(j);
		return -ENOMEM;
	}
	emit_prologue(j);
	jit_flush(j);
	*jp = j;
	return 0;
}

void jit_destroy(struct jit *j)
{
	if (!j)
		return;
	munmap(j->buf, CODE_SIZE);
	free(j->tbs);
	free(j->map);
	free(j);
}

/* Start afresh for a run: drop translations, set the flavour to emit. */
void jit_reset(struct jit *j, enum flavour flavour, unsigned tlb_bits)
{
	jit_flush(j);
	j->flavour = flavour;
	j->tlb_bits = tlb_bits;
	j->blocks = 0;
	j->chains = 0;
}

/*
 * The block at guest pc of the current process, translated if needed.
 * Returns NULL with *fetch_fault set when pc cannot be fetched (not
 * mapped, or not a multiple of 8).
 */
struct tb *jit_find(struct machine *m, uint32_t pc, bool *fetch_fault)
{
	struct jit *j = m->jit;
	uint32_t pte, phys;
	struct tb *tb;

	pte = guest_walk(m->ram, m->current->cr3, pc);
	if ((pc & (G32_INSN_SIZE - 1)) || !(pte & PTE_P)) {
		*fetch_fault = true;
		return NULL;
	}
	phys = (pte & PTE_FRAME) | (pc & ~GPAGE_MASK);
	for (tb = j->hash[(phys >> 3) & ((1u << HASH_BITS) - 1)]; tb; tb = tb->hnext) {
		if (tb->phys == phys && tb->pc == pc)
			return tb;
	}
	if (j->used + MAX_BLOCK_CODE > CODE_SIZE || j->ntbs == MAX_TBS ||
	    j->nmap + MAX_BLOCK_INSNS > MAX_PCMAP)
		jit_flush(j);
	return translate(m, pc, phys);
}

/* Run translated code from tb until it leaves; returns the exit code. */
uint32_t jit_exec(struct jit *j, struct cpu_env *env, struct tb *tb)
{
	return j->enter(env, j->buf + tb->code_off);
}

/* Remember how translated code left (chainable exits only). */
void jit_set_last(struct jit *j, uint32_t exit_code)
{
	if ((exit_code & 7) == EXIT_CHAIN) {
		j->last = &j->tbs[exit_code >> 4];
		j->last_slot = (exit_code >> 3) & 1;
	} else {
		j->last = NULL;
	}
}

/*
 * Patch the last block's exit to jump straight to next, when both lie in
 * one guest page: then any process that runs the first maps the second
 * to the same frame (the QEMU rule), so the chain is valid everywhere.
 */
void jit_chain_from_last(struct jit *j, struct tb *next)
{
	struct tb *from = j->last;

	j->last = NULL;
	if (!from || ((from->pc ^ next->pc) & GPAGE_MASK))
		return;
	patch32(j->buf + from->slot_off[j->last_slot], j->buf + next->code_off);
	j->chains++;
}

/* Is host_pc inside translated code? Async-signal-safe. */
bool jit_owns(const struct jit *j, uintptr_t host_pc)
{
	return host_pc >= (uintptr_t)j->buf + j->base_used &&
	       host_pc < (uintptr_t)j->buf + j->used;
}

uintptr_t jit_host_addr(const struct jit *j, uint32_t off)
{
	return (uintptr_t)j->buf + off;
}

/*
 * The pcmap entry of host_pc: a direct access (btmmu) or the return address
 * of a slow-path helper call. NULL if host_pc is neither. Async-signal-safe
 * (a binary search over blocks, which sit in code order).
 */
const struct pcmap_entry *jit_pcmap_lookup(const struct jit *j, uintptr_t host_pc,
					   const struct tb **tbp)
{
	unsigned lo = 0, hi = j->ntbs, i;
	const struct tb *tb;
	uint32_t off;

	if (!jit_owns(j, host_pc))
		return NULL;
	off = (uint32_t)(host_pc - (uintptr_t)j->buf);
	while (hi - lo > 1) {
		unsigned mid = lo + (hi - lo) / 2;

		if (j->tbs[mid].code_off <= off)
			lo = mid;
		else
			hi = mid;
	}
	tb = &j->tbs[lo];
	if (off < tb->code_off || off >= tb->code_end)
		return NULL;
	for (i = tb->map_first; i < tb->map_first + tb->map_n; i++) {
		if (j->map[i].access_off == off || j->map[i].ret_off == off) {
			if (tbp)
				*tbp = tb;
			return &j->map[i];
		}
	}
	return NULL;
}

void jit_stats(const struct jit *j, uint64_t *blocks, uint64_t *chains, size_t *code_bytes)
{
	*blocks = j->blocks;
	*chains = j->chains;
	*code_bytes = j->used - j->base_used;
}
