/* SPDX-License-Identifier: MIT */
/* Shadow entries: map, batch, unmap, flush; page sizes around the host's. */
#include <stddef.h>
#include <stdio.h>
#include <unistd.h>

#include "fixture.h"

#define R BTMMU_PROT_READ
#define RW (BTMMU_PROT_READ | BTMMU_PROT_WRITE)

static void setup(void)
{
	fx_open(0, 0);
	fx_space(32, 12, 0);
}

static void teardown(void)
{
	fx_close();
}

static uint32_t ram32(uint64_t gpa)
{
	return *(volatile uint32_t *)(fx.host + gpa);
}

static void set_ram32(uint64_t gpa, uint32_t v)
{
	*(volatile uint32_t *)(fx.host + gpa) = v;
}

/* Load through the shadow: 0 done, 1 slow path. */
static int ld(unsigned view, uint64_t gva, uint32_t *v)
{
	return btmmu_load32(fx_base(view) + gva, v);
}

static int st(unsigned view, uint64_t gva, uint32_t v)
{
	return btmmu_store32(fx_base(view) + gva, v);
}

/* A validation failure changes nothing. */
static void expect_map_err(uint64_t gva, uint64_t gpa, uint64_t len, uint32_t prot,
			   uint32_t flags, int err)
{
	struct btmmu_stats before = fx_stats(), after;

	ck_assert_int_eq(fx_map(0, gva, gpa, len, prot, flags), err);
	after = fx_stats();
	ck_assert_uint_eq(after.live_entries, before.live_entries);
	ck_assert_uint_eq(after.install_calls, before.install_calls);
}

START_TEST(map_null_space)
{
	struct btmmu_map_req q = { .gva = 0, .gpa = 0, .len = 4096, .prot = R };

	ck_assert_int_eq(btmmu_map(NULL, 0, &q), -EINVAL);
}
END_TEST

START_TEST(map_bad_view)
{
	struct btmmu_map_req q = { .gva = 0, .gpa = 0, .len = 4096, .prot = R };

	ck_assert_int_eq(btmmu_map(fx.sp, 2, &q), -EINVAL);
}
END_TEST

START_TEST(map_null_req)
{
	ck_assert_int_eq(btmmu_map(fx.sp, 0, NULL), -EFAULT);
}
END_TEST

START_TEST(map_unknown_flags) { expect_map_err(0, 0, 4096, R, 0x10, -EINVAL); }
END_TEST
START_TEST(map_no_prot) { expect_map_err(0, 0, 4096, 0, 0, -EINVAL); }
END_TEST
START_TEST(map_bad_prot) { expect_map_err(0, 0, 4096, 0x8 | R, 0, -EINVAL); }
END_TEST
START_TEST(map_zero_len) { expect_map_err(0, 0, 0, R, 0, -EINVAL); }
END_TEST
START_TEST(map_len_unaligned) { expect_map_err(0, 0, 4096 + 512, R, 0, -EINVAL); }
END_TEST
START_TEST(map_gva_unaligned) { expect_map_err(0x800, 0, 4096, R, 0, -EINVAL); }
END_TEST
START_TEST(map_gpa_unaligned) { expect_map_err(0, 0x800, 4096, R, 0, -EINVAL); }
END_TEST
START_TEST(map_gpa_not_ram) { expect_map_err(0, FX_RAM_SIZE, 4096, R, 0, -ENXIO); }
END_TEST
START_TEST(map_gpa_crosses_ram_end)
{
	expect_map_err(0, FX_RAM_SIZE - 4096, 8192, R, 0, -ENXIO);
}
END_TEST
START_TEST(map_gva_beyond_va) { expect_map_err(UINT64_C(1) << 32, 0, 4096, R, 0, -ERANGE); }
END_TEST
START_TEST(map_gva_crosses_va_end)
{
	expect_map_err(UINT64_C(0xfffff000), 0, 8192, R, 0, -ERANGE);
}
END_TEST

/* A batch with one bad request installs nothing. */
START_TEST(batch_all_or_nothing)
{
	struct btmmu_map_req q[3] = {
		{ .gva = 0x1000, .gpa = 0x1000, .len = 4096, .prot = R },
		{ .gva = 0x2000, .gpa = 0x2000, .len = 4096, .prot = R },
		{ .gva = 0x3000, .gpa = FX_RAM_SIZE, .len = 4096, .prot = R },
	};

	ck_assert_int_eq(btmmu_map_batch(fx.sp, 0, q, 3, 0), -ENXIO);
	ck_assert_uint_eq(fx_stats().live_entries, 0);
	q[2].gpa = 0x3000;
	q[1].prot = 0;
	ck_assert_int_eq(btmmu_map_batch(fx.sp, 0, q, 3, 0), -EINVAL);
	ck_assert_uint_eq(fx_stats().live_entries, 0);
	ck_assert_int_eq(btmmu_map_batch(fx.sp, 0, NULL, 3, 0), -EFAULT);
	ck_assert_int_eq(btmmu_map_batch(fx.sp, 0, q, 0, 0), 0);
}
END_TEST

/* Installed entries are accessed directly: no fault, RAM contents. */
START_TEST(direct_access_reads_and_writes_ram)
{
	uint32_t v;

	set_ram32(0x7004, 0x11223344);
	ck_assert_int_eq(fx_map(0, 0x40000, 0x7000, 4096, RW, 0), 1);
	ck_assert_int_eq(ld(0, 0x40004, &v), 0);
	ck_assert_uint_eq(v, 0x11223344);
	ck_assert_int_eq(st(0, 0x40008, 0xcafef00d), 0);
	ck_assert_uint_eq(ram32(0x7008), 0xcafef00d);
	ck_assert_uint_eq(fx.nfaults, 0);
	ck_assert_uint_eq(fx_stats().faults, 0);
}
END_TEST

/* A multi-page request maps each page; the count says how many. */
START_TEST(map_range_counts_pages)
{
	uint32_t v;
	unsigned i;

	for (i = 0; i < 16; i++)
		set_ram32(0x100000 + i * 4096, i);
	ck_assert_int_eq(fx_map(1, 0x800000, 0x100000, 16 * 4096, R, 0), 16);
	for (i = 0; i < 16; i++) {
		ck_assert_int_eq(ld(1, 0x800000 + i * 4096, &v), 0);
		ck_assert_uint_eq(v, i);
	}
	/* Contiguous in gva and gpa: one host mapping call. */
	ck_assert_uint_eq(fx_stats().install_calls, 1);
	ck_assert_uint_eq(fx_stats().live_entries, 16);
}
END_TEST

/* Mapping the same thing again costs nothing. */
START_TEST(map_idempotent)
{
	ck_assert_int_eq(fx_map(0, 0x1000, 0x1000, 4096, R, 0), 1);
	ck_assert_int_eq(fx_map(0, 0x1000, 0x1000, 4096, R, 0), 1);
	ck_assert_uint_eq(fx_stats().install_calls, 1);
	ck_assert_uint_eq(fx_stats().live_entries, 1);
}
END_TEST

/* Remapping a page to another frame shows the new frame. */
START_TEST(remap_other_frame)
{
	uint32_t v;

	set_ram32(0x1000, 1);
	set_ram32(0x2000, 2);
	ck_assert_int_eq(fx_map(0, 0x9000, 0x1000, 4096, R, 0), 1);
	ck_assert_int_eq(ld(0, 0x9000, &v), 0);
	ck_assert_uint_eq(v, 1);
	ck_assert_int_eq(fx_map(0, 0x9000, 0x2000, 4096, R, 0), 1);
	ck_assert_int_eq(ld(0, 0x9000, &v), 0);
	ck_assert_uint_eq(v, 2);
	ck_assert_uint_eq(fx_stats().live_entries, 1);
}
END_TEST

