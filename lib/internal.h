/* SPDX-License-Identifier: MIT */
/*
 * libbtmmu internals shared by the core files and the backends.
 *
 * Locking, in order:
 *   btmmu__registry mutex (process-wide; region registry, handler install)
 *   ctx->admin (pthread mutex; RAM/space create and destroy, close)
 *   ctx->lock  (futex lock, base/lock.h; every piece of shadow bookkeeping below)
 * The fault path takes only ctx->lock, and reads the region registry
 * lock-free (registry.c). ctx->lock is never held while anything can fault
 * in a shadow region, nor across a call to the translator's callback. A
 * signal handler of the translator may still interrupt a thread holding
 * it and fault in a region: btmmu__lock_mine() (base/lock.h) then refuses
 * with -EDEADLK instead of waiting, so a faulting thread never waits for
 * itself. Hold times are bounded by one batch of host mapping calls.
 */
#ifndef BTMMU_INTERNAL_H
#define BTMMU_INTERNAL_H

#include <errno.h>
#include <pthread.h>
#include <semaphore.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <urcu/list.h>

#include "btmmu/btmmu.h"

#define BTMMU_EXPORT __attribute__((visibility("default")))

#define BTMMU_GRANULE_SHIFT 10 /* protect() granularity: the smallest guest page */

#define BTMMU_MIN(a, b) ((a) < (b) ? (a) : (b))
#define BTMMU_MAX(a, b) ((a) > (b) ? (a) : (b))

struct btmmu_backend_ops;

#include "base/lock.h"

/* ---- regions ---- */

enum btmmu__region_state {
	BTMMU__REGION_CLEAN,	/* in the ring, empty, ready */
	BTMMU__REGION_CURRENT,	/* the view's region: its base is published */
	BTMMU__REGION_RETIRED,	/* flushed; entries still mapped until reclaim */
	BTMMU__REGION_TEARING,	/* the reclaimer is unmapping it without the lock */
};

struct btmmu__view;

/*
 * One host reservation: `lead` bytes of fence, `len` bytes serving the
 * view's window from `start`, then `guard` bytes of fence so accesses
 * running past the window's end fault here rather than in a neighbour.
 * The fences are mappings the kernel never merges with the window's (see
 * the backend's fence op), so the window's ends are always mapping ends:
 * replacing the whole window never needs a split, and so never fails
 * because of vm.max_map_count (shadow/window.c relies on it).
 */
struct btmmu__region {
	uintptr_t start;
	uint64_t lead;
	uint64_t len;
	uint64_t guard;
	struct btmmu_space *space;
	struct btmmu__view *view;
	uint32_t id;			/* key of the entry hash */
	enum btmmu__region_state state;
	uint32_t head[2];		/* entry lists (pool index, 0: none): [0] not global, [1] global */
	uint64_t nentries;		/* entries, pending ones included */
	uint64_t nglobal;		/* installed entries marked global */
	uint64_t ninstalled;		/* installed entries */
	uint64_t pieces;		/* host mappings of installed entries */
	uint64_t runs;			/* maximal runs of adjacent installed units */
	uint64_t merges;		/* adjacent installed pairs the kernel merges */
	uint64_t leftover;		/* inaccessible mappings left by a refused clear */
	uint64_t g_lo, g_hi;		/* span of global entries (offsets), lo > hi: none */
	uint64_t ng_lo, ng_hi;		/* span of non-global entries */
	struct cds_list_head retired;	/* ctx->retired while RETIRED */
};

#define BTMMU__LARGE_SLOTS 1024u	/* large-page records per space, a power of 2 */

struct btmmu__view {
	struct btmmu__region *ring;	/* space->nring regions */
	struct btmmu__region *cur;
	_Atomic uintptr_t base;
	_Atomic uint64_t gen;
	uint64_t fills;			/* entries installed, ever (under ctx->lock) */
	/* Guest large pages the entries came from (shadow/largepage.c). */
	uint64_t large_shifts;		/* bit s: records of 2^s-byte pages */
	uint32_t large_n;		/* records of the view in space->large */
	bool large_overflow;		/* one did not fit: unmap flushes the view */
};

