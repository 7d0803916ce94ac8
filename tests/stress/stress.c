/* SPDX-License-Identifier: MIT */
/*
 * Stress: worker threads fault through many aliases (2 spaces x 2 views
 * over the same frames) while other threads map, unmap, flush, protect and
 * create/destroy spaces. Each worker owns one word in every frame, writes
 * through a random alias and reads back through another: a stale or wrong
 * shadow entry, a lost write or a deadlock shows up as a failure. At the
 * end guest RAM must hold every worker's last value.
 *
 * Usage: stress [seconds]   (default $BTMMU_STRESS_SECONDS or 3)
 */
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <btmmu/btmmu.h>

#define NFRAMES 512u
#define NPAGES 1024u /* guest pages per view; page p maps frame perm(s, v, p) */
#define NSPACES 2u
#define NVIEWS 2u
#define NWORKERS 4u
#define PAGE 4096u
#define RAM_SIZE (NFRAMES * PAGE)
#define GVA_BASE UINT64_C(0x40000000)

static struct btmmu *ctx;
static struct btmmu_ram *ram;
static uint32_t *host;
static struct btmmu_space *spaces[NSPACES];
static atomic_bool stop;
static atomic_ulong slow_writes, ops;

static unsigned frame_of(unsigned s, unsigned v, unsigned p)
{
	return (p * 7u + s * 131u + v * 17u) % NFRAMES;
}

static uint64_t gva_of(unsigned p)
{
	return GVA_BASE + (uint64_t)p * PAGE;
}

static uint64_t rnd(uint64_t *s)
{
	*s ^= *s << 13;
	*s ^= *s >> 7;
	*s ^= *s << 17;
	return *s;
}

/* Fault-around: install up to 8 pages of the faulting one's aligned group. */
static int callback(struct btmmu_fault *f, void *opaque)
{
	unsigned s = (unsigned)(uintptr_t)f->space_opaque;
	struct btmmu_map_req q[8];
	unsigned p, first, i;
	int ret;

	(void)opaque;
	if (f->gva < GVA_BASE || f->gva >= gva_of(NPAGES))
		return BTMMU_FAULT_SLOW;
	if (f->flags & BTMMU_FAULT_PROTECTED)
		return BTMMU_FAULT_SLOW; /* the worker emulates the write */
	p = (unsigned)((f->gva - GVA_BASE) / PAGE);
	first = p & ~7u;
	for (i = 0; i < 8; i++) {
		q[i].gva = gva_of(first + i);
		q[i].gpa = (uint64_t)frame_of(s, f->view, first + i) * PAGE;
		q[i].len = PAGE;
		q[i].prot = BTMMU_PROT_READ | BTMMU_PROT_WRITE;
		q[i].flags = (first + i) % 3 == 0 ? BTMMU_MAP_GLOBAL : 0;
	}
	ret = btmmu_map_batch(f->space, f->view, q, 8, f->gen);
	return ret > 0 ? BTMMU_FAULT_RETRY : BTMMU_FAULT_SLOW;
}

struct worker {
	unsigned id;
	uint32_t last[NFRAMES];
	unsigned long errors, loads, stores;
};

static uintptr_t base(unsigned s, unsigned v)
{
	uintptr_t b;

	btmmu_view_base(spaces[s], v, &b);
	return b;
}

/* Find a page mapping frame fr in (s, v). */
static unsigned page_for(unsigned s, unsigned v, unsigned fr, uint64_t *seed)
{
	unsigned p;

	for (p = (unsigned)(rnd(seed) % NPAGES);; p = (p + 1) % NPAGES) {
		if (frame_of(s, v, p) == fr)
			return p;
	}
}

