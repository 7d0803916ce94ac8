/* SPDX-License-Identifier: MIT */
/* Guest RAM: creation, validation, backing by the caller's fd, destruction. */
#include <fcntl.h>
#include <sys/mman.h>
#include <unistd.h>

#include "fixture.h"

static struct btmmu *ctx;
static struct btmmu_ram *ram;

static void setup(void)
{
	struct btmmu_open_args oa = { .size = sizeof(oa), .fault_fn = fx_callback };

	ck_assert_int_eq(btmmu_open(&oa, &ctx), 0);
}

static void teardown(void)
{
	ck_assert_int_eq(btmmu_close(ctx), 0);
}

static struct btmmu_ram_args args(uint64_t gpa, uint64_t len, int fd, uint64_t offset)
{
	struct btmmu_ram_args a = { .size = sizeof(a), .gpa = gpa, .len = len, .fd = fd,
				    .offset = offset };
	return a;
}

static int create(uint64_t gpa, uint64_t len, int fd, uint64_t offset)
{
	struct btmmu_ram_args a = args(gpa, len, fd, offset);

	return btmmu_ram_create(ctx, &a, &ram);
}

static int memfd(uint64_t size)
{
	int fd = memfd_create("test", MFD_CLOEXEC);

	ck_assert_int_ge(fd, 0);
	ck_assert_int_eq(ftruncate(fd, (off_t)size), 0);
	return fd;
}

START_TEST(allocated_zeroed_and_writable)
{
	uint8_t *h;
	void *host;
	size_t i;

	ck_assert_int_eq(create(0x100000, 1 << 20, -1, 0), 0);
	ck_assert_int_eq(btmmu_ram_host(ram, &host), 0);
	h = host;
	for (i = 0; i < (1 << 20); i += 4096)
		ck_assert_uint_eq(h[i], 0);
	h[12345] = 0x5a;
	ck_assert_uint_eq(h[12345], 0x5a);
	ck_assert_int_eq(btmmu_ram_destroy(ram), 0);
}
END_TEST

