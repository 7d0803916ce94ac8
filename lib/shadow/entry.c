/* SPDX-License-Identifier: MIT */
/*
 * Shadow entries: the pool, the (region, offset) hash, each region's two
 * entry lists (global and not), the reverse map by guest-physical address,
 * the rights an entry grants, and the count of host mappings it holds.
 *
 * An entry is one host mapping unit of a region: max(guest page, host page)
 * bytes. When guest pages are smaller than the host page, an entry collects
 * the guest pages of one host page and is installed only once all of them
 * are present and agree (contiguous guest-physical frames, host-page
 * aligned in the fd); until then accesses take the slow path.
 *
 * Budget: a region costs at most (runs + 1) reserved pieces plus the host
 * mappings of its installed entries, minus the neighbours the kernel merges
 * (file-contiguous, same rights), plus what a refused clear left behind.
 * ctx->mappings is the sum over regions, an upper bound of the VMAs we
 * hold; installs evict (evict.c) before it would pass ctx->budget.
 *
 * Bookkeeping only: nothing here changes a host mapping. Everything runs
 * under ctx->lock and is async-signal-safe (the pool and hashes are
 * allocated at btmmu_open()).
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "shadow.h"

int btmmu__pool_init(struct btmmu *ctx, uint64_t max_entries)
{
	uint64_t nb = 1;
	uint32_t i;

	while (nb < max_entries * 2)
		nb <<= 1;
	ctx->npool = (uint32_t)max_entries + 1;
	ctx->pool = calloc(ctx->npool, sizeof(*ctx->pool));
	ctx->va_hash = calloc(nb, sizeof(uint32_t));
	ctx->pa_hash = calloc(nb, sizeof(uint32_t));
	if (!ctx->pool || !ctx->va_hash || !ctx->pa_hash) {
		btmmu__pool_fini(ctx);
		return -ENOMEM;
	}
	ctx->hash_mask = (uint32_t)(nb - 1);
	ctx->free_head = 0;
	for (i = ctx->npool - 1; i >= 1; i--) {
		ctx->pool[i].flags = BTMMU__E_FREE;
		ctx->pool[i].va_next = ctx->free_head;
		ctx->free_head = i;
	}
	ctx->nfree = ctx->npool - 1;
	ctx->clock = 1;
	return 0;
}

void btmmu__pool_fini(struct btmmu *ctx)
{
	free(ctx->pool);
	free(ctx->va_hash);
	free(ctx->pa_hash);
	ctx->pool = NULL;
	ctx->va_hash = ctx->pa_hash = NULL;
}

struct btmmu__entry *btmmu__entry_alloc(struct btmmu *ctx)
{
	struct btmmu__entry *e;

	if (!ctx->free_head)
		return NULL;
	e = &ctx->pool[ctx->free_head];
	ctx->free_head = e->va_next;
	ctx->nfree--;
	memset(e, 0, sizeof(*e));
	return e;
}

struct btmmu__entry *btmmu__entry_find(struct btmmu *ctx, const struct btmmu__region *r,
				       uint64_t off)
{
	uint32_t i = ctx->va_hash[va_bucket(ctx, r, off)];

	while (i) {
		struct btmmu__entry *e = &ctx->pool[i];

		if (e->region == r && e->off == off)
			return e;
		i = e->va_next;
	}
	return NULL;
}

/*
 * A region keeps its entries on two lists, global and not, so that a
 * non-global flush visits only the entries it drops.
 */
static void list_add(struct btmmu *ctx, struct btmmu__region *r, struct btmmu__entry *e, int g)
{
	uint32_t idx = btmmu__idx(ctx, e);

	e->reg_prev = 0;
	e->reg_next = r->head[g];
	if (r->head[g])
		ctx->pool[r->head[g]].reg_prev = idx;
	r->head[g] = idx;
	e->flags = (uint8_t)(g ? e->flags | BTMMU__E_GLIST : e->flags & ~BTMMU__E_GLIST);
}

static void list_del(struct btmmu *ctx, struct btmmu__region *r, struct btmmu__entry *e)
{
	if (e->reg_prev)
		ctx->pool[e->reg_prev].reg_next = e->reg_next;
	else
		r->head[!!(e->flags & BTMMU__E_GLIST)] = e->reg_next;
	if (e->reg_next)
		ctx->pool[e->reg_next].reg_prev = e->reg_prev;
}

/* After a change of the entry's global pages: keep it on the right list. */
void btmmu__list_fix(struct btmmu *ctx, struct btmmu__entry *e)
{
	int g = btmmu__entry_global(e);

	if (g != !!(e->flags & BTMMU__E_GLIST)) {
		list_del(ctx, e->region, e);
		list_add(ctx, e->region, e, g);
	}
}

void btmmu__entry_link(struct btmmu *ctx, struct btmmu__region *r, struct btmmu__entry *e)
{
	uint32_t b = va_bucket(ctx, r, e->off), idx = btmmu__idx(ctx, e);

	e->region = r;
	e->va_next = ctx->va_hash[b];
	ctx->va_hash[b] = idx;
	list_add(ctx, r, e, 0);
	r->nentries++;
}

/* Remove from the hash and the region list and free (bookkeeping only). */
void btmmu__entry_unlink(struct btmmu *ctx, struct btmmu__entry *e)
{
	struct btmmu__region *r = e->region;
	uint32_t idx = btmmu__idx(ctx, e);
	uint32_t *pp = &ctx->va_hash[va_bucket(ctx, r, e->off)];

	while (*pp != idx)
		pp = &ctx->pool[*pp].va_next;
	*pp = e->va_next;
	list_del(ctx, r, e);
	r->nentries--;
	if (e->ram)
		e->ram->users--;
	e->flags = BTMMU__E_FREE;
	e->region = NULL;
	e->ram = NULL;
	e->va_next = ctx->free_head;
	ctx->free_head = idx;
	ctx->nfree++;
}

