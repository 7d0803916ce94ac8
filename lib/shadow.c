/* SPDX-License-Identifier: MIT */
/*
 * Shadow bookkeeping: the entry pool, the (region, offset) hash, the
 * reverse map by guest-physical address, and the host mapping budget.
 *
 * An entry is one host mapping unit of a region: max(guest page, host page)
 * bytes. When guest pages are smaller than the host page, an entry collects
 * the guest pages of one host page and is installed only once all of them
 * are present and agree (contiguous guest-physical frames, host-page
 * aligned in the fd); until then accesses take the slow path.
 *
 * Everything here runs under ctx->lock and is async-signal-safe: the pool
 * and the hashes are allocated at btmmu_open(), host changes are single
 * system calls through the backend.
 *
 * Budget: a region costs at most (runs + 1) reserved pieces plus the host
 * mappings of its installed entries, minus the neighbours the kernel merges
 * (file-contiguous, same rights). ctx->mappings is the sum over regions, an
 * upper bound of the VMAs we hold; installs evict before it would pass
 * ctx->budget, so a fault never fails for lack of mappings.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "internal.h"

/* Evict up to 1/64 of the capacity beyond the need, at most this many. */
#define EVICT_BATCH_MAX 256u

static inline uint32_t hash64(uint64_t k, uint32_t mask)
{
	k ^= k >> 31;
	k *= UINT64_C(0x9e3779b97f4a7c15);
	return (uint32_t)(k >> 32) & mask;
}

static inline uint32_t va_bucket(const struct btmmu *ctx, const struct btmmu__region *r,
				 uint64_t off)
{
	return hash64(((uint64_t)r->id << 44) ^ (off >> BTMMU_GRANULE_SHIFT), ctx->hash_mask);
}

static inline uint32_t pa_bucket(const struct btmmu *ctx, uint64_t gpa)
{
	return hash64(gpa >> BTMMU_GRANULE_SHIFT, ctx->hash_mask);
}

static inline uint64_t unit_size(const struct btmmu__entry *e)
{
	return UINT64_C(1) << e->unit_shift;
}

/* ------------------------------------------------------------------ */
/* Pool                                                                */
/* ------------------------------------------------------------------ */

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

static struct btmmu__entry *entry_alloc(struct btmmu *ctx)
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

static bool entry_global(const struct btmmu__entry *e);

/* After a change of the entry's global pages: keep it on the right list. */
static void list_fix(struct btmmu *ctx, struct btmmu__entry *e)
{
	int g = entry_global(e);

	if (g != !!(e->flags & BTMMU__E_GLIST)) {
		list_del(ctx, e->region, e);
		list_add(ctx, e->region, e, g);
	}
}

static void entry_link(struct btmmu *ctx, struct btmmu__region *r, struct btmmu__entry *e)
{
	uint32_t b = va_bucket(ctx, r, e->off), idx = btmmu__idx(ctx, e);

	e->region = r;
	e->va_next = ctx->va_hash[b];
	ctx->va_hash[b] = idx;
	list_add(ctx, r, e, 0);
	r->nentries++;
}

/* Remove from the hash and the region list and free (bookkeeping only). */
static void entry_unlink(struct btmmu *ctx, struct btmmu__entry *e)
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

/* ------------------------------------------------------------------ */
/* Rights                                                              */
/* ------------------------------------------------------------------ */

/* Rights every present guest page of the entry grants. */
static uint32_t entry_want(const struct btmmu__entry *e)
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

static bool entry_global(const struct btmmu__entry *e)
{
	return e->present && (e->gmask & e->present) == e->present;
}

/* Host prot of the host page at host_off inside the entry. */
uint32_t btmmu__entry_host_prot(const struct btmmu *ctx, const struct btmmu__entry *e,
				uint64_t host_off)
{
	uint64_t hp = UINT64_C(1) << ctx->host_page_shift;

	return (uint32_t)btmmu__host_prot(entry_want(e) &
					  btmmu__ram_ceiling(e->ram, e->gpa + host_off, hp));
}

static inline uint64_t fd_off(const struct btmmu__entry *e, uint64_t within)
{
	return e->ram->offset + (e->gpa - e->ram->gpa) + within;
}

/* ------------------------------------------------------------------ */
/* Budget accounting                                                   */
/* ------------------------------------------------------------------ */

static inline uint64_t region_vmas(const struct btmmu__region *r)
{
	return r->runs + 1 + r->pieces - r->merges + r->leftover;
}

