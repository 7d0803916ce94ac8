/* SPDX-License-Identifier: MIT */
/*
 * libbtmmu: host-MMU-backed guest memory for dynamic binary translators.
 *
 * A translator registers guest RAM (a file descriptor, usually a memfd),
 * creates one address space per guest translation context, and gets for
 * each view (privilege level / mmu_idx) a host base such that guest
 * virtual address GVA lives at host address base + GVA. Translated code
 * accesses guest memory with one host instruction. Pages not installed yet
 * fault; the library's SIGSEGV dispatcher recognises the fault, decodes it
 * and calls the translator's callback, which installs shadow entries
 * (btmmu_map()), asks for the slow path, or declines.
 *
 * Conventions:
 * - every call returns 0 (or a count) on success and a negative errno value
 *   on failure; bad input changes nothing;
 * - argument structs start with a size field (set it to sizeof the struct
 *   you compiled against); a larger struct is accepted only if the bytes
 *   the library does not know are zero (-E2BIG otherwise);
 * - each function's man page (btmmu_<name>(3)) states its thread safety
 *   and whether it may be called from the fault callback
 *   ("async-signal-safe" below). btmmu(7) gives the overview.
 *
 * Guest data lives only in guest RAM: unmapping, flushing or evicting a
 * shadow entry never loses data.
 */
#ifndef BTMMU_BTMMU_H
#define BTMMU_BTMMU_H

#include <stddef.h>
#include <stdint.h>

#include <btmmu/version.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Opaque handles. */
struct btmmu;		/* a context: one per translator process (or more) */
struct btmmu_ram;	/* a guest-physical RAM range */
struct btmmu_space;	/* a guest address space (translation context) */

/* Limits. */
#define BTMMU_MAX_VIEWS		16	/* views per space (QEMU: NB_MMU_MODES) */
#define BTMMU_MIN_PAGE_SHIFT	10	/* 1 KiB guest pages */
#define BTMMU_MAX_PAGE_SHIFT	30	/* 1 GiB guest pages */
#define BTMMU_MIN_VA_BITS	32
#define BTMMU_MAX_VA_BITS	64
#define BTMMU_MAX_WINDOW_BITS	46	/* largest window one view may reserve */
#define BTMMU_MAX_RING		16	/* regions per view */

/* Access permissions of a shadow entry (same values as PROT_*). */
#define BTMMU_PROT_READ		0x1u
#define BTMMU_PROT_WRITE	0x2u
#define BTMMU_PROT_EXEC		0x4u
#define BTMMU_PROT_RWX		0x7u

/* ------------------------------------------------------------------ */
/* Fault dispatch                                                      */
/* ------------------------------------------------------------------ */

/* Access kinds reported in struct btmmu_fault.access. */
#define BTMMU_ACCESS_READ	0x1u
#define BTMMU_ACCESS_WRITE	0x2u
#define BTMMU_ACCESS_EXEC	0x4u

/* Flags reported in struct btmmu_fault.flags. */
#define BTMMU_FAULT_MAPPED	0x1u /* an entry covers the address (the access needs more rights) */
#define BTMMU_FAULT_PROTECTED	0x2u /* btmmu_protect() denies this access on this guest page */
#define BTMMU_FAULT_STALE	0x4u /* the region is not the view's current one (base reloaded?) */
#define BTMMU_FAULT_GUARD	0x8u /* access past the end of the window (wrap-around); slow path */
/*
 * The fault interrupted a library call on this thread (a signal handler of
 * yours touched guest memory while the thread was inside libbtmmu): calls
 * that need the context's lock (btmmu_map()...) return -EDEADLK, and a RETRY
 * is taken as SLOW. Emulate the access. MAPPED and PROTECTED are not set.
 */
#define BTMMU_FAULT_NESTED	0x10u
/*
 * This instruction faulted on the same host pages again and again, each
 * RETRY making its own page accessible (8 in a row): another RETRY may go
 * round in circles (two units of one access evicting each other). Take the
 * slow path. Where it has one (resume_pc, a probe), the library turns that
 * RETRY into SLOW itself.
 */
#define BTMMU_FAULT_REPEATED	0x20u

