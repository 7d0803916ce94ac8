/* SPDX-License-Identifier: MIT */
/*
 * The dispatcher's questions to the shadow layer: what the faulting address
 * holds (BTMMU_FAULT_* flags) and, after the callback, whether the access
 * would succeed now. Each takes ctx->lock itself and never waits for it
 * when this thread holds it already. Async-signal-safe.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "shadow.h"

/* Would `access` at addr in r succeed now? Under ctx->lock. */
static bool accessible(struct btmmu *ctx, struct btmmu__region *r, uintptr_t addr,
		       unsigned access)
{
	uint64_t off = addr - r->start, us = UINT64_C(1) << r->space->unit_shift;
	uint64_t hp = UINT64_C(1) << ctx->host_page_shift;
	struct btmmu__entry *e;
	uint32_t prot;

	/* A region being torn down keeps its entries until the host call is done. */
	if (access == BTMMU_ACCESS_EXEC || off >= r->len || r->state == BTMMU__REGION_TEARING)
		return false;
	e = btmmu__installed_at(ctx, r, off & ~(us - 1));
	if (!e)
		return false;
	prot = btmmu__entry_host_prot(ctx, e, (off & (us - 1)) & ~(hp - 1));
	return access == BTMMU_ACCESS_WRITE ? (prot & 0x2) != 0 : (prot & 0x1) != 0;
}

int btmmu__shadow_accessible(struct btmmu *ctx, struct btmmu__region *r, uintptr_t addr,
			     unsigned access)
{
	bool ok;

	if (btmmu__lock_mine(&ctx->lock))
		return -EDEADLK;
	ok = accessible(ctx, r, addr, access);
	btmmu__unlock(&ctx->lock);
	return ok;
}

unsigned btmmu__shadow_fault_flags(struct btmmu *ctx, struct btmmu__region *r, uint64_t off,
				   unsigned access)
{
	struct btmmu_space *sp = r->space;
	uint64_t unit = UINT64_C(1) << sp->unit_shift;
	struct btmmu__entry *e;
	uint64_t granule = UINT64_C(1) << BTMMU_GRANULE_SHIFT;
	unsigned flags = 0;
	uint32_t ceil;

	if (btmmu__lock_mine(&ctx->lock)) {
		/* This thread holds the lock, below us on its stack: no writer runs. */
		flags = BTMMU_FAULT_NESTED;
		if (r->state != BTMMU__REGION_CURRENT)
			flags |= BTMMU_FAULT_STALE;
		return off >= r->len ? flags | BTMMU_FAULT_GUARD : flags;
	}
	if (r->state != BTMMU__REGION_CURRENT)
		flags |= BTMMU_FAULT_STALE;
	if (off >= r->len) {
		btmmu__unlock(&ctx->lock);
		return flags | BTMMU_FAULT_GUARD;
	}
	e = btmmu__entry_find(ctx, r, off & ~(unit - 1));
	if (e && (e->flags & BTMMU__E_INSTALLED)) {
		flags |= BTMMU_FAULT_MAPPED;
		/* The ceiling of the faulting KiB alone (btmmu_fault_fn(3)). */
		ceil = btmmu__ram_ceiling(e->ram, (e->gpa + (off & (unit - 1))) & ~(granule - 1),
					  granule);
		if (!(ceil & access) && !(access == BTMMU_ACCESS_READ && (ceil & BTMMU_PROT_EXEC)))
			flags |= BTMMU_FAULT_PROTECTED;
	}
	btmmu__unlock(&ctx->lock);
	return flags;
}
