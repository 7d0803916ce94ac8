/* SPDX-License-Identifier: MIT */
/*
 * The guest programs, written with the G32 builder macros (isa.h).
 *
 * Every process starts with r1 = pid, r2 = number of processes,
 * r3 = GUEST_DATA_VA (its demand-zero data area) and r4..r7 = the
 * workload's arguments. A system call overwrites r1.
 */
#include <stddef.h>

#include "demo.h"
#include "workloads.h"

#define LCG_MUL	1664525		/* Numerical Recipes' LCG */
#define LCG_ADD	1013904223

/*
 * rand: r4 = word mask (words - 1, a power of two minus 1), r5 = iterations.
 * Read-modify-write of a random word of the data area per iteration.
 */
static void prog_rand(struct gasm *A)
{
	LABEL(loop);

	MULI(R8, R1, 0x01234567);	/* per-process seed */
	XORI(R8, R8, 0x9e3779b9);
	MOV(R9, R5);
	BIND(loop);
	MULI(R8, R8, LCG_MUL);		/* x = x * a + c */
	ADDI(R8, R8, LCG_ADD);
	SHRI(R10, R8, 8);		/* word index from the high bits */
	AND(R10, R10, R4);
	SHLI(R10, R10, 2);
	ADD(R10, R10, R3);
	LDW(R11, R10, 0);		/* a[i] += x */
	ADD(R11, R11, R8);
	STW(R10, 0, R11);
	SUBI(R9, R9, 1);
	BNE(R9, R0, loop);

	MOV(R2, R8);
	SYS(G32_SYS_PRINT);
	MOVI(R2, 0);
	SYS(G32_SYS_EXIT);
}

/*
 * chase: r4 = nodes (64 bytes each), r5 = steps. Builds a linked list in a
 * random order (Fisher-Yates shuffle of an index array placed after the
 * nodes), then follows it for r5 steps, summing the payloads.
 */
static void prog_chase(struct gasm *A)
{
	LABEL(init);
	LABEL(shuffle);
	LABEL(link);
	LABEL(chase);

	SHLI(R10, R4, 6);		/* r10 = perm[], after the nodes */
	ADD(R10, R10, R3);

	MOVI(R8, 0);			/* perm[i] = i */
	BIND(init);
	SHLI(R11, R8, 2);
	ADD(R11, R11, R10);
	STW(R11, 0, R8);
	ADDI(R8, R8, 1);
	BNE(R8, R4, init);

	MULI(R9, R1, 0x2545f491);	/* seed */
	XORI(R9, R9, 0x6c8e9cf5);
	SUBI(R8, R4, 1);		/* for i = n-1 .. 1: swap perm[i], perm[rand % (i+1)] */
	BIND(shuffle);
	MULI(R9, R9, LCG_MUL);
	ADDI(R9, R9, LCG_ADD);
	ADDI(R12, R8, 1);
	MULHU(R12, R9, R12);		/* j = x * (i + 1) >> 32 */
	SHLI(R11, R8, 2);
	ADD(R11, R11, R10);
	SHLI(R12, R12, 2);
	ADD(R12, R12, R10);
	LDW(R13, R11, 0);
	LDW(R14, R12, 0);
	STW(R11, 0, R14);
	STW(R12, 0, R13);
	SUBI(R8, R8, 1);
	BNE(R8, R0, shuffle);

	LDW(R13, R10, 0);		/* r13 = &node[perm[0]], kept in r15 */
	SHLI(R13, R13, 6);
	ADD(R13, R13, R3);
	MOV(R15, R13);
	MOVI(R8, 1);			/* node[perm[k-1]] -> node[perm[k]] */
	BIND(link);
	SHLI(R11, R8, 2);
	ADD(R11, R11, R10);
	LDW(R14, R11, 0);
	SHLI(R14, R14, 6);
	ADD(R14, R14, R3);
	STW(R13, 0, R14);		/* next */
	STW(R13, 4, R8);		/* payload */
	MOV(R13, R14);
	ADDI(R8, R8, 1);
	BNE(R8, R4, link);
	STW(R13, 0, R15);		/* close the cycle */
	STW(R13, 4, R8);

	MOV(R13, R15);			/* follow it */
	MOVI(R12, 0);
	MOV(R8, R5);
	BIND(chase);
	LDW(R14, R13, 4);
	ADD(R12, R12, R14);
	LDW(R13, R13, 0);
	SUBI(R8, R8, 1);
	BNE(R8, R0, chase);

	MOV(R2, R12);
	SYS(G32_SYS_PRINT);
	MOVI(R2, 0);
	SYS(G32_SYS_EXIT);
}

