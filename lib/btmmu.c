/* SPDX-License-Identifier: MIT */
/*
 * The context: backend selection, host page size (real or simulated), the
 * host mapping budget, the entry pool, statistics and version.
 */
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#include "internal.h"

#define MAX_POOL (UINT64_C(1) << 24)
#define DEFAULT_POOL_MAX (UINT64_C(1) << 18)
#define MIN_BUDGET 64u

/* Budgets handed to live contexts, so two contexts don't both take it all. */
static _Atomic uint64_t budget_claimed;

/* ------------------------------------------------------------------ */
/* fork()                                                              */
/* ------------------------------------------------------------------ */

/*
 * Every live context, for the fork handlers. A child gets copies of the
 * contexts whose guest RAM is the parent's (a shared file): its writes
 * through the shadow would land in the parent's guest, and the parent's
 * other threads, its reclaim threads and their locks did not come along.
 * So the child's copies are dead: the handlers hold every lock across
 * fork() so the child's are consistent, and in the child every window is
 * made inaccessible, the shadow bookkeeping dropped, and every call but
 * btmmu_ram_destroy(), btmmu_space_destroy() and btmmu_close() returns
 * -EOWNERDEAD (btmmu(7)).
 */
static pthread_mutex_t all_mutex = PTHREAD_MUTEX_INITIALIZER;
static CDS_LIST_HEAD(all_contexts);
static pthread_once_t atfork_once = PTHREAD_ONCE_INIT;

static void fork_prepare(void)
{
	struct btmmu *ctx;

	pthread_mutex_lock(&all_mutex);
	cds_list_for_each_entry(ctx, &all_contexts, all)
		pthread_mutex_lock(&ctx->admin);
	btmmu__registry_fork_prepare();
	btmmu__handler_fork_prepare();
	cds_list_for_each_entry(ctx, &all_contexts, all)
		btmmu__lock_mine(&ctx->lock); /* refused if fork() interrupted us: skip */
}

static void fork_parent(void)
{
	struct btmmu *ctx;

	cds_list_for_each_entry(ctx, &all_contexts, all) {
		if (btmmu__lock_held_here(&ctx->lock))
			btmmu__unlock(&ctx->lock);
	}
	btmmu__handler_fork_parent();
	btmmu__registry_fork_parent();
	cds_list_for_each_entry(ctx, &all_contexts, all)
		pthread_mutex_unlock(&ctx->admin);
	pthread_mutex_unlock(&all_mutex);
}

/* The child's copy of ctx: no access through any window, no bookkeeping. */
static void kill_copy(struct btmmu *ctx)
{
	struct btmmu_space *sp;

	atomic_store(&ctx->forked, true);
	if (ctx->reaper_running) {
		ctx->reaper_running = false; /* the thread stayed in the parent */
		sem_destroy(&ctx->reaper_sem);
	}
	ctx->tearing = NULL;
	cds_list_for_each_entry(sp, &ctx->spaces, node) {
		size_t i, n;
		struct btmmu__region *regs = btmmu__space_regions(sp, &n);

		atomic_store(&sp->inflight, 0); /* the parent's faulting threads */
		for (i = 0; i < n; i++) {
			if (regs[i].state == BTMMU__REGION_TEARING)
				regs[i].state = BTMMU__REGION_CLEAN;
			btmmu__region_drop_entries(ctx, &regs[i], -1);
		}
	}
}

static void fork_child(void)
{
	struct btmmu *ctx;

	cds_list_for_each_entry(ctx, &all_contexts, all) {
		kill_copy(ctx);
		if (btmmu__lock_held_here(&ctx->lock))
			btmmu__unlock(&ctx->lock);
	}
	btmmu__handler_fork_child();
	btmmu__registry_fork_child();
	cds_list_for_each_entry(ctx, &all_contexts, all)
		pthread_mutex_unlock(&ctx->admin);
	pthread_mutex_unlock(&all_mutex);
}

static void atfork_register(void)
{
	pthread_atfork(fork_prepare, fork_parent, fork_child);
}

static uint64_t read_u64_file(const char *path, uint64_t dflt)
{
	unsigned long long v;
	FILE *f = fopen(path, "re");

	if (!f)
		return dflt;
	if (fscanf(f, "%llu", &v) != 1)
		v = dflt;
	fclose(f);
	return v;
}

static uint64_t count_lines(const char *path)
{
	FILE *f = fopen(path, "re");
	uint64_t n = 0;
	int c;

	if (!f)
		return 0;
	while ((c = getc_unlocked(f)) != EOF)
		n += c == '\n';
	fclose(f);
	return n;
}

/*
 * What is left of vm.max_map_count once the process's current mappings, a
 * headroom for its future ones, and other contexts' budgets are taken out.
 */
static uint64_t auto_budget(void)
{
	uint64_t max = read_u64_file("/proc/sys/vm/max_map_count", 65530);
	uint64_t used = count_lines("/proc/self/maps");
	uint64_t headroom = BTMMU_MAX(UINT64_C(1024), max / 8);
	uint64_t claimed = atomic_load(&budget_claimed);
	uint64_t taken = claimed > max ? max : used + headroom + claimed;

	return taken + MIN_BUDGET < max ? max - taken : MIN_BUDGET;
}

