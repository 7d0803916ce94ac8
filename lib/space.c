/* SPDX-License-Identifier: MIT */
/*
 * Address spaces and views. A space is one guest translation context; each
 * of its views (privilege level, QEMU mmu_idx) owns a ring of host regions,
 * one of them current. Translated code reaches guest address gva at
 * view base + gva, where base = current region start - window start.
 */
#include <errno.h>
#include <stdlib.h>

#include "base/valgrind.h"
#include "internal.h"

#define DEFAULT_RING 4u
#define DEFAULT_MAX_WINDOW_BITS 40u
#define GUARD_BYTES (UINT64_C(64) << 10)
#define REGION_ALIGN (UINT64_C(2) << 20)
/* Host mappings a region holds when empty: its window, and its two fences. */
#define REGION_FIXED_VMAS(ctx) ((ctx)->ops->fence ? 3u : 1u)

static int space_geometry(const struct btmmu *ctx, struct btmmu_space_args *a)
{
	unsigned unit_shift;

	if (a->flags & ~BTMMU_SPACE_SIGN_EXTEND)
		return -EINVAL;
	if (a->va_bits < BTMMU_MIN_VA_BITS || a->va_bits > BTMMU_MAX_VA_BITS)
		return -EINVAL;
	if (a->page_shift < BTMMU_MIN_PAGE_SHIFT || a->page_shift > BTMMU_MAX_PAGE_SHIFT ||
	    a->page_shift >= a->va_bits)
		return -EINVAL;
	if (!a->nviews || a->nviews > BTMMU_MAX_VIEWS)
		return -EINVAL;
	if (!a->ring)
		a->ring = DEFAULT_RING;
	if (a->ring > BTMMU_MAX_RING)
		return -EINVAL;
	if (a->page_shift + 6 < ctx->host_page_shift)
		return -EINVAL; /* more than 64 guest pages per host page */
	unit_shift = BTMMU_MAX(a->page_shift, ctx->host_page_shift);
	if (!a->window_bits)
		a->window_bits = BTMMU_MIN(a->va_bits, DEFAULT_MAX_WINDOW_BITS);
	if (a->window_bits > a->va_bits || a->window_bits > BTMMU_MAX_WINDOW_BITS ||
	    a->window_bits < unit_shift)
		return -EINVAL;
	if (a->window_bits == a->va_bits) {
		if (a->window_gva)
			return -EINVAL;
		if (a->flags & BTMMU_SPACE_SIGN_EXTEND)
			a->window_gva = (uint64_t)0 - (UINT64_C(1) << (a->va_bits - 1));
	} else {
		uint64_t ws = UINT64_C(1) << a->window_bits;
		uint64_t last = a->window_gva + ws - 1;
		unsigned sh = 64 - a->va_bits;

		if (a->window_gva & (ws - 1))
			return -EINVAL;
		if (a->flags & BTMMU_SPACE_SIGN_EXTEND) {
			if (a->va_bits < 64 &&
			    ((uint64_t)((int64_t)(a->window_gva << sh) >> sh) != a->window_gva ||
			     (uint64_t)((int64_t)(last << sh) >> sh) != last))
				return -ERANGE;
		} else if (a->va_bits < 64 && (last >> a->va_bits)) {
			return -ERANGE;
		}
	}
	return 0;
}

static void release_regions(struct btmmu *ctx, struct btmmu__region *regions, size_t n)
{
	size_t i;

	for (i = 0; i < n; i++) {
		struct btmmu__region *r = &regions[i];

		if (r->start) {
			ctx->ops->release(ctx, r->start - r->lead, r->lead + r->len + r->guard);
			BTMMU__VG_WINDOW_CLOSE(r->start - r->lead, r->lead + r->len + r->guard);
		}
	}
}

BTMMU_EXPORT int btmmu_space_create(struct btmmu *ctx, const struct btmmu_space_args *args,
				    struct btmmu_space **spacep)
{
	struct btmmu_space_args a;
	struct btmmu__region *regions;
	struct btmmu_space *sp;
	unsigned v, k, nv, vk[BTMMU_MAX_VIEWS];
	size_t nreg, i;
	uint64_t align;
	uint32_t all;
	int ret;