/*
 * seq: r4 = words per buffer (a multiple of 4), r5 = passes. Fills src,
 * then per pass copies src to dst (adding the pass number) and sums dst;
 * loops unrolled four times as a compiler would. dst starts one page after
 * the end of src: buffers exactly 2^k apart would make src[i] and dst[i]
 * share a direct-mapped softmmu TLB entry and miss on every access.
 */
static void prog_seq(struct gasm *A)
{
	LABEL(fill);
	LABEL(pass);
	LABEL(copy);
	LABEL(sum);

	SHLI(R10, R4, 2);		/* r10 = end of src */
	ADD(R10, R10, R3);
	ADDI(R13, R10, 4096);		/* r13 = dst */
	SHLI(R14, R4, 2);		/* r14 = end of dst */
	ADD(R14, R14, R13);

	MOV(R8, R3);			/* src[i] = i * golden + pid */
	MOVI(R9, 0);
	BIND(fill);
	MULI(R11, R9, 0x9e3779b1);
	ADD(R11, R11, R1);
	STW(R8, 0, R11);
	ADDI(R9, R9, 1);
	ADDI(R8, R8, 4);
	BNE(R8, R10, fill);

	MOVI(R12, 0);
	MOV(R7, R5);
	BIND(pass);
	MOV(R8, R3);
	MOV(R9, R13);
	BIND(copy);
	LDW(R11, R8, 0);
	ADD(R11, R11, R7);
	STW(R9, 0, R11);
	LDW(R11, R8, 4);
	ADD(R11, R11, R7);
	STW(R9, 4, R11);
	LDW(R11, R8, 8);
	ADD(R11, R11, R7);
	STW(R9, 8, R11);
	LDW(R11, R8, 12);
	ADD(R11, R11, R7);
	STW(R9, 12, R11);
	ADDI(R8, R8, 16);
	ADDI(R9, R9, 16);
	BNE(R8, R10, copy);

	MOV(R9, R13);
	BIND(sum);
	LDW(R11, R9, 0);
	ADD(R12, R12, R11);
	LDW(R11, R9, 4);
	ADD(R12, R12, R11);
	LDW(R11, R9, 8);
	ADD(R12, R12, R11);
	LDW(R11, R9, 12);
	ADD(R12, R12, R11);
	ADDI(R9, R9, 16);
	BNE(R9, R14, sum);
	SUBI(R7, R7, 1);
	BNE(R7, R0, pass);

	MOV(R2, R12);
	SYS(G32_SYS_PRINT);
	MOVI(R2, 0);
	SYS(G32_SYS_EXIT);
}

/*
 * switch: r4 = rounds, r5 = pages. Each round updates one word in each of
 * r5 pages, then yields: many processes, little work between switches.
 */
static void prog_switch(struct gasm *A)
{
	LABEL(round);
	LABEL(page);

	MOV(R15, R1);			/* pid (system calls clobber r1) */
	MOV(R8, R4);
	MOVI(R12, 0);
	BIND(round);
	MOV(R9, R3);
	MOVI(R10, 0);
	BIND(page);
	SHLI(R11, R8, 2);		/* a word that moves with the round */
	ANDI(R11, R11, 0xffc);
	ADD(R11, R11, R9);
	LDW(R13, R11, 0);
	ADD(R13, R13, R8);
	ADD(R13, R13, R15);
	STW(R11, 0, R13);
	ADD(R12, R12, R13);
	ADDI(R9, R9, 4096);
	ADDI(R10, R10, 1);
	BNE(R10, R5, page);
	SYS(G32_SYS_YIELD);
	SUBI(R8, R8, 1);
	BNE(R8, R0, round);

	MOV(R2, R12);
	SYS(G32_SYS_PRINT);
	MOVI(R2, 0);
	SYS(G32_SYS_EXIT);
}

/*
 * faults: r4 = size of the data area. One role per pid, each checking a
 * corner of fault handling; the results (outputs, kills, memory) must be
 * identical under both flavours.
 */
