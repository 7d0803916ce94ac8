/* SPDX-License-Identifier: MIT */
/* Address spaces: geometry, validation, windows, views and their bases. */
#include <stdio.h>

#include "fixture.h"

static struct btmmu_space *sp;

static void setup(void)
{
	fx_open(0, 0);
}

static void teardown(void)
{
	fx_close();
}

static struct btmmu_space_args args(uint32_t va_bits, uint32_t page_shift, uint32_t nviews)
{
	struct btmmu_space_args a = { .size = sizeof(a), .va_bits = va_bits,
				      .page_shift = page_shift, .nviews = nviews };
	return a;
}

static int create(struct btmmu_space_args *a)
{
	return btmmu_space_create(fx.ctx, a, &sp);
}

static struct btmmu_view_info info(unsigned view)
{
	struct btmmu_view_info vi = { .size = sizeof(vi) };

	ck_assert_int_eq(btmmu_view_info(sp, view, &vi), 0);
	return vi;
}

START_TEST(default_32bit_geometry)
{
	struct btmmu_space_args a = args(32, 12, 3);
	struct btmmu_view_info vi;

	ck_assert_int_eq(create(&a), 0);
	vi = info(2);
	ck_assert_uint_eq(vi.va_bits, 32);
	ck_assert_uint_eq(vi.window_bits, 32);
	ck_assert_uint_eq(vi.window_gva, 0);
	ck_assert_uint_eq(vi.page_shift, 12);
	ck_assert_uint_eq(vi.unit_shift, 12);
	ck_assert_uint_eq(vi.flags & BTMMU_VIEW_CHECK, 0);
	ck_assert_uint_ne(vi.base, 0);
	ck_assert_uint_ge(vi.gen, 1);
	ck_assert_uint_ne(info(0).base, info(1).base);
	ck_assert_int_eq(btmmu_space_destroy(sp), 0);
}
END_TEST

#define BAD_SPACE(name, field, value, err)                    \
	START_TEST(name)                                      \
	{                                                     \
		struct btmmu_space_args a = args(32, 12, 2); \
		a.field = value;                              \
		ck_assert_int_eq(create(&a), err);            \
	}                                                     \
	END_TEST

BAD_SPACE(va_bits_too_small, va_bits, 31, -EINVAL)
BAD_SPACE(va_bits_too_big, va_bits, 65, -EINVAL)
BAD_SPACE(page_shift_too_small, page_shift, 9, -EINVAL)
BAD_SPACE(page_shift_too_big, page_shift, 31, -EINVAL)
BAD_SPACE(no_views, nviews, 0, -EINVAL)
BAD_SPACE(too_many_views, nviews, BTMMU_MAX_VIEWS + 1, -EINVAL)
BAD_SPACE(ring_too_big, ring, BTMMU_MAX_RING + 1, -EINVAL)
BAD_SPACE(unknown_flags, flags, 0x100, -EINVAL)
BAD_SPACE(window_wider_than_va, window_bits, 33, -EINVAL)
BAD_SPACE(window_below_unit, window_bits, 11, -EINVAL)
BAD_SPACE(window_gva_with_full_window, window_gva, 0x1000, -EINVAL)

START_TEST(window_too_wide)
{
	struct btmmu_space_args a = args(64, 12, 1);

	a.window_bits = BTMMU_MAX_WINDOW_BITS + 1;
	ck_assert_int_eq(create(&a), -EINVAL);
}
END_TEST

START_TEST(window_misaligned)
{
	struct btmmu_space_args a = args(48, 12, 1);

	a.window_bits = 32;
	a.window_gva = UINT64_C(0x80000000);
	ck_assert_int_eq(create(&a), -EINVAL);
}
END_TEST

START_TEST(window_outside_va)
{
	struct btmmu_space_args a = args(40, 12, 1);

	a.window_bits = 32;
	a.window_gva = UINT64_C(1) << 40;
	ck_assert_int_eq(create(&a), -ERANGE);
}
END_TEST

START_TEST(window_not_canonical)
{
	struct btmmu_space_args a = args(48, 12, 1);

	a.flags = BTMMU_SPACE_SIGN_EXTEND;
	a.window_bits = 32;
	a.window_gva = UINT64_C(0x0000900000000000);
	ck_assert_int_eq(create(&a), -ERANGE);
}
END_TEST

