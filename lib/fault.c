/* SPDX-License-Identifier: MIT */
/*
 * The fault dispatcher: one SIGSEGV handler per process. It finds the
 * region of the faulting address without locks, decodes the access, calls
 * the translator's callback and acts on its verdict. Faults that are not
 * ours go to the handler that was installed before us, run as the kernel
 * would have run it, so a real crash still crashes with SIGSEGV. A SIGBUS
 * in a region (the RAM file was truncated, the host ran out of memory) is
 * reported and passed on the same way.
 *
 * Everything here is async-signal-safe: no malloc, no blocking lock. The
 * only lock is ctx->lock, taken with btmmu__lock_mine(): when the fault
 * interrupted a library call of the same thread (a signal handler of the
 * translator touched guest memory), the dispatcher does not wait for it but
 * tells the callback (BTMMU_FAULT_NESTED) and answers without it.
 */
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <string.h>
#include <unistd.h>

#include "arch/arch.h"
#include "internal.h"

extern const char btmmu__probe_begin[], btmmu__probe_end[], btmmu__probe_fixup[];

/*
 * Dispatches nested on one thread: a fault inside the callback, or in a
 * signal handler that interrupted the callback. Deeper than this is taken
 * for a callback faulting on its own access forever, and passed on.
 */
#define NEST_MAX 4

/*
 * Per-thread dispatch state (initial-exec TLS: no allocation on first use).
 * Each level is one callback running on this thread: the dispatcher's frame
 * and the space it holds in flight (space destroy waits for it). A callback
 * may leave by siglongjmp(), skipping our bookkeeping: btmmu_fault_leave()
 * says so. Without it, a new fault whose dispatcher frame or interrupted
 * stack pointer is not below a level's frame still proves that level gone
 * (a live nested fault always runs deeper on the same stack).
 */
struct level {
	uintptr_t frame;
	struct btmmu_space *sp;
	const struct btmmu_fault *f;	/* what its callback was given */
};

static __thread struct {
	unsigned depth;
	struct level lv[NEST_MAX];
	/* The last fault this thread resolved with RETRY. */
	uintptr_t last_pc, last_addr;
	/*
	 * The current streak of RETRYs at one instruction: its pc, the last
	 * two host pages it faulted on, and how often a fault came back to one
	 * of them (livelock: two units of one access evicting each other).
	 */
	uintptr_t streak_pc, streak_page[2];
	unsigned streak_back;
} tls __attribute__((tls_model("initial-exec")));

bool btmmu__in_callback(void)
{
	return tls.depth != 0;
}

/* ------------------------------------------------------------------ */
/* Spaces in flight                                                    */
/* ------------------------------------------------------------------ */

static void space_hold(struct btmmu_space *sp)
{
	atomic_fetch_add_explicit(&sp->inflight, 1, memory_order_acquire);
}

static void space_release(struct btmmu_space *sp)
{
	if (atomic_fetch_sub_explicit(&sp->inflight, 1, memory_order_release) == 1)
		btmmu__futex_wake_all(&sp->inflight);
}

static void say(const char *msg)
{
	ssize_t r = write(STDERR_FILENO, msg, strlen(msg));

	(void)r;
}

static char *hex(char *p, uint64_t v)
{
	int sh;

	*p++ = '0';
	*p++ = 'x';
	for (sh = 60; sh > 0 && !(v >> sh); sh -= 4)
		;
	for (; sh >= 0; sh -= 4)
		*p++ = "0123456789abcdef"[(v >> sh) & 0xf];
	return p;
}

/*
 * Wait until no dispatch holds sp (the registry no longer finds it, so no
 * new one starts). A callback that left by siglongjmp() without
 * btmmu_fault_leave() holds it until its thread faults again: say so once
 * if the wait drags on.
 */
void btmmu__space_quiesce(struct btmmu_space *sp)
{
	unsigned waits = 0;
	int n;

	while ((n = atomic_load_explicit(&sp->inflight, memory_order_acquire)) != 0) {
		btmmu__futex_wait(&sp->inflight, n, 10 * 1000 * 1000);
		if (++waits == 100)
			say("libbtmmu: btmmu_space_destroy() waits for a fault callback still "
			    "running on this space (one that left by siglongjmp() must call "
			    "btmmu_fault_leave() first)\n");
	}
}

