/* SPDX-License-Identifier: MIT */
/*
 * G32, the demo's made-up 32-bit guest instruction set, and a tiny
 * assembler to write guest programs in C.
 *
 * Every instruction is 8 bytes, little-endian:
 *
 *   byte 0     opcode (enum g32_op)
 *   byte 1     rd in bits 0-3, rs in bits 4-7
 *   byte 2     rt in bits 0-3
 *   byte 3     0
 *   bytes 4-7  imm, 32 bits (signed where it matters)
 *
 * Sixteen 32-bit registers r0..r15; r0 reads as 0 and ignores writes.
 * Instructions sit at addresses that are multiples of 8, so one never
 * straddles a guest page. Memory accesses may be unaligned (a page-crossing
 * access faults on the first page that is missing). examples/README.md
 * describes every instruction.
 */
#ifndef DEMO_ISA_H
#define DEMO_ISA_H

#include <stddef.h>
#include <stdint.h>

#define G32_NREGS	16
#define G32_INSN_SIZE	8

enum g32_op {
	G32_ILLEGAL = 0x00,	/* an all-zero word: kills the process */

	/* rd = rs op rt */
	G32_ADD = 0x01,
	G32_SUB,
	G32_AND,
	G32_OR,
	G32_XOR,
	G32_SHL,		/* shift counts are taken mod 32 */
	G32_SHR,
	G32_SAR,
	G32_MUL,		/* low 32 bits of the product */
	G32_MULHU,		/* high 32 bits of the unsigned product */
	G32_SLT,		/* rd = (int32)rs < (int32)rt */
	G32_SLTU,		/* rd = rs < rt */

	/* rd = rs op imm: the same operations, opcode + 0x10 */
	G32_ADDI = 0x11,
	G32_SUBI,
	G32_ANDI,
	G32_ORI,
	G32_XORI,
	G32_SHLI,
	G32_SHRI,
	G32_SARI,
	G32_MULI,
	G32_MULHUI,
	G32_SLTI,
	G32_SLTIU,

	G32_MOVI = 0x20,	/* rd = imm */

	G32_LDB = 0x30,		/* rd = zero-extended mem8[rs + imm] */
	G32_LDH,		/* rd = zero-extended mem16[rs + imm] */
	G32_LDW,		/* rd = mem32[rs + imm] */
	G32_STB = 0x38,		/* mem8[rs + imm] = rt */
	G32_STH,		/* mem16[rs + imm] = rt */
	G32_STW,		/* mem32[rs + imm] = rt */

	/* if (rs cond rt) pc = pc + imm, else pc + 8 */
	G32_BEQ = 0x40,
	G32_BNE,
	G32_BLT,		/* signed */
	G32_BGE,		/* signed */
	G32_BLTU,
	G32_BGEU,

	G32_JMP = 0x48,		/* pc = pc + imm */
	G32_JAL,		/* rd = pc + 8; pc = pc + imm */
	G32_JR,			/* pc = rs + imm (must be a multiple of 8) */

	G32_SYSCALL = 0x50,	/* r1: number, r2..r4: arguments; r1: result */
};

/* System calls of the guest kernel (guest.c). */
enum g32_sys {
	G32_SYS_EXIT = 0,	/* r2: exit code */
	G32_SYS_YIELD = 1,	/* give the CPU to the next process */
	G32_SYS_PRINT = 2,	/* r2: a value for the process's output log */
	G32_SYS_UNMAP = 3,	/* r2: address, r3: length: drop those pages */
	G32_SYS_GETPID = 4,	/* r1 = pid */
};

/* A decoded instruction. */
struct g32_insn {
	uint8_t op, rd, rs, rt;
	int32_t imm;
};

/* Decode the 8 bytes at p. */
static inline void g32_decode(const uint8_t *p, struct g32_insn *in)
{
	in->op = p[0];
	in->rd = p[1] & 0xf;
	in->rs = p[1] >> 4;
	in->rt = p[2] & 0xf;
	in->imm = (int32_t)((uint32_t)p[4] | (uint32_t)p[5] << 8 |
			    (uint32_t)p[6] << 16 | (uint32_t)p[7] << 24);
}

/* ------------------------------------------------------------------ */
/* Assembler (asm.c)                                                   */
/* ------------------------------------------------------------------ */

struct gasm_fixup {
	size_t at;		/* offset of the branch instruction */
	unsigned label;
};

/*
 * A program being assembled at guest address org. Labels are small
 * integers; a branch to a label not bound yet is fixed up by gasm_finish().
 * Allocation failures are remembered in error and reported by
 * gasm_finish(), so builder code needs no error checks.
 */
struct gasm {
	uint8_t *code;
	size_t len, cap;
	uint32_t org;
	uint32_t *labels;	/* offset of each label, UINT32_MAX: unbound */
	unsigned nlabels, cap_labels;
	struct gasm_fixup *fix;
	unsigned nfix, cap_fix;
	int error;
};

void gasm_init(struct gasm *a, uint32_t org);
void gasm_free(struct gasm *a);
void gasm_insn(struct gasm *a, enum g32_op op, unsigned rd, unsigned rs, unsigned rt,
	       int32_t imm);