START_TEST(null_args)
{
	ck_assert_int_eq(btmmu_space_create(fx.ctx, NULL, &sp), -EFAULT);
}
END_TEST

START_TEST(null_ctx)
{
	struct btmmu_space_args a = args(32, 12, 1);

	ck_assert_int_eq(btmmu_space_create(NULL, &a, &sp), -EINVAL);
}
END_TEST

START_TEST(null_out)
{
	struct btmmu_space_args a = args(32, 12, 1);

	ck_assert_int_eq(btmmu_space_create(fx.ctx, &a, NULL), -EFAULT);
}
END_TEST

START_TEST(destroy_null)
{
	ck_assert_int_eq(btmmu_space_destroy(NULL), -EINVAL);
}
END_TEST

/* A 64-bit guest: the view serves a window and says a check is needed. */
START_TEST(window_64bit_kernel_half)
{
	struct btmmu_space_args a = args(48, 12, 2);
	struct btmmu_view_info vi;
	uint64_t w = UINT64_C(0xffff800000000000);

	if (fx_valgrind()) {
		printf("%s: skipped (valgrind: no room for a 1 TiB window)\n", __func__);
		return;
	}
	a.flags = BTMMU_SPACE_SIGN_EXTEND;
	a.window_bits = 40;
	a.window_gva = w;
	ck_assert_int_eq(create(&a), 0);
	vi = info(1);
	ck_assert_uint_eq(vi.window_gva, w);
	ck_assert_uint_eq(vi.window_bits, 40);
	ck_assert(vi.flags & BTMMU_VIEW_CHECK);
	ck_assert(btmmu_in_window(&vi, w, 8));
	ck_assert(btmmu_in_window(&vi, w + (UINT64_C(1) << 40) - 8, 8));
	ck_assert(!btmmu_in_window(&vi, w + (UINT64_C(1) << 40) - 4, 8));
	ck_assert(!btmmu_in_window(&vi, w - 1, 1));
	ck_assert(!btmmu_in_window(&vi, 0x1000, 4));
	/* The mapping is reached at base + gva. */
	fx.sp = sp;
	ck_assert_int_eq(fx_map(1, w + 0x3000, 0x2000, 4096, BTMMU_PROT_READ, 0), 1);
	fx.host[0x2004] = 0x42;
	ck_assert_uint_eq(*(volatile uint8_t *)(vi.base + w + 0x3004), 0x42);
	/* Outside the window nothing is installed. */
	ck_assert_int_eq(fx_map(1, 0x3000, 0x2000, 4096, BTMMU_PROT_READ, 0), 0);
	fx.sp = NULL;
	ck_assert_int_eq(btmmu_space_destroy(sp), 0);
}
END_TEST

/* Default window of a wide VA: 40 bits from 0. */
START_TEST(window_default_wide_va)
{
	struct btmmu_space_args a = args(57, 12, 1);
	struct btmmu_view_info vi;

	if (fx_valgrind()) {
		printf("%s: skipped (valgrind: no room for a 1 TiB window)\n", __func__);
		return;
	}
	ck_assert_int_eq(create(&a), 0);
	vi = info(0);
	ck_assert_uint_eq(vi.window_bits, 40);
	ck_assert_uint_eq(vi.window_gva, 0);
	ck_assert(vi.flags & BTMMU_VIEW_CHECK);
	ck_assert_int_eq(btmmu_space_destroy(sp), 0);
}
END_TEST

/* A sign-extended 32-bit guest: the window is [-2^31, 2^31). */
START_TEST(sign_extended_32bit)
{
	struct btmmu_space_args a = args(32, 12, 1);
	struct btmmu_view_info vi;
	uint64_t hi = UINT64_C(0xffffffff80001000);

	a.flags = BTMMU_SPACE_SIGN_EXTEND;
	ck_assert_int_eq(create(&a), 0);
	vi = info(0);
	ck_assert_uint_eq(vi.window_gva, UINT64_C(0xffffffff80000000));
	ck_assert_uint_eq(vi.flags & BTMMU_VIEW_CHECK, 0);
	fx.sp = sp;
	ck_assert_int_eq(fx_map(0, hi, 0x3000, 4096, BTMMU_PROT_READ, 0), 1);
	ck_assert_int_eq(fx_map(0, 0x7ffff000, 0x4000, 4096, BTMMU_PROT_READ, 0), 1);
	fx.host[0x3000] = 1;
	fx.host[0x4fff] = 2;
	ck_assert_uint_eq(*(volatile uint8_t *)(vi.base + hi), 1);
	ck_assert_uint_eq(*(volatile uint8_t *)(vi.base + 0x7fffffff), 2);
	/* Zero-extended form of a negative address is not canonical. */
	ck_assert_int_eq(fx_map(0, 0x80001000, 0x3000, 4096, BTMMU_PROT_READ, 0), -ERANGE);
	fx.sp = NULL;
	ck_assert_int_eq(btmmu_space_destroy(sp), 0);
}
END_TEST

