/* SPDX-License-Identifier: MIT */
/*
 * Capacity: make room in the entry pool and the host mapping budget by
 * tearing down retired regions, then evicting by clock with a second
 * chance. Under ctx->lock; async-signal-safe.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "shadow.h"

/* Evict up to 1/64 of the capacity beyond the need, at most this many. */
#define EVICT_BATCH_MAX 256u

/* Drop an entry entirely, host mapping included. */
static void entry_evict(struct btmmu *ctx, struct btmmu__entry *e)
{
	if (e->flags & BTMMU__E_INSTALLED) {
		btmmu__mark_uninstalled(ctx, e);
		if (!btmmu__host_clear(ctx, e->region, e->off, unit_size(e)))
			return; /* the region went, e with it */
	}
	btmmu__entry_unlink(ctx, e);
}

static bool over_budget(const struct btmmu *ctx, uint64_t need_maps)
{
	return (ctx->ops->caps & BTMMU_BACKEND_COUNTS_MAPPINGS) &&
	       ctx->mappings + need_maps > ctx->budget;
}

/*
 * Make room for need_entries free entries and need_maps more host mappings:
 * tear down retired regions first, then evict by clock (second chance for
 * recently installed entries), never touching pinned entries or a region
 * being torn down. Evicts a batch beyond the need so the cost amortises.
 * Returns false if the room could not be made; the caller then installs
 * nothing and the access takes the slow path.
 */
bool btmmu__make_room(struct btmmu *ctx, uint32_t need_entries, uint64_t need_maps)
{
	uint64_t cap = BTMMU_MIN((uint64_t)ctx->npool - 1, ctx->budget);
	uint32_t batch = (uint32_t)BTMMU_MAX(UINT64_C(1), BTMMU_MIN(cap / 64, EVICT_BATCH_MAX));
	uint64_t steps = 0, limit = 2 * (uint64_t)ctx->npool + 2;

	if (ctx->nfree >= need_entries && !over_budget(ctx, need_maps))
		return true;
	while (!cds_list_empty(&ctx->retired) &&
	       (ctx->nfree < need_entries || over_budget(ctx, need_maps))) {
		btmmu__reclaim_locked(ctx);
		btmmu__stat_add(&ctx->st.sync_reclaims, 1);
	}
	while ((ctx->nfree < need_entries + batch || over_budget(ctx, need_maps + batch)) &&
	       steps++ < limit) {
		struct btmmu__entry *e = &ctx->pool[ctx->clock];

		ctx->clock = ctx->clock + 1 < ctx->npool ? ctx->clock + 1 : 1;
		if (e->flags & (BTMMU__E_FREE | BTMMU__E_PINNED))
			continue;
		if (e->region->state == BTMMU__REGION_TEARING)
			continue;
		if (e->flags & BTMMU__E_REF) {
			e->flags &= (uint8_t)~BTMMU__E_REF;
			continue;
		}
		entry_evict(ctx, e);
		btmmu__stat_add(&ctx->st.evictions, 1);
	}
	return ctx->nfree >= need_entries && !over_budget(ctx, need_maps);
}

void btmmu__ram_drop_entries(struct btmmu *ctx, struct btmmu_ram *ram)
{
	uint32_t i;

	for (i = 1; i < ctx->npool && ram->users; i++) {
		struct btmmu__entry *e = &ctx->pool[i];

		if (!(e->flags & BTMMU__E_FREE) && e->ram == ram)
			entry_evict(ctx, e);
	}
}
