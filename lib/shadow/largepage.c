/* SPDX-License-Identifier: MIT */
/*
 * The guest large pages a view's entries came from. A guest TLB entry for
 * a large page covers the whole page, and the guest's invalidation of any
 * address in it (x86 INVLPG, Arm TLBI VA) drops the whole translation; the
 * shadow holds such a page as many small entries, of which the invalidated
 * address may not even be one. So btmmu_map() records, per view, each
 * large page a request with BTMMU_MAP_PAGE_SHIFT() came from, and
 * btmmu_unmap() widens its range to every recorded page it touches.
 *
 * One open-addressing table per space (sp->large, BTMMU__LARGE_SLOTS
 * keys, linear probing, deletion by backward shift), allocated with the
 * space: the fault path never allocates. A key is the page's first
 * address with the view, the global bit and the page shift in its low
 * bits (free: a large page is aligned to at least 2^11). A record that
 * outlives its entries only widens a later unmap, so flushes and eviction
 * need not keep the table exact; a record that does not fit would lose an
 * invalidation, so the view is marked instead and its next unmap is a
 * full flush of the view. Everything here is under ctx->lock.
 */
#include <stdbool.h>
#include <stdint.h>

#include "shadow.h"

#define LIMIT (BTMMU__LARGE_SLOTS / 4 * 3) /* records before a view overflows */
#define MASK (BTMMU__LARGE_SLOTS - 1)

/* Keys order guest addresses as the space does: signed when it sign-extends. */
static inline uint64_t flip(const struct btmmu_space *sp)
{
	return (sp->flags & BTMMU_SPACE_SIGN_EXTEND) ? UINT64_C(1) << 63 : 0;
}

static inline uint64_t key_of(uint64_t page, unsigned view, bool global, unsigned shift)
{
	return page | (uint64_t)view << 7 | (uint64_t)global << 6 | shift;
}

static inline unsigned key_shift(uint64_t k)
{
	return (unsigned)(k & 0x3f);
}

static inline unsigned key_view(uint64_t k)
{
	return (unsigned)(k >> 7) & 0xf;
}

static inline bool key_global(uint64_t k)
{
	return (k >> 6) & 1;
}

static inline uint64_t key_page(uint64_t k)
{
	return k & ~((UINT64_C(1) << key_shift(k)) - 1);
}

static uint32_t slot_of(const uint64_t *t, uint64_t k)
{
	uint32_t i = hash64(k, MASK);

	while (t[i] && t[i] != k)
		i = (i + 1) & MASK;
	return i;
}

/* Empty slot i, moving back the keys of its cluster that probe past it. */
static void delete_at(struct btmmu_space *sp, uint32_t i)
{
	struct btmmu__view *view = &sp->views[key_view(sp->large[i])];
	uint64_t *t = sp->large;
	uint32_t j = i, h;

	for (;;) {
		j = (j + 1) & MASK;
		if (!t[j])
			break;
		h = hash64(t[j], MASK);
		/* t[j] stays when its home slot is cyclically in (i, j]. */
		if (i <= j ? (i < h && h <= j) : (i < h || h <= j))
			continue;
		t[i] = t[j];
		i = j;
	}
	t[i] = 0;
	sp->nlarge--;
	if (!--view->large_n && !view->large_overflow)
		view->large_shifts = 0;
}

void btmmu__large_note(struct btmmu_space *sp, unsigned v, uint64_t gva, unsigned shift,
		       bool global)
{
	struct btmmu__view *view = &sp->views[v];
	uint64_t page = gva & ~((UINT64_C(1) << shift) - 1);
	uint64_t k = key_of(page, v, global, shift);
	uint32_t i;

	if (view->large_overflow)
		return; /* its next unmap flushes it whole anyway */
	i = slot_of(sp->large, k);
	if (sp->large[i])
		return; /* known */
	if (sp->nlarge >= LIMIT) {
		view->large_overflow = true;
		return;
	}
	sp->large[i] = k;
	sp->nlarge++;
	view->large_n++;
	view->large_shifts |= UINT64_C(1) << shift;
}