/* Base slots track the view's base across flushes. */
START_TEST(base_slots_follow_flush)
{
	struct btmmu_space_args a = args(32, 12, 2);
	uintptr_t slots[2] = { 0, 0 }, before;

	a.base_slots = slots;
	ck_assert_int_eq(create(&a), 0);
	ck_assert_uint_eq(slots[0], info(0).base);
	ck_assert_uint_eq(slots[1], info(1).base);
	fx.sp = sp;
	ck_assert_int_eq(fx_map(1, 0x1000, 0x1000, 4096, BTMMU_PROT_READ, 0), 1);
	before = slots[1];
	ck_assert_int_eq(btmmu_flush(sp, 2, 0), 0);
	ck_assert_uint_ne(slots[1], before);
	ck_assert_uint_eq(slots[1], info(1).base);
	ck_assert_uint_eq(slots[0], info(0).base);
	fx.sp = NULL;
	ck_assert_int_eq(btmmu_space_destroy(sp), 0);
}
END_TEST

/*
 * view_mask: only the views a translator uses exist (QEMU's direct mmu_idx
 * of i386 are 1, 3 and 5 of 6), with their reservations and host mappings;
 * the others are refused by every call on a view, and their base slots
 * keep what the caller put there.
 */
START_TEST(view_mask_creates_only_those_views)
{
	struct btmmu_space_args a = args(32, 12, 6);
	uintptr_t slots[6] = { 1, 2, 3, 4, 5, 6 };
	struct btmmu_view_info vi = { .size = sizeof(vi) };
	struct btmmu_map_req q = { .gva = 0x1000, .gpa = 0x1000, .len = 4096,
				   .prot = BTMMU_PROT_READ };
	struct btmmu_stats s0 = fx_stats(), s1, s2;
	uintptr_t b;
	unsigned v;

	a.view_mask = 0x2a; /* views 1, 3, 5 */
	a.base_slots = slots;
	ck_assert_int_eq(create(&a), 0);
	s1 = fx_stats();
	for (v = 0; v < 6; v++) {
		int want = (a.view_mask >> v) & 1 ? 0 : -EINVAL;

		ck_assert_int_eq(btmmu_view_info(sp, v, &vi), want);
		ck_assert_int_eq(btmmu_view_base(sp, v, &b), want);
		ck_assert_int_eq(btmmu_map(sp, v, &q), want ? want : 1);
		ck_assert_int_eq(btmmu_unmap(sp, 1u << v, 0x1000, 4096), want ? want : 1);
		ck_assert_int_eq(btmmu_flush(sp, 1u << v, 0), want);
		if (want)
			ck_assert_uint_eq(slots[v], v + 1); /* untouched */
		else
			ck_assert_uint_eq(slots[v], info(v).base);
	}
	ck_assert_int_eq(btmmu_flush(sp, 0x2a, BTMMU_FLUSH_NONGLOBAL), 0);
	ck_assert_int_eq(btmmu_flush(sp, 0x2b, 0), -EINVAL);
	ck_assert_int_eq(btmmu_flush_all(fx.ctx), 0);
	/* A fault in a view created reaches the callback with that view. */
	fx.policy = FX_SLOW;
	ck_assert_int_eq(btmmu_load8(info(3).base + 0x5000, &(uint8_t){ 0 }), 1);
	ck_assert_uint_eq(fx.last.view, 3);
	ck_assert_int_eq(btmmu_space_destroy(sp), 0);
	/* Half the views: half the fixed host mappings of a full space. */
	a.view_mask = 0;
	ck_assert_int_eq(create(&a), 0);
	s2 = fx_stats();
	ck_assert_uint_eq(s2.live_mappings - s0.live_mappings,
			  2 * (s1.live_mappings - s0.live_mappings));
	ck_assert_int_eq(btmmu_space_destroy(sp), 0);
	/* Bits past nviews are refused. */
	a.view_mask = 0x40;
	ck_assert_int_eq(create(&a), -EINVAL);
	a.view_mask = 0x80000001u;
	ck_assert_int_eq(create(&a), -EINVAL);
}
END_TEST

