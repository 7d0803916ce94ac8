/* SPDX-License-Identifier: MIT */
/*
 * The fault dispatcher: one SIGSEGV handler per process. It finds the
 * region of the faulting address without locks, decodes the access, calls
 * the translator's callback and acts on its verdict. Faults that are not
 * ours go to the handler that was installed before us, so a real crash
 * still crashes with SIGSEGV.
 *
 * Everything here is async-signal-safe: no malloc, no blocking lock; only
 * ctx->lock, which no thread holds while it can fault in a region.
 */
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <string.h>
#include <unistd.h>

#include "arch/arch.h"
#include "internal.h"

extern struct sigaction btmmu__old_action;
extern const char btmmu__probe_begin[], btmmu__probe_end[], btmmu__probe_fixup[];

/*
 * Per-thread dispatch state (initial-exec TLS: no allocation on first use).
 * depth counts callbacks running on this thread and frame is the
 * dispatcher's frame of the innermost one. A callback may leave by
 * siglongjmp(), skipping our bookkeeping: btmmu_fault_leave() says so.
 * Without it, a new fault whose dispatcher frame or interrupted stack
 * pointer is not below the recorded frame still proves the old callback is
 * gone (a live nested fault always runs deeper on the same stack).
 */
static __thread struct {
	unsigned depth;
	uintptr_t frame;
	/* The last fault this thread resolved with RETRY. */
	uintptr_t last_pc, last_addr;
} tls __attribute__((tls_model("initial-exec")));

bool btmmu__in_callback(void)
{
	return tls.depth != 0;
}

static void say(const char *msg)
{
	ssize_t r = write(STDERR_FILENO, msg, strlen(msg));

	(void)r;
}

/* Pass the signal to whoever handled SIGSEGV before us. */
static void chain(int sig, siginfo_t *info, void *uc)
{
	const struct sigaction *old = &btmmu__old_action;
	bool info_handler = (old->sa_flags & SA_SIGINFO) && old->sa_sigaction;
	sigset_t saved;

	if (info_handler || (!(old->sa_flags & SA_SIGINFO) && old->sa_handler != SIG_DFL &&
			     old->sa_handler != SIG_IGN)) {
		/* Run it as the kernel would have: its mask blocked, reset if asked. */
		pthread_sigmask(SIG_BLOCK, &old->sa_mask, &saved);
		if (old->sa_flags & SA_RESETHAND)
			signal(sig, SIG_DFL);
		if (info_handler)
			old->sa_sigaction(sig, info, uc);
		else
			old->sa_handler(sig);
		pthread_sigmask(SIG_SETMASK, &saved, NULL);
		return;
	}
	/*
	 * Default action: restore it and let the access fault again (a real
	 * fault), or re-raise a signal that was sent rather than caused.
	 */
	signal(sig, SIG_DFL);
	if (info->si_code <= 0)
		raise(sig);
}

/* Under ctx->lock: flags describing the faulting address. */
static unsigned fault_flags(struct btmmu *ctx, struct btmmu__region *r, uint64_t off,
			    unsigned access)
{
	struct btmmu_space *sp = r->space;
	struct btmmu__entry *e;
	unsigned flags = 0;
	uint64_t unit = UINT64_C(1) << sp->unit_shift;
	uint32_t ceil;

	if (r->state != BTMMU__REGION_CURRENT)
		flags |= BTMMU_FAULT_STALE;
	if (off >= r->len)
		return flags | BTMMU_FAULT_GUARD;
	e = btmmu__entry_find(ctx, r, off & ~(unit - 1));
	if (!e || !(e->flags & BTMMU__E_INSTALLED))
		return flags;
	flags |= BTMMU_FAULT_MAPPED;
	ceil = btmmu__ram_ceiling(e->ram, e->gpa + (off & (unit - 1)),
				  UINT64_C(1) << BTMMU_GRANULE_SHIFT);
	if (!(ceil & access) && !(access == BTMMU_ACCESS_READ && (ceil & BTMMU_PROT_EXEC)))
		flags |= BTMMU_FAULT_PROTECTED;
	return flags;
}

/*
 * Look the address up and fill the fault. Returns the context, or NULL if
 * the address is not in any region.
 */
