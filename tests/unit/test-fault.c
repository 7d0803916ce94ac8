/* SPDX-License-Identifier: MIT */
/*
 * The fault dispatcher: verdicts, decoding, chaining to the previous
 * handler (a real crash still crashes), recursion, leaving by siglongjmp,
 * manual dispatch, threads.
 */
#include <pthread.h>
#include <setjmp.h>
#include <sched.h>
#include <signal.h>
#include <stdatomic.h>
#include <unistd.h>

#include "fixture.h"

#define R BTMMU_PROT_READ
#define RW (BTMMU_PROT_READ | BTMMU_PROT_WRITE)

/* A load with a known slow-path continuation, like a JIT's ldst label. */
#if defined(__x86_64__)
__asm__(".text\n"
	".globl fxt_load\n.type fxt_load, @function\n"
	"fxt_load:\n\tmovl (%rdi), %eax\n\tret\n"
	".globl fxt_load_slow\n.type fxt_load_slow, @function\n"
	"fxt_load_slow:\n\tmovl $0xffffffff, %eax\n\tret\n");
#elif defined(__aarch64__)
__asm__(".text\n"
	".globl fxt_load\n.type fxt_load, %function\n"
	"fxt_load:\n\tldr w0, [x0]\n\tret\n"
	".globl fxt_load_slow\n.type fxt_load_slow, %function\n"
	"fxt_load_slow:\n\tmov w0, #-1\n\tret\n");
#endif
uint32_t fxt_load(uintptr_t addr);
extern const char fxt_load_slow[];

static sigjmp_buf env;
/* Addresses that are never mapped, hidden from the compiler's bounds checks. */
static volatile uintptr_t low_addr = 16;

static void setup(void)
{
	fx_open(0, 0);
	fx_space(32, 12, 0);
}

static void teardown(void)
{
	fx_close();
}

START_TEST(retry_reports_fault)
{
	struct btmmu_space_args a = { .size = sizeof(a), .va_bits = 32, .page_shift = 12,
				      .nviews = 2, .opaque = (void *)0x1234 };
	struct btmmu_view_info vi = { .size = sizeof(vi) };
	struct btmmu_space *sp;
	uint32_t v;

	ck_assert_int_eq(btmmu_space_create(fx.ctx, &a, &sp), 0);
	ck_assert_int_eq(btmmu_space_destroy(fx.sp), 0);
	fx.sp = sp;
	*(uint32_t *)(fx.host + 0x7010) = 0x600d;
	fx_add_pte(0x12345000, 0x7000, R);
	ck_assert_int_eq(btmmu_view_info(sp, 1, &vi), 0);
	ck_assert_int_eq(btmmu_load32(fx_base(1) + 0x12345010, &v), 0);
	ck_assert_uint_eq(v, 0x600d);
	ck_assert_uint_eq(fx.nfaults, 1);
	ck_assert_ptr_eq(fx.last.ctx, fx.ctx);
	ck_assert_ptr_eq(fx.last.space, sp);
	ck_assert_ptr_eq(fx.last.space_opaque, (void *)0x1234);
	ck_assert_uint_eq(fx.last.view, 1);
	ck_assert_uint_eq(fx.last.gva, 0x12345010);
	ck_assert_uint_eq(fx.last.host_addr, fx_base(1) + 0x12345010);
	ck_assert_uint_eq(fx.last.access, BTMMU_ACCESS_READ);
	ck_assert_uint_eq(fx.last.flags, 0);
	ck_assert_uint_eq(fx.last.gen, vi.gen);
	ck_assert_uint_ge(fx.last.pc, (uintptr_t)btmmu_load32);
	ck_assert_uint_lt(fx.last.pc, (uintptr_t)btmmu_load32 + 64);
	ck_assert_uint_eq(fx.last.size, sizeof(struct btmmu_fault));
	ck_assert_uint_eq(fx_stats().faults, 1);
	ck_assert_uint_eq(fx_stats().faults_retry, 1);
	/* The second access is direct. */
	ck_assert_int_eq(btmmu_load32(fx_base(1) + 0x12345014, &v), 0);
	ck_assert_uint_eq(fx.nfaults, 1);
}
END_TEST

START_TEST(write_decoded)
{
	fx_add_pte(0x5000, 0x5000, RW);
	ck_assert_int_eq(btmmu_store32(fx_base(0) + 0x5008, 77), 0);
	ck_assert_uint_eq(fx.last.access, BTMMU_ACCESS_WRITE);
	ck_assert_uint_eq(*(uint32_t *)(fx.host + 0x5008), 77);
}
END_TEST