static void prog_faults(struct gasm *A)
{
	LABEL(role1);
	LABEL(role2);
	LABEL(role3);
	LABEL(role4);
	LABEL(role5);
	LABEL(role6);
	LABEL(role7);
	LABEL(loop6);
	LABEL(sub7);
	LABEL(loop7);
	LABEL(exit7);
	LABEL(bad7);
	LABEL(fin7);
	unsigned i;
	const unsigned roles[] = { role1, role2, role3, role4, role5, role6, role7 };

	MOV(R15, R1);			/* pid */
	MOV(R14, R3);			/* data area */
	for (i = 0; i < 7; i++) {
		MOVI(R9, i + 1);
		BEQ(R15, R9, roles[i]);
	}

	/* pid 0: read the program text (fine), then write it (killed). */
	MOVI(R8, GUEST_CODE_VA);
	LDW(R2, R8, 0);
	SYS(G32_SYS_PRINT);
	LDB(R2, R8, 5);
	SYS(G32_SYS_PRINT);
	MOVI(R9, 0x1234);
	STW(R8, 16, R9);
	MOVI(R2, 99);
	SYS(G32_SYS_EXIT);

	/* pid 1: a load outside every area (killed). */
	BIND(role1);
	MOVI(R2, 1);
	SYS(G32_SYS_PRINT);
	MOVI(R8, 0x80000000);
	LDW(R2, R8, 0);
	SYS(G32_SYS_PRINT);
	MOVI(R2, 99);
	SYS(G32_SYS_EXIT);

	/* pid 2: page-crossing and sub-word accesses, then unmap and retouch. */
	BIND(role2);
	ADDI(R8, R14, 0xffe);
	MOVI(R9, 0x11223344);
	STW(R8, 0, R9);			/* faults on page 0, then on page 1 */
	LDW(R2, R8, 0);
	SYS(G32_SYS_PRINT);
	LDH(R2, R8, 1);			/* bytes 0xfff and 0x1000 */
	SYS(G32_SYS_PRINT);
	LDB(R2, R8, 2);
	SYS(G32_SYS_PRINT);
	MOVI(R9, 0xa5a6);
	STH(R8, 1, R9);
	MOVI(R9, 0xee);
	STB(R8, 3, R9);
	LDW(R2, R8, 0);
	SYS(G32_SYS_PRINT);
	MOV(R2, R14);			/* drop both pages */
	MOVI(R3, 0x2000);
	SYS(G32_SYS_UNMAP);
	MOV(R2, R1);
	SYS(G32_SYS_PRINT);
	LDW(R2, R8, 0);			/* fresh zero pages, not stale data */
	SYS(G32_SYS_PRINT);
	MOVI(R9, 0x5a5a5a5a);
	STW(R8, 0, R9);
	LDH(R2, R8, 2);
	SYS(G32_SYS_PRINT);
	MOVI(R2, 2);
	SYS(G32_SYS_EXIT);

	/* pid 3: a store that crosses the end of the data area (killed, nothing written). */
	BIND(role3);
	ADD(R8, R14, R4);
	MOVI(R9, 0x55);
	STB(R8, -1, R9);
	LDB(R2, R8, -1);
	SYS(G32_SYS_PRINT);
	MOVI(R9, 0x77777777);
	STW(R8, -2, R9);
	MOVI(R2, 99);
	SYS(G32_SYS_EXIT);

	/* pid 4: a jump to an unmapped address (killed on fetch). */
	BIND(role4);
	MOVI(R8, 0x20000000);
	JR(R8, 0);

	/* pid 5: an illegal instruction (killed). */
	BIND(role5);
	MOVI(R2, 5);
	SYS(G32_SYS_PRINT);
	ILLEGAL();

	/* pid 6: touch, yield, unmap, retouch, many times; r0 stays 0. */
	BIND(role6);
	MOVI(R10, 50);
	MOVI(R12, 0);
	BIND(loop6);
	ADDI(R8, R14, 0x3000);
	STW(R8, 0, R10);
	LDW(R11, R8, 0);
	ADD(R12, R12, R11);
	ADDI(R9, R14, 0x4000);
	LDW(R11, R9, 8);		/* zero after every unmap */
	ADD(R12, R12, R11);
	STW(R9, 8, R12);
	SYS(G32_SYS_YIELD);
	MOV(R2, R9);
	MOVI(R3, 0x1000);
	SYS(G32_SYS_UNMAP);
	ADD(R12, R12, R1);
	SUBI(R10, R10, 1);
	BNE(R10, R0, loop6);
	MOVI(R0, 5);
	ADD(R2, R0, R0);
	SYS(G32_SYS_PRINT);
	MOV(R2, R12);
	SYS(G32_SYS_PRINT);
	SYS(G32_SYS_GETPID);
	MOV(R2, R1);
	SYS(G32_SYS_PRINT);
	MOVI(R2, 6);
	SYS(G32_SYS_EXIT);

	/* pid 7: arithmetic, a call and return, signed and unsigned branches. */
	BIND(role7);
	MOVI(R8, -7);
	SARI(R2, R8, 1);
	SYS(G32_SYS_PRINT);
	SHRI(R2, R8, 28);
	SYS(G32_SYS_PRINT);
	MOVI(R9, 3);
	SLT(R2, R8, R9);
	SYS(G32_SYS_PRINT);
	SLTU(R2, R8, R9);
	SYS(G32_SYS_PRINT);
	MOVI(R9, 0x87654321);
	MULHU(R2, R8, R9);
	SYS(G32_SYS_PRINT);
	MUL(R2, R8, R9);
	SYS(G32_SYS_PRINT);
	MULHUI(R2, R9, 0x10000);
	SYS(G32_SYS_PRINT);
	SLTI(R2, R8, -8);
	SYS(G32_SYS_PRINT);
	SLTIU(R2, R8, -8);
	SYS(G32_SYS_PRINT);
	SHL(R2, R9, R8);		/* count -7 & 31 = 25 */
	SYS(G32_SYS_PRINT);
	OR(R2, R8, R9);
	XOR(R2, R2, R9);
	SUB(R2, R2, R8);
	ANDI(R2, R2, 0xff);
	ORI(R2, R2, 0x100);
	SYS(G32_SYS_PRINT);
	JAL(R13, sub7);
	SYS(G32_SYS_PRINT);
	MOVI(R8, -3);			/* count -3 .. 3 with BLT; BGEU/BLTU/BGE exits */
	MOVI(R9, 3);
	MOVI(R12, 0);
	BIND(loop7);
	ADD(R12, R12, R8);
	ADDI(R12, R12, 10);
	ADDI(R8, R8, 1);
	BLT(R8, R9, loop7);
	MOV(R2, R12);
	SYS(G32_SYS_PRINT);
	MOVI(R2, 7);
	BGEU(R8, R9, exit7);		/* 3 >= 3: taken */
	MOVI(R2, 70);
	BIND(exit7);
	BLTU(R8, R9, bad7);		/* 3 < 3: not taken */
	BGE(R8, R9, fin7);		/* taken */
	BIND(bad7);
	MOVI(R2, 71);
	BIND(fin7);
	SYS(G32_SYS_EXIT);

	BIND(sub7);			/* a leaf function: r2 = 42, return to r13 */
	MOVI(R2, 42);
	JR(R13, 0);
}

