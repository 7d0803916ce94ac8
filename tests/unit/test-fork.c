/* SPDX-License-Identifier: MIT */
/*
 * fork(): a child's copies of the parent's contexts are dead. Guest RAM is
 * a shared file, so a child writing through the shadow would change the
 * parent's guest; the child's windows are made inaccessible, every call but
 * the destroy and close calls returns -EOWNERDEAD, and those still release
 * the child's copies. The parent is not affected, and a child may open
 * contexts of its own.
 */
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <sys/wait.h>
#include <unistd.h>

#include "fixture.h"

#define RW (BTMMU_PROT_READ | BTMMU_PROT_WRITE)

/* Run fn in a child; return its wait status. */
static int in_child(int (*fn)(void))
{
	int status;
	pid_t pid = fork();

	/* No Check call in the child: its lock may be held by a parent's thread. */
	if (pid == 0) {
		alarm(20); /* a deadlock in the child ends it */
		_exit(fn());
	}
	ck_assert_int_ge(pid, 0);
	ck_assert_int_eq(waitpid(pid, &status, 0), pid);
	return status;
}

static void setup(void)
{
	fx_open(0, 0);
	fx_space(32, 12, 0);
	ck_assert_int_eq(fx_map(0, 0x10000, 0x10000, 0x4000, RW, 0), 4);
	fx.host[0x10000] = 42;
}

static void teardown(void)
{
	fx_close();
}

/* Every call on the child's copies returns -EOWNERDEAD. */
static int child_calls(void)
{
	struct btmmu_map_req q = { .gva = 0x20000, .gpa = 0x20000, .len = 0x1000, .prot = RW };
	struct btmmu_stats st = { .size = sizeof(st) };
	struct btmmu_view_info vi = { .size = sizeof(vi) };
	struct btmmu_backend_info bi = { .size = sizeof(bi) };
	struct btmmu_ram_args ra = { .size = sizeof(ra), .gpa = 1 << 30, .len = 4096, .fd = -1 };
	struct btmmu_space_args sa = { .size = sizeof(sa), .va_bits = 32, .page_shift = 12,
				       .nviews = 1 };
	struct btmmu_space *sp2;
	struct btmmu_ram *ram2;
	uintptr_t base;
	void *host;
	int bad = 0;

	bad += btmmu_map(fx.sp, 0, &q) != -EOWNERDEAD;
	bad += btmmu_map_batch(fx.sp, 0, &q, 1, 0) != -EOWNERDEAD;
	bad += btmmu_unmap(fx.sp, 1, 0x10000, 0x1000) != -EOWNERDEAD;
	bad += btmmu_flush(fx.sp, 1, 0) != -EOWNERDEAD;
	bad += btmmu_flush_all(fx.ctx) != -EOWNERDEAD;
	bad += btmmu_protect(fx.ctx, 0, 4096, 0) != -EOWNERDEAD;
	bad += btmmu_unprotect(fx.ctx, 0, 4096) != -EOWNERDEAD;
	bad += btmmu_reclaim(fx.ctx) != -EOWNERDEAD;
	bad += btmmu_stats_get(fx.ctx, &st) != -EOWNERDEAD;
	bad += btmmu_backend_info(fx.ctx, &bi) != -EOWNERDEAD;
	bad += btmmu_view_info(fx.sp, 0, &vi) != -EOWNERDEAD;
	bad += btmmu_view_base(fx.sp, 0, &base) != -EOWNERDEAD;
	bad += btmmu_ram_host(fx.ram, &host) != -EOWNERDEAD;
	bad += btmmu_ram_create(fx.ctx, &ra, &ram2) != -EOWNERDEAD;
	bad += btmmu_space_create(fx.ctx, &sa, &sp2) != -EOWNERDEAD;
	/* The copies are still released, in the usual order. */
	bad += btmmu_close(fx.ctx) != -EBUSY;
	bad += btmmu_space_destroy(fx.sp) != 0;
	bad += btmmu_ram_destroy(fx.ram) != 0;
	bad += btmmu_close(fx.ctx) != 0;
	return bad;
}

START_TEST(child_calls_are_refused)
{
	int status = in_child(child_calls);

	ck_assert_msg(WIFEXITED(status) && WEXITSTATUS(status) == 0, "status %#x", status);
}
END_TEST

static uintptr_t parent_base;

/* Writing the parent's guest through the inherited shadow crashes the child. */
static int child_writes_shadow(void)
{
	(void)btmmu_store8(parent_base + 0x10000, 99);
	return 0;
}

static int child_reads_shadow(void)
{
	uint8_t v;

	(void)btmmu_load8(parent_base + 0x11000, &v);
	return 0;
}

