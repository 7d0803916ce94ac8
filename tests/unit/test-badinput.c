/* SPDX-License-Identifier: MIT */
/*
 * Bad input everywhere: every public function of btmmu.h called with bad
 * input, one defect at a time, the other arguments valid, expecting the
 * exact -errno its man page documents (btmmu(7) for the conventions common
 * to all argument structs).
 *
 * Bad input changes nothing. The fixture installs sentinel entries first
 * (pages mapped read-write in two views, one of them GLOBAL, one guest page
 * write-protected in both views, known bytes in guest RAM); after every bad
 * call the counters, generations and bases are as before, each sentinel
 * still reads its bytes through the shadow without a fault and takes a
 * store without one, the protected page still faults on a store, and the out
 * pointer given to a failing call is untouched. Each case then makes the
 * same call without the defect, which succeeds: the case had one defect.
 */
#include <dirent.h>
#include <fcntl.h>
#include <limits.h>
#include <setjmp.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <sys/mman.h>
#include <ucontext.h>
#include <unistd.h>

#include "fixture.h"

/*
 * The tables below write each case as "the valid arguments, then the
 * defect": a designated initializer that overrides an earlier one, on
 * purpose.
 */
#ifdef __clang__
#pragma clang diagnostic ignored "-Winitializer-overrides"
#else
#pragma GCC diagnostic ignored "-Woverride-init"
#endif

#define PG UINT64_C(4096)
#define R BTMMU_PROT_READ
#define RW (BTMMU_PROT_READ | BTMMU_PROT_WRITE)
#define TOP(n) (UINT64_MAX - (n) + 1) /* the last n bytes below 2^64 */
#define BIT(n) (UINT64_C(1) << (n))
#define NELEMS(a) (sizeof(a) / sizeof((a)[0]))

/* Written to out pointers before a call that must fail. */
#define CANARY ((void *)(uintptr_t)0x5ca1ab1e000)

#define GVA_FREE UINT64_C(0x60000)  /* mapped in no view */
#define REMAP_GPA UINT64_C(0x70000) /* known bytes, mapped nowhere */
#define RAM_GPA (UINT64_C(32) << 20) /* a free guest-physical range */
#define RAM_LEN (UINT64_C(1) << 20)
#define MEMFD_LEN (UINT64_C(2) << 20)

/* ------------------------------------------------------------------ */
/* Sentinels and the "nothing changed" check                           */
/* ------------------------------------------------------------------ */

static const struct sentinel {
	unsigned view;
	uint64_t gva, gpa;
	uint32_t flags;
	bool wprot; /* btmmu_protect(READ) on its guest page */
} sentinels[] = {
	{ 0, 0x10000, 0x10000, 0, false },
	{ 1, 0x20000, 0x21000, BTMMU_MAP_GLOBAL, false },
	{ 0, 0x30000, 0x30000, 0, true },
	{ 1, 0x30000, 0x30000, 0, true },
	{ 1, 0x40000, 0x50000, 0, false },
};

/* The known byte at guest-physical gpa. */
static uint8_t pat(uint64_t gpa)
{
	return (uint8_t)(gpa * 131 + (gpa >> 12) * 7 + 1);
}

static uint32_t pat32(uint64_t gpa)
{
	uint8_t b[4] = { pat(gpa), pat(gpa + 1), pat(gpa + 2), pat(gpa + 3) };
	uint32_t v;

	memcpy(&v, b, sizeof(v));
	return v;
}

static void fill_page(uint64_t gpa)
{
	uint64_t i;

	for (i = 0; i < PG; i++)
		fx.host[gpa + i] = pat(gpa + i);
}

struct snap {
	struct btmmu_stats st;
	struct btmmu_view_info vi[2];
};

static void snap_take(struct snap *s)
{
	unsigned v;

	memset(s, 0, sizeof(*s));
	s->st = fx_stats();
	for (v = 0; v < 2; v++) {
		s->vi[v].size = sizeof(s->vi[v]);
		ck_assert_int_eq(btmmu_view_info(fx.sp, v, &s->vi[v]), 0);
	}
}

#define SAME_ST(f)                                                                        \
	ck_assert_msg(a.st.f == b->st.f, "%s: stats." #f " changed: %llu -> %llu", what, \
		      (unsigned long long)b->st.f, (unsigned long long)a.st.f)
#define SAME_VI(v, f)                                                                     \
	ck_assert_msg(a.vi[v].f == b->vi[v].f, "%s: view %u " #f " changed: %llu -> %llu", \
		      what, v, (unsigned long long)b->vi[v].f, (unsigned long long)a.vi[v].f)

/*
 * Nothing changed since b, but extra_faults dispatched faults (the case's
 * own). Then every sentinel is accessed through the shadow.
 */
static void check_intact(const struct snap *b, unsigned extra_faults, const char *what)
{
	static const unsigned offs[] = { 0, 1, 0x7ff, 0xffd };
	struct btmmu_stats s;
	struct snap a;
	unsigned i, j, v, nprot = 0;

	snap_take(&a);
	SAME_ST(live_entries);
	SAME_ST(live_mappings);
	SAME_ST(fills);
	SAME_ST(install_calls);
	SAME_ST(unmaps);
	SAME_ST(flushes);
	SAME_ST(flushes_nonglobal);
	SAME_ST(evictions);
	SAME_ST(protects);
	SAME_ST(reclaims);
	SAME_ST(sync_reclaims);
	SAME_ST(clear_fallbacks);
	SAME_ST(max_mappings);
	ck_assert_msg(a.st.faults == b->st.faults + extra_faults,
		      "%s: %llu faults dispatched, expected %u", what,
		      (unsigned long long)(a.st.faults - b->st.faults), extra_faults);
	for (v = 0; v < 2; v++) {
		SAME_VI(v, base);
		SAME_VI(v, gen);
		SAME_VI(v, live_entries);
		SAME_VI(v, fills);
	}

	fx.policy = FX_SLOW;
	for (i = 0; i < NELEMS(sentinels); i++) {
		const struct sentinel *t = &sentinels[i];
		uintptr_t h = fx_base(t->view) + t->gva;

		/* Check asserts cost a pipe write each: compare first, assert once. */
		for (j = 0; j < PG && fx.host[t->gpa + j] == pat(t->gpa + j); j++)
			;
		ck_assert_msg(j == PG, "%s: guest RAM %#llx changed", what,
			      (unsigned long long)(t->gpa + j));
		for (j = 0; j < NELEMS(offs); j++) {
			unsigned o4 = offs[j] & ~3u;
			uint8_t v8 = (uint8_t)~pat(t->gpa + offs[j]);
			uint32_t v32 = ~pat32(t->gpa + o4);

			ck_assert_msg(btmmu_load8(h + offs[j], &v8) == 0,
				      "%s: sentinel %u (view %u gva %#llx): load8 took the slow path",
				      what, i, t->view, (unsigned long long)(t->gva + offs[j]));
			ck_assert_msg(v8 == pat(t->gpa + offs[j]), "%s: sentinel %u: load8 read %#x",
				      what, i, v8);
			ck_assert_msg(btmmu_load32(h + o4, &v32) == 0,
				      "%s: sentinel %u: load32 took the slow path", what, i);
			ck_assert_msg(v32 == pat32(t->gpa + o4), "%s: sentinel %u: load32 read %#x",
				      what, i, v32);
		}
		if (!t->wprot)
			ck_assert_msg(btmmu_store8(h + 0x123, pat(t->gpa + 0x123)) == 0,
				      "%s: sentinel %u: store took the slow path", what, i);
	}
	s = fx_stats();
	ck_assert_msg(s.faults == a.st.faults, "%s: a sentinel access faulted", what);

	for (i = 0; i < NELEMS(sentinels); i++) {
		const struct sentinel *t = &sentinels[i];
		unsigned n = fx.nfaults;

		if (!t->wprot)
			continue;
		nprot++;
		ck_assert_msg(btmmu_store32(fx_base(t->view) + t->gva + 0x40, 0xdeadbeef) == 1,
			      "%s: sentinel %u: store to the write-protected page went through",
			      what, i);
		ck_assert_msg(fx.nfaults == n + 1 && (fx.last.flags & BTMMU_FAULT_PROTECTED),
			      "%s: sentinel %u: store did not fault as PROTECTED", what, i);
		ck_assert_msg(fx.host[t->gpa + 0x40] == pat(t->gpa + 0x40),
			      "%s: sentinel %u: protected page written", what, i);
	}
	s = fx_stats();
	ck_assert_uint_eq(s.faults, a.st.faults + nprot);
}

static void expect(const char *what, int ret, int err)
{
	ck_assert_msg(ret == err, "%s: returned %d (%s), documented %d (%s)", what, ret,
		      ret < 0 ? strerror(-ret) : "success", err, err < 0 ? strerror(-err) : "success");
}

/* Process-wide things a failing create call must not leave behind. */
struct res {
	unsigned fds, maps, threads;
	struct sigaction segv, bus;
};

static unsigned count_dir(const char *path)
{
	DIR *d = opendir(path);
	struct dirent *e;
	unsigned n = 0;

	ck_assert_ptr_nonnull(d);
	while ((e = readdir(d)))
		n += e->d_name[0] != '.';
	closedir(d);
	return n;
}

static unsigned count_lines(const char *path)
{
	FILE *f = fopen(path, "re");
	unsigned n = 0;
	int c;

	ck_assert_ptr_nonnull(f);
	while ((c = getc(f)) != EOF)
		n += c == '\n';
	fclose(f);
	return n;
}

/* Built with ASan (GCC or clang), or run under valgrind ($BTMMU_TEST_VALGRIND)? */
static int sanitized(void)
{
#if defined(__SANITIZE_ADDRESS__)
	return 1;
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
	return 1;
#endif
#endif
	return fx_valgrind();
}

static void res_take(struct res *r)
{
	r->fds = count_dir("/proc/self/fd");
	r->maps = count_lines("/proc/self/maps");
	r->threads = count_dir("/proc/self/task");
	sigaction(SIGSEGV, NULL, &r->segv);
	sigaction(SIGBUS, NULL, &r->bus);
}

static void res_same(const struct res *b, const char *what)
{
	struct res a;

	res_take(&a);
	ck_assert_msg(a.fds == b->fds, "%s: %u fds before, %u after", what, b->fds, a.fds);
	/* Sanitizer runtimes map memory of their own as they go: not counted. */
	if (!sanitized())
		ck_assert_msg(a.maps == b->maps, "%s: %u host mappings before, %u after", what,
			      b->maps, a.maps);
	ck_assert_msg(a.threads == b->threads, "%s: %u threads before, %u after", what,
		      b->threads, a.threads);
	ck_assert_msg(a.segv.sa_sigaction == b->segv.sa_sigaction &&
			      a.segv.sa_flags == b->segv.sa_flags,
		      "%s: SIGSEGV action changed", what);
	ck_assert_msg(a.bus.sa_sigaction == b->bus.sa_sigaction, "%s: SIGBUS action changed",
		      what);
}

/* ------------------------------------------------------------------ */
/* Fixture                                                             */
/* ------------------------------------------------------------------ */

/* Spaces a case may use besides the fixture's (created before the snapshot). */
enum sk { SP_FX, SP_NULL, SP_VA64, SP_SE48, SP_16V, SP_N };
static struct btmmu_space *extra_sp[SP_N];
static struct btmmu_ram *ram2;	/* [16 MiB, 17 MiB): right after the fixture's RAM */
static struct btmmu *ctx2;	/* an idle second context */
static int extra_fds[2] = { -1, -1 };

static struct btmmu_space *space_of(enum sk k)
{
	static const struct btmmu_space_args args[SP_N] = {
		[SP_VA64] = { .size = sizeof(struct btmmu_space_args), .va_bits = 64,
			      .page_shift = 12, .nviews = 2, .ring = 1 },
		[SP_SE48] = { .size = sizeof(struct btmmu_space_args), .va_bits = 48,
			      .page_shift = 12, .nviews = 2, .ring = 1,
			      .flags = BTMMU_SPACE_SIGN_EXTEND },
		[SP_16V] = { .size = sizeof(struct btmmu_space_args), .va_bits = 32,
			     .page_shift = 12, .nviews = BTMMU_MAX_VIEWS, .ring = 1 },
	};