	ret = btmmu__create_args(ctx, spacep, &a, sizeof(a), args);
	if (ret)
		return ret;
	ret = space_geometry(ctx, &a);
	if (ret)
		return ret;
	if ((uintptr_t)a.base_slots % sizeof(uintptr_t))
		return -EINVAL; /* stored atomically */
	all = (UINT32_C(1) << a.nviews) - 1; /* nviews <= BTMMU_MAX_VIEWS < 32 */
	if (!a.view_mask)
		a.view_mask = all;
	if (a.view_mask & ~all)
		return -EINVAL;
	/* The views created, in order: vk[k] is the k-th one's number. */
	for (v = 0, nv = 0; v < a.nviews; v++)
		if ((a.view_mask >> v) & 1)
			vk[nv++] = v;

	sp = calloc(1, sizeof(*sp) + a.nviews * sizeof(sp->views[0]));
	nreg = (size_t)nv * a.ring;
	regions = calloc(nreg, sizeof(*regions));
	if (sp)
		sp->large = calloc(BTMMU__LARGE_SLOTS, sizeof(*sp->large));
	if (!sp || !regions || !sp->large) {
		ret = -ENOMEM;
		goto err_free;
	}
	sp->ctx = ctx;
	sp->va_bits = a.va_bits;
	sp->page_shift = a.page_shift;
	sp->unit_shift = BTMMU_MAX(a.page_shift, ctx->host_page_shift);
	sp->nviews = a.nviews;
	sp->view_mask = a.view_mask;
	sp->regions = regions;
	sp->nregions = nreg;
	sp->nring = a.ring;
	sp->flags = a.flags;
	sp->window_bits = a.window_bits;
	sp->window_gva = a.window_gva;
	sp->window_size = UINT64_C(1) << a.window_bits;
	sp->base_slots = a.base_slots;
	sp->opaque = a.opaque;
	i = (size_t)1 << (sp->unit_shift - sp->page_shift);
	sp->sub_full = i >= 64 ? ~UINT64_C(0) : (UINT64_C(1) << i) - 1;
	align = BTMMU_MAX(REGION_ALIGN, UINT64_C(1) << sp->unit_shift);

	for (i = 0; i < nreg; i++) {
		struct btmmu__region *r = &regions[i];

		r->len = sp->window_size;
		r->guard = BTMMU_MAX(GUARD_BYTES, UINT64_C(1) << ctx->host_page_shift);
		r->lead = ctx->ops->fence ? UINT64_C(1) << ctx->real_page_shift : 0;
		r->space = sp;
		r->view = &sp->views[vk[i / a.ring]];
		r->state = BTMMU__REGION_CLEAN;
		r->g_lo = r->ng_lo = UINT64_MAX;
		CDS_INIT_LIST_HEAD(&r->retired);
		ret = ctx->ops->reserve(ctx, r->lead, r->len + r->guard, align, &r->start);
		if (ret)
			goto err_release;
		BTMMU__VG_WINDOW_OPEN(r->start - r->lead, r->lead + r->len + r->guard);
		if (ctx->ops->fence) {
			ret = ctx->ops->fence(ctx, r->start - r->lead, r->lead);
			if (!ret)
				ret = ctx->ops->fence(ctx, r->start + r->len, r->guard);
			if (ret)
				goto err_release;
		}
	}
	for (k = 0; k < nv; k++) {
		v = vk[k];
		sp->views[v].ring = &regions[(size_t)k * a.ring];
		sp->views[v].cur = sp->views[v].ring;
		sp->views[v].cur->state = BTMMU__REGION_CURRENT;
		atomic_store(&sp->views[v].gen, 1);
	}
	ret = btmmu__registry_add(regions, nreg);
	if (ret)
		goto err_release;

	pthread_mutex_lock(&ctx->admin);
	if (btmmu__lock_mine(&ctx->lock)) {
		pthread_mutex_unlock(&ctx->admin);
		btmmu__registry_remove(regions, nreg);
		ret = -EDEADLK;
		goto err_release;
	}
	for (i = 0; i < nreg; i++)
		regions[i].id = ++ctx->next_region_id;
	ctx->mappings += nreg * REGION_FIXED_VMAS(ctx);
	ctx->unit_shifts |= UINT32_C(1) << sp->unit_shift;
	cds_list_add_tail(&sp->node, &ctx->spaces);
	for (k = 0; k < nv; k++)
		btmmu__view_publish(sp, vk[k]);
	btmmu__unlock(&ctx->lock);
	pthread_mutex_unlock(&ctx->admin);
	*spacep = sp;
	return 0;

err_release:
	release_regions(ctx, regions, nreg);
err_free:
	free(regions);
	if (sp)
		free(sp->large);
	free(sp);
	return ret;
}