/* Several spaces alive at once: separate shadows. */
START_TEST(spaces_are_separate)
{
	struct btmmu_space_args a = args(32, 12, 1);
	struct btmmu_space *other;
	uint32_t v;

	ck_assert_int_eq(create(&a), 0);
	ck_assert_int_eq(btmmu_space_create(fx.ctx, &a, &other), 0);
	fx.sp = sp;
	ck_assert_int_eq(fx_map(0, 0x1000, 0x5000, 4096, BTMMU_PROT_READ, 0), 1);
	fx.sp = other;
	ck_assert_int_eq(fx_map(0, 0x1000, 0x6000, 4096, BTMMU_PROT_READ, 0), 1);
	fx.host[0x5000] = 5;
	fx.host[0x6000] = 6;
	ck_assert_uint_eq(*(volatile uint8_t *)(info(0).base + 0x1000), 5);
	fx.sp = other;
	ck_assert_uint_eq(*(volatile uint8_t *)(fx_base(0) + 0x1000), 6);
	/* Not mapped in the other space. */
	fx.policy = FX_SLOW;
	ck_assert_int_eq(btmmu_load32(fx_base(0) + 0x2000, &v), 1);
	ck_assert_ptr_eq(fx.last.space, other);
	fx.sp = NULL;
	ck_assert_int_eq(btmmu_space_destroy(other), 0);
	ck_assert_int_eq(btmmu_space_destroy(sp), 0);
}
END_TEST

START_TEST(view_info_bad_view)
{
	struct btmmu_space_args a = args(32, 12, 2);
	struct btmmu_view_info vi = { .size = sizeof(vi) };
	uintptr_t b;

	ck_assert_int_eq(create(&a), 0);
	ck_assert_int_eq(btmmu_view_info(sp, 2, &vi), -EINVAL);
	ck_assert_int_eq(btmmu_view_info(NULL, 0, &vi), -EINVAL);
	ck_assert_int_eq(btmmu_view_info(sp, 0, NULL), -EFAULT);
	ck_assert_int_eq(btmmu_view_base(sp, 2, &b), -EINVAL);
	ck_assert_int_eq(btmmu_view_base(NULL, 0, &b), -EINVAL);
	ck_assert_int_eq(btmmu_view_base(sp, 0, NULL), -EFAULT);
	vi.size = 3;
	ck_assert_int_eq(btmmu_view_info(sp, 0, &vi), -EINVAL);
	ck_assert_int_eq(btmmu_space_destroy(sp), 0);
}
END_TEST

/* An older caller's shorter view_info gets only what fits. */
START_TEST(view_info_short_struct)
{
	struct btmmu_space_args a = args(32, 12, 1);
	struct {
		struct btmmu_view_info vi;
		uint64_t canary;
	} s;

	ck_assert_int_eq(create(&a), 0);
	memset(&s, 0xa5, sizeof(s));
	s.vi.size = offsetof(struct btmmu_view_info, window_gva);
	ck_assert_int_eq(btmmu_view_info(sp, 0, &s.vi), 0);
	ck_assert_uint_ne(s.vi.base, 0);
	ck_assert_uint_eq(s.vi.window_gva, UINT64_C(0xa5a5a5a5a5a5a5a5));
	ck_assert_uint_eq(s.canary, UINT64_C(0xa5a5a5a5a5a5a5a5));
	ck_assert_int_eq(btmmu_space_destroy(sp), 0);
}
END_TEST

