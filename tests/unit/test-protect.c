/* SPDX-License-Identifier: MIT */
/* protect/unprotect by guest-physical range, across every alias. */
#include "fixture.h"

#define R BTMMU_PROT_READ
#define RW (BTMMU_PROT_READ | BTMMU_PROT_WRITE)

static struct btmmu_space *sp2;

static void setup(void)
{
	struct btmmu_space_args a = { .size = sizeof(a), .va_bits = 32, .page_shift = 12, .nviews = 1 };

	fx_open(0, 0);
	fx_space(32, 12, 0);
	ck_assert_int_eq(btmmu_space_create(fx.ctx, &a, &sp2), 0);
	fx.policy = FX_SLOW;
}

static void teardown(void)
{
	ck_assert_int_eq(btmmu_space_destroy(sp2), 0);
	fx_close();
}

static int map_in(struct btmmu_space *sp, unsigned view, uint64_t gva, uint64_t gpa, uint64_t len,
		  uint32_t prot)
{
	struct btmmu_map_req q = { .gva = gva, .gpa = gpa, .len = len, .prot = prot };

	return btmmu_map(sp, view, &q);
}

static uintptr_t base_of(struct btmmu_space *sp, unsigned view)
{
	uintptr_t b;

	ck_assert_int_eq(btmmu_view_base(sp, view, &b), 0);
	return b;
}

START_TEST(validation)
{
	ck_assert_int_eq(btmmu_protect(NULL, 0, 4096, R), -EINVAL);
	ck_assert_int_eq(btmmu_protect(fx.ctx, 0, 4096, 0x8), -EINVAL);
	ck_assert_int_eq(btmmu_protect(fx.ctx, 0, 0, R), -EINVAL);
	ck_assert_int_eq(btmmu_protect(fx.ctx, 512, 4096, R), -EINVAL);
	ck_assert_int_eq(btmmu_protect(fx.ctx, 0, 1000, R), -EINVAL);
	ck_assert_int_eq(btmmu_protect(fx.ctx, FX_RAM_SIZE, 4096, R), -ENXIO);
	ck_assert_int_eq(btmmu_protect(fx.ctx, FX_RAM_SIZE - 4096, 8192, R), -ENXIO);
	ck_assert_int_eq(btmmu_protect(fx.ctx, UINT64_MAX - 1023, 2048, R), -EINVAL);
	ck_assert_int_eq(btmmu_unprotect(NULL, 0, 4096), -EINVAL);
	ck_assert_int_eq(btmmu_unprotect(fx.ctx, 0, 0), -EINVAL);
	ck_assert_int_eq(btmmu_unprotect(fx.ctx, FX_RAM_SIZE, 4096), -ENXIO);
}
END_TEST

/* Write-protect one frame: every alias in every view and space loses write. */
START_TEST(write_protect_all_aliases)
{
	uint32_t v;

	ck_assert_int_eq(fx_map(0, 0x10000, 0x8000, 4096, RW, 0), 1);
	ck_assert_int_eq(fx_map(1, 0x20000, 0x8000, 4096, RW, 0), 1);
	ck_assert_int_eq(map_in(sp2, 0, 0x30000, 0x8000, 4096, RW), 1);
	ck_assert_int_eq(map_in(sp2, 0, 0x31000, 0x9000, 4096, RW), 1); /* other frame */
	ck_assert_int_eq(btmmu_protect(fx.ctx, 0x8000, 4096, R | BTMMU_PROT_EXEC), 3);
	ck_assert_int_eq(btmmu_store32(fx_base(0) + 0x10000, 1), 1);
	ck_assert(fx.last.flags & BTMMU_FAULT_PROTECTED);
	ck_assert(fx.last.flags & BTMMU_FAULT_MAPPED);
	ck_assert_int_eq(btmmu_store32(fx_base(1) + 0x20000, 1), 1);
	ck_assert_int_eq(btmmu_store32(base_of(sp2, 0) + 0x30000, 1), 1);
	ck_assert_uint_eq(fx.nfaults, 3);
	/* Reads stay direct; the other frame stays writable. */
	ck_assert_int_eq(btmmu_load32(base_of(sp2, 0) + 0x30000, &v), 0);
	ck_assert_int_eq(btmmu_store32(base_of(sp2, 0) + 0x31000, 1), 0);
	ck_assert_uint_eq(fx.nfaults, 3);
	ck_assert_uint_eq(*(uint32_t *)(fx.host + 0x8000), 0);
	ck_assert_uint_eq(fx_stats().protects, 3);
}
END_TEST