	if (k == SP_FX)
		return fx.sp;
	if (k == SP_NULL)
		return NULL;
	if (!extra_sp[k]) {
		struct btmmu_space_args a = args[k];

		/* valgrind has no room for a 2^46 window: the checks are the same */
		if (fx_valgrind() && a.va_bits > 32)
			a.window_bits = 32;
		ck_assert_int_eq(btmmu_space_create(fx.ctx, &a, &extra_sp[k]), 0);
	}
	return extra_sp[k];
}

static void add_ram2(void)
{
	struct btmmu_ram_args a = { .size = sizeof(a), .gpa = FX_RAM_SIZE, .len = RAM_LEN,
				    .fd = -1 };

	ck_assert_int_eq(btmmu_ram_create(fx.ctx, &a, &ram2), 0);
}

static void open_ctx2(void)
{
	struct btmmu_open_args oa = { .size = sizeof(oa), .flags = BTMMU_OPEN_NO_THREAD };

	ck_assert_int_eq(btmmu_open(&oa, &ctx2), 0);
}

static void setup(void)
{
	unsigned i;

	fx_open_limited(0, 0, 0, 4096); /* a small pool: cheaper per case */
	fx_space(32, 12, 0);
	fx.policy = FX_SLOW;
	memset(extra_sp, 0, sizeof(extra_sp));
	ram2 = NULL;
	ctx2 = NULL;
	extra_fds[0] = extra_fds[1] = -1;
	for (i = 0; i < NELEMS(sentinels); i++) {
		const struct sentinel *t = &sentinels[i];

		fill_page(t->gpa);
		ck_assert_int_eq(fx_map(t->view, t->gva, t->gpa, PG, RW, t->flags), 1);
	}
	fill_page(REMAP_GPA);
	ck_assert_int_eq(btmmu_protect(fx.ctx, 0x30000, PG, R), 2);
	/* Generations: view 0 at 2, view 1 at 3 (btmmu_map_batch's stale cases). */
	ck_assert_int_eq(btmmu_unmap(fx.sp, 1, 0x80000, PG), 0);
	ck_assert_int_eq(btmmu_unmap(fx.sp, 2, 0x80000, PG), 0);
	ck_assert_int_eq(btmmu_unmap(fx.sp, 2, 0x80000, PG), 0);
}

static void teardown(void)
{
	unsigned k;

	for (k = 0; k < SP_N; k++) {
		if (extra_sp[k])
			ck_assert_int_eq(btmmu_space_destroy(extra_sp[k]), 0);
	}
	if (ram2)
		ck_assert_int_eq(btmmu_ram_destroy(ram2), 0);
	if (ctx2)
		ck_assert_int_eq(btmmu_close(ctx2), 0);
	for (k = 0; k < 2; k++) {
		if (extra_fds[k] >= 0)
			close(extra_fds[k]);
	}
	fx_close();
}

/* The fixture is what the checks assume. */
START_TEST(fixture_sanity)
{
	struct snap b;
	uint32_t v;

	snap_take(&b);
	ck_assert_uint_eq(b.st.live_entries, NELEMS(sentinels));
	ck_assert_uint_eq(b.vi[0].gen, 2);
	ck_assert_uint_eq(b.vi[1].gen, 3);
	check_intact(&b, 0, "fixture");
	/* The GLOBAL sentinel survives a non-global flush of its view, the others don't. */
	ck_assert_int_eq(btmmu_flush(fx.sp, 2, BTMMU_FLUSH_NONGLOBAL), 0);
	ck_assert_int_eq(btmmu_load32(fx_base(1) + 0x20000, &v), 0);
	ck_assert_int_eq(btmmu_load32(fx_base(1) + 0x40000, &v), 1);
}
END_TEST

/* ------------------------------------------------------------------ */
/* Size-prefixed structs                                               */
/* ------------------------------------------------------------------ */

enum szk {
	SZ_OK,		/* sizeof the struct */
	SZ_0,
	SZ_1,
	SZ_SMALL,	/* sizeof(size_t) - 1 */
	SZ_TAIL,	/* sizeof + 8, the last of those bytes not zero */
	SZ_PAGE,	/* 4097, zeroes after the struct */
	SZ_MAX,		/* SIZE_MAX */
};

static unsigned char argbuf[8192] __attribute__((aligned(64)));

/* The size field k stands for, for a struct of n bytes. */
static size_t size_of(enum szk k, size_t n)
{
	switch (k) {
	case SZ_OK:
		return n;
	case SZ_0:
		return 0;
	case SZ_1:
		return 1;
	case SZ_SMALL:
		return sizeof(size_t) - 1;
	case SZ_TAIL:
		return n + 8;
	case SZ_PAGE:
		return 4097;
	case SZ_MAX:
		return SIZE_MAX;
	}
	return n;
}

/* A copy of the n-byte struct a in argbuf, its size field as k says. */
static void *sized(const void *a, size_t n, enum szk k)
{
	size_t sz = size_of(k, n);

	memset(argbuf, 0, sizeof(argbuf));
	memcpy(argbuf, a, n);
	if (k == SZ_TAIL)
		argbuf[n + 7] = 1;
	memcpy(argbuf, &sz, sizeof(sz));
	return argbuf;
}

#define SIZE_CASES(ok)                                                       \
	{ "size_0", .sz = SZ_0, ok, .err = -EINVAL },                        \
	{ "size_1", .sz = SZ_1, ok, .err = -EINVAL },                        \
	{ "size_below_size_t", .sz = SZ_SMALL, ok, .err = -EINVAL },         \
	{ "size_larger_nonzero_tail", .sz = SZ_TAIL, ok, .err = -E2BIG },    \
	{ "size_above_4096", .sz = SZ_PAGE, ok, .err = -E2BIG },             \
	{ "size_max", .sz = SZ_MAX, ok, .err = -E2BIG }

/* ------------------------------------------------------------------ */
/* btmmu_open                                                          */
/* ------------------------------------------------------------------ */

#define OPEN_OK .a = { .fault_fn = fx_callback }

static const struct open_case {
	const char *name;
	enum szk sz;
	bool null_args, null_out;
	const char *env_backend, *env_hps;
	struct btmmu_open_args a;
	int err;
} open_cases[] = {
	{ "args_null", .null_args = true, OPEN_OK, .err = -EFAULT },
	{ "out_null", .null_out = true, OPEN_OK, .err = -EFAULT },
	SIZE_CASES(OPEN_OK),
	{ "flags_unknown_bit", OPEN_OK, .a.flags = 0x4, .err = -EINVAL },
	{ "flags_top_bit", OPEN_OK, .a.flags = 0x80000000u, .err = -EINVAL },
	{ "host_page_shift_1", OPEN_OK, .a.host_page_shift = 1, .err = -EINVAL },
	{ "host_page_shift_below_real", OPEN_OK, .a.host_page_shift = 11, .err = -EINVAL },
	{ "host_page_shift_17", OPEN_OK, .a.host_page_shift = 17, .err = -EINVAL },
	{ "host_page_shift_32", OPEN_OK, .a.host_page_shift = 32, .err = -EINVAL },
	{ "host_page_shift_uint_max", OPEN_OK, .a.host_page_shift = UINT32_MAX, .err = -EINVAL },
	{ "env_host_page_shift_letters", OPEN_OK, .env_hps = "abc", .err = -EINVAL },
	{ "env_host_page_shift_suffix", OPEN_OK, .env_hps = "14k", .err = -EINVAL },
	{ "env_host_page_shift_hex", OPEN_OK, .env_hps = "0x10", .err = -EINVAL },
	{ "env_host_page_shift_trailing_space", OPEN_OK, .env_hps = "14 ", .err = -EINVAL },
	{ "env_host_page_shift_leading_space", OPEN_OK, .env_hps = " 14", .err = -EINVAL },
	{ "env_host_page_shift_plus_sign", OPEN_OK, .env_hps = "+14", .err = -EINVAL },
	{ "env_host_page_shift_negative", OPEN_OK, .env_hps = "-1", .err = -EINVAL },
	{ "env_host_page_shift_below_real", OPEN_OK, .env_hps = "11", .err = -EINVAL },
	{ "env_host_page_shift_17", OPEN_OK, .env_hps = "17", .err = -EINVAL },
	{ "env_host_page_shift_2_64_plus_14", OPEN_OK, .env_hps = "18446744073709551630",
	  .err = -EINVAL },
	{ "max_entries_2_24_plus_1", OPEN_OK, .a.max_entries = BIT(24) + 1, .err = -EINVAL },
	{ "max_entries_max", OPEN_OK, .a.max_entries = UINT64_MAX, .err = -EINVAL },
	{ "backend_unknown", OPEN_OK, .a.backend = "nonesuch", .err = -ENOENT },
	{ "backend_wrong_case", OPEN_OK, .a.backend = "User", .err = -ENOENT },
	{ "backend_trailing_space", OPEN_OK, .a.backend = "user ", .err = -ENOENT },
	{ "env_backend_unknown", OPEN_OK, .env_backend = "nonesuch", .err = -ENOENT },
};

START_TEST(open_bad)
{
	const struct open_case *c = &open_cases[_i];
	struct btmmu_open_args ok = { .size = sizeof(ok), .fault_fn = fx_callback };
	struct btmmu *out = CANARY, *ctx;
	struct btmmu_open_args a = c->a;
	struct snap b;
	struct res r;
	int ret;

	a.size = sizeof(a);
	if (c->env_backend)
		ck_assert_int_eq(setenv("BTMMU_BACKEND", c->env_backend, 1), 0);
	if (c->env_hps)
		ck_assert_int_eq(setenv("BTMMU_HOST_PAGE_SHIFT", c->env_hps, 1), 0);
	res_take(&r);
	snap_take(&b);
	ret = btmmu_open(c->null_args ? NULL : sized(&a, sizeof(a), c->sz),
			 c->null_out ? NULL : &out);
	expect(c->name, ret, c->err);
	ck_assert_ptr_eq(out, CANARY);
	res_same(&r, c->name);
	check_intact(&b, 0, c->name);
	unsetenv("BTMMU_BACKEND");
	unsetenv("BTMMU_HOST_PAGE_SHIFT");
	ck_assert_int_eq(btmmu_open(&ok, &ctx), 0);
	ck_assert_int_eq(btmmu_close(ctx), 0);
}
END_TEST

/* ------------------------------------------------------------------ */
/* btmmu_close, btmmu_reclaim, btmmu_flush_all, btmmu_backend_name    */
/* ------------------------------------------------------------------ */

START_TEST(close_null)
{
	struct snap b;

	snap_take(&b);
	expect("close_null", btmmu_close(NULL), -EINVAL);
	check_intact(&b, 0, "close_null");
}
END_TEST

/* The fixture's context has a space and a RAM range: refused, still usable. */
START_TEST(close_busy)
{
	struct snap b;

	snap_take(&b);
	expect("close_busy", btmmu_close(fx.ctx), -EBUSY);
	check_intact(&b, 0, "close_busy");
	ck_assert_int_eq(fx_map(0, GVA_FREE, GVA_FREE, PG, RW, 0), 1);
}
END_TEST

START_TEST(close_busy_ram_only)
{
	struct btmmu_ram_args ra = { .size = sizeof(ra), .len = RAM_LEN, .fd = -1 };
	struct btmmu_ram *ram;
	struct snap b;
	void *host;

	open_ctx2();
	ck_assert_int_eq(btmmu_ram_create(ctx2, &ra, &ram), 0);
	snap_take(&b);
	expect("close_busy_ram_only", btmmu_close(ctx2), -EBUSY);
	check_intact(&b, 0, "close_busy_ram_only");
	ck_assert_int_eq(btmmu_ram_host(ram, &host), 0);
	ck_assert_int_eq(btmmu_protect(ctx2, 0, PG, R), 0);
	ck_assert_int_eq(btmmu_ram_destroy(ram), 0);
	ck_assert_int_eq(btmmu_close(ctx2), 0);
	ctx2 = NULL;
}
END_TEST