void gasm_branch(struct gasm *a, enum g32_op op, unsigned rd, unsigned rs, unsigned rt,
		 unsigned label);
unsigned gasm_new_label(struct gasm *a);
void gasm_bind(struct gasm *a, unsigned label);
int gasm_finish(struct gasm *a);

/*
 * Builder macros, for program text that reads like assembly. They expect
 * `struct gasm *A` in scope:
 *
 *	LABEL(loop);
 *	BIND(loop);
 *	ADDI(R4, R4, -1);
 *	BNE(R4, R0, loop);
 */
enum { R0, R1, R2, R3, R4, R5, R6, R7, R8, R9, R10, R11, R12, R13, R14, R15 };

#define G32_RR(op, d, s, t)	gasm_insn(A, op, d, s, t, 0)
#define G32_RI(op, d, s, i)	gasm_insn(A, op, d, s, 0, (int32_t)(i))

#define ADD(d, s, t)		G32_RR(G32_ADD, d, s, t)
#define SUB(d, s, t)		G32_RR(G32_SUB, d, s, t)
#define AND(d, s, t)		G32_RR(G32_AND, d, s, t)
#define OR(d, s, t)		G32_RR(G32_OR, d, s, t)
#define XOR(d, s, t)		G32_RR(G32_XOR, d, s, t)
#define SHL(d, s, t)		G32_RR(G32_SHL, d, s, t)
#define SHR(d, s, t)		G32_RR(G32_SHR, d, s, t)
#define SAR(d, s, t)		G32_RR(G32_SAR, d, s, t)
#define MUL(d, s, t)		G32_RR(G32_MUL, d, s, t)
#define MULHU(d, s, t)		G32_RR(G32_MULHU, d, s, t)
#define SLT(d, s, t)		G32_RR(G32_SLT, d, s, t)
#define SLTU(d, s, t)		G32_RR(G32_SLTU, d, s, t)
#define ADDI(d, s, i)		G32_RI(G32_ADDI, d, s, i)
#define SUBI(d, s, i)		G32_RI(G32_SUBI, d, s, i)
#define ANDI(d, s, i)		G32_RI(G32_ANDI, d, s, i)
#define ORI(d, s, i)		G32_RI(G32_ORI, d, s, i)
#define XORI(d, s, i)		G32_RI(G32_XORI, d, s, i)
#define SHLI(d, s, i)		G32_RI(G32_SHLI, d, s, i)
#define SHRI(d, s, i)		G32_RI(G32_SHRI, d, s, i)
#define SARI(d, s, i)		G32_RI(G32_SARI, d, s, i)
#define MULI(d, s, i)		G32_RI(G32_MULI, d, s, i)
#define MULHUI(d, s, i)		G32_RI(G32_MULHUI, d, s, i)
#define SLTI(d, s, i)		G32_RI(G32_SLTI, d, s, i)
#define SLTIU(d, s, i)		G32_RI(G32_SLTIU, d, s, i)
#define MOVI(d, i)		G32_RI(G32_MOVI, d, 0, i)
#define MOV(d, s)		G32_RI(G32_ADDI, d, s, 0)

/* Loads: d = mem[s + off]. Stores: mem[s + off] = t. */
#define LDB(d, s, off)		gasm_insn(A, G32_LDB, d, s, 0, off)
#define LDH(d, s, off)		gasm_insn(A, G32_LDH, d, s, 0, off)
#define LDW(d, s, off)		gasm_insn(A, G32_LDW, d, s, 0, off)
#define STB(s, off, t)		gasm_insn(A, G32_STB, 0, s, t, off)
#define STH(s, off, t)		gasm_insn(A, G32_STH, 0, s, t, off)
#define STW(s, off, t)		gasm_insn(A, G32_STW, 0, s, t, off)

#define BEQ(s, t, l)		gasm_branch(A, G32_BEQ, 0, s, t, l)
#define BNE(s, t, l)		gasm_branch(A, G32_BNE, 0, s, t, l)
#define BLT(s, t, l)		gasm_branch(A, G32_BLT, 0, s, t, l)
#define BGE(s, t, l)		gasm_branch(A, G32_BGE, 0, s, t, l)
#define BLTU(s, t, l)		gasm_branch(A, G32_BLTU, 0, s, t, l)
#define BGEU(s, t, l)		gasm_branch(A, G32_BGEU, 0, s, t, l)
#define JMP(l)			gasm_branch(A, G32_JMP, 0, 0, 0, l)
#define JAL(d, l)		gasm_branch(A, G32_JAL, d, 0, 0, l)
#define JR(s, off)		gasm_insn(A, G32_JR, 0, s, 0, off)
#define SYSCALL()		gasm_insn(A, G32_SYSCALL, 0, 0, 0, 0)
#define ILLEGAL()		gasm_insn(A, G32_ILLEGAL, 0, 0, 0, 0)

/* System call with the number in r1 (arguments already in r2..r4). */
#define SYS(n)			do { MOVI(R1, n); SYSCALL(); } while (0)

#define LABEL(name)		unsigned name = gasm_new_label(A)
#define BIND(l)			gasm_bind(A, l)

#endif /* DEMO_ISA_H */