struct btmmu_space {
	struct btmmu *ctx;
	struct cds_list_head node;	/* ctx->spaces */
	uint32_t va_bits, page_shift, unit_shift, nviews, flags, nring;
	uint32_t window_bits;
	uint64_t window_gva, window_size;
	uint64_t sub_full;		/* present mask of a complete unit */
	uintptr_t *base_slots;
	void *opaque;
	atomic_int inflight;		/* fault dispatches using the space now */
	uint32_t view_mask;		/* the views created (btmmu_space_args.view_mask) */
	struct btmmu__region *regions;	/* nregions: the created views' rings, one after another */
	size_t nregions;
	uint64_t *large;		/* BTMMU__LARGE_SLOTS keys (shadow/largepage.c) */
	uint32_t nlarge;
	struct btmmu__view views[];
};

/* ---- guest RAM ---- */

struct btmmu_ram {
	struct btmmu *ctx;
	struct cds_list_head node;	/* ctx->rams */
	uint64_t gpa, len, offset;
	int fd;				/* ours (dup or memfd) */
	void *host;
	uint8_t *deny;			/* protect(): rights denied per 1 KiB granule */
	uint64_t ndenied;		/* granules with something denied */
	uint64_t users;			/* entries referencing this RAM */
};

/* ---- shadow entries: one host mapping unit of a region ---- */

#define BTMMU__E_INSTALLED	0x1u
#define BTMMU__E_BADFRAME	0x2u	/* sub-pages: gpa is no host-page frame of ram (never installable) */
#define BTMMU__E_REF		0x4u	/* clock bit for eviction */
#define BTMMU__E_FREE		0x8u
#define BTMMU__E_PINNED		0x10u	/* being installed: not evictable */
#define BTMMU__E_GLIST		0x20u	/* on the region's global list */

struct btmmu__entry {
	uint32_t va_next;		/* hash chain by (region, off); free list */
	uint32_t pa_next;		/* reverse map by unit gpa, installed only */
	uint32_t reg_next, reg_prev;	/* region's list */
	struct btmmu__region *region;
	struct btmmu_ram *ram;
	uint64_t off;			/* unit-aligned offset in the region */
	uint64_t gpa;			/* guest-physical address of the unit start */
	/* Per guest page of the unit (bit 0 only when unit == guest page): */
	uint64_t present, rmask, wmask, xmask, gmask;
	/*
	 * Sub-page units: the pages whose frame agrees with gpa and ram (a
	 * page mapped elsewhere leaves it; only pages in present count).
	 */
	uint64_t match;
	uint32_t npieces;		/* host mappings while installed */
	uint8_t hprot;			/* host prot when npieces == 1 */
	uint8_t flags;
	uint8_t unit_shift;
	uint8_t counted;		/* ctx->count_epoch when a protect counted it */
};

/* ---- the context ---- */

struct btmmu__stats_counters {
	_Atomic uint64_t faults, faults_retry, faults_slow, faults_not_mine;
	_Atomic uint64_t retry_no_progress;
	_Atomic uint64_t fills, install_calls, unmaps, flushes;
	_Atomic uint64_t flushes_nonglobal, evictions, protects, reclaims;
	_Atomic uint64_t sync_reclaims;
	_Atomic uint64_t clear_fallbacks;	/* windows replaced: the host refused a split */
};

struct btmmu {
	const struct btmmu_backend_ops *ops;
	void *backend_priv;
	uint32_t flags;
	uint32_t host_page_shift;	/* effective (maybe simulated) */
	uint32_t real_page_shift;
	btmmu_fault_fn fault_fn;
	void *fault_opaque;
	bool registered;		/* holds a reference on the signal handler */
	struct cds_list_head all;	/* every live context (btmmu.c), for fork() */
	atomic_bool forked;		/* a child's copy: only destroy and close work */

