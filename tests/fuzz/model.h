/* SPDX-License-Identifier: MIT */
/*
 * The reference model: what a translator knows about its own guest, written
 * from the contract (btmmu(7), btmmu_map(3), btmmu_protect(3)...) and not
 * from lib/.
 *
 * Per thread: guest RAM ranges (their bytes and their protect() ceilings
 * per 1 KiB granule) and spaces. Per view of a space: the translator's TLB,
 * the entries it installed and has not removed, for a fixed set of "hot"
 * guest pages (four zones per space, around the window's edges); and the
 * TLB as it was at the last full flush, which the retired region behind
 * the old base may still serve.
 *
 * The library's shadow is a cache of that TLB: any entry may be missing
 * (evicted), none may be there that the TLB does not hold, and a host page
 * is directly accessible only as the rules for guest pages smaller than
 * the host page say: every guest page present, guest-physically contiguous
 * from a host-page-aligned frame of one RAM range, rights the intersection
 * of theirs and of the ceilings of the host page.
 */
#ifndef BTMMU_FUZZ_MODEL_H
#define BTMMU_FUZZ_MODEL_H

#include <signal.h>
#include <stdbool.h>
#include <stdint.h>

#include <btmmu/btmmu.h>

#include "fuzz.h"

#define FZ_NRAM 3				/* RAM slots per thread */
#define FZ_NSPACE 3				/* space slots per thread */
#define FZ_NVIEWS 4				/* most views the fuzzer creates */
#define FZ_NZONE 4				/* hot zones per space */
#define FZ_NSNAP (BTMMU_MAX_RING - 1 < 3 ? BTMMU_MAX_RING - 1 : 3) /* retired regions per view */
#define FZ_MAX_HOT 1024				/* hot pages per space */
#define FZ_MAX_LARGE 768			/* large-page records per space (btmmu_map(3)) */
#define FZ_SLOT (UINT64_C(4) << 20)		/* RAM slot spacing and largest RAM */
#define FZ_FILE (FZ_SLOT + (UINT64_C(1) << 20))	/* our memfds: room for an offset */
#define FZ_GRANULE UINT64_C(1024)
#define FZ_NGRAN (FZ_SLOT / FZ_GRANULE)

/* Guest-physical zone of thread t: RAM slot k starts at FZ_ZONE(t) + k * FZ_SLOT. */
#define FZ_ZONE(t) ((uint64_t)((t) + 1) << 36)

/*
 * A TLB entry of the model. prot 0: not present. On the first page of a
 * unit, ebase/eram/sticky follow the library's record of a sub-page unit
 * (FUZZ_Q_STICKY): the frame it holds for the unit and whether that frame
 * is no host page of the RAM; match, on every page, whether the page
 * agrees with that frame.
 */
struct fz_pte {
	uint64_t gpa;
	uint8_t prot;
	uint8_t global;
	uint8_t sticky;
	uint8_t eram;
	uint8_t match;	/* this page agrees with the unit's ebase/eram (library's record) */
	uint8_t lshift;	/* from a guest large page of 2^lshift bytes (BTMMU_MAP_PAGE_SHIFT), or 0 */
	uint64_t ebase;
};

struct fz_ram {
	int live;
	struct btmmu_ram *h;
	uint64_t gpa, len, off;
	int own;		/* backed by our memfd (its content outlives the range) */
	uint8_t *bytes;		/* model of [gpa, gpa + len): file + off, or anon */
	uint8_t *host;		/* btmmu_ram_host() */
	uint8_t *ceil;		/* allowed rights per KiB of the range */
	int fd;			/* our memfd for this slot, always open */
	uint8_t *file;		/* model of that memfd's content (FZ_FILE bytes) */
	uint8_t *anon;		/* model of a memfd the library creates (FZ_SLOT) */
};

struct fz_view {
	uintptr_t base;		/* btmmu_view_base() as last seen */
	uint64_t gen;		/* generation as last seen */
	uint64_t fills;
	uint64_t sync_ev;	/* evictions counter when the view was last known exact */
	int ghost;		/* the library may hold records of a destroyed RAM range */
	struct fz_pte *tlb;	/* per hot page */
	/* Regions retired by full flushes (at most ring - 1 per view). */
	struct fz_snap {
		int live;	/* the region at base was retired holding t */
		int gone;	/* btmmu_reclaim() returned since: it must fault */
		uintptr_t base;
		struct fz_pte *t;
	} snap[FZ_NSNAP];
};

struct fz_space {
	int live;
	struct btmmu_space *h;
	void *opaque;		/* expected fault->space_opaque */
	uint32_t va_bits, page_shift, flags, nviews, ring, window_bits, unit_shift, hps;
	uint64_t window_gva, wsize, page, unit, hp, guard;
	unsigned ppu;		/* guest pages per unit */
	struct btmmu_view_info vi;
	int slots_on;
	uintptr_t slots[BTMMU_MAX_VIEWS];
	uint64_t zone[FZ_NZONE];	/* first gva of each zone (may be outside the window) */
	unsigned zone_n;		/* pages per zone */
	unsigned nhot;
	uint64_t hot[FZ_MAX_HOT];	/* sorted page gvas inside the window */
	/*
	 * The large pages the library records (btmmu_map(3)): per space at
	 * most FZ_MAX_LARGE, keyed by view, page, size and global bit; a view
	 * whose page did not fit has its next unmap remove all its entries.
	 */
	struct fz_large {
		uint64_t page;
		uint8_t view, shift, global;
	} large[FZ_MAX_LARGE];
	unsigned nlarge;
	uint8_t large_over[FZ_NVIEWS];
	struct fz_view v[FZ_NVIEWS];
};