static void *worker_main(void *arg)
{
	struct worker *w = arg;
	uint64_t seed = 0x9e3779b97f4a7c15ull * (w->id + 1);

	while (!atomic_load(&stop)) {
		unsigned fr = (unsigned)(rnd(&seed) % NFRAMES);
		unsigned s = (unsigned)(rnd(&seed) % NSPACES), v = (unsigned)(rnd(&seed) % NVIEWS);
		unsigned p = page_for(s, v, fr, &seed);
		uint32_t val = (uint32_t)rnd(&seed), got;
		uintptr_t a = base(s, v) + gva_of(p) + w->id * 4;

		if (btmmu_store32(a, val)) {
			/* Slow path: emulate the write into guest RAM. */
			atomic_store_explicit((_Atomic uint32_t *)&host[fr * (PAGE / 4) + w->id],
					      val, memory_order_relaxed);
			atomic_fetch_add(&slow_writes, 1);
		}
		w->stores++;
		w->last[fr] = val;

		s = (unsigned)(rnd(&seed) % NSPACES);
		v = (unsigned)(rnd(&seed) % NVIEWS);
		p = page_for(s, v, fr, &seed);
		a = base(s, v) + gva_of(p) + w->id * 4;
		if (btmmu_load32(a, &got))
			got = atomic_load_explicit(
				(_Atomic uint32_t *)&host[fr * (PAGE / 4) + w->id],
				memory_order_relaxed);
		w->loads++;
		if (got != val) {
			if (w->errors++ < 5)
				fprintf(stderr, "worker %u: frame %u via s%u v%u p%u: got %08x want %08x\n",
					w->id, fr, s, v, p, got, val);
		}
	}
	return NULL;
}

static void *mapper_main(void *arg)
{
	uint64_t seed = 12345;

	(void)arg;
	while (!atomic_load(&stop)) {
		unsigned s = (unsigned)(rnd(&seed) % NSPACES), v = (unsigned)(rnd(&seed) % NVIEWS);
		unsigned p = (unsigned)(rnd(&seed) % (NPAGES - 16)), i;
		struct btmmu_map_req q[16];

		for (i = 0; i < 16; i++) {
			q[i].gva = gva_of(p + i);
			q[i].gpa = (uint64_t)frame_of(s, v, p + i) * PAGE;
			q[i].len = PAGE;
			q[i].prot = (rnd(&seed) & 3) ? BTMMU_PROT_READ | BTMMU_PROT_WRITE
						     : BTMMU_PROT_READ;
			q[i].flags = 0;
		}
		btmmu_map_batch(spaces[s], v, q, 16, 0);
		atomic_fetch_add(&ops, 1);
	}
	return NULL;
}

static void *flusher_main(void *arg)
{
	uint64_t seed = 777;

	(void)arg;
	while (!atomic_load(&stop)) {
		unsigned s = (unsigned)(rnd(&seed) % NSPACES);
		unsigned views = 1u + (unsigned)(rnd(&seed) % 3);

		switch (rnd(&seed) % 5) {
		case 0:
			btmmu_flush(spaces[s], views, 0);
			break;
		case 1:
			btmmu_flush(spaces[s], views, BTMMU_FLUSH_NONGLOBAL);
			break;
		case 2:
			btmmu_unmap(spaces[s], views, gva_of((unsigned)(rnd(&seed) % NPAGES)), PAGE);
			break;
		case 3:
			btmmu_unmap(spaces[s], views, gva_of((unsigned)(rnd(&seed) % (NPAGES - 64))),
				    64 * PAGE);
			break;
		default:
			if (rnd(&seed) % 50 == 0)
				btmmu_flush_all(ctx);
			break;
		}
		atomic_fetch_add(&ops, 1);
		usleep(50);
	}
	return NULL;
}

static void *protector_main(void *arg)
{
	uint64_t seed = 4242;

	(void)arg;
	while (!atomic_load(&stop)) {
		uint64_t fr = rnd(&seed) % (NFRAMES - 4), n = 1 + rnd(&seed) % 4;

		btmmu_protect(ctx, fr * PAGE, n * PAGE, BTMMU_PROT_READ);
		usleep(100);
		btmmu_unprotect(ctx, fr * PAGE, n * PAGE);
		atomic_fetch_add(&ops, 1);
	}
	return NULL;
}

/* Registry churn: spaces come and go while faults look regions up. */
static void *admin_main(void *arg)
{
	struct btmmu_space_args sa = { .size = sizeof(sa), .va_bits = 32, .page_shift = 12,
				       .nviews = 1, .ring = 1 };

	(void)arg;
	while (!atomic_load(&stop)) {
		struct btmmu_space *sp;

		if (!btmmu_space_create(ctx, &sa, &sp))
			btmmu_space_destroy(sp);
		atomic_fetch_add(&ops, 1);
		usleep(1000);
	}
	return NULL;
}

