/* SPDX-License-Identifier: MIT */
/*
 * Signals around the fault path: the translator's own signal handlers
 * touching guest memory while its thread is inside the library, the
 * alternate signal stack, chaining to the previous handler exactly as the
 * kernel would have run it, and SIGBUS from a region.
 */
#include <pthread.h>
#include <setjmp.h>
#include <sched.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <sys/time.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "fixture.h"

#define PAGE 4096u
#define NPAGES 256u

/* ------------------------------------------------------------------ */
/* A timer's handler reads guest memory while the thread maps/flushes  */
/* ------------------------------------------------------------------ */

static atomic_ulong handler_reads, handler_slow, loops, nested, nested_refused;
static atomic_bool stop_watch;
static uintptr_t handler_base;
static unsigned handler_next;

static void timer_handler(int sig)
{
	uint8_t v = 0;
	int saved = errno;
	unsigned i;

	(void)sig;
	/* A few pages the loop below never maps: each one faults. */
	for (i = 0; i < 4; i++) {
		unsigned p = NPAGES + (handler_next++ % NPAGES);

		if (btmmu_load8(handler_base + (uintptr_t)p * PAGE, &v) == 1)
			atomic_fetch_add(&handler_slow, 1);
		atomic_fetch_add(&handler_reads, 1);
	}
	errno = saved;
}

/* Abort (the test fails) if the loop stops making progress. */
static void *watchdog(void *arg)
{
	unsigned long last = (unsigned long)-1;
	/* valgrind runs the threads one at a time, signals in between: slower. */
	int idle = 0, idle_max = fx_valgrind() ? 300 : 50;

	(void)arg;
	while (!atomic_load(&stop_watch)) {
		unsigned long now = atomic_load(&loops);

		idle = now == last ? idle + 1 : 0;
		last = now;
		if (idle >= idle_max) { /* 5 s (30 s) without one loop */
			fprintf(stderr, "watchdog: no progress for %d s (%lu loops): deadlock\n",
				idle_max / 10, now);
			abort();
		}
		usleep(100000);
	}
	return NULL;
}

/* The fixture's callback, counting faults that interrupted a library call. */
static int counting_callback(struct btmmu_fault *f)
{
	int v;

	fx.policy = FX_MAP;
	v = fx_callback(f, NULL);
	fx.policy = FX_CUSTOM;
	if (f->flags & BTMMU_FAULT_NESTED) {
		atomic_fetch_add(&nested, 1);
		if (fx.last_map_ret == -EDEADLK)
			atomic_fetch_add(&nested_refused, 1);
	}
	return v;
}

/*
 * Touch the next 256 KiB of this thread's stack. Valgrind grows the main
 * thread's stack on the client's own faults but cannot during a signal's
 * delivery ("Can't extend stack ... during signal delivery"): the timer's
 * handler and the SIGSEGV it takes inside it must find the stack grown.
 */
static __attribute__((noinline)) void grow_stack(void)
{
	volatile char pad[256 * 1024];

	for (size_t i = 0; i < sizeof(pad); i += 1024)
		pad[i] = 0;
	(void)pad[0];
}