/* Verdicts a fault callback returns. */
#define BTMMU_FAULT_RETRY	0 /* an entry was installed: re-execute the access */
#define BTMMU_FAULT_SLOW	1 /* emulate this access: continue at resume_pc */
#define BTMMU_FAULT_NOT_MINE	2 /* chain to the previous SIGSEGV handler */

/*
 * What the dispatcher tells the callback. Valid only during the callback.
 * The callback runs in signal context on the faulting thread, with no
 * library lock held; it may run on several threads at once.
 */
struct btmmu_fault {
	size_t size;			/* sizeof(struct btmmu_fault) of the library */
	struct btmmu *ctx;
	struct btmmu_space *space;
	void *space_opaque;		/* btmmu_space_args.opaque */
	unsigned view;
	unsigned access;		/* BTMMU_ACCESS_* (one bit) */
	unsigned flags;			/* BTMMU_FAULT_* */
	unsigned reserved0;
	uint64_t gva;			/* guest VA of the faulting byte (canonical) */
	uint64_t gen;			/* view generation at fault time (btmmu_map_batch) */
	uintptr_t host_addr;		/* faulting host address */
	uintptr_t pc;			/* host PC of the faulting instruction */
	void *ucontext;			/* the signal's ucontext_t */
	/*
	 * Out, for BTMMU_FAULT_SLOW (also a RETRY the dispatcher turns into
	 * SLOW because it resolved nothing): host PC at which execution continues.
	 * Left 0, the library resumes a fault taken in btmmu_load*() or
	 * btmmu_store*() at its slow-path return; anywhere else a SLOW verdict
	 * without resume_pc is treated as NOT_MINE (the process crashes).
	 * A callback may also leave by siglongjmp() (btmmu_fault_fn(3)).
	 */
	uintptr_t resume_pc;
};

/*
 * The translator's fault callback. Returns a BTMMU_FAULT_* verdict. A RETRY
 * that did not make the faulting access possible is turned into SLOW, so a
 * callback cannot loop forever.
 */
typedef int (*btmmu_fault_fn)(struct btmmu_fault *fault, void *opaque);

/*
 * From the callback: would the faulting access succeed now? 1 if yes, 0 if
 * not (decide between RETRY and your own slow path before returning, e.g.
 * when the slow path leaves by siglongjmp()). Async-signal-safe.
 */
int btmmu_fault_resolved(const struct btmmu_fault *fault);

/*
 * Call from the callback before leaving it by siglongjmp() (to raise a guest
 * exception): the fault stops counting as in progress on this thread, so a
 * later fault is not mistaken for recursion. Async-signal-safe.
 */
int btmmu_fault_leave(struct btmmu_fault *fault);

/*
 * Dispatch a SIGSEGV by hand (for translators that own the SIGSEGV handler
 * and opened the context with BTMMU_OPEN_NO_HANDLER). Returns 1 if the fault
 * was handled (execution may continue), 0 if it is not the library's (or
 * the callback said NOT_MINE): the caller then handles or re-raises it.
 * Async-signal-safe.
 */
int btmmu_fault_dispatch(int sig, void *info, void *ucontext);

/* ------------------------------------------------------------------ */
/* Context                                                             */
/* ------------------------------------------------------------------ */

/* btmmu_open_args.flags */
#define BTMMU_OPEN_NO_HANDLER	0x1u /* don't install the SIGSEGV handler */
#define BTMMU_OPEN_NO_THREAD	0x2u /* no reclaim thread: use btmmu_reclaim() */

struct btmmu_open_args {
	size_t size;			/* sizeof(struct btmmu_open_args) */
	const char *backend;		/* NULL: $BTMMU_BACKEND, else probe */
	uint32_t flags;			/* BTMMU_OPEN_* */
	uint32_t host_page_shift;	/* 0: real; larger simulates 16/64 KiB hosts ($BTMMU_HOST_PAGE_SHIFT) */
	btmmu_fault_fn fault_fn;	/* NULL: faults in our regions are passed on */
	void *fault_opaque;
	uint64_t max_mappings;		/* host mapping budget; 0: from vm.max_map_count */
	uint64_t max_entries;		/* shadow entry pool; 0: derived from the budget */
};

int btmmu_open(const struct btmmu_open_args *args, struct btmmu **ctxp);