/*
 * Drop view v's records: all of them, or those of pages that were not
 * global (a non-global flush keeps the global entries, and their pages).
 */
void btmmu__large_drop(struct btmmu_space *sp, unsigned v, bool nonglobal_only)
{
	struct btmmu__view *view = &sp->views[v];
	uint64_t *t = sp->large;
	uint32_t i = 0;

	if (!view->large_n) {
		view->large_shifts = 0;
		view->large_overflow = nonglobal_only && view->large_overflow;
		return;
	}
	/*
	 * A deletion moves keys of the cluster back, possibly into slot i:
	 * look at i again. Keys never move from unscanned slots to scanned
	 * ones but i, and those moved from scanned slots were kept already.
	 */
	while (i < BTMMU__LARGE_SLOTS) {
		if (t[i] && key_view(t[i]) == v && !(nonglobal_only && key_global(t[i])))
			delete_at(sp, i);
		else
			i++;
	}
	if (!nonglobal_only) {
		view->large_shifts = 0;
		view->large_overflow = false;
	}
}

/*
 * The record of a large page of view v, with this shift, whose index in
 * flipped order (see flip()) is in [first, last], taken out of the table;
 * false when there is none. Probes each page of the range, or scans the
 * table when that is shorter.
 */
static bool take_one(struct btmmu_space *sp, unsigned v, unsigned shift, uint64_t first,
		     uint64_t last, uint64_t *pagep)
{
	uint64_t *t = sp->large, f = flip(sp), p;
	uint32_t i;
	int g;

	if (!sp->views[v].large_n)
		return false;
	if (last - first < 2 * (uint64_t)sp->views[v].large_n) {
		for (p = first;; p++) {
			for (g = 0; g < 2; g++) {
				uint64_t page = (p << shift) ^ f;

				i = slot_of(t, key_of(page, v, g, shift));
				if (t[i]) {
					*pagep = page;
					delete_at(sp, i);
					return true;
				}
			}
			if (p == last)
				return false;
		}
	}
	for (i = 0; i < BTMMU__LARGE_SLOTS; i++) {
		if (t[i] && key_view(t[i]) == v && key_shift(t[i]) == shift) {
			p = (key_page(t[i]) ^ f) >> shift;
			if (p >= first && p <= last) {
				*pagep = key_page(t[i]);
				delete_at(sp, i);
				return true;
			}
		}
	}
	return false;
}

/*
 * Widen [*gva, *gva + *len) of view v to the whole of every recorded large
 * page it touches (and the pages those touch), taking their records out.
 * False when the view's records overflowed: then only a full flush of the
 * view drops everything the range may have come from.
 */
bool btmmu__large_widen(struct btmmu_space *sp, unsigned v, uint64_t *gva, uint64_t *len)
{
	struct btmmu__view *view = &sp->views[v];
	uint64_t f = flip(sp), lo, last, page;
	bool grew;

	if (view->large_overflow)
		return false;
	if (!view->large_n)
		return true;
	lo = *gva ^ f;
	last = lo + *len - 1;
	do {
		uint64_t shifts = view->large_shifts;

		grew = false;
		while (shifts) {
			unsigned s = (unsigned)__builtin_ctzll(shifts);

			shifts &= shifts - 1;
			while (take_one(sp, v, s, lo >> s, last >> s, &page)) {
				uint64_t plo = page ^ f, plast = plo + ((UINT64_C(1) << s) - 1);

				if (plo < lo || plast > last)
					grew = true;
				lo = BTMMU_MIN(lo, plo);
				last = BTMMU_MAX(last, plast);
			}
		}
	} while (grew);
	*gva = lo ^ f;
	*len = last - lo + 1;
	return true;
}
