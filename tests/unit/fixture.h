/* SPDX-License-Identifier: MIT */
/*
 * Test fixture: a context with guest RAM, one space, and a fault callback
 * driven by a software "guest page table" the test fills in. Each test runs
 * in its own process (Check's fork mode), so globals are per test.
 */
#ifndef BTMMU_TEST_FIXTURE_H
#define BTMMU_TEST_FIXTURE_H

#include <check.h>
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <btmmu/btmmu.h>

#define FX_RAM_SIZE (UINT64_C(16) << 20)
#define FX_MAX_PTES 4096

/* What the fault callback does. */
enum fx_policy {
	FX_MAP,		/* translate through the page table, map, RETRY (SLOW if unmapped) */
	FX_SLOW,	/* always SLOW */
	FX_RETRY_ONLY,	/* RETRY without mapping anything */
	FX_NOT_MINE,
	FX_CUSTOM,	/* call fx.custom */
};

struct fx_pte {
	uint64_t gva, gpa;
	uint32_t prot, flags;
};

struct fx {
	struct btmmu *ctx;
	struct btmmu_ram *ram;
	uint8_t *host;
	struct btmmu_space *sp;
	enum fx_policy policy;
	int (*custom)(struct btmmu_fault *f);
	struct fx_pte pte[FX_MAX_PTES];
	unsigned npte;
	/* what the callback saw last */
	struct btmmu_fault last;
	unsigned nfaults;
	int last_map_ret;
};

extern struct fx fx;

int fx_callback(struct btmmu_fault *f, void *opaque);
/* Open a context (host_page_shift 0 = real) with the callback, 16 MiB RAM at gpa 0. */
void fx_open(uint32_t host_page_shift, uint32_t flags);
/* The same with a host mapping budget and an entry pool size (0: default). */
void fx_open_limited(uint32_t host_page_shift, uint32_t flags, uint64_t max_mappings,
		     uint64_t max_entries);
/* A space with 2 views; page_shift, va_bits as given (sign-extend flag in flags). */
void fx_space(uint32_t va_bits, uint32_t page_shift, uint32_t flags);
void fx_close(void);
void fx_add_pte(uint64_t gva, uint64_t gpa, uint32_t prot);
uintptr_t fx_base(unsigned view);
struct btmmu_stats fx_stats(void);
/* Map directly (no fault); returns btmmu_map's result. */
int fx_map(unsigned view, uint64_t gva, uint64_t gpa, uint64_t len, uint32_t prot, uint32_t flags);

/*
 * Running under valgrind (or $BTMMU_TEST_VALGRIND set)? Its address space
 * holds at most some 128 GiB and tens of thousands of mappings: cases
 * that need more skip there.
 */
int fx_valgrind(void);
/*
 * Under valgrind's memcheck: the invalid accesses this thread makes from
 * now on are the test's point (accesses into windows already destroyed),
 * not errors to report. Nothing otherwise.
 */
void fx_valgrind_expect_faults(void);

/* Run a suite (fork mode unless CK_FORK=no) and return the exit status. */
int fx_run(Suite *s);

#endif