	pthread_mutex_t admin;
	struct btmmu__lock lock;

	/* Everything below is under ctx->lock. */
	struct cds_list_head rams;
	struct cds_list_head spaces;
	struct cds_list_head retired;	/* regions waiting for teardown */
	struct btmmu__region *tearing;	/* region being torn down unlocked */
	atomic_int tearing_gen;		/* bumped (and woken) when a teardown ends */
	uint32_t next_region_id;

	struct btmmu__entry *pool;	/* pool[0] unused: index 0 is "none" */
	uint32_t npool;
	uint32_t free_head;
	uint32_t nfree;
	uint32_t clock;
	uint32_t *va_hash, *pa_hash;
	uint32_t hash_mask;
	uint32_t unit_shifts;		/* bit s: some space uses unit shift s */
	uint64_t live_entries;		/* installed units */
	uint64_t mappings;		/* host mappings (upper bound) */
	uint64_t budget;		/* max host mappings for this context */
	uint32_t capacity_from;		/* BTMMU_CAPACITY_*: how budget and pool were set */
	uint64_t claimed;		/* share of budget_claimed (btmmu.c) */
	uint64_t replaces;		/* regions replaced by host_clear() (shadow/window.c) */
	uint8_t count_epoch;		/* per protect walk: entries it counted (shadow/protect.c) */
	/* btmmu_protect() calls so far, bumped under lock (btmmu_unprotect_since()) */
	_Atomic uint64_t protect_seq;

	struct btmmu__stats_counters st;

	/* Reclaim thread. */
	pthread_t reaper;
	bool reaper_running;
	atomic_bool reaper_stop;
	sem_t reaper_sem;
};

/* ---- backends ---- */

#define BTMMU_BACKEND_COUNTS_MAPPINGS 0x1u /* host mappings are a budgeted resource */
#define BTMMU_BACKEND_EXEC_ONLY	      0x2u /* exec-only entries unreadable */
#define BTMMU_BACKEND_KERNEL_BATCH    0x4u /* batched installs in one kernel call */

/*
 * A backend changes host mappings; the core keeps the bookkeeping. Every
 * op but init/fini/reserve/release may run in signal context with ctx->lock
 * held: they must be async-signal-safe (system calls only).
 * Offsets are relative to the region start; lengths are multiples of the
 * host page. prot is a host PROT_* value.
 */
struct btmmu_backend_ops {
	size_t size;			/* sizeof(struct btmmu_backend_ops) */
	const char *name;
	uint32_t caps;			/* BTMMU_BACKEND_* */
	int (*probe)(void);
	int (*init)(struct btmmu *ctx);
	void (*fini)(struct btmmu *ctx);
	/*
	 * Reserve lead + len bytes, no access, such that *start (the byte
	 * after the lead) is aligned to align.
	 */
	int (*reserve)(struct btmmu *ctx, uint64_t lead, uint64_t len, uint64_t align,
		       uintptr_t *start);
	/*
	 * Turn [addr, addr+len) of a reservation into a no-access mapping the
	 * host never merges with its neighbours (NULL: regions need no fences).
	 */
	int (*fence)(struct btmmu *ctx, uintptr_t addr, uint64_t len);
	int (*release)(struct btmmu *ctx, uintptr_t start, uint64_t len);
	/* Map fd at fd_off over [addr, addr+len); populate: fill page tables now. */
	int (*install)(struct btmmu *ctx, uintptr_t addr, uint64_t len, int prot, int fd,
		       uint64_t fd_off, bool populate);
	int (*protect)(struct btmmu *ctx, uintptr_t addr, uint64_t len, int prot);
	/* Back to no access, no mapping (restore the reservation). */
	int (*clear)(struct btmmu *ctx, uintptr_t addr, uint64_t len);
};

extern const struct btmmu_backend_ops btmmu__backend_user;
int btmmu__backend_select(const char *name, const struct btmmu_backend_ops **opsp);