/* Every probe width, both directions. */
START_TEST(probe_widths)
{
	uintptr_t b = fx_base(0) + 0x6000;
	uint8_t v8;
	uint16_t v16;
	uint32_t v32;
	uint64_t v64;

	fx_add_pte(0x6000, 0x6000, RW);
	ck_assert_int_eq(btmmu_store64(b, UINT64_C(0x0102030405060708)), 0);
	ck_assert_int_eq(btmmu_load8(b, &v8), 0);
	ck_assert_uint_eq(v8, 0x08);
	ck_assert_int_eq(btmmu_load16(b, &v16), 0);
	ck_assert_uint_eq(v16, 0x0708);
	ck_assert_int_eq(btmmu_load32(b, &v32), 0);
	ck_assert_uint_eq(v32, 0x05060708);
	ck_assert_int_eq(btmmu_load64(b, &v64), 0);
	ck_assert_uint_eq(v64, UINT64_C(0x0102030405060708));
	ck_assert_int_eq(btmmu_store8(b, 0xaa), 0);
	ck_assert_int_eq(btmmu_store16(b + 2, 0xbbcc), 0);
	ck_assert_int_eq(btmmu_store32(b + 4, 0xddeeff00), 0);
	ck_assert_uint_eq(*(uint64_t *)(fx.host + 0x6000), UINT64_C(0xddeeff00bbcc07aa));
	/* And each one takes the slow path when told to. */
	fx.policy = FX_SLOW;
	b = fx_base(1) + 0x6000;
	ck_assert_int_eq(btmmu_load8(b, &v8), 1);
	ck_assert_int_eq(btmmu_load16(b, &v16), 1);
	ck_assert_int_eq(btmmu_load32(b, &v32), 1);
	ck_assert_int_eq(btmmu_load64(b, &v64), 1);
	ck_assert_int_eq(btmmu_store8(b, 1), 1);
	ck_assert_int_eq(btmmu_store16(b, 1), 1);
	ck_assert_int_eq(btmmu_store32(b, 1), 1);
	ck_assert_int_eq(btmmu_store64(b, 1), 1);
	ck_assert_uint_eq(fx_stats().faults_slow, 8);
}
END_TEST

static int slow_to_label(struct btmmu_fault *f)
{
	f->resume_pc = (uintptr_t)fxt_load_slow;
	return BTMMU_FAULT_SLOW;
}

/* SLOW with resume_pc continues where the translator says. */
START_TEST(slow_resume_pc)
{
	fx.policy = FX_CUSTOM;
	fx.custom = slow_to_label;
	ck_assert_uint_eq(fxt_load(fx_base(0) + 0x9000), 0xffffffff);
	ck_assert_uint_eq(fx.last.pc, (uintptr_t)fxt_load);
	ck_assert_uint_eq(fx_stats().faults_slow, 1);
}
END_TEST

static int check_resolved(struct btmmu_fault *f)
{
	struct btmmu_map_req q = { .gva = 0xa000, .gpa = 0xa000, .len = 4096,
				   .prot = BTMMU_PROT_READ };

	ck_assert_int_eq(btmmu_fault_resolved(f), 0);
	ck_assert_int_eq(btmmu_map(f->space, f->view, &q), 1);
	/* Resolved for a read, not for a write. */
	ck_assert_int_eq(btmmu_fault_resolved(f), f->access == BTMMU_ACCESS_READ);
	return f->access == BTMMU_ACCESS_READ ? BTMMU_FAULT_RETRY : BTMMU_FAULT_SLOW;
}

/* The callback can ask whether what it installed resolves the fault. */
START_TEST(fault_resolved)
{
	uint32_t v;

	fx.policy = FX_CUSTOM;
	fx.custom = check_resolved;
	ck_assert_int_eq(btmmu_load32(fx_base(0) + 0xa000, &v), 0);
	ck_assert_int_eq(btmmu_store32(fx_base(1) + 0xa000, 1), 1);
	ck_assert_uint_eq(fx.nfaults, 2);
	ck_assert_uint_eq(fx_stats().retry_no_progress, 0);
	ck_assert_int_eq(btmmu_fault_resolved(NULL), -EINVAL);
}
END_TEST

