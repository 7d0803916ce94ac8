/* SPDX-License-Identifier: MIT */
/*
 * The process-wide region registry: which host address ranges belong to
 * which region, read lock-free by the SIGSEGV dispatcher on any thread.
 *
 * Readers see an immutable sorted snapshot through an atomic pointer.
 * Writers (space create/destroy, under the registry mutex) publish a new
 * snapshot and wait until no reader can still hold the old one before
 * freeing it. Reader accounting uses two counters selected by an epoch bit
 * (the SRCU idea): a reader counts itself in readers[epoch] and confirms
 * the epoch did not flip meanwhile; a writer flips the epoch and waits for
 * the old counter to drain. Unlike liburcu's read side, this needs no
 * per-thread registration, which matters because the faulting thread is
 * any of the translator's threads and may never have called us before.
 */
#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "internal.h"

struct snap_ent {
	uintptr_t lo, hi; /* [lo, hi) */
	struct btmmu__region *r;
};

struct snap {
	size_t n;
	struct snap_ent e[];
};

static pthread_mutex_t registry_mutex = PTHREAD_MUTEX_INITIALIZER;
static _Atomic(struct snap *) current;
static atomic_uint epoch;
static atomic_long readers[2];

/* Async-signal-safe. Pair with btmmu__registry_leave(). */
unsigned btmmu__registry_enter(void)
{
	for (;;) {
		unsigned e = atomic_load(&epoch) & 1u;

		atomic_fetch_add(&readers[e], 1);
		if ((atomic_load(&epoch) & 1u) == e)
			return e;
		atomic_fetch_sub(&readers[e], 1);
	}
}

void btmmu__registry_leave(unsigned e)
{
	atomic_fetch_sub(&readers[e], 1);
}

/* Async-signal-safe; call between enter and leave. */
struct btmmu__region *btmmu__registry_lookup(uintptr_t addr)
{
	struct snap *s = atomic_load(&current);
	size_t lo = 0, hi;

	if (!s)
		return NULL;
	hi = s->n;
	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;

		if (addr < s->e[mid].lo)
			hi = mid;
		else if (addr >= s->e[mid].hi)
			lo = mid + 1;
		else
			return s->e[mid].r;
	}
	return NULL;
}

/* Wait until no reader can hold a snapshot published before the flip. */
static void synchronize(void)
{
	unsigned old = atomic_fetch_add(&epoch, 1) & 1u;
	struct timespec ts = { 0, 20000 };

	while (atomic_load(&readers[old]) != 0)
		nanosleep(&ts, NULL);
}

static int cmp_ent(const void *a, const void *b)
{
	const struct snap_ent *x = a, *y = b;

	return x->lo < y->lo ? -1 : x->lo > y->lo;
}

static void publish(struct snap *s)
{
	struct snap *old = atomic_exchange(&current, s);

	synchronize();
	free(old);
}

/* Not async-signal-safe (malloc). Regions must not overlap existing ones. */
int btmmu__registry_add(struct btmmu__region *regions, size_t n)
{
	struct snap *old, *s;
	size_t i, oldn;

	pthread_mutex_lock(&registry_mutex);
	old = atomic_load(&current);
	oldn = old ? old->n : 0;
	s = malloc(sizeof(*s) + (oldn + n) * sizeof(s->e[0]));
	if (!s) {
		pthread_mutex_unlock(&registry_mutex);
		return -ENOMEM;
	}
	s->n = oldn + n;
	if (oldn)
		memcpy(s->e, old->e, oldn * sizeof(s->e[0]));
	for (i = 0; i < n; i++) {
		s->e[oldn + i].lo = regions[i].start;
		s->e[oldn + i].hi = regions[i].start + regions[i].len + regions[i].guard;
		s->e[oldn + i].r = &regions[i];
	}
	qsort(s->e, s->n, sizeof(s->e[0]), cmp_ent);
	publish(s);
	pthread_mutex_unlock(&registry_mutex);
	return 0;
}

/*
 * Not async-signal-safe. On return no fault dispatch can still see the
 * regions, so the caller may free them.
 */
void btmmu__registry_remove(struct btmmu__region *regions, size_t n)
{
	struct snap *old, *s;
	size_t i, j = 0;

	pthread_mutex_lock(&registry_mutex);
	old = atomic_load(&current);
	s = malloc(sizeof(*s) + (old ? old->n : 0) * sizeof(s->e[0]));
	if (!s) {
		/* Keep the snapshot, but make the regions unfindable in place. */
		for (i = 0; old && i < old->n; i++) {
			if (old->e[i].r >= regions && old->e[i].r < regions + n)
				old->e[i].hi = old->e[i].lo; /* empty: never matches */
		}
		synchronize();
		pthread_mutex_unlock(&registry_mutex);
		return;
	}
	for (i = 0; old && i < old->n; i++) {
		if (old->e[i].r >= regions && old->e[i].r < regions + n)
			continue;
		s->e[j++] = old->e[i];
	}
	s->n = j;
	publish(s);
	pthread_mutex_unlock(&registry_mutex);
}

/*
 * fork(): the writer mutex is held across it (so no snapshot is half
 * published), and the child, which has only the forking thread, starts
 * with no reader counted (those of the parent's other threads never leave
 * in the child).
 */
void btmmu__registry_fork_prepare(void)
{
	pthread_mutex_lock(&registry_mutex);
}

void btmmu__registry_fork_parent(void)
{
	pthread_mutex_unlock(&registry_mutex);
}

void btmmu__registry_fork_child(void)
{
	atomic_store(&readers[0], 0);
	atomic_store(&readers[1], 0);
	pthread_mutex_unlock(&registry_mutex);
}