/* Read-only: a write faults, with MAPPED set, and RAM is unchanged. */
START_TEST(read_only_write_faults)
{
	fx.policy = FX_SLOW;
	set_ram32(0x3000, 7);
	ck_assert_int_eq(fx_map(0, 0x3000, 0x3000, 4096, R, 0), 1);
	ck_assert_int_eq(st(0, 0x3000, 8), 1);
	ck_assert_uint_eq(fx.last.access, BTMMU_ACCESS_WRITE);
	ck_assert(fx.last.flags & BTMMU_FAULT_MAPPED);
	ck_assert(!(fx.last.flags & BTMMU_FAULT_PROTECTED));
	ck_assert_uint_eq(ram32(0x3000), 7);
	/* Upgrading to read-write makes the write direct. */
	ck_assert_int_eq(fx_map(0, 0x3000, 0x3000, 4096, RW, 0), 1);
	ck_assert_int_eq(st(0, 0x3000, 8), 0);
	ck_assert_uint_eq(ram32(0x3000), 8);
}
END_TEST

/* Two guest pages aliasing one frame see each other's writes. */
START_TEST(aliases_share_data)
{
	uint32_t v;

	ck_assert_int_eq(fx_map(0, 0x10000, 0x5000, 4096, RW, 0), 1);
	ck_assert_int_eq(fx_map(1, 0x20000, 0x5000, 4096, RW, 0), 1);
	ck_assert_int_eq(st(0, 0x10010, 0xabcd), 0);
	ck_assert_int_eq(ld(1, 0x20010, &v), 0);
	ck_assert_uint_eq(v, 0xabcd);
}
END_TEST

START_TEST(views_are_separate)
{
	uint32_t v;

	fx.policy = FX_SLOW;
	ck_assert_int_eq(fx_map(0, 0x10000, 0x5000, 4096, RW, 0), 1);
	ck_assert_int_eq(ld(1, 0x10000, &v), 1);
	ck_assert_uint_eq(fx.last.view, 1);
}
END_TEST

START_TEST(unmap_faults_again)
{
	uint32_t v;

	fx.policy = FX_SLOW;
	ck_assert_int_eq(fx_map(0, 0x10000, 0x5000, 2 * 4096, RW, 0), 2);
	ck_assert_int_eq(fx_map(1, 0x10000, 0x5000, 4096, RW, 0), 1);
	ck_assert_int_eq(btmmu_unmap(fx.sp, 3, 0x10000, 4096), 2);
	ck_assert_int_eq(ld(0, 0x10000, &v), 1);
	ck_assert_int_eq(ld(1, 0x10000, &v), 1);
	ck_assert_int_eq(ld(0, 0x11000, &v), 0); /* the neighbour stays */
	ck_assert_uint_eq(fx_stats().live_entries, 1);
	ck_assert_uint_eq(fx_stats().unmaps, 2);
}
END_TEST

START_TEST(unmap_bumps_gen)
{
	struct btmmu_view_info a = { .size = sizeof(a) }, b = { .size = sizeof(b) };

	ck_assert_int_eq(btmmu_view_info(fx.sp, 0, &a), 0);
	ck_assert_int_eq(btmmu_unmap(fx.sp, 1, 0x10000, 4096), 0);
	ck_assert_int_eq(btmmu_view_info(fx.sp, 0, &b), 0);
	ck_assert_uint_gt(b.gen, a.gen);
}
END_TEST

START_TEST(unmap_validation)
{
	ck_assert_int_eq(btmmu_unmap(NULL, 1, 0, 4096), -EINVAL);
	ck_assert_int_eq(btmmu_unmap(fx.sp, 0, 0, 4096), -EINVAL);
	ck_assert_int_eq(btmmu_unmap(fx.sp, 4, 0, 4096), -EINVAL);
	ck_assert_int_eq(btmmu_unmap(fx.sp, 1, 0x800, 4096), -EINVAL);
	ck_assert_int_eq(btmmu_unmap(fx.sp, 1, 0, 0), -EINVAL);
	ck_assert_int_eq(btmmu_unmap(fx.sp, 1, 0, 100), -EINVAL);
	ck_assert_int_eq(btmmu_unmap(fx.sp, 1, UINT64_C(1) << 32, 4096), -ERANGE);
}
END_TEST

/* Unmapping a wide range walks the entries rather than the range. */
START_TEST(unmap_whole_space)
{
	unsigned i;

	for (i = 0; i < 8; i++)
		ck_assert_int_eq(fx_map(0, (uint64_t)i << 28, i * 4096, 4096, R, 0), 1);
	ck_assert_int_eq(btmmu_unmap(fx.sp, 1, 0, UINT64_C(1) << 32), 8);
	ck_assert_uint_eq(fx_stats().live_entries, 0);
}
END_TEST

/* A full flush switches the view to a clean region: new base, nothing mapped. */
START_TEST(flush_full)
{
	uintptr_t before = fx_base(0);
	uint32_t v;

	fx.policy = FX_SLOW;
	set_ram32(0x4000, 99);
	ck_assert_int_eq(fx_map(0, 0x4000, 0x4000, 4096, RW, 0), 1);
	ck_assert_int_eq(fx_map(1, 0x4000, 0x4000, 4096, RW, 0), 1);
	ck_assert_int_eq(btmmu_flush(fx.sp, 1, 0), 0);
	ck_assert_uint_ne(fx_base(0), before);
	ck_assert_int_eq(ld(0, 0x4000, &v), 1);
	ck_assert_int_eq(ld(1, 0x4000, &v), 0); /* view 1 untouched */
	ck_assert_uint_eq(v, 99);
	ck_assert_uint_eq(fx_stats().flushes, 1);
	ck_assert_uint_eq(ram32(0x4000), 99);
}
END_TEST

START_TEST(flush_validation)
{
	ck_assert_int_eq(btmmu_flush(NULL, 1, 0), -EINVAL);
	ck_assert_int_eq(btmmu_flush(fx.sp, 0, 0), -EINVAL);
	ck_assert_int_eq(btmmu_flush(fx.sp, 4, 0), -EINVAL);
	ck_assert_int_eq(btmmu_flush(fx.sp, 1, 2), -EINVAL);
	ck_assert_int_eq(btmmu_flush_all(NULL), -EINVAL);
}
END_TEST

/* Flushing an empty view keeps its region but still bumps the generation. */
START_TEST(flush_empty_view)
{
	uintptr_t before = fx_base(0);
	struct btmmu_view_info a = { .size = sizeof(a) }, b = { .size = sizeof(b) };

	ck_assert_int_eq(btmmu_view_info(fx.sp, 0, &a), 0);
	ck_assert_int_eq(btmmu_flush(fx.sp, 1, 0), 0);
	ck_assert_int_eq(btmmu_view_info(fx.sp, 0, &b), 0);
	ck_assert_uint_eq(fx_base(0), before);
	ck_assert_uint_gt(b.gen, a.gen);
}
END_TEST