static struct btmmu *fault_prepare(uintptr_t addr, ucontext_t *uc, struct btmmu_fault *f,
				   bool *guessed)
{
	struct btmmu__region *r;
	struct btmmu_space *sp;
	struct btmmu *ctx;
	unsigned e;
	uint64_t off, gva;

	e = btmmu__registry_enter();
	r = btmmu__registry_lookup(addr);
	if (!r) {
		btmmu__registry_leave(e);
		return NULL;
	}
	sp = r->space;
	ctx = sp->ctx;
	off = addr - r->start;
	gva = sp->window_gva + off;
	if (sp->va_bits < 64) {
		/* Keep wrapped (guard) addresses inside the guest VA. */
		uint64_t mask = (UINT64_C(1) << sp->va_bits) - 1;

		gva &= mask;
		if ((sp->flags & BTMMU_SPACE_SIGN_EXTEND) && (gva >> (sp->va_bits - 1)))
			gva |= ~mask;
	}
	memset(f, 0, sizeof(*f));
	f->size = sizeof(*f);
	f->ctx = ctx;
	f->space = sp;
	f->space_opaque = sp->opaque;
	f->view = (unsigned)(r->view - sp->views);
	f->gva = gva;
	f->host_addr = addr;
	f->pc = btmmu__arch_pc(uc);
	f->access = btmmu__arch_access(uc);
	*guessed = f->access & BTMMU__ACCESS_GUESSED;
	f->access &= ~BTMMU__ACCESS_GUESSED;
	f->ucontext = uc;
	f->gen = atomic_load_explicit(&r->view->gen, memory_order_acquire);
	btmmu__spin_lock(&ctx->lock);
	f->flags = fault_flags(ctx, r, off, f->access);
	btmmu__spin_unlock(&ctx->lock);
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
	if (r && r->space->ctx == ctx) {
		btmmu__spin_lock(&ctx->lock);
		ok = btmmu__accessible(ctx, r, addr, access);
		btmmu__spin_unlock(&ctx->lock);
	}
	btmmu__registry_leave(e);
	return ok;
}

static int dispatch(int sig, siginfo_t *info, void *ucv)
{
	uintptr_t frame = (uintptr_t)__builtin_frame_address(0);
	ucontext_t *uc = ucv;
	struct btmmu_fault f;
	struct btmmu *ctx;
	uintptr_t resume;
	bool guessed;
	int verdict;

	if (sig != SIGSEGV || !info || !uc || info->si_code <= 0)
		return 0;
	if (tls.depth) {
		if (frame < tls.frame && btmmu__arch_sp(uc) < tls.frame) {
			/* A fault inside a callback: never re-enter it. */
			say("libbtmmu: fault inside the fault callback; passing it on\n");
			return 0;
		}
		tls.depth = 0; /* the previous callback left by siglongjmp */
	}
	ctx = fault_prepare((uintptr_t)info->si_addr, uc, &f, &guessed);
	if (!ctx)
		return 0;
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
		return 0;
	}
	btmmu__stat_add(&ctx->st.faults, 1);
	tls.frame = frame;
	tls.depth++;
	verdict = ctx->fault_fn(&f, ctx->fault_opaque);
	if (tls.depth) /* btmmu_fault_leave() may have dropped it already */
		tls.depth--;

	if (verdict == BTMMU_FAULT_RETRY) {
		if (made_progress(ctx, f.host_addr, f.access)) {
			btmmu__stat_add(&ctx->st.faults_retry, 1);
			tls.last_pc = f.pc;
			tls.last_addr = f.host_addr;
			return 1;
		}
		btmmu__stat_add(&ctx->st.retry_no_progress, 1);
		verdict = BTMMU_FAULT_SLOW;
	}
	if (verdict == BTMMU_FAULT_SLOW) {
		resume = f.resume_pc;
		if (!resume && f.pc >= (uintptr_t)btmmu__probe_begin &&
		    f.pc < (uintptr_t)btmmu__probe_end)
			resume = (uintptr_t)btmmu__probe_fixup;
		if (resume) {
			btmmu__stat_add(&ctx->st.faults_slow, 1);
			btmmu__arch_set_pc(uc, resume);
			return 1;
		}
		say("libbtmmu: slow path requested without resume_pc; passing the fault on\n");
	}
	btmmu__stat_add(&ctx->st.faults_not_mine, 1);
	return 0;
}

BTMMU_EXPORT int btmmu_fault_resolved(const struct btmmu_fault *fault)
{
	if (!fault || !fault->ctx)
		return -EINVAL;
	return made_progress(fault->ctx, fault->host_addr, fault->access);
}

BTMMU_EXPORT int btmmu_fault_leave(struct btmmu_fault *fault)
{
	if (!fault)
		return -EINVAL;
	if (!tls.depth)
		return -EALREADY;
	tls.depth--;
	return 0;
}

BTMMU_EXPORT int btmmu_fault_dispatch(int sig, void *info, void *ucontext)
{
	int saved = errno;
	int ret = dispatch(sig, (siginfo_t *)info, ucontext);

	errno = saved;
	return ret;
}

void btmmu__sigsegv(int sig, siginfo_t *info, void *uc)
{
	int saved = errno;

	if (!dispatch(sig, info, uc))
		chain(sig, info, uc);
	errno = saved;
}