/* Drop levels whose callbacks are gone (left by siglongjmp() unannounced). */
static void drop_stale_levels(uintptr_t frame, uintptr_t sp)
{
	while (tls.depth) {
		struct level *l = &tls.lv[tls.depth - 1];

		if (frame < l->frame && sp < l->frame)
			return;
		tls.depth--;
		space_release(l->sp);
	}
}

/* ------------------------------------------------------------------ */
/* The handler and chaining                                            */
/* ------------------------------------------------------------------ */

enum { SLOT_SEGV, SLOT_BUS, NSLOTS };

static const int slot_sig[NSLOTS] = { SIGSEGV, SIGBUS };

/* Handler state, under handler_mutex; old[] is read by the handler. */
static pthread_mutex_t handler_mutex = PTHREAD_MUTEX_INITIALIZER;
static unsigned handler_users;
static bool handler_installed[NSLOTS];
static struct sigaction old[NSLOTS];

static void handler(int sig, siginfo_t *info, void *uc);

/*
 * Pass the signal to whoever handled it before us, as the kernel would
 * have delivered it: that handler's sa_mask blocked, and the signal itself
 * unless SA_NODEFER; SA_RESETHAND resets that handler (our copy of it) to
 * the default; SA_SIGINFO decides the call. The default action and
 * SIG_IGN: a fault the kernel raised is re-executed with the default
 * disposition, so it kills (and dumps core) with the right signal, as the
 * kernel does for a fault whose signal is ignored; a signal sent with
 * kill() or raise() is re-raised under the default, or dropped under
 * SIG_IGN.
 */
static void chain(int slot, int sig, siginfo_t *info, void *uc)
{
	struct sigaction *o = &old[slot];
	bool siginfo = o->sa_flags & SA_SIGINFO;
	void (*fn)(int) = o->sa_handler;
	void (*fn3)(int, siginfo_t *, void *) = o->sa_sigaction;
	sigset_t mask, saved;

	if (siginfo ? fn3 != NULL : (fn != SIG_DFL && fn != SIG_IGN)) {
		mask = o->sa_mask;
		if (!(o->sa_flags & SA_NODEFER))
			sigaddset(&mask, sig);
		if (o->sa_flags & SA_RESETHAND) {
			o->sa_flags &= ~SA_SIGINFO;
			o->sa_handler = SIG_DFL;
		}
		pthread_sigmask(SIG_BLOCK, &mask, &saved);
		if (siginfo)
			fn3(sig, info, uc);
		else
			fn(sig);
		pthread_sigmask(SIG_SETMASK, &saved, NULL);
		return;
	}
	if (info && info->si_code > 0) {
		/* Raised by the kernel: the access faults again, now fatally. */
		signal(sig, SIG_DFL);
		return;
	}
	if (!siginfo && fn == SIG_IGN)
		return;
	signal(sig, SIG_DFL);
	raise(sig);
}

/*
 * Install the handlers on first use. SA_NODEFER keeps SIGSEGV unblocked
 * inside the handler, so a callback that leaves by siglongjmp() without
 * restoring the mask leaves SIGSEGV deliverable; our own nesting record
 * replaces the kernel's deferral. SA_ONSTACK: a thread that set an
 * alternate signal stack (sigaltstack(2)) takes its faults there, so a
 * translator running guest code near its stack limit still gets its
 * callback.
 */
int btmmu__handler_get(struct btmmu *ctx)
{
	struct sigaction sa;
	int ret = 0, i;

	if (ctx->flags & BTMMU_OPEN_NO_HANDLER)
		return 0;
	pthread_mutex_lock(&handler_mutex);
	for (i = 0; i < NSLOTS && !ret; i++) {
		if (handler_installed[i])
			continue;
		memset(&sa, 0, sizeof(sa));
		sa.sa_sigaction = handler;
		sa.sa_flags = SA_SIGINFO | SA_NODEFER | SA_RESTART | SA_ONSTACK;
		sigemptyset(&sa.sa_mask);
		if (sigaction(slot_sig[i], &sa, &old[i]))
			ret = -errno;
		else
			handler_installed[i] = true;
	}
	if (!ret) {
		handler_users++;
		ctx->registered = true;
	} else if (!handler_users) {
		for (i = 0; i < NSLOTS; i++) {
			if (handler_installed[i])
				sigaction(slot_sig[i], &old[i], NULL);
			handler_installed[i] = false;
		}
	}
	pthread_mutex_unlock(&handler_mutex);
	return ret;
}