/* A RETRY that installed nothing becomes SLOW instead of looping. */
START_TEST(retry_without_progress)
{
	uint32_t v;

	fx.policy = FX_RETRY_ONLY;
	ck_assert_int_eq(btmmu_load32(fx_base(0) + 0x9000, &v), 1);
	ck_assert_uint_eq(fx.nfaults, 1);
	ck_assert_uint_eq(fx_stats().retry_no_progress, 1);
	/* Read-only entry, write access: mapping it again is no progress either. */
	fx.policy = FX_MAP;
	fx_add_pte(0x9000, 0x9000, R);
	ck_assert_int_eq(btmmu_store32(fx_base(0) + 0x9000, 1), 1);
	ck_assert_uint_eq(fx_stats().retry_no_progress, 2);
}
END_TEST

/*
 * Each RETRY installs the faulting page and takes the other page of the
 * access away (as an eviction in a small pool does): every RETRY makes
 * progress for its own fault, yet the access never completes. Gives up
 * (SLOW) after 1000 faults, so the test fails instead of hanging.
 */
static int evict_partner(struct btmmu_fault *f)
{
	uint64_t page = f->gva & ~UINT64_C(0xfff), other = page ^ 0x1000;
	struct btmmu_map_req q = { .gva = page, .gpa = page, .len = 4096, .prot = BTMMU_PROT_READ };

	if (fx.nfaults > 1000)
		return BTMMU_FAULT_SLOW;
	ck_assert_int_ge(btmmu_unmap(f->space, 1u << f->view, other, 4096), 0);
	ck_assert_int_eq(btmmu_map(f->space, f->view, &q), 1);
	return BTMMU_FAULT_RETRY;
}

typedef uint32_t __attribute__((aligned(1), may_alias)) u32_unaligned;

static unsigned repeated_seen;

/* evict_partner, until the library says it goes round: then map both. */
static int evict_until_repeated(struct btmmu_fault *f)
{
	uint64_t page = f->gva & ~UINT64_C(0xfff), other = page ^ 0x1000;
	struct btmmu_map_req q = { .gva = page, .gpa = page, .len = 4096, .prot = BTMMU_PROT_READ };

	if (!(f->flags & BTMMU_FAULT_REPEATED))
		return evict_partner(f);
	repeated_seen++;
	ck_assert_int_eq(btmmu_map(f->space, f->view, &q), 1);
	q.gva = q.gpa = other;
	ck_assert_int_eq(btmmu_map(f->space, f->view, &q), 1);
	return BTMMU_FAULT_RETRY;
}

/* An access whose two pages evict each other goes slow instead of looping. */
START_TEST(retry_round_in_circles)
{
	uint32_t v;
	unsigned i;

	fx.policy = FX_CUSTOM;
	fx.custom = evict_partner;
	ck_assert_int_eq(btmmu_load32(fx_base(0) + 0x10ffe, &v), 1);
	ck_assert_uint_le(fx.nfaults, 16);
	ck_assert_uint_ge(fx.nfaults, 8);
	ck_assert_uint_eq(fx_stats().retry_no_progress, 1);
	ck_assert(fx.last.flags & BTMMU_FAULT_REPEATED);
	/*
	 * Translated code without a slow path (no resume_pc, not a probe):
	 * the callback is told, and its RETRY stands.
	 */
	fx.nfaults = 0;
	fx.custom = evict_until_repeated;
	*(volatile uint32_t *)(fx.host + 0x20ffc) = 0x11223344;
	*(volatile uint32_t *)(fx.host + 0x21000) = 0x55667788;
	/* one misaligned 4-byte load across the two pages (a type UBSan accepts) */
	v = *(volatile u32_unaligned *)(fx_base(0) + 0x20ffe);
	ck_assert_uint_eq(v, 0x77881122);
	ck_assert_uint_eq(repeated_seen, 1);
	ck_assert_uint_le(fx.nfaults, 16);
	ck_assert_uint_eq(fx_stats().retry_no_progress, 1);
	/* One instruction moving on over many pages, one fault each, is never cut. */
	fx.nfaults = 0;
	fx.policy = FX_MAP;
	for (i = 0; i < 100; i++)
		fx_add_pte(0x100000 + i * 0x1000, 0x100000 + i * 0x1000, BTMMU_PROT_READ);
	for (i = 0; i < 100; i++)
		ck_assert_int_eq(btmmu_load32(fx_base(0) + 0x100000 + i * 0x1000, &v), 0);
	ck_assert_uint_eq(fx.nfaults, 100);
	ck_assert_uint_eq(fx_stats().retry_no_progress, 1);
}
END_TEST

static volatile sig_atomic_t prev_called;
static void *prev_addr;

