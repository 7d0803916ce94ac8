/* SPDX-License-Identifier: MIT */
/* The context: open/close, backend selection, host page size, stats, version. */
#include <dirent.h>
#include <sched.h>
#include <signal.h>
#include <sys/syscall.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <unistd.h>

#include "fixture.h"

static struct btmmu *ctx;

static int open_with(struct btmmu_open_args *oa)
{
	return btmmu_open(oa, &ctx);
}

START_TEST(open_default)
{
	struct btmmu_open_args oa = { .size = sizeof(oa) };

	ck_assert_int_eq(open_with(&oa), 0);
	ck_assert_str_eq(btmmu_backend_name(ctx), "user");
	ck_assert_int_eq(btmmu_close(ctx), 0);
}
END_TEST

START_TEST(open_null_out)
{
	struct btmmu_open_args oa = { .size = sizeof(oa) };

	ck_assert_int_eq(btmmu_open(&oa, NULL), -EFAULT);
}
END_TEST

START_TEST(open_null_args)
{
	ck_assert_int_eq(btmmu_open(NULL, &ctx), -EFAULT);
}
END_TEST

START_TEST(open_size_too_small)
{
	struct btmmu_open_args oa = { .size = 4 };

	ck_assert_int_eq(open_with(&oa), -EINVAL);
}
END_TEST

/* A caller built against an older, shorter struct: the rest reads as zero. */
START_TEST(open_older_struct)
{
	struct btmmu_open_args oa = { .size = offsetof(struct btmmu_open_args, flags) };

	ck_assert_int_eq(open_with(&oa), 0);
	ck_assert_int_eq(btmmu_close(ctx), 0);
}
END_TEST

START_TEST(open_newer_struct_zero_tail)
{
	struct {
		struct btmmu_open_args a;
		uint64_t future[2];
	} big;

	memset(&big, 0, sizeof(big));
	big.a.size = sizeof(big);
	ck_assert_int_eq(btmmu_open(&big.a, &ctx), 0);
	ck_assert_int_eq(btmmu_close(ctx), 0);
}
END_TEST

START_TEST(open_newer_struct_nonzero_tail)
{
	struct {
		struct btmmu_open_args a;
		uint64_t future[2];
	} big;

	memset(&big, 0, sizeof(big));
	big.a.size = sizeof(big);
	big.future[1] = 1;
	ck_assert_int_eq(btmmu_open(&big.a, &ctx), -E2BIG);
}
END_TEST

START_TEST(open_unknown_flags)
{
	struct btmmu_open_args oa = { .size = sizeof(oa), .flags = 0x80 };

	ck_assert_int_eq(open_with(&oa), -EINVAL);
}
END_TEST

START_TEST(open_unknown_backend)
{
	struct btmmu_open_args oa = { .size = sizeof(oa), .backend = "nonesuch" };

	ck_assert_int_eq(open_with(&oa), -ENOENT);
}
END_TEST

START_TEST(open_backend_by_name)
{
	struct btmmu_open_args oa = { .size = sizeof(oa), .backend = "user" };

	ck_assert_int_eq(open_with(&oa), 0);
	ck_assert_str_eq(btmmu_backend_name(ctx), "user");
	ck_assert_int_eq(btmmu_close(ctx), 0);
}
END_TEST

START_TEST(open_backend_env)
{
	struct btmmu_open_args oa = { .size = sizeof(oa) };

	setenv("BTMMU_BACKEND", "nonesuch", 1);
	ck_assert_int_eq(open_with(&oa), -ENOENT);
	setenv("BTMMU_BACKEND", "user", 1);
	ck_assert_int_eq(open_with(&oa), 0);
	ck_assert_int_eq(btmmu_close(ctx), 0);
}
END_TEST

/* The argument wins over the environment. */
START_TEST(open_backend_arg_beats_env)
{
	struct btmmu_open_args oa = { .size = sizeof(oa), .backend = "user" };

	setenv("BTMMU_BACKEND", "nonesuch", 1);
	ck_assert_int_eq(open_with(&oa), 0);
	ck_assert_int_eq(btmmu_close(ctx), 0);
}
END_TEST

START_TEST(open_page_shift_below_real)
{
	struct btmmu_open_args oa = { .size = sizeof(oa), .host_page_shift = 11 };

	ck_assert_int_eq(open_with(&oa), -EINVAL);
}
END_TEST

START_TEST(open_page_shift_too_big)
{
	struct btmmu_open_args oa = { .size = sizeof(oa), .host_page_shift = 17 };

	ck_assert_int_eq(open_with(&oa), -EINVAL);
}
END_TEST