/* btmmu_backend_info.flags: what the backend does, so callers need not guess. */
#define BTMMU_INFO_EXEC_ONLY	0x1u /* exec-only entries are not readable by the host */
#define BTMMU_INFO_KERNEL_BATCH	0x2u /* a batch of installs is one kernel call */
#define BTMMU_INFO_MAPPINGS	0x4u /* host mappings are budgeted (vm.max_map_count) */

/* btmmu_backend_info.capacity_from: how the capacity was computed. */
#define BTMMU_CAPACITY_MAP_COUNT	0x1u /* budget: what vm.max_map_count leaves the process */
#define BTMMU_CAPACITY_ASKED_MAPPINGS	0x2u /* budget: btmmu_open_args.max_mappings */
#define BTMMU_CAPACITY_ASKED_ENTRIES	0x4u /* entries: btmmu_open_args.max_entries */
#define BTMMU_CAPACITY_UNLIMITED	0x8u /* the backend has no mapping budget */

struct btmmu_backend_info {
	size_t size;			/* in: sizeof(struct btmmu_backend_info) */
	char name[16];			/* "user", ... (as btmmu_backend_name()) */
	uint32_t flags;			/* BTMMU_INFO_* */
	uint32_t capacity_from;		/* BTMMU_CAPACITY_* */
	uint64_t max_entries;		/* shadow entries live at once (the pool) */
	uint64_t max_mappings;		/* host mapping budget, UINT64_MAX: none */
	uint32_t max_window_bits;	/* largest window one view may reserve */
	uint32_t host_page_shift;	/* (simulated) host page */
};

/* What the context's backend can do and how much it holds. */
int btmmu_backend_info(const struct btmmu *ctx, struct btmmu_backend_info *info);
int btmmu_close(struct btmmu *ctx);
const char *btmmu_backend_name(const struct btmmu *ctx);
/* Tear down regions retired by flushes now (instead of in the background). */
int btmmu_reclaim(struct btmmu *ctx);

/* ------------------------------------------------------------------ */
/* Guest RAM                                                           */
/* ------------------------------------------------------------------ */

struct btmmu_ram_args {
	size_t size;			/* sizeof(struct btmmu_ram_args) */
	uint64_t gpa;			/* guest-physical start */
	uint64_t len;			/* bytes */
	int fd;				/* backing fd (memfd...), or -1: allocate */
	uint32_t flags;			/* none defined yet: 0 */
	uint64_t offset;		/* offset of gpa in fd */
};

int btmmu_ram_create(struct btmmu *ctx, const struct btmmu_ram_args *args,
		     struct btmmu_ram **ramp);
int btmmu_ram_destroy(struct btmmu_ram *ram);
/* Host pointer of the whole range (a shared mapping of the fd). */
int btmmu_ram_host(const struct btmmu_ram *ram, void **hostp);

/* ------------------------------------------------------------------ */
/* Address spaces and views                                            */
/* ------------------------------------------------------------------ */

/* btmmu_space_args.flags */
#define BTMMU_SPACE_SIGN_EXTEND	0x1u /* guest VAs are sign-extended from va_bits */

struct btmmu_space_args {
	size_t size;			/* sizeof(struct btmmu_space_args) */
	uint32_t va_bits;		/* guest VA width: 32..64 */
	uint32_t page_shift;		/* guest page size: 10..30 */
	uint32_t nviews;		/* 1..BTMMU_MAX_VIEWS */
	uint32_t flags;			/* BTMMU_SPACE_* */
	uint32_t ring;			/* regions per view, 1..BTMMU_MAX_RING; 0: 4 */
	uint32_t window_bits;		/* 0: min(va_bits, 40); else unit_shift..min(va_bits, 46) */
	uint64_t window_gva;		/* window start if window_bits < va_bits */
	uintptr_t *base_slots;		/* optional: nviews words kept equal to each view's base */
	void *opaque;			/* passed back in struct btmmu_fault */
	uint32_t view_mask;		/* views to create (bit v: view v < nviews); 0: all */
};

int btmmu_space_create(struct btmmu *ctx, const struct btmmu_space_args *args,
		       struct btmmu_space **spacep);
int btmmu_space_destroy(struct btmmu_space *space);

/* btmmu_view_info.flags */
#define BTMMU_VIEW_CHECK	0x1u /* the window is smaller than the VA: check before access */