void btmmu__handler_fork_prepare(void)
{
	pthread_mutex_lock(&handler_mutex);
}

void btmmu__handler_fork_parent(void)
{
	pthread_mutex_unlock(&handler_mutex);
}

void btmmu__handler_fork_child(void)
{
	pthread_mutex_unlock(&handler_mutex);
}

/*
 * Drop a reference; the last one restores the previous handlers where ours
 * is still the one installed (someone who chained onto us keeps theirs).
 */
void btmmu__handler_put(struct btmmu *ctx)
{
	struct sigaction now;
	int i;

	if (!ctx->registered)
		return;
	pthread_mutex_lock(&handler_mutex);
	ctx->registered = false;
	if (--handler_users == 0) {
		for (i = 0; i < NSLOTS; i++) {
			if (!handler_installed[i])
				continue;
			if (!sigaction(slot_sig[i], NULL, &now) && (now.sa_flags & SA_SIGINFO) &&
			    now.sa_sigaction == handler) {
				sigaction(slot_sig[i], &old[i], NULL);
				handler_installed[i] = false;
			}
		}
	}
	pthread_mutex_unlock(&handler_mutex);
}

/* ------------------------------------------------------------------ */
/* Dispatch                                                            */
/* ------------------------------------------------------------------ */

static uint64_t region_gva(const struct btmmu_space *sp, uint64_t off)
{
	uint64_t gva = sp->window_gva + off;

	if (sp->va_bits < 64) {
		/* Keep wrapped (guard) addresses inside the guest VA. */
		uint64_t mask = (UINT64_C(1) << sp->va_bits) - 1;

		gva &= mask;
		if ((sp->flags & BTMMU_SPACE_SIGN_EXTEND) && (gva >> (sp->va_bits - 1)))
			gva |= ~mask;
	}
	return gva;
}

/*
 * Look the address up and fill the fault; hold its space in flight.
 * Returns the context, or NULL if the address is not in any region.
 */
static struct btmmu *fault_prepare(uintptr_t addr, ucontext_t *uc, struct btmmu_fault *f,
				   bool *guessed)
{
	struct btmmu__region *r;
	struct btmmu_space *sp;
	struct btmmu *ctx;
	unsigned e;
	uint64_t off;

	e = btmmu__registry_enter();
	r = btmmu__registry_lookup(addr);
	if (!r) {
		btmmu__registry_leave(e);
		return NULL;
	}
	sp = r->space;
	ctx = sp->ctx;
	space_hold(sp);
	off = addr - r->start;
	memset(f, 0, sizeof(*f));
	f->size = sizeof(*f);
	f->ctx = ctx;
	f->space = sp;
	f->space_opaque = sp->opaque;
	f->view = (unsigned)(r->view - sp->views);
	f->gva = region_gva(sp, off);
	f->host_addr = addr;
	f->pc = btmmu__arch_pc(uc);
	f->access = btmmu__arch_access(uc);
	*guessed = f->access & BTMMU__ACCESS_GUESSED;
	f->access &= ~BTMMU__ACCESS_GUESSED;
	f->ucontext = uc;
	f->gen = atomic_load_explicit(&r->view->gen, memory_order_acquire);
	f->flags = btmmu__shadow_fault_flags(ctx, r, off, f->access);
	btmmu__registry_leave(e);
	return ctx;
}

/* After RETRY: would the access succeed now? */
static bool made_progress(struct btmmu *ctx, uintptr_t addr, unsigned access)
{
	struct btmmu__region *r;
	unsigned e;
	bool ok = false;

	e = btmmu__registry_enter();
	r = btmmu__registry_lookup(addr);
	if (r && r->space->ctx == ctx)
		ok = btmmu__shadow_accessible(ctx, r, addr, access) > 0;
	btmmu__registry_leave(e);
	return ok;
}