int main(int argc, char **argv)
{
	struct btmmu_open_args oa = { .size = sizeof(oa), .fault_fn = callback };
	struct btmmu_ram_args ra = { .size = sizeof(ra), .len = RAM_SIZE, .fd = -1 };
	struct btmmu_stats st = { .size = sizeof(st) };
	const char *env = getenv("BTMMU_STRESS_SECONDS");
	double seconds = argc > 1 ? atof(argv[1]) : env ? atof(env) : 3.0;
	static struct worker w[NWORKERS];
	pthread_t tw[NWORKERS], tm, tf, tp, ta;
	unsigned long errors = 0, loads = 0;
	unsigned i, fr;
	void *h;
	int ret;

	if ((ret = btmmu_open(&oa, &ctx)) || (ret = btmmu_ram_create(ctx, &ra, &ram))) {
		fprintf(stderr, "stress: setup failed: %s\n", strerror(-ret));
		return 1;
	}
	btmmu_ram_host(ram, &h);
	host = h;
	for (i = 0; i < NSPACES; i++) {
		struct btmmu_space_args sa = { .size = sizeof(sa), .va_bits = 32, .page_shift = 12,
					       .nviews = NVIEWS, .ring = 2,
					       .opaque = (void *)(uintptr_t)i };

		if ((ret = btmmu_space_create(ctx, &sa, &spaces[i]))) {
			fprintf(stderr, "stress: space: %s\n", strerror(-ret));
			return 1;
		}
	}
	for (i = 0; i < NWORKERS; i++) {
		w[i].id = i;
		pthread_create(&tw[i], NULL, worker_main, &w[i]);
	}
	pthread_create(&tm, NULL, mapper_main, NULL);
	pthread_create(&tf, NULL, flusher_main, NULL);
	pthread_create(&tp, NULL, protector_main, NULL);
	pthread_create(&ta, NULL, admin_main, NULL);
	usleep((useconds_t)(seconds * 1e6));
	atomic_store(&stop, true);
	for (i = 0; i < NWORKERS; i++)
		pthread_join(tw[i], NULL);
	pthread_join(tm, NULL);
	pthread_join(tf, NULL);
	pthread_join(tp, NULL);
	pthread_join(ta, NULL);

	/* Guest RAM holds every worker's last write. */
	for (i = 0; i < NWORKERS; i++) {
		errors += w[i].errors;
		loads += w[i].loads;
		for (fr = 0; fr < NFRAMES; fr++) {
			if (host[fr * (PAGE / 4) + i] != w[i].last[fr]) {
				if (errors++ < 10)
					fprintf(stderr, "RAM frame %u word %u: %08x, last write %08x\n",
						fr, i, host[fr * (PAGE / 4) + i], w[i].last[fr]);
			}
		}
	}
	btmmu_stats_get(ctx, &st);
	printf("stress: %.1fs, %lu load/store pairs, %lu other ops, %lu slow writes; "
	       "faults %llu (retry %llu, slow %llu, no-progress %llu), fills %llu, "
	       "flushes %llu+%llu, evictions %llu, protects %llu, reclaims %llu (%llu sync)\n",
	       seconds, loads, atomic_load(&ops), atomic_load(&slow_writes),
	       (unsigned long long)st.faults, (unsigned long long)st.faults_retry,
	       (unsigned long long)st.faults_slow, (unsigned long long)st.retry_no_progress,
	       (unsigned long long)st.fills, (unsigned long long)st.flushes,
	       (unsigned long long)st.flushes_nonglobal, (unsigned long long)st.evictions,
	       (unsigned long long)st.protects, (unsigned long long)st.reclaims,
	       (unsigned long long)st.sync_reclaims);
	for (i = 0; i < NSPACES; i++)
		btmmu_space_destroy(spaces[i]);
	btmmu_ram_destroy(ram);
	if ((ret = btmmu_close(ctx))) {
		fprintf(stderr, "stress: close: %s\n", strerror(-ret));
		return 1;
	}
	if (errors || !loads) {
		fprintf(stderr, "stress: FAILED, %lu errors\n", errors);
		return 1;
	}
	printf("stress: OK\n");
	return 0;
}
