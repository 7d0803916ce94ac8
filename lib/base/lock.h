/* SPDX-License-Identifier: MIT */
/*
 * The context lock: a futex-based mutex that is async-signal-safe to take
 * and knows which locks the calling thread holds or is taking.
 *
 * A signal handler of the translator (a timer, a vCPU kick) may run on a
 * thread that is inside the library with the lock held, and touch guest
 * memory: the fault that follows enters the dispatcher on the same thread.
 * Waiting there would wait forever. btmmu__lock_mine() refuses instead
 * (-EDEADLK), so the dispatcher and every entry point can take another road
 * without waiting: the fault path never waits on a lock its own thread may
 * hold.
 *
 * The per-thread record is pushed before the lock is taken and popped after
 * it is released, so a signal arriving in between errs on the safe side
 * (the nested code refuses a lock it could in fact have taken).
 */
#ifndef BTMMU_BASE_LOCK_H
#define BTMMU_BASE_LOCK_H

#include <stdatomic.h>
#include <stdbool.h>

struct btmmu__lock {
	atomic_int word;	/* 0 free, 1 held, 2 held with waiters */
};

#define BTMMU__LOCK_INIT { 0 }

/*
 * Take the lock unless this thread holds it or is taking it (an interrupted
 * library call below us on the stack): then return -EDEADLK at once.
 * Returns 0 with the lock held. Async-signal-safe; spins briefly, then
 * sleeps in the kernel (futex).
 */
int btmmu__lock_mine(struct btmmu__lock *l);
/* Release a lock taken by btmmu__lock_mine(). Async-signal-safe. */
void btmmu__unlock(struct btmmu__lock *l);
/* Does this thread hold l or is it taking it? Async-signal-safe. */
bool btmmu__lock_held_here(const struct btmmu__lock *l);
/*
 * Release l for other threads but keep it recorded as this thread's, then
 * take it back: for work done unlocked that a signal handler's nested call
 * on this thread must still not run into (region teardown).
 */
void btmmu__unlock_keep(struct btmmu__lock *l);
void btmmu__relock_kept(struct btmmu__lock *l);

/*
 * Sleep while *w == val, at most timeout_ns (0: no limit), or until woken.
 * Spurious returns happen: callers re-check. Async-signal-safe.
 */
void btmmu__futex_wait(atomic_int *w, int val, long timeout_ns);
void btmmu__futex_wake_all(atomic_int *w);

#endif /* BTMMU_BASE_LOCK_H */