static volatile sig_atomic_t prev_mask_ok;

static void prev_handler(int sig, siginfo_t *si, void *uc)
{
	sigset_t now;

	(void)sig;
	(void)uc;
	pthread_sigmask(SIG_SETMASK, NULL, &now);
	prev_mask_ok = sigismember(&now, SIGUSR1) == 1;
	prev_called++;
	prev_addr = si->si_addr;
	siglongjmp(env, 1);
}

static void install_prev(void)
{
	struct sigaction sa;

	memset(&sa, 0, sizeof(sa));
	sa.sa_sigaction = prev_handler;
	sa.sa_flags = SA_SIGINFO | SA_NODEFER;
	sigemptyset(&sa.sa_mask);
	sigaddset(&sa.sa_mask, SIGUSR1); /* the library must honour it when chaining */
	ck_assert_int_eq(sigaction(SIGSEGV, &sa, NULL), 0);
}

/* NOT_MINE goes to the handler installed before the library's. */
START_TEST(not_mine_chains)
{
	volatile uintptr_t addr;

	fx_close();
	install_prev();
	fx_open(0, 0);
	fx_space(32, 12, 0);
	fx.policy = FX_NOT_MINE;
	addr = fx_base(0) + 0x4444;
	if (!sigsetjmp(env, 0))
		(void)*(volatile uint32_t *)addr;
	ck_assert_int_eq(prev_called, 1);
	ck_assert_int_eq(prev_mask_ok, 1);
	ck_assert_ptr_eq(prev_addr, (void *)addr);
	ck_assert_uint_eq(fx.nfaults, 1);
	ck_assert_uint_eq(fx_stats().faults_not_mine, 1);
}
END_TEST

/* A fault outside every region reaches the previous handler untouched. */
START_TEST(foreign_fault_chains)
{
	fx_close();
	install_prev();
	fx_open(0, 0);
	fx_space(32, 12, 0);
	if (!sigsetjmp(env, 0))
		(void)*(volatile uint32_t *)low_addr;
	ck_assert_int_eq(prev_called, 1);
	ck_assert_ptr_eq(prev_addr, (void *)low_addr);
	ck_assert_uint_eq(fx.nfaults, 0);
}
END_TEST

/* With the default disposition before us, a real crash still kills by SIGSEGV. */
START_TEST(null_deref_crashes)
{
	(void)*(volatile uint32_t *)low_addr;
}
END_TEST

/* SLOW without a continuation outside the probes: passed on, so it crashes. */
START_TEST(slow_without_resume_crashes)
{
	fx.policy = FX_SLOW;
	(void)*(volatile uint32_t *)(fx_base(0) + 0x1000);
}
END_TEST

/* A signal sent, not caused, is never ours even if si_addr looked like it. */
START_TEST(raised_sigsegv_crashes)
{
	raise(SIGSEGV);
}
END_TEST

static int touch_shadow(struct btmmu_fault *f)
{
	/* The callback itself faults in a region: must not recurse forever. */
	(void)*(volatile uint32_t *)f->host_addr;
	return BTMMU_FAULT_RETRY;
}

START_TEST(recursion_crashes)
{
	fx.policy = FX_CUSTOM;
	fx.custom = touch_shadow;
	(void)*(volatile uint32_t *)(fx_base(0) + 0x1000);
}
END_TEST

static int leave_by_longjmp(struct btmmu_fault *f)
{
	ck_assert_int_eq(btmmu_fault_leave(f), 0);
	siglongjmp(env, 1);
}

static int longjmp_without_leave(struct btmmu_fault *f)
{
	(void)f;
	siglongjmp(env, 1);
}

/*
 * Leaving the callback by siglongjmp (a guest exception), with sigsetjmp
 * not saving the mask, as QEMU does: later faults are dispatched normally.
 */
static void longjmp_case(int (*cb)(struct btmmu_fault *f))
{
	volatile int jumps = 0;
	uint32_t v;

	fx.policy = FX_CUSTOM;
	fx.custom = cb;
	if (!sigsetjmp(env, 0))
		(void)btmmu_load32(fx_base(0) + 0x1000, &v);
	else
		jumps++;
	ck_assert_int_eq(jumps, 1);
	fx.policy = FX_MAP;
	fx_add_pte(0x2000, 0x2000, R);
	*(uint32_t *)(fx.host + 0x2000) = 3;
	ck_assert_int_eq(btmmu_load32(fx_base(0) + 0x2000, &v), 0);
	ck_assert_uint_eq(v, 3);
	ck_assert_uint_eq(fx.nfaults, 2);
}