static struct btmmu__entry *installed_at(struct btmmu *ctx, struct btmmu__region *r, uint64_t off)
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
	struct btmmu__entry *l = e->off >= us ? installed_at(ctx, r, e->off - us) : NULL;
	struct btmmu__entry *rr = installed_at(ctx, r, e->off + us);
	int64_t runs = 1 - (l != NULL) - (rr != NULL);
	int64_t merges = mergeable(l, e) + mergeable(e, rr);

	r->runs += (uint64_t)(sign * runs);
	r->merges += (uint64_t)(sign * merges);
	r->pieces += (uint64_t)(sign * (int64_t)e->npieces);
	ctx->mappings += region_vmas(r) - before;
	if (entry_global(e))
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

static void pa_remove(struct btmmu *ctx, struct btmmu__entry *e)
{
	uint32_t idx = btmmu__idx(ctx, e);
	uint32_t *pp = &ctx->pa_hash[pa_bucket(ctx, e->gpa)];

	while (*pp != idx)
		pp = &ctx->pool[*pp].pa_next;
	*pp = e->pa_next;
}

static void mark_installed(struct btmmu *ctx, struct btmmu__entry *e)
{
	struct btmmu__region *r = e->region;
	uint64_t end = e->off + unit_size(e);

	e->flags |= BTMMU__E_INSTALLED | BTMMU__E_REF;
	pa_insert(ctx, e);
	account(ctx, e, 1);
	if (entry_global(e)) {
		r->g_lo = BTMMU_MIN(r->g_lo, e->off);
		r->g_hi = BTMMU_MAX(r->g_hi, end);
	} else {
		r->ng_lo = BTMMU_MIN(r->ng_lo, e->off);
		r->ng_hi = BTMMU_MAX(r->ng_hi, end);
	}
}

/* Bookkeeping only: the caller changes or clears the host mapping. */
static void mark_uninstalled(struct btmmu *ctx, struct btmmu__entry *e)
{
	account(ctx, e, -1);
	pa_remove(ctx, e);
	e->flags &= (uint8_t)~BTMMU__E_INSTALLED;
}

static void spans_reset(struct btmmu__region *r, bool global_too)
{
	r->ng_lo = UINT64_MAX;
	r->ng_hi = 0;
	if (global_too) {
		r->g_lo = UINT64_MAX;
		r->g_hi = 0;
	}
}

/* ------------------------------------------------------------------ */
/* Taking access away, whatever the host says                          */
/* ------------------------------------------------------------------ */

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
 * After btmmu__window_clear() and the entries dropped: the region's counts
 * start again from an empty window, or from one whose mappings (at most
 * what the counts held) are still there, inaccessible.
 */
void btmmu__window_cleared(struct btmmu *ctx, struct btmmu__region *r, int leftover)
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
				pa_remove(ctx, e);
				ctx->live_entries--;
				e->flags &= (uint8_t)~BTMMU__E_INSTALLED;
			}
			if (!(e->flags & BTMMU__E_PINNED))
				entry_unlink(ctx, e);
		}
	}
	btmmu__window_cleared(ctx, r, leftover);
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
static bool host_clear(struct btmmu *ctx, struct btmmu__region *r, uint64_t off, uint64_t len)
{
	if (!ctx->ops->clear(ctx, r->start + off, len))
		return true;
	region_replace(ctx, r);
	return false;
}

/* ------------------------------------------------------------------ */
/* Host mapping of one entry                                           */
/* ------------------------------------------------------------------ */

/*
 * Give the entry's unit its effective rights, one host call per run of host
 * pages whose rights agree (they differ only where a protect() ceiling
 * covers part of a unit larger than the host page): map the runs when
 * installing, change their protection otherwise. Sets npieces and hprot.
 * Installing stops at the first error; re-protecting goes on and returns
 * the first error.
 */
static int apply_runs(struct btmmu *ctx, struct btmmu__entry *e, bool install, bool populate)
{
	uintptr_t addr = e->region->start + e->off;
	uint64_t hp = UINT64_C(1) << ctx->host_page_shift, us = unit_size(e);
	uint64_t start = 0, off;
	uint32_t prot, run_prot = 0, last = 0, pieces = 0;
	int ret = 0, rc;

	for (off = 0; off <= us; off += hp) {
		prot = off < us ? btmmu__entry_host_prot(ctx, e, off) : UINT32_MAX;
		if (off && prot == run_prot)
			continue;
		if (off) {
			if (install) {
				rc = ctx->ops->install(ctx, addr + start, off - start,
						       (int)run_prot, e->ram->fd, fd_off(e, start),
						       populate);
				if (rc)
					return rc;
				btmmu__stat_add(&ctx->st.install_calls, 1);
			} else {
				rc = ctx->ops->protect(ctx, addr + start, off - start,
						       (int)run_prot);
				if (rc && !ret)
					ret = rc;
			}
			pieces++;
			last = run_prot;
		}
		start = off;
		run_prot = prot;
		if (!e->ram->ndenied) /* one run: no need to look at every host page */
			off = us - hp;
	}
	e->npieces = pieces;
	e->hprot = (uint8_t)(pieces == 1 ? last : 0);
	return ret;
}