START_TEST(open_page_shift_env_garbage)
{
	struct btmmu_open_args oa = { .size = sizeof(oa) };

	setenv("BTMMU_HOST_PAGE_SHIFT", "16k", 1);
	ck_assert_int_eq(open_with(&oa), -EINVAL);
}
END_TEST

/* The simulated host page size reaches the views' geometry. */
START_TEST(open_page_shift_simulated)
{
	struct btmmu_open_args oa = { .size = sizeof(oa), .host_page_shift = 14 };
	struct btmmu_space_args sa = { .size = sizeof(sa), .va_bits = 32, .page_shift = 12, .nviews = 1 };
	struct btmmu_view_info vi = { .size = sizeof(vi) };
	struct btmmu_space *sp;

	ck_assert_int_eq(open_with(&oa), 0);
	ck_assert_int_eq(btmmu_space_create(ctx, &sa, &sp), 0);
	ck_assert_int_eq(btmmu_view_info(sp, 0, &vi), 0);
	ck_assert_uint_eq(vi.host_page_shift, 14);
	ck_assert_uint_eq(vi.unit_shift, 14);
	ck_assert_int_eq(btmmu_space_destroy(sp), 0);
	ck_assert_int_eq(btmmu_close(ctx), 0);
}
END_TEST

START_TEST(open_page_shift_env)
{
	struct btmmu_open_args oa = { .size = sizeof(oa) };
	struct btmmu_space_args sa = { .size = sizeof(sa), .va_bits = 32, .page_shift = 12, .nviews = 1 };
	struct btmmu_view_info vi = { .size = sizeof(vi) };
	struct btmmu_space *sp;

	setenv("BTMMU_HOST_PAGE_SHIFT", "16", 1);
	ck_assert_int_eq(open_with(&oa), 0);
	ck_assert_int_eq(btmmu_space_create(ctx, &sa, &sp), 0);
	ck_assert_int_eq(btmmu_view_info(sp, 0, &vi), 0);
	ck_assert_uint_eq(vi.host_page_shift, 16);
	ck_assert_int_eq(btmmu_space_destroy(sp), 0);
	ck_assert_int_eq(btmmu_close(ctx), 0);
}
END_TEST

START_TEST(open_pool_too_big)
{
	struct btmmu_open_args oa = { .size = sizeof(oa), .max_entries = UINT64_C(1) << 40 };

	ck_assert_int_eq(open_with(&oa), -EINVAL);
}
END_TEST

START_TEST(close_null)
{
	ck_assert_int_eq(btmmu_close(NULL), -EINVAL);
}
END_TEST

START_TEST(close_busy_ram)
{
	fx_open(0, 0);
	ck_assert_int_eq(btmmu_close(fx.ctx), -EBUSY);
	ck_assert_int_eq(btmmu_ram_destroy(fx.ram), 0);
	fx.ram = NULL;
	fx_close();
}
END_TEST

START_TEST(close_busy_space)
{
	fx_open(0, 0);
	fx_space(32, 12, 0);
	ck_assert_int_eq(btmmu_ram_destroy(fx.ram), 0);
	fx.ram = NULL;
	ck_assert_int_eq(btmmu_close(fx.ctx), -EBUSY);
	fx_close();
}
END_TEST

START_TEST(backend_name_null)
{
	ck_assert_ptr_null(btmmu_backend_name(NULL));
}
END_TEST

START_TEST(reclaim_null)
{
	ck_assert_int_eq(btmmu_reclaim(NULL), -EINVAL);
}
END_TEST

START_TEST(version_matches_header)
{
	char buf[64];

	ck_assert_uint_eq(btmmu_version(), BTMMU_VERSION_NUMBER);
	ck_assert_str_eq(btmmu_version_string(), BTMMU_VERSION_STRING);
	snprintf(buf, sizeof(buf), "%d.%d.%d", BTMMU_VERSION_MAJOR, BTMMU_VERSION_MINOR,
		 BTMMU_VERSION_PATCH);
	ck_assert_str_eq(btmmu_version_string(), buf);
}
END_TEST

START_TEST(stats_null)
{
	struct btmmu_stats st = { .size = sizeof(st) };

	fx_open(0, 0);
	ck_assert_int_eq(btmmu_stats_get(NULL, &st), -EINVAL);
	ck_assert_int_eq(btmmu_stats_get(fx.ctx, NULL), -EFAULT);
	fx_close();
}
END_TEST

