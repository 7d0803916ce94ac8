/* SPDX-License-Identifier: MIT */
/*
 * The G32 assembler: appends 8-byte instructions to a growing buffer and
 * resolves branch labels at the end. See isa.h for the builder macros.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "isa.h"

/* Grow *buf (n elements of size sz, capacity *cap) to hold one more. */
static int grow(void **buf, unsigned *cap, size_t n, size_t sz)
{
	unsigned ncap;
	void *p;

	if (n < *cap)
		return 0;
	ncap = *cap ? *cap * 2 : 64;
	p = realloc(*buf, (size_t)ncap * sz);
	if (!p)
		return -ENOMEM;
	*buf = p;
	*cap = ncap;
	return 0;
}

/* Start an empty program whose first instruction lives at guest VA org. */
void gasm_init(struct gasm *a, uint32_t org)
{
	memset(a, 0, sizeof(*a));
	a->org = org;
}

/* Release the program's buffers. */
void gasm_free(struct gasm *a)
{
	free(a->code);
	free(a->labels);
	free(a->fix);
	memset(a, 0, sizeof(*a));
}

/* Append one instruction. Register numbers are taken mod 16. */
void gasm_insn(struct gasm *a, enum g32_op op, unsigned rd, unsigned rs, unsigned rt,
	       int32_t imm)
{
	uint32_t u = (uint32_t)imm;
	uint8_t *p;

	if (a->len + G32_INSN_SIZE > a->cap) {
		size_t ncap = a->cap ? a->cap * 2 : 4096;

		p = realloc(a->code, ncap);
		if (!p) {
			a->error = -ENOMEM;
			return;
		}
		a->code = p;
		a->cap = ncap;
	}
	p = a->code + a->len;
	p[0] = (uint8_t)op;
	p[1] = (uint8_t)((rd & 0xf) | (rs & 0xf) << 4);
	p[2] = (uint8_t)(rt & 0xf);
	p[3] = 0;
	p[4] = (uint8_t)u;
	p[5] = (uint8_t)(u >> 8);
	p[6] = (uint8_t)(u >> 16);
	p[7] = (uint8_t)(u >> 24);
	a->len += G32_INSN_SIZE;
}

/* A new, unbound label. */
unsigned gasm_new_label(struct gasm *a)
{
	unsigned *cap = &a->cap_labels;

	if (grow((void **)&a->labels, cap, a->nlabels, sizeof(*a->labels))) {
		a->error = -ENOMEM;
		return 0;
	}
	a->labels[a->nlabels] = UINT32_MAX;
	return a->nlabels++;
}

/* Bind label to the next instruction. */
void gasm_bind(struct gasm *a, unsigned label)
{
	if (label >= a->nlabels || a->labels[label] != UINT32_MAX) {
		a->error = -EINVAL;
		return;
	}
	a->labels[label] = (uint32_t)a->len;
}

/*
 * Append a pc-relative control transfer (Bcc, JMP, JAL) to label; its
 * offset is filled in by gasm_finish().
 */
void gasm_branch(struct gasm *a, enum g32_op op, unsigned rd, unsigned rs, unsigned rt,
		 unsigned label)
{
	if (grow((void **)&a->fix, &a->cap_fix, a->nfix, sizeof(*a->fix))) {
		a->error = -ENOMEM;
		return;
	}
	a->fix[a->nfix].at = a->len;
	a->fix[a->nfix].label = label;
	a->nfix++;
	gasm_insn(a, op, rd, rs, rt, 0);
}

/*
 * Resolve the branches. Returns 0, or the first error of the build
 * (-ENOMEM, -EINVAL for a label bound twice or never).
 */
int gasm_finish(struct gasm *a)
{
	unsigned i;

	if (a->error)
		return a->error;
	for (i = 0; i < a->nfix; i++) {
		struct gasm_fixup *f = &a->fix[i];
		uint32_t rel;

		if (f->label >= a->nlabels || a->labels[f->label] == UINT32_MAX)
			return -EINVAL;
		rel = a->labels[f->label] - (uint32_t)f->at;
		a->code[f->at + 4] = (uint8_t)rel;
		a->code[f->at + 5] = (uint8_t)(rel >> 8);
		a->code[f->at + 6] = (uint8_t)(rel >> 16);
		a->code[f->at + 7] = (uint8_t)(rel >> 24);
	}
	return 0;
}