/* Later installs of a protected frame get the ceiling too. */
START_TEST(ceiling_applies_to_new_entries)
{
	ck_assert_int_eq(btmmu_protect(fx.ctx, 0x8000, 4096, R), 0);
	ck_assert_int_eq(fx_map(0, 0x10000, 0x8000, 4096, RW, 0), 1);
	ck_assert_int_eq(btmmu_store32(fx_base(0) + 0x10000, 1), 1);
	ck_assert(fx.last.flags & BTMMU_FAULT_PROTECTED);
}
END_TEST

/* Unprotect restores what each entry was mapped with. */
START_TEST(unprotect_restores)
{
	ck_assert_int_eq(fx_map(0, 0x10000, 0x8000, 4096, RW, 0), 1);
	ck_assert_int_eq(fx_map(1, 0x20000, 0x8000, 4096, R, 0), 1);
	ck_assert_int_eq(btmmu_protect(fx.ctx, 0x8000, 4096, R), 1);
	ck_assert_int_eq(btmmu_unprotect(fx.ctx, 0x8000, 4096), 1);
	ck_assert_int_eq(btmmu_store32(fx_base(0) + 0x10000, 5), 0);
	ck_assert_uint_eq(*(uint32_t *)(fx.host + 0x8000), 5);
	ck_assert_int_eq(btmmu_store32(fx_base(1) + 0x20000, 6), 1); /* mapped read-only */
	ck_assert(!(fx.last.flags & BTMMU_FAULT_PROTECTED));
}
END_TEST

/* Protecting what is already protected changes nothing. */
START_TEST(protect_twice_changes_nothing)
{
	ck_assert_int_eq(fx_map(0, 0x10000, 0x8000, 4096, RW, 0), 1);
	ck_assert_int_eq(btmmu_protect(fx.ctx, 0x8000, 4096, R), 1);
	ck_assert_int_eq(btmmu_protect(fx.ctx, 0x8000, 4096, R), 0);
	ck_assert_int_eq(btmmu_unprotect(fx.ctx, 0x8000, 4096), 1);
	ck_assert_int_eq(btmmu_unprotect(fx.ctx, 0x8000, 4096), 0);
}
END_TEST

/* No rights at all: reads fault too. */
START_TEST(protect_none)
{
	uint32_t v;

	ck_assert_int_eq(fx_map(0, 0x10000, 0x8000, 4096, RW, 0), 1);
	ck_assert_int_eq(btmmu_protect(fx.ctx, 0x8000, 4096, 0), 1);
	ck_assert_int_eq(btmmu_load32(fx_base(0) + 0x10000, &v), 1);
	ck_assert(fx.last.flags & BTMMU_FAULT_PROTECTED);
	ck_assert_uint_eq(fx.last.access, BTMMU_ACCESS_READ);
}
END_TEST

/*
 * A 1 KiB granule: the whole host page loses write, but only the protected
 * granule reports PROTECTED.
 */
START_TEST(granule_inside_host_page)
{
	ck_assert_int_eq(fx_map(0, 0x10000, 0x8000, 4096, RW, 0), 1);
	ck_assert_int_eq(btmmu_protect(fx.ctx, 0x8400, 1024, R), 1);
	ck_assert_int_eq(btmmu_store32(fx_base(0) + 0x10400, 1), 1);
	ck_assert(fx.last.flags & BTMMU_FAULT_PROTECTED);
	ck_assert_int_eq(btmmu_store32(fx_base(0) + 0x10800, 1), 1);
	ck_assert(!(fx.last.flags & BTMMU_FAULT_PROTECTED));
	ck_assert(fx.last.flags & BTMMU_FAULT_MAPPED);
	ck_assert_int_eq(btmmu_unprotect(fx.ctx, 0x8400, 1024), 1);
	ck_assert_int_eq(btmmu_store32(fx_base(0) + 0x10800, 1), 0);
}
END_TEST

/*
 * PROTECTED is the faulting KiB's own ceiling: a store at an address that
 * is not KiB-aligned, whose KiB is writable, is not PROTECTED because the
 * next KiB is (the library looked at [gpa, gpa + 1 KiB) before).
 */