/* ------------------------------------------------------------------ */
/* Eviction                                                            */
/* ------------------------------------------------------------------ */

/* Drop an entry entirely, host mapping included. */
static void entry_evict(struct btmmu *ctx, struct btmmu__entry *e)
{
	if (e->flags & BTMMU__E_INSTALLED) {
		mark_uninstalled(ctx, e);
		if (!host_clear(ctx, e->region, e->off, unit_size(e)))
			return; /* the region went, e with it */
	}
	entry_unlink(ctx, e);
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
static bool make_room(struct btmmu *ctx, uint32_t need_entries, uint64_t need_maps)
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

/* ------------------------------------------------------------------ */
/* Region-wide drops                                                   */
/* ------------------------------------------------------------------ */

/*
 * Drop every entry of the region; with syscalls, also return the window to
 * no access (one call). Without, the caller already did (teardown).
 */
void btmmu__region_drop_entries(struct btmmu *ctx, struct btmmu__region *r, bool syscalls)
{
	while (r->head[0] || r->head[1]) {
		struct btmmu__entry *e = &ctx->pool[r->head[0] ? r->head[0] : r->head[1]];

		/* The region's counts are reset below: skip per-entry accounting. */
		if (e->flags & BTMMU__E_INSTALLED) {
			pa_remove(ctx, e);
			ctx->live_entries--;
		}
		entry_unlink(ctx, e);
	}
	if (syscalls)
		btmmu__window_cleared(ctx, r, btmmu__window_clear(ctx, r));
	else
		btmmu__region_reset_counts(ctx, r);
}

void btmmu__region_reset_counts(struct btmmu *ctx, struct btmmu__region *r)
{
	ctx->mappings -= region_vmas(r) - 1;
	r->runs = r->pieces = r->merges = r->nglobal = r->ninstalled = r->leftover = 0;
	spans_reset(r, true);
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

/* Would `access` at addr in r succeed now? Under ctx->lock. */
static bool accessible(struct btmmu *ctx, struct btmmu__region *r, uintptr_t addr,
		       unsigned access)
{
	uint64_t off = addr - r->start, us = UINT64_C(1) << r->space->unit_shift;
	uint64_t hp = UINT64_C(1) << ctx->host_page_shift;
	struct btmmu__entry *e;
	uint32_t prot;

	if (access == BTMMU_ACCESS_EXEC || off >= r->len)
		return false;
	e = installed_at(ctx, r, off & ~(us - 1));
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
		ceil = btmmu__ram_ceiling(e->ram, e->gpa + (off & (unit - 1)),
					  UINT64_C(1) << BTMMU_GRANULE_SHIFT);
		if (!(ceil & access) && !(access == BTMMU_ACCESS_READ && (ceil & BTMMU_PROT_EXEC)))
			flags |= BTMMU_FAULT_PROTECTED;
	}
	btmmu__unlock(&ctx->lock);
	return flags;
}

/* ------------------------------------------------------------------ */
/* Map                                                                 */
/* ------------------------------------------------------------------ */

/* Pending coalesced install: units adjacent in the region and in the fd. */
#define RUN_MAX 64

struct run {
	uintptr_t addr;
	uint64_t len, fd_off;
	int fd;
	uint32_t prot;
	bool populate;
	unsigned n;
	struct btmmu__entry *e[RUN_MAX];
	int pages[RUN_MAX]; /* guest pages of the request each makes accessible */
};

struct mapper {
	struct btmmu *ctx;
	struct btmmu_space *sp;
	struct btmmu__region *r;
	struct run run;
	bool populate; /* the request being mapped asks for BTMMU_MAP_POPULATE */
	uint64_t pages; /* guest pages made directly accessible */
	int err; /* first install error */
};

static void run_fail(struct mapper *m, int err)
{
	struct btmmu *ctx = m->ctx;
	unsigned i;

	/* The kernel may have dropped the old mappings: restore no-access. */
	host_clear(ctx, m->r, m->run.addr - m->r->start, m->run.len);
	for (i = 0; i < m->run.n; i++) {
		struct btmmu__entry *e = m->run.e[i];

		e->flags &= (uint8_t)~BTMMU__E_PINNED;
		entry_unlink(ctx, e);
	}
	if (!m->err)
		m->err = err;
}

/* n entries of the mapper's region were installed. */
static void count_fills(struct mapper *m, unsigned n)
{
	btmmu__stat_add(&m->ctx->st.fills, n);
	m->r->view->fills += n;
}

static void run_flush(struct mapper *m)
{
	struct btmmu *ctx = m->ctx;
	unsigned i;
	int ret;

	if (!m->run.n)
		return;
	ret = ctx->ops->install(ctx, m->run.addr, m->run.len, (int)m->run.prot, m->run.fd,
				m->run.fd_off, m->run.populate);
	if (ret) {
		run_fail(m, ret);
	} else {
		btmmu__stat_add(&ctx->st.install_calls, 1);
		count_fills(m, m->run.n);
		for (i = 0; i < m->run.n; i++) {
			struct btmmu__entry *e = m->run.e[i];

			e->npieces = 1;
			e->hprot = (uint8_t)m->run.prot;
			e->flags &= (uint8_t)~BTMMU__E_PINNED;
			mark_installed(ctx, e);
			m->pages += m->run.pages[i];
		}
	}
	m->run.n = 0;
}

/*
 * Install an entry whose bookkeeping is ready (linked, not marked
 * installed): join the pending run when it continues it, else start one or
 * install alone (multi-piece units).
 */
static void queue_install(struct mapper *m, struct btmmu__entry *e, int subpages)
{
	struct btmmu *ctx = m->ctx;
	uint64_t us = unit_size(e), hp = UINT64_C(1) << ctx->host_page_shift;
	uint32_t prot;
	int ret;

	e->flags |= BTMMU__E_PINNED;
	if (!make_room(ctx, 0, (uint64_t)m->run.n + 3 + (e->ram->ndenied ? us / hp : 0))) {
		/* A replaced entry still has its old mapping: it must go too. */
		host_clear(ctx, m->r, e->off, us);
		e->flags &= (uint8_t)~BTMMU__E_PINNED;
		entry_unlink(ctx, e);
		return;
	}
	if (e->ram->ndenied && us > hp) {
		/* Possibly several pieces: install alone. */
		run_flush(m);
		ret = apply_runs(ctx, e, true, m->populate);
		if (ret) {
			host_clear(ctx, m->r, e->off, us);
			e->flags &= (uint8_t)~BTMMU__E_PINNED;
			entry_unlink(ctx, e);
			if (!m->err)
				m->err = ret;
			return;
		}
		e->flags &= (uint8_t)~BTMMU__E_PINNED;
		count_fills(m, 1);
		mark_installed(ctx, e);
		m->pages += subpages;
		return;
	}
	prot = btmmu__entry_host_prot(ctx, e, 0);
	if (m->run.n && (m->run.n == RUN_MAX || m->run.addr + m->run.len != m->r->start + e->off ||
			 m->run.fd != e->ram->fd || m->run.fd_off + m->run.len != fd_off(e, 0) ||
			 m->run.prot != prot || m->run.populate != m->populate))
		run_flush(m);
	if (!m->run.n) {
		m->run.addr = m->r->start + e->off;
		m->run.len = 0;
		m->run.fd = e->ram->fd;
		m->run.fd_off = fd_off(e, 0);
		m->run.prot = prot;
		m->run.populate = m->populate;
	}
	m->run.len += us;
	m->run.pages[m->run.n] = subpages;
	m->run.e[m->run.n++] = e;
}

static void set_rights(struct btmmu *ctx, struct btmmu__entry *e, uint64_t bits, uint32_t prot,
		       bool global)
{
	e->rmask = (prot & BTMMU_PROT_READ) ? e->rmask | bits : e->rmask & ~bits;
	e->wmask = (prot & BTMMU_PROT_WRITE) ? e->wmask | bits : e->wmask & ~bits;
	e->xmask = (prot & BTMMU_PROT_EXEC) ? e->xmask | bits : e->xmask & ~bits;
	e->gmask = global ? e->gmask | bits : e->gmask & ~bits;
	e->present |= bits;
	list_fix(ctx, e);
}

/* Find or create the entry at off; NULL when the pool cannot make room. */
static void run_flush(struct mapper *m);

static struct btmmu__entry *entry_get(struct mapper *m, uint64_t off)
{
	struct btmmu *ctx = m->ctx;
	struct btmmu__entry *e = btmmu__entry_find(ctx, m->r, off);

	if (e && (e->flags & BTMMU__E_PINNED)) {
		/* Queued earlier in this batch: install it first, then update it. */
		run_flush(m);
		e = btmmu__entry_find(ctx, m->r, off);
	}
	if (e)
		return e;
	if (!make_room(ctx, 1, 0))
		return NULL;
	e = entry_alloc(ctx);
	if (!e)
		return NULL;
	e->off = off;
	e->unit_shift = (uint8_t)m->sp->unit_shift;
	entry_link(ctx, m->r, e);
	return e;
}

/* Guest page == unit (guest pages at least as large as the host page). */
static void map_unit(struct mapper *m, uint64_t off, uint64_t gpa, struct btmmu_ram *ram,
		     uint32_t prot, bool global)
{
	struct btmmu *ctx = m->ctx;
	struct btmmu__entry *e = entry_get(m, off);

	if (!e)
		return;
	if (e->flags & BTMMU__E_INSTALLED) {
		if (e->gpa == gpa && e->ram == ram && entry_want(e) == prot) {
			if (entry_global(e) != global) {
				mark_uninstalled(ctx, e);
				set_rights(ctx, e, 1, prot, global);
				mark_installed(ctx, e);
			}
			e->flags |= BTMMU__E_REF;
			m->pages += 1;
			return;
		}
		/* Replaced in place: MAP_FIXED swaps the mapping atomically. */
		mark_uninstalled(ctx, e);
	}
	if (e->ram != ram) {
		if (e->ram)
			e->ram->users--;
		ram->users++;
		e->ram = ram;
	}
	e->gpa = gpa;
	e->present = 0;
	set_rights(ctx, e, 1, prot, global);
	queue_install(m, e, 1);
}

/*
 * Guest pages smaller than the host page: record the pages of `bits`
 * (gpa is the frame of the lowest one, at index first) and install the host
 * page once it is complete and uniform.
 */
static void map_subpages(struct mapper *m, uint64_t off, uint64_t bits, unsigned first,
			 uint64_t gpa, struct btmmu_ram *ram, uint32_t prot, bool global)
{
	struct btmmu *ctx = m->ctx;
	struct btmmu_space *sp = m->sp;
	uint64_t us = UINT64_C(1) << sp->unit_shift;
	uint64_t base = gpa - ((uint64_t)first << sp->page_shift);
	struct btmmu__entry *e = entry_get(m, off);
	int npages = __builtin_popcountll(bits);
	uint32_t old_want;
	bool was;
	uint64_t old_gpa;

	if (!e)
		return;
	was = e->flags & BTMMU__E_INSTALLED;
	old_want = entry_want(e);
	old_gpa = e->gpa;
	if (was)
		mark_uninstalled(ctx, e); /* before any change: account() reads the old state */
	if (!e->present) {
		e->flags &= (uint8_t)~BTMMU__E_NONUNIFORM;
		if (e->ram != ram) {
			if (e->ram)
				e->ram->users--;
			ram->users++;
			e->ram = ram;
		}
		e->gpa = base;
		if ((base & (us - 1)) || gpa < base || base < ram->gpa ||
		    base - ram->gpa > ram->len - us)
			e->flags |= BTMMU__E_NONUNIFORM;
	} else if (e->gpa != base || e->ram != ram) {
		e->flags |= BTMMU__E_NONUNIFORM;
	}
	set_rights(ctx, e, bits, prot, global);
	if (e->present != sp->sub_full || (e->flags & BTMMU__E_NONUNIFORM)) {
		if (was) /* a page no longer fits: the host page must go */
			host_clear(ctx, m->r, off, us);
		return;
	}
	if (was && e->gpa == old_gpa && entry_want(e) == old_want) {
		/* Nothing the host sees changed. */
		mark_installed(ctx, e);
		m->pages += npages;
		return;
	}
	queue_install(m, e, npages);
}

static bool canonical(const struct btmmu_space *sp, uint64_t a)
{
	unsigned sh = 64 - sp->va_bits;

	if (sp->va_bits == 64)
		return true;
	if (sp->flags & BTMMU_SPACE_SIGN_EXTEND)
		return (uint64_t)((int64_t)(a << sh) >> sh) == a;
	return (a >> sp->va_bits) == 0;
}

/* [gva, gva+len) lies in the guest VA, without wrapping around it. */
static bool va_valid(const struct btmmu_space *sp, uint64_t gva, uint64_t len)
{
	uint64_t last = gva + len - 1;

	if (!canonical(sp, gva) || !canonical(sp, last))
		return false;
	if (sp->flags & BTMMU_SPACE_SIGN_EXTEND)
		return (int64_t)last >= (int64_t)gva;
	return last >= gva;
}

/*
 * Clip [gva, gva+len) to the window: region offsets [*lo, *hi), and *skip
 * bytes of the request before the window. False when they do not meet.
 */
static bool clip(const struct btmmu_space *sp, uint64_t gva, uint64_t len, uint64_t *lo,
		 uint64_t *hi, uint64_t *skip)
{
	uint64_t off = gva - sp->window_gva;

	if (off < sp->window_size) {
		*skip = 0;
		*lo = off;
		*hi = off + BTMMU_MIN(len, sp->window_size - off);
		return true;
	}
	*skip = sp->window_gva - gva;
	if (*skip >= len)
		return false;
	*lo = 0;
	*hi = BTMMU_MIN(len - *skip, sp->window_size);
	return true;
}

static int validate_req(const struct btmmu_space *sp, const struct btmmu_map_req *q)
{
	uint64_t pm = (UINT64_C(1) << sp->page_shift) - 1;

	if (q->flags & ~(BTMMU_MAP_GLOBAL | BTMMU_MAP_POPULATE))
		return -EINVAL;
	if (!q->prot || (q->prot & ~BTMMU_PROT_RWX))
		return -EINVAL;
	if (!q->len || (q->len & pm) || (q->gva & pm) || (q->gpa & pm))
		return -EINVAL;
	if (q->gpa + q->len < q->gpa)
		return -ENXIO;
	if (!va_valid(sp, q->gva, q->len))
		return -ERANGE;
	return 0;
}

static void map_req(struct mapper *m, const struct btmmu_map_req *q, struct btmmu_ram *ram)
{
	struct btmmu_space *sp = m->sp;
	uint64_t us = UINT64_C(1) << sp->unit_shift;
	bool global = q->flags & BTMMU_MAP_GLOBAL;
	uint64_t lo, hi, skip, off;

	/* Outside the window the translated code's check takes the slow path. */
	if (!clip(sp, q->gva, q->len, &lo, &hi, &skip))
		return;
	m->populate = q->flags & BTMMU_MAP_POPULATE;
	if (sp->unit_shift == sp->page_shift) {
		for (off = lo; off < hi; off += us)
			map_unit(m, off, q->gpa + skip + (off - lo), ram, q->prot, global);
		return;
	}
	for (off = lo; off < hi;) {
		uint64_t unit = off & ~(us - 1);
		uint64_t end = BTMMU_MIN(hi, unit + us);
		unsigned first = (unsigned)((off - unit) >> sp->page_shift);
		unsigned n = (unsigned)((end - off) >> sp->page_shift);
		uint64_t bits = (n >= 64 ? ~UINT64_C(0) : ((UINT64_C(1) << n) - 1)) << first;

		map_subpages(m, unit, bits, first, q->gpa + skip + (off - lo), ram, q->prot,
			     global);
		off = end;
	}
}

static int check_view(const struct btmmu_space *sp, unsigned view)
{
	return view < sp->nviews ? 0 : -EINVAL;
}

BTMMU_EXPORT int btmmu_map_batch(struct btmmu_space *sp, unsigned view,
				 const struct btmmu_map_req *reqs, unsigned nreq, uint64_t gen)
{
	struct btmmu_ram *ram = NULL;
	struct btmmu *ctx;
	struct mapper m;
	unsigned i;
	int ret;

	if (!sp || check_view(sp, view))
		return -EINVAL;
	if (btmmu__dead(sp->ctx))
		return -EOWNERDEAD;
	if (!nreq)
		return 0;
	if (!reqs)
		return -EFAULT;
	for (i = 0; i < nreq; i++) {
		ret = validate_req(sp, &reqs[i]);
		if (ret)
			return ret;
	}
	ctx = sp->ctx;
	if (btmmu__lock_mine(&ctx->lock))
		return -EDEADLK;
	if (gen && atomic_load(&sp->views[view].gen) != gen) {
		btmmu__unlock(&ctx->lock);
		return -ESTALE;
	}
	for (i = 0; i < nreq; i++) {
		if (!btmmu__ram_find(ctx, reqs[i].gpa, reqs[i].len)) {
			btmmu__unlock(&ctx->lock);
			return -ENXIO;
		}
	}
	m.run.n = 0;
	m.pages = 0;
	m.err = 0;
	m.ctx = ctx;
	m.sp = sp;
	m.r = sp->views[view].cur;
	for (i = 0; i < nreq; i++) {
		const struct btmmu_map_req *q = &reqs[i];

		if (!ram || q->gpa < ram->gpa || q->gpa - ram->gpa > ram->len - q->len)
			ram = btmmu__ram_find(ctx, q->gpa, q->len);
		map_req(&m, q, ram);
	}
	run_flush(&m);
	btmmu__unlock(&ctx->lock);
	if (!m.pages && m.err)
		return m.err;
	return (int)BTMMU_MIN(m.pages, (uint64_t)INT32_MAX);
}

BTMMU_EXPORT int btmmu_map(struct btmmu_space *sp, unsigned view, const struct btmmu_map_req *req)
{
	if (!sp || check_view(sp, view))
		return -EINVAL;
	if (btmmu__dead(sp->ctx))
		return -EOWNERDEAD;
	if (!req)
		return -EFAULT;
	return btmmu_map_batch(sp, view, req, 1, 0);
}

/* ------------------------------------------------------------------ */
/* Unmap and flush                                                     */
/* ------------------------------------------------------------------ */

static int check_views(const struct btmmu_space *sp, uint32_t views)
{
	uint32_t all = sp->nviews >= 32 ? UINT32_MAX : (UINT32_C(1) << sp->nviews) - 1;

	return views && !(views & ~all) ? 0 : -EINVAL;
}

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
		mark_uninstalled(ctx, e);
		*clo = BTMMU_MIN(*clo, e->off);
		*chi = BTMMU_MAX(*chi, e->off + us);
	}
	e->present &= ~bits;
	if (!e->present) {
		entry_unlink(ctx, e);
		return 1;
	}
	list_fix(ctx, e);
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
		host_clear(ctx, r, clo, chi - clo);
	return n;
}