START_TEST(close_busy_space_only)
{
	struct btmmu_space_args sa = { .size = sizeof(sa), .va_bits = 32, .page_shift = 12,
				       .nviews = 1, .ring = 1 };
	struct btmmu_space *sp;
	struct snap b;
	uintptr_t base;

	open_ctx2();
	ck_assert_int_eq(btmmu_space_create(ctx2, &sa, &sp), 0);
	snap_take(&b);
	expect("close_busy_space_only", btmmu_close(ctx2), -EBUSY);
	check_intact(&b, 0, "close_busy_space_only");
	ck_assert_int_eq(btmmu_view_base(sp, 0, &base), 0);
	ck_assert_int_eq(btmmu_flush(sp, 1, 0), 0);
	ck_assert_int_eq(btmmu_space_destroy(sp), 0);
	ck_assert_int_eq(btmmu_close(ctx2), 0);
	ctx2 = NULL;
}
END_TEST

START_TEST(reclaim_null)
{
	struct snap b;

	snap_take(&b);
	expect("reclaim_null", btmmu_reclaim(NULL), -EINVAL);
	check_intact(&b, 0, "reclaim_null");
	ck_assert_int_ge(btmmu_reclaim(fx.ctx), 0);
}
END_TEST

START_TEST(flush_all_null)
{
	struct snap b;

	snap_take(&b);
	expect("flush_all_null", btmmu_flush_all(NULL), -EINVAL);
	check_intact(&b, 0, "flush_all_null");
	ck_assert_int_eq(btmmu_flush_all(fx.ctx), 0);
}
END_TEST

START_TEST(backend_name_null)
{
	struct snap b;

	snap_take(&b);
	ck_assert_ptr_null(btmmu_backend_name(NULL));
	check_intact(&b, 0, "backend_name_null");
	ck_assert_str_eq(btmmu_backend_name(fx.ctx), "user");
}
END_TEST

/* ------------------------------------------------------------------ */
/* Out structs: btmmu_stats_get, btmmu_backend_info, btmmu_view_info  */
/* ------------------------------------------------------------------ */

enum outk { OUT_STATS, OUT_BACKEND, OUT_VIEW };

struct out_case {
	const char *name;
	bool null_handle, null_out;
	enum sk sk;
	unsigned view;
	enum szk sz;
	int err; /* 0: accepted (SZ_TAIL: the tail is the caller's, zeroed) */
};

#define OUT_COMMON(h)                                                         \
	{ h, .null_handle = true, .err = -EINVAL },                           \
	{ "out_null", .null_out = true, .err = -EFAULT },                     \
	{ "size_0", .sz = SZ_0, .err = -EINVAL },                             \
	{ "size_1", .sz = SZ_1, .err = -EINVAL },                             \
	{ "size_below_size_t", .sz = SZ_SMALL, .err = -EINVAL },              \
	{ "size_above_4096", .sz = SZ_PAGE, .err = -E2BIG },                  \
	{ "size_max", .sz = SZ_MAX, .err = -E2BIG },                          \
	{ "size_larger_tail_zeroed", .sz = SZ_TAIL, .err = 0 }

static const struct out_case stats_cases[] = { OUT_COMMON("ctx_null") };
static const struct out_case binfo_cases[] = { OUT_COMMON("ctx_null") };
static const struct out_case vinfo_cases[] = {
	OUT_COMMON("space_null"),
	{ "view_eq_nviews", .view = 2, .err = -EINVAL },
	{ "view_eq_max_views", .view = BTMMU_MAX_VIEWS, .err = -EINVAL },
	{ "view_uint_max", .view = UINT_MAX, .err = -EINVAL },
	{ "view_eq_max_views_16_view_space", .sk = SP_16V, .view = BTMMU_MAX_VIEWS,
	  .err = -EINVAL },
};

static unsigned char outbuf[8192], outcopy[8192];

static int out_call(enum outk k, const struct out_case *c, struct btmmu_space *sp, void *buf)
{
	switch (k) {
	case OUT_STATS:
		return btmmu_stats_get(c->null_handle ? NULL : fx.ctx, buf);
	case OUT_BACKEND:
		return btmmu_backend_info(c->null_handle ? NULL : fx.ctx, buf);
	case OUT_VIEW:
		return btmmu_view_info(c->null_handle ? NULL : sp, c->view, buf);
	}
	return -ENOSYS;
}

static void out_case_run(enum outk k, const struct out_case *c)
{
	static const size_t lib[] = { sizeof(struct btmmu_stats),
				      sizeof(struct btmmu_backend_info),
				      sizeof(struct btmmu_view_info) };
	struct btmmu_space *sp = space_of(c->sk);
	size_t n = lib[k], sz;
	struct snap b;
	unsigned i;

	memset(outbuf, 0xa5, sizeof(outbuf)); /* a non-zero tail, for SZ_TAIL */
	sz = size_of(c->sz, n);
	memcpy(outbuf, &sz, sizeof(sz));
	memcpy(outcopy, outbuf, sizeof(outbuf));
	snap_take(&b);
	expect(c->name, out_call(k, c, sp, c->null_out ? NULL : outbuf), c->err);
	if (c->err) {
		ck_assert_msg(!memcmp(outbuf, outcopy, sizeof(outbuf)),
			      "%s: the struct was written", c->name);
	} else {
		memcpy(&sz, outbuf, sizeof(sz));
		ck_assert_uint_eq(sz, n);
		for (i = 0; i < 8; i++)
			ck_assert_msg(!outbuf[n + i], "%s: byte %zu past the struct not zeroed",
				      c->name, n + i);
		ck_assert_uint_eq(outbuf[n + 8], 0xa5);
	}
	check_intact(&b, 0, c->name);
	memset(outbuf, 0, sizeof(outbuf));
	memcpy(outbuf, &n, sizeof(n));
	ck_assert_int_eq(out_call(k, &(struct out_case){ .sk = c->sk }, sp ? sp : fx.sp, outbuf),
			 0);
}

START_TEST(stats_get_bad) { out_case_run(OUT_STATS, &stats_cases[_i]); }
END_TEST
START_TEST(backend_info_bad) { out_case_run(OUT_BACKEND, &binfo_cases[_i]); }
END_TEST
START_TEST(view_info_bad) { out_case_run(OUT_VIEW, &vinfo_cases[_i]); }
END_TEST

/* ------------------------------------------------------------------ */
/* btmmu_view_base                                                     */
/* ------------------------------------------------------------------ */

static const struct view_base_case {
	const char *name;
	enum sk sk;
	unsigned view;
	bool null_out;
	int err;
} view_base_cases[] = {
	{ "space_null", .sk = SP_NULL, .err = -EINVAL },
	{ "view_eq_nviews", .view = 2, .err = -EINVAL },
	{ "view_eq_max_views", .view = BTMMU_MAX_VIEWS, .err = -EINVAL },
	{ "view_uint_max", .view = UINT_MAX, .err = -EINVAL },
	{ "view_eq_max_views_16_view_space", .sk = SP_16V, .view = BTMMU_MAX_VIEWS,
	  .err = -EINVAL },
	{ "out_null", .null_out = true, .err = -EFAULT },
};

START_TEST(view_base_bad)
{
	const struct view_base_case *c = &view_base_cases[_i];
	struct btmmu_space *sp = space_of(c->sk);
	uintptr_t out = (uintptr_t)CANARY;
	struct snap b;

	snap_take(&b);
	expect(c->name, btmmu_view_base(sp, c->view, c->null_out ? NULL : &out), c->err);
	ck_assert_ptr_eq((void *)out, CANARY);
	check_intact(&b, 0, c->name);
	ck_assert_int_eq(btmmu_view_base(sp ? sp : fx.sp, 0, &out), 0);
}
END_TEST

/* ------------------------------------------------------------------ */
/* btmmu_ram_create, btmmu_ram_destroy, btmmu_ram_host                 */
/* ------------------------------------------------------------------ */

enum fdk {
	FDK_ARG,	/* a.fd as written */
	FDK_MEMFD,	/* a MEMFD_LEN memfd, read-write */
	FDK_RDONLY,	/* that memfd reopened read-only */
	FDK_WRONLY,	/* ...write-only */
	FDK_SEALED,	/* a memfd sealed with F_SEAL_WRITE */
	FDK_PIPE,
	FDK_DEVNULL,	/* a character device, read-write */
	FDK_CLOSED,	/* a descriptor number just closed */
};

static int new_memfd(unsigned flags)
{
	int fd = memfd_create("badinput", MFD_CLOEXEC | flags);

	ck_assert_int_ge(fd, 0);
	ck_assert_int_eq(ftruncate(fd, (off_t)MEMFD_LEN), 0);
	return fd;
}

static int reopen(int fd, int mode)
{
	char path[64];
	int r;

	snprintf(path, sizeof(path), "/proc/self/fd/%d", fd);
	r = open(path, mode | O_CLOEXEC);
	ck_assert_int_ge(r, 0);
	close(fd);
	return r;
}

/* The descriptor of kind k (kept in extra_fds until teardown). */
static int make_fd(enum fdk k, int fd)
{
	int p[2];

	switch (k) {
	case FDK_ARG:
		return fd;
	case FDK_MEMFD:
		return extra_fds[0] = new_memfd(0);
	case FDK_RDONLY:
		return extra_fds[0] = reopen(new_memfd(0), O_RDONLY);
	case FDK_WRONLY:
		return extra_fds[0] = reopen(new_memfd(0), O_WRONLY);
	case FDK_SEALED:
		fd = new_memfd(MFD_ALLOW_SEALING);
		ck_assert_int_eq(fcntl(fd, F_ADD_SEALS, F_SEAL_WRITE), 0);
		return extra_fds[0] = fd;
	case FDK_PIPE:
		ck_assert_int_eq(pipe2(p, O_CLOEXEC), 0);
		extra_fds[1] = p[1];
		return extra_fds[0] = p[0];
	case FDK_DEVNULL:
		fd = open("/dev/null", O_RDWR | O_CLOEXEC);
		ck_assert_int_ge(fd, 0);
		return extra_fds[0] = fd;
	case FDK_CLOSED:
		fd = new_memfd(0);
		close(fd);
		return fd;
	}
	return -1;
}

#define RAM_OK .a = { .gpa = RAM_GPA, .len = RAM_LEN, .fd = -1 }

static const struct ram_case {
	const char *name;
	enum szk sz;
	bool null_ctx, null_args, null_out;
	enum fdk fdk;
	struct btmmu_ram_args a;
	int err;
} ram_cases[] = {
	{ "ctx_null", .null_ctx = true, RAM_OK, .err = -EINVAL },
	{ "args_null", .null_args = true, RAM_OK, .err = -EFAULT },
	{ "out_null", .null_out = true, RAM_OK, .err = -EFAULT },
	SIZE_CASES(RAM_OK),
	{ "flags_1", RAM_OK, .a.flags = 1, .err = -EINVAL },
	{ "flags_top_bit", RAM_OK, .a.flags = 0x80000000u, .err = -EINVAL },
	{ "len_0", RAM_OK, .a.len = 0, .err = -EINVAL },
	{ "len_1k", RAM_OK, .a.len = 1024, .err = -EINVAL },
	{ "len_not_page_multiple", RAM_OK, .a.len = RAM_LEN + 1024, .err = -EINVAL },
	{ "gpa_unaligned", RAM_OK, .a.gpa = RAM_GPA + 1024, .err = -EINVAL },
	{ "gpa_len_wraps", RAM_OK, .a.gpa = TOP(PG), .a.len = 2 * PG, .err = -EINVAL },
	{ "fd_minus_1_offset_not_0", RAM_OK, .a.offset = PG, .err = -EINVAL },
	{ "offset_unaligned", RAM_OK, .fdk = FDK_MEMFD, .a.offset = 1024, .err = -EINVAL },
	{ "offset_len_wraps", RAM_OK, .fdk = FDK_MEMFD, .a.offset = TOP(PG), .a.len = 2 * PG,
	  .err = -EINVAL },
	{ "fd_minus_2", RAM_OK, .a.fd = -2, .err = -EBADF },
	{ "fd_int_min", RAM_OK, .a.fd = INT_MIN, .err = -EBADF },
	{ "fd_int_max_not_open", RAM_OK, .a.fd = INT_MAX, .err = -EBADF },
	{ "fd_closed", RAM_OK, .fdk = FDK_CLOSED, .err = -EBADF },
	{ "fd_pipe", RAM_OK, .fdk = FDK_PIPE, .err = -EINVAL },
	{ "fd_char_device", RAM_OK, .fdk = FDK_DEVNULL, .err = -EINVAL },
	{ "fd_shorter_than_len", RAM_OK, .fdk = FDK_MEMFD, .a.len = 2 * MEMFD_LEN,
	  .err = -EINVAL },
	{ "fd_shorter_than_offset_len", RAM_OK, .fdk = FDK_MEMFD,
	  .a.offset = MEMFD_LEN - RAM_LEN / 2, .err = -EINVAL },
	{ "fd_read_only", RAM_OK, .fdk = FDK_RDONLY, .err = -EACCES },
	{ "fd_write_only", RAM_OK, .fdk = FDK_WRONLY, .err = -EACCES },
	{ "fd_sealed_write", RAM_OK, .fdk = FDK_SEALED, .err = -EPERM },
	{ "overlap_identical", RAM_OK, .a.gpa = 0, .a.len = FX_RAM_SIZE, .err = -EEXIST },
	{ "overlap_first_page", RAM_OK, .a.gpa = 0, .a.len = PG, .err = -EEXIST },
	{ "overlap_last_page", RAM_OK, .a.gpa = FX_RAM_SIZE - PG, .a.len = 2 * PG,
	  .err = -EEXIST },
	{ "overlap_inside", RAM_OK, .a.gpa = PG * 16, .a.len = PG, .err = -EEXIST },
	{ "overlap_superset", RAM_OK, .a.gpa = 0, .a.len = 2 * FX_RAM_SIZE, .err = -EEXIST },
};

