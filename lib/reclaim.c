/* SPDX-License-Identifier: MIT */
/*
 * Reclaim: flushes retire a view's region in O(1) by switching to a clean
 * one from its ring; the retired region is torn down off the caller's path
 * by the background thread here (or btmmu_reclaim() with
 * BTMMU_OPEN_NO_THREAD). The teardown itself (one host call over the whole
 * window, made without ctx->lock) is btmmu__reclaim_one() in
 * shadow/window.c.
 */
#include <errno.h>
#include <sched.h>
#include <signal.h>
#include <time.h>

#include "internal.h"

/*
 * The reclaimer sleeps at SCHED_IDLE, so waking it never preempts the
 * translator's thread that flushed (which would then pay for the teardown
 * after all): it starts only when a CPU has time. While it has work it runs
 * at SCHED_OTHER, because it holds ctx->lock and the kernel's mmap lock
 * while it works and must not be starved there; it switches only when
 * there is work, so an idle period costs no system call. If it cannot get
 * a CPU the ring runs out and flushes tear down on the caller's path
 * (stats: sync_reclaims), no worse than having no ring. Besides being woken
 * when a ring runs low, it makes a pass every RECLAIM_PERIOD_MS.
 *
 * It is created with explicit scheduling attributes (SCHED_OTHER, not the
 * creating thread's policy) and changes only its own policy: no thread of
 * the caller's sees a change.
 */
#define RECLAIM_PERIOD_MS 50

static void set_policy(int policy)
{
	struct sched_param sp = { .sched_priority = 0 };

	pthread_setschedparam(pthread_self(), policy, &sp);
}

static void *reaper_main(void *arg)
{
	struct btmmu *ctx = arg;
	bool work;

	set_policy(SCHED_IDLE);
	for (;;) {
		struct timespec ts;

		clock_gettime(CLOCK_REALTIME, &ts);
		ts.tv_nsec += RECLAIM_PERIOD_MS * 1000000L;
		if (ts.tv_nsec >= 1000000000L) {
			ts.tv_sec++;
			ts.tv_nsec -= 1000000000L;
		}
		while (sem_timedwait(&ctx->reaper_sem, &ts) && errno == EINTR)
			;
		if (atomic_load(&ctx->reaper_stop))
			break;
		btmmu__lock_mine(&ctx->lock);
		work = !cds_list_empty(&ctx->retired);
		btmmu__unlock(&ctx->lock);
		if (!work)
			continue;
		set_policy(SCHED_OTHER);
		btmmu__lock_mine(&ctx->lock);
		while (btmmu__reclaim_one(ctx))
			;
		btmmu__unlock(&ctx->lock);
		set_policy(SCHED_IDLE);
	}
	return NULL;
}

int btmmu__reaper_start(struct btmmu *ctx)
{
	struct sched_param prio = { .sched_priority = 0 };
	pthread_attr_t attr;
	sigset_t all, old;
	int ret;

	if (ctx->flags & BTMMU_OPEN_NO_THREAD)
		return 0;
	if (sem_init(&ctx->reaper_sem, 0, 0))
		return -errno;
	ret = -pthread_attr_init(&attr);
	if (ret)
		goto err_sem;
	/* Not the creating thread's policy (SCHED_FIFO, SCHED_BATCH...). */
	pthread_attr_setinheritsched(&attr, PTHREAD_EXPLICIT_SCHED);
	pthread_attr_setschedpolicy(&attr, SCHED_OTHER);
	pthread_attr_setschedparam(&attr, &prio);
	/* The thread inherits a full mask: signals are for the translator's threads. */
	sigfillset(&all);
	pthread_sigmask(SIG_SETMASK, &all, &old);
	ret = -pthread_create(&ctx->reaper, &attr, reaper_main, ctx);
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	pthread_attr_destroy(&attr);
	if (ret)
		goto err_sem;
	ctx->reaper_running = true;
	return 0;

err_sem:
	sem_destroy(&ctx->reaper_sem);
	return ret;
}

void btmmu__reaper_stop(struct btmmu *ctx)
{
	if (!ctx->reaper_running)
		return;
	atomic_store(&ctx->reaper_stop, true);
	sem_post(&ctx->reaper_sem);
	pthread_join(ctx->reaper, NULL);
	sem_destroy(&ctx->reaper_sem);
	ctx->reaper_running = false;
}

BTMMU_EXPORT int btmmu_reclaim(struct btmmu *ctx)
{
	int n = 0;

	if (!ctx)
		return -EINVAL;
	if (btmmu__dead(ctx))
		return -EOWNERDEAD;
	if (btmmu__lock_mine(&ctx->lock))
		return -EDEADLK;
	while (btmmu__reclaim_one(ctx))
		n++;
	btmmu__unlock(&ctx->lock);
	return n;
}
