/* SPDX-License-Identifier: MIT */
/*
 * btmmu_unmap(), btmmu_flush() and btmmu_flush_all(). A full flush
 * switches the view to a clean region of its ring (O(1)); the old one is
 * torn down by the reclaimer. A non-global flush drops entries in place.
 * Async-signal-safe.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "shadow.h"

static void bump_gen(struct btmmu__view *v)
{
	atomic_fetch_add_explicit(&v->gen, 1, memory_order_release);
}

/* Drop the part of e inside [lo, hi); extends the span to clear. */
static unsigned unmap_entry(struct btmmu *ctx, struct btmmu__entry *e, uint64_t lo, uint64_t hi,
			    uint64_t *clo, uint64_t *chi)
{
	struct btmmu_space *sp = e->region->space;
	uint64_t us = unit_size(e), bits = e->present;

	if (sp->unit_shift != sp->page_shift) {
		uint64_t a = BTMMU_MAX(lo, e->off) - e->off,
			 b = BTMMU_MIN(hi, e->off + us) - e->off;
		unsigned first = (unsigned)(a >> sp->page_shift);
		unsigned n = (unsigned)((b - a) >> sp->page_shift);

		bits = (n >= 64 ? ~UINT64_C(0) : ((UINT64_C(1) << n) - 1)) << first;
	}
	if (e->flags & BTMMU__E_INSTALLED) {
		btmmu__mark_uninstalled(ctx, e);
		*clo = BTMMU_MIN(*clo, e->off);
		*chi = BTMMU_MAX(*chi, e->off + us);
	}
	e->present &= ~bits;
	if (!e->present) {
		btmmu__entry_unlink(ctx, e);
		return 1;
	}
	btmmu__list_fix(ctx, e);
	return 0;
}

static unsigned unmap_region(struct btmmu *ctx, struct btmmu__region *r, uint64_t lo, uint64_t hi)
{
	struct btmmu_space *sp = r->space;
	uint64_t us = UINT64_C(1) << sp->unit_shift;
	uint64_t clo = UINT64_MAX, chi = 0, off;
	unsigned n = 0;

	if (((hi - lo) >> sp->unit_shift) <= 2 * r->nentries) {
		for (off = lo & ~(us - 1); off < hi; off += us) {
			struct btmmu__entry *e = btmmu__entry_find(ctx, r, off);

			if (e)
				n += unmap_entry(ctx, e, lo, hi, &clo, &chi);
		}
	} else {
		int g;

		for (g = 0; g < 2; g++) {
			uint32_t i = r->head[g];

			while (i) {
				struct btmmu__entry *e = &ctx->pool[i];

				i = e->reg_next;
				if (e->off + us > lo && e->off < hi)
					n += unmap_entry(ctx, e, lo, hi, &clo, &chi);
			}
		}
	}
	if (clo < chi)
		btmmu__host_clear(ctx, r, clo, chi - clo);
	return n;
}

/*
 * Unmap [gva, gva+len) from view v, widened to the large guest pages the
 * view's entries there came from. Returns the entries removed.
 */
static uint64_t unmap_view(struct btmmu *ctx, struct btmmu_space *sp, unsigned v, uint64_t gva,
			   uint64_t len)
{
	struct btmmu__region *r = sp->views[v].cur;
	uint64_t lo, hi, skip, n;

	if (!btmmu__large_widen(sp, v, &gva, &len)) {
		/*
		 * Its large pages did not all fit in the records: any entry may
		 * be part of the page. Drop them all, in place (the base stays).
		 */
		n = r->nentries;
		btmmu__region_drop_entries(ctx, r, -1);
		btmmu__large_drop(sp, v, false);
		return n;
	}
	if (!btmmu__window_clip(sp, gva, len, &lo, &hi, &skip))
		return 0;
	return unmap_region(ctx, r, lo, hi);
}

BTMMU_EXPORT int btmmu_unmap(struct btmmu_space *sp, uint32_t views, uint64_t gva, uint64_t len)
{
	struct btmmu *ctx;
	unsigned v;
	uint64_t pm, n = 0;

	if (!sp || btmmu__check_views(sp, views))
		return -EINVAL;
	if (btmmu__dead(sp->ctx))
		return -EOWNERDEAD;
	pm = (UINT64_C(1) << sp->page_shift) - 1;
	if (!len || (len & pm) || (gva & pm))
		return -EINVAL;
	if (!btmmu__va_valid(sp, gva, len))
		return -ERANGE;
	ctx = sp->ctx;
	if (btmmu__lock_mine(&ctx->lock))
		return -EDEADLK;
	for (v = 0; v < sp->nviews; v++) {
		if (!(views & (UINT32_C(1) << v)))
			continue;
		n += unmap_view(ctx, sp, v, gva, len);
		bump_gen(&sp->views[v]);
	}
	/* Holes split merged mappings: back under the budget. */
	btmmu__make_room(ctx, 0, 0);
	btmmu__unlock(&ctx->lock);
	btmmu__stat_add(&ctx->st.unmaps, n);
	return (int)BTMMU_MIN(n, (uint64_t)INT32_MAX);
}

/*
 * Full flush of one view: switch to a clean region of the ring (O(1)); the
 * old one is torn down later by the reclaimer. With the ring exhausted, the
 * oldest retired region is torn down here; with a ring of one, in place.
 * Returns true when the reclaimer should be woken now.
 */