BTMMU_EXPORT int btmmu_space_destroy(struct btmmu_space *sp)
{
	struct btmmu__region *regions;
	struct btmmu *ctx;
	size_t nreg, i;

	if (!sp)
		return -EINVAL;
	if (btmmu__in_callback())
		return -EDEADLK;
	ctx = sp->ctx;
	regions = btmmu__space_regions(sp, &nreg);

	if (btmmu__lock_held_here(&ctx->lock))
		return -EDEADLK;

	pthread_mutex_lock(&ctx->admin);
	/* From here no new fault can be dispatched to these regions... */
	btmmu__registry_remove(regions, nreg);
	/* ...and none is still being dispatched (its callback may use sp). */
	btmmu__space_quiesce(sp);
	btmmu__lock_mine(&ctx->lock); /* not ours (checked above): cannot refuse */
	btmmu__wait_tearing(ctx);
	for (i = 0; i < nreg; i++) {
		if (regions[i].state == BTMMU__REGION_RETIRED)
			cds_list_del(&regions[i].retired);
		btmmu__region_drop_entries(ctx, &regions[i], 0);
	}
	ctx->mappings -= nreg * REGION_FIXED_VMAS(ctx);
	cds_list_del(&sp->node);
	btmmu__unlock(&ctx->lock);
	pthread_mutex_unlock(&ctx->admin);

	release_regions(ctx, regions, nreg);
	free(regions);
	free(sp->large);
	free(sp);
	return 0;
}

BTMMU_EXPORT int btmmu_view_info(const struct btmmu_space *sp, unsigned view,
				 struct btmmu_view_info *info)
{
	struct btmmu_view_info vi;

	int ret;

	if (!sp || !btmmu__view_exists(sp, view))
		return -EINVAL;
	if (btmmu__dead(sp->ctx))
		return -EOWNERDEAD;
	ret = btmmu__check_out(info);
	if (ret)
		return ret;
	memset(&vi, 0, sizeof(vi));
	/* Generation first: a flush in between then makes the caller's gen stale. */
	vi.gen = atomic_load_explicit(&((struct btmmu_space *)sp)->views[view].gen,
				      memory_order_acquire);
	vi.base = atomic_load_explicit(&((struct btmmu_space *)sp)->views[view].base,
				       memory_order_acquire);
	vi.window_gva = sp->window_gva;
	vi.window_bits = sp->window_bits;
	vi.va_bits = sp->va_bits;
	vi.page_shift = sp->page_shift;
	vi.unit_shift = sp->unit_shift;
	vi.host_page_shift = sp->ctx->host_page_shift;
	vi.flags = sp->window_bits < sp->va_bits ? BTMMU_VIEW_CHECK : 0;
	if (info->size >= offsetof(struct btmmu_view_info, live_entries) + sizeof(vi.live_entries)) {
		struct btmmu *ctx = sp->ctx;

		/*
		 * Refused: this thread holds the lock below us (a signal
		 * handler's fault); no other thread changes the counts then.
		 */
		bool locked = !btmmu__lock_mine(&ctx->lock);

		vi.live_entries = sp->views[view].cur->ninstalled;
		vi.fills = sp->views[view].fills;
		if (locked)
			btmmu__unlock(&ctx->lock);
	}
	btmmu__copy_out(info, &vi, sizeof(vi));
	return 0;
}

BTMMU_EXPORT int btmmu_view_base(const struct btmmu_space *sp, unsigned view, uintptr_t *basep)
{
	if (!sp || !btmmu__view_exists(sp, view))
		return -EINVAL;
	if (btmmu__dead(sp->ctx))
		return -EOWNERDEAD;
	if (!basep)
		return -EFAULT;
	*basep = atomic_load_explicit(&((struct btmmu_space *)sp)->views[view].base,
				      memory_order_acquire);
	return 0;
}