/* A host page's (or unit's) state in one table of the model. */
struct fz_unit {
	int complete;		/* every guest page present, contiguous, aligned, one RAM */
	unsigned present;	/* guest pages present */
	struct fz_ram *ram;
	uint64_t gpa;		/* frame of the unit's first byte */
	uint32_t rights;	/* intersection of the pages' prot */
	int sticky;		/* the library's entry is stuck non-uniform (quirk) */
};

/* What one thread owns: its RAM slots and its space slots. */
struct fz_world {
	unsigned id;
	struct fz_ram ram[FZ_NRAM];
	struct fz_space sp[FZ_NSPACE];
};

/* Address geometry, per btmmu_space_create(3) and btmmu_map(3). */
bool fz_canonical(const struct fz_space *s, uint64_t a);
bool fz_va_valid(const struct fz_space *s, uint64_t gva, uint64_t len);
bool fz_in_window(const struct fz_space *s, uint64_t gva, uint64_t len);
/* The canonical form of an address wrapped into the guest VA (fault->gva). */
uint64_t fz_wrap(const struct fz_space *s, uint64_t gva);
void fz_space_layout(struct fz_space *s);
int fz_hot_find(const struct fz_space *s, uint64_t gva);

/* Guest RAM of the thread. */
struct fz_ram *fz_ram_find(struct fz_world *w, uint64_t gpa, uint64_t len);
uint32_t fz_ceiling(const struct fz_ram *r, uint64_t gpa, uint64_t len);
uint8_t *fz_ram_byte(struct fz_world *w, uint64_t gpa);

/* Host rights (0, PROT_READ 1, PROT_READ|PROT_WRITE 3) of the host page holding gva. */
void fz_unit_state(struct fz_world *w, const struct fz_space *s, const struct fz_pte *tab,
		   uint64_t unit_gva, struct fz_unit *u);
uint32_t fz_host_prot(struct fz_world *w, const struct fz_space *s, const struct fz_pte *tab,
		      uint64_t gva);
/* The same, but 0 for a unit the library is known to leave uninstalled (quirks). */
uint32_t fz_host_prot_q(struct fz_world *w, const struct fz_space *s, const struct fz_pte *tab,
			uint64_t gva, int quirks);
static inline uint32_t fz_rights_to_host(uint32_t r)
{
	uint32_t p = 0;

	if (r & (BTMMU_PROT_READ | BTMMU_PROT_EXEC))
		p |= 1;
	if (r & BTMMU_PROT_WRITE)
		p |= 3;
	return p;
}

/* TLB updates. */
void fz_apply_map(struct fz_world *w, struct fz_space *s, struct fz_pte *tab,
		  const struct btmmu_map_req *q);
/* Returns the units emptied; *bound the units the library may count (some page removed). */
unsigned fz_apply_unmap(struct fz_space *s, struct fz_pte *tab, uint64_t gva, uint64_t len,
			unsigned *bound);
void fz_apply_nonglobal(struct fz_space *s, struct fz_pte *tab);
/* The large page of a request (0: none) and whether the request may carry it. */
unsigned fz_req_shift(const struct fz_space *s, const struct btmmu_map_req *q);
bool fz_req_shift_ok(const struct fz_space *s, const struct btmmu_map_req *q);
/* btmmu_map(3) accepted q for the view: record its large page. */
void fz_large_note(struct fz_space *s, unsigned view, const struct btmmu_map_req *q);
/*
 * btmmu_unmap(3) of [*gva, *gva + *len) in the view: widened to the
 * recorded large pages it touches. False: the view's records overflowed,
 * every entry of the view goes.
 */
bool fz_large_widen(struct fz_space *s, unsigned view, uint64_t *gva, uint64_t *len);
/* btmmu_flush(3) of the view: its records go (the non-global ones only, for NONGLOBAL). */
void fz_large_drop(struct fz_space *s, unsigned view, bool nonglobal_only);
unsigned fz_count_present(const struct fz_space *s, const struct fz_pte *tab);
/*
 * Pages of the requests directly accessible now: lo counts pages of
 * complete units every host page of which allows some access, hi pages of
 * complete units.
 */
void fz_count_map(struct fz_world *w, const struct fz_space *s, const struct fz_pte *tab,
		  const struct btmmu_map_req *q, unsigned n, int quirks, uint64_t *lo, uint64_t *hi);
/* Complete units of a table (bounds btmmu_view_info.live_entries). */
unsigned fz_count_units(struct fz_world *w, const struct fz_space *s, const struct fz_pte *tab,
			int quirks);
/* Complete units of the table mapping some of [gpa, gpa + len). */
unsigned fz_count_units_gpa(struct fz_world *w, const struct fz_space *s,
			    const struct fz_pte *tab, uint64_t gpa, uint64_t len);

#endif /* BTMMU_FUZZ_MODEL_H */