/* Non-global flush keeps global entries in place (CR3 write with PGE). */
START_TEST(flush_nonglobal_keeps_global)
{
	uintptr_t before = fx_base(0);
	uint32_t v;

	fx.policy = FX_SLOW;
	ck_assert_int_eq(fx_map(0, 0xc0000000, 0x1000, 4 * 4096, R, BTMMU_MAP_GLOBAL), 4);
	ck_assert_int_eq(fx_map(0, 0x08048000, 0x9000, 4 * 4096, R, 0), 4);
	ck_assert_int_eq(btmmu_flush(fx.sp, 1, BTMMU_FLUSH_NONGLOBAL), 0);
	ck_assert_uint_eq(fx_base(0), before);
	ck_assert_int_eq(ld(0, 0xc0003000, &v), 0);
	ck_assert_int_eq(ld(0, 0x08048000, &v), 1);
	ck_assert_int_eq(ld(0, 0x0804b000, &v), 1);
	ck_assert_uint_eq(fx_stats().live_entries, 4);
	ck_assert_uint_eq(fx_stats().flushes_nonglobal, 1);
	/* A full flush drops the globals too. */
	ck_assert_int_eq(btmmu_flush(fx.sp, 1, 0), 0);
	ck_assert_int_eq(ld(0, 0xc0003000, &v), 1);
}
END_TEST

/* Globals interleaved with non-globals: each non-global goes alone. */
START_TEST(flush_nonglobal_interleaved)
{
	uint32_t v;
	unsigned i;

	fx.policy = FX_SLOW;
	for (i = 0; i < 8; i++)
		ck_assert_int_eq(fx_map(0, 0x100000 + i * 4096, i * 4096, 4096, R,
					(i & 1) ? BTMMU_MAP_GLOBAL : 0),
				 1);
	ck_assert_int_eq(btmmu_flush(fx.sp, 1, BTMMU_FLUSH_NONGLOBAL), 0);
	for (i = 0; i < 8; i++)
		ck_assert_int_eq(ld(0, 0x100000 + i * 4096, &v), (i & 1) ? 0 : 1);
}
END_TEST

static struct btmmu_view_info view_info(unsigned view)
{
	struct btmmu_view_info vi = { .size = sizeof(vi) };

	ck_assert_int_eq(btmmu_view_info(fx.sp, view, &vi), 0);
	return vi;
}

#define view_live(v) (view_info(v).live_entries)
#define view_fills(v) (view_info(v).fills)

/* Per-view live entries follow fills, unmaps and both kinds of flush. */
START_TEST(view_live_entries)
{
	struct btmmu_view_info old = { .size = offsetof(struct btmmu_view_info, live_entries) };
	unsigned i;

	ck_assert_uint_eq(view_live(0), 0);
	for (i = 0; i < 4; i++)
		ck_assert_int_eq(fx_map(0, 0x100000 + i * 4096, i * 4096, 4096, R,
					i == 3 ? BTMMU_MAP_GLOBAL : 0), 1);
	ck_assert_int_eq(fx_map(1, 0x200000, 0x8000, 4096, RW, 0), 1);
	ck_assert_uint_eq(view_live(0), 4);
	ck_assert_uint_eq(view_live(1), 1);
	ck_assert_uint_eq(view_fills(0), 4);
	ck_assert_uint_eq(view_fills(1), 1);
	/* the same entry again is no new entry */
	ck_assert_int_eq(fx_map(0, 0x100000, 0, 4096, R, 0), 1);
	ck_assert_uint_eq(view_live(0), 4);
	ck_assert_uint_eq(view_fills(0), 4);
	/* a new frame for the page is */
	ck_assert_int_eq(fx_map(0, 0x100000, 0x9000, 4096, R, 0), 1);
	ck_assert_uint_eq(view_live(0), 4);
	ck_assert_uint_eq(view_fills(0), 5);
	/* a caller with an older struct does not get the field */
	old.live_entries = 77;
	ck_assert_int_eq(btmmu_view_info(fx.sp, 0, &old), 0);
	ck_assert_uint_eq(old.size, offsetof(struct btmmu_view_info, live_entries));
	ck_assert_uint_eq(old.live_entries, 77);

	ck_assert_int_eq(btmmu_unmap(fx.sp, 1, 0x101000, 4096), 1);
	ck_assert_uint_eq(view_live(0), 3);
	ck_assert_int_eq(btmmu_flush(fx.sp, 1, BTMMU_FLUSH_NONGLOBAL), 0);
	ck_assert_uint_eq(view_live(0), 1);	/* the global one stays */
	ck_assert_uint_eq(view_live(1), 1);	/* other views untouched */
	ck_assert_int_eq(btmmu_flush(fx.sp, 1, 0), 0);
	ck_assert_uint_eq(view_live(0), 0);
	ck_assert_int_eq(fx_map(0, 0x300000, 0x3000, 4096, R, 0), 1);
	ck_assert_uint_eq(view_live(0), 1);	/* counted in the new region */
	ck_assert_uint_eq(view_fills(0), 6);	/* 6 filled, 5 dropped since */
	ck_assert_uint_eq(view_fills(1), 1);
	/* the context-wide count includes the retired region until its teardown */
	ck_assert_uint_ge(fx_stats().live_entries, view_live(0) + view_live(1));
	ck_assert_int_eq(btmmu_flush_all(fx.ctx), 0);
	ck_assert_uint_eq(view_live(0), 0);
	ck_assert_uint_eq(view_live(1), 0);
}
END_TEST

/* A page remapped without the global bit is no longer kept. */
START_TEST(global_bit_follows_last_map)
{
	uint32_t v;

	fx.policy = FX_SLOW;
	ck_assert_int_eq(fx_map(0, 0x5000, 0x5000, 4096, R, BTMMU_MAP_GLOBAL), 1);
	ck_assert_int_eq(fx_map(0, 0x5000, 0x5000, 4096, R, 0), 1);
	ck_assert_int_eq(btmmu_flush(fx.sp, 1, BTMMU_FLUSH_NONGLOBAL), 0);
	ck_assert_int_eq(ld(0, 0x5000, &v), 1);
}
END_TEST

START_TEST(flush_all_spaces)
{
	struct btmmu_space_args a = { .size = sizeof(a), .va_bits = 32, .page_shift = 12, .nviews = 1 };
	struct btmmu_space *other, *mine = fx.sp;
	uint32_t v;

	fx.policy = FX_SLOW;
	ck_assert_int_eq(btmmu_space_create(fx.ctx, &a, &other), 0);
	ck_assert_int_eq(fx_map(1, 0x5000, 0x5000, 4096, R, BTMMU_MAP_GLOBAL), 1);
	fx.sp = other;
	ck_assert_int_eq(fx_map(0, 0x5000, 0x5000, 4096, R, 0), 1);
	ck_assert_int_eq(btmmu_flush_all(fx.ctx), 0);
	ck_assert_int_eq(ld(0, 0x5000, &v), 1);
	fx.sp = mine;
	ck_assert_int_eq(ld(1, 0x5000, &v), 1);
	ck_assert_int_eq(btmmu_space_destroy(other), 0);
}
END_TEST

/* A generation from before an invalidation makes the batch stale. */
START_TEST(batch_stale_gen)
{
	struct btmmu_view_info vi = { .size = sizeof(vi) };
	struct btmmu_map_req q = { .gva = 0x1000, .gpa = 0x1000, .len = 4096, .prot = R };

	ck_assert_int_eq(btmmu_view_info(fx.sp, 0, &vi), 0);
	ck_assert_int_eq(btmmu_map_batch(fx.sp, 0, &q, 1, vi.gen), 1);
	ck_assert_int_eq(btmmu_unmap(fx.sp, 1, 0x1000, 4096), 1);
	ck_assert_int_eq(btmmu_map_batch(fx.sp, 0, &q, 1, vi.gen), -ESTALE);
	ck_assert_uint_eq(fx_stats().live_entries, 0);
	/* Another view's invalidation does not matter. */
	ck_assert_int_eq(btmmu_view_info(fx.sp, 0, &vi), 0);
	ck_assert_int_eq(btmmu_flush(fx.sp, 2, 0), 0);
	ck_assert_int_eq(btmmu_map_batch(fx.sp, 0, &q, 1, vi.gen), 1);
}
END_TEST

