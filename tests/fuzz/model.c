/* SPDX-License-Identifier: MIT */
/*
 * The reference model (model.h). Everything here is async-signal-safe (no
 * allocation, no locks): the fault callback consults it.
 */
#include <string.h>

#include "model.h"

/* ------------------------------------------------------------------ */
/* Geometry                                                            */
/* ------------------------------------------------------------------ */

/* btmmu_space_create(3): below 2^va_bits, or sign-extended from bit va_bits-1. */
bool fz_canonical(const struct fz_space *s, uint64_t a)
{
	unsigned sh = 64 - s->va_bits;

	if (s->va_bits >= 64)
		return true;
	if (s->flags & BTMMU_SPACE_SIGN_EXTEND)
		return (uint64_t)((int64_t)(a << sh) >> sh) == a;
	return (a >> s->va_bits) == 0;
}

/*
 * btmmu_map(3): [gva, gva + len) is canonical and does not wrap around. A
 * sign-extended guest's address space runs from -2^(va_bits-1) up, so a
 * range is contiguous when it is in signed order.
 */
bool fz_va_valid(const struct fz_space *s, uint64_t gva, uint64_t len)
{
	uint64_t last = gva + len - 1;

	if (!len || !fz_canonical(s, gva) || !fz_canonical(s, last))
		return false;
	if (s->flags & BTMMU_SPACE_SIGN_EXTEND)
		return (int64_t)last >= (int64_t)gva;
	return last >= gva;
}

/* btmmu_in_window(3), from the geometry the space was created with. */
bool fz_in_window(const struct fz_space *s, uint64_t gva, uint64_t len)
{
	uint64_t off = gva - s->window_gva;

	return off < s->wsize && len <= s->wsize - off;
}

/* btmmu_fault_fn(3): a guard fault's gva is wrapped inside the guest VA. */
uint64_t fz_wrap(const struct fz_space *s, uint64_t gva)
{
	uint64_t mask;

	if (s->va_bits >= 64)
		return gva;
	mask = (UINT64_C(1) << s->va_bits) - 1;
	gva &= mask;
	if ((s->flags & BTMMU_SPACE_SIGN_EXTEND) && (gva >> (s->va_bits - 1)))
		gva |= ~mask;
	return gva;
}

static void sort_u64(uint64_t *a, unsigned n)
{
	unsigned i, j;

	for (i = 1; i < n; i++) {
		uint64_t x = a[i];

		for (j = i; j > 0 && a[j - 1] > x; j--)
			a[j] = a[j - 1];
		a[j] = x;
	}
}

/*
 * Four zones of hot pages per space, each a whole number of units: the
 * window's first pages, pages straddling its end (the part past the end is
 * outside the window, or not canonical), its middle (gva 0 for a
 * sign-extended space covering the whole VA), and pages straddling its
 * start. The model tracks the pages of the zones inside the window.
 */
void fz_space_layout(struct fz_space *s)
{
	uint64_t half, mid;
	unsigned z, i, n = 0;

	s->page = UINT64_C(1) << s->page_shift;
	s->unit = UINT64_C(1) << s->unit_shift;
	s->hp = UINT64_C(1) << s->hps;
	s->ppu = (unsigned)(s->unit >> s->page_shift);
	s->wsize = UINT64_C(1) << s->window_bits;
	s->guard = s->hp > (UINT64_C(64) << 10) ? s->hp : UINT64_C(64) << 10;
	s->zone_n = 4 * s->ppu > 32 ? 4 * s->ppu : 32;
	if (s->zone_n > FZ_MAX_HOT / FZ_NZONE)
		s->zone_n = FZ_MAX_HOT / FZ_NZONE;
	half = (uint64_t)(s->zone_n / 2) * s->page;
	mid = (s->wsize / 2) & ~(s->unit - 1);
	s->zone[0] = s->window_gva;
	s->zone[1] = s->window_gva + s->wsize - half;
	s->zone[2] = s->window_gva + mid - half;
	s->zone[3] = s->window_gva - half;
	for (z = 0; z < FZ_NZONE; z++) {
		for (i = 0; i < s->zone_n; i++) {
			uint64_t g = s->zone[z] + (uint64_t)i * s->page;

			if (fz_in_window(s, g, s->page))
				s->hot[n++] = g;
		}
	}
	sort_u64(s->hot, n);
	s->nhot = 0;
	for (i = 0; i < n; i++) {
		if (!s->nhot || s->hot[s->nhot - 1] != s->hot[i])
			s->hot[s->nhot++] = s->hot[i];
	}
}