BTMMU_EXPORT int btmmu_unmap(struct btmmu_space *sp, uint32_t views, uint64_t gva, uint64_t len)
{
	uint64_t pm, lo = 0, hi = 0, skip;
	struct btmmu *ctx;
	unsigned v, n = 0;
	bool inside;

	if (!sp || check_views(sp, views))
		return -EINVAL;
	if (btmmu__dead(sp->ctx))
		return -EOWNERDEAD;
	pm = (UINT64_C(1) << sp->page_shift) - 1;
	if (!len || (len & pm) || (gva & pm))
		return -EINVAL;
	if (!va_valid(sp, gva, len))
		return -ERANGE;
	ctx = sp->ctx;
	inside = clip(sp, gva, len, &lo, &hi, &skip);
	if (btmmu__lock_mine(&ctx->lock))
		return -EDEADLK;
	for (v = 0; v < sp->nviews; v++) {
		if (!(views & (UINT32_C(1) << v)))
			continue;
		if (inside)
			n += unmap_region(ctx, sp->views[v].cur, lo, hi);
		bump_gen(&sp->views[v]);
	}
	/* Holes split merged mappings: back under the budget. */
	make_room(ctx, 0, 0);
	btmmu__unlock(&ctx->lock);
	btmmu__stat_add(&ctx->st.unmaps, n);
	return (int)BTMMU_MIN(n, (unsigned)INT32_MAX);
}