START_TEST(stats_size_too_small)
{
	struct btmmu_stats st = { .size = 2 };

	fx_open(0, 0);
	ck_assert_int_eq(btmmu_stats_get(fx.ctx, &st), -EINVAL);
	fx_close();
}
END_TEST

/* An older caller's shorter struct: nothing past its size is written. */
START_TEST(stats_short_struct)
{
	struct {
		struct btmmu_stats st;
		uint64_t canary;
	} s;

	fx_open(0, 0);
	memset(&s, 0xa5, sizeof(s));
	s.st.size = offsetof(struct btmmu_stats, faults_retry);
	ck_assert_int_eq(btmmu_stats_get(fx.ctx, &s.st), 0);
	ck_assert_uint_eq(s.st.faults, 0);
	ck_assert_uint_eq(s.st.faults_retry, UINT64_C(0xa5a5a5a5a5a5a5a5));
	ck_assert_uint_eq(s.canary, UINT64_C(0xa5a5a5a5a5a5a5a5));
	fx_close();
}
END_TEST

/* A newer caller's longer struct: the unknown tail reads as zero, size says what was filled. */
START_TEST(stats_long_struct)
{
	struct {
		struct btmmu_stats st;
		uint64_t future;
	} s;

	fx_open(0, 0);
	memset(&s, 0xa5, sizeof(s));
	s.st.size = sizeof(s);
	ck_assert_int_eq(btmmu_stats_get(fx.ctx, &s.st), 0);
	ck_assert_uint_eq(s.st.size, sizeof(struct btmmu_stats));
	ck_assert_uint_eq(s.future, 0);
	ck_assert_uint_eq(s.st.faults, 0);
	fx_close();
}
END_TEST

START_TEST(stats_budget_from_max_map_count)
{
	struct btmmu_stats st;

	fx_open(0, 0);
	st = fx_stats();
	ck_assert_uint_gt(st.max_mappings, 0);
	ck_assert_uint_lt(st.max_mappings, 1u << 20);
	ck_assert_uint_ge(st.live_mappings, 2); /* the RAM's own mappings */
	fx_close();
}
END_TEST

static void prev_handler(int sig)
{
	(void)sig;
}

/* The handler goes in at open and the previous one comes back at close. */
START_TEST(handler_installed_and_restored)
{
	struct sigaction sa, now;

	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = prev_handler;
	ck_assert_int_eq(sigaction(SIGSEGV, &sa, NULL), 0);
	fx_open(0, 0);
	ck_assert_int_eq(sigaction(SIGSEGV, NULL, &now), 0);
	ck_assert(now.sa_flags & SA_SIGINFO);
	ck_assert(now.sa_flags & SA_NODEFER);
	fx_close();
	ck_assert_int_eq(sigaction(SIGSEGV, NULL, &now), 0);
	ck_assert(!(now.sa_flags & SA_SIGINFO));
	ck_assert_ptr_eq((void *)now.sa_handler, (void *)prev_handler);
}
END_TEST

START_TEST(handler_not_installed_with_flag)
{
	struct sigaction now;

	fx_open(0, BTMMU_OPEN_NO_HANDLER);
	ck_assert_int_eq(sigaction(SIGSEGV, NULL, &now), 0);
	ck_assert_ptr_eq((void *)now.sa_handler, (void *)SIG_DFL);
	fx_close();
}
END_TEST

/* Two contexts at once share the handler and the mapping budget. */
START_TEST(two_contexts)
{
	struct btmmu_open_args oa = { .size = sizeof(oa) };
	struct btmmu_stats s1 = { .size = sizeof(s1) }, s2 = { .size = sizeof(s2) };
	struct btmmu *a, *b;

	ck_assert_int_eq(btmmu_open(&oa, &a), 0);
	ck_assert_int_eq(btmmu_open(&oa, &b), 0);
	ck_assert_int_eq(btmmu_stats_get(a, &s1), 0);
	ck_assert_int_eq(btmmu_stats_get(b, &s2), 0);
	ck_assert_uint_lt(s2.max_mappings, s1.max_mappings);
	ck_assert_int_eq(btmmu_close(a), 0);
	ck_assert_int_eq(btmmu_close(b), 0);
}
END_TEST

/* The reclaim thread's policy: SCHED_IDLE while idle, and never the caller's. */
static int thread_policy(pid_t tid)
{
	return sched_getscheduler(tid);
}

/* The policy of the context's reclaim thread: the one task that is not us. */
static int reaper_policy(pid_t self)
{
	int policy = -1;
	DIR *d = opendir("/proc/self/task");
	struct dirent *de;

	ck_assert_ptr_nonnull(d);
	while ((de = readdir(d))) {
		pid_t tid = (pid_t)atoi(de->d_name);

		if (tid > 0 && tid != self)
			policy = thread_policy(tid);
	}
	closedir(d);
	return policy;
}

