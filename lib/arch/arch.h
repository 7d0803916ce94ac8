/* SPDX-License-Identifier: MIT */
/*
 * What the fault path needs from the host architecture: the faulting PC,
 * the kind of access, and a way to resume elsewhere. One inline set per
 * supported host; configure refuses the others.
 */
#ifndef BTMMU_ARCH_H
#define BTMMU_ARCH_H

#include <stdint.h>
#include <ucontext.h>

#include "btmmu/btmmu.h"

/* Or'ed into btmmu__arch_access(): the kind was not decoded, only guessed. */
#define BTMMU__ACCESS_GUESSED 0x100u

#if defined(__x86_64__)

static inline uintptr_t btmmu__arch_pc(const ucontext_t *uc)
{
	return (uintptr_t)uc->uc_mcontext.gregs[REG_RIP];
}

static inline void btmmu__arch_set_pc(ucontext_t *uc, uintptr_t pc)
{
	uc->uc_mcontext.gregs[REG_RIP] = (greg_t)pc;
}

static inline uintptr_t btmmu__arch_sp(const ucontext_t *uc)
{
	return (uintptr_t)uc->uc_mcontext.gregs[REG_RSP];
}

/* The page-fault error code: bit 1 write, bit 4 instruction fetch. */
static inline unsigned btmmu__arch_access(const ucontext_t *uc)
{
	uint64_t err = (uint64_t)uc->uc_mcontext.gregs[REG_ERR];

	if (uc->uc_mcontext.gregs[REG_TRAPNO] != 14)
		return BTMMU_ACCESS_READ | BTMMU__ACCESS_GUESSED;
	if (err & 0x10)
		return BTMMU_ACCESS_EXEC;
	return (err & 0x2) ? BTMMU_ACCESS_WRITE : BTMMU_ACCESS_READ;
}

#elif defined(__aarch64__)

#include <asm/sigcontext.h>

static inline uintptr_t btmmu__arch_pc(const ucontext_t *uc)
{
	return (uintptr_t)uc->uc_mcontext.pc;
}

static inline void btmmu__arch_set_pc(ucontext_t *uc, uintptr_t pc)
{
	uc->uc_mcontext.pc = pc;
}

static inline uintptr_t btmmu__arch_sp(const ucontext_t *uc)
{
	return (uintptr_t)uc->uc_mcontext.sp;
}

/* ESR_EL1 from the signal frame: EC 0x20/0x21 instruction abort, WnR bit 6. */
static inline unsigned btmmu__arch_access(const ucontext_t *uc)
{
	const unsigned char *p = (const unsigned char *)uc->uc_mcontext.__reserved;
	const unsigned char *end = p + sizeof(uc->uc_mcontext.__reserved);

	while (p + sizeof(struct _aarch64_ctx) <= end) {
		const struct _aarch64_ctx *h = (const struct _aarch64_ctx *)p;

		if (h->magic == 0 || h->size == 0)
			break;
		if (h->magic == ESR_MAGIC) {
			uint64_t esr = ((const struct esr_context *)p)->esr;
			unsigned ec = (unsigned)(esr >> 26) & 0x3f;

			if (ec == 0x20 || ec == 0x21)
				return BTMMU_ACCESS_EXEC;
			return (esr & (1u << 6)) ? BTMMU_ACCESS_WRITE : BTMMU_ACCESS_READ;
		}
		p += h->size;
	}
	return BTMMU_ACCESS_READ | BTMMU__ACCESS_GUESSED;
}

#else
#error "libbtmmu supports x86-64 and aarch64 hosts"
#endif

#endif /* BTMMU_ARCH_H */