static void publish_base(struct btmmu_space *sp, unsigned v)
{
	struct btmmu__view *view = &sp->views[v];
	uintptr_t base = view->cur->start - (uintptr_t)sp->window_gva;

	atomic_store_explicit(&view->base, base, memory_order_release);
	if (sp->base_slots)
		__atomic_store_n(&sp->base_slots[v], base, __ATOMIC_RELEASE);
}

void btmmu__view_publish(struct btmmu_space *sp, unsigned v)
{
	publish_base(sp, v);
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
			btmmu__region_drop_entries(ctx, cur, true);
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
	publish_base(sp, v);
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
			mark_uninstalled(ctx, e);
			if (!disjoint) {
				if (!host_clear(ctx, r, e->off, us))
					return; /* the whole region went */
			} else {
				clo = BTMMU_MIN(clo, e->off);
				chi = BTMMU_MAX(chi, e->off + us);
			}
		}
		/* Sub-page entries keep their global pages, uninstalled. */
		e->present &= e->gmask;
		if (!e->present)
			entry_unlink(ctx, e);
		else
			list_fix(ctx, e);
	}
	spans_reset(r, false);
	if (clo < chi)
		host_clear(ctx, r, clo, chi - clo);
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
			btmmu__stat_add(&ctx->st.flushes_nonglobal, 1);
		} else {
			*retired |= flush_full(ctx, sp, v);
			btmmu__stat_add(&ctx->st.flushes, 1);
		}
		bump_gen(&sp->views[v]);
	}
}