/*
 * ---- functions shared between files, by layer ----
 *
 * Each layer calls only the layers above it in this list (lower in the
 * stack), never one below: a newcomer reads lib/ from base/ up.
 *
 *   base/      lock.c (the context lock), args.c (size-prefixed structs)
 *   backend/   host mapping operations, one file per backend
 *   gpa.c      which RAM holds a guest-physical range, and its ceilings
 *   region.c   guest VA checks, window clip, publishing a view's base
 *   registry.c the process-wide region lookup for the fault path
 *   shadow/    entries, reverse map, capacity, map/unmap/flush/protect,
 *              the dispatcher's questions (shadow/shadow.h)
 *   fault.c    the signal handlers and the dispatcher
 *   reclaim.c  the reclaim thread
 *   ram.c, space.c, btmmu.c   the RAM, space and context entry points
 */

/* base/args.c: size-prefixed structs (kernel copy_struct_from_user rules). */
int btmmu__copy_args(void *dst, size_t dst_size, const void *src);
/* An output struct's size: -EFAULT (NULL), -EINVAL (too small), -E2BIG. */
int btmmu__check_out(const void *dst);
void btmmu__copy_out(void *dst, const void *src, size_t src_size);
/* The largest size field accepted in an argument struct: a page. */
#define BTMMU__ARGS_MAX 4096u

/* gpa.c: under ctx->lock (or admin with no mapping possible); async-signal-safe. */
struct btmmu_ram *btmmu__ram_find(struct btmmu *ctx, uint64_t gpa, uint64_t len);
uint32_t btmmu__ram_ceiling(const struct btmmu_ram *ram, uint64_t gpa, uint64_t len);

/* region.c */
bool btmmu__va_valid(const struct btmmu_space *sp, uint64_t gva, uint64_t len);
bool btmmu__window_clip(const struct btmmu_space *sp, uint64_t gva, uint64_t len, uint64_t *lo,
			uint64_t *hi, uint64_t *skip);
void btmmu__view_publish(struct btmmu_space *sp, unsigned v);

/* registry.c: process-wide region lookup for the fault path. */
int btmmu__registry_add(struct btmmu__region *regions, size_t n);
void btmmu__registry_remove(struct btmmu__region *regions, size_t n);
void btmmu__registry_fork_prepare(void);
void btmmu__registry_fork_parent(void);
void btmmu__registry_fork_child(void);
unsigned btmmu__registry_enter(void);
void btmmu__registry_leave(unsigned epoch);
struct btmmu__region *btmmu__registry_lookup(uintptr_t addr);

/* shadow/: what the layers above use (the rest is in shadow/shadow.h). */
int btmmu__pool_init(struct btmmu *ctx, uint64_t max_entries);
void btmmu__pool_fini(struct btmmu *ctx);
struct btmmu__entry *btmmu__entry_find(struct btmmu *ctx, const struct btmmu__region *r,
				       uint64_t off);
uint32_t btmmu__entry_host_prot(const struct btmmu *ctx, const struct btmmu__entry *e,
				uint64_t host_off);
void btmmu__region_reset_counts(struct btmmu *ctx, struct btmmu__region *r);
/* cleared: -1 clear the window here; else what the caller's window_clear() returned. */
void btmmu__region_drop_entries(struct btmmu *ctx, struct btmmu__region *r, int cleared);
int btmmu__window_clear(struct btmmu *ctx, struct btmmu__region *r);
void btmmu__ram_drop_entries(struct btmmu *ctx, struct btmmu_ram *ram);
/*
 * Tear down retired regions (shadow/window.c). Called and return with
 * ctx->lock held. reclaim_one drops the lock around the host call (the
 * reclaimer's way); the _locked forms keep it (callers in the middle of
 * an update).
 */