START_TEST(reaper_policy_not_leaked)
{
	struct sched_param prio = { .sched_priority = 0 };
	pid_t self = (pid_t)syscall(SYS_gettid);
	int i, p = -1;

	ck_assert_int_eq(sched_setscheduler(0, SCHED_BATCH, &prio), 0);
	fx_open(0, 0);
	fx_space(32, 12, 0);
	for (i = 0; i < 8; i++) {
		ck_assert_int_eq(fx_map(0, 0x1000, 0x1000, 0x1000, BTMMU_PROT_READ, 0), 1);
		ck_assert_int_eq(btmmu_flush(fx.sp, 1, 0), 0);
	}
	ck_assert_int_ge(btmmu_reclaim(fx.ctx), 0);
	/* The caller keeps its own policy... */
	ck_assert_int_eq(thread_policy(0), SCHED_BATCH);
	/* ...and the reclaim thread settles at SCHED_IDLE (not SCHED_BATCH). */
	for (i = 0; i < 200 && (p = reaper_policy(self)) != SCHED_IDLE; i++)
		usleep(5000);
	ck_assert_int_eq(p, SCHED_IDLE);
	fx_close();
	ck_assert_int_eq(thread_policy(0), SCHED_BATCH);
}
END_TEST

/* The capability query says what the user backend does and how it sized itself. */
START_TEST(backend_info_user)
{
	struct btmmu_backend_info bi;

	fx_open_limited(0, 0, 0, 0);
	memset(&bi, 0xff, sizeof(bi));
	bi.size = sizeof(bi);
	ck_assert_int_eq(btmmu_backend_info(fx.ctx, &bi), 0);
	ck_assert_uint_eq(bi.size, sizeof(bi));
	ck_assert_str_eq(bi.name, btmmu_backend_name(fx.ctx));
	ck_assert_str_eq(bi.name, "user");
	/* x86-64 and aarch64 hosts map exec-only entries readable. */
	ck_assert_uint_eq(bi.flags, BTMMU_INFO_MAPPINGS);
	ck_assert_uint_eq(bi.capacity_from, BTMMU_CAPACITY_MAP_COUNT);
	ck_assert_uint_eq(bi.max_mappings, fx_stats().max_mappings);
	ck_assert_uint_ge(bi.max_entries, 16);
	ck_assert_uint_eq(bi.max_window_bits, BTMMU_MAX_WINDOW_BITS);
	ck_assert_uint_eq(bi.host_page_shift, (unsigned)__builtin_ctzl((unsigned long)sysconf(_SC_PAGESIZE)));
	fx_close();

	fx_open_limited(0, 0, 1000, 64);
	bi.size = sizeof(bi);
	ck_assert_int_eq(btmmu_backend_info(fx.ctx, &bi), 0);
	ck_assert_uint_eq(bi.capacity_from,
			  BTMMU_CAPACITY_ASKED_MAPPINGS | BTMMU_CAPACITY_ASKED_ENTRIES);
	ck_assert_uint_eq(bi.max_mappings, 1000);
	ck_assert_uint_eq(bi.max_entries, 64);
	/* An older, smaller struct gets only what it knows. */
	memset(&bi, 0xee, sizeof(bi));
	bi.size = offsetof(struct btmmu_backend_info, capacity_from);
	ck_assert_int_eq(btmmu_backend_info(fx.ctx, &bi), 0);
	ck_assert_uint_eq(bi.size, offsetof(struct btmmu_backend_info, capacity_from));
	ck_assert_uint_eq(bi.capacity_from, 0xeeeeeeeeu);
	fx_close();
}
END_TEST

START_TEST(backend_info_bad_args)
{
	struct btmmu_backend_info bi = { .size = sizeof(bi) };

	ck_assert_int_eq(btmmu_backend_info(NULL, &bi), -EINVAL);
	fx_open(0, 0);
	ck_assert_int_eq(btmmu_backend_info(fx.ctx, NULL), -EFAULT);
	bi.size = 2;
	ck_assert_int_eq(btmmu_backend_info(fx.ctx, &bi), -EINVAL);
	bi.size = (size_t)1 << 40;
	ck_assert_int_eq(btmmu_backend_info(fx.ctx, &bi), -E2BIG);
	fx_close();
}
END_TEST