START_TEST(leave_then_longjmp) { longjmp_case(leave_by_longjmp); }
END_TEST
START_TEST(longjmp_without_leave_same_depth) { longjmp_case(longjmp_without_leave); }
END_TEST

/*
 * btmmu_fault_leave() and then returning, as QEMU's adapter does for a
 * store to a clean page: the verdict still counts (RETRY after installing
 * the page resumes the access). Before the fix the fault was passed on
 * and the process died by SIGSEGV.
 */
static int leave_then_map(struct btmmu_fault *f)
{
	ck_assert_int_eq(btmmu_fault_leave(f), 0);
	ck_assert_int_eq(fx_map(f->view, f->gva & ~UINT64_C(0xfff), 0x3000, 0x1000, RW, 0), 1);
	return btmmu_fault_resolved(f) == 1 ? BTMMU_FAULT_RETRY : BTMMU_FAULT_SLOW;
}

START_TEST(leave_then_return_retry)
{
	uint32_t v = 0;

	fx.policy = FX_CUSTOM;
	fx.custom = leave_then_map;
	*(uint32_t *)(fx.host + 0x3010) = 0xfeed;
	/* In translated code (no probe fixup to fall back on), and in a probe. */
	ck_assert_uint_eq(fxt_load(fx_base(0) + 0x7010), 0xfeed);
	ck_assert_int_eq(btmmu_load32(fx_base(1) + 0x7010, &v), 0);
	ck_assert_uint_eq(v, 0xfeed);
	ck_assert_uint_eq(fx_stats().faults_retry, 2);
}
END_TEST

START_TEST(leave_outside_callback)
{
	struct btmmu_fault f;

	memset(&f, 0, sizeof(f));
	ck_assert_int_eq(btmmu_fault_leave(&f), -EALREADY);
	ck_assert_int_eq(btmmu_fault_leave(NULL), -EINVAL);
}
END_TEST

static volatile int own_handled;

static void own_handler(int sig, siginfo_t *si, void *uc)
{
	if (btmmu_fault_dispatch(sig, si, uc)) {
		own_handled++;
		return;
	}
	siglongjmp(env, 1);
}

/* A translator that owns SIGSEGV dispatches by hand. */
START_TEST(manual_dispatch)
{
	struct sigaction sa;
	uint32_t v;

	fx_close();
	fx_open(0, BTMMU_OPEN_NO_HANDLER);
	fx_space(32, 12, 0);
	memset(&sa, 0, sizeof(sa));
	sa.sa_sigaction = own_handler;
	sa.sa_flags = SA_SIGINFO | SA_NODEFER;
	ck_assert_int_eq(sigaction(SIGSEGV, &sa, NULL), 0);
	fx_add_pte(0x3000, 0x3000, R);
	ck_assert_int_eq(btmmu_load32(fx_base(0) + 0x3000, &v), 0);
	ck_assert_int_eq(own_handled, 1);
	if (!sigsetjmp(env, 0))
		(void)*(volatile uint32_t *)low_addr;
	ck_assert_int_eq(own_handled, 1);
}
END_TEST

START_TEST(dispatch_rejects_other_signals)
{
	siginfo_t si;
	ucontext_t uc;

	memset(&si, 0, sizeof(si));
	memset(&uc, 0, sizeof(uc));
	si.si_code = SEGV_MAPERR;
	si.si_addr = (void *)(fx_base(0) + 0x1000);
	ck_assert_int_eq(btmmu_fault_dispatch(SIGBUS, &si, &uc), 0);
	si.si_code = SI_USER;
	ck_assert_int_eq(btmmu_fault_dispatch(SIGSEGV, &si, &uc), 0);
	ck_assert_int_eq(btmmu_fault_dispatch(SIGSEGV, NULL, &uc), 0);
	ck_assert_uint_eq(fx.nfaults, 0);
}
END_TEST

#if defined(__x86_64__)
/*
 * Where the host cannot say the access was a write (here: a signal frame
 * with no page-fault trap number), the same fault right after a RETRY that
 * made the page readable is taken as a write.
 */