START_TEST(protected_flag_unaligned)
{
	ck_assert_int_eq(fx_map(0, 0x10000, 0x8000, 4096, RW, 0), 1);
	ck_assert_int_eq(btmmu_protect(fx.ctx, 0x8400, 1024, R), 1);
	ck_assert_int_eq(btmmu_store32(fx_base(0) + 0x10100, 1), 1);
	ck_assert(fx.last.flags & BTMMU_FAULT_MAPPED);
	ck_assert(!(fx.last.flags & BTMMU_FAULT_PROTECTED));
	ck_assert_int_eq(btmmu_store16(fx_base(0) + 0x103fe, 1), 1);
	ck_assert(!(fx.last.flags & BTMMU_FAULT_PROTECTED));
	ck_assert_int_eq(btmmu_store32(fx_base(0) + 0x10404, 1), 1);
	ck_assert(fx.last.flags & BTMMU_FAULT_PROTECTED);
	ck_assert_int_eq(btmmu_store8(fx_base(0) + 0x107ff, 1), 1);
	ck_assert(fx.last.flags & BTMMU_FAULT_PROTECTED);
}
END_TEST

/*
 * Dirty tracking's race (a vCPU makes a page writable again while the
 * migration thread cleans it): the lift loses to a protect that ran after
 * the sequence was read, and the page stays write-protected in every alias.
 */
START_TEST(unprotect_since_loses_to_protect)
{
	uint64_t seq, seq2;

	ck_assert_int_eq(fx_map(0, 0x10000, 0x8000, 4096, RW, 0), 1);
	ck_assert_int_eq(map_in(sp2, 0, 0x50000, 0x8000, 4096, RW), 1);
	ck_assert_int_eq(btmmu_protect(fx.ctx, 0x8000, 4096, R), 2);
	/* The vCPU: the page is dirty for every client, read the sequence. */
	ck_assert_int_eq(btmmu_protect_seq(fx.ctx, &seq), 0);
	/* The migration thread: cleans the page, write-protects it again. */
	ck_assert_int_eq(btmmu_protect(fx.ctx, 0x8000, 4096, R), 0);
	/* The vCPU's lift comes too late: refused, nothing writable. */
	ck_assert_int_eq(btmmu_unprotect_since(fx.ctx, 0x8000, 4096, seq), -ESTALE);
	ck_assert_int_eq(btmmu_store32(fx_base(0) + 0x10000, 1), 1);
	ck_assert(fx.last.flags & BTMMU_FAULT_PROTECTED);
	ck_assert_int_eq(btmmu_store32(base_of(sp2, 0) + 0x50000, 1), 1);
	/* Unprotect does not move the sequence; with no protect between, it lifts. */
	ck_assert_int_eq(btmmu_protect_seq(fx.ctx, &seq), 0);
	ck_assert_int_eq(btmmu_unprotect(fx.ctx, 0x9000, 4096), 0);
	ck_assert_int_eq(btmmu_protect_seq(fx.ctx, &seq2), 0);
	ck_assert_uint_eq(seq2, seq);
	ck_assert_int_eq(btmmu_unprotect_since(fx.ctx, 0x8000, 4096, seq), 2);
	ck_assert_int_eq(btmmu_store32(fx_base(0) + 0x10000, 7), 0);
	ck_assert_int_eq(btmmu_store32(base_of(sp2, 0) + 0x50000, 8), 0);
}
END_TEST

/* A protect over a whole RAM range walks the entries, not the range. */
START_TEST(protect_whole_ram)
{
	unsigned i;

	for (i = 0; i < 32; i++)
		ck_assert_int_eq(fx_map(0, 0x100000 + i * 8192, i * 4096, 4096, RW, 0), 1);
	ck_assert_int_eq(btmmu_protect(fx.ctx, 0, FX_RAM_SIZE, R), 32);
	for (i = 0; i < 32; i++)
		ck_assert_int_eq(btmmu_store32(fx_base(0) + 0x100000 + i * 8192, 1), 1);
	ck_assert_int_eq(btmmu_unprotect(fx.ctx, 0, FX_RAM_SIZE), 32);
	for (i = 0; i < 32; i++)
		ck_assert_int_eq(btmmu_store32(fx_base(0) + 0x100000 + i * 8192, 1), 0);
}
END_TEST