BTMMU_EXPORT int btmmu_flush(struct btmmu_space *sp, uint32_t views, uint32_t flags)
{
	struct btmmu *ctx;
	bool retired = false;

	if (!sp || check_views(sp, views) || (flags & ~BTMMU_FLUSH_NONGLOBAL))
		return -EINVAL;
	if (btmmu__dead(sp->ctx))
		return -EOWNERDEAD;
	ctx = sp->ctx;
	if (btmmu__lock_mine(&ctx->lock))
		return -EDEADLK;
	flush_space(ctx, sp, views, flags, &retired);
	if (flags & BTMMU_FLUSH_NONGLOBAL)
		make_room(ctx, 0, 0); /* holes split merged mappings */
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
		flush_space(ctx, sp,
			    sp->nviews >= 32 ? UINT32_MAX : (UINT32_C(1) << sp->nviews) - 1, 0,
			    &retired);
	btmmu__unlock(&ctx->lock);
	if (retired)
		btmmu__reaper_kick(ctx);
	return 0;
}

/* ------------------------------------------------------------------ */
/* Protect                                                             */
/* ------------------------------------------------------------------ */

static bool overlaps(const struct btmmu__entry *e, uint64_t gpa, uint64_t len)
{
	return e->gpa < gpa + len && gpa < e->gpa + unit_size(e);
}