/* The same page twice in one batch: the last request wins, counted once. */
START_TEST(batch_same_page_twice)
{
	struct btmmu_map_req q[3] = {
		{ .gva = 0x7000, .gpa = 0x1000, .len = 4096, .prot = R },
		{ .gva = 0x8000, .gpa = 0x2000, .len = 4096, .prot = R },
		{ .gva = 0x7000, .gpa = 0x3000, .len = 4096, .prot = RW },
	};
	uint32_t v;

	set_ram32(0x3000, 3);
	ck_assert_int_eq(btmmu_map_batch(fx.sp, 0, q, 3, 0), 3);
	ck_assert_uint_eq(fx_stats().live_entries, 2);
	ck_assert_int_eq(ld(0, 0x7000, &v), 0);
	ck_assert_uint_eq(v, 3);
	ck_assert_int_eq(st(0, 0x7004, 4), 0);
	/* The reverse map is sound: protect finds exactly that alias. */
	ck_assert_int_eq(btmmu_protect(fx.ctx, 0x3000, 4096, R), 1);
	ck_assert_int_eq(btmmu_protect(fx.ctx, 0x1000, 4096, R), 0);
}
END_TEST

/* Is the host page table entry of addr filled (pagemap bit 63)? */
static int host_present(uintptr_t addr)
{
	uint64_t e = 0;
	FILE *f = fopen("/proc/self/pagemap", "r");

	if (!f)
		return -1;
	if (fseek(f, (long)(addr / 4096 * 8), SEEK_SET) || fread(&e, 8, 1, f) != 1)
		e = 0;
	fclose(f);
	return (int)(e >> 63);
}

/* BTMMU_MAP_POPULATE fills the host page tables at install. */
START_TEST(map_populate)
{
	set_ram32(0x6000, 6); /* make the guest frames exist */
	set_ram32(0x7000, 7);
	ck_assert_int_eq(fx_map(0, 0x20000, 0x6000, 4096, RW, 0), 1);
	ck_assert_int_eq(fx_map(0, 0x30000, 0x7000, 4096, RW, BTMMU_MAP_POPULATE), 1);
	if (host_present(fx_base(0) + 0x30000) < 0)
		return; /* no pagemap: nothing to observe */
	ck_assert_int_eq(host_present(fx_base(0) + 0x20000), 0);
	ck_assert_int_eq(host_present(fx_base(0) + 0x30000), 1);
	/* Different populate flags do not coalesce, but both install. */
	{
		struct btmmu_map_req q[2] = {
			{ .gva = 0x40000, .gpa = 0x6000, .len = 4096, .prot = R },
			{ .gva = 0x41000, .gpa = 0x7000, .len = 4096, .prot = R,
			  .flags = BTMMU_MAP_POPULATE },
		};
		unsigned long calls = fx_stats().install_calls;

		ck_assert_int_eq(btmmu_map_batch(fx.sp, 0, q, 2, 0), 2);
		ck_assert_uint_eq(fx_stats().install_calls, calls + 2);
		ck_assert_int_eq(host_present(fx_base(0) + 0x41000), 1);
	}
}
END_TEST

/* Scattered frames need one host call each; neighbours coalesce. */
START_TEST(batch_coalesces)
{
	struct btmmu_map_req q[16];
	unsigned i;

	for (i = 0; i < 16; i++) {
		q[i].gva = 0x200000 + i * 4096;
		q[i].gpa = 0x300000 + i * 4096;
		q[i].len = 4096;
		q[i].prot = RW;
		q[i].flags = 0;
	}
	ck_assert_int_eq(btmmu_map_batch(fx.sp, 0, q, 16, 0), 16);
	ck_assert_uint_eq(fx_stats().install_calls, 1);
	for (i = 0; i < 16; i++)
		q[i].gpa = 0x400000 + (15 - i) * 4096;
	ck_assert_int_eq(btmmu_map_batch(fx.sp, 1, q, 16, 0), 16);
	ck_assert_uint_eq(fx_stats().install_calls, 17);
	ck_assert_uint_eq(fx_stats().fills, 32);
}
END_TEST

/* With a ring of two and no reclaim thread, flushes tear down in place. */
START_TEST(ring_exhaustion)
{
	struct btmmu_space_args a = { .size = sizeof(a), .va_bits = 32, .page_shift = 12,
				      .nviews = 1, .ring = 2 };
	struct btmmu_space *sp;
	uint32_t v;
	unsigned i;

	fx_close();
	fx_open(0, BTMMU_OPEN_NO_THREAD);
	ck_assert_int_eq(btmmu_space_create(fx.ctx, &a, &sp), 0);
	fx.sp = sp;
	for (i = 0; i < 5; i++) {
		set_ram32(0x1000, i);
		ck_assert_int_eq(fx_map(0, 0x1000, 0x1000, 4096, R, 0), 1);
		ck_assert_int_eq(ld(0, 0x1000, &v), 0);
		ck_assert_uint_eq(v, i);
		ck_assert_int_eq(btmmu_flush(sp, 1, 0), 0);
	}
	ck_assert_uint_ge(fx_stats().sync_reclaims, 3);
	ck_assert_uint_eq(fx_stats().live_entries, 1); /* the last retired region */
	ck_assert_int_eq(btmmu_reclaim(fx.ctx), 1);
	ck_assert_uint_eq(fx_stats().live_entries, 0);
}
END_TEST

/* A ring of one flushes in place. */
START_TEST(ring_of_one)
{
	struct btmmu_space_args a = { .size = sizeof(a), .va_bits = 32, .page_shift = 12,
				      .nviews = 1, .ring = 1 };
	struct btmmu_space *sp, *mine = fx.sp;
	uintptr_t before;
	uint32_t v;

	fx.policy = FX_SLOW;
	ck_assert_int_eq(btmmu_space_create(fx.ctx, &a, &sp), 0);
	fx.sp = sp;
	before = fx_base(0);
	ck_assert_int_eq(fx_map(0, 0x1000, 0x1000, 4096, R, 0), 1);
	ck_assert_int_eq(btmmu_flush(sp, 1, 0), 0);
	ck_assert_uint_eq(fx_base(0), before);
	ck_assert_int_eq(ld(0, 0x1000, &v), 1);
	ck_assert_uint_eq(fx_stats().live_entries, 0);
	ck_assert_int_eq(btmmu_space_destroy(sp), 0);
	fx.sp = mine;
}
END_TEST

/* The background reclaimer tears retired regions down. */
START_TEST(background_reclaim)
{
	struct btmmu_stats s;
	unsigned i;

	ck_assert_int_eq(fx_map(0, 0x1000, 0x1000, 64 * 4096, R, 0), 64);
	ck_assert_int_eq(btmmu_flush(fx.sp, 1, 0), 0);
	for (i = 0; i < 2000; i++) {
		s = fx_stats();
		if (s.reclaims)
			break;
		usleep(1000);
	}
	ck_assert_uint_eq(s.reclaims, 1);
	ck_assert_uint_eq(s.live_entries, 0);
}
END_TEST

/* Large guest pages: one entry serves 2 MiB. */
START_TEST(large_guest_pages)
{
	struct btmmu_space_args a = { .size = sizeof(a), .va_bits = 32, .page_shift = 21, .nviews = 1 };
	struct btmmu_space *sp, *mine = fx.sp;
	uint32_t v;

	ck_assert_int_eq(btmmu_space_create(fx.ctx, &a, &sp), 0);
	fx.sp = sp;
	set_ram32(0x200000 + 0x1ffffc, 0x77);
	ck_assert_int_eq(fx_map(0, 0x40000000, 0x200000, 2 << 20, RW, 0), 1);
	ck_assert_int_eq(ld(0, 0x40000000 + 0x1ffffc, &v), 0);
	ck_assert_uint_eq(v, 0x77);
	ck_assert_uint_eq(fx_stats().live_entries, 1);
	ck_assert_int_eq(fx_map(0, 0x40000000, 0x1000, 2 << 20, RW, 0), -EINVAL);
	ck_assert_int_eq(btmmu_space_destroy(sp), 0);
	fx.sp = mine;
}
END_TEST