START_TEST(ram_create_bad)
{
	const struct ram_case *c = &ram_cases[_i];
	struct btmmu_ram_args ok = { .size = sizeof(ok), .gpa = RAM_GPA, .len = RAM_LEN,
				     .fd = -1 };
	struct btmmu_ram_args a = c->a;
	struct btmmu_ram *out = CANARY, *ram;
	struct snap b;
	struct res r;

	a.size = sizeof(a);
	a.fd = make_fd(c->fdk, a.fd);
	res_take(&r);
	snap_take(&b);
	expect(c->name,
	       btmmu_ram_create(c->null_ctx ? NULL : fx.ctx,
				c->null_args ? NULL : sized(&a, sizeof(a), c->sz),
				c->null_out ? NULL : &out),
	       c->err);
	ck_assert_ptr_eq(out, CANARY);
	res_same(&r, c->name);
	check_intact(&b, 0, c->name);
	ck_assert_int_eq(btmmu_ram_create(fx.ctx, &ok, &ram), 0);
	ck_assert_int_eq(btmmu_ram_destroy(ram), 0);
}
END_TEST

START_TEST(ram_destroy_null)
{
	struct snap b;

	snap_take(&b);
	expect("ram_destroy_null", btmmu_ram_destroy(NULL), -EINVAL);
	check_intact(&b, 0, "ram_destroy_null");
}
END_TEST

START_TEST(ram_host_null_ram)
{
	void *out = CANARY;
	struct snap b;

	snap_take(&b);
	expect("ram_host_null_ram", btmmu_ram_host(NULL, &out), -EINVAL);
	ck_assert_ptr_eq(out, CANARY);
	check_intact(&b, 0, "ram_host_null_ram");
	ck_assert_int_eq(btmmu_ram_host(fx.ram, &out), 0);
	ck_assert_ptr_eq(out, fx.host);
}
END_TEST

START_TEST(ram_host_null_out)
{
	struct snap b;

	snap_take(&b);
	expect("ram_host_null_out", btmmu_ram_host(fx.ram, NULL), -EFAULT);
	check_intact(&b, 0, "ram_host_null_out");
}
END_TEST

/* ------------------------------------------------------------------ */
/* btmmu_space_create, btmmu_space_destroy                             */
/* ------------------------------------------------------------------ */

#define SPACE_OK .a = { .va_bits = 32, .page_shift = 12, .nviews = 2, .ring = 1 }

static const struct space_case {
	const char *name;
	enum szk sz;
	bool null_ctx, null_args, null_out;
	struct btmmu_space_args a;
	int err;
} space_cases[] = {
	{ "ctx_null", .null_ctx = true, SPACE_OK, .err = -EINVAL },
	{ "args_null", .null_args = true, SPACE_OK, .err = -EFAULT },
	{ "out_null", .null_out = true, SPACE_OK, .err = -EFAULT },
	SIZE_CASES(SPACE_OK),
	{ "view_mask_past_nviews", SPACE_OK, .a.view_mask = 0x4, .err = -EINVAL },
	{ "view_mask_top_bit", SPACE_OK, .a.view_mask = 0x80000001u, .err = -EINVAL },
	{ "flags_unknown_bit", SPACE_OK, .a.flags = 0x2, .err = -EINVAL },
	{ "flags_top_bit", SPACE_OK, .a.flags = 0x80000000u, .err = -EINVAL },
	{ "va_bits_0", SPACE_OK, .a.va_bits = 0, .err = -EINVAL },
	{ "va_bits_31", SPACE_OK, .a.va_bits = 31, .err = -EINVAL },
	{ "va_bits_65", SPACE_OK, .a.va_bits = 65, .err = -EINVAL },
	{ "va_bits_uint_max", SPACE_OK, .a.va_bits = UINT32_MAX, .err = -EINVAL },
	{ "page_shift_0", SPACE_OK, .a.page_shift = 0, .err = -EINVAL },
	{ "page_shift_9", SPACE_OK, .a.page_shift = 9, .err = -EINVAL },
	{ "page_shift_31", SPACE_OK, .a.page_shift = 31, .err = -EINVAL },
	{ "page_shift_uint_max", SPACE_OK, .a.page_shift = UINT32_MAX, .err = -EINVAL },
	{ "nviews_0", SPACE_OK, .a.nviews = 0, .err = -EINVAL },
	{ "nviews_max_plus_1", SPACE_OK, .a.nviews = BTMMU_MAX_VIEWS + 1, .err = -EINVAL },
	{ "nviews_uint_max", SPACE_OK, .a.nviews = UINT32_MAX, .err = -EINVAL },
	{ "ring_max_plus_1", SPACE_OK, .a.ring = BTMMU_MAX_RING + 1, .err = -EINVAL },
	{ "ring_uint_max", SPACE_OK, .a.ring = UINT32_MAX, .err = -EINVAL },
	{ "window_bits_above_va_bits", SPACE_OK, .a.window_bits = 33, .err = -EINVAL },
	{ "window_bits_above_46", SPACE_OK, .a.va_bits = 48, .a.window_bits = 47,
	  .err = -EINVAL },
	{ "window_bits_above_46_va64", SPACE_OK, .a.va_bits = 64, .a.window_bits = 47,
	  .err = -EINVAL },
	{ "window_bits_below_page", SPACE_OK, .a.window_bits = 11, .err = -EINVAL },
	{ "window_bits_below_host_page", SPACE_OK, .a.page_shift = 10, .a.window_bits = 11,
	  .err = -EINVAL },
	{ "window_bits_below_large_page", SPACE_OK, .a.page_shift = 21, .a.window_bits = 20,
	  .err = -EINVAL },
	{ "window_gva_not_0_default_full_window", SPACE_OK, .a.window_gva = BIT(20),
	  .err = -EINVAL },
	{ "window_gva_not_0_full_window", SPACE_OK, .a.window_bits = 32,
	  .a.window_gva = BIT(32), .err = -EINVAL },
	{ "window_gva_not_0_full_window_se", SPACE_OK, .a.flags = BTMMU_SPACE_SIGN_EXTEND,
	  .a.window_gva = TOP(BIT(31)), .err = -EINVAL },
	{ "window_gva_unaligned", SPACE_OK, .a.va_bits = 48, .a.window_bits = 40,
	  .a.window_gva = BIT(39), .err = -EINVAL },
	{ "window_past_va_bits", SPACE_OK, .a.va_bits = 48, .a.window_bits = 40,
	  .a.window_gva = BIT(48), .err = -ERANGE },
	{ "window_top_zero_extended", SPACE_OK, .a.va_bits = 48, .a.window_bits = 40,
	  .a.window_gva = TOP(BIT(40)), .err = -ERANGE },
	{ "window_noncanonical_se", SPACE_OK, .a.va_bits = 48, .a.window_bits = 40,
	  .a.flags = BTMMU_SPACE_SIGN_EXTEND, .a.window_gva = BIT(47), .err = -ERANGE },
	{ "window_noncanonical_high_se", SPACE_OK, .a.va_bits = 48, .a.window_bits = 40,
	  .a.flags = BTMMU_SPACE_SIGN_EXTEND, .a.window_gva = UINT64_C(0xffff000000000000),
	  .err = -ERANGE },
};

START_TEST(space_create_bad)
{
	const struct space_case *c = &space_cases[_i];
	struct btmmu_space_args ok = { .size = sizeof(ok), .va_bits = 32, .page_shift = 12,
				       .nviews = 2, .ring = 1 };
	struct btmmu_space_args a = c->a;
	struct btmmu_space *out = CANARY, *sp;
	struct snap b;
	struct res r;

	a.size = sizeof(a);
	res_take(&r);
	snap_take(&b);
	expect(c->name,
	       btmmu_space_create(c->null_ctx ? NULL : fx.ctx,
				  c->null_args ? NULL : sized(&a, sizeof(a), c->sz),
				  c->null_out ? NULL : &out),
	       c->err);
	ck_assert_ptr_eq(out, CANARY);
	res_same(&r, c->name);
	check_intact(&b, 0, c->name);
	ck_assert_int_eq(btmmu_space_create(fx.ctx, &ok, &sp), 0);
	ck_assert_int_eq(btmmu_space_destroy(sp), 0);
}
END_TEST

START_TEST(space_destroy_null)
{
	struct snap b;

	snap_take(&b);
	expect("space_destroy_null", btmmu_space_destroy(NULL), -EINVAL);
	check_intact(&b, 0, "space_destroy_null");
}
END_TEST

/* ------------------------------------------------------------------ */
/* btmmu_in_window                                                     */
/* ------------------------------------------------------------------ */

static const struct in_window_case {
	const char *name;
	uint64_t window_gva;
	uint32_t window_bits;
	uint64_t gva;
	unsigned len;
} in_window_cases[] = {
	{ "below_window", BIT(40), 40, BIT(40) - 1, 1 },
	{ "straddles_start", BIT(40), 40, BIT(40) - 2, 4 },
	{ "straddles_end", BIT(40), 40, BIT(41) - 2, 4 },
	{ "at_end", BIT(40), 40, BIT(41), 1 },
	{ "far_above", BIT(40), 40, UINT64_MAX, 1 },
	{ "longer_than_window", BIT(12), 12, BIT(12), 4097 },
	{ "wraps_top_window", TOP(BIT(44)), 44, UINT64_MAX, 2 },
	{ "len_uint_max", 0, 31, 0, UINT_MAX },
};

START_TEST(in_window_bad)
{
	const struct in_window_case *c = &in_window_cases[_i];
	struct btmmu_view_info vi = { .size = sizeof(vi), .window_gva = c->window_gva,
				      .window_bits = c->window_bits, .va_bits = 48 };
	struct snap b;

	snap_take(&b);
	ck_assert_msg(btmmu_in_window(&vi, c->gva, c->len) == 0, "%s: reported inside", c->name);
	check_intact(&b, 0, c->name);
	ck_assert_int_eq(btmmu_in_window(&vi, c->window_gva, 1), 1);
}
END_TEST

/* ------------------------------------------------------------------ */
/* btmmu_map                                                           */
/* ------------------------------------------------------------------ */

/* Remaps sentinel 0 to other bytes: applied in part, the check sees it. */
#define MAP_REQ_OK .gva = 0x10000, .gpa = REMAP_GPA, .len = PG, .prot = R
#define MAP_OK .q = { MAP_REQ_OK }