/* A garbage size field is -E2BIG, not a huge copy or a huge zeroing. */
START_TEST(huge_struct_sizes_refused)
{
	struct btmmu_open_args oa = { .size = (size_t)1 << 40 };
	struct btmmu_stats st = { .size = 4097 };
	struct btmmu_view_info vi = { .size = SIZE_MAX };
	struct btmmu_ram_args ra = { .size = 8192, .len = 4096, .fd = -1 };
	struct btmmu_space_args sa = { .size = (size_t)-8, .va_bits = 32, .page_shift = 12,
				       .nviews = 1 };
	struct btmmu_space *sp = NULL;
	struct btmmu_ram *ram = NULL;
	struct btmmu *c = NULL;

	ck_assert_int_eq(btmmu_open(&oa, &c), -E2BIG);
	ck_assert_ptr_null(c);
	fx_open(0, 0);
	fx_space(32, 12, 0);
	ck_assert_int_eq(btmmu_stats_get(fx.ctx, &st), -E2BIG);
	ck_assert_uint_eq(st.size, 4097);
	ck_assert_int_eq(btmmu_view_info(fx.sp, 0, &vi), -E2BIG);
	ck_assert_int_eq(btmmu_ram_create(fx.ctx, &ra, &ram), -E2BIG);
	ck_assert_ptr_null(ram);
	ck_assert_int_eq(btmmu_space_create(fx.ctx, &sa, &sp), -E2BIG);
	ck_assert_ptr_null(sp);
	/* A page is still fine when the tail is zero. */
	{
		static unsigned char big[4096];
		struct btmmu_stats *bs = (struct btmmu_stats *)big;

		bs->size = sizeof(big);
		ck_assert_int_eq(btmmu_stats_get(fx.ctx, bs), 0);
		ck_assert_uint_eq(bs->size, sizeof(struct btmmu_stats));
	}
	fx_close();
}
END_TEST

static Suite *context_suite(void)
{
	Suite *s = suite_create("context");
	TCase *tc;

	tc = tcase_create("open");
	tcase_add_test(tc, open_default);
	tcase_add_test(tc, open_null_out);
	tcase_add_test(tc, open_null_args);
	tcase_add_test(tc, open_size_too_small);
	tcase_add_test(tc, open_older_struct);
	tcase_add_test(tc, open_newer_struct_zero_tail);
	tcase_add_test(tc, open_newer_struct_nonzero_tail);
	tcase_add_test(tc, open_unknown_flags);
	tcase_add_test(tc, open_pool_too_big);
	suite_add_tcase(s, tc);

	tc = tcase_create("backend");
	tcase_add_test(tc, open_unknown_backend);
	tcase_add_test(tc, open_backend_by_name);
	tcase_add_test(tc, open_backend_env);
	tcase_add_test(tc, open_backend_arg_beats_env);
	tcase_add_test(tc, backend_name_null);
	suite_add_tcase(s, tc);

	tc = tcase_create("host_page");
	tcase_add_test(tc, open_page_shift_below_real);
	tcase_add_test(tc, open_page_shift_too_big);
	tcase_add_test(tc, open_page_shift_env_garbage);
	tcase_add_test(tc, open_page_shift_simulated);
	tcase_add_test(tc, open_page_shift_env);
	suite_add_tcase(s, tc);

	tc = tcase_create("close");
	tcase_add_test(tc, close_null);
	tcase_add_test(tc, close_busy_ram);
	tcase_add_test(tc, close_busy_space);
	tcase_add_test(tc, reclaim_null);
	tcase_add_test(tc, two_contexts);
	suite_add_tcase(s, tc);

	tc = tcase_create("handler");
	tcase_add_test(tc, handler_installed_and_restored);
	tcase_add_test(tc, handler_not_installed_with_flag);
	suite_add_tcase(s, tc);

	tc = tcase_create("info");
	tcase_add_test(tc, backend_info_user);
	tcase_add_test(tc, backend_info_bad_args);
	tcase_add_test(tc, huge_struct_sizes_refused);
	suite_add_tcase(s, tc);

	tc = tcase_create("reaper");
	tcase_add_test(tc, reaper_policy_not_leaked);
	suite_add_tcase(s, tc);

	tc = tcase_create("stats_version");
	tcase_add_test(tc, version_matches_header);
	tcase_add_test(tc, stats_null);
	tcase_add_test(tc, stats_size_too_small);
	tcase_add_test(tc, stats_short_struct);
	tcase_add_test(tc, stats_long_struct);
	tcase_add_test(tc, stats_budget_from_max_map_count);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	return fx_run(context_suite());
}