START_TEST(repeat_after_retry_is_a_write)
{
	siginfo_t si;
	ucontext_t uc;

	fx_close();
	fx_open(0, BTMMU_OPEN_NO_HANDLER);
	fx_space(32, 12, 0);
	fx_add_pte(0x7000, 0x7000, R);
	memset(&si, 0, sizeof(si));
	memset(&uc, 0, sizeof(uc));
	si.si_code = SEGV_ACCERR;
	si.si_addr = (void *)(fx_base(0) + 0x7010);
	uc.uc_mcontext.gregs[REG_RIP] = 0x1234;
	ck_assert_int_eq(btmmu_fault_dispatch(SIGSEGV, &si, &uc), 1);
	ck_assert_uint_eq(fx.last.access, BTMMU_ACCESS_READ);
	/* Again: now a write, which the read-only page cannot resolve. */
	fx.last.resume_pc = 0;
	ck_assert_int_eq(btmmu_fault_dispatch(SIGSEGV, &si, &uc), 0);
	ck_assert_uint_eq(fx.last.access, BTMMU_ACCESS_WRITE);
	ck_assert_uint_eq(fx_stats().retry_no_progress, 1);
	/* Only a RETRY is remembered: the next one is a read again. */
	fx.pte[0].prot = RW;
	ck_assert_int_eq(btmmu_fault_dispatch(SIGSEGV, &si, &uc), 1);
	ck_assert_uint_eq(fx.last.access, BTMMU_ACCESS_READ);
	ck_assert_int_eq(btmmu_fault_dispatch(SIGSEGV, &si, &uc), 1);
	ck_assert_uint_eq(fx.last.access, BTMMU_ACCESS_WRITE);
	/*
	 * A decoded read (page-fault trap, error code without W) is never
	 * second-guessed: a guest may make the same read fault again.
	 */
	ck_assert_int_eq(btmmu_unmap(fx.sp, 1, 0x7000, 4096), 1);
	fx.pte[0].prot = R;
	uc.uc_mcontext.gregs[REG_TRAPNO] = 14;
	uc.uc_mcontext.gregs[REG_ERR] = 0x4;
	ck_assert_int_eq(btmmu_fault_dispatch(SIGSEGV, &si, &uc), 1);
	ck_assert_uint_eq(fx.last.access, BTMMU_ACCESS_READ);
	ck_assert_int_eq(btmmu_unmap(fx.sp, 1, 0x7000, 4096), 1);
	ck_assert_int_eq(btmmu_fault_dispatch(SIGSEGV, &si, &uc), 1);
	ck_assert_uint_eq(fx.last.access, BTMMU_ACCESS_READ);
}
END_TEST
#endif

static int admin_in_callback(struct btmmu_fault *f)
{
	struct btmmu_open_args oa = { .size = sizeof(oa) };
	struct btmmu_ram_args ra = { .size = sizeof(ra), .gpa = 1 << 30, .len = 4096, .fd = -1 };
	struct btmmu_ram *ram;
	struct btmmu *c;

	ck_assert_int_eq(btmmu_open(&oa, &c), -EDEADLK);
	ck_assert_int_eq(btmmu_close(f->ctx), -EDEADLK);
	ck_assert_int_eq(btmmu_ram_create(f->ctx, &ra, &ram), -EDEADLK);
	ck_assert_int_eq(btmmu_ram_destroy(fx.ram), -EDEADLK);
	return BTMMU_FAULT_SLOW;
}

START_TEST(admin_refused_in_callback)
{
	uint32_t v;

	fx.policy = FX_CUSTOM;
	fx.custom = admin_in_callback;
	ck_assert_int_eq(btmmu_load32(fx_base(0) + 0x1000, &v), 1);
	ck_assert_uint_eq(fx.nfaults, 1);
}
END_TEST

/* Through an old base after a flush: the region is stale. */
START_TEST(stale_region)
{
	uintptr_t old = fx_base(0);
	uint32_t v;

	ck_assert_int_eq(fx_map(0, 0x1000, 0x1000, 4096, R, 0), 1);
	ck_assert_int_eq(btmmu_flush(fx.sp, 1, 0), 0);
	ck_assert_int_ge(btmmu_reclaim(fx.ctx), 0);
	fx_add_pte(0x1000, 0x1000, R);
	ck_assert_int_eq(btmmu_load32(old + 0x1000, &v), 1);
	ck_assert(fx.last.flags & BTMMU_FAULT_STALE);
	ck_assert_uint_eq(fx_stats().retry_no_progress, 1);
}
END_TEST

/* Threads faulting at once, each on its own pages and on shared ones. */
#define NTHREADS 4
#define PAGES_PER_THREAD 256