/* SIGBUS: ours only to report (the RAM behind an entry is gone). */
static void report_sigbus(siginfo_t *info)
{
	uintptr_t addr = (uintptr_t)info->si_addr;
	struct btmmu__region *r;
	char msg[256], *p = msg;
	unsigned e;

	if (info->si_code <= 0)
		return;
	e = btmmu__registry_enter();
	r = btmmu__registry_lookup(addr);
	if (r) {
		static const char a[] = "libbtmmu: SIGBUS at host address ";
		static const char b[] = " (guest VA ";
		static const char c[] = " of a shadow region): the guest RAM file behind "
					"this entry is shorter than the RAM (truncated?) or "
					"the host could not supply the page; passing it on\n";

		memcpy(p, a, sizeof(a) - 1);
		p = hex(p + sizeof(a) - 1, addr);
		memcpy(p, b, sizeof(b) - 1);
		p = hex(p + sizeof(b) - 1, region_gva(r->space, addr - r->start));
		*p = 0;
		say(msg);
		say(c);
	}
	btmmu__registry_leave(e);
}

/*
 * Going round in circles: the same instruction faulting again on a host
 * page it faulted on just before, STREAK_MAX times, although every RETRY
 * made its own page accessible (an access spanning two units whose installs
 * evict each other in a small pool, or a callback undoing its own work).
 * An instruction that walks on (a string copy) never comes back to a page.
 * The streak lives in tls and counts RETRYs only.
 */
#define STREAK_MAX 8

/* The same instruction, back on one of the streak's last two pages. */
static bool streak_revisit(uintptr_t pc, uintptr_t page)
{
	return pc == tls.streak_pc && (page == tls.streak_page[0] || page == tls.streak_page[1]);
}

/* Before the callback: would one more RETRY here close the circle? */
static bool going_round(uintptr_t pc, uintptr_t addr, unsigned page_shift)
{
	return streak_revisit(pc, addr >> page_shift) && tls.streak_back + 1 >= STREAK_MAX;
}

/* After a RETRY that made progress: extend the streak; true if it closed. */
static bool streak_retry(uintptr_t pc, uintptr_t addr, unsigned page_shift)
{
	uintptr_t page = addr >> page_shift;

	if (pc != tls.streak_pc) {
		tls.streak_pc = pc;
		tls.streak_page[0] = page;
		tls.streak_page[1] = UINTPTR_MAX;
		tls.streak_back = 0;
		return false;
	}
	if (streak_revisit(pc, page) && ++tls.streak_back >= STREAK_MAX) {
		tls.streak_pc = 0;
		return true;
	}
	if (page != tls.streak_page[0]) {
		tls.streak_page[1] = tls.streak_page[0];
		tls.streak_page[0] = page;
	}
	return false;
}

/* Where a SLOW verdict would continue: resume_pc, or the probes' fixup. */
static uintptr_t slow_resume(const struct btmmu_fault *f)
{
	if (f->resume_pc)
		return f->resume_pc;
	if (f->pc >= (uintptr_t)btmmu__probe_begin && f->pc < (uintptr_t)btmmu__probe_end)
		return (uintptr_t)btmmu__probe_fixup;
	return 0;
}