/* Large guest pages: only the protected host pages of the unit lose write. */
START_TEST(protect_inside_large_page)
{
	struct btmmu_space_args a = { .size = sizeof(a), .va_bits = 32, .page_shift = 21, .nviews = 1 };
	struct btmmu_space *big;
	uintptr_t b;

	ck_assert_int_eq(btmmu_space_create(fx.ctx, &a, &big), 0);
	ck_assert_int_eq(map_in(big, 0, 0x400000, 0x200000, 2 << 20, RW), 1);
	b = base_of(big, 0);
	ck_assert_int_eq(btmmu_protect(fx.ctx, 0x200000 + 0x5000, 4096, R), 1);
	ck_assert_int_eq(btmmu_store32(b + 0x405000, 1), 1);
	ck_assert(fx.last.flags & BTMMU_FAULT_PROTECTED);
	ck_assert_int_eq(btmmu_store32(b + 0x404000, 2), 0);
	ck_assert_int_eq(btmmu_store32(b + 0x406000, 3), 0);
	ck_assert_uint_eq(*(uint32_t *)(fx.host + 0x204000), 2);
	/* Installing a unit with a ceiling inside it maps it in pieces. */
	ck_assert_int_eq(btmmu_flush(big, 1, 0), 0);
	ck_assert_int_ge(btmmu_reclaim(fx.ctx), 0); /* retired aliases would count too */
	ck_assert_int_eq(map_in(big, 0, 0x400000, 0x200000, 2 << 20, RW), 1);
	b = base_of(big, 0);
	ck_assert_int_eq(btmmu_store32(b + 0x405000, 1), 1);
	ck_assert_int_eq(btmmu_store32(b + 0x406000, 4), 0);
	ck_assert_int_eq(btmmu_unprotect(fx.ctx, 0x205000, 4096), 1);
	ck_assert_int_eq(btmmu_store32(b + 0x405000, 1), 0);
	ck_assert_int_eq(btmmu_space_destroy(big), 0);
}
END_TEST

/* Dirty tracking: protect, catch the first write, unprotect from the callback. */
static int track_dirty(struct btmmu_fault *f)
{
	if (!(f->flags & BTMMU_FAULT_PROTECTED))
		return BTMMU_FAULT_SLOW;
	ck_assert_int_eq(btmmu_unprotect(f->ctx, 0x8000, 4096), 1);
	return BTMMU_FAULT_RETRY;
}

START_TEST(dirty_tracking_from_callback)
{
	ck_assert_int_eq(fx_map(0, 0x10000, 0x8000, 4096, RW, 0), 1);
	ck_assert_int_eq(btmmu_protect(fx.ctx, 0x8000, 4096, R), 1);
	fx.policy = FX_CUSTOM;
	fx.custom = track_dirty;
	ck_assert_int_eq(btmmu_store32(fx_base(0) + 0x10000, 9), 0);
	ck_assert_uint_eq(fx.nfaults, 1);
	ck_assert_uint_eq(*(uint32_t *)(fx.host + 0x8000), 9);
	ck_assert_int_eq(btmmu_store32(fx_base(0) + 0x10004, 9), 0);
	ck_assert_uint_eq(fx.nfaults, 1);
	ck_assert_uint_eq(fx_stats().faults_retry, 1);
}
END_TEST

static Suite *protect_suite(void)
{
	Suite *s = suite_create("protect");
	TCase *tc = tcase_create("protect");

	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_add_test(tc, validation);
	tcase_add_test(tc, write_protect_all_aliases);
	tcase_add_test(tc, ceiling_applies_to_new_entries);
	tcase_add_test(tc, unprotect_restores);
	tcase_add_test(tc, protect_twice_changes_nothing);
	tcase_add_test(tc, protect_none);
	tcase_add_test(tc, granule_inside_host_page);
	tcase_add_test(tc, protected_flag_unaligned);
	tcase_add_test(tc, unprotect_since_loses_to_protect);
	tcase_add_test(tc, protect_whole_ram);
	tcase_add_test(tc, protect_inside_large_page);
	tcase_add_test(tc, dirty_tracking_from_callback);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	return fx_run(protect_suite());
}