/*
 * Guest pages smaller than the (simulated) host page: the host page is
 * installed only once all its guest pages are present and contiguous.
 */
static void subpage_case(uint32_t host_shift, uint32_t page_shift)
{
	uint64_t page = UINT64_C(1) << page_shift, hp = UINT64_C(1) << host_shift;
	unsigned n = (unsigned)(hp / page), i;
	uint64_t gva = 4 * hp, gpa = 8 * hp;
	uint32_t v;

	fx_close();
	fx_open(host_shift, 0);
	fx_space(32, page_shift, 0);
	fx.policy = FX_SLOW;
	set_ram32(gpa + hp - 4, 0x55);
	/* All but one present: nothing direct yet. */
	for (i = 0; i + 1 < n; i++)
		ck_assert_int_eq(fx_map(0, gva + i * page, gpa + i * page, page, RW, 0), 0);
	ck_assert_int_eq(ld(0, gva, &v), 1);
	ck_assert_uint_eq(fx_stats().live_entries, 0);
	/* The last one completes the host page. */
	ck_assert_int_eq(fx_map(0, gva + (n - 1) * page, gpa + (n - 1) * page, page, RW, 0), 1);
	ck_assert_int_eq(ld(0, gva + hp - 4, &v), 0);
	ck_assert_uint_eq(v, 0x55);
	ck_assert_uint_eq(fx_stats().live_entries, 1);
	/* Unmapping one guest page takes the host page away. */
	ck_assert_int_eq(btmmu_unmap(fx.sp, 1, gva + page, page), 0);
	ck_assert_int_eq(ld(0, gva, &v), 1);
	ck_assert_int_eq(fx_map(0, gva + page, gpa + page, page, RW, 0), 1);
	ck_assert_int_eq(ld(0, gva, &v), 0);
	/* A page pointing elsewhere makes it non-uniform: slow path. */
	ck_assert_int_eq(fx_map(0, gva + page, gpa + 3 * hp, page, RW, 0), 0);
	ck_assert_int_eq(ld(0, gva, &v), 1);
	ck_assert_uint_eq(fx_stats().live_entries, 0);
	/* A whole host page in one request installs at once. */
	ck_assert_int_eq(fx_map(0, gva + hp, gpa, hp, R, 0), (int)n);
	ck_assert_int_eq(ld(0, gva + 2 * hp - 4, &v), 0);
	ck_assert_uint_eq(v, 0x55);
	/* Misaligned frames never install. */
	ck_assert_int_eq(fx_map(0, gva + 2 * hp, gpa + page, hp, R, 0), 0);
	/* Mixed rights: the host page gets the intersection. */
	ck_assert_int_eq(fx_map(0, gva + 3 * hp, gpa, hp, RW, 0), (int)n);
	ck_assert_int_eq(fx_map(0, gva + 3 * hp, gpa, page, R, 0), 1);
	ck_assert_int_eq(btmmu_store32(fx_base(0) + gva + 3 * hp + hp - 4, 1), 1);
	ck_assert_int_eq(ld(0, gva + 3 * hp + hp - 4, &v), 0);
}

START_TEST(subpage_16k_host) { subpage_case(14, 12); }
END_TEST
START_TEST(subpage_64k_host) { subpage_case(16, 12); }
END_TEST
START_TEST(subpage_1k_guest) { subpage_case(12, 10); }
END_TEST

/* A non-global flush keeps a sub-page host page only if all of it is global. */
START_TEST(subpage_nonglobal_flush)
{
	uint32_t v;

	fx_close();
	fx_open(14, 0);
	fx_space(32, 12, 0);
	fx.policy = FX_SLOW;
	ck_assert_int_eq(fx_map(0, 0x10000, 0x10000, 0x4000, R, BTMMU_MAP_GLOBAL), 4);
	ck_assert_int_eq(fx_map(0, 0x20000, 0x20000, 0x4000, R, BTMMU_MAP_GLOBAL), 4);
	ck_assert_int_eq(fx_map(0, 0x20000, 0x20000, 0x1000, R, 0), 1);
	ck_assert_int_eq(btmmu_flush(fx.sp, 1, BTMMU_FLUSH_NONGLOBAL), 0);
	ck_assert_int_eq(ld(0, 0x10000, &v), 0);
	ck_assert_int_eq(ld(0, 0x23000, &v), 1);
	/* Its global pages are remembered: re-mapping the one page completes it. */
	ck_assert_int_eq(fx_map(0, 0x20000, 0x20000, 0x1000, R, 0), 1);
	ck_assert_int_eq(ld(0, 0x23000, &v), 0);
}
END_TEST

/*
 * A sub-page unit that went non-uniform (a page mapped to another frame)
 * is installable again once its pages agree: remapping the odd page back,
 * or all pages to a new frame in one request.
 */
static void subpage_recovery(uint32_t host_shift)
{
	uint64_t page = 4096, hp = UINT64_C(1) << host_shift;
	unsigned n = (unsigned)(hp / page);
	uint64_t gva = 4 * hp, gpa = 8 * hp, other = 16 * hp;
	uint32_t v;

	fx_close();
	fx_open(host_shift, 0);
	fx_space(32, 12, 0);
	fx.policy = FX_SLOW;
	set_ram32(gpa + hp - 4, 0x55);
	set_ram32(other + hp - 4, 0x66);
	ck_assert_int_eq(fx_map(0, gva, gpa, hp, RW, 0), (int)n);
	ck_assert_int_eq(fx_map(0, gva + page, other, page, RW, 0), 0);
	ck_assert_int_eq(ld(0, gva + hp - 4, &v), 1);
	/* The odd page back where the others agree: installed again. */
	ck_assert_int_eq(fx_map(0, gva + page, gpa + page, page, RW, 0), 1);
	ck_assert_int_eq(ld(0, gva + hp - 4, &v), 0);
	ck_assert_uint_eq(v, 0x55);
	/* Odd again, then every page to a new frame in one request. */
	ck_assert_int_eq(fx_map(0, gva + 2 * page, other, page, RW, 0), 0);
	ck_assert_int_eq(fx_map(0, gva, other, hp, RW, 0), (int)n);
	ck_assert_int_eq(ld(0, gva + hp - 4, &v), 0);
	ck_assert_uint_eq(v, 0x66);
	/*
	 * Page by page to a new frame: the library keeps one frame per unit
	 * (btmmu_map(3)), so pages that left it are not seen to agree again
	 * with a new one; after an unmap of the unit the last page completes it.
	 */
	for (unsigned i = 0; i < n; i++)
		ck_assert_int_eq(fx_map(0, gva + i * page, gpa + i * page, page, RW, 0), 0);
	ck_assert_int_eq(ld(0, gva + hp - 4, &v), 1);
	ck_assert_int_eq(btmmu_unmap(fx.sp, 1, gva, hp), 1);
	for (unsigned i = 0; i < n; i++)
		ck_assert_int_eq(fx_map(0, gva + i * page, gpa + i * page, page, RW, 0),
				 i + 1 == n ? 1 : 0);
	ck_assert_int_eq(ld(0, gva + hp - 4, &v), 0);
	ck_assert_uint_eq(v, 0x55);
}

START_TEST(subpage_recovers_16k_host) { subpage_recovery(14); }
END_TEST
START_TEST(subpage_recovers_64k_host) { subpage_recovery(16); }
END_TEST