static void timer_case(uint32_t open_flags, double seconds)
{
	struct sigaction sa = { .sa_handler = timer_handler, .sa_flags = SA_RESTART };
	struct itimerval it = { { 0, 100 }, { 0, 100 } }; /* as fast as the kernel goes */
	struct timespec t0, t;
	sigset_t block, old;
	pthread_t wd;
	unsigned i, round = 0;

	grow_stack();
	if (fx_valgrind())
		it.it_interval.tv_usec = it.it_value.tv_usec = 1000;
	fx_open(0, open_flags);
	fx_space(32, 12, 0);
	/* The handler's pages translate (the callback maps them from its table). */
	for (i = 0; i < 2 * NPAGES; i++)
		fx_add_pte((uint64_t)i * PAGE, (uint64_t)i * PAGE, BTMMU_PROT_READ | BTMMU_PROT_WRITE);
	handler_base = fx_base(0);
	fx.policy = FX_CUSTOM;
	fx.custom = counting_callback;
	sigemptyset(&sa.sa_mask);
	ck_assert_int_eq(sigaction(SIGALRM, &sa, NULL), 0);
	/* The timer's signals are for this thread only. */
	sigemptyset(&block);
	sigaddset(&block, SIGALRM);
	pthread_sigmask(SIG_BLOCK, &block, &old);
	ck_assert_int_eq(pthread_create(&wd, NULL, watchdog, NULL), 0);
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	ck_assert_int_eq(setitimer(ITIMER_REAL, &it, NULL), 0);
	clock_gettime(CLOCK_MONOTONIC, &t0);
	do {
		/* map, unmap and flush pages of the first half, in a loop */
		for (i = 0; i < NPAGES; i += 8) {
			int r = fx_map(0, (uint64_t)i * PAGE, (uint64_t)i * PAGE, 8 * PAGE,
				       BTMMU_PROT_READ | BTMMU_PROT_WRITE, 0);

			ck_assert_int_eq(r, 8);
		}
		ck_assert_int_ge(btmmu_unmap(fx.sp, 1, 0, NPAGES / 2 * PAGE), 0);
		ck_assert_int_eq(btmmu_flush(fx.sp, 1, (round & 1) ? BTMMU_FLUSH_NONGLOBAL : 0),
				 0);
		handler_base = fx_base(0);
		atomic_fetch_add(&loops, 1);
		round++;
		clock_gettime(CLOCK_MONOTONIC, &t);
	} while ((double)(t.tv_sec - t0.tv_sec) + (double)(t.tv_nsec - t0.tv_nsec) * 1e-9 <
		 seconds);
	memset(&it, 0, sizeof(it));
	setitimer(ITIMER_REAL, &it, NULL);
	atomic_store(&stop_watch, true);
	pthread_join(wd, NULL);
	/* The handler ran often, and its reads went through the fault path. */
	ck_assert_uint_gt(atomic_load(&handler_reads), 100);
	ck_assert_uint_gt(fx_stats().faults, 100);
	/*
	 * Some arrived inside the library; those were refused, not waited on.
	 * (valgrind delivers signals only between its translated blocks, and
	 * none landed inside the library there: the run still proves the
	 * thread never hung.)
	 */
	if (!fx_valgrind())
		ck_assert_uint_gt(atomic_load(&nested), 0);
	ck_assert_uint_eq(atomic_load(&nested_refused), atomic_load(&nested));
	fx_close();
}

START_TEST(timer_handler_reads_guest_during_map_flush)
{
	timer_case(0, 2.0);
}
END_TEST

START_TEST(timer_handler_reads_guest_no_thread)
{
	timer_case(BTMMU_OPEN_NO_THREAD, 1.0);
}
END_TEST

/* ------------------------------------------------------------------ */
/* The alternate signal stack                                          */
/* ------------------------------------------------------------------ */

static uint8_t *alt_lo, *alt_hi;
static int on_alt;

static int check_stack(struct btmmu_fault *f)
{
	uint8_t here;

	(void)f;
	on_alt = &here >= alt_lo && &here < alt_hi;
	return BTMMU_FAULT_SLOW;
}

/* A thread with sigaltstack(2) takes its faults there (SA_ONSTACK). */
START_TEST(fault_runs_on_alternate_stack)
{
	size_t len = 256 << 10;
	stack_t ss = { .ss_size = len };
	uint8_t v;

	ss.ss_sp = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	ck_assert_ptr_ne(ss.ss_sp, MAP_FAILED);
	alt_lo = ss.ss_sp;
	alt_hi = alt_lo + len;
	ck_assert_int_eq(sigaltstack(&ss, NULL), 0);
	fx_open(0, 0);
	fx_space(32, 12, 0);
	fx.policy = FX_CUSTOM;
	fx.custom = check_stack;
	on_alt = -1;
	ck_assert_int_eq(btmmu_load8(fx_base(0) + 0x3000, &v), 1);
	ck_assert_int_eq(on_alt, 1);
	fx_close();
}
END_TEST

/* ------------------------------------------------------------------ */
/* Chaining: the previous handler runs as the kernel would run it      */
/* ------------------------------------------------------------------ */

static sigjmp_buf env;
static volatile int prev_calls, prev_segv_blocked, prev_usr1_blocked, prev_got_info;