int fz_hot_find(const struct fz_space *s, uint64_t gva)
{
	unsigned lo = 0, hi = s->nhot;

	while (lo < hi) {
		unsigned mid = lo + (hi - lo) / 2;

		if (s->hot[mid] == gva)
			return (int)mid;
		if (s->hot[mid] < gva)
			lo = mid + 1;
		else
			hi = mid;
	}
	return -1;
}

/* ------------------------------------------------------------------ */
/* Guest RAM                                                           */
/* ------------------------------------------------------------------ */

struct fz_ram *fz_ram_find(struct fz_world *w, uint64_t gpa, uint64_t len)
{
	unsigned i;

	for (i = 0; i < FZ_NRAM; i++) {
		struct fz_ram *r = &w->ram[i];

		if (r->live && gpa >= r->gpa && gpa - r->gpa < r->len &&
		    len <= r->len - (gpa - r->gpa))
			return r;
	}
	return NULL;
}

/* The rights every KiB granule of [gpa, gpa + len) allows (btmmu_protect(3)). */
uint32_t fz_ceiling(const struct fz_ram *r, uint64_t gpa, uint64_t len)
{
	uint64_t g = (gpa - r->gpa) / FZ_GRANULE;
	uint64_t end = (gpa - r->gpa + len + FZ_GRANULE - 1) / FZ_GRANULE;
	uint32_t c = BTMMU_PROT_RWX;

	for (; g < end; g++)
		c &= r->ceil[g];
	return c;
}

uint8_t *fz_ram_byte(struct fz_world *w, uint64_t gpa)
{
	struct fz_ram *r = fz_ram_find(w, gpa, 1);

	return r ? &r->bytes[gpa - r->gpa] : NULL;
}

/* ------------------------------------------------------------------ */
/* Units and host pages                                                */
/* ------------------------------------------------------------------ */

/*
 * btmmu_map(3), "Guest pages smaller than the host page": a unit is
 * installable once all its guest pages are mapped, to guest-physically
 * contiguous frames that start on a host page boundary in one RAM range;
 * it then gets the rights all its guest pages share.
 */
void fz_unit_state(struct fz_world *w, const struct fz_space *s, const struct fz_pte *tab,
		   uint64_t unit_gva, struct fz_unit *u)
{
	uint64_t base = 0;
	unsigned k;
	int consistent = 1;

	memset(u, 0, sizeof(*u));
	u->rights = BTMMU_PROT_RWX;
	for (k = 0; k < s->ppu; k++) {
		int i = fz_hot_find(s, unit_gva + (uint64_t)k * s->page);
		uint64_t b;

		if (i < 0 || !tab[i].prot)
			continue;
		b = tab[i].gpa - (uint64_t)k * s->page;
		if (!u->present)
			base = b;
		else if (b != base)
			consistent = 0;
		u->present++;
		u->rights &= tab[i].prot;
	}
	u->gpa = base;
	if (s->ppu > 1 && u->present) {
		int a = fz_hot_find(s, unit_gva);

		u->sticky = a >= 0 && tab[a].sticky;
		for (k = 0; k < s->ppu; k++) {
			int i = fz_hot_find(s, unit_gva + (uint64_t)k * s->page);

			if (i >= 0 && tab[i].prot && !tab[i].match)
				u->sticky = 1;
		}
	}
	if (u->present != s->ppu || !consistent || (base & (s->unit - 1)))
		return;
	u->ram = fz_ram_find(w, base, s->unit);
	u->complete = u->ram != NULL;
}