/* Rights every present guest page of the entry grants. */
uint32_t btmmu__entry_want(const struct btmmu__entry *e)
{
	uint32_t w = 0;

	if (!e->present)
		return 0;
	if ((e->rmask & e->present) == e->present)
		w |= BTMMU_PROT_READ;
	if ((e->wmask & e->present) == e->present)
		w |= BTMMU_PROT_WRITE;
	if ((e->xmask & e->present) == e->present)
		w |= BTMMU_PROT_EXEC;
	return w;
}

bool btmmu__entry_global(const struct btmmu__entry *e)
{
	return e->present && (e->gmask & e->present) == e->present;
}

/* Host prot of the host page at host_off inside the entry. */
uint32_t btmmu__entry_host_prot(const struct btmmu *ctx, const struct btmmu__entry *e,
				uint64_t host_off)
{
	uint64_t hp = UINT64_C(1) << ctx->host_page_shift;

	return (uint32_t)btmmu__host_prot(btmmu__entry_want(e) &
					  btmmu__ram_ceiling(e->ram, e->gpa + host_off, hp));
}

struct btmmu__entry *btmmu__installed_at(struct btmmu *ctx, struct btmmu__region *r, uint64_t off)
{
	struct btmmu__entry *e;

	if (off >= r->len)
		return NULL;
	e = btmmu__entry_find(ctx, r, off);
	return e && (e->flags & BTMMU__E_INSTALLED) ? e : NULL;
}

/* Would the kernel merge a's mapping with b's, b right after a? */
static bool mergeable(const struct btmmu__entry *a, const struct btmmu__entry *b)
{
	return a && b && a->npieces == 1 && b->npieces == 1 && a->ram == b->ram &&
	       a->hprot == b->hprot && a->gpa + unit_size(a) == b->gpa;
}

/* Add (sign 1) or remove (sign -1) an installed entry's share of the counts. */
static void account(struct btmmu *ctx, struct btmmu__entry *e, int sign)
{
	struct btmmu__region *r = e->region;
	uint64_t us = unit_size(e), before = region_vmas(r);
	struct btmmu__entry *l = e->off >= us ? btmmu__installed_at(ctx, r, e->off - us) : NULL;
	struct btmmu__entry *rr = btmmu__installed_at(ctx, r, e->off + us);
	int64_t runs = 1 - (l != NULL) - (rr != NULL);
	int64_t merges = mergeable(l, e) + mergeable(e, rr);

	r->runs += (uint64_t)(sign * runs);
	r->merges += (uint64_t)(sign * merges);
	r->pieces += (uint64_t)(sign * (int64_t)e->npieces);
	ctx->mappings += region_vmas(r) - before;
	if (btmmu__entry_global(e))
		r->nglobal += (uint64_t)sign;
	r->ninstalled += (uint64_t)sign;
	ctx->live_entries += (uint64_t)sign;
}

static void pa_insert(struct btmmu *ctx, struct btmmu__entry *e)
{
	uint32_t b = pa_bucket(ctx, e->gpa);

	e->pa_next = ctx->pa_hash[b];
	ctx->pa_hash[b] = btmmu__idx(ctx, e);
}

void btmmu__pa_remove(struct btmmu *ctx, struct btmmu__entry *e)
{
	uint32_t idx = btmmu__idx(ctx, e);
	uint32_t *pp = &ctx->pa_hash[pa_bucket(ctx, e->gpa)];

	while (*pp != idx)
		pp = &ctx->pool[*pp].pa_next;
	*pp = e->pa_next;
}

void btmmu__mark_installed(struct btmmu *ctx, struct btmmu__entry *e)
{
	struct btmmu__region *r = e->region;
	uint64_t end = e->off + unit_size(e);

	e->flags |= BTMMU__E_INSTALLED | BTMMU__E_REF;
	pa_insert(ctx, e);
	account(ctx, e, 1);
	if (btmmu__entry_global(e)) {
		r->g_lo = BTMMU_MIN(r->g_lo, e->off);
		r->g_hi = BTMMU_MAX(r->g_hi, end);
	} else {
		r->ng_lo = BTMMU_MIN(r->ng_lo, e->off);
		r->ng_hi = BTMMU_MAX(r->ng_hi, end);
	}
}

/* Bookkeeping only: the caller changes or clears the host mapping. */
void btmmu__mark_uninstalled(struct btmmu *ctx, struct btmmu__entry *e)
{
	account(ctx, e, -1);
	btmmu__pa_remove(ctx, e);
	e->flags &= (uint8_t)~BTMMU__E_INSTALLED;
}

void btmmu__spans_reset(struct btmmu__region *r, bool global_too)
{
	r->ng_lo = UINT64_MAX;
	r->ng_hi = 0;
	if (global_too) {
		r->g_lo = UINT64_MAX;
		r->g_hi = 0;
	}
}

void btmmu__region_reset_counts(struct btmmu *ctx, struct btmmu__region *r)
{
	ctx->mappings -= region_vmas(r) - 1;
	r->runs = r->pieces = r->merges = r->nglobal = r->ninstalled = r->leftover = 0;
	btmmu__spans_reset(r, true);
}