START_TEST(child_cannot_reach_parent_guest)
{
	int status;
	uint8_t v;

	parent_base = fx_base(0);
	status = in_child(child_writes_shadow);
	ck_assert_msg(WIFSIGNALED(status) && WTERMSIG(status) == SIGSEGV, "status %#x", status);
	status = in_child(child_reads_shadow);
	ck_assert_msg(WIFSIGNALED(status) && WTERMSIG(status) == SIGSEGV, "status %#x", status);
	/* The parent's guest is untouched and its shadow works as before. */
	ck_assert_uint_eq(fx.host[0x10000], 42);
	ck_assert_int_eq(btmmu_load8(fx_base(0) + 0x10000, &v), 0);
	ck_assert_uint_eq(v, 42);
	ck_assert_int_eq(btmmu_store8(fx_base(0) + 0x10001, 7), 0);
	ck_assert_uint_eq(fx.host[0x10001], 7);
}
END_TEST

/* A child opens its own context and uses it normally. */
static int child_own_context(void)
{
	struct btmmu_open_args oa = { .size = sizeof(oa), .fault_fn = fx_callback };
	struct btmmu_ram_args ra = { .size = sizeof(ra), .len = 1 << 20, .fd = -1 };
	struct btmmu_space_args sa = { .size = sizeof(sa), .va_bits = 32, .page_shift = 12,
				       .nviews = 1 };
	struct btmmu_map_req q = { .gva = 0x1000, .gpa = 0x1000, .len = 0x1000, .prot = RW };
	struct btmmu_space *sp;
	struct btmmu_ram *ram;
	struct btmmu *ctx;
	uintptr_t base;
	uint8_t v = 0;

	if (btmmu_open(&oa, &ctx) || btmmu_ram_create(ctx, &ra, &ram) ||
	    btmmu_space_create(ctx, &sa, &sp) || btmmu_map(sp, 0, &q) != 1 ||
	    btmmu_view_base(sp, 0, &base))
		return 1;
	if (btmmu_store8(base + 0x1000, 5) || btmmu_load8(base + 0x1000, &v) || v != 5)
		return 2;
	if (btmmu_flush(sp, 1, 0) || btmmu_space_destroy(sp) || btmmu_ram_destroy(ram) ||
	    btmmu_close(ctx))
		return 3;
	return 0;
}

START_TEST(child_opens_its_own)
{
	int status = in_child(child_own_context);

	ck_assert_msg(WIFEXITED(status) && WEXITSTATUS(status) == 0, "status %#x", status);
}
END_TEST

/*
 * fork() while other threads map, flush and fault: the locks are held
 * across fork(), so the child never inherits one taken by a thread it does
 * not have, and can still release its copies (the alarm catches a hang).
 */
static atomic_bool busy_stop;
static uintptr_t busy_base;

/* No Check calls here either (see in_child). */
static void *busy(void *arg)
{
	unsigned i = 0;
	uint8_t v;

	(void)arg;
	while (!atomic_load(&busy_stop)) {
		fx_map(1, (uint64_t)(i % 512) << 12, (uint64_t)(i % 512) << 12, 0x1000, RW, 0);
		(void)btmmu_load8(busy_base + ((uintptr_t)(i % 1024) << 12), &v);
		if ((i & 31) == 0)
			btmmu_flush(fx.sp, 2, (i & 64) ? BTMMU_FLUSH_NONGLOBAL : 0);
		i++;
	}
	return NULL;
}

static int child_cleans_up(void)
{
	return btmmu_space_destroy(fx.sp) || btmmu_ram_destroy(fx.ram) || btmmu_close(fx.ctx);
}

START_TEST(fork_while_busy)
{
	pthread_t t[2];
	unsigned i;

	for (i = 0; i < 1024; i++)
		fx_add_pte((uint64_t)i << 12, (uint64_t)(i % 512) << 12, RW);
	busy_base = fx_base(1);
	for (i = 0; i < 2; i++)
		ck_assert_int_eq(pthread_create(&t[i], NULL, busy, NULL), 0);
	for (i = 0; i < 50; i++) {
		int status = in_child(child_cleans_up);

		ck_assert_msg(WIFEXITED(status) && WEXITSTATUS(status) == 0, "round %u: %#x", i,
			      status);
	}
	atomic_store(&busy_stop, true);
	for (i = 0; i < 2; i++)
		pthread_join(t[i], NULL);
}
END_TEST

int main(void)
{
	Suite *s = suite_create("fork");
	TCase *tc = tcase_create("child");

	tcase_set_timeout(tc, 60);

	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_add_test(tc, child_calls_are_refused);
	tcase_add_test(tc, child_cannot_reach_parent_guest);
	tcase_add_test(tc, child_opens_its_own);
	tcase_add_test(tc, fork_while_busy);
	suite_add_tcase(s, tc);
	return fx_run(s);
}