/*
 * A batch whose request is longer than the previous request's RAM range
 * (and above it) is mapped from its own range: the library reused the
 * previous one (an unsigned underflow in its bounds check) and mapped the
 * wrong file (SIGBUS past its end).
 */
START_TEST(batch_request_longer_than_previous_ram)
{
	struct btmmu_ram_args sa = { .size = sizeof(sa), .gpa = 32 << 20, .len = 8192, .fd = -1 };
	struct btmmu_ram_args ba = { .size = sizeof(ba), .gpa = 64 << 20, .len = 1 << 20, .fd = -1 };
	struct btmmu_ram *small, *big;
	void *sh, *bh;
	struct btmmu_map_req q[2] = {
		{ .gva = 0x10000, .gpa = 32 << 20, .len = 4096, .prot = R },
		{ .gva = 0x20000, .gpa = 64 << 20, .len = 16384, .prot = R },
	};
	uint32_t v;

	ck_assert_int_eq(btmmu_ram_create(fx.ctx, &sa, &small), 0);
	ck_assert_int_eq(btmmu_ram_create(fx.ctx, &ba, &big), 0);
	ck_assert_int_eq(btmmu_ram_host(small, &sh), 0);
	ck_assert_int_eq(btmmu_ram_host(big, &bh), 0);
	*(volatile uint32_t *)sh = 0x5a5a5a5a;
	*(volatile uint32_t *)((char *)bh + 12288) = 0xb16b16;
	fx.policy = FX_SLOW;
	ck_assert_int_eq(btmmu_map_batch(fx.sp, 0, q, 2, 0), 5);
	ck_assert_int_eq(ld(0, 0x10000, &v), 0);
	ck_assert_uint_eq(v, 0x5a5a5a5a);
	ck_assert_int_eq(ld(0, 0x23000, &v), 0);
	ck_assert_uint_eq(v, 0xb16b16);
	ck_assert_int_eq(btmmu_flush_all(fx.ctx), 0);
	ck_assert_int_eq(btmmu_ram_destroy(small), 0);
	ck_assert_int_eq(btmmu_ram_destroy(big), 0);
}
END_TEST

/* The last page of a 32-bit space: an access running past it wraps. */
START_TEST(guard_past_window_end)
{
	uint32_t v;

	fx.policy = FX_MAP;
	fx_add_pte(0xfffff000, 0x1000, R);
	fx_add_pte(0, 0x2000, R);
	ck_assert_int_eq(btmmu_load32(fx_base(0) + 0xfffffffe, &v), 1);
	ck_assert(fx.last.flags & BTMMU_FAULT_GUARD);
	ck_assert_uint_eq(fx.last.gva, 0); /* wrapped to the guest's address 0 */
	ck_assert_uint_eq(fx_stats().retry_no_progress, 1);
}
END_TEST

/*
 * Guest large pages (BTMMU_MAP_PAGE_SHIFT): an invalidation of any address
 * in the page drops every entry the view got from it, as a guest TLB drops
 * the whole translation of a large page (x86 INVLPG).
 */
#define LP(shift) BTMMU_MAP_PAGE_SHIFT(shift)

/*
 * No record is left of the large page at gva: an ordinary entry mapped
 * there stays when another address of the page is unmapped.
 */
static void expect_no_record(uint64_t gva, uint64_t gpa, uint64_t other)
{
	uint32_t v;

	ck_assert_int_eq(fx_map(0, gva, gpa, 4096, R, 0), 1);
	ck_assert_int_eq(btmmu_unmap(fx.sp, 1, other, 4096), 0);
	ck_assert_int_eq(ld(0, gva, &v), 0);
}

START_TEST(large_page_unmap_drops_whole_page)
{
	uint32_t v;

	fx.policy = FX_SLOW;
	/* Two 4 KiB pieces of the 4 MiB page at 4M, an ordinary page at 8M. */
	ck_assert_int_eq(fx_map(0, 0x401000, 0x1000, 4096, R, LP(22)), 1);
	ck_assert_int_eq(fx_map(0, 0x7ff000, 0x2000, 4096, R, LP(22)), 1);
	ck_assert_int_eq(fx_map(0, 0x800000, 0x3000, 4096, R, 0), 1);
	ck_assert_int_eq(fx_map(1, 0x401000, 0x1000, 4096, R, 0), 1);
	/* Invalidate an address of the page that has no entry. */
	ck_assert_int_eq(btmmu_unmap(fx.sp, 3, 0x405000, 4096), 2);
	ck_assert_int_eq(ld(0, 0x401000, &v), 1);
	ck_assert_int_eq(ld(0, 0x7ff000, &v), 1);
	ck_assert_int_eq(ld(0, 0x800000, &v), 0);
	/* View 1 got the page as an ordinary one: only the range goes there. */
	ck_assert_int_eq(ld(1, 0x401000, &v), 0);
	ck_assert_uint_eq(fx_stats().live_entries, 2);
	/* The record went with the page. */
	expect_no_record(0x401000, 0x1000, 0x405000);
}
END_TEST

/*
 * The QEMU case (issue 17, item 4): the global entries of a 4 MiB page
 * survive an address-space switch (non-global flush); an INVLPG of another
 * address of the page must still drop them.
 */
START_TEST(large_page_global_survives_switch_not_invlpg)
{
	uint32_t v;

	fx.policy = FX_SLOW;
	ck_assert_int_eq(fx_map(0, 0x400000, 0x1000, 2 * 4096, R, LP(22) | BTMMU_MAP_GLOBAL), 2);
	ck_assert_int_eq(fx_map(0, 0xc00000, 0x4000, 4096, R, LP(22)), 1);
	ck_assert_int_eq(btmmu_flush(fx.sp, 1, BTMMU_FLUSH_NONGLOBAL), 0);
	ck_assert_int_eq(ld(0, 0x401000, &v), 0);
	ck_assert_int_eq(ld(0, 0xc00000, &v), 1);
	ck_assert_int_eq(btmmu_unmap(fx.sp, 1, 0x7ff000, 4096), 2);
	ck_assert_int_eq(ld(0, 0x400000, &v), 1);
	ck_assert_int_eq(ld(0, 0x401000, &v), 1);
	ck_assert_uint_eq(fx_stats().live_entries, 0);
	/* The non-global page's record went with the flush. */
	expect_no_record(0xc00000, 0x4000, 0xc01000);
	/* A full flush forgets every record. */
	ck_assert_int_eq(fx_map(0, 0x400000, 0x1000, 4096, R, LP(22) | BTMMU_MAP_GLOBAL), 1);
	ck_assert_int_eq(btmmu_flush(fx.sp, 1, 0), 0);
	expect_no_record(0x400000, 0x1000, 0x401000);
}
END_TEST

/* Pages of several sizes touching each other: the widening goes on. */
START_TEST(large_page_chain_of_sizes)
{
	uint32_t v;

	fx.policy = FX_SLOW;
	/* A 2 MiB page at 6M, and a 4 MiB one at 8M; a range touching both. */
	ck_assert_int_eq(fx_map(0, 0x600000, 0x1000, 4096, R, LP(21)), 1);
	ck_assert_int_eq(fx_map(0, 0xbff000, 0x2000, 4096, R, LP(22)), 1);
	ck_assert_int_eq(fx_map(0, 0xc00000, 0x3000, 4096, R, LP(22)), 1);
	ck_assert_int_eq(btmmu_unmap(fx.sp, 1, 0x7ff000, 2 * 4096), 2);
	ck_assert_int_eq(ld(0, 0x600000, &v), 1);
	ck_assert_int_eq(ld(0, 0xbff000, &v), 1);
	ck_assert_int_eq(ld(0, 0xc00000, &v), 0); /* the next 4 MiB page */
}
END_TEST