uint32_t fz_host_prot(struct fz_world *w, const struct fz_space *s, const struct fz_pte *tab,
		      uint64_t gva)
{
	uint64_t ug = gva & ~(s->unit - 1), hoff;
	struct fz_unit u;

	fz_unit_state(w, s, tab, ug, &u);
	if (!u.complete)
		return 0;
	hoff = (gva - ug) & ~(s->hp - 1);
	return fz_rights_to_host(u.rights & fz_ceiling(u.ram, u.gpa + hoff, s->hp));
}

uint32_t fz_host_prot_q(struct fz_world *w, const struct fz_space *s, const struct fz_pte *tab,
			uint64_t gva, int quirks)
{
	struct fz_unit u;

	if (quirks & FUZZ_Q_STICKY) {
		fz_unit_state(w, s, tab, gva & ~(s->unit - 1), &u);
		if (u.sticky)
			return 0;
	}
	return fz_host_prot(w, s, tab, gva);
}

/* Every host page of a complete unit allows some access. */
static bool unit_some_access(const struct fz_space *s, const struct fz_unit *u)
{
	uint64_t off;

	for (off = 0; off < s->unit; off += s->hp) {
		if (!fz_rights_to_host(u->rights & fz_ceiling(u->ram, u->gpa + off, s->hp)))
			return false;
	}
	return true;
}

/* ------------------------------------------------------------------ */
/* TLB updates                                                         */
/* ------------------------------------------------------------------ */

/*
 * The library's record of a unit of guest pages smaller than the host page
 * (FUZZ_Q_STICKY, lib/shadow/map.c): one frame for the unit, and which
 * present pages agree with it. A mapping that implies that frame adds its
 * pages; one implying another frame takes the unit over when no other
 * present page agrees with the old frame, else its pages disagree. The
 * unit is installable only when every present page agrees. So pages that
 * disagreed and later agree with a new frame by chance are not seen: the
 * library takes the slow path there, where the contract allows direct.
 */
static void sticky_update(struct fz_world *w, struct fz_space *s, struct fz_pte *tab,
			  const struct btmmu_map_req *q, unsigned i, unsigned j)
{
	unsigned k, first = j;
	bool before = false, others = false;
	uint64_t ug = s->hot[i] & ~(s->unit - 1), base;
	struct fz_ram *ram = fz_ram_find(w, q->gpa, q->len);
	int a = fz_hot_find(s, ug);
	uint8_t eram = ram ? (uint8_t)(ram - w->ram + 1) : 0;

	for (k = i; k < j; k++) {
		bool set = s->hot[k] - q->gva < q->len;

		before |= tab[k].prot != 0;
		if (!set && tab[k].prot && tab[k].match)
			others = true;
		if (first == j && set)
			first = k;
	}
	if (first == j || a < 0)
		return;
	base = q->gpa + (s->hot[first] - q->gva) - (s->hot[first] - ug);
	if (before && base == tab[a].ebase && eram == tab[a].eram) {
		for (k = i; k < j; k++)
			if (s->hot[k] - q->gva < q->len)
				tab[k].match = 1;
	} else if (!others) {
		tab[a].ebase = base;
		tab[a].eram = eram;
		tab[a].sticky = (base & (s->unit - 1)) || !ram || base < ram->gpa ||
				base - ram->gpa > ram->len - s->unit;
		for (k = i; k < j; k++)
			tab[k].match = s->hot[k] - q->gva < q->len;
	} else {
		for (k = i; k < j; k++)
			if (s->hot[k] - q->gva < q->len)
				tab[k].match = 0;
	}
}