#define MIB (UINT32_C(1) << 20)

static const struct workload full[] = {
	{ "rand", "LCG read-modify-write, 4 procs x 16 MiB", 4, 16 * MIB,
	  { 16 * MIB / 4 - 1, 8000000 }, 1, prog_rand },
	{ "chase", "pointer chasing, 2 procs x 16 MiB shuffled list", 2, 17 * MIB,
	  { 16 * MIB / 64, 4000000 }, 1, prog_chase },
	{ "seq", "copy + sum 8 MiB -> 8 MiB x 4 passes, 2 procs", 2, 16 * MIB + 4096,
	  { 8 * MIB / 4, 4 }, 1, prog_seq },
	{ "switch", "32 procs x 4 pages, yield after every round", 32, 16 * 1024,
	  { 20000, 4 }, 0, prog_switch },
	{ "faults", "fault corner cases (8 roles)", 8, 64 * 1024,
	  { 64 * 1024 }, -1, prog_faults },
};

static const struct workload quick[] = {
	{ "rand", "LCG read-modify-write, 2 procs x 1 MiB", 2, MIB,
	  { MIB / 4 - 1, 100000 }, 1, prog_rand },
	{ "chase", "pointer chasing, 2 procs x 1 MiB shuffled list", 2, MIB + 64 * 1024,
	  { MIB / 64, 100000 }, 1, prog_chase },
	{ "seq", "copy + sum 256 KiB -> 256 KiB x 2 passes, 2 procs", 2, MIB / 2 + 4096,
	  { MIB / 4 / 4, 2 }, 1, prog_seq },
	{ "switch", "8 procs x 4 pages, yield after every round", 8, 16 * 1024,
	  { 500, 4 }, 0, prog_switch },
	{ "faults", "fault corner cases (8 roles)", 8, 64 * 1024,
	  { 64 * 1024 }, -1, prog_faults },
};

unsigned workloads_get(bool is_quick, const struct workload **list)
{
	*list = is_quick ? quick : full;
	return is_quick ? sizeof(quick) / sizeof(quick[0]) : sizeof(full) / sizeof(full[0]);
}