static unsigned reapply(struct btmmu *ctx, struct btmmu__entry *e)
{
	uint8_t old = e->hprot;
	uint32_t oldp = e->npieces;

	if (!(e->flags & BTMMU__E_INSTALLED) || e->region->state == BTMMU__REGION_TEARING)
		return 0;
	mark_uninstalled(ctx, e);
	if (apply_runs(ctx, e, false, false)) {
		/* Rights unknown now: drop the entry, the next access faults. */
		if (host_clear(ctx, e->region, e->off, unit_size(e)))
			entry_unlink(ctx, e);
		return 1;
	}
	mark_installed(ctx, e);
	return e->npieces != 1 || oldp != 1 || e->hprot != old;
}

/* Re-apply rights to every installed alias of [gpa, gpa+len) in ram. */
static unsigned apply_rights(struct btmmu *ctx, struct btmmu_ram *ram, uint64_t gpa, uint64_t len)
{
	uint64_t lookups = 0, u, replaced;
	unsigned s, n = 0;
	uint32_t i;

again:
	/* A region replaced under us (host_clear) frees entries we walk: restart. */
	replaced = ctx->replaces;
	for (s = 0; s < 32; s++) {
		if (ctx->unit_shifts & (UINT32_C(1) << s))
			lookups += (len >> s) + 2;
	}
	/* Fewer entries than lookups: visit the entries, region by region. */
	if (lookups > ctx->npool - 1 - ctx->nfree) {
		struct btmmu_space *sp;

		cds_list_for_each_entry(sp, &ctx->spaces, node) {
			size_t r, nreg;
			struct btmmu__region *regs = btmmu__space_regions(sp, &nreg);

			for (r = 0; r < nreg; r++) {
				struct btmmu__region *reg = &regs[r];
				int g;

				for (g = 0; g < 2; g++) {
					for (i = reg->head[g]; i;) {
						struct btmmu__entry *e = &ctx->pool[i];

						i = e->reg_next; /* reapply may drop e */
						if ((e->flags & BTMMU__E_INSTALLED) &&
						    e->ram == ram && overlaps(e, gpa, len))
							n += reapply(ctx, e);
						if (ctx->replaces != replaced)
							goto again;
					}
				}
			}
		}
		return n;
	}
	for (s = 0; s < 32; s++) {
		uint64_t us = UINT64_C(1) << s;

		if (!(ctx->unit_shifts & (UINT32_C(1) << s)))
			continue;
		for (u = gpa & ~(us - 1); u < gpa + len; u += us) {
			i = ctx->pa_hash[pa_bucket(ctx, u)];
			while (i) {
				struct btmmu__entry *e = &ctx->pool[i];

				i = e->pa_next;
				if (e->gpa == u && e->unit_shift == s && e->ram == ram)
					n += reapply(ctx, e);
				if (ctx->replaces != replaced)
					goto again;
			}
		}
	}
	return n;
}