bool btmmu__reclaim_one(struct btmmu *ctx);
bool btmmu__reclaim_locked(struct btmmu *ctx);
bool btmmu__reclaim_view_locked(struct btmmu *ctx, struct btmmu__view *view);
void btmmu__wait_tearing(struct btmmu *ctx);
/*
 * The dispatcher's questions (shadow/query.c; take ctx->lock themselves,
 * never waiting on it when this thread holds it). fault_flags: BTMMU_FAULT_*
 * for an access at offset off of r (BTMMU_FAULT_NESTED when the lock is
 * this thread's). accessible: would the access succeed now? 1 yes, 0 no,
 * -EDEADLK nested.
 */
unsigned btmmu__shadow_fault_flags(struct btmmu *ctx, struct btmmu__region *r, uint64_t off,
				   unsigned access);
int btmmu__shadow_accessible(struct btmmu *ctx, struct btmmu__region *r, uintptr_t addr,
			     unsigned access);

/* fault.c */
bool btmmu__in_callback(void);
int btmmu__handler_get(struct btmmu *ctx);
void btmmu__handler_put(struct btmmu *ctx);
void btmmu__space_quiesce(struct btmmu_space *sp);
void btmmu__handler_fork_prepare(void);
void btmmu__handler_fork_parent(void);
void btmmu__handler_fork_child(void);

/* reclaim.c */
int btmmu__reaper_start(struct btmmu *ctx);
void btmmu__reaper_stop(struct btmmu *ctx);

/* Wake the reclaim thread. Async-signal-safe (sem_post is). */
static inline void btmmu__reaper_kick(struct btmmu *ctx)
{
	if (ctx->reaper_running)
		sem_post(&ctx->reaper_sem);
}

static inline struct btmmu__entry *btmmu__ent(struct btmmu *ctx, uint32_t i)
{
	return i ? &ctx->pool[i] : NULL;
}

static inline uint32_t btmmu__idx(struct btmmu *ctx, const struct btmmu__entry *e)
{
	return e ? (uint32_t)(e - ctx->pool) : 0;
}

/* All regions of a space: one array, view by view (those created), ring by ring. */
static inline struct btmmu__region *btmmu__space_regions(struct btmmu_space *sp, size_t *n)
{
	*n = sp->nregions;
	return sp->regions;
}

/* A view the space has: less than nviews and created (view_mask). */
static inline bool btmmu__view_exists(const struct btmmu_space *sp, unsigned view)
{
	return view < sp->nviews && ((sp->view_mask >> view) & 1);
}

/* Entry point guard: a child's copy of a context does nothing (-EOWNERDEAD). */
static inline bool btmmu__dead(const struct btmmu *ctx)
{
	return atomic_load_explicit(&((struct btmmu *)ctx)->forked, memory_order_relaxed);
}

/*
 * The prologue of the allocating calls: handle, out pointer, args struct,
 * a live context, not from a fault callback.
 */
static inline int btmmu__create_args(const struct btmmu *ctx, const void *out, void *dst,
				     size_t dst_size, const void *src)
{
	int ret;

	if (!ctx)
		return -EINVAL;
	if (btmmu__dead(ctx))
		return -EOWNERDEAD;
	if (!out)
		return -EFAULT;
	ret = btmmu__copy_args(dst, dst_size, src);
	if (ret)
		return ret;
	return btmmu__in_callback() ? -EDEADLK : 0;
}

static inline void btmmu__stat_add(_Atomic uint64_t *c, uint64_t n)
{
	atomic_fetch_add_explicit(c, n, memory_order_relaxed);
}

/* Host PROT_* for BTMMU_PROT_* rights: the shadow is never executable. */
static inline int btmmu__host_prot(uint32_t rights)
{
	int p = 0;

	if (rights & (BTMMU_PROT_READ | BTMMU_PROT_EXEC))
		p |= 0x1; /* PROT_READ */
	if (rights & BTMMU_PROT_WRITE)
		p |= 0x2 | 0x1; /* PROT_WRITE implies read on our hosts */
	return p;
}

#endif /* BTMMU_INTERNAL_H */