static const struct map_case {
	const char *name;
	enum sk sk;
	unsigned view;
	bool null_req, ram2;
	struct btmmu_map_req q;
	int err;
} map_cases[] = {
	{ "space_null", .sk = SP_NULL, MAP_OK, .err = -EINVAL },
	{ "view_eq_nviews", .view = 2, MAP_OK, .err = -EINVAL },
	{ "view_eq_max_views", .view = BTMMU_MAX_VIEWS, MAP_OK, .err = -EINVAL },
	{ "view_uint_max", .view = UINT_MAX, MAP_OK, .err = -EINVAL },
	{ "view_eq_max_views_16_view_space", .sk = SP_16V, .view = BTMMU_MAX_VIEWS, MAP_OK,
	  .err = -EINVAL },
	{ "req_null", .null_req = true, .err = -EFAULT },
	{ "flags_unknown_bit", MAP_OK, .q.flags = 0x4, .err = -EINVAL },
	{ "flags_top_bit", MAP_OK, .q.flags = 0x80000000u, .err = -EINVAL },
	{ "prot_0", MAP_OK, .q.prot = 0, .err = -EINVAL },
	{ "prot_unknown_bit", MAP_OK, .q.prot = R | 0x8, .err = -EINVAL },
	{ "prot_top_bit", MAP_OK, .q.prot = R | 0x80000000u, .err = -EINVAL },
	{ "len_0", MAP_OK, .q.len = 0, .err = -EINVAL },
	{ "len_half_page", MAP_OK, .q.len = PG / 2, .err = -EINVAL },
	{ "len_not_page_multiple", MAP_OK, .q.len = PG + 1024, .err = -EINVAL },
	{ "gva_unaligned", MAP_OK, .q.gva = 0x10800, .err = -EINVAL },
	{ "gpa_unaligned", MAP_OK, .q.gpa = REMAP_GPA + 0x800, .err = -EINVAL },
	{ "gpa_len_wraps", MAP_OK, .q.gpa = TOP(PG), .q.len = 2 * PG, .err = -ENXIO },
	{ "gpa_outside_ram", MAP_OK, .q.gpa = FX_RAM_SIZE, .err = -ENXIO },
	{ "gpa_far_outside_ram", MAP_OK, .q.gpa = BIT(63), .err = -ENXIO },
	{ "gpa_crosses_ram_end", MAP_OK, .q.gpa = FX_RAM_SIZE - PG, .q.len = 2 * PG,
	  .err = -ENXIO },
	{ "gpa_spans_two_rams", .ram2 = true, MAP_OK, .q.gpa = FX_RAM_SIZE - PG,
	  .q.len = 2 * PG, .err = -ENXIO },
	{ "gva_past_va_bits", MAP_OK, .q.gva = BIT(32), .err = -ERANGE },
	{ "gva_far_past_va_bits", MAP_OK, .q.gva = BIT(63), .err = -ERANGE },
	{ "gva_crosses_va_end", MAP_OK, .q.gva = 0xfffff000, .q.len = 2 * PG, .err = -ERANGE },
	{ "gva_len_wraps_va64", .sk = SP_VA64, MAP_OK, .q.gva = TOP(PG), .q.len = 2 * PG,
	  .err = -ERANGE },
	{ "gva_noncanonical_se48", .sk = SP_SE48, MAP_OK, .q.gva = BIT(47), .err = -ERANGE },
	{ "gva_noncanonical_high_se48", .sk = SP_SE48, MAP_OK,
	  .q.gva = UINT64_C(0xffff7ffffffff000), .err = -ERANGE },
	{ "gva_crosses_canonical_end_se48", .sk = SP_SE48, MAP_OK, .q.gva = BIT(47) - PG,
	  .q.len = 2 * PG, .err = -ERANGE },
	/*
	 * Not a case: [-4096, +4096) is one range in a sign-extended space
	 * (btmmu_map(3): signed order, contiguous for the guest).
	 */
};

START_TEST(map_bad)
{
	const struct map_case *c = &map_cases[_i];
	struct btmmu_space *sp = space_of(c->sk);
	struct btmmu_map_req ok = { MAP_REQ_OK };
	struct snap b;

	if (c->ram2)
		add_ram2();
	snap_take(&b);
	expect(c->name, btmmu_map(sp, c->view, c->null_req ? NULL : &c->q), c->err);
	check_intact(&b, 0, c->name);
	ck_assert_int_eq(btmmu_map(sp ? sp : fx.sp, 0, &ok), 1);
}
END_TEST

/* ------------------------------------------------------------------ */
/* btmmu_map_around                                                    */
/* ------------------------------------------------------------------ */

static unsigned around_calls;

/* Would install every neighbour: a call that fails must never get here. */
static int around_any(void *opaque, uint64_t gva, struct btmmu_map_req *q)
{
	(void)opaque;
	around_calls++;
	q->gpa = gva;
	q->prot = R;
	return 1;
}

#define AROUND_OK .a = { .group = 16 * PG, .fn = around_any }

static const struct around_case {
	const char *name;
	enum szk sz;
	bool null_args;
	struct btmmu_around_args a;
	int err;
} around_cases[] = {
	{ "args_null", .null_args = true, AROUND_OK, .err = -EFAULT },
	SIZE_CASES(AROUND_OK),
	{ "group_0", AROUND_OK, .a.group = 0, .err = -EINVAL },
	{ "group_not_power_of_2", AROUND_OK, .a.group = 3 * PG, .err = -EINVAL },
	{ "group_below_page", AROUND_OK, .a.group = PG / 2, .err = -EINVAL },
	{ "group_1025_pages", AROUND_OK, .a.group = 2048 * PG, .err = -EINVAL },
	{ "group_top_bit", AROUND_OK, .a.group = BIT(63), .err = -EINVAL },
	{ "fn_null", AROUND_OK, .a.fn = NULL, .err = -EINVAL },
	{ "flags_unknown_bit", AROUND_OK, .a.flags = 0x1, .err = -EINVAL },
	{ "flags_top_bit", AROUND_OK, .a.flags = 0x80000000u, .err = -EINVAL },
};

START_TEST(map_around_bad)
{
	const struct around_case *c = &around_cases[_i];
	struct btmmu_map_req ok = { MAP_REQ_OK };
	struct btmmu_around_args a = c->a;
	struct snap b;

	a.size = sizeof(a);
	around_calls = 0;
	snap_take(&b);
	expect(c->name,
	       btmmu_map_around(fx.sp, 0, &ok, c->null_args ? NULL : sized(&a, sizeof(a), c->sz), 0),
	       c->err);
	check_intact(&b, 0, c->name);
	ck_assert_uint_eq(around_calls, 0);
}
END_TEST

/* Every bad request of btmmu_map(3) is refused the same way, callback unasked. */
START_TEST(map_around_bad_req)
{
	const struct map_case *c = &map_cases[_i];
	struct btmmu_space *sp = space_of(c->sk);
	struct btmmu_around_args a = { .size = sizeof(a), .group = 16 * PG, .fn = around_any };
	struct snap b;

	if (c->ram2)
		add_ram2();
	around_calls = 0;
	snap_take(&b);
	expect(c->name, btmmu_map_around(sp, c->view, c->null_req ? NULL : &c->q, &a, 0), c->err);
	check_intact(&b, 0, c->name);
	ck_assert_uint_eq(around_calls, 0);
}
END_TEST

/* ------------------------------------------------------------------ */
/* btmmu_map_batch                                                     */
/* ------------------------------------------------------------------ */

#define B2 .gva = GVA_FREE, .gpa = GVA_FREE, .len = PG, .prot = RW
#define B3 .gva = GVA_FREE + PG, .gpa = GVA_FREE + PG, .len = PG, .prot = RW

/* Three good requests: the first remaps sentinel 0, the others add pages. */
static const struct btmmu_map_req batch_ok[3] = { { MAP_REQ_OK }, { B2 }, { B3 } };

enum genk { GEN_0, GEN_OLDER, GEN_NEWER, GEN_MAX, GEN_OTHER_VIEW };

static const struct batch_case {
	const char *name;
	enum sk sk;
	unsigned view;
	bool null_reqs;
	enum genk gen;
	unsigned at, at2; /* 1-based index of the bad request(s), 0: none */
	struct btmmu_map_req bad, bad2;
	int err;
} batch_cases[] = {
	{ "space_null", .sk = SP_NULL, .err = -EINVAL },
	{ "view_eq_nviews", .view = 2, .err = -EINVAL },
	{ "view_eq_max_views", .view = BTMMU_MAX_VIEWS, .err = -EINVAL },
	{ "view_eq_max_views_16_view_space", .sk = SP_16V, .view = BTMMU_MAX_VIEWS,
	  .err = -EINVAL },
	{ "reqs_null", .null_reqs = true, .err = -EFAULT },
	{ "last_flags_unknown_bit", .at = 3, .bad = { B3, .flags = 0x4 }, .err = -EINVAL },
	{ "last_prot_0", .at = 3, .bad = { B3, .prot = 0 }, .err = -EINVAL },
	{ "last_prot_unknown_bit", .at = 3, .bad = { B3, .prot = R | 0x8 }, .err = -EINVAL },
	{ "last_len_0", .at = 3, .bad = { B3, .len = 0 }, .err = -EINVAL },
	{ "last_len_not_page_multiple", .at = 3, .bad = { B3, .len = PG + 1024 },
	  .err = -EINVAL },
	{ "last_gva_unaligned", .at = 3, .bad = { B3, .gva = GVA_FREE + PG + 8 },
	  .err = -EINVAL },
	{ "last_gpa_unaligned", .at = 3, .bad = { B3, .gpa = GVA_FREE + PG + 8 },
	  .err = -EINVAL },
	{ "last_gva_past_va_bits", .at = 3, .bad = { B3, .gva = BIT(32) }, .err = -ERANGE },
	{ "last_gva_crosses_va_end", .at = 3, .bad = { B3, .gva = 0xfffff000, .len = 2 * PG },
	  .err = -ERANGE },
	{ "last_gpa_outside_ram", .at = 3, .bad = { B3, .gpa = FX_RAM_SIZE }, .err = -ENXIO },
	{ "last_gpa_len_wraps", .at = 3, .bad = { B3, .gpa = TOP(PG), .len = 2 * PG },
	  .err = -ENXIO },
	{ "last_gpa_crosses_ram_end", .at = 3,
	  .bad = { B3, .gpa = FX_RAM_SIZE - PG, .len = 2 * PG }, .err = -ENXIO },
	{ "middle_prot_0", .at = 2, .bad = { B2, .prot = 0 }, .err = -EINVAL },
	{ "middle_gpa_outside_ram", .at = 2, .bad = { B2, .gpa = FX_RAM_SIZE }, .err = -ENXIO },
	{ "first_gva_unaligned", .at = 1, .bad = { MAP_REQ_OK, .gva = 0x10800 },
	  .err = -EINVAL },
	{ "first_gpa_outside_ram", .at = 1, .bad = { MAP_REQ_OK, .gpa = FX_RAM_SIZE },
	  .err = -ENXIO },
	{ "gen_older", .gen = GEN_OLDER, .err = -ESTALE },
	{ "gen_newer", .gen = GEN_NEWER, .err = -ESTALE },
	{ "gen_max", .gen = GEN_MAX, .err = -ESTALE },
	{ "gen_of_other_view", .gen = GEN_OTHER_VIEW, .err = -ESTALE },
	/*
	 * Two defects, on purpose: each request's own fields are checked
	 * before any request's RAM (btmmu_map_batch(3)).
	 */
	{ "two_bad_fields_before_ram", .at = 2, .bad = { B2, .gpa = FX_RAM_SIZE },
	  .at2 = 3, .bad2 = { B3, .gva = BIT(32) }, .err = -ERANGE },
	{ "two_bad_first_wins_erange_einval", .at = 2, .bad = { B2, .gva = BIT(32) },
	  .at2 = 3, .bad2 = { B3, .prot = 0 }, .err = -ERANGE },
};

static uint64_t view_gen(struct btmmu_space *sp, unsigned view)
{
	struct btmmu_view_info vi = { .size = sizeof(vi) };

	ck_assert_int_eq(btmmu_view_info(sp, view, &vi), 0);
	return vi.gen;
}

