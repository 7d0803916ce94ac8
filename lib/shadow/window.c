/* SPDX-License-Identifier: MIT */
/*
 * Taking access away, whatever the host says: partial clears with the
 * whole-window fallback, whole-window clears, region-wide drops, and the
 * teardown of retired regions (under the lock, or unlocked for the
 * reclaimer). Under ctx->lock unless said otherwise; async-signal-safe
 * (single system calls through the backend).
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "shadow.h"

/*
 * Return r's whole window to no access, in one host call that cannot split
 * a mapping (the window's ends are mapping ends: its fences, internal.h).
 * Normally the window becomes the bare reservation again. But the kernel
 * lets a split push the process's mappings one past vm.max_map_count, and
 * then refuses every mmap() up front: the rights are taken away in place
 * instead (mprotect() has no such check and needs no split here), and the
 * window keeps its mappings, now inaccessible. Returns 0, or 1 for that
 * fallback. Should the host refuse even that (out of kernel memory), no
 * state is left that keeps the promise that a removed translation is
 * unusable: stop the process. Async-signal-safe; callable without the lock.
 */
int btmmu__window_clear(struct btmmu *ctx, struct btmmu__region *r)
{
	static const char msg[] = "libbtmmu: cannot return a shadow window to no access "
				  "(host out of memory); aborting rather than leave stale "
				  "translations usable\n";
	ssize_t w;

	if (!ctx->ops->clear(ctx, r->start, r->len))
		return 0;
	if (!ctx->ops->protect(ctx, r->start, r->len, 0))
		return 1;
	w = write(2, msg, sizeof(msg) - 1);
	(void)w;
	abort();
}

/*
 * After btmmu__window_clear(), with the entries dropped but the counts not
 * yet reset: the counts start again from an empty window, or from one whose
 * mappings (at most what the counts held) are still there, inaccessible.
 */
static void window_cleared(struct btmmu *ctx, struct btmmu__region *r, int leftover)
{
	uint64_t before = region_vmas(r);

	btmmu__region_reset_counts(ctx, r);
	if (leftover) {
		r->leftover = before - 1;
		ctx->mappings += r->leftover;
	}
}

/*
 * Drop every entry of r and return its whole window to no access, as a
 * flush does; entries pinned by an install in progress stay linked,
 * uninstalled (they have no host mapping left).
 */
static void region_replace(struct btmmu *ctx, struct btmmu__region *r)
{
	uint32_t i, next;
	int g, leftover;

	btmmu__stat_add(&ctx->st.clear_fallbacks, 1);
	leftover = btmmu__window_clear(ctx, r);
	for (g = 0; g < 2; g++) {
		for (i = r->head[g]; i; i = next) {
			struct btmmu__entry *e = &ctx->pool[i];

			next = e->reg_next;
			if (e->flags & BTMMU__E_INSTALLED) {
				btmmu__pa_remove(ctx, e);
				ctx->live_entries--;
				e->flags &= (uint8_t)~BTMMU__E_INSTALLED;
			}
			if (!(e->flags & BTMMU__E_PINNED))
				btmmu__entry_unlink(ctx, e);
		}
	}
	window_cleared(ctx, r, leftover);
	ctx->replaces++;
	atomic_fetch_add_explicit(&r->view->gen, 1, memory_order_release);
}

/*
 * Return [off, off+len) of r to no access. The host may refuse: splitting a
 * mapping needs a VMA more, past vm.max_map_count it fails with ENOMEM
 * (and MAP_FIXED may have dropped the old mapping or not). Then the whole
 * window goes instead. Returns true when only the range went, false when
 * the region was replaced (its entries are gone: callers walking them must
 * stop).
 */
bool btmmu__host_clear(struct btmmu *ctx, struct btmmu__region *r, uint64_t off, uint64_t len)
{
	if (!ctx->ops->clear(ctx, r->start + off, len))
		return true;
	region_replace(ctx, r);
	return false;
}

/*
 * Drop every entry of the region. cleared < 0: return the window to no
 * access here (one call); else the caller did, and cleared is what its
 * btmmu__window_clear() returned.
 */
void btmmu__region_drop_entries(struct btmmu *ctx, struct btmmu__region *r, int cleared)
{
	while (r->head[0] || r->head[1]) {
		struct btmmu__entry *e = &ctx->pool[r->head[0] ? r->head[0] : r->head[1]];

		/* The region's counts are reset below: skip per-entry accounting. */
		if (e->flags & BTMMU__E_INSTALLED) {
			btmmu__pa_remove(ctx, e);
			ctx->live_entries--;
		}
		btmmu__entry_unlink(ctx, e);
	}
	window_cleared(ctx, r, cleared < 0 ? btmmu__window_clear(ctx, r) : cleared);
}

/* ------------------------------------------------------------------ */
/* Teardown of retired regions                                         */
/* ------------------------------------------------------------------ */

/*
 * Wait (dropping ctx->lock) until no region is being torn down unlocked.
 * The thread tearing down keeps ctx->lock recorded as its own meanwhile,
 * so it never gets here itself (its nested calls are refused first).
 */
void btmmu__wait_tearing(struct btmmu *ctx)
{
	while (ctx->tearing) {
		int gen = atomic_load(&ctx->tearing_gen);

		btmmu__unlock_keep(&ctx->lock);
		btmmu__futex_wait(&ctx->tearing_gen, gen, 10 * 1000 * 1000);
		btmmu__relock_kept(&ctx->lock);
	}
}

static void finish(struct btmmu *ctx, struct btmmu__region *r, int leftover)
{
	btmmu__region_drop_entries(ctx, r, leftover);
	r->state = BTMMU__REGION_CLEAN;
	btmmu__stat_add(&ctx->st.reclaims, 1);
}

static void reclaim_region_locked(struct btmmu *ctx, struct btmmu__region *r)
{
	cds_list_del(&r->retired);
	finish(ctx, r, btmmu__window_clear(ctx, r));
}

bool btmmu__reclaim_locked(struct btmmu *ctx)
{
	if (cds_list_empty(&ctx->retired))
		return false;
	reclaim_region_locked(ctx,
			      cds_list_first_entry(&ctx->retired, struct btmmu__region, retired));
	return true;
}

bool btmmu__reclaim_view_locked(struct btmmu *ctx, struct btmmu__view *view)
{
	struct btmmu__region *r;

	cds_list_for_each_entry(r, &ctx->retired, retired) {
		if (r->view == view) {
			reclaim_region_locked(ctx, r);
			return true;
		}
	}
	return false;
}

/*
 * The reclaimer's way: the host call over the whole window is made without
 * ctx->lock, so faults and calls on other regions proceed meanwhile (the
 * lock stays recorded as this thread's, see btmmu__wait_tearing()).
 */
bool btmmu__reclaim_one(struct btmmu *ctx)
{
	struct btmmu__region *r;
	int leftover;

	btmmu__wait_tearing(ctx);
	if (cds_list_empty(&ctx->retired))
		return false;
	r = cds_list_first_entry(&ctx->retired, struct btmmu__region, retired);
	cds_list_del(&r->retired);
	r->state = BTMMU__REGION_TEARING;
	ctx->tearing = r;
	btmmu__unlock_keep(&ctx->lock);
	leftover = btmmu__window_clear(ctx, r);
	btmmu__relock_kept(&ctx->lock);
	finish(ctx, r, leftover);
	ctx->tearing = NULL;
	atomic_fetch_add(&ctx->tearing_gen, 1);
	btmmu__futex_wake_all(&ctx->tearing_gen);
	return true;
}
