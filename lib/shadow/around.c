/* SPDX-License-Identifier: MIT */
/*
 * btmmu_map_around(): fault-around. A translator filling the shadow after
 * a fault installs the faulting page and the present neighbours of its
 * group (a guest TLB entry for a large page covers the whole page; the
 * pages next to one just touched are likely next). The library knows
 * which of those the view holds already, so the translator's page walk
 * (the callback) runs only for the others, without the lock, and the
 * requests go in coalesced batches. Async-signal-safe: no allocation (the
 * requests are on the stack), the lock taken and dropped around each
 * batch, as by btmmu_map_batch().
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "shadow.h"

#define AROUND_MAX_PAGES 1024u /* largest group, in guest pages */
#define AROUND_BATCH 32u       /* requests per batch (on the stack) */

/*
 * Which pages of [first, first + n pages) view v holds already, as bits
 * of held[] (a page outside the window counts as held: nothing to do).
 */
static int held_pages(struct btmmu_space *sp, unsigned v, uint64_t first, unsigned n,
		      uint64_t *held)
{
	struct btmmu *ctx = sp->ctx;
	struct btmmu__region *r;
	uint64_t ps = UINT64_C(1) << sp->page_shift, us = UINT64_C(1) << sp->unit_shift;
	unsigned i;

	memset(held, 0, (n + 63) / 64 * sizeof(*held));
	if (btmmu__lock_mine(&ctx->lock))
		return -EDEADLK;
	r = sp->views[v].cur;
	for (i = 0; i < n; i++) {
		uint64_t gva = first + (uint64_t)i * ps, lo, hi, skip;
		struct btmmu__entry *e;
		bool in;

		in = btmmu__va_valid(sp, gva, ps) && btmmu__window_clip(sp, gva, ps, &lo, &hi, &skip);
		e = in ? btmmu__installed_at(ctx, r, lo & ~(us - 1)) : NULL;
		/* Sub-page units: the page itself must be present in the entry. */
		if (!in || (e && (e->present >> ((lo & (us - 1)) >> sp->page_shift)) & 1))
			held[i / 64] |= UINT64_C(1) << (i % 64);
	}
	btmmu__unlock(&ctx->lock);
	return 0;
}

/* q continues p: adjacent in VA and PA, same rights and flags, one large page. */
static bool continues(const struct btmmu_map_req *p, const struct btmmu_map_req *q)
{
	unsigned s = (q->flags & BTMMU_MAP_PAGE_SHIFT_MASK) >> 8;

	return p->gva + p->len == q->gva && p->gpa + p->len == q->gpa && p->prot == q->prot &&
	       p->flags == q->flags && (!s || (p->gva >> s) == (q->gva >> s));
}

struct batch {
	struct btmmu_space *sp;
	unsigned view, n;
	uint64_t gen;
	int pages, err;
	struct btmmu_map_req q[AROUND_BATCH];
};

static void batch_flush(struct batch *b)
{
	int ret;

	if (!b->n)
		return;
	ret = btmmu_map_batch(b->sp, b->view, b->q, b->n, b->gen);
	if (ret >= 0)
		b->pages = ret > INT32_MAX - b->pages ? INT32_MAX : b->pages + ret;
	else if (!b->err)
		b->err = ret;
	b->n = 0;
}

static void batch_add(struct batch *b, const struct btmmu_map_req *q)
{
	if (b->n && continues(&b->q[b->n - 1], q)) {
		b->q[b->n - 1].len += q->len;
		return;
	}
	if (b->n == AROUND_BATCH)
		batch_flush(b);
	b->q[b->n++] = *q;
}

BTMMU_EXPORT int btmmu_map_around(struct btmmu_space *sp, unsigned view,
				  const struct btmmu_map_req *req,
				  const struct btmmu_around_args *args, uint64_t gen)
{
	uint64_t held[AROUND_MAX_PAGES / 64], ps, first, last;
	struct btmmu_around_args a;
	struct batch b;
	unsigned n, i;
	int ret;

	ret = btmmu__view_call(sp, view);
	if (ret)
		return ret;
	if (!req)
		return -EFAULT;
	ret = btmmu__copy_args(&a, sizeof(a), args);
	if (ret)
		return ret;
	ps = UINT64_C(1) << sp->page_shift;
	if (a.flags || !a.fn || !a.group || (a.group & (a.group - 1)) || a.group < ps ||
	    a.group / ps > AROUND_MAX_PAGES)
		return -EINVAL;
	if (a.group >= (UINT64_C(1) << (sp->va_bits - 1)))
		return -EINVAL;
	/* req itself is checked by btmmu_map_batch(), before anything is installed. */
	b.sp = sp;
	b.view = view;
	b.gen = gen;
	b.n = 0;
	b.pages = 0;
	b.err = 0;
	batch_add(&b, req);
	batch_flush(&b); /* the faulting page first: its error is the call's */
	if (b.err)
		return b.err;
	first = req->gva & ~(a.group - 1);
	n = (unsigned)(a.group / ps);
	if (n <= 1 || held_pages(sp, view, first, n, held))
		return b.pages;
	last = req->gva + req->len - 1;
	for (i = 0; i < n && !b.err; i++) {
		uint64_t gva = first + (uint64_t)i * ps;
		struct btmmu_map_req q;

		if ((held[i / 64] >> (i % 64)) & 1)
			continue;
		if (gva - req->gva <= last - req->gva)
			continue; /* req's own pages */
		memset(&q, 0, sizeof(q));
		q.gva = gva;
		q.len = ps;
		ret = a.fn(a.opaque, gva, &q);
		if (ret < 0)
			break;
		if (ret != 1)
			continue;
		q.gva = gva;
		q.len = ps;
		batch_add(&b, &q);
	}
	batch_flush(&b);
	/* A neighbour refused (a stale generation, bad input, no room) costs nothing. */
	return b.pages;
}