static int host_page_shift(uint32_t want, uint32_t real, uint32_t *out)
{
	const char *env = getenv("BTMMU_HOST_PAGE_SHIFT");

	if (!want && env && *env) {
		const char *p;

		/* Decimal digits only: strtoul() would take " 14", "+14", "-1". */
		for (p = env; *p; p++) {
			if (*p < '0' || *p > '9' || p - env > 2)
				return -EINVAL;
			want = want * 10 + (uint32_t)(*p - '0');
		}
		if (!want)
			return -EINVAL;
	}
	if (!want) {
		*out = real;
		return 0;
	}
	if (want < real || want > 16)
		return -EINVAL;
	*out = want;
	return 0;
}

BTMMU_EXPORT int btmmu_open(const struct btmmu_open_args *args, struct btmmu **ctxp)
{
	struct btmmu_open_args a;
	const struct btmmu_backend_ops *ops;
	struct btmmu *ctx;
	uint32_t real, hps, from;
	uint64_t budget, pool;
	int ret;

	if (!ctxp)
		return -EFAULT;
	ret = btmmu__copy_args(&a, sizeof(a), args);
	if (ret)
		return ret;
	if (a.flags & ~(BTMMU_OPEN_NO_HANDLER | BTMMU_OPEN_NO_THREAD))
		return -EINVAL;
	if (btmmu__in_callback())
		return -EDEADLK;
	real = (uint32_t)__builtin_ctzl((unsigned long)sysconf(_SC_PAGESIZE));
	ret = host_page_shift(a.host_page_shift, real, &hps);
	if (ret)
		return ret;
	if (a.max_entries > MAX_POOL)
		return -EINVAL;
	ret = btmmu__backend_select(a.backend, &ops);
	if (ret)
		return ret;

	if (!(ops->caps & BTMMU_BACKEND_COUNTS_MAPPINGS)) {
		budget = UINT64_MAX;
		from = BTMMU_CAPACITY_UNLIMITED;
	} else if (a.max_mappings) {
		budget = a.max_mappings;
		from = BTMMU_CAPACITY_ASKED_MAPPINGS;
	} else {
		budget = auto_budget();
		from = BTMMU_CAPACITY_MAP_COUNT;
	}
	if (a.max_entries)
		from |= BTMMU_CAPACITY_ASKED_ENTRIES;
	/*
	 * Entries that are neighbours in the region and in the file merge into
	 * one host mapping, so a budget of mappings holds several times as many
	 * entries (a guest kernel's direct map installed by large pages is one
	 * mapping per run). Cap: 256Ki entries (~24 MiB) unless asked.
	 */
	pool = a.max_entries;
	if (!pool)
		pool = BTMMU_MIN(BTMMU_MIN(budget, UINT64_MAX / 4) * 4, DEFAULT_POOL_MAX);
	pool = BTMMU_MAX(pool, UINT64_C(16));

	ctx = calloc(1, sizeof(*ctx));
	if (!ctx)
		return -ENOMEM;
	ctx->ops = ops;
	ctx->flags = a.flags;
	ctx->host_page_shift = hps;
	ctx->real_page_shift = real;
	ctx->fault_fn = a.fault_fn;
	ctx->fault_opaque = a.fault_opaque;
	ctx->budget = budget;
	ctx->capacity_from = from;
	pthread_mutex_init(&ctx->admin, NULL);
	atomic_init(&ctx->lock.word, 0);
	CDS_INIT_LIST_HEAD(&ctx->rams);
	CDS_INIT_LIST_HEAD(&ctx->spaces);
	CDS_INIT_LIST_HEAD(&ctx->retired);

	ret = btmmu__pool_init(ctx, pool);
	if (ret)
		goto err_free;
	ret = ops->init(ctx);
	if (ret)
		goto err_pool;
	ret = btmmu__handler_get(ctx);
	if (ret)
		goto err_backend;
	ret = btmmu__reaper_start(ctx);
	if (ret)
		goto err_handler;
	/* What it can take of the process's mappings (a caller may ask for more). */
	ctx->claimed = BTMMU_MIN(budget, read_u64_file("/proc/sys/vm/max_map_count", 65530));
	if (ops->caps & BTMMU_BACKEND_COUNTS_MAPPINGS)
		atomic_fetch_add(&budget_claimed, ctx->claimed);
	pthread_once(&atfork_once, atfork_register);
	pthread_mutex_lock(&all_mutex);
	cds_list_add_tail(&ctx->all, &all_contexts);
	pthread_mutex_unlock(&all_mutex);
	*ctxp = ctx;
	return 0;

err_handler:
	btmmu__handler_put(ctx);
err_backend:
	ops->fini(ctx);
err_pool:
	btmmu__pool_fini(ctx);
err_free:
	pthread_mutex_destroy(&ctx->admin);
	free(ctx);
	return ret;
}