/* btmmu_map(3): an existing entry for the same guest page is replaced. */
void fz_apply_map(struct fz_world *w, struct fz_space *s, struct fz_pte *tab,
		  const struct btmmu_map_req *q)
{
	unsigned i = 0, j;

	while (i < s->nhot) {
		uint64_t ug = s->hot[i] & ~(s->unit - 1);

		for (j = i; j < s->nhot && (s->hot[j] & ~(s->unit - 1)) == ug; j++)
			;
		if (s->ppu > 1)
			sticky_update(w, s, tab, q, i, j);
		for (; i < j; i++) {
			uint64_t off = s->hot[i] - q->gva;

			if (off < q->len) {
				tab[i].gpa = q->gpa + off;
				tab[i].prot = (uint8_t)q->prot;
				tab[i].global = !!(q->flags & BTMMU_MAP_GLOBAL);
				tab[i].lshift = (uint8_t)fz_req_shift(s, q);
			}
		}
	}
}

/*
 * btmmu_unmap(3): remove the pages; the count is of units (host mapping
 * units) that had pages and have none left.
 */
unsigned fz_apply_unmap(struct fz_space *s, struct fz_pte *tab, uint64_t gva, uint64_t len,
			unsigned *bound)
{
	unsigned i = 0, j, n = 0, nb = 0;

	while (i < s->nhot) {
		uint64_t ug = s->hot[i] & ~(s->unit - 1);
		unsigned before = 0, after = 0;
		bool hit = false;

		for (j = i; j < s->nhot && (s->hot[j] & ~(s->unit - 1)) == ug; j++) {
			before += tab[j].prot != 0;
			if (s->hot[j] - gva < len) {
				hit |= tab[j].prot != 0;
				tab[j].prot = 0;
			}
			after += tab[j].prot != 0;
		}
		n += hit && !after;
		/*
		 * The library may hold only some of a unit's pages (the others
		 * evicted with it and refilled partly): any unit with a page in the
		 * range may be the one it removes.
		 */
		nb += hit;
		i = j;
	}
	if (bound)
		*bound = nb;
	return n;
}

/* btmmu_flush(3) with BTMMU_FLUSH_NONGLOBAL: global pages stay. */
void fz_apply_nonglobal(struct fz_space *s, struct fz_pte *tab)
{
	unsigned i;

	for (i = 0; i < s->nhot; i++) {
		if (!tab[i].global)
			tab[i].prot = 0;
	}
}

unsigned fz_count_present(const struct fz_space *s, const struct fz_pte *tab)
{
	unsigned i, n = 0;

	for (i = 0; i < s->nhot; i++)
		n += tab[i].prot != 0;
	return n;
}

void fz_count_map(struct fz_world *w, const struct fz_space *s, const struct fz_pte *tab,
		  const struct btmmu_map_req *q, unsigned n, int quirks, uint64_t *lo, uint64_t *hi)
{
	unsigned r, i;

	*lo = *hi = 0;
	for (r = 0; r < n; r++) {
		uint64_t last_ug = 1; /* never a unit address */
		struct fz_unit u;
		bool some = false;

		for (i = 0; i < s->nhot; i++) {
			uint64_t ug = s->hot[i] & ~(s->unit - 1);

			if (s->hot[i] - q[r].gva >= q[r].len)
				continue;
			if (ug != last_ug) {
				fz_unit_state(w, s, tab, ug, &u);
				some = u.complete && unit_some_access(s, &u) &&
				       !((quirks & FUZZ_Q_STICKY) && u.sticky);
				last_ug = ug;
			}
			*hi += u.complete;
			*lo += some;
		}
	}
}

unsigned fz_count_units(struct fz_world *w, const struct fz_space *s, const struct fz_pte *tab,
			int quirks)
{
	unsigned i = 0, n = 0;

	while (i < s->nhot) {
		uint64_t ug = s->hot[i] & ~(s->unit - 1);
		struct fz_unit u;

		fz_unit_state(w, s, tab, ug, &u);
		n += u.complete && !((quirks & FUZZ_Q_STICKY) && u.sticky);
		while (i < s->nhot && (s->hot[i] & ~(s->unit - 1)) == ug)
			i++;
	}
	return n;
}

