/* SPDX-License-Identifier: MIT */
/*
 * The shadow layer's own header: helpers and functions shared by the files
 * of lib/shadow/, above RAM lookup (gpa.c), regions (region.c) and the
 * registry, below the dispatcher (fault.c) and the entry points of RAM,
 * spaces, the context and the reclaimer.
 *
 *   entry.c    pool, hashes, region lists, reverse map, rights, accounting
 *   window.c   taking access away (partial, whole window), region teardown
 *   apply.c    giving an entry its host rights
 *   evict.c    making room: retired regions first, then clock eviction
 *   query.c    the dispatcher's questions
 *   largepage.c  the guest large pages entries came from (for unmap)
 *   map.c      btmmu_map(), btmmu_map_batch()
 *   around.c   btmmu_map_around(): fault-around, through map.c
 *   unmap.c    btmmu_unmap(), btmmu_flush(), btmmu_flush_all()
 *   protect.c  btmmu_protect(), btmmu_unprotect()
 *
 * Calls go down this list (map, unmap and protect use the ones above them;
 * evict uses window and entry; window uses entry), never up.
 * Everything is under ctx->lock unless its comment says otherwise.
 */
#ifndef BTMMU_SHADOW_H
#define BTMMU_SHADOW_H

#include "../internal.h"

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

static inline uint64_t fd_off(const struct btmmu__entry *e, uint64_t within)
{
	return e->ram->offset + (e->gpa - e->ram->gpa) + within;
}

static inline uint64_t region_vmas(const struct btmmu__region *r)
{
	return r->runs + 1 + r->pieces - r->merges + r->leftover;
}

static inline int btmmu__check_view(const struct btmmu_space *sp, unsigned view)
{
	return btmmu__view_exists(sp, view) ? 0 : -EINVAL;
}

/* The first checks of the calls on one view: the space, the view, a child's copy. */
static inline int btmmu__view_call(const struct btmmu_space *sp, unsigned view)
{
	if (!sp || btmmu__check_view(sp, view))
		return -EINVAL;
	return btmmu__dead(sp->ctx) ? -EOWNERDEAD : 0;
}

static inline int btmmu__check_views(const struct btmmu_space *sp, uint32_t views)
{
	return views && !(views & ~sp->view_mask) ? 0 : -EINVAL;
}

/* entry.c */
struct btmmu__entry *btmmu__entry_alloc(struct btmmu *ctx);
void btmmu__entry_link(struct btmmu *ctx, struct btmmu__region *r, struct btmmu__entry *e);
void btmmu__entry_unlink(struct btmmu *ctx, struct btmmu__entry *e);
void btmmu__list_fix(struct btmmu *ctx, struct btmmu__entry *e);
uint32_t btmmu__entry_want(const struct btmmu__entry *e);
bool btmmu__entry_global(const struct btmmu__entry *e);
struct btmmu__entry *btmmu__installed_at(struct btmmu *ctx, struct btmmu__region *r, uint64_t off);
void btmmu__pa_remove(struct btmmu *ctx, struct btmmu__entry *e);
void btmmu__mark_installed(struct btmmu *ctx, struct btmmu__entry *e);
void btmmu__mark_uninstalled(struct btmmu *ctx, struct btmmu__entry *e);
void btmmu__spans_reset(struct btmmu__region *r, bool global_too);

/* window.c */
bool btmmu__host_clear(struct btmmu *ctx, struct btmmu__region *r, uint64_t off, uint64_t len);

/* largepage.c */
void btmmu__large_note(struct btmmu_space *sp, unsigned v, uint64_t gva, unsigned shift,
		       bool global);
void btmmu__large_drop(struct btmmu_space *sp, unsigned v, bool nonglobal_only);
bool btmmu__large_widen(struct btmmu_space *sp, unsigned v, uint64_t *gva, uint64_t *len);

/* apply.c */
int btmmu__apply_runs(struct btmmu *ctx, struct btmmu__entry *e, bool install, bool populate);

/* evict.c */
bool btmmu__make_room(struct btmmu *ctx, uint32_t need_entries, uint64_t need_maps);

#endif /* BTMMU_SHADOW_H */