START_TEST(large_page_validation)
{
	/* Smaller than the page, as large as the VA, a request past the page. */
	expect_map_err(0x400000, 0x1000, 4096, R, LP(11), -EINVAL);
	expect_map_err(0x400000, 0x1000, 4096, R, LP(32), -EINVAL);
	expect_map_err(0x400000, 0x1000, 4096, R, LP(63), -EINVAL);
	expect_map_err(0x5ff000, 0x1000, 2 * 4096, R, LP(21), -EINVAL);
	/* The page's own size is an ordinary page. */
	ck_assert_int_eq(fx_map(0, 0x400000, 0x1000, 4096, R, LP(12)), 1);
	ck_assert_int_eq(fx_map(0, 0x200000, 0x1000, 2 << 20, R, LP(21)), 512);
}
END_TEST

/*
 * More large pages than the records hold: the view's next unmap drops all
 * its entries (in place: the base stays), since any may be part of the
 * page; the other view keeps its own.
 */
START_TEST(large_page_records_overflow)
{
	uintptr_t base = fx_base(0);
	unsigned i, n = 1024;
	uint32_t v;

	fx.policy = FX_SLOW;
	for (i = 0; i < n; i++)
		ck_assert_int_eq(fx_map(0, (uint64_t)i << 13, (uint64_t)i << 12, 4096, R, LP(13)), 1);
	ck_assert_int_eq(fx_map(0, 0x4000000, 0x1000, 4096, R, 0), 1);
	ck_assert_int_eq(fx_map(1, 0x4000000, 0x1000, 4096, R, 0), 1);
	ck_assert_int_eq(btmmu_unmap(fx.sp, 3, 0x8000000, 4096), (int)n + 1);
	ck_assert_uint_eq(fx_base(0), base);
	ck_assert_int_eq(ld(0, 0, &v), 1);
	ck_assert_int_eq(ld(0, (uint64_t)(n - 1) << 13, &v), 1);
	ck_assert_int_eq(ld(0, 0x4000000, &v), 1);
	ck_assert_int_eq(ld(1, 0x4000000, &v), 0);
	/* Records start afresh. */
	ck_assert_int_eq(fx_map(0, 0x4000000, 0x1000, 4096, R, 0), 1);
	ck_assert_int_eq(fx_map(0, 0x2000, 0x1000, 4096, R, LP(13)), 1);
	ck_assert_int_eq(btmmu_unmap(fx.sp, 1, 0x3000, 4096), 1);
	ck_assert_int_eq(ld(0, 0x4000000, &v), 0);
}
END_TEST

/* Sign-extended: the last page below 0 and the first above are neighbours. */
START_TEST(large_page_sign_extended)
{
	uint64_t top = UINT64_C(0xffffffffffe00000);
	uint32_t v;

	fx_close();
	fx_open(0, 0);
	fx_space(32, 12, BTMMU_SPACE_SIGN_EXTEND);
	fx.policy = FX_SLOW;
	ck_assert_int_eq(fx_map(0, top + 0x1000, 0x1000, 4096, R, LP(21)), 1);
	ck_assert_int_eq(fx_map(0, top + 0x1ff000, 0x2000, 4096, R, LP(21)), 1);
	ck_assert_int_eq(fx_map(0, 0, 0x3000, 4096, R, LP(21)), 1);
	ck_assert_int_eq(fx_map(0, 0x200000, 0x4000, 4096, R, LP(21)), 1);
	/* [-4096, 4096): both 2 MiB pages around 0, not the one at 2M. */
	ck_assert_int_eq(btmmu_unmap(fx.sp, 1, UINT64_C(0xfffffffffffff000), 2 * 4096), 3);
	ck_assert_int_eq(ld(0, top + 0x1000, &v), 1);
	ck_assert_int_eq(ld(0, 0, &v), 1);
	ck_assert_int_eq(ld(0, 0x200000, &v), 0);
}
END_TEST

/* ---- btmmu_map_around(): fault-around ---- */

static struct {
	unsigned calls, stop_at;
	uint64_t hole;		/* a page the "guest" has not made present */
	uint32_t flags;		/* passed on in each answer */
	uint64_t seen[64];
} ar;

/* The translator: gva -> gpa = gva - 0x100000, RW, but for ar.hole. */
static int around_fn(void *opaque, uint64_t gva, struct btmmu_map_req *q)
{
	ck_assert_ptr_eq(opaque, &ar);
	ck_assert_uint_eq(q->len, 4096);
	ck_assert_uint_eq(q->gva, gva);
	if (ar.calls < 64)
		ar.seen[ar.calls] = gva;
	if (++ar.calls == ar.stop_at)
		return -EIO;
	if (gva == ar.hole)
		return 0;
	q->gpa = gva - 0x100000;
	q->prot = RW;
	q->flags = ar.flags;
	return 1;
}

static int around(uint64_t gva, uint64_t group, uint64_t gen)
{
	struct btmmu_map_req q = { .gva = gva, .gpa = gva - 0x100000, .len = 4096, .prot = RW,
				   .flags = BTMMU_MAP_POPULATE };
	struct btmmu_around_args a = { .size = sizeof(a), .group = group, .fn = around_fn,
				       .opaque = &ar };

	return btmmu_map_around(fx.sp, 0, &q, &a, gen);
}

START_TEST(around_installs_translated_neighbours)
{
	unsigned i;
	uint32_t v;

	fx.policy = FX_SLOW;
	memset(&ar, 0, sizeof(ar));
	ar.hole = 0x107000;
	set_ram32(0x2000, 0x1234);
	ck_assert_int_eq(around(0x105000, 16 * 4096, 0), 15);
	ck_assert_uint_eq(ar.calls, 15); /* every page of the group but the faulting one */
	for (i = 0; i < 16; i++)
		ck_assert_int_eq(ld(0, 0x100000 + i * 4096, &v), i == 7);
	ck_assert_int_eq(ld(0, 0x102000, &v), 0);
	ck_assert_uint_eq(v, 0x1234);
	ck_assert_int_eq(ld(0, 0x110000, &v), 1); /* the next group */
	/* Adjacent pages went in a few host calls, not one each. */
	ck_assert_uint_le(fx_stats().install_calls, 4);
}
END_TEST

/* Pages the view holds already are not asked for again. */
START_TEST(around_skips_what_the_view_holds)
{
	unsigned i;

	fx.policy = FX_SLOW;
	memset(&ar, 0, sizeof(ar));
	ck_assert_int_eq(fx_map(0, 0x100000, 0, 4 * 4096, R, 0), 4);
	ck_assert_int_eq(around(0x108000, 16 * 4096, 0), 12);
	ck_assert_uint_eq(ar.calls, 11);
	for (i = 0; i < ar.calls; i++)
		ck_assert(ar.seen[i] >= 0x104000 && ar.seen[i] != 0x108000);
}
END_TEST

/* The callback stops the walk: what it answered before goes in. */
START_TEST(around_callback_stops)
{
	uint32_t v;

	fx.policy = FX_SLOW;
	memset(&ar, 0, sizeof(ar));
	ar.stop_at = 3;
	ck_assert_int_eq(around(0x100000, 16 * 4096, 0), 3);
	ck_assert_int_eq(ld(0, 0x102000, &v), 0);
	ck_assert_int_eq(ld(0, 0x103000, &v), 1);
}
END_TEST