BTMMU_EXPORT int btmmu_close(struct btmmu *ctx)
{
	bool busy;

	if (!ctx)
		return -EINVAL;
	if (btmmu__in_callback())
		return -EDEADLK;
	pthread_mutex_lock(&ctx->admin);
	if (btmmu__lock_mine(&ctx->lock)) {
		pthread_mutex_unlock(&ctx->admin);
		return -EDEADLK;
	}
	busy = !cds_list_empty(&ctx->spaces) || !cds_list_empty(&ctx->rams);
	btmmu__unlock(&ctx->lock);
	pthread_mutex_unlock(&ctx->admin);
	if (busy)
		return -EBUSY;

	pthread_mutex_lock(&all_mutex);
	cds_list_del(&ctx->all);
	pthread_mutex_unlock(&all_mutex);
	btmmu__reaper_stop(ctx);
	btmmu__handler_put(ctx);
	ctx->ops->fini(ctx);
	if (ctx->ops->caps & BTMMU_BACKEND_COUNTS_MAPPINGS)
		atomic_fetch_sub(&budget_claimed, ctx->claimed);
	btmmu__pool_fini(ctx);
	pthread_mutex_destroy(&ctx->admin);
	free(ctx);
	return 0;
}

BTMMU_EXPORT const char *btmmu_backend_name(const struct btmmu *ctx)
{
	return ctx ? ctx->ops->name : NULL;
}

BTMMU_EXPORT int btmmu_stats_get(const struct btmmu *cctx, struct btmmu_stats *out)
{
	struct btmmu *ctx = (struct btmmu *)cctx;
	struct btmmu_stats st;
	bool locked;
	int ret;

	if (!ctx)
		return -EINVAL;
	if (btmmu__dead(ctx))
		return -EOWNERDEAD;
	ret = btmmu__check_out(out);
	if (ret)
		return ret;
	memset(&st, 0, sizeof(st));
	st.faults = atomic_load(&ctx->st.faults);
	st.faults_retry = atomic_load(&ctx->st.faults_retry);
	st.faults_slow = atomic_load(&ctx->st.faults_slow);
	st.faults_not_mine = atomic_load(&ctx->st.faults_not_mine);
	st.retry_no_progress = atomic_load(&ctx->st.retry_no_progress);
	st.fills = atomic_load(&ctx->st.fills);
	st.install_calls = atomic_load(&ctx->st.install_calls);
	st.unmaps = atomic_load(&ctx->st.unmaps);
	st.flushes = atomic_load(&ctx->st.flushes);
	st.flushes_nonglobal = atomic_load(&ctx->st.flushes_nonglobal);
	st.evictions = atomic_load(&ctx->st.evictions);
	st.protects = atomic_load(&ctx->st.protects);
	st.reclaims = atomic_load(&ctx->st.reclaims);
	st.sync_reclaims = atomic_load(&ctx->st.sync_reclaims);
	st.clear_fallbacks = atomic_load(&ctx->st.clear_fallbacks);
	/* Refused: this thread holds it below us; no other thread writes then. */
	locked = !btmmu__lock_mine(&ctx->lock);
	st.live_entries = ctx->live_entries;
	st.live_mappings = ctx->mappings;
	if (locked)
		btmmu__unlock(&ctx->lock);
	st.max_mappings = ctx->budget;
	btmmu__copy_out(out, &st, sizeof(st));
	return 0;
}

BTMMU_EXPORT int btmmu_backend_info(const struct btmmu *ctx, struct btmmu_backend_info *out)
{
	struct btmmu_backend_info bi;
	int ret;

	if (!ctx)
		return -EINVAL;
	if (btmmu__dead(ctx))
		return -EOWNERDEAD;
	ret = btmmu__check_out(out);
	if (ret)
		return ret;
	memset(&bi, 0, sizeof(bi));
	strncpy(bi.name, ctx->ops->name, sizeof(bi.name) - 1);
	if (ctx->ops->caps & BTMMU_BACKEND_EXEC_ONLY)
		bi.flags |= BTMMU_INFO_EXEC_ONLY;
	if (ctx->ops->caps & BTMMU_BACKEND_KERNEL_BATCH)
		bi.flags |= BTMMU_INFO_KERNEL_BATCH;
	if (ctx->ops->caps & BTMMU_BACKEND_COUNTS_MAPPINGS)
		bi.flags |= BTMMU_INFO_MAPPINGS;
	bi.capacity_from = ctx->capacity_from;
	bi.max_entries = ctx->npool - 1;
	bi.max_mappings = ctx->budget;
	bi.max_window_bits = BTMMU_MAX_WINDOW_BITS;
	bi.host_page_shift = ctx->host_page_shift;
	btmmu__copy_out(out, &bi, sizeof(bi));
	return 0;
}

BTMMU_EXPORT unsigned btmmu_version(void)
{
	return BTMMU_VERSION_NUMBER;
}

BTMMU_EXPORT const char *btmmu_version_string(void)
{
	return BTMMU_VERSION_STRING;
}