START_TEST(map_batch_bad)
{
	const struct batch_case *c = &batch_cases[_i];
	struct btmmu_space *sp = space_of(c->sk);
	struct btmmu_map_req reqs[3];
	uint64_t gen = 0;
	struct snap b;

	memcpy(reqs, batch_ok, sizeof(reqs));
	if (c->at)
		reqs[c->at - 1] = c->bad;
	if (c->at2)
		reqs[c->at2 - 1] = c->bad2;
	switch (c->gen) {
	case GEN_0:
		break;
	case GEN_OLDER:
		gen = view_gen(sp, 0) - 1;
		break;
	case GEN_NEWER:
		gen = view_gen(sp, 0) + 100;
		break;
	case GEN_MAX:
		gen = UINT64_MAX;
		break;
	case GEN_OTHER_VIEW:
		gen = view_gen(sp, 1);
		break;
	}
	ck_assert(c->gen == GEN_0 || (gen && gen != view_gen(sp, 0)));
	snap_take(&b);
	expect(c->name, btmmu_map_batch(sp, c->view, c->null_reqs ? NULL : reqs, 3, gen), c->err);
	check_intact(&b, 0, c->name);
	ck_assert_int_eq(btmmu_map_batch(sp ? sp : fx.sp, 0, batch_ok, 3, 0), 3);
}
END_TEST

/* Not an error: nreq 0 installs nothing and returns 0, even with NULL reqs. */
START_TEST(map_batch_nreq_0)
{
	struct snap b;

	snap_take(&b);
	expect("map_batch_nreq_0", btmmu_map_batch(fx.sp, 0, NULL, 0, 0), 0);
	expect("map_batch_nreq_0_reqs", btmmu_map_batch(fx.sp, 0, batch_ok, 0, 0), 0);
	check_intact(&b, 0, "map_batch_nreq_0");
}
END_TEST

/* ------------------------------------------------------------------ */
/* btmmu_unmap, btmmu_flush                                            */
/* ------------------------------------------------------------------ */

/* Removes sentinel 0: applied in part, the check sees it. */
#define UNMAP_OK .views = 1, .gva = 0x10000, .len = PG

static const struct unmap_case {
	const char *name;
	enum sk sk;
	uint32_t views;
	uint64_t gva, len;
	int err;
} unmap_cases[] = {
	{ "space_null", .sk = SP_NULL, UNMAP_OK, .err = -EINVAL },
	{ "views_0", UNMAP_OK, .views = 0, .err = -EINVAL },
	{ "views_bit_nviews", UNMAP_OK, .views = 1u << 2, .err = -EINVAL },
	{ "views_valid_plus_bit_nviews", UNMAP_OK, .views = 3u | 1u << 2, .err = -EINVAL },
	{ "views_bit_max_views", UNMAP_OK, .views = 1u << 16, .err = -EINVAL },
	{ "views_bit_31", UNMAP_OK, .views = 1u << 31, .err = -EINVAL },
	{ "views_all_ones", UNMAP_OK, .views = UINT32_MAX, .err = -EINVAL },
	{ "views_bit_max_views_16_view_space", .sk = SP_16V, UNMAP_OK, .views = 1u << 16,
	  .err = -EINVAL },
	{ "views_all_plus_bit_16_16_view_space", .sk = SP_16V, UNMAP_OK, .views = 0x1ffff,
	  .err = -EINVAL },
	{ "views_bit_31_16_view_space", .sk = SP_16V, UNMAP_OK, .views = 1u << 31,
	  .err = -EINVAL },
	{ "len_0", UNMAP_OK, .len = 0, .err = -EINVAL },
	{ "len_half_page", UNMAP_OK, .len = PG / 2, .err = -EINVAL },
	{ "len_not_page_multiple", UNMAP_OK, .len = PG + 1024, .err = -EINVAL },
	{ "gva_unaligned", UNMAP_OK, .gva = 0x10800, .err = -EINVAL },
	{ "gva_past_va_bits", UNMAP_OK, .gva = BIT(32), .err = -ERANGE },
	{ "gva_far_past_va_bits", UNMAP_OK, .gva = BIT(63), .err = -ERANGE },
	{ "gva_crosses_va_end", UNMAP_OK, .gva = 0xfffff000, .len = 2 * PG, .err = -ERANGE },
	{ "len_past_va_end", UNMAP_OK, .gva = 0, .len = BIT(32) + PG, .err = -ERANGE },
	{ "gva_len_wraps_va64", .sk = SP_VA64, UNMAP_OK, .gva = TOP(PG), .len = 2 * PG,
	  .err = -ERANGE },
	{ "gva_noncanonical_se48", .sk = SP_SE48, UNMAP_OK, .gva = BIT(47), .err = -ERANGE },
	{ "gva_noncanonical_high_se48", .sk = SP_SE48, UNMAP_OK,
	  .gva = UINT64_C(0xffff7ffffffff000), .err = -ERANGE },
	{ "gva_crosses_canonical_end_se48", .sk = SP_SE48, UNMAP_OK, .gva = BIT(47) - PG,
	  .len = 2 * PG, .err = -ERANGE },
};

START_TEST(unmap_bad)
{
	const struct unmap_case *c = &unmap_cases[_i];
	struct btmmu_space *sp = space_of(c->sk);
	struct snap b;

	snap_take(&b);
	expect(c->name, btmmu_unmap(sp, c->views, c->gva, c->len), c->err);
	check_intact(&b, 0, c->name);
	ck_assert_int_ge(btmmu_unmap(sp ? sp : fx.sp, 1, 0x10000, PG), 0);
}
END_TEST

#define FLUSH_OK .views = 3, .flags = 0

static const struct flush_case {
	const char *name;
	enum sk sk;
	uint32_t views, flags;
	int err;
} flush_cases[] = {
	{ "space_null", .sk = SP_NULL, FLUSH_OK, .err = -EINVAL },
	{ "views_0", FLUSH_OK, .views = 0, .err = -EINVAL },
	{ "views_bit_nviews", FLUSH_OK, .views = 1u << 2, .err = -EINVAL },
	{ "views_valid_plus_bit_nviews", FLUSH_OK, .views = 3u | 1u << 2, .err = -EINVAL },
	{ "views_bit_max_views", FLUSH_OK, .views = 1u << 16, .err = -EINVAL },
	{ "views_bit_31", FLUSH_OK, .views = 1u << 31, .err = -EINVAL },
	{ "views_all_ones", FLUSH_OK, .views = UINT32_MAX, .err = -EINVAL },
	{ "views_bit_max_views_16_view_space", .sk = SP_16V, FLUSH_OK, .views = 1u << 16,
	  .err = -EINVAL },
	{ "views_all_plus_bit_16_16_view_space", .sk = SP_16V, FLUSH_OK, .views = 0x1ffff,
	  .err = -EINVAL },
	{ "flags_unknown_bit", FLUSH_OK, .flags = 0x2, .err = -EINVAL },
	{ "flags_top_bit", FLUSH_OK, .flags = 0x80000000u, .err = -EINVAL },
	{ "flags_nonglobal_plus_unknown", FLUSH_OK, .flags = BTMMU_FLUSH_NONGLOBAL | 0x2,
	  .err = -EINVAL },
	{ "flags_nonglobal_plus_unknown_full_views", FLUSH_OK, .flags = 0x3, .err = -EINVAL },
};

START_TEST(flush_bad)
{
	const struct flush_case *c = &flush_cases[_i];
	struct btmmu_space *sp = space_of(c->sk);
	struct snap b;

	snap_take(&b);
	expect(c->name, btmmu_flush(sp, c->views, c->flags), c->err);
	check_intact(&b, 0, c->name);
	ck_assert_int_eq(btmmu_flush(sp ? sp : fx.sp, 3, 0), 0);
}
END_TEST

/* ------------------------------------------------------------------ */
/* btmmu_protect, btmmu_unprotect                                      */
/* ------------------------------------------------------------------ */

/* protect write-protects sentinel 0, unprotect lifts the protected one's:
 * applied in part, the check sees it. */
#define PROT_OK .gpa = 0x10000, .len = PG, .prot = R
#define UNPROT_OK .gpa = 0x30000, .len = PG

struct prot_case {
	const char *name;
	bool null_ctx, ram2;
	uint64_t gpa, len;
	uint32_t prot;
	int err;
};

static const struct prot_case protect_cases[] = {
	{ "ctx_null", .null_ctx = true, PROT_OK, .err = -EINVAL },
	{ "prot_unknown_bit", PROT_OK, .prot = 0x8, .err = -EINVAL },
	{ "prot_rwx_plus_unknown_bit", PROT_OK, .prot = BTMMU_PROT_RWX | 0x8, .err = -EINVAL },
	{ "prot_top_bit", PROT_OK, .prot = R | 0x80000000u, .err = -EINVAL },
	{ "len_0", PROT_OK, .len = 0, .err = -EINVAL },
	{ "len_below_granule", PROT_OK, .len = 512, .err = -EINVAL },
	{ "len_not_granule_multiple", PROT_OK, .len = PG + 512, .err = -EINVAL },
	{ "gpa_unaligned", PROT_OK, .gpa = 0x10200, .err = -EINVAL },
	{ "gpa_len_wraps", PROT_OK, .gpa = TOP(1024), .len = 2048, .err = -EINVAL },
	{ "gpa_outside_ram", PROT_OK, .gpa = FX_RAM_SIZE, .err = -ENXIO },
	{ "gpa_far_outside_ram", PROT_OK, .gpa = BIT(63), .err = -ENXIO },
	{ "gpa_crosses_ram_end", PROT_OK, .gpa = FX_RAM_SIZE - PG, .len = 2 * PG,
	  .err = -ENXIO },
	{ "gpa_spans_two_rams", .ram2 = true, PROT_OK, .gpa = FX_RAM_SIZE - PG, .len = 2 * PG,
	  .err = -ENXIO },
};

static const struct prot_case unprotect_cases[] = {
	{ "ctx_null", .null_ctx = true, UNPROT_OK, .err = -EINVAL },
	{ "len_0", UNPROT_OK, .len = 0, .err = -EINVAL },
	{ "len_below_granule", UNPROT_OK, .len = 512, .err = -EINVAL },
	{ "len_not_granule_multiple", UNPROT_OK, .len = PG + 512, .err = -EINVAL },
	{ "gpa_unaligned", UNPROT_OK, .gpa = 0x30200, .err = -EINVAL },
	{ "gpa_len_wraps", UNPROT_OK, .gpa = TOP(1024), .len = 2048, .err = -EINVAL },
	{ "gpa_outside_ram", UNPROT_OK, .gpa = FX_RAM_SIZE, .err = -ENXIO },
	{ "gpa_far_outside_ram", UNPROT_OK, .gpa = BIT(63), .err = -ENXIO },
	{ "gpa_crosses_ram_end", UNPROT_OK, .gpa = FX_RAM_SIZE - PG, .len = 2 * PG,
	  .err = -ENXIO },
	{ "gpa_spans_two_rams", .ram2 = true, UNPROT_OK, .gpa = FX_RAM_SIZE - PG,
	  .len = 2 * PG, .err = -ENXIO },
};

START_TEST(protect_bad)
{
	const struct prot_case *c = &protect_cases[_i];
	struct snap b;

	if (c->ram2)
		add_ram2();
	snap_take(&b);
	expect(c->name, btmmu_protect(c->null_ctx ? NULL : fx.ctx, c->gpa, c->len, c->prot),
	       c->err);
	check_intact(&b, 0, c->name);
	ck_assert_int_ge(btmmu_protect(fx.ctx, 0x10000, PG, R), 0);
}
END_TEST

START_TEST(unprotect_bad)
{
	const struct prot_case *c = &unprotect_cases[_i];
	struct snap b;

	if (c->ram2)
		add_ram2();
	snap_take(&b);
	expect(c->name, btmmu_unprotect(c->null_ctx ? NULL : fx.ctx, c->gpa, c->len), c->err);
	check_intact(&b, 0, c->name);
	ck_assert_int_ge(btmmu_unprotect(fx.ctx, 0x30000, PG), 0);
}
END_TEST

/* btmmu_unprotect_since: the checks of btmmu_unprotect, with a current seq. */
START_TEST(unprotect_since_bad)
{
	const struct prot_case *c = &unprotect_cases[_i];
	uint64_t seq;
	struct snap b;

	if (c->ram2)
		add_ram2();
	ck_assert_int_eq(btmmu_protect_seq(fx.ctx, &seq), 0);
	snap_take(&b);
	expect(c->name, btmmu_unprotect_since(c->null_ctx ? NULL : fx.ctx, c->gpa, c->len, seq),
	       c->err);
	check_intact(&b, 0, c->name);
	ck_assert_int_ge(btmmu_unprotect_since(fx.ctx, 0x30000, PG, seq), 0);
}
END_TEST

