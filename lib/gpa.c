/* SPDX-License-Identifier: MIT */
/*
 * The guest-physical map: which guest RAM range holds a guest-physical
 * range, and the rights btmmu_protect() leaves every alias of it (per 1 KiB
 * granule, ram->deny). Lookups only: the RAM objects themselves are made
 * and destroyed in ram.c. Async-signal-safe.
 */
#include "internal.h"

/* Under ctx->lock (or admin with no mapping possible). Async-signal-safe. */
struct btmmu_ram *btmmu__ram_find(struct btmmu *ctx, uint64_t gpa, uint64_t len)
{
	struct btmmu_ram *ram;

	cds_list_for_each_entry(ram, &ctx->rams, node) {
		if (gpa >= ram->gpa && gpa - ram->gpa < ram->len &&
		    len <= ram->len - (gpa - ram->gpa))
			return ram;
	}
	return NULL;
}

/* Rights allowed on all of [gpa, gpa+len) (inside ram). Async-signal-safe. */
uint32_t btmmu__ram_ceiling(const struct btmmu_ram *ram, uint64_t gpa, uint64_t len)
{
	uint64_t g, end;
	uint32_t denied = 0;

	if (!ram->ndenied)
		return BTMMU_PROT_RWX;
	g = (gpa - ram->gpa) >> BTMMU_GRANULE_SHIFT;
	end = (gpa - ram->gpa + len + (UINT64_C(1) << BTMMU_GRANULE_SHIFT) - 1) >>
	      BTMMU_GRANULE_SHIFT;
	for (; g < end; g++)
		denied |= ram->deny[g];
	return BTMMU_PROT_RWX & ~denied;
}
