/* SPDX-License-Identifier: MIT */
/*
 * Differential fuzzing of libbtmmu's public API against a reference model
 * of its contract (btmmu(7), btmmu_*(3)).
 *
 * fuzz_one() reads an operation stream (16-byte records) and runs it on
 * 1..4 threads sharing one context. Each thread owns its spaces and its
 * guest RAM ranges (disjoint guest-physical zones), so each thread's model
 * is exact while the context's entry pool, budget, eviction, locks and
 * reclaim thread are shared. Records that cross threads (flush_all,
 * close/reopen, whole-state checks) run at barriers, with every thread
 * paused.
 *
 * Users: the driver (driver.c, tests/fuzz/fuzz) and the libFuzzer target
 * (libfuzzer.c).
 */
#ifndef BTMMU_FUZZ_H
#define BTMMU_FUZZ_H

#include <stddef.h>
#include <stdint.h>

#define FUZZ_MAX_THREADS 4
#define FUZZ_RECORD 16 /* bytes per operation record */

/* Host page shift choice meaning "let the stream choose at each open". */
#define FUZZ_HPS_ANY UINT32_MAX

/*
 * Kinds of divergence. A kind in fuzz_config.tolerate is counted and
 * reported once, but does not stop the run (known, reported bugs).
 */
enum fuzz_kind {
	FUZZ_OK = 0,
	FUZZ_ERRNO,	/* a call returned another value/errno than the contract says */
	FUZZ_STALE,	/* an access succeeded that the model says must take the slow path */
	FUZZ_MISSED,	/* an access went slow that the model says must succeed */
	FUZZ_DATA,	/* a load returned, or RAM holds, other bytes than the model */
	FUZZ_PARTIAL,	/* a slow-path access wrote memory or *val */
	FUZZ_FAULT,	/* the callback got a fault it should not, or wrong fields */
	FUZZ_FLAGS,	/* BTMMU_FAULT_* flags disagree with the model */
	FUZZ_COUNT,	/* map/unmap/protect count outside the predicted range */
	FUZZ_BASE,	/* a view's base or base slot changed (or not) unexpectedly */
	FUZZ_GEN,	/* a view's generation did not grow, or changed unexpectedly */
	FUZZ_INFO,	/* btmmu_view_info/btmmu_stats_get fields wrong */
	FUZZ_CRASH,	/* a signal the library should have handled, or a hang */
	FUZZ_NKINDS,
};

const char *fuzz_kind_name(int kind);
/*
 * Library behaviours the model can mimic, so that a run goes on looking for
 * other divergences (fuzz_config.quirks): STICKY is a documented rule
 * (btmmu_map(3)), the others replay bugs since fixed (README.md).
 */
#define FUZZ_Q_STICKY 0x1u   /* a sub-page unit keeps one frame; strays are not re-checked */
#define FUZZ_Q_RAMCACHE 0x2u /* batches: don't send a request longer than the previous RAM */
#define FUZZ_Q_PROTFLAG 0x4u /* PROTECTED may come from the KiB after the faulting one */
#define FUZZ_Q_LIVELOCK 0x8u /* an access spanning two units may fault forever */
#define FUZZ_Q_ALL 0xfu

/* Parse "sticky,ramcache,protflag,livelock" or "all" into FUZZ_Q_* bits; -1 on an unknown name. */
int fuzz_quirk_mask(const char *list, unsigned *mask);
/* Parse "stale,count" into a mask of (1u << kind); -1 on an unknown name. */
int fuzz_kind_mask(const char *list, unsigned *mask);

struct fuzz_config {
	const char *name;
	unsigned nthreads;		/* 1..FUZZ_MAX_THREADS */
	uint32_t open_flags;		/* BTMMU_OPEN_*; NO_THREAD may also come from the stream */
	int stream_flags;		/* 1: the stream picks NO_THREAD at each open */
	uint32_t host_page_shift;	/* 0 (real), 13..16, or FUZZ_HPS_ANY */
	uint64_t max_mappings;		/* btmmu_open_args: 0 = default */
	uint64_t max_entries;
	/*
	 * Consume vm.max_map_count before opening so that the kernel, not the
	 * budget, refuses host mappings: leave this many VMAs free (0: off).
	 */
	unsigned vma_free;
	/* The system limit is lowered by a wrapper (host calls may fail). */
	int host_limited;
	unsigned tolerate;		/* mask of (1u << FUZZ_*) */
	unsigned quirks;		/* FUZZ_Q_*: known library behaviours the model mimics */
	int trace;			/* print every operation as interpreted */
	int selftest;			/* 1: crash on purpose (libFuzzer chaining check) */
	int quiet;			/* don't print divergences (shrinking) */
};

struct fuzz_result {
	uint64_t ops, accesses, faults, divergences, tolerated;
	uint64_t slow, direct, errors_checked, evictions, enomem, stale_ok;
	uint64_t overcount;		/* batches counted in order rather than on return */
	uint64_t musts;			/* accesses that had to be direct */
	uint64_t exceptions;		/* accesses the callback left by siglongjmp() */
	uint64_t livelocks;		/* accesses cut at 64 faults (FUZZ_Q_LIVELOCK) */
	uint64_t flags[4];		/* faults with MAPPED, PROTECTED, STALE, GUARD */
	int first_kind;			/* enum fuzz_kind of the first divergence */
	size_t first_op;		/* its record index in the stream */
	char first_msg[1024];		/* op, expected, seen */
};

/* The named configurations (default, small, hps16, enomem...). */
const struct fuzz_config *fuzz_config_find(const char *name);
const char *fuzz_config_names(void);

/*
 * Run one stream on a fresh context. Returns 0 when the library agreed
 * with the model on every operation, 1 on a divergence, 77 when the
 * configuration cannot run here (e.g. vm.max_map_count unreadable).
 */
int fuzz_one(const uint8_t *data, size_t len, const struct fuzz_config *cfg);
int fuzz_one_ex(const uint8_t *data, size_t len, const struct fuzz_config *cfg,
		struct fuzz_result *res);

#endif /* BTMMU_FUZZ_H */