/* An address no region covers and nothing maps: page 0. */
static volatile uintptr_t foreign_addr = 16;
#define FOREIGN ((volatile uint32_t *)foreign_addr)

static void note_mask(void)
{
	sigset_t now;

	pthread_sigmask(SIG_SETMASK, NULL, &now);
	prev_segv_blocked = sigismember(&now, SIGSEGV);
	prev_usr1_blocked = sigismember(&now, SIGUSR1);
}

static void prev_info(int sig, siginfo_t *info, void *uc)
{
	(void)uc;
	prev_calls++;
	prev_got_info = sig == SIGSEGV && info && info->si_addr == (void *)foreign_addr;
	note_mask();
	siglongjmp(env, 1);
}

static void prev_plain(int sig)
{
	prev_calls++;
	prev_got_info = sig == SIGSEGV;
	note_mask();
	siglongjmp(env, 1);
}

static void install_prev(int flags, bool siginfo)
{
	struct sigaction sa;

	memset(&sa, 0, sizeof(sa));
	if (siginfo)
		sa.sa_sigaction = prev_info;
	else
		sa.sa_handler = prev_plain;
	sa.sa_flags = flags | (siginfo ? SA_SIGINFO : 0);
	sigemptyset(&sa.sa_mask);
	sigaddset(&sa.sa_mask, SIGUSR1);
	ck_assert_int_eq(sigaction(SIGSEGV, &sa, NULL), 0);
}

static void foreign_fault(void)
{
	if (!sigsetjmp(env, 1))
		(void)*FOREIGN;
}

/* A region fault still goes to the library (its handler is still installed). */
static void region_fault_works(void)
{
	uint32_t v = 0;

	fx.policy = FX_MAP;
	fx_add_pte(0x5000, 0x5000, BTMMU_PROT_READ);
	*(uint32_t *)(fx.host + 0x5000) = 0xabcd;
	ck_assert_int_eq(btmmu_load32(fx_base(0) + 0x5000, &v), 0);
	ck_assert_uint_eq(v, 0xabcd);
}

/* Without SA_NODEFER the kernel blocks the signal in the handler: so do we. */
START_TEST(chain_defers_signal)
{
	install_prev(0, true);
	fx_open(0, 0);
	fx_space(32, 12, 0);
	foreign_fault();
	ck_assert_int_eq(prev_calls, 1);
	ck_assert_int_eq(prev_got_info, 1);
	ck_assert_int_eq(prev_segv_blocked, 1);
	ck_assert_int_eq(prev_usr1_blocked, 1);
	fx_close();
}
END_TEST

START_TEST(chain_nodefer)
{
	install_prev(SA_NODEFER, true);
	fx_open(0, 0);
	fx_space(32, 12, 0);
	foreign_fault();
	ck_assert_int_eq(prev_calls, 1);
	ck_assert_int_eq(prev_segv_blocked, 0);
	ck_assert_int_eq(prev_usr1_blocked, 1);
	fx_close();
}
END_TEST

/* A handler without SA_SIGINFO is called with the signal number only. */
START_TEST(chain_plain_handler)
{
	install_prev(0, false);
	fx_open(0, 0);
	fx_space(32, 12, 0);
	foreign_fault();
	ck_assert_int_eq(prev_calls, 1);
	ck_assert_int_eq(prev_got_info, 1);
	fx_close();
}
END_TEST

/*
 * SA_RESETHAND resets the previous handler, not the library's: region
 * faults keep working, and the next foreign fault takes the default action.
 */
START_TEST(chain_resethand)
{
	install_prev(SA_RESETHAND, true);
	fx_open(0, 0);
	fx_space(32, 12, 0);
	int status;
	pid_t pid;

	foreign_fault();
	ck_assert_int_eq(prev_calls, 1);
	region_fault_works();
	pid = fork();
	ck_assert_int_ge(pid, 0);
	if (pid == 0) {
		(void)*FOREIGN; /* now fatal */
		_exit(0);
	}
	ck_assert_int_eq(waitpid(pid, &status, 0), pid);
	ck_assert(WIFSIGNALED(status) && WTERMSIG(status) == SIGSEGV);
	fx_close();
}
END_TEST