/* A stale or impossible sequence, and btmmu_protect_seq's own arguments. */
START_TEST(protect_seq_bad)
{
	uint64_t seq, seq2;
	struct snap b;

	ck_assert_int_eq(btmmu_protect_seq(NULL, &seq), -EINVAL);
	ck_assert_int_eq(btmmu_protect_seq(fx.ctx, NULL), -EFAULT);
	ck_assert_int_eq(btmmu_protect_seq(fx.ctx, &seq), 0);
	ck_assert_int_ge(btmmu_protect(fx.ctx, 0x20000, PG, R), 0);
	ck_assert_int_eq(btmmu_protect_seq(fx.ctx, &seq2), 0);
	ck_assert_uint_gt(seq2, seq);
	snap_take(&b);
	expect("stale_seq", btmmu_unprotect_since(fx.ctx, 0x30000, PG, seq), -ESTALE);
	check_intact(&b, 0, "stale_seq");
	snap_take(&b);
	expect("future_seq", btmmu_unprotect_since(fx.ctx, 0x30000, PG, seq2 + 1), -ESTALE);
	check_intact(&b, 0, "future_seq");
	snap_take(&b);
	expect("seq_max", btmmu_unprotect_since(fx.ctx, 0x30000, PG, UINT64_MAX), -EINVAL);
	check_intact(&b, 0, "seq_max");
}
END_TEST

/* ------------------------------------------------------------------ */
/* Called from a fault callback: -EDEADLK                              */
/* ------------------------------------------------------------------ */

enum cbk { CB_OPEN, CB_CLOSE, CB_RAM_CREATE, CB_RAM_DESTROY, CB_SPACE_CREATE,
	   CB_SPACE_DESTROY };

static const struct cb_case {
	const char *name;
	enum cbk k;
} cb_cases[] = {
	[CB_OPEN] = { "open_in_callback", CB_OPEN },
	[CB_CLOSE] = { "close_idle_ctx_in_callback", CB_CLOSE },
	[CB_RAM_CREATE] = { "ram_create_in_callback", CB_RAM_CREATE },
	[CB_RAM_DESTROY] = { "ram_destroy_in_callback", CB_RAM_DESTROY },
	[CB_SPACE_CREATE] = { "space_create_in_callback", CB_SPACE_CREATE },
	[CB_SPACE_DESTROY] = { "space_destroy_in_callback", CB_SPACE_DESTROY },
};

static struct {
	enum cbk k;
	int ret;
	struct btmmu *ctx;
	struct btmmu_ram *ram;
	struct btmmu_space *sp;
} cbs;

static const struct btmmu_open_args cb_open_ok = { .size = sizeof(cb_open_ok),
						   .flags = BTMMU_OPEN_NO_THREAD };
static const struct btmmu_ram_args cb_ram_ok = { .size = sizeof(cb_ram_ok), .gpa = RAM_GPA,
						 .len = RAM_LEN, .fd = -1 };
static const struct btmmu_space_args cb_space_ok = { .size = sizeof(cb_space_ok),
						     .va_bits = 32, .page_shift = 12,
						     .nviews = 2, .ring = 1 };

static int cb_call(void)
{
	switch (cbs.k) {
	case CB_OPEN:
		return btmmu_open(&cb_open_ok, &cbs.ctx);
	case CB_CLOSE:
		return btmmu_close(ctx2);
	case CB_RAM_CREATE:
		return btmmu_ram_create(fx.ctx, &cb_ram_ok, &cbs.ram);
	case CB_RAM_DESTROY:
		return btmmu_ram_destroy(fx.ram);
	case CB_SPACE_CREATE:
		return btmmu_space_create(fx.ctx, &cb_space_ok, &cbs.sp);
	case CB_SPACE_DESTROY:
		return btmmu_space_destroy(fx.sp);
	}
	return -ENOSYS;
}

static int cb_deadlk(struct btmmu_fault *f)
{
	(void)f;
	cbs.ret = cb_call();
	return BTMMU_FAULT_SLOW;
}

START_TEST(in_callback_bad)
{
	const struct cb_case *c = &cb_cases[_i];
	struct snap b;
	uint32_t v;

	if (c->k == CB_CLOSE)
		open_ctx2();
	cbs.k = c->k;
	cbs.ret = 1;
	cbs.ctx = CANARY;
	cbs.ram = CANARY;
	cbs.sp = CANARY;
	snap_take(&b);
	fx.policy = FX_CUSTOM;
	fx.custom = cb_deadlk;
	ck_assert_int_eq(btmmu_load32(fx_base(0) + GVA_FREE, &v), 1);
	expect(c->name, cbs.ret, -EDEADLK);
	ck_assert_ptr_eq(cbs.ctx, CANARY);
	ck_assert_ptr_eq(cbs.ram, CANARY);
	ck_assert_ptr_eq(cbs.sp, CANARY);
	check_intact(&b, 1, c->name);
	/* Outside the callback, the same call works. */
	ck_assert_int_eq(cb_call(), 0);
	switch (c->k) {
	case CB_OPEN:
		ck_assert_int_eq(btmmu_close(cbs.ctx), 0);
		break;
	case CB_CLOSE:
		ctx2 = NULL;
		break;
	case CB_RAM_CREATE:
		ck_assert_int_eq(btmmu_ram_destroy(cbs.ram), 0);
		break;
	case CB_RAM_DESTROY:
		fx.ram = NULL;
		break;
	case CB_SPACE_CREATE:
		ck_assert_int_eq(btmmu_space_destroy(cbs.sp), 0);
		break;
	case CB_SPACE_DESTROY:
		fx.sp = NULL;
		break;
	}
}
END_TEST

/* ------------------------------------------------------------------ */
/* btmmu_fault_leave, btmmu_fault_resolved                             */
/* ------------------------------------------------------------------ */

static sigjmp_buf jb;
static int cb_r1, cb_r2;

/* A real fault's struct, as a callback saw it. */
static struct btmmu_fault captured_fault(void)
{
	uint32_t v;

	fx.policy = FX_SLOW;
	ck_assert_int_eq(btmmu_load32(fx_base(0) + GVA_FREE, &v), 1);
	ck_assert_ptr_eq(fx.last.ctx, fx.ctx);
	return fx.last;
}

START_TEST(fault_leave_null)
{
	struct snap b;

	snap_take(&b);
	expect("fault_leave_null", btmmu_fault_leave(NULL), -EINVAL);
	check_intact(&b, 0, "fault_leave_null");
}
END_TEST

START_TEST(fault_leave_outside_callback)
{
	struct btmmu_fault f = captured_fault(), z;
	struct snap b;

	memset(&z, 0, sizeof(z));
	snap_take(&b);
	expect("fault_leave_outside_callback", btmmu_fault_leave(&f), -EALREADY);
	expect("fault_leave_outside_callback_zeroed", btmmu_fault_leave(&z), -EALREADY);
	check_intact(&b, 0, "fault_leave_outside_callback");
}
END_TEST

/* NULL in a callback: refused, and the thread still counts as in a callback. */
static int cb_leave_null(struct btmmu_fault *f)
{
	(void)f;
	cb_r1 = btmmu_fault_leave(NULL);
	cb_r2 = btmmu_space_create(fx.ctx, &cb_space_ok, &cbs.sp);
	return BTMMU_FAULT_SLOW;
}

START_TEST(fault_leave_null_in_callback)
{
	struct snap b;
	uint32_t v;

	cbs.sp = CANARY;
	snap_take(&b);
	fx.policy = FX_CUSTOM;
	fx.custom = cb_leave_null;
	ck_assert_int_eq(btmmu_load32(fx_base(0) + GVA_FREE, &v), 1);
	expect("fault_leave_null_in_callback", cb_r1, -EINVAL);
	expect("fault_leave_null_in_callback: still in the callback", cb_r2, -EDEADLK);
	ck_assert_ptr_eq(cbs.sp, CANARY);
	check_intact(&b, 1, "fault_leave_null_in_callback");
}
END_TEST

static int cb_leave_twice(struct btmmu_fault *f)
{
	cb_r1 = btmmu_fault_leave(f);
	cb_r2 = btmmu_fault_leave(f);
	siglongjmp(jb, 1);
}

START_TEST(fault_leave_twice)
{
	struct snap b;
	uint32_t v;

	snap_take(&b);
	fx.policy = FX_CUSTOM;
	fx.custom = cb_leave_twice;
	if (!sigsetjmp(jb, 0))
		ck_abort_msg("fault_leave_twice: btmmu_load32 returned %d",
			     btmmu_load32(fx_base(0) + GVA_FREE, &v));
	expect("fault_leave_twice: first", cb_r1, 0);
	expect("fault_leave_twice: second", cb_r2, -EALREADY);
	check_intact(&b, 1, "fault_leave_twice");
}
END_TEST

/* btmmu_fault_leave(3): "returning normally instead of jumping is harmless". */
static int cb_leave_return(struct btmmu_fault *f)
{
	cb_r1 = btmmu_fault_leave(f);
	return BTMMU_FAULT_SLOW;
}

START_TEST(fault_leave_then_return)
{
	struct snap b;
	uint32_t v = 0x5a5a5a5a;

	snap_take(&b);
	fx.policy = FX_CUSTOM;
	fx.custom = cb_leave_return;
	ck_assert_int_eq(btmmu_load32(fx_base(0) + GVA_FREE, &v), 1);
	ck_assert_uint_eq(v, 0x5a5a5a5a);
	expect("fault_leave_then_return", cb_r1, 0);
	check_intact(&b, 1, "fault_leave_then_return");
}
END_TEST

START_TEST(fault_resolved_null)
{
	struct snap b;

	snap_take(&b);
	expect("fault_resolved_null", btmmu_fault_resolved(NULL), -EINVAL);
	check_intact(&b, 0, "fault_resolved_null");
}
END_TEST

START_TEST(fault_resolved_no_ctx)
{
	struct btmmu_fault f = captured_fault();
	struct snap b;

	f.ctx = NULL;
	snap_take(&b);
	expect("fault_resolved_no_ctx", btmmu_fault_resolved(&f), -EINVAL);
	check_intact(&b, 0, "fault_resolved_no_ctx");
}
END_TEST

static int cb_resolved(struct btmmu_fault *f)
{
	struct btmmu_fault g = *f;

	g.ctx = NULL;
	cb_r1 = btmmu_fault_resolved(NULL);
	cb_r2 = btmmu_fault_resolved(&g);
	return BTMMU_FAULT_SLOW;
}

START_TEST(fault_resolved_in_callback)
{
	struct snap b;
	uint32_t v;

	snap_take(&b);
	fx.policy = FX_CUSTOM;
	fx.custom = cb_resolved;
	ck_assert_int_eq(btmmu_load32(fx_base(0) + GVA_FREE, &v), 1);
	expect("fault_resolved_in_callback_null", cb_r1, -EINVAL);
	expect("fault_resolved_in_callback_no_ctx", cb_r2, -EINVAL);
	check_intact(&b, 1, "fault_resolved_in_callback");
}
END_TEST

/* ------------------------------------------------------------------ */
/* btmmu_fault_dispatch                                                */
/* ------------------------------------------------------------------ */

enum addrk { AD_WINDOW, AD_NONE, AD_NULL };

/* Otherwise valid: a SIGSEGV (SEGV_MAPERR) at a free page of view 0. */
static const struct dispatch_case {
	const char *name;
	int sig, code;
	enum addrk addr;
	bool null_info, null_uc;
} dispatch_cases[] = {
	{ "sigbus", .sig = SIGBUS, .code = SEGV_MAPERR },
	{ "sigill", .sig = SIGILL, .code = SEGV_MAPERR },
	{ "sigfpe", .sig = SIGFPE, .code = SEGV_MAPERR },
	{ "sigtrap", .sig = SIGTRAP, .code = SEGV_MAPERR },
	{ "sigusr1", .sig = SIGUSR1, .code = SEGV_MAPERR },
	{ "sig_0", .sig = 0, .code = SEGV_MAPERR },
	{ "sig_minus_1", .sig = -1, .code = SEGV_MAPERR },
	{ "sig_1000", .sig = 1000, .code = SEGV_MAPERR },
	{ "info_null", .sig = SIGSEGV, .code = SEGV_MAPERR, .null_info = true },
	{ "ucontext_null", .sig = SIGSEGV, .code = SEGV_MAPERR, .null_uc = true },
	{ "sent_si_user", .sig = SIGSEGV, .code = SI_USER },
	{ "sent_si_queue", .sig = SIGSEGV, .code = SI_QUEUE },
	{ "sent_si_tkill", .sig = SIGSEGV, .code = SI_TKILL },
	{ "address_in_no_region", .sig = SIGSEGV, .code = SEGV_MAPERR, .addr = AD_NONE },
	{ "address_null", .sig = SIGSEGV, .code = SEGV_MAPERR, .addr = AD_NULL },
};

