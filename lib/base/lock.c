/* SPDX-License-Identifier: MIT */
/*
 * The context lock (see lock.h): Drepper's three-state futex mutex, plus a
 * small per-thread stack of the locks this thread holds or is taking.
 */
#include <errno.h>
#include <stdint.h>
#include <time.h>
#include <linux/futex.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "lock.h"

/*
 * Locks held at once by one thread: one per nesting level (a library call,
 * a signal handler's fault inside it, ...). Deeper nesting refuses.
 */
#define HELD_MAX 8

static __thread struct {
	unsigned n;
	const struct btmmu__lock *held[HELD_MAX];
} tls __attribute__((tls_model("initial-exec")));

bool btmmu__lock_held_here(const struct btmmu__lock *l)
{
	unsigned i;

	for (i = 0; i < tls.n && i < HELD_MAX; i++) {
		if (tls.held[i] == l)
			return true;
	}
	return false;
}

static void futex(atomic_int *w, int op, int val)
{
	syscall(SYS_futex, w, op | FUTEX_PRIVATE_FLAG, val, NULL, NULL, 0);
}

void btmmu__futex_wait(atomic_int *w, int val, long timeout_ns)
{
	struct timespec ts = { timeout_ns / 1000000000L, timeout_ns % 1000000000L };

	syscall(SYS_futex, w, FUTEX_WAIT | FUTEX_PRIVATE_FLAG, val, timeout_ns ? &ts : NULL,
		NULL, 0);
}

void btmmu__futex_wake_all(atomic_int *w)
{
	futex(w, FUTEX_WAKE, INT32_MAX);
}

static void take(struct btmmu__lock *l)
{
	int c = 0;
	unsigned spins;

	for (spins = 0; spins < 100; spins++) {
		c = 0;
		if (atomic_compare_exchange_weak_explicit(&l->word, &c, 1, memory_order_acquire,
							  memory_order_relaxed))
			return;
		if (c == 2)
			break;
#if defined(__x86_64__)
		__builtin_ia32_pause();
#elif defined(__aarch64__)
		__asm__ __volatile__("yield");
#endif
	}
	if (c != 2)
		c = atomic_exchange_explicit(&l->word, 2, memory_order_acquire);
	while (c != 0) {
		futex(&l->word, FUTEX_WAIT, 2);
		c = atomic_exchange_explicit(&l->word, 2, memory_order_acquire);
	}
}

static void give(struct btmmu__lock *l)
{
	if (atomic_exchange_explicit(&l->word, 0, memory_order_release) == 2)
		futex(&l->word, FUTEX_WAKE, 1);
}

void btmmu__unlock_keep(struct btmmu__lock *l)
{
	give(l);
}

void btmmu__relock_kept(struct btmmu__lock *l)
{
	take(l);
}

int btmmu__lock_mine(struct btmmu__lock *l)
{
	if (tls.n >= HELD_MAX || btmmu__lock_held_here(l))
		return -EDEADLK;
	/* Announce first: a signal from here on sees the lock as ours. */
	tls.held[tls.n] = l;
	atomic_signal_fence(memory_order_seq_cst);
	tls.n++;
	atomic_signal_fence(memory_order_seq_cst);
	take(l);
	return 0;
}

void btmmu__unlock(struct btmmu__lock *l)
{
	unsigned i;

	give(l);
	atomic_signal_fence(memory_order_seq_cst);
	/* Usually the last one taken; drop it wherever it is. */
	for (i = tls.n; i-- > 0;) {
		if (tls.held[i] == l) {
			for (; i + 1 < tls.n; i++)
				tls.held[i] = tls.held[i + 1];
			tls.n--;
			break;
		}
	}
}