/* SIG_IGN before us: a real fault still kills, as the kernel does... */
START_TEST(chain_ignored_fault_kills)
{
	signal(SIGSEGV, SIG_IGN);
	fx_open(0, 0);
	fx_space(32, 12, 0);
	(void)*FOREIGN;
}
END_TEST

/* ...and a SIGSEGV sent with raise() is ignored. */
START_TEST(chain_ignored_raise_ignored)
{
	signal(SIGSEGV, SIG_IGN);
	fx_open(0, 0);
	fx_space(32, 12, 0);
	ck_assert_int_eq(raise(SIGSEGV), 0);
	region_fault_works();
	fx_close();
}
END_TEST

/* ------------------------------------------------------------------ */
/* SIGBUS from a region                                                */
/* ------------------------------------------------------------------ */

/*
 * The RAM file is truncated under a live entry: the access raises SIGBUS,
 * which the library reports on stderr and passes on (default: death by
 * SIGBUS). Run in a child to read its stderr.
 */
START_TEST(sigbus_reported_and_kills)
{
	int pfd[2], status, fd;
	char out[2048];
	ssize_t n, got = 0;
	pid_t pid;

	ck_assert_int_eq(pipe(pfd), 0);
	pid = fork();
	ck_assert_int_ge(pid, 0);
	if (pid == 0) {
		struct btmmu_open_args oa = { .size = sizeof(oa), .fault_fn = fx_callback };
		struct btmmu_ram_args ra = { .size = sizeof(ra), .len = 1 << 20 };
		struct btmmu_space_args sa = { .size = sizeof(sa), .va_bits = 32,
					       .page_shift = 12, .nviews = 1 };
		struct btmmu_map_req q = { .gva = 0x1000, .gpa = 0x1000, .len = 0x1000,
					   .prot = BTMMU_PROT_READ };
		uintptr_t base;
		uint8_t v;

		dup2(pfd[1], 2);
		fd = memfd_create("sigbus", 0);
		if (fd < 0 || ftruncate(fd, 1 << 20))
			_exit(10);
		ra.fd = fd;
		if (btmmu_open(&oa, &fx.ctx) || btmmu_ram_create(fx.ctx, &ra, &fx.ram) ||
		    btmmu_space_create(fx.ctx, &sa, &fx.sp) || btmmu_map(fx.sp, 0, &q) != 1 ||
		    btmmu_view_base(fx.sp, 0, &base))
			_exit(11);
		if (ftruncate(fd, 0))
			_exit(12);
		(void)btmmu_load8(base + 0x1000, &v);
		_exit(13);
	}
	close(pfd[1]);
	while ((n = read(pfd[0], out + got, sizeof(out) - 1 - (size_t)got)) > 0)
		got += n;
	out[got] = 0;
	ck_assert_int_eq(waitpid(pid, &status, 0), pid);
	ck_assert_msg(WIFSIGNALED(status) && WTERMSIG(status) == SIGBUS,
		      "child status %#x, stderr: %s", status, out);
	ck_assert_msg(strstr(out, "libbtmmu: SIGBUS") && strstr(out, "guest VA 0x1000"),
		      "stderr: %s", out);
}
END_TEST

Suite *signals_suite(void);

Suite *signals_suite(void)
{
	Suite *s = suite_create("signals");
	TCase *tc = tcase_create("nested");

	tcase_set_timeout(tc, 30);
	tcase_add_test(tc, timer_handler_reads_guest_during_map_flush);
	tcase_add_test(tc, timer_handler_reads_guest_no_thread);
	suite_add_tcase(s, tc);

	tc = tcase_create("altstack");
	tcase_add_test(tc, fault_runs_on_alternate_stack);
	suite_add_tcase(s, tc);

	tc = tcase_create("chain");
	tcase_add_test(tc, chain_defers_signal);
	tcase_add_test(tc, chain_nodefer);
	tcase_add_test(tc, chain_plain_handler);
	tcase_add_test(tc, chain_resethand);
	tcase_add_test_raise_signal(tc, chain_ignored_fault_kills, SIGSEGV);
	tcase_add_test(tc, chain_ignored_raise_ignored);
	suite_add_tcase(s, tc);

	tc = tcase_create("sigbus");
	tcase_add_test(tc, sigbus_reported_and_kills);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	return fx_run(signals_suite());
}