/* A newer caller's longer view_info: tail zeroed, size says what was filled. */
START_TEST(view_info_long_struct)
{
	struct btmmu_space_args a = args(32, 12, 1);
	struct {
		struct btmmu_view_info vi;
		uint64_t future;
	} s;

	ck_assert_int_eq(create(&a), 0);
	memset(&s, 0xa5, sizeof(s));
	s.vi.size = sizeof(s);
	ck_assert_int_eq(btmmu_view_info(sp, 0, &s.vi), 0);
	ck_assert_uint_eq(s.vi.size, sizeof(struct btmmu_view_info));
	ck_assert_uint_eq(s.future, 0);
	ck_assert_uint_eq(s.vi.va_bits, 32);
	ck_assert_int_eq(btmmu_space_destroy(sp), 0);
}
END_TEST

static int destroy_in_callback(struct btmmu_fault *f)
{
	struct btmmu_space_args a = args(32, 12, 1);
	struct btmmu_space *x;

	ck_assert_int_eq(btmmu_space_destroy(f->space), -EDEADLK);
	ck_assert_int_eq(btmmu_space_create(fx.ctx, &a, &x), -EDEADLK);
	return BTMMU_FAULT_SLOW;
}

/* Creating or destroying spaces from the fault callback would deadlock. */
START_TEST(admin_calls_refused_in_callback)
{
	uint32_t v;

	fx_space(32, 12, 0);
	fx.policy = FX_CUSTOM;
	fx.custom = destroy_in_callback;
	ck_assert_int_eq(btmmu_load32(fx_base(0) + 0x1000, &v), 1);
	ck_assert_uint_eq(fx.nfaults, 1);
}
END_TEST

/* Spaces with large guest pages and 1 KiB guest pages. */
START_TEST(page_sizes)
{
	struct btmmu_space_args a = args(32, 21, 1);

	ck_assert_int_eq(create(&a), 0);
	ck_assert_uint_eq(info(0).unit_shift, 21);
	ck_assert_int_eq(btmmu_space_destroy(sp), 0);
	a = args(32, 10, 1);
	ck_assert_int_eq(create(&a), 0);
	ck_assert_uint_eq(info(0).unit_shift, 12);
	ck_assert_int_eq(btmmu_space_destroy(sp), 0);
	a = args(32, 30, 1);
	ck_assert_int_eq(create(&a), 0);
	ck_assert_uint_eq(info(0).unit_shift, 30);
	ck_assert_int_eq(btmmu_space_destroy(sp), 0);
}
END_TEST

static Suite *space_suite(void)
{
	Suite *s = suite_create("space");
	TCase *tc;

	tc = tcase_create("geometry");
	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_add_test(tc, default_32bit_geometry);
	tcase_add_test(tc, window_64bit_kernel_half);
	tcase_add_test(tc, window_default_wide_va);
	tcase_add_test(tc, sign_extended_32bit);
	tcase_add_test(tc, page_sizes);
	suite_add_tcase(s, tc);

	tc = tcase_create("validation");
	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_add_test(tc, va_bits_too_small);
	tcase_add_test(tc, va_bits_too_big);
	tcase_add_test(tc, page_shift_too_small);
	tcase_add_test(tc, page_shift_too_big);
	tcase_add_test(tc, no_views);
	tcase_add_test(tc, too_many_views);
	tcase_add_test(tc, ring_too_big);
	tcase_add_test(tc, unknown_flags);
	tcase_add_test(tc, window_wider_than_va);
	tcase_add_test(tc, window_below_unit);
	tcase_add_test(tc, window_gva_with_full_window);
	tcase_add_test(tc, window_too_wide);
	tcase_add_test(tc, window_misaligned);
	tcase_add_test(tc, window_outside_va);
	tcase_add_test(tc, window_not_canonical);
	tcase_add_test(tc, null_args);
	tcase_add_test(tc, null_ctx);
	tcase_add_test(tc, null_out);
	tcase_add_test(tc, destroy_null);
	tcase_add_test(tc, view_info_bad_view);
	tcase_add_test(tc, view_info_short_struct);
	tcase_add_test(tc, view_info_long_struct);
	suite_add_tcase(s, tc);

	tc = tcase_create("views");
	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_add_test(tc, base_slots_follow_flush);
	tcase_add_test(tc, view_mask_creates_only_those_views);
	tcase_add_test(tc, spaces_are_separate);
	tcase_add_test(tc, admin_calls_refused_in_callback);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	return fx_run(space_suite());
}
