/* SPDX-License-Identifier: MIT */
/*
 * Reclaim: flushes retire a view's region in O(1) by switching to a clean
 * one from its ring; the retired region is torn down here, off the caller's
 * path, by a background thread (or btmmu_reclaim() with
 * BTMMU_OPEN_NO_THREAD). Teardown is one host call over the whole window,
 * made without ctx->lock so faults on other regions proceed meanwhile.
 */
#include <errno.h>
#include <sched.h>
#include <signal.h>
#include <time.h>

#include "internal.h"

void btmmu__spin_lock(struct btmmu__spinlock *l)
{
	unsigned n = 0;

	while (atomic_flag_test_and_set_explicit(&l->flag, memory_order_acquire)) {
		if (++n < 64) {
#if defined(__x86_64__)
			__builtin_ia32_pause();
#elif defined(__aarch64__)
			__asm__ __volatile__("yield");
#endif
		} else {
			sched_yield();
		}
	}
}

/* Wait (dropping ctx->lock) until no region is being torn down unlocked. */
void btmmu__wait_tearing(struct btmmu *ctx)
{
	while (ctx->tearing) {
		btmmu__spin_unlock(&ctx->lock);
		sched_yield();
		btmmu__spin_lock(&ctx->lock);
	}
}

static void finish(struct btmmu *ctx, struct btmmu__region *r)
{
	btmmu__region_drop_entries(ctx, r, false);
	r->state = BTMMU__REGION_CLEAN;
	btmmu__stat_add(&ctx->st.reclaims, 1);
}

static void reclaim_region_locked(struct btmmu *ctx, struct btmmu__region *r)
{
	cds_list_del(&r->retired);
	ctx->ops->clear(ctx, r->start, r->len);
	finish(ctx, r);
}

bool btmmu__reclaim_locked(struct btmmu *ctx)
{
	if (cds_list_empty(&ctx->retired))
		return false;
	reclaim_region_locked(ctx,
			      cds_list_first_entry(&ctx->retired, struct btmmu__region, retired));
	return true;
}

bool btmmu__reclaim_view_locked(struct btmmu *ctx, struct btmmu__view *view)
{
	struct btmmu__region *r;

	cds_list_for_each_entry(r, &ctx->retired, retired) {
		if (r->view == view) {
			reclaim_region_locked(ctx, r);
			return true;
		}
	}
	return false;
}

bool btmmu__reclaim_one(struct btmmu *ctx)
{
	struct btmmu__region *r;

	btmmu__wait_tearing(ctx);
	if (cds_list_empty(&ctx->retired))
		return false;
	r = cds_list_first_entry(&ctx->retired, struct btmmu__region, retired);
	cds_list_del(&r->retired);
	r->state = BTMMU__REGION_TEARING;
	ctx->tearing = r;
	btmmu__spin_unlock(&ctx->lock);
	ctx->ops->clear(ctx, r->start, r->len);
	btmmu__spin_lock(&ctx->lock);
	finish(ctx, r);
	ctx->tearing = NULL;
	return true;
}

/*
 * The reclaimer sleeps at SCHED_IDLE, so waking it never preempts the
 * translator's thread that flushed (which would then pay for the teardown
 * after all): it starts only when a CPU has time. Once running it returns
 * to SCHED_OTHER, because it holds ctx->lock and the kernel's mmap lock
 * while it works and must not be starved there. If it cannot get a CPU the
 * ring runs out and flushes tear down on the caller's path (stats:
 * sync_reclaims), no worse than having no ring. Besides being woken when a
 * ring runs low, it makes a pass every RECLAIM_PERIOD_MS.
 */
#define RECLAIM_PERIOD_MS 50

static void *reaper_main(void *arg)
{
	struct btmmu *ctx = arg;
	struct sched_param sp = { .sched_priority = 0 };

	for (;;) {
		struct timespec ts;

		pthread_setschedparam(pthread_self(), SCHED_IDLE, &sp);
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
		pthread_setschedparam(pthread_self(), SCHED_OTHER, &sp);
		btmmu__spin_lock(&ctx->lock);
		while (btmmu__reclaim_one(ctx))
			;
		btmmu__spin_unlock(&ctx->lock);
	}
	return NULL;
}

int btmmu__reaper_start(struct btmmu *ctx)
{
	sigset_t all, old;
	int ret;

	if (ctx->flags & BTMMU_OPEN_NO_THREAD)
		return 0;
	if (sem_init(&ctx->reaper_sem, 0, 0))
		return -errno;
	/* The thread inherits a full mask: signals are for the translator's threads. */
	sigfillset(&all);
	pthread_sigmask(SIG_SETMASK, &all, &old);
	ret = -pthread_create(&ctx->reaper, NULL, reaper_main, ctx);
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	if (ret) {
		sem_destroy(&ctx->reaper_sem);
		return ret;
	}
	ctx->reaper_running = true;
	return 0;
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

/* Async-signal-safe (sem_post is). */
void btmmu__reaper_kick(struct btmmu *ctx)
{
	if (ctx->reaper_running)
		sem_post(&ctx->reaper_sem);
}

BTMMU_EXPORT int btmmu_reclaim(struct btmmu *ctx)
{
	int n = 0;

	if (!ctx)
		return -EINVAL;
	btmmu__spin_lock(&ctx->lock);
	while (btmmu__reclaim_one(ctx))
		n++;
	btmmu__spin_unlock(&ctx->lock);
	return n;
}