unsigned fz_count_units_gpa(struct fz_world *w, const struct fz_space *s, const struct fz_pte *tab,
			    uint64_t gpa, uint64_t len)
{
	unsigned i = 0, n = 0;

	while (i < s->nhot) {
		uint64_t ug = s->hot[i] & ~(s->unit - 1);
		struct fz_unit u;

		fz_unit_state(w, s, tab, ug, &u);
		if (u.complete && u.gpa < gpa + len && gpa < u.gpa + s->unit)
			n++;
		while (i < s->nhot && (s->hot[i] & ~(s->unit - 1)) == ug)
			i++;
	}
	return n;
}

/* ------------------------------------------------------------------ */
/* Guest large pages (BTMMU_MAP_PAGE_SHIFT, btmmu_map(3), btmmu_unmap(3)) */
/* ------------------------------------------------------------------ */

unsigned fz_req_shift(const struct fz_space *s, const struct btmmu_map_req *q)
{
	unsigned shift = (q->flags & BTMMU_MAP_PAGE_SHIFT_MASK) >> 8;

	return shift > s->page_shift ? shift : 0;
}

/* 0 or the page's size, or more than the page, less than the VA, holding the request. */
bool fz_req_shift_ok(const struct fz_space *s, const struct btmmu_map_req *q)
{
	unsigned shift = (q->flags & BTMMU_MAP_PAGE_SHIFT_MASK) >> 8;

	if (!shift || shift == s->page_shift)
		return true;
	return shift > s->page_shift && shift < s->va_bits &&
	       (q->gva >> shift) == ((q->gva + q->len - 1) >> shift);
}

/* The space's order of addresses, as unsigned numbers: signed when it sign-extends. */
static uint64_t order_flip(const struct fz_space *s)
{
	return (s->flags & BTMMU_SPACE_SIGN_EXTEND) ? UINT64_C(1) << 63 : 0;
}

void fz_large_note(struct fz_space *s, unsigned view, const struct btmmu_map_req *q)
{
	unsigned shift = fz_req_shift(s, q), i;
	uint8_t global = !!(q->flags & BTMMU_MAP_GLOBAL);
	uint64_t page;

	/* Only a request that meets the window installs anything, or records. */
	if (!shift || !(q->gva - s->window_gva < s->wsize || s->window_gva - q->gva < q->len))
		return;
	if (s->large_over[view])
		return;
	page = q->gva & ~((UINT64_C(1) << shift) - 1);
	for (i = 0; i < s->nlarge; i++) {
		const struct fz_large *l = &s->large[i];

		if (l->view == view && l->page == page && l->shift == shift && l->global == global)
			return;
	}
	if (s->nlarge == FZ_MAX_LARGE) {
		s->large_over[view] = 1;
		return;
	}
	s->large[s->nlarge++] = (struct fz_large){
		.page = page, .view = (uint8_t)view, .shift = (uint8_t)shift, .global = global
	};
}

bool fz_large_widen(struct fz_space *s, unsigned view, uint64_t *gva, uint64_t *len)
{
	uint64_t f = order_flip(s), lo = *gva ^ f, last = lo + *len - 1;
	bool grew;
	unsigned i;

	if (s->large_over[view])
		return false;
	do {
		grew = false;
		for (i = 0; i < s->nlarge;) {
			const struct fz_large *l = &s->large[i];
			uint64_t plo = l->page ^ f, plast = plo + ((UINT64_C(1) << l->shift) - 1);

			if (l->view != view || plast < lo || plo > last) {
				i++;
				continue;
			}
			if (plo < lo || plast > last)
				grew = true;
			lo = plo < lo ? plo : lo;
			last = plast > last ? plast : last;
			s->large[i] = s->large[--s->nlarge];
		}
	} while (grew);
	*gva = lo ^ f;
	*len = last - lo + 1;
	return true;
}

void fz_large_drop(struct fz_space *s, unsigned view, bool nonglobal_only)
{
	unsigned i;

	for (i = 0; i < s->nlarge;) {
		if (s->large[i].view == view && !(nonglobal_only && s->large[i].global))
			s->large[i] = s->large[--s->nlarge];
		else
			i++;
	}
	if (!nonglobal_only)
		s->large_over[view] = 0;
}
