/* SPDX-License-Identifier: MIT */
/*
 * btmmu_protect() and btmmu_unprotect(): set the ceiling of a
 * guest-physical range (gpa.c) and re-apply rights to every installed alias
 * through the reverse map; btmmu_protect_seq() and btmmu_unprotect_since(),
 * the unprotect that loses a race with a protect. Async-signal-safe.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "shadow.h"

static bool overlaps(const struct btmmu__entry *e, uint64_t gpa, uint64_t len)
{
	return e->gpa < gpa + len && gpa < e->gpa + unit_size(e);
}

/*
 * Count e as changed, once per walk: a walk that starts again (a region
 * replaced under it) applies the rights of the entries it did already
 * again, and a unit in pieces looks changed each time.
 */
static unsigned count_once(struct btmmu *ctx, struct btmmu__entry *e)
{
	if (e->counted == ctx->count_epoch)
		return 0;
	e->counted = ctx->count_epoch;
	return 1;
}

/* A new walk: entries counted by earlier walks count again. */
static void count_start(struct btmmu *ctx)
{
	uint32_t i;

	if (++ctx->count_epoch)
		return;
	/* Wrapped: no entry may hold the new epoch from 256 walks ago. */
	for (i = 0; i < ctx->npool; i++)
		ctx->pool[i].counted = 0;
	ctx->count_epoch = 1;
}

static unsigned reapply(struct btmmu *ctx, struct btmmu__entry *e)
{
	uint8_t old = e->hprot;
	uint32_t oldp = e->npieces;

	if (!(e->flags & BTMMU__E_INSTALLED))
		return 0;
	if (e->region->state == BTMMU__REGION_TEARING) {
		/*
		 * The reclaimer is removing this region's mappings without the
		 * lock, and owns its entries until it relocks: touch no
		 * bookkeeping, but take this alias's old rights away now (the
		 * same no-access mapping the reclaimer's call leaves, harmless
		 * twice), or a stale base could still use them after the
		 * protect returned. If the host refuses the split, the whole
		 * window goes, as the reclaimer would. Found by the fuzzer.
		 */
		if (ctx->ops->clear(ctx, e->region->start + e->off, unit_size(e)))
			(void)btmmu__window_clear(ctx, e->region);
		return 0;
	}
	btmmu__mark_uninstalled(ctx, e);
	if (btmmu__apply_runs(ctx, e, false, false)) {
		unsigned n = count_once(ctx, e);

		/* Rights unknown now: drop the entry, the next access faults. */
		if (btmmu__host_clear(ctx, e->region, e->off, unit_size(e)))
			btmmu__entry_unlink(ctx, e);
		return n;
	}
	btmmu__mark_installed(ctx, e);
	if (e->npieces != 1 || oldp != 1 || e->hprot != old)
		return count_once(ctx, e);
	return 0;
}

/* Re-apply rights to every installed alias of [gpa, gpa+len) in ram. */
static unsigned apply_rights(struct btmmu *ctx, struct btmmu_ram *ram, uint64_t gpa, uint64_t len)
{
	uint64_t lookups = 0, u, replaced;
	unsigned s, n = 0;
	uint32_t i;

	count_start(ctx);
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

/*
 * seq: for an unprotect, refuse (-ESTALE) unless ctx->protect_seq is still
 * seq; UINT64_MAX: no such condition. A protect bumps protect_seq, under
 * the lock, whether or not a ceiling changes.
 */
static int set_ceiling(struct btmmu *ctx, uint64_t gpa, uint64_t len, uint32_t prot,
		       uint64_t seq)
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
	if (seq != UINT64_MAX && atomic_load(&ctx->protect_seq) != seq) {
		btmmu__unlock(&ctx->lock);
		return -ESTALE;
	}
	if (prot != BTMMU_PROT_RWX)
		atomic_fetch_add(&ctx->protect_seq, 1);
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
	btmmu__make_room(ctx, 0, 0);
	btmmu__unlock(&ctx->lock);
	btmmu__stat_add(&ctx->st.protects, n);
	return (int)n;
}

BTMMU_EXPORT int btmmu_protect(struct btmmu *ctx, uint64_t gpa, uint64_t len, uint32_t prot)
{
	return set_ceiling(ctx, gpa, len, prot, UINT64_MAX);
}

BTMMU_EXPORT int btmmu_unprotect(struct btmmu *ctx, uint64_t gpa, uint64_t len)
{
	return set_ceiling(ctx, gpa, len, BTMMU_PROT_RWX, UINT64_MAX);
}

BTMMU_EXPORT int btmmu_protect_seq(struct btmmu *ctx, uint64_t *seq)
{
	if (!ctx)
		return -EINVAL;
	if (!seq)
		return -EFAULT;
	if (btmmu__dead(ctx))
		return -EOWNERDEAD;
	/* seq_cst: not ordered before the caller's earlier stores (its dirty bits) */
	*seq = atomic_load(&ctx->protect_seq);
	return 0;
}

BTMMU_EXPORT int btmmu_unprotect_since(struct btmmu *ctx, uint64_t gpa, uint64_t len,
				       uint64_t seq)
{
	if (seq == UINT64_MAX)
		return -EINVAL; /* never a sequence btmmu_protect_seq() gives */
	return set_ceiling(ctx, gpa, len, BTMMU_PROT_RWX, seq);
}