static int dispatch(int sig, siginfo_t *info, void *ucv)
{
	uintptr_t frame = (uintptr_t)__builtin_frame_address(0);
	ucontext_t *uc = ucv;
	struct btmmu_fault f;
	struct btmmu_space *sp;
	struct btmmu *ctx;
	uintptr_t resume;
	unsigned level;
	bool guessed, nested, held = true;
	int verdict, ret = 0;

	if (sig != SIGSEGV || !info || !uc || info->si_code <= 0)
		return 0;
	drop_stale_levels(frame, btmmu__arch_sp(uc));
	if (tls.depth >= NEST_MAX) {
		say("libbtmmu: faults nested too deep in the fault callback; passing it on\n");
		return 0;
	}
	ctx = fault_prepare((uintptr_t)info->si_addr, uc, &f, &guessed);
	if (!ctx)
		return 0;
	sp = f.space;
	nested = f.flags & BTMMU_FAULT_NESTED;
	if (atomic_load_explicit(&ctx->forked, memory_order_relaxed)) {
		/* A child's copy of a context: its windows are no access. */
		space_release(sp);
		return 0;
	}
	/*
	 * Where the host cannot tell a write from a read (no ESR record in an
	 * aarch64 signal frame), the same instruction faulting again at the
	 * same address right after a RETRY that made it readable needed more:
	 * it was a write. Decoded kinds are never second-guessed (the guest may
	 * legitimately make the same read fault again, e.g. after revoking it).
	 */
	if (guessed && f.pc == tls.last_pc && f.host_addr == tls.last_addr)
		f.access = BTMMU_ACCESS_WRITE;
	tls.last_pc = tls.last_addr = 0;
	if (!ctx->fault_fn) {
		btmmu__stat_add(&ctx->st.faults_not_mine, 1);
		space_release(sp);
		return 0;
	}
	btmmu__stat_add(&ctx->st.faults, 1);
	if (!nested && going_round(f.pc, f.host_addr, ctx->host_page_shift))
		f.flags |= BTMMU_FAULT_REPEATED;
	level = tls.depth;
	tls.lv[level].frame = frame;
	tls.lv[level].sp = sp;
	tls.lv[level].f = &f;
	tls.depth = level + 1;
	verdict = ctx->fault_fn(&f, ctx->fault_opaque);
	/* Levels above ours whose callbacks jumped back into ours: gone. */
	while (tls.depth > level + 1)
		space_release(tls.lv[--tls.depth].sp);
	if (tls.depth > level)
		tls.depth = level;
	else
		/*
		 * btmmu_fault_leave() already released this level (and its
		 * hold on the space) and the callback returned anyway, as it
		 * may: its verdict counts as usual.
		 */
		held = false;

	if (verdict == BTMMU_FAULT_RETRY) {
		/*
		 * A streak that closed goes slow where there is a slow path
		 * (resume_pc, a probe); else the RETRY stands: the callback was
		 * told (BTMMU_FAULT_REPEATED) and chose it.
		 */
		if (!nested && made_progress(ctx, f.host_addr, f.access) &&
		    (!streak_retry(f.pc, f.host_addr, ctx->host_page_shift) || !slow_resume(&f))) {
			btmmu__stat_add(&ctx->st.faults_retry, 1);
			tls.last_pc = f.pc;
			tls.last_addr = f.host_addr;
			ret = 1;
			goto out;
		}
		btmmu__stat_add(&ctx->st.retry_no_progress, 1);
		verdict = BTMMU_FAULT_SLOW;
	}
	if (verdict == BTMMU_FAULT_SLOW) {
		tls.streak_pc = 0;
		resume = slow_resume(&f);
		if (resume) {
			btmmu__stat_add(&ctx->st.faults_slow, 1);
			btmmu__arch_set_pc(uc, resume);
			ret = 1;
			goto out;
		}
		say("libbtmmu: slow path requested without resume_pc; passing the fault on\n");
	}
	btmmu__stat_add(&ctx->st.faults_not_mine, 1);
out:
	if (held)
		space_release(sp);
	return ret;
}

BTMMU_EXPORT int btmmu_fault_resolved(const struct btmmu_fault *fault)
{
	if (!fault || !fault->ctx)
		return -EINVAL;
	if (btmmu__dead(fault->ctx))
		return -EOWNERDEAD;
	if (fault->flags & BTMMU_FAULT_NESTED)
		return 0;
	return made_progress(fault->ctx, fault->host_addr, fault->access);
}

BTMMU_EXPORT int btmmu_fault_leave(struct btmmu_fault *fault)
{
	struct level *l;

	if (!fault)
		return -EINVAL;
	if (!tls.depth)
		return -EALREADY;
	/* Only the innermost callback's own fault (not a copy, not an older one). */
	if (tls.lv[tls.depth - 1].f != fault)
		return -EINVAL;
	l = &tls.lv[--tls.depth];
	space_release(l->sp);
	return 0;
}

BTMMU_EXPORT int btmmu_fault_dispatch(int sig, void *info, void *ucontext)
{
	int saved = errno;
	int ret;

	if (sig == SIGBUS && info) {
		report_sigbus(info);
		errno = saved;
		return 0;
	}
	ret = dispatch(sig, (siginfo_t *)info, ucontext);
	errno = saved;
	return ret;
}

static void handler(int sig, siginfo_t *info, void *uc)
{
	int saved = errno;

	if (sig == SIGBUS) {
		if (info)
			report_sigbus(info);
		chain(SLOT_BUS, sig, info, uc);
	} else if (!dispatch(sig, info, uc)) {
		chain(SLOT_SEGV, sig, info, uc);
	}
	errno = saved;
}