static int set_ceiling(struct btmmu *ctx, uint64_t gpa, uint64_t len, uint32_t prot)
{
	uint64_t gm = (UINT64_C(1) << BTMMU_GRANULE_SHIFT) - 1, g, end;
	uint8_t deny = (uint8_t)(BTMMU_PROT_RWX & ~prot);
	struct btmmu_ram *ram;
	bool changed = false;
	unsigned n;

	if (!ctx)
		return -EINVAL;
	if (btmmu__dead(ctx))
		return -EOWNERDEAD;
	if ((prot & ~BTMMU_PROT_RWX) || !len || (gpa & gm) || (len & gm) || gpa + len < gpa)
		return -EINVAL;
	if (btmmu__lock_mine(&ctx->lock))
		return -EDEADLK;
	ram = btmmu__ram_find(ctx, gpa, len);
	if (!ram) {
		btmmu__unlock(&ctx->lock);
		return -ENXIO;
	}
	end = (gpa - ram->gpa + len) >> BTMMU_GRANULE_SHIFT;
	for (g = (gpa - ram->gpa) >> BTMMU_GRANULE_SHIFT; g < end; g++) {
		uint8_t old = ram->deny[g];

		if (old == deny)
			continue;
		/* Only write when changing: untouched granules stay unallocated. */
		ram->deny[g] = deny;
		ram->ndenied += (old == 0) - (deny == 0);
		changed = true;
	}
	n = changed ? apply_rights(ctx, ram, gpa, len) : 0;
	/* Entries split by differing rights may have used up the budget. */
	make_room(ctx, 0, 0);
	btmmu__unlock(&ctx->lock);
	btmmu__stat_add(&ctx->st.protects, n);
	return (int)n;
}

BTMMU_EXPORT int btmmu_protect(struct btmmu *ctx, uint64_t gpa, uint64_t len, uint32_t prot)
{
	return set_ceiling(ctx, gpa, len, prot);
}

BTMMU_EXPORT int btmmu_unprotect(struct btmmu *ctx, uint64_t gpa, uint64_t len)
{
	return set_ceiling(ctx, gpa, len, BTMMU_PROT_RWX);
}