static int map_linear(struct btmmu_fault *f, void *opaque)
{
	struct btmmu_map_req q;
	uint64_t page = f->gva & ~UINT64_C(0xfff);

	(void)opaque;
	q.gva = page;
	q.gpa = (page >> 4) & (FX_RAM_SIZE - 1) & ~UINT64_C(0xfff);
	q.len = 4096;
	q.prot = RW;
	q.flags = 0;
	return btmmu_map(f->space, f->view, &q) > 0 ? BTMMU_FAULT_RETRY : BTMMU_FAULT_SLOW;
}

struct worker {
	struct btmmu_space *sp;
	unsigned id;
	unsigned bad;
};

static void *worker_main(void *arg)
{
	struct worker *w = arg;
	uintptr_t base;
	unsigned i;

	btmmu_view_base(w->sp, w->id & 1, &base);
	for (i = 0; i < PAGES_PER_THREAD; i++) {
		uint64_t gva = ((uint64_t)(w->id * PAGES_PER_THREAD + i) << 16);
		uint32_t v;

		if (btmmu_store32(base + gva + 4 * w->id, w->id * 1000 + i) ||
		    btmmu_load32(base + gva + 4 * w->id, &v) || v != w->id * 1000 + i)
			w->bad++;
	}
	return NULL;
}

START_TEST(threads_fault_concurrently)
{
	struct btmmu_open_args oa = { .size = sizeof(oa), .fault_fn = map_linear };
	struct btmmu_ram_args ra = { .size = sizeof(ra), .len = FX_RAM_SIZE, .fd = -1 };
	struct btmmu_space_args sa = { .size = sizeof(sa), .va_bits = 32, .page_shift = 12, .nviews = 2 };
	struct worker w[NTHREADS];
	pthread_t t[NTHREADS];
	struct btmmu_stats st = { .size = sizeof(st) };
	struct btmmu_space *sp;
	struct btmmu_ram *ram;
	struct btmmu *ctx;
	unsigned i;

	fx_close();
	ck_assert_int_eq(btmmu_open(&oa, &ctx), 0);
	ck_assert_int_eq(btmmu_ram_create(ctx, &ra, &ram), 0);
	ck_assert_int_eq(btmmu_space_create(ctx, &sa, &sp), 0);
	for (i = 0; i < NTHREADS; i++) {
		w[i].sp = sp;
		w[i].id = i;
		w[i].bad = 0;
		ck_assert_int_eq(pthread_create(&t[i], NULL, worker_main, &w[i]), 0);
	}
	for (i = 0; i < NTHREADS; i++) {
		pthread_join(t[i], NULL);
		ck_assert_uint_eq(w[i].bad, 0);
	}
	ck_assert_int_eq(btmmu_stats_get(ctx, &st), 0);
	ck_assert_uint_eq(st.faults, NTHREADS * PAGES_PER_THREAD);
	ck_assert_uint_eq(st.faults_retry, NTHREADS * PAGES_PER_THREAD);
	ck_assert_int_eq(btmmu_space_destroy(sp), 0);
	ck_assert_int_eq(btmmu_ram_destroy(ram), 0);
	ck_assert_int_eq(btmmu_close(ctx), 0);
}
END_TEST

/*
 * Teardown races the fault path: threads fault in a loop (the callback
 * maps and uses fault->space; a pool of 64 entries makes them fault again)
 * while the main thread destroys the space and closes the context. Space
 * destroy must wait for dispatches still using the space; afterwards the
 * threads' accesses are not the library's and reach the handler installed
 * before it, which ends the thread. Run under TSan and ASan in CI.
 */
#define TD_THREADS 3

static __thread sigjmp_buf td_env;
static atomic_int td_started, td_done;

static void td_prev(int sig, siginfo_t *info, void *uc)
{
	(void)sig;
	(void)info;
	(void)uc;
	siglongjmp(td_env, 1);
}

static int td_callback(struct btmmu_fault *f, void *opaque)
{
	struct btmmu_map_req q = { .gva = f->gva & ~UINT64_C(0xfff),
				   .gpa = f->gva & 0xfff000, .len = 0x1000, .prot = RW };
	struct btmmu_view_info vi = { .size = sizeof(vi) };

	(void)opaque;
	btmmu_view_info(f->space, f->view, &vi);
	return btmmu_map(f->space, f->view, &q) > 0 ? BTMMU_FAULT_RETRY : BTMMU_FAULT_SLOW;
}

