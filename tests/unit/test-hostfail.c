/* SPDX-License-Identifier: MIT */
/*
 * Host calls that fail. The user backend's mmap() and mprotect() are
 * interposed here: inside one chosen region, every call that maps or
 * protects less than the whole window fails with ENOMEM (the kernel's
 * answer past vm.max_map_count), while replacing the whole window, which
 * never splits a mapping, still works. What the fuzzer's lowmap config
 * met by chance, at a limit that depends on the machine, is deterministic
 * here.
 */
#include <stdatomic.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "fixture.h"

#define R BTMMU_PROT_READ
#define RW (BTMMU_PROT_READ | BTMMU_PROT_WRITE)
#define PAGE64K 0x10000u

static atomic_uintptr_t fail_lo, fail_hi; /* [lo, hi): fail partial calls there */
static atomic_uint failed;

static int refuse(void *addr, size_t len)
{
	uintptr_t a = (uintptr_t)addr, lo = atomic_load(&fail_lo), hi = atomic_load(&fail_hi);

	if (a >= lo && a < hi && len < hi - lo) {
		atomic_fetch_add(&failed, 1);
		errno = ENOMEM;
		return 1;
	}
	return 0;
}

/* (Named by their symbols: with _FILE_OFFSET_BITS=64 the header's mmap is mmap64.) */
__attribute__((visibility("default"))) void *test_mmap(void *addr, size_t len, int prot,
						     int flags, int fd, off_t off) __asm__("mmap");
void *test_mmap(void *addr, size_t len, int prot, int flags, int fd, off_t off)
{
	if ((flags & MAP_FIXED) && refuse(addr, len))
		return MAP_FAILED;
	return (void *)syscall(SYS_mmap, addr, len, prot, flags, fd, off);
}

__attribute__((visibility("default"))) int test_mprotect(void *addr, size_t len, int prot)
	__asm__("mprotect");
int test_mprotect(void *addr, size_t len, int prot)
{
	if (refuse(addr, len))
		return -1;
	return (int)syscall(SYS_mprotect, addr, len, prot);
}

static void setup(void)
{
	fx_open(0, 0);
	fx_space(32, 16, 0); /* 64 KiB guest pages: a unit is 16 host pages */
	fx.policy = FX_SLOW;
}

static void teardown(void)
{
	atomic_store(&fail_hi, 0);
	atomic_store(&fail_lo, 0);
	fx_close();
}

/* Refuse partial host calls in view v's current region (its 4 GiB window). */
static void refuse_in_view(unsigned v)
{
	uintptr_t b = fx_base(v);

	atomic_store(&fail_hi, b + (UINT64_C(1) << 32));
	atomic_store(&fail_lo, b);
}

/*
 * A protect that splits a unit into pieces, with one alias in a region
 * whose host calls fail: that region is replaced whole (its entries go) and
 * the walk over the aliases starts again. The other alias was changed once
 * and is counted once (before the fix the second pass counted it again:
 * a unit in pieces looked changed each time its rights were applied).
 * Either alias may come first in the walk: fail each view in turn.
 */
static void protect_count_case(unsigned bad)
{
	uint64_t gpa = 4 * PAGE64K;
	uint32_t v;

	ck_assert_int_eq(fx_map(0, 0x100000, gpa, PAGE64K, RW, 0), 1);
	ck_assert_int_eq(fx_map(1, 0x200000, gpa, PAGE64K, RW, 0), 1);
	refuse_in_view(bad);
	/* One KiB of the unit read-only: its first host page, pieces. */
	ck_assert_int_eq(btmmu_protect(fx.ctx, gpa + 0x400, 0x400, R), 2);
	ck_assert_uint_gt(atomic_load(&failed), 0);
	atomic_store(&fail_hi, 0);
	/* The failing view's alias went; the other one took the new rights. */
	ck_assert_int_eq(btmmu_load32(fx_base(bad) + (bad ? 0x200000 : 0x100000), &v), 1);
	ck_assert_int_eq(btmmu_store32(fx_base(!bad) + (bad ? 0x100000 : 0x200000), 1), 1);
	ck_assert_int_eq(btmmu_store32(fx_base(!bad) + (bad ? 0x101000 : 0x201000), 2), 0);
	ck_assert_uint_eq(*(volatile uint32_t *)(fx.host + gpa + 0x1000), 2);
}

START_TEST(protect_counts_once_when_a_region_is_replaced_view0)
{
	protect_count_case(0);
}
END_TEST

START_TEST(protect_counts_once_when_a_region_is_replaced_view1)
{
	protect_count_case(1);
}
END_TEST

static Suite *hostfail_suite(void)
{
	Suite *s = suite_create("hostfail");
	TCase *tc = tcase_create("protect");

	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_add_test(tc, protect_counts_once_when_a_region_is_replaced_view0);
	tcase_add_test(tc, protect_counts_once_when_a_region_is_replaced_view1);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	return fx_run(hostfail_suite());
}