/* Answers from one large page each coalesce within it, never across. */
START_TEST(around_large_pages)
{
	fx.policy = FX_SLOW;
	memset(&ar, 0, sizeof(ar));
	ar.flags = BTMMU_MAP_PAGE_SHIFT(16);
	ck_assert_int_eq(around(0x100000, 32 * 4096, 0), 32);
	ck_assert_uint_eq(ar.calls, 31);
	/* The records work: unmapping one page drops its 64 KiB page. */
	ck_assert_int_eq(btmmu_unmap(fx.sp, 1, 0x112000, 4096), 16);
}
END_TEST

/* A stale generation refuses the faulting page and asks for nothing. */
START_TEST(around_stale_gen)
{
	struct btmmu_view_info vi = { .size = sizeof(vi) };
	uint64_t gen;

	memset(&ar, 0, sizeof(ar));
	ck_assert_int_eq(btmmu_view_info(fx.sp, 0, &vi), 0);
	gen = vi.gen;
	ck_assert_int_eq(btmmu_unmap(fx.sp, 1, 0x500000, 4096), 0);
	ck_assert_int_eq(around(0x100000, 16 * 4096, gen), -ESTALE);
	ck_assert_uint_eq(ar.calls, 0);
	ck_assert_uint_eq(fx_stats().live_entries, 0);
}
END_TEST

START_TEST(around_validation)
{
	struct btmmu_map_req q = { .gva = 0x100000, .gpa = 0, .len = 4096, .prot = R };
	struct btmmu_around_args a = { .size = sizeof(a), .group = 16 * 4096, .fn = around_fn,
				       .opaque = &ar };
	struct btmmu_around_args bad;
	struct {
		struct btmmu_around_args a;
		uint64_t more;
	} big = { .a = a, .more = 1 };

	memset(&ar, 0, sizeof(ar));
	ck_assert_int_eq(btmmu_map_around(NULL, 0, &q, &a, 0), -EINVAL);
	ck_assert_int_eq(btmmu_map_around(fx.sp, 2, &q, &a, 0), -EINVAL);
	ck_assert_int_eq(btmmu_map_around(fx.sp, 0, NULL, &a, 0), -EFAULT);
	ck_assert_int_eq(btmmu_map_around(fx.sp, 0, &q, NULL, 0), -EFAULT);
	bad = a, bad.group = 3 * 4096;
	ck_assert_int_eq(btmmu_map_around(fx.sp, 0, &q, &bad, 0), -EINVAL);
	bad = a, bad.group = 2048;
	ck_assert_int_eq(btmmu_map_around(fx.sp, 0, &q, &bad, 0), -EINVAL);
	bad = a, bad.group = 2048 * 4096;
	ck_assert_int_eq(btmmu_map_around(fx.sp, 0, &q, &bad, 0), -EINVAL);
	bad = a, bad.fn = NULL;
	ck_assert_int_eq(btmmu_map_around(fx.sp, 0, &q, &bad, 0), -EINVAL);
	bad = a, bad.flags = 1;
	ck_assert_int_eq(btmmu_map_around(fx.sp, 0, &q, &bad, 0), -EINVAL);
	big.a.size = sizeof(big);
	ck_assert_int_eq(btmmu_map_around(fx.sp, 0, &q, &big.a, 0), -E2BIG);
	q.prot = 0; /* the faulting request is checked as btmmu_map_batch() does */
	ck_assert_int_eq(btmmu_map_around(fx.sp, 0, &q, &a, 0), -EINVAL);
	ck_assert_uint_eq(ar.calls, 0);
	ck_assert_uint_eq(fx_stats().live_entries, 0);
	/* A group of one page is the request alone. */
	q.prot = R;
	bad = a, bad.group = 4096;
	ck_assert_int_eq(btmmu_map_around(fx.sp, 0, &q, &bad, 0), 1);
	ck_assert_uint_eq(ar.calls, 0);
}
END_TEST

static Suite *map_suite(void)
{
	Suite *s = suite_create("map");
	TCase *tc;

	tc = tcase_create("validation");
	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_add_test(tc, map_null_space);
	tcase_add_test(tc, map_bad_view);
	tcase_add_test(tc, map_null_req);
	tcase_add_test(tc, map_unknown_flags);
	tcase_add_test(tc, map_no_prot);
	tcase_add_test(tc, map_bad_prot);
	tcase_add_test(tc, map_zero_len);
	tcase_add_test(tc, map_len_unaligned);
	tcase_add_test(tc, map_gva_unaligned);
	tcase_add_test(tc, map_gpa_unaligned);
	tcase_add_test(tc, map_gpa_not_ram);
	tcase_add_test(tc, map_gpa_crosses_ram_end);
	tcase_add_test(tc, map_gva_beyond_va);
	tcase_add_test(tc, map_gva_crosses_va_end);
	tcase_add_test(tc, batch_all_or_nothing);
	tcase_add_test(tc, unmap_validation);
	tcase_add_test(tc, flush_validation);
	suite_add_tcase(s, tc);

	tc = tcase_create("entries");
	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_add_test(tc, direct_access_reads_and_writes_ram);
	tcase_add_test(tc, map_range_counts_pages);
	tcase_add_test(tc, map_idempotent);
	tcase_add_test(tc, remap_other_frame);
	tcase_add_test(tc, read_only_write_faults);
	tcase_add_test(tc, aliases_share_data);
	tcase_add_test(tc, views_are_separate);
	tcase_add_test(tc, batch_stale_gen);
	tcase_add_test(tc, batch_coalesces);
	tcase_add_test(tc, batch_same_page_twice);
	tcase_add_test(tc, batch_request_longer_than_previous_ram);
	tcase_add_test(tc, map_populate);
	tcase_add_test(tc, large_guest_pages);
	tcase_add_test(tc, guard_past_window_end);
	suite_add_tcase(s, tc);

	tc = tcase_create("invalidate");
	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_add_test(tc, unmap_faults_again);
	tcase_add_test(tc, unmap_bumps_gen);
	tcase_add_test(tc, unmap_whole_space);
	tcase_add_test(tc, flush_full);
	tcase_add_test(tc, flush_empty_view);
	tcase_add_test(tc, flush_nonglobal_keeps_global);
	tcase_add_test(tc, flush_nonglobal_interleaved);
	tcase_add_test(tc, view_live_entries);
	tcase_add_test(tc, global_bit_follows_last_map);
	tcase_add_test(tc, flush_all_spaces);
	tcase_add_test(tc, ring_exhaustion);
	tcase_add_test(tc, ring_of_one);
	tcase_add_test(tc, background_reclaim);
	suite_add_tcase(s, tc);

	tc = tcase_create("large_page");
	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_add_test(tc, large_page_unmap_drops_whole_page);
	tcase_add_test(tc, large_page_global_survives_switch_not_invlpg);
	tcase_add_test(tc, large_page_chain_of_sizes);
	tcase_add_test(tc, large_page_validation);
	tcase_add_test(tc, large_page_records_overflow);
	tcase_add_test(tc, large_page_sign_extended);
	suite_add_tcase(s, tc);

	tc = tcase_create("around");
	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_add_test(tc, around_installs_translated_neighbours);
	tcase_add_test(tc, around_skips_what_the_view_holds);
	tcase_add_test(tc, around_callback_stops);
	tcase_add_test(tc, around_large_pages);
	tcase_add_test(tc, around_stale_gen);
	tcase_add_test(tc, around_validation);
	suite_add_tcase(s, tc);

	tc = tcase_create("subpage");
	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_add_test(tc, subpage_16k_host);
	tcase_add_test(tc, subpage_64k_host);
	tcase_add_test(tc, subpage_1k_guest);
	tcase_add_test(tc, subpage_nonglobal_flush);
	tcase_add_test(tc, subpage_recovers_16k_host);
	tcase_add_test(tc, subpage_recovers_64k_host);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	return fx_run(map_suite());
}