static void *td_worker(void *arg)
{
	struct btmmu_space *sp = arg;
	uintptr_t base;
	unsigned i = 0;
	uint32_t v;

	fx_valgrind_expect_faults(); /* it reads windows as they are destroyed */
	btmmu_view_base(sp, 0, &base);
	atomic_fetch_add(&td_started, 1);
	if (sigsetjmp(td_env, 1) == 0) {
		for (;;) {
			uint64_t gva = (uint64_t)(i++ % 4096) << 12;

			(void)btmmu_load32(base + gva, &v);
		}
	}
	atomic_fetch_add(&td_done, 1);
	return NULL;
}

START_TEST(close_while_threads_fault)
{
	struct btmmu_open_args oa = { .size = sizeof(oa), .fault_fn = td_callback,
				      .max_entries = 64 };
	struct btmmu_ram_args ra = { .size = sizeof(ra), .len = FX_RAM_SIZE, .fd = -1 };
	struct btmmu_space_args sa = { .size = sizeof(sa), .va_bits = 32, .page_shift = 12,
				       .nviews = 1 };
	struct sigaction act;
	pthread_t t[TD_THREADS];
	struct btmmu_space *sp;
	struct btmmu_ram *ram;
	struct btmmu *ctx;
	unsigned round, i;

	fx_close();
	memset(&act, 0, sizeof(act));
	act.sa_sigaction = td_prev;
	act.sa_flags = SA_SIGINFO | SA_NODEFER;
	sigemptyset(&act.sa_mask);
	ck_assert_int_eq(sigaction(SIGSEGV, &act, NULL), 0);
	for (round = 0; round < 20; round++) {
		atomic_store(&td_started, 0);
		atomic_store(&td_done, 0);
		ck_assert_int_eq(btmmu_open(&oa, &ctx), 0);
		ck_assert_int_eq(btmmu_ram_create(ctx, &ra, &ram), 0);
		ck_assert_int_eq(btmmu_space_create(ctx, &sa, &sp), 0);
		for (i = 0; i < TD_THREADS; i++)
			ck_assert_int_eq(pthread_create(&t[i], NULL, td_worker, sp), 0);
		while (atomic_load(&td_started) < TD_THREADS)
			sched_yield();
		usleep(2000 + round * 500);
		ck_assert_int_eq(btmmu_space_destroy(sp), 0);
		while (atomic_load(&td_done) < TD_THREADS)
			sched_yield();
		for (i = 0; i < TD_THREADS; i++)
			pthread_join(t[i], NULL);
		ck_assert_int_eq(btmmu_ram_destroy(ram), 0);
		ck_assert_int_eq(btmmu_close(ctx), 0);
	}
}
END_TEST

static Suite *fault_suite(void)
{
	Suite *s = suite_create("fault");
	TCase *tc;

	tc = tcase_create("verdicts");
	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_add_test(tc, retry_reports_fault);
	tcase_add_test(tc, write_decoded);
	tcase_add_test(tc, probe_widths);
	tcase_add_test(tc, slow_resume_pc);
	tcase_add_test(tc, retry_without_progress);
	tcase_add_test(tc, retry_round_in_circles);
	tcase_add_test(tc, fault_resolved);
	tcase_add_test(tc, stale_region);
	tcase_add_test(tc, admin_refused_in_callback);
	suite_add_tcase(s, tc);

	tc = tcase_create("chaining");
	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_add_test(tc, not_mine_chains);
	tcase_add_test(tc, foreign_fault_chains);
	tcase_add_test_raise_signal(tc, null_deref_crashes, SIGSEGV);
	tcase_add_test_raise_signal(tc, slow_without_resume_crashes, SIGSEGV);
	tcase_add_test_raise_signal(tc, raised_sigsegv_crashes, SIGSEGV);
	tcase_add_test_raise_signal(tc, recursion_crashes, SIGSEGV);
	suite_add_tcase(s, tc);

	tc = tcase_create("leaving");
	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_add_test(tc, leave_then_longjmp);
	tcase_add_test(tc, longjmp_without_leave_same_depth);
	tcase_add_test(tc, leave_outside_callback);
	tcase_add_test(tc, leave_then_return_retry);
	tcase_add_test(tc, manual_dispatch);
	tcase_add_test(tc, dispatch_rejects_other_signals);
#if defined(__x86_64__)
	tcase_add_test(tc, repeat_after_retry_is_a_write);
#endif
	suite_add_tcase(s, tc);

	tc = tcase_create("threads");
	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_add_test(tc, threads_fault_concurrently);
	suite_add_tcase(s, tc);

	tc = tcase_create("teardown");
	tcase_add_test(tc, close_while_threads_fault);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	return fx_run(fault_suite());
}