/* The caller's fd backs the RAM: both mappings see the same bytes. */
START_TEST(caller_fd_shared)
{
	int fd = memfd(2 << 20);
	uint8_t *mine = mmap(NULL, 2 << 20, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	void *host;

	ck_assert_ptr_ne(mine, MAP_FAILED);
	ck_assert_int_eq(create(0, 1 << 20, fd, 1 << 20), 0);
	close(fd); /* the library keeps its own reference */
	ck_assert_int_eq(btmmu_ram_host(ram, &host), 0);
	mine[(1 << 20) + 7] = 0x77;
	ck_assert_uint_eq(((uint8_t *)host)[7], 0x77);
	((uint8_t *)host)[8] = 0x88;
	ck_assert_uint_eq(mine[(1 << 20) + 8], 0x88);
	ck_assert_int_eq(btmmu_ram_destroy(ram), 0);
	munmap(mine, 2 << 20);
}
END_TEST

START_TEST(null_ctx)
{
	struct btmmu_ram_args a = args(0, 4096, -1, 0);

	ck_assert_int_eq(btmmu_ram_create(NULL, &a, &ram), -EINVAL);
}
END_TEST

START_TEST(null_out)
{
	struct btmmu_ram_args a = args(0, 4096, -1, 0);

	ck_assert_int_eq(btmmu_ram_create(ctx, &a, NULL), -EFAULT);
}
END_TEST

START_TEST(null_args)
{
	ck_assert_int_eq(btmmu_ram_create(ctx, NULL, &ram), -EFAULT);
}
END_TEST

START_TEST(unknown_flags)
{
	struct btmmu_ram_args a = args(0, 4096, -1, 0);

	a.flags = 1;
	ck_assert_int_eq(btmmu_ram_create(ctx, &a, &ram), -EINVAL);
}
END_TEST

START_TEST(zero_len)
{
	ck_assert_int_eq(create(0, 0, -1, 0), -EINVAL);
}
END_TEST

START_TEST(len_not_page_multiple)
{
	ck_assert_int_eq(create(0, 4096 + 1024, -1, 0), -EINVAL);
}
END_TEST

START_TEST(gpa_not_page_aligned)
{
	ck_assert_int_eq(create(2048, 4096, -1, 0), -EINVAL);
}
END_TEST

START_TEST(gpa_wraps)
{
	ck_assert_int_eq(create(UINT64_MAX - 4095, 8192, -1, 0), -EINVAL);
}
END_TEST

START_TEST(offset_not_page_aligned)
{
	int fd = memfd(1 << 20);

	ck_assert_int_eq(create(0, 4096, fd, 100), -EINVAL);
	close(fd);
}
END_TEST

START_TEST(offset_without_fd)
{
	ck_assert_int_eq(create(0, 4096, -1, 4096), -EINVAL);
}
END_TEST

START_TEST(bad_fd)
{
	ck_assert_int_eq(create(0, 4096, -7, 0), -EBADF);
}
END_TEST

START_TEST(closed_fd)
{
	int fd = memfd(4096);

	close(fd);
	ck_assert_int_eq(create(0, 4096, fd, 0), -EBADF);
}
END_TEST

START_TEST(fd_too_short)
{
	int fd = memfd(1 << 20);

	ck_assert_int_eq(create(0, 1 << 20, fd, 4096), -EINVAL);
	close(fd);
}
END_TEST

START_TEST(fd_not_regular)
{
	int p[2];

	ck_assert_int_eq(pipe(p), 0);
	ck_assert_int_eq(create(0, 4096, p[0], 0), -EINVAL);
	close(p[0]);
	close(p[1]);
}
END_TEST

/* Overlap is refused and the first range is untouched. */
START_TEST(overlap)
{
	struct btmmu_ram *first;
	void *host;

	ck_assert_int_eq(create(1 << 20, 1 << 20, -1, 0), 0);
	first = ram;
	ck_assert_int_eq(btmmu_ram_host(first, &host), 0);
	((uint8_t *)host)[0] = 1;
	ck_assert_int_eq(create((1 << 20) + 4096, 4096, -1, 0), -EEXIST);
	ck_assert_int_eq(create(0, (1 << 20) + 4096, -1, 0), -EEXIST);
	ck_assert_uint_eq(((uint8_t *)host)[0], 1);
	ck_assert_int_eq(create(2 << 20, 4096, -1, 0), 0); /* adjacent is fine */
	ck_assert_int_eq(btmmu_ram_destroy(ram), 0);
	ck_assert_int_eq(btmmu_ram_destroy(first), 0);
}
END_TEST

START_TEST(destroy_null)
{
	ck_assert_int_eq(btmmu_ram_destroy(NULL), -EINVAL);
}
END_TEST

START_TEST(host_null)
{
	void *host;

	ck_assert_int_eq(btmmu_ram_host(NULL, &host), -EINVAL);
	ck_assert_int_eq(create(0, 4096, -1, 0), 0);
	ck_assert_int_eq(btmmu_ram_host(ram, NULL), -EFAULT);
	ck_assert_int_eq(btmmu_ram_destroy(ram), 0);
}
END_TEST

/* Destroying RAM drops its shadow entries: the shadow faults again. */
START_TEST(destroy_drops_entries)
{
	uint32_t v;
	struct btmmu_stats st;

	fx_open(0, 0);
	fx_space(32, 12, 0);
	ck_assert_int_eq(fx_map(0, 0x5000, 0x1000, 4096, BTMMU_PROT_READ, 0), 1);
	st = fx_stats();
	ck_assert_uint_eq(st.live_entries, 1);
	ck_assert_int_eq(btmmu_ram_destroy(fx.ram), 0);
	fx.ram = NULL;
	st = fx_stats();
	ck_assert_uint_eq(st.live_entries, 0);
	fx.policy = FX_SLOW;
	ck_assert_int_eq(btmmu_load32(fx_base(0) + 0x5000, &v), 1);
	ck_assert_uint_eq(fx.nfaults, 1);
	fx_close();
}
END_TEST

/* Guest data lives in RAM: it survives the shadow being flushed. */
START_TEST(data_survives_shadow)
{
	uint32_t v;

	fx_open(0, 0);
	fx_space(32, 12, 0);
	ck_assert_int_eq(fx_map(0, 0x5000, 0x1000, 4096, BTMMU_PROT_READ | BTMMU_PROT_WRITE, 0),
			 1);
	ck_assert_int_eq(btmmu_store32(fx_base(0) + 0x5010, 0xdeadbeef), 0);
	ck_assert_int_eq(btmmu_flush(fx.sp, 3, 0), 0);
	ck_assert_int_eq(btmmu_reclaim(fx.ctx) >= 0, 1);
	ck_assert_uint_eq(*(uint32_t *)(fx.host + 0x1010), 0xdeadbeef);
	fx_add_pte(0x5000, 0x1000, BTMMU_PROT_READ);
	ck_assert_int_eq(btmmu_load32(fx_base(0) + 0x5010, &v), 0);
	ck_assert_uint_eq(v, 0xdeadbeef);
	fx_close();
}
END_TEST

static Suite *ram_suite(void)
{
	Suite *s = suite_create("ram");
	TCase *tc;

	tc = tcase_create("create");
	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_add_test(tc, allocated_zeroed_and_writable);
	tcase_add_test(tc, caller_fd_shared);
	tcase_add_test(tc, overlap);
	tcase_add_test(tc, destroy_null);
	tcase_add_test(tc, host_null);
	suite_add_tcase(s, tc);

	tc = tcase_create("validation");
	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_add_test(tc, null_ctx);
	tcase_add_test(tc, null_out);
	tcase_add_test(tc, null_args);
	tcase_add_test(tc, unknown_flags);
	tcase_add_test(tc, zero_len);
	tcase_add_test(tc, len_not_page_multiple);
	tcase_add_test(tc, gpa_not_page_aligned);
	tcase_add_test(tc, gpa_wraps);
	tcase_add_test(tc, offset_not_page_aligned);
	tcase_add_test(tc, offset_without_fd);
	tcase_add_test(tc, bad_fd);
	tcase_add_test(tc, closed_fd);
	tcase_add_test(tc, fd_too_short);
	tcase_add_test(tc, fd_not_regular);
	suite_add_tcase(s, tc);

	tc = tcase_create("shadow");
	tcase_add_test(tc, destroy_drops_entries);
	tcase_add_test(tc, data_survives_shadow);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	return fx_run(ram_suite());
}