struct btmmu_view_info {
	size_t size;			/* in: sizeof(struct btmmu_view_info) */
	uintptr_t base;			/* host address of GVA 0 (mod 2^64) */
	uint64_t window_gva;		/* first GVA served directly */
	uint32_t window_bits;		/* 2^window_bits bytes served directly */
	uint32_t va_bits;
	uint32_t page_shift;		/* guest page */
	uint32_t unit_shift;		/* host mapping unit: max(guest page, host page) */
	uint32_t host_page_shift;	/* (simulated) host page */
	uint32_t flags;			/* BTMMU_VIEW_* */
	uint64_t gen;			/* invalidation generation */
	uint64_t live_entries;		/* entries installed in the view now */
	uint64_t fills;			/* entries installed in the view, ever */
};

int btmmu_view_info(const struct btmmu_space *space, unsigned view,
		    struct btmmu_view_info *info);
/* The view's current base: host address = base + gva. Changes on flush. */
int btmmu_view_base(const struct btmmu_space *space, unsigned view,
		    uintptr_t *basep);

/*
 * The check translated code emits when BTMMU_VIEW_CHECK is set: an access of
 * `len` bytes at canonical gva is direct only if it lies in the window.
 */
static inline int btmmu_in_window(const struct btmmu_view_info *vi,
				  uint64_t gva, unsigned len)
{
	uint64_t off = gva - vi->window_gva;

	if (vi->window_bits >= 64)
		return 1;
	return off < (UINT64_C(1) << vi->window_bits) &&
	       len <= (UINT64_C(1) << vi->window_bits) - off;
}

/* ------------------------------------------------------------------ */
/* Shadow entries                                                      */
/* ------------------------------------------------------------------ */

/* btmmu_map_req.flags */
#define BTMMU_MAP_GLOBAL	0x1u /* survives btmmu_flush(..., BTMMU_FLUSH_NONGLOBAL) */
#define BTMMU_MAP_POPULATE	0x2u /* fill the host page tables now: for the page being accessed */
/*
 * The translation comes from a guest page of 2^shift bytes (a large page,
 * shift above the space's page_shift and below va_bits) that holds the
 * whole request: btmmu_unmap() of any part of that page removes every
 * entry the view got from it. 0: the space's page (the default).
 */
#define BTMMU_MAP_PAGE_SHIFT(shift)	((uint32_t)(shift) << 8)
#define BTMMU_MAP_PAGE_SHIFT_MASK	0x3f00u

struct btmmu_map_req {
	uint64_t gva;			/* guest VA, guest-page aligned */
	uint64_t gpa;			/* guest-physical, guest-page aligned */
	uint64_t len;			/* multiple of the guest page */
	uint32_t prot;			/* BTMMU_PROT_*, not 0 */
	uint32_t flags;			/* BTMMU_MAP_* */
};

/*
 * Returns the number of guest pages of the request now directly accessible
 * (saturating at INT_MAX).
 */
int btmmu_map(struct btmmu_space *space, unsigned view,
	      const struct btmmu_map_req *req);
/*
 * Install nreq requests in one go (fault-around). gen: 0, or a generation
 * from struct btmmu_fault / btmmu_view_info: if the view was invalidated
 * since, nothing is installed and -ESTALE is returned.
 */
int btmmu_map_batch(struct btmmu_space *space, unsigned view,
		    const struct btmmu_map_req *reqs, unsigned nreq,
		    uint64_t gen);
/*
 * Fault-around. The translator's answer for one neighbour page at gva:
 * fill req->gpa, ->prot, ->flags (gva and len are set) and return 1 to
 * install it, 0 to leave it out (not present, not accessed yet, device
 * memory...), a negative errno to stop. Called without any lock held.
 */
typedef int (*btmmu_around_fn)(void *opaque, uint64_t gva, struct btmmu_map_req *req);

struct btmmu_around_args {
	size_t size;			/* sizeof(struct btmmu_around_args) */
	uint64_t group;			/* bytes: a power of 2, 1 to 1024 guest pages */
	btmmu_around_fn fn;
	void *opaque;
	uint32_t flags;			/* none defined yet: 0 */
};

/*
 * Install req, and the pages of the aligned group around req->gva that the
 * view does not hold yet and fn translates, in batches checked against
 * gen as btmmu_map_batch() does. Returns the pages of req and of the
 * neighbours it installed now directly accessible.
 */