static bool flush_full(struct btmmu *ctx, struct btmmu_space *sp, unsigned v)
{
	struct btmmu__view *view = &sp->views[v];
	struct btmmu__region *cur, *next = NULL;
	unsigned i, k;

	for (;;) {
		cur = view->cur;
		if (!cur->nentries)
			return false;
		if (sp->nring == 1) {
			btmmu__region_drop_entries(ctx, cur, -1);
			return false;
		}
		k = (unsigned)(cur - view->ring);
		for (i = 1; i < sp->nring && !next; i++) {
			struct btmmu__region *c = &view->ring[(k + i) % sp->nring];

			if (c->state == BTMMU__REGION_CLEAN)
				next = c;
		}
		if (next)
			break;
		if (btmmu__reclaim_view_locked(ctx, view))
			btmmu__stat_add(&ctx->st.sync_reclaims, 1);
		else
			btmmu__wait_tearing(ctx); /* the reclaimer has ours */
	}
	cur->state = BTMMU__REGION_RETIRED;
	cds_list_add_tail(&cur->retired, &ctx->retired);
	next->state = BTMMU__REGION_CURRENT;
	view->cur = next;
	btmmu__view_publish(sp, v);
	/*
	 * Wake the reclaimer only once half the ring is used up: waking it on
	 * every flush costs the caller the wake-up (and, on a busy host, its
	 * CPU). Otherwise its periodic pass picks the region up.
	 */
	for (i = 0, k = 0; i < sp->nring; i++)
		k += view->ring[i].state == BTMMU__REGION_CLEAN;
	return 2 * k < sp->nring;
}

/*
 * Drop the non-global entries of the view's region in place. When the
 * non-global span holds no global entry (a guest's user half vs. its
 * global kernel half), one host call clears them all.
 */
static void flush_nonglobal(struct btmmu *ctx, struct btmmu__region *r)
{
	bool disjoint = r->g_lo >= r->g_hi || r->ng_hi <= r->g_lo || r->g_hi <= r->ng_lo;
	uint32_t i = r->head[0];
	uint64_t clo = UINT64_MAX, chi = 0;

	while (i) {
		struct btmmu__entry *e = &ctx->pool[i];
		uint64_t us = unit_size(e);

		i = e->reg_next;
		if (e->flags & BTMMU__E_INSTALLED) {
			btmmu__mark_uninstalled(ctx, e);
			if (!disjoint) {
				if (!btmmu__host_clear(ctx, r, e->off, us))
					return; /* the whole region went */
			} else {
				clo = BTMMU_MIN(clo, e->off);
				chi = BTMMU_MAX(chi, e->off + us);
			}
		}
		/* Sub-page entries keep their global pages, uninstalled. */
		e->present &= e->gmask;
		if (!e->present)
			btmmu__entry_unlink(ctx, e);
		else
			btmmu__list_fix(ctx, e);
	}
	btmmu__spans_reset(r, false);
	if (clo < chi)
		btmmu__host_clear(ctx, r, clo, chi - clo);
}

static void flush_space(struct btmmu *ctx, struct btmmu_space *sp, uint32_t views, uint32_t flags,
			bool *retired)
{
	unsigned v;

	for (v = 0; v < sp->nviews; v++) {
		if (!(views & (UINT32_C(1) << v)))
			continue;
		if (flags & BTMMU_FLUSH_NONGLOBAL) {
			if (sp->views[v].cur->nentries)
				flush_nonglobal(ctx, sp->views[v].cur);
			btmmu__large_drop(sp, v, true);
			btmmu__stat_add(&ctx->st.flushes_nonglobal, 1);
		} else {
			*retired |= flush_full(ctx, sp, v);
			btmmu__large_drop(sp, v, false);
			btmmu__stat_add(&ctx->st.flushes, 1);
		}
		bump_gen(&sp->views[v]);
	}
}

BTMMU_EXPORT int btmmu_flush(struct btmmu_space *sp, uint32_t views, uint32_t flags)
{
	struct btmmu *ctx;
	bool retired = false;

	if (!sp || btmmu__check_views(sp, views) || (flags & ~BTMMU_FLUSH_NONGLOBAL))
		return -EINVAL;
	if (btmmu__dead(sp->ctx))
		return -EOWNERDEAD;
	ctx = sp->ctx;
	if (btmmu__lock_mine(&ctx->lock))
		return -EDEADLK;
	flush_space(ctx, sp, views, flags, &retired);
	if (flags & BTMMU_FLUSH_NONGLOBAL)
		btmmu__make_room(ctx, 0, 0); /* holes split merged mappings */
	btmmu__unlock(&ctx->lock);
	if (retired)
		btmmu__reaper_kick(ctx);
	return 0;
}

BTMMU_EXPORT int btmmu_flush_all(struct btmmu *ctx)
{
	struct btmmu_space *sp;
	bool retired = false;

	if (!ctx)
		return -EINVAL;
	if (btmmu__dead(ctx))
		return -EOWNERDEAD;
	if (btmmu__lock_mine(&ctx->lock))
		return -EDEADLK;
	cds_list_for_each_entry(sp, &ctx->spaces, node)
		flush_space(ctx, sp, sp->view_mask, 0, &retired);
	btmmu__unlock(&ctx->lock);
	if (retired)
		btmmu__reaper_kick(ctx);
	return 0;
}
