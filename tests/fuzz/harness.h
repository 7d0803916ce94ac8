/* SPDX-License-Identifier: MIT */
/*
 * Internals of the interpreter shared by harness.c (the run, the threads,
 * the fault callback, the operations) and vma.c (consuming
 * vm.max_map_count).
 */
#ifndef BTMMU_FUZZ_HARNESS_H
#define BTMMU_FUZZ_HARNESS_H

#include <pthread.h>
#include <setjmp.h>
#include <signal.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

#include "fuzz.h"
#include "model.h"

/* An access in progress, as the fault callback must see it. */
enum fz_mode {
	FZ_ACC_NORMAL,	/* through the view's current base */
	FZ_ACC_STALE,	/* through the base from before the last full flush */
	FZ_ACC_GUARD,	/* into the guard past the window's end */
};

struct fz_access {
	struct fz_space *sp;
	struct fz_view *v;
	struct fz_snap *snap;		/* FZ_ACC_STALE: the retired region */
	unsigned view;
	enum fz_mode mode;
	const struct fz_pte *tab;	/* the table the region holds: tlb or snapt */
	uintptr_t base;			/* the base the access uses */
	uintptr_t host;
	uint64_t gva;			/* host - base */
	unsigned size, kind;		/* bytes, BTMMU_ACCESS_READ/WRITE */
	int exact;			/* the library's entries equal the model's */
	/* What the callback does besides refilling. */
	int around, use_gen, populate, unprotect, deadlk, reclaim, longjmp, leave_copy;
	/* What it saw. */
	int saw_guard, saw_stale;
};

/* VMAs taken out of vm.max_map_count (vma.c). */
struct fz_hog {
	void *base;
	size_t len;
	long taken;			/* pages split off: two VMAs each */
};

long fz_vma_count(void);
long fz_max_map_count(void);
/* Leave about `left` VMAs of vm.max_map_count free; -errno on failure. */
int fz_hog_fill(struct fz_hog *h, long left);
/* The same, later: split more pages off or merge some back. */
int fz_hog_adjust(struct fz_hog *h, long left);
void fz_hog_release(struct fz_hog *h);

struct fz_run;

struct fz_thread {
	struct fz_world w;
	struct fz_run *run;
	unsigned id;
	uint64_t rng;
	size_t opidx;
	/* The current operation, formatted only when reported or traced. */
	const char *dfmt;
	unsigned long long dv[8];
	long long dret;
	/* The access in progress (read by the callback). */
	struct fz_access acc;
	volatile sig_atomic_t in_access;
	unsigned nfaults;
	/* A divergence the callback saw, reported once the access is over. */
	int cb_kind;
	const char *cb_what;
	unsigned long long cb_v[4];
	/* Descriptors for bad ram_create inputs. */
	int pipefd[2], rofd, sealfd;
	/* Counters. */
	struct fz_pte *scratch;		/* a table to replay requests on */
	uint8_t *models;		/* the RAM slots' file and anon models, one mapping */
	uint64_t ops, accesses, faults, slow, direct, errs, enomem, stale_ok, overcount;
	uint64_t mays, musts, exceptions, exceptions0, livelocks;
	sigjmp_buf jb;			/* the CPU loop: the callback raises guest exceptions */
	uint64_t fl[4];			/* faults with MAPPED, PROTECTED, STALE, GUARD */
	uint64_t last_stats[16];
};

struct fz_run {
	const struct fuzz_config *cfg;
	struct fuzz_result *res;
	struct btmmu *ctx;
	uint32_t hps;			/* host page shift of the open context */
	uint32_t open_flags;
	uint64_t pool;			/* entries in the context's pool */
	unsigned nthreads;
	struct fz_thread *t[FUZZ_MAX_THREADS];
	pthread_t tid[FUZZ_MAX_THREADS];
	pthread_barrier_t bar;
	const uint8_t *data;
	size_t nrec;
	size_t lo, hi;			/* records of the current phase */
	int done;
	atomic_int stop;
	atomic_int lossy;		/* entries may be dropped without counting as evictions */
	pthread_mutex_t lock;
	unsigned reported;		/* kinds already printed */
	struct fz_hog hog;
	pthread_mutex_t hog_lock;
};

extern volatile size_t fuzz_current_op;

#endif /* BTMMU_FUZZ_HARNESS_H */