static ucontext_t dispatch_uc;

static int cb_resume(struct btmmu_fault *f)
{
	f->resume_pc = (uintptr_t)cb_resume;
	return BTMMU_FAULT_SLOW;
}

START_TEST(fault_dispatch_bad)
{
	const struct dispatch_case *c = &dispatch_cases[_i];
	void *none = mmap(NULL, PG, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	unsigned n;
	siginfo_t si;
	struct snap b;
	int ret;

	ck_assert(none != MAP_FAILED);
	memset(&dispatch_uc, 0, sizeof(dispatch_uc));
	ck_assert_int_eq(getcontext(&dispatch_uc), 0);
	memset(&si, 0, sizeof(si));
	si.si_signo = c->sig;
	si.si_code = c->code;
	si.si_addr = c->addr == AD_WINDOW ? (void *)(fx_base(0) + GVA_FREE)
		     : c->addr == AD_NONE ? none
					  : NULL;
	fx.policy = FX_CUSTOM;
	fx.custom = cb_resume;
	n = fx.nfaults;
	snap_take(&b);
	errno = ENOTRECOVERABLE;
	ret = btmmu_fault_dispatch(c->sig, c->null_info ? NULL : &si,
				   c->null_uc ? NULL : &dispatch_uc);
	ck_assert_msg(errno == ENOTRECOVERABLE, "%s: errno changed to %d", c->name, errno);
	expect(c->name, ret, 0);
	ck_assert_msg(fx.nfaults == n, "%s: the callback ran", c->name);
	check_intact(&b, 0, c->name);
	/* Without the defect, it is dispatched. */
	si.si_signo = SIGSEGV;
	si.si_code = SEGV_MAPERR;
	si.si_addr = (void *)(fx_base(0) + GVA_FREE);
	fx.policy = FX_CUSTOM;
	fx.custom = cb_resume;
	n = fx.nfaults;
	ck_assert_int_eq(btmmu_fault_dispatch(SIGSEGV, &si, &dispatch_uc), 1);
	ck_assert_uint_eq(fx.nfaults, n + 1);
	munmap(none, PG);
}
END_TEST

/* ------------------------------------------------------------------ */
/* btmmu_load*, btmmu_store*                                           */
/* ------------------------------------------------------------------ */

enum acc { LD8, LD16, LD32, LD64, ST8, ST16, ST32, ST64 };

/* An access the shadow cannot do: with FX_SLOW it returns 1 and touches nothing. */
static const struct acc_case {
	const char *name;
	enum acc op;
	uint64_t gva, fault_gva;
} acc_cases[] = {
	{ "load8_unmapped", LD8, GVA_FREE, GVA_FREE },
	{ "load16_unmapped", LD16, GVA_FREE, GVA_FREE },
	{ "load32_unmapped", LD32, GVA_FREE, GVA_FREE },
	{ "load64_unmapped", LD64, GVA_FREE, GVA_FREE },
	{ "store8_unmapped", ST8, GVA_FREE, GVA_FREE },
	{ "store16_unmapped", ST16, GVA_FREE, GVA_FREE },
	{ "store32_unmapped", ST32, GVA_FREE, GVA_FREE },
	{ "store64_unmapped", ST64, GVA_FREE, GVA_FREE },
	/* From the last bytes of sentinel 0 into the free page after it. */
	{ "load16_crosses_into_unmapped", LD16, 0x10fff, 0x11000 },
	{ "load32_crosses_into_unmapped", LD32, 0x10ffd, 0x11000 },
	{ "load64_crosses_into_unmapped", LD64, 0x10ff9, 0x11000 },
	{ "store16_crosses_into_unmapped", ST16, 0x10fff, 0x11000 },
	{ "store32_crosses_into_unmapped", ST32, 0x10ffd, 0x11000 },
	{ "store64_crosses_into_unmapped", ST64, 0x10ff9, 0x11000 },
	/* Past the end of the window, into the guard: wraps to gva 0. */
	{ "load32_past_window_end", LD32, BIT(32), 0 },
	{ "store32_past_window_end", ST32, BIT(32), 0 },
};

START_TEST(access_slow)
{
	const struct acc_case *c = &acc_cases[_i];
	uintptr_t h = fx_base(0) + c->gva;
	uint8_t v8 = 0xa5;
	uint16_t v16 = 0xa5a5;
	uint32_t v32 = 0xa5a5a5a5;
	uint64_t v64 = UINT64_C(0xa5a5a5a5a5a5a5a5);
	struct snap b;
	int ret = -1;

	snap_take(&b);
	switch (c->op) {
	case LD8: ret = btmmu_load8(h, &v8); break;
	case LD16: ret = btmmu_load16(h, &v16); break;
	case LD32: ret = btmmu_load32(h, &v32); break;
	case LD64: ret = btmmu_load64(h, &v64); break;
	case ST8: ret = btmmu_store8(h, 0x11); break;
	case ST16: ret = btmmu_store16(h, 0x1111); break;
	case ST32: ret = btmmu_store32(h, 0x11111111); break;
	case ST64: ret = btmmu_store64(h, UINT64_C(0x1111111111111111)); break;
	}
	expect(c->name, ret, 1);
	ck_assert_msg(v8 == 0xa5 && v16 == 0xa5a5 && v32 == 0xa5a5a5a5 &&
			      v64 == UINT64_C(0xa5a5a5a5a5a5a5a5),
		      "%s: *val written", c->name);
	ck_assert_uint_eq(fx.last.gva, c->fault_gva);
	check_intact(&b, 1, c->name); /* also: sentinel 0's bytes unchanged */
}
END_TEST

/* *val must be ordinary memory: NULL is an ordinary crash, not a loop. */
START_TEST(load32_null_val)
{
	btmmu_load32(fx_base(0) + 0x10000, NULL);
}
END_TEST

/* Outside libbtmmu's regions: an ordinary crash. */
START_TEST(load8_outside_regions)
{
	void *p = mmap(NULL, PG, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	uint8_t v;

	ck_assert(p != MAP_FAILED);
	btmmu_load8((uintptr_t)p, &v);
}
END_TEST

START_TEST(store64_outside_regions)
{
	void *p = mmap(NULL, PG, PROT_READ, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);

	ck_assert(p != MAP_FAILED);
	btmmu_store64((uintptr_t)p, 1);
}
END_TEST

/* ------------------------------------------------------------------ */
/* btmmu_version, btmmu_version_string: no input to get wrong          */
/* ------------------------------------------------------------------ */

START_TEST(version_no_input)
{
	struct snap b;

	snap_take(&b);
	ck_assert_uint_eq(btmmu_version(), BTMMU_VERSION_NUMBER);
	ck_assert_str_eq(btmmu_version_string(), BTMMU_VERSION_STRING);
	check_intact(&b, 0, "version");
}
END_TEST

/* ------------------------------------------------------------------ */

static TCase *tcase(Suite *s, const char *name)
{
	TCase *tc = tcase_create(name);

	tcase_add_checked_fixture(tc, setup, teardown);
	suite_add_tcase(s, tc);
	return tc;
}

#define LOOP(tc, fn, table) tcase_add_loop_test(tc, fn, 0, (int)NELEMS(table))
#define ONE(tc, fn, i) tcase_add_loop_test(tc, fn, i, (i) + 1)

static Suite *badinput_suite(void)
{
	Suite *s = suite_create("badinput");
	TCase *tc;

	tc = tcase(s, "fixture");
	tcase_add_test(tc, fixture_sanity);

	tc = tcase(s, "open");
	LOOP(tc, open_bad, open_cases);
	ONE(tc, in_callback_bad, CB_OPEN);

	tc = tcase(s, "close");
	tcase_add_test(tc, close_null);
	tcase_add_test(tc, close_busy);
	tcase_add_test(tc, close_busy_ram_only);
	tcase_add_test(tc, close_busy_space_only);
	ONE(tc, in_callback_bad, CB_CLOSE);

	tc = tcase(s, "backend_info");
	LOOP(tc, backend_info_bad, binfo_cases);

	tc = tcase(s, "backend_name");
	tcase_add_test(tc, backend_name_null);

	tc = tcase(s, "reclaim");
	tcase_add_test(tc, reclaim_null);

	tc = tcase(s, "ram_create");
	LOOP(tc, ram_create_bad, ram_cases);
	ONE(tc, in_callback_bad, CB_RAM_CREATE);

	tc = tcase(s, "ram_destroy");
	tcase_add_test(tc, ram_destroy_null);
	ONE(tc, in_callback_bad, CB_RAM_DESTROY);

	tc = tcase(s, "ram_host");
	tcase_add_test(tc, ram_host_null_ram);
	tcase_add_test(tc, ram_host_null_out);

	tc = tcase(s, "space_create");
	LOOP(tc, space_create_bad, space_cases);
	ONE(tc, in_callback_bad, CB_SPACE_CREATE);

	tc = tcase(s, "space_destroy");
	tcase_add_test(tc, space_destroy_null);
	ONE(tc, in_callback_bad, CB_SPACE_DESTROY);

	tc = tcase(s, "view_info");
	LOOP(tc, view_info_bad, vinfo_cases);

	tc = tcase(s, "view_base");
	LOOP(tc, view_base_bad, view_base_cases);

	tc = tcase(s, "in_window");
	LOOP(tc, in_window_bad, in_window_cases);

	tc = tcase(s, "map");
	LOOP(tc, map_bad, map_cases);

	tc = tcase(s, "map_around");
	LOOP(tc, map_around_bad, around_cases);
	LOOP(tc, map_around_bad_req, map_cases);

	tc = tcase(s, "map_batch");
	LOOP(tc, map_batch_bad, batch_cases);
	tcase_add_test(tc, map_batch_nreq_0);

	tc = tcase(s, "unmap");
	LOOP(tc, unmap_bad, unmap_cases);

	tc = tcase(s, "flush");
	LOOP(tc, flush_bad, flush_cases);

	tc = tcase(s, "flush_all");
	tcase_add_test(tc, flush_all_null);

	tc = tcase(s, "protect");
	LOOP(tc, protect_bad, protect_cases);

	tc = tcase(s, "unprotect");
	LOOP(tc, unprotect_bad, unprotect_cases);
	LOOP(tc, unprotect_since_bad, unprotect_cases);
	tcase_add_test(tc, protect_seq_bad);

	tc = tcase(s, "fault_resolved");
	tcase_add_test(tc, fault_resolved_null);
	tcase_add_test(tc, fault_resolved_no_ctx);
	tcase_add_test(tc, fault_resolved_in_callback);

	tc = tcase(s, "fault_leave");
	tcase_add_test(tc, fault_leave_null);
	tcase_add_test(tc, fault_leave_outside_callback);
	tcase_add_test(tc, fault_leave_null_in_callback);
	tcase_add_test(tc, fault_leave_twice);
	tcase_add_test(tc, fault_leave_then_return);

	tc = tcase(s, "fault_dispatch");
	LOOP(tc, fault_dispatch_bad, dispatch_cases);

	tc = tcase(s, "load_store");
	LOOP(tc, access_slow, acc_cases);
	tcase_add_test_raise_signal(tc, load32_null_val, SIGSEGV);
	tcase_add_test_raise_signal(tc, load8_outside_regions, SIGSEGV);
	tcase_add_test_raise_signal(tc, store64_outside_regions, SIGSEGV);

	tc = tcase(s, "stats_get");
	LOOP(tc, stats_get_bad, stats_cases);

	tc = tcase(s, "version");
	tcase_add_test(tc, version_no_input);
	return s;
}

int main(void)
{
	return fx_run(badinput_suite());
}