int btmmu_map_around(struct btmmu_space *space, unsigned view,
		     const struct btmmu_map_req *req, const struct btmmu_around_args *args,
		     uint64_t gen);

/*
 * Remove the entries of [gva, gva+len) from every view in the mask, and of
 * every guest large page it touches (BTMMU_MAP_PAGE_SHIFT).
 */
int btmmu_unmap(struct btmmu_space *space, uint32_t views, uint64_t gva,
		uint64_t len);

/* btmmu_flush flags */
#define BTMMU_FLUSH_NONGLOBAL	0x1u /* keep entries mapped with BTMMU_MAP_GLOBAL */

int btmmu_flush(struct btmmu_space *space, uint32_t views, uint32_t flags);
int btmmu_flush_all(struct btmmu *ctx);

/*
 * Set the most an alias of guest-physical [gpa, gpa+len) may allow, in every
 * view of every space, now and for later installs (write-protect code pages,
 * dirty tracking). btmmu_unprotect() lifts it. Return the number of shadow
 * entries changed.
 */
int btmmu_protect(struct btmmu *ctx, uint64_t gpa, uint64_t len,
		  uint32_t prot);
int btmmu_unprotect(struct btmmu *ctx, uint64_t gpa, uint64_t len);
/*
 * Race-free lifting for dirty tracking: read the protect sequence (it grows
 * with every btmmu_protect() call), check the caller's own state (say, the
 * page is dirty for every client), then btmmu_unprotect_since() lifts the
 * ceiling only if no btmmu_protect() ran in between: -ESTALE otherwise, and
 * nothing changed (the next write faults again).
 */
int btmmu_protect_seq(struct btmmu *ctx, uint64_t *seq);
int btmmu_unprotect_since(struct btmmu *ctx, uint64_t gpa, uint64_t len,
			  uint64_t seq);

/* ------------------------------------------------------------------ */
/* Probe accessors                                                     */
/* ------------------------------------------------------------------ */

/*
 * Direct accesses from C (interpreters, helpers): one host load or store at
 * `host` (a view's base + gva). Return 0 when done, 1 when the fault
 * callback chose the slow path (nothing was accessed: emulate it).
 */
int btmmu_load8(uintptr_t host, uint8_t *val);
int btmmu_load16(uintptr_t host, uint16_t *val);
int btmmu_load32(uintptr_t host, uint32_t *val);
int btmmu_load64(uintptr_t host, uint64_t *val);
int btmmu_store8(uintptr_t host, uint8_t val);
int btmmu_store16(uintptr_t host, uint16_t val);
int btmmu_store32(uintptr_t host, uint32_t val);
int btmmu_store64(uintptr_t host, uint64_t val);

/* ------------------------------------------------------------------ */
/* Statistics and version                                              */
/* ------------------------------------------------------------------ */

struct btmmu_stats {
	size_t size;			/* in: sizeof(struct btmmu_stats) */
	uint64_t faults;		/* dispatched to the callback */
	uint64_t faults_retry;
	uint64_t faults_slow;
	uint64_t faults_not_mine;
	uint64_t retry_no_progress;	/* RETRY turned into SLOW */
	uint64_t fills;			/* host mappings installed (units) */
	uint64_t install_calls;		/* host mapping calls (after coalescing) */
	uint64_t unmaps;		/* units removed by btmmu_unmap */
	uint64_t flushes;		/* view flushes (full) */
	uint64_t flushes_nonglobal;
	uint64_t evictions;		/* units evicted for capacity */
	uint64_t protects;		/* units whose rights changed by (un)protect */
	uint64_t reclaims;		/* regions torn down */
	uint64_t sync_reclaims;		/* ...on the caller's path (ring exhausted) */
	uint64_t live_entries;		/* units installed now */
	uint64_t live_mappings;		/* host mappings now (upper bound) */
	uint64_t max_mappings;		/* budget */
	uint64_t clear_fallbacks;	/* windows emptied whole: the host refused a split */
};

int btmmu_stats_get(const struct btmmu *ctx, struct btmmu_stats *stats);

/* BTMMU_VERSION_NUMBER of the library at run time. */
unsigned btmmu_version(void);
const char *btmmu_version_string(void);

#ifdef __cplusplus
}
#endif

#endif /* BTMMU_BTMMU_H */
