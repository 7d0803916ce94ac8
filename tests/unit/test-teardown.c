/* SPDX-License-Identifier: MIT */
/*
 * Calls that race the reclaim thread's teardown of a retired region. The
 * test holds the reclaimer inside its host call (an mmap() interposed
 * here, gated for threads other than the test's own), so the region stays
 * BTMMU__REGION_TEARING, with its old mappings, for as long as the test
 * needs: what used to be a timing-dependent divergence of the fuzzer is
 * deterministic here.
 */
#include <pthread.h>
#include <semaphore.h>
#include <stdatomic.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include "fixture.h"

#define R BTMMU_PROT_READ
#define RW (BTMMU_PROT_READ | BTMMU_PROT_WRITE)

static atomic_uintptr_t gate_addr; /* 0: no gate */
static pid_t test_tid;
static sem_t gate_entered, gate_release;

/*
 * The reclaimer's teardown is one mmap(MAP_FIXED, PROT_NONE) over the
 * region: when it comes for gate_addr from another thread, hold it until
 * the test says. Everything else goes straight to the kernel. (Named by
 * its symbol: with _FILE_OFFSET_BITS=64 the header's mmap is mmap64.)
 */
__attribute__((visibility("default"))) void *test_mmap(void *addr, size_t len, int prot,
						     int flags, int fd, off_t off) __asm__("mmap");
void *test_mmap(void *addr, size_t len, int prot, int flags, int fd, off_t off)
{
	uintptr_t g = atomic_load(&gate_addr);

	if (g && (uintptr_t)addr == g && (flags & MAP_FIXED) && prot == PROT_NONE &&
	    (pid_t)syscall(SYS_gettid) != test_tid &&
	    atomic_compare_exchange_strong(&gate_addr, &g, 0)) {
		sem_post(&gate_entered);
		while (sem_wait(&gate_release))
			;
	}
	return (void *)syscall(SYS_mmap, addr, len, prot, flags, fd, off);
}

static void setup(void)
{
	test_tid = (pid_t)syscall(SYS_gettid);
	ck_assert_int_eq(sem_init(&gate_entered, 0, 0), 0);
	ck_assert_int_eq(sem_init(&gate_release, 0, 0), 0);
	fx_open(0, 0); /* with the reclaim thread */
	fx_space(32, 12, 0);
	fx.policy = FX_SLOW;
}

static void teardown(void)
{
	fx_close();
}

/* Retire view 0's region and hold the reclaimer in its teardown. */
static uintptr_t hold_teardown(void)
{
	uintptr_t old = fx_base(0); /* window at gva 0: the region's start */
	struct timespec ts;

	atomic_store(&gate_addr, old);
	ck_assert_int_eq(btmmu_flush(fx.sp, 1, 0), 0);
	ck_assert_uint_ne(fx_base(0), old);
	/* Its periodic pass (50 ms) finds the retired region. */
	clock_gettime(CLOCK_REALTIME, &ts);
	ts.tv_sec += 30;
	ck_assert_int_eq(sem_timedwait(&gate_entered, &ts), 0);
	return old;
}

/*
 * btmmu_protect() while the reclaimer tears down the region holding a
 * writable alias: once it returns, a store through the stale base must
 * not land (it did: the region's entries were skipped, its mappings
 * still there).
 */
START_TEST(protect_during_teardown)
{
	uintptr_t old;
	uint32_t v;

	ck_assert_int_eq(fx_map(0, 0x10000, 0x8000, 4096, RW, 0), 1);
	ck_assert_int_eq(btmmu_store32(fx_base(0) + 0x10000, 7), 0);
	old = hold_teardown();
	ck_assert_int_eq(btmmu_protect(fx.ctx, 0x8000, 4096, R), 0);
	ck_assert_int_eq(btmmu_store32(old + 0x10000, 9), 1);
	ck_assert(fx.last.flags & BTMMU_FAULT_STALE);
	ck_assert_uint_eq(*(uint32_t *)(fx.host + 0x8000), 7);
	sem_post(&gate_release);
	/* The teardown completes; the old base stays unusable, RAM intact. */
	ck_assert_int_ge(btmmu_reclaim(fx.ctx), 0);
	ck_assert_int_eq(btmmu_load32(old + 0x10000, &v), 1);
	ck_assert_uint_eq(*(uint32_t *)(fx.host + 0x8000), 7);
}
END_TEST

/* An unprotect during the teardown gives nothing back to the old base. */
START_TEST(unprotect_during_teardown)
{
	uintptr_t old;

	ck_assert_int_eq(btmmu_protect(fx.ctx, 0x8000, 4096, R), 0);
	ck_assert_int_eq(fx_map(0, 0x10000, 0x8000, 4096, RW, 0), 1);
	old = hold_teardown();
	ck_assert_int_eq(btmmu_unprotect(fx.ctx, 0x8000, 4096), 0);
	ck_assert_int_eq(btmmu_store32(old + 0x10000, 9), 1);
	ck_assert_uint_eq(*(uint32_t *)(fx.host + 0x8000), 0);
	sem_post(&gate_release);
	ck_assert_int_ge(btmmu_reclaim(fx.ctx), 0);
}
END_TEST

static Suite *teardown_suite(void)
{
	Suite *s = suite_create("teardown");
	TCase *tc = tcase_create("teardown");

	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_set_timeout(tc, 60);
	tcase_add_test(tc, protect_during_teardown);
	tcase_add_test(tc, unprotect_during_teardown);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	return fx_run(teardown_suite());
}
