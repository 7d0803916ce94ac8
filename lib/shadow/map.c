/* SPDX-License-Identifier: MIT */
/*
 * btmmu_map() and btmmu_map_batch(): validate, find or create entries,
 * and install runs of units adjacent in the region and in the fd with one
 * host call each. Async-signal-safe (callable from the fault callback).
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "shadow.h"

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
	btmmu__host_clear(ctx, m->r, m->run.addr - m->r->start, m->run.len);
	for (i = 0; i < m->run.n; i++) {
		struct btmmu__entry *e = m->run.e[i];

		e->flags &= (uint8_t)~BTMMU__E_PINNED;
		btmmu__entry_unlink(ctx, e);
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
			btmmu__mark_installed(ctx, e);
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
	if (!btmmu__make_room(ctx, 0, (uint64_t)m->run.n + 3 + (e->ram->ndenied ? us / hp : 0))) {
		/* A replaced entry still has its old mapping: it must go too. */
		btmmu__host_clear(ctx, m->r, e->off, us);
		e->flags &= (uint8_t)~BTMMU__E_PINNED;
		btmmu__entry_unlink(ctx, e);
		return;
	}
	if (e->ram->ndenied && us > hp) {
		/* Possibly several pieces: install alone. */
		run_flush(m);
		ret = btmmu__apply_runs(ctx, e, true, m->populate);
		if (ret) {
			btmmu__host_clear(ctx, m->r, e->off, us);
			e->flags &= (uint8_t)~BTMMU__E_PINNED;
			btmmu__entry_unlink(ctx, e);
			if (!m->err)
				m->err = ret;
			return;
		}
		e->flags &= (uint8_t)~BTMMU__E_PINNED;
		count_fills(m, 1);
		btmmu__mark_installed(ctx, e);
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
	btmmu__list_fix(ctx, e);
}

/* Find or create the entry at off; NULL when the pool cannot make room. */
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
	if (!btmmu__make_room(ctx, 1, 0))
		return NULL;
	e = btmmu__entry_alloc(ctx);
	if (!e)
		return NULL;
	e->off = off;
	e->unit_shift = (uint8_t)m->sp->unit_shift;
	btmmu__entry_link(ctx, m->r, e);
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
		if (e->gpa == gpa && e->ram == ram && btmmu__entry_want(e) == prot) {
			if (btmmu__entry_global(e) != global) {
				btmmu__mark_uninstalled(ctx, e);
				set_rights(ctx, e, 1, prot, global);
				btmmu__mark_installed(ctx, e);
			}
			e->flags |= BTMMU__E_REF;
			m->pages += 1;
			return;
		}
		/* Replaced in place: MAP_FIXED swaps the mapping atomically. */
		btmmu__mark_uninstalled(ctx, e);
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
	old_want = btmmu__entry_want(e);
	old_gpa = e->gpa;
	if (was)
		btmmu__mark_uninstalled(ctx, e); /* before any change: account() reads the old state */
	if (e->present && e->gpa == base && e->ram == ram) {
		e->match |= bits;
	} else if (!(e->present & ~bits & e->match)) {
		/*
		 * No other page agrees with the unit's frame (none is present,
		 * or those that are were mapped elsewhere): this request's
		 * frame is the unit's now.
		 */
		e->flags &= (uint8_t)~BTMMU__E_BADFRAME;
		if (e->ram != ram) {
			if (e->ram)
				e->ram->users--;
			ram->users++;
			e->ram = ram;
		}
		e->gpa = base;
		e->match = bits;
		if ((base & (us - 1)) || gpa < base || base < ram->gpa ||
		    base - ram->gpa > ram->len - us)
			e->flags |= BTMMU__E_BADFRAME;
	} else {
		e->match &= ~bits;
	}
	set_rights(ctx, e, bits, prot, global);
	if (e->present != sp->sub_full || (e->present & ~e->match) ||
	    (e->flags & BTMMU__E_BADFRAME)) {
		if (was) /* a page no longer fits: the host page must go */
			btmmu__host_clear(ctx, m->r, off, us);
		return;
	}
	if (was && e->gpa == old_gpa && btmmu__entry_want(e) == old_want) {
		/* Nothing the host sees changed. */
		btmmu__mark_installed(ctx, e);
		m->pages += npages;
		return;
	}
	queue_install(m, e, npages);
}

static int validate_req(const struct btmmu_space *sp, const struct btmmu_map_req *q)
{
	uint64_t pm = (UINT64_C(1) << sp->page_shift) - 1;

	unsigned shift = (q->flags & BTMMU_MAP_PAGE_SHIFT_MASK) >> 8;

	if (q->flags & ~(BTMMU_MAP_GLOBAL | BTMMU_MAP_POPULATE | BTMMU_MAP_PAGE_SHIFT_MASK))
		return -EINVAL;
	if (!q->prot || (q->prot & ~BTMMU_PROT_RWX))
		return -EINVAL;
	if (!q->len || (q->len & pm) || (q->gva & pm) || (q->gpa & pm))
		return -EINVAL;
	if (q->gpa + q->len < q->gpa)
		return -ENXIO;
	if (!btmmu__va_valid(sp, q->gva, q->len))
		return -ERANGE;
	/* A large page is larger than a page, smaller than the VA, and holds the request. */
	if (shift && (shift < sp->page_shift || shift >= sp->va_bits ||
		      (q->gva >> shift) != ((q->gva + q->len - 1) >> shift)))
		return -EINVAL;
	return 0;
}

static void map_req(struct mapper *m, const struct btmmu_map_req *q, struct btmmu_ram *ram)
{
	struct btmmu_space *sp = m->sp;
	uint64_t us = UINT64_C(1) << sp->unit_shift;
	bool global = q->flags & BTMMU_MAP_GLOBAL;
	uint64_t lo, hi, skip, off;

	unsigned shift = (q->flags & BTMMU_MAP_PAGE_SHIFT_MASK) >> 8;

	/* Outside the window the translated code's check takes the slow path. */
	if (!btmmu__window_clip(sp, q->gva, q->len, &lo, &hi, &skip))
		return;
	if (shift > sp->page_shift)
		btmmu__large_note(sp, (unsigned)(m->r->view - sp->views), q->gva, shift, global);
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

BTMMU_EXPORT int btmmu_map_batch(struct btmmu_space *sp, unsigned view,
				 const struct btmmu_map_req *reqs, unsigned nreq, uint64_t gen)
{
	struct btmmu_ram *ram = NULL;
	struct btmmu *ctx;
	struct mapper m;
	unsigned i;
	int ret;

	ret = btmmu__view_call(sp, view);
	if (ret)
		return ret;
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

		/* The previous request's RAM range, when it holds this one whole. */
		if (!ram || q->gpa < ram->gpa || q->len > ram->len ||
		    q->gpa - ram->gpa > ram->len - q->len)
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
	int ret = btmmu__view_call(sp, view);

	if (ret)
		return ret;
	if (!req)
		return -EFAULT;
	return btmmu_map_batch(sp, view, req, 1, 0);
}
