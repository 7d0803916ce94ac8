/* SPDX-License-Identifier: MIT */
/*
 * The interpreter: decodes 16-byte operation records, runs them on the
 * library and on the model (model.c), and reports every disagreement with
 * the operation, what the contract predicts and what the library did.
 *
 * Record: byte 0 the operation (weighted, see optable), byte 1 the thread
 * (modulo the thread count), bytes 2..15 its parameters (a per-record
 * PRNG supplies more). Operations run on their thread; the barrier
 * operations (flush_all, close/reopen, whole-state checks) end a phase and
 * run with every thread paused.
 *
 * The fault callback acts like a translator refilling its TLB: it checks
 * the fault against the access in progress and the model, and maps the
 * faulting unit (and sometimes its neighbours) from the model.
 */
#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <ucontext.h>
#include <unistd.h>

#include "harness.h"

/* Under ASan, using up vm.max_map_count would starve its own allocator. */
#if defined(__SANITIZE_ADDRESS__)
#define FZ_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define FZ_ASAN 1
#endif
#endif
#ifndef FZ_ASAN
#define FZ_ASAN 0
#endif

volatile size_t fuzz_current_op;
/* The self-test's bad pointer (not a constant, so the compiler lets it be). */
volatile uintptr_t selftest_addr = 16;

static __thread struct fz_thread *fz_self;

#define SENTINEL UINT64_C(0xa5a5a5a5a5a5a5a5)

/* ------------------------------------------------------------------ */
/* Configurations and divergence kinds                                 */
/* ------------------------------------------------------------------ */

static const char *const kind_names[FUZZ_NKINDS] = {
	[FUZZ_OK] = "ok",	  [FUZZ_ERRNO] = "errno", [FUZZ_STALE] = "stale",
	[FUZZ_MISSED] = "missed", [FUZZ_DATA] = "data",	  [FUZZ_PARTIAL] = "partial",
	[FUZZ_FAULT] = "fault",	  [FUZZ_FLAGS] = "flags", [FUZZ_COUNT] = "count",
	[FUZZ_BASE] = "base",	  [FUZZ_GEN] = "gen",	  [FUZZ_INFO] = "info",
	[FUZZ_CRASH] = "crash",
};

const char *fuzz_kind_name(int kind)
{
	return kind >= 0 && kind < FUZZ_NKINDS ? kind_names[kind] : "?";
}

int fuzz_kind_mask(const char *list, unsigned *mask)
{
	char buf[256], *save = NULL, *tok;

	*mask = 0;
	if (!list || !*list)
		return 0;
	snprintf(buf, sizeof(buf), "%s", list);
	for (tok = strtok_r(buf, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
		int k;

		for (k = 1; k < FUZZ_NKINDS; k++) {
			if (!strcmp(tok, kind_names[k]))
				break;
		}
		if (k == FUZZ_NKINDS)
			return -1;
		*mask |= 1u << k;
	}
	return 0;
}

int fuzz_quirk_mask(const char *list, unsigned *mask)
{
	char buf[256], *save = NULL, *tok;

	*mask = 0;
	if (!list || !*list)
		return 0;
	snprintf(buf, sizeof(buf), "%s", list);
	for (tok = strtok_r(buf, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
		if (!strcmp(tok, "sticky"))
			*mask |= FUZZ_Q_STICKY;
		else if (!strcmp(tok, "ramcache"))
			*mask |= FUZZ_Q_RAMCACHE;
		else if (!strcmp(tok, "protflag"))
			*mask |= FUZZ_Q_PROTFLAG;
		else if (!strcmp(tok, "livelock"))
			*mask |= FUZZ_Q_LIVELOCK;
		else if (!strcmp(tok, "all"))
			*mask |= FUZZ_Q_ALL;
		else
			return -1;
	}
	return 0;
}

/* Argument structs with a size above a page (btmmu(7): -E2BIG): zeroes after them. */
static __thread union {
	struct btmmu_open_args oa;
	struct btmmu_ram_args ra;
	struct btmmu_space_args sa;
	struct btmmu_view_info vi;
	struct btmmu_stats st;
	struct btmmu_backend_info bi;
	uint8_t bytes[8192];
} huge;

static void *huge_args(const void *args, size_t n, unsigned extra)
{
	size_t size = 4097 + extra % 4000;

	memset(&huge, 0, sizeof(huge));
	memcpy(&huge, args, n);
	memcpy(&huge, &size, sizeof(size));
	return &huge;
}

static const struct fuzz_config configs[] = {
	/* Default capacity: nothing is evicted, the model is exact. */
	{ .name = "default", .nthreads = 1 },
	/* The brief's pressure: far fewer entries and mappings than the operations make. */
	{ .name = "small", .nthreads = 1, .max_entries = 64, .max_mappings = 256 },
	{ .name = "tiny", .nthreads = 1, .max_entries = 16, .max_mappings = 160 },
	/* Simulated 8, 16 and 64 KiB host pages: guest pages smaller than the host page. */
	{ .name = "hps13", .nthreads = 1, .host_page_shift = 13 },
	{ .name = "hps14", .nthreads = 1, .host_page_shift = 14 },
	{ .name = "hps16", .nthreads = 1, .host_page_shift = 16 },
	{ .name = "nothread", .nthreads = 1, .open_flags = BTMMU_OPEN_NO_THREAD },
	/* The translator's own SIGSEGV handler calls btmmu_fault_dispatch(). */
	{ .name = "ownhandler", .nthreads = 1, .open_flags = BTMMU_OPEN_NO_HANDLER },
	/* The stream picks the host page and NO_THREAD at every open. */
	{ .name = "mixed", .nthreads = 1, .host_page_shift = FUZZ_HPS_ANY, .stream_flags = 1 },
	{ .name = "mixed-small",
	  .nthreads = 1,
	  .host_page_shift = FUZZ_HPS_ANY,
	  .stream_flags = 1,
	  .max_entries = 64,
	  .max_mappings = 256 },
	/* vm.max_map_count nearly used up by the test: host calls fail with ENOMEM. */
	{ .name = "enomem",
	  .nthreads = 1,
	  .host_page_shift = FUZZ_HPS_ANY,
	  .vma_free = 1500,
	  .max_mappings = 40000 },
	/*
	 * For tests/fuzz/maxmap.sh, which lowers vm.max_map_count itself: a
	 * budget far above it with the limit nearly used up, and the budget the
	 * library derives from the lowered limit.
	 */
	{ .name = "lowmap",
	  .nthreads = 1,
	  .host_page_shift = FUZZ_HPS_ANY,
	  .host_limited = 1,
	  .vma_free = 300,
	  .max_mappings = 40000 },
	{ .name = "lowmap-auto", .nthreads = 1, .host_page_shift = FUZZ_HPS_ANY, .host_limited = 1 },
	/* libFuzzer: a small pool, so that opening a context per input is cheap. */
	{ .name = "libfuzzer",
	  .nthreads = 1,
	  .host_page_shift = FUZZ_HPS_ANY,
	  .stream_flags = 1,
	  .max_entries = 4096 },
};

const struct fuzz_config *fuzz_config_find(const char *name)
{
	size_t i;

	for (i = 0; i < sizeof(configs) / sizeof(configs[0]); i++) {
		if (!strcmp(configs[i].name, name))
			return &configs[i];
	}
	return NULL;
}

const char *fuzz_config_names(void)
{
	return "default small tiny hps13 hps14 hps16 nothread ownhandler mixed mixed-small enomem "
	       "lowmap lowmap-auto libfuzzer";
}

/* ------------------------------------------------------------------ */
/* Parameters, descriptions, reports                                   */
/* ------------------------------------------------------------------ */

struct fz_op {
	const uint8_t *rec;
	unsigned pos;
	uint64_t rng;
};

static uint64_t xorshift(uint64_t *s)
{
	uint64_t x = *s ? *s : UINT64_C(0x9e3779b97f4a7c15);

	x ^= x << 13;
	x ^= x >> 7;
	x ^= x << 17;
	*s = x;
	return x;
}

/* The record's parameter bytes, then its PRNG. */
static unsigned get8(struct fz_op *o)
{
	if (o->pos < FUZZ_RECORD)
		return o->rec[o->pos++];
	return (unsigned)(xorshift(&o->rng) >> 56);
}

static unsigned get16(struct fz_op *o)
{
	return get8(o) | get8(o) << 8;
}

static uint64_t get64(struct fz_op *o)
{
	return xorshift(&o->rng);
}

static unsigned pick(struct fz_op *o, unsigned n)
{
	return n ? get8(o) % n : 0;
}

static void desc_format(const struct fz_thread *t, char *buf, size_t n);

#define QUIRKS(t) ((int)(t)->run->cfg->quirks)

static void fz_desc(struct fz_thread *t, const char *fmt, const unsigned long long *v, size_t n)
{
	size_t i;

	if (t->run->cfg->trace && t->dfmt) {
		/* A call the operation made first (an implicit create): trace it too. */
		char buf[256];

		desc_format(t, buf, sizeof(buf));
		fprintf(stderr, "  #%zu t%u   (%s -> %lld)\n", t->opidx, t->id, buf, t->dret);
	}
	t->dfmt = fmt;
	for (i = 0; i < 8; i++)
		t->dv[i] = i < n ? v[i] : 0;
}

#define DESC(t, f, ...)                                        \
	do {                                                   \
		unsigned long long _v[] = { __VA_ARGS__ };     \
		fz_desc(t, f, _v, sizeof(_v) / sizeof(_v[0])); \
	} while (0)

#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wformat-nonliteral"
static void desc_format(const struct fz_thread *t, char *buf, size_t n)
{
	if (!t->dfmt) {
		snprintf(buf, n, "(none)");
		return;
	}
	snprintf(buf, n, t->dfmt, t->dv[0], t->dv[1], t->dv[2], t->dv[3], t->dv[4], t->dv[5],
		 t->dv[6], t->dv[7]);
}
#pragma GCC diagnostic pop

/*
 * A divergence: counted; the first one is kept with its operation. Kinds
 * the configuration tolerates are printed once and the run goes on.
 */
__attribute__((format(printf, 3, 4))) static void fail(struct fz_thread *t, int kind,
						       const char *fmt, ...)
{
	struct fz_run *run = t->run;
	struct fuzz_result *res = run->res;
	char op[256], what[512];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(what, sizeof(what), fmt, ap);
	va_end(ap);
	desc_format(t, op, sizeof(op));
	pthread_mutex_lock(&run->lock);
	if (run->cfg->tolerate & (1u << kind)) {
		res->tolerated++;
		if (!(run->reported & (1u << kind)) && !run->cfg->quiet)
			fprintf(stderr,
				"fuzz: tolerated %s divergence at op #%zu (thread %u): %s: %s\n",
				fuzz_kind_name(kind), t->opidx, t->id, op, what);
		run->reported |= 1u << kind;
		pthread_mutex_unlock(&run->lock);
		return;
	}
	res->divergences++;
	if (!res->first_kind) {
		res->first_kind = kind;
		res->first_op = t->opidx;
		snprintf(res->first_msg, sizeof(res->first_msg),
			 "%s divergence at op #%zu (thread %u): %s\n  %s", fuzz_kind_name(kind),
			 t->opidx, t->id, op, what);
		if (!run->cfg->quiet)
			fprintf(stderr, "fuzz: %s\n", res->first_msg);
	}
	atomic_store(&run->stop, 1);
	pthread_mutex_unlock(&run->lock);
}

/* From the fault callback: keep the first one, report it after the access. */
static void cb_fail(struct fz_thread *t, int kind, const char *what, unsigned long long a,
		    unsigned long long b, unsigned long long c, unsigned long long d)
{
	if (t->cb_kind)
		return;
	t->cb_kind = kind;
	t->cb_what = what;
	t->cb_v[0] = a;
	t->cb_v[1] = b;
	t->cb_v[2] = c;
	t->cb_v[3] = d;
}

static void cb_report(struct fz_thread *t)
{
	if (!t->cb_kind)
		return;
	fail(t, t->cb_kind, "fault callback: %s [%#llx %#llx %#llx %#llx]", t->cb_what, t->cb_v[0],
	     t->cb_v[1], t->cb_v[2], t->cb_v[3]);
	t->cb_kind = 0;
}

static int expect_ret(struct fz_thread *t, const char *call, long long want, long long got)
{
	t->errs++;
	if (want == got)
		return 1;
	fail(t, FUZZ_ERRNO, "%s: expected %lld (%s), got %lld (%s)", call, want,
	     want < 0 ? strerror((int)-want) : "ok", got, got < 0 ? strerror((int)-got) : "ok");
	return 0;
}

/* ------------------------------------------------------------------ */
/* Context state: statistics, exactness                                */
/* ------------------------------------------------------------------ */

static struct btmmu_stats stats(struct fz_run *run)
{
	struct btmmu_stats st = { .size = sizeof(st) };

	btmmu_stats_get(run->ctx, &st);
	return st;
}

/* Host calls may fail: the library's entries are then a subset we cannot track. */
static int host_lossy(const struct fz_run *run)
{
	return run->cfg->vma_free || run->cfg->host_limited;
}

/*
 * The evictions counter, and whether the library could have dropped an
 * entry without counting it (an install that found no room: near the
 * mapping budget).
 */
static uint64_t evictions(struct fz_run *run)
{
	struct btmmu_stats st = stats(run);

	if (st.live_mappings + 1024 >= st.max_mappings)
		atomic_store(&run->lossy, 1);
	/* A window emptied whole because the host refused a split drops entries too. */
	return st.evictions + st.clear_fallbacks;
}

/*
 * A view is exact when nothing was evicted since it was last known equal
 * to the model (created or fully flushed): the library then holds exactly
 * the model's entries, and its counts are predictable.
 */
static int view_exact(struct fz_thread *t, const struct fz_view *v, uint64_t ev)
{
	return !atomic_load(&t->run->lossy) && ev == v->sync_ev;
}

/* ------------------------------------------------------------------ */
/* The fault callback                                                  */
/* ------------------------------------------------------------------ */

struct reqs {
	struct btmmu_map_req q[96];
	unsigned n;
};

/*
 * FUZZ_Q_RAMCACHE: the library reuses the previous request's RAM range
 * when a request is longer than that range (an unsigned underflow in its
 * bounds check) and maps it from the wrong file. Keep the requests before
 * the first one that would hit it.
 */
static unsigned ramcache_trim(struct fz_thread *t, const struct btmmu_map_req *q, unsigned n)
{
	struct fz_ram *prev = NULL;
	unsigned i;

	if (!(t->run->cfg->quirks & FUZZ_Q_RAMCACHE))
		return n;
	for (i = 0; i < n; i++) {
		struct fz_ram *r = fz_ram_find(&t->w, q[i].gpa, q[i].len);

		if (prev && r != prev && q[i].len > prev->len && q[i].gpa >= prev->gpa)
			return i;
		if (r)
			prev = r;
	}
	return n;
}

/* Add page i of the table, merging with the previous request when contiguous. */
static void reqs_add(struct reqs *r, const struct fz_space *s, const struct fz_pte *tab, int i,
		     uint32_t extra)
{
	struct btmmu_map_req *p = r->n ? &r->q[r->n - 1] : NULL;
	unsigned ls = tab[i].lshift;
	uint32_t flags = (tab[i].global ? BTMMU_MAP_GLOBAL : 0) | BTMMU_MAP_PAGE_SHIFT(ls) | extra;

	if (p && p->gva + p->len == s->hot[i] && p->gpa + p->len == tab[i].gpa &&
	    p->prot == tab[i].prot && p->flags == flags &&
	    (!ls || (p->gva >> ls) == (s->hot[i] >> ls))) {
		p->len += s->page;
		return;
	}
	if (r->n == sizeof(r->q) / sizeof(r->q[0]))
		return;
	r->q[r->n++] = (struct btmmu_map_req){ .gva = s->hot[i],
					       .gpa = tab[i].gpa,
					       .len = s->page,
					       .prot = tab[i].prot,
					       .flags = flags };
}

/* btmmu_map_around(3)'s callback: the neighbour from the translator's TLB. */
struct around_ctx {
	struct fz_thread *t;
	struct fz_space *s;
	struct fz_view *v;
	struct reqs ans;	/* what it answered, for the count */
	unsigned asked;
	int bad;		/* asked about the faulting page, or about one twice */
};

static int around_answer(void *opaque, uint64_t gva, struct btmmu_map_req *q)
{
	struct around_ctx *c = opaque;
	int k = fz_hot_find(c->s, gva);
	unsigned j;

	c->asked++;
	for (j = 0; j < c->ans.n; j++)
		c->bad |= c->ans.q[j].gva == gva;
	if (k < 0 || !c->v->tlb[k].prot || !fz_ram_find(&c->t->w, c->v->tlb[k].gpa, c->s->page))
		return 0;
	q->gpa = c->v->tlb[k].gpa;
	q->prot = c->v->tlb[k].prot;
	/*
	 * No large-page shift: a neighbour batch refused (ESTALE) records
	 * nothing, and the model cannot tell which was.
	 */
	q->flags = c->v->tlb[k].global ? BTMMU_MAP_GLOBAL : 0;
	if (c->ans.n + 1 < sizeof(c->ans.q) / sizeof(c->ans.q[0])) /* one left for req */
		c->ans.q[c->ans.n++] = *q;
	return 1;
}

/*
 * Refill through btmmu_map_around(3): the faulting request, and the hot
 * pages of its 16-page group the view lacks, asked one by one. The count
 * is at most the pages of the requests that went in.
 */
static int refill_around(struct fz_thread *t, struct btmmu_fault *f, struct fz_access *a,
			 const struct btmmu_map_req *req)
{
	struct around_ctx c = { .t = t, .s = a->sp, .v = a->v };
	struct btmmu_around_args args = { .size = sizeof(args), .group = 16 * a->sp->page,
					  .fn = around_answer, .opaque = &c };
	uint64_t lo, hi;
	int ret, resolved;
	unsigned k;

	ret = btmmu_map_around(f->space, f->view, req, &args, a->use_gen ? f->gen : 0);
	if (ret < 0) {
		if ((ret != -ENOMEM && ret != -ESTALE) || !host_lossy(t->run))
			cb_fail(t, FUZZ_ERRNO, "map_around from the callback failed", f->gva,
				(unsigned long long)-ret, 1, a->use_gen);
		else
			t->enomem++;
		if (ret == -ENOMEM)
			fz_large_note(c.s, f->view, req);
		return BTMMU_FAULT_SLOW;
	}
	fz_large_note(c.s, f->view, req);
	if (c.bad || c.asked > 15)
		cb_fail(t, FUZZ_COUNT, "map_around asked about a page twice or its own", f->gva,
			c.asked, c.bad, 0);
	c.ans.q[c.ans.n++] = *req;
	fz_count_map(&t->w, c.s, c.v->tlb, c.ans.q, c.ans.n, QUIRKS(t), &lo, &hi);
	for (k = 0; k < c.ans.n; k++)
		fz_apply_map(&t->w, c.s, c.v->tlb, &c.ans.q[k]);
	if ((uint64_t)ret > hi)
		cb_fail(t, FUZZ_COUNT, "map_around from the callback: more pages than answered",
			f->gva, (unsigned long long)ret, lo, hi);
	resolved = btmmu_fault_resolved(f);
	if (resolved < 0)
		cb_fail(t, FUZZ_ERRNO, "btmmu_fault_resolved", f->gva, (unsigned long long)resolved,
			0, 0);
	return BTMMU_FAULT_RETRY;
}

/* The verdict a translator gives: refill from its TLB, or take the slow path. */
static int refill(struct fz_thread *t, struct btmmu_fault *f, struct fz_access *a)
{
	struct fz_space *s = a->sp;
	struct fz_view *v = a->v;
	uint64_t page_gva = f->gva & ~(s->page - 1), ug = f->gva & ~(s->unit - 1), lo, hi;
	int i = fz_hot_find(s, page_gva), k, ret, resolved;
	uint32_t need = a->kind == BTMMU_ACCESS_WRITE ? BTMMU_PROT_WRITE : BTMMU_PROT_READ;
	struct reqs r = { .n = 0 };
	struct fz_ram *ram;
	uint64_t ev0;

	if (i < 0 || !v->tlb[i].prot || !(v->tlb[i].prot & need)) {
		/* A guest page fault: the slow path raises it, or the callback does. */
		if (a->longjmp) {
			int left = btmmu_fault_leave(f);

			if (left)
				cb_fail(t, FUZZ_ERRNO, "btmmu_fault_leave",
					(unsigned long long)left, 0, 0, 0);
			else
				siglongjmp(t->jb, 1); /* the CPU loop raises the guest exception */
		}
		return BTMMU_FAULT_SLOW;
	}
	ram = fz_ram_find(&t->w, v->tlb[i].gpa, s->page);
	if (!ram) {
		cb_fail(t, FUZZ_FAULT, "model page without RAM", f->gva, v->tlb[i].gpa, 0, 0);
		return BTMMU_FAULT_SLOW;
	}
	if ((f->flags & BTMMU_FAULT_PROTECTED) && a->unprotect) {
		/* Self-modifying code: lift the ceiling of the host page, retry. */
		uint64_t g = (v->tlb[i].gpa + (f->gva - page_gva)) & ~(s->hp - 1), n;
		uint64_t len = s->hp;

		ret = btmmu_unprotect(f->ctx, g, len);
		if (ret < 0)
			cb_fail(t, FUZZ_ERRNO, "btmmu_unprotect from the callback", g, len,
				(unsigned long long)ret, 0);
		for (n = 0; n < len; n += FZ_GRANULE)
			ram->ceil[(g + n - ram->gpa) / FZ_GRANULE] = BTMMU_PROT_RWX;
	}
	/* The whole unit: a host page installs only once all its guest pages are mapped. */
	for (k = 0; k < (int)s->ppu; k++) {
		int j = fz_hot_find(s, ug + (uint64_t)k * s->page);

		if (j >= 0 && v->tlb[j].prot)
			reqs_add(&r, s, v->tlb, j, j == i && a->populate ? BTMMU_MAP_POPULATE : 0);
	}
	r.n = ramcache_trim(t, r.q, r.n);
	/* Half the fault-arounds of whole-page units through the library's. */
	if (a->around && s->ppu == 1 && r.n == 1 && ((page_gva >> s->page_shift) & 1))
		return refill_around(t, f, a, &r.q[0]);
	if (a->around) {
		/* Fault-around: present neighbours from the same zone of hot pages. */
		for (k = i - 8; k <= i + 8; k++) {
			if (k >= 0 && k < (int)s->nhot && v->tlb[k].prot &&
			    (s->hot[k] & ~(s->unit - 1)) != ug)
				reqs_add(&r, s, v->tlb, k, 0);
		}
	}
	r.n = ramcache_trim(t, r.q, r.n);
	ev0 = evictions(t->run);
	if (r.n == 1 && !a->use_gen)
		ret = btmmu_map(f->space, f->view, &r.q[0]);
	else
		ret = btmmu_map_batch(f->space, f->view, r.q, r.n, a->use_gen ? f->gen : 0);
	fz_count_map(&t->w, s, v->tlb, r.q, r.n, QUIRKS(t), &lo, &hi);
	if (ret < 0) {
		if ((ret != -ENOMEM && ret != -ESTALE) || !host_lossy(t->run))
			cb_fail(t, FUZZ_ERRNO, "map from the callback failed", f->gva,
				(unsigned long long)-ret, r.n, a->use_gen);
		else
			t->enomem++;
		/* Refused (ESTALE) before anything, or a host call failed after the records. */
		for (k = 0; ret == -ENOMEM && k < (int)r.n; k++)
			fz_large_note(s, f->view, &r.q[k]);
		return BTMMU_FAULT_SLOW;
	}
	/*
	 * The TLB holds these pages already; the library's record of a
	 * sub-page unit (FUZZ_Q_STICKY) learns that they agree with it again.
	 */
	for (k = 0; k < (int)r.n; k++) {
		fz_large_note(s, f->view, &r.q[k]);
		fz_apply_map(&t->w, s, v->tlb, &r.q[k]);
	}
	if ((uint64_t)ret > hi || (a->exact && view_exact(t, v, evictions(t->run)) &&
				   ev0 == evictions(t->run) && (uint64_t)ret < lo))
		cb_fail(t, FUZZ_COUNT, "map from the callback: pages outside [lo, hi]", f->gva,
			(unsigned long long)ret, lo, hi);
	resolved = btmmu_fault_resolved(f);
	if (resolved < 0)
		cb_fail(t, FUZZ_ERRNO, "btmmu_fault_resolved", f->gva, (unsigned long long)resolved,
			0, 0);
	return BTMMU_FAULT_RETRY;
}

/* Calls that must refuse to run from a callback (btmmu_fault_fn(3)). */
static void deadlock_calls(struct fz_thread *t, struct btmmu_fault *f)
{
	struct btmmu_ram_args ra = {
		.size = sizeof(ra), .gpa = UINT64_C(1) << 62, .len = 65536, .fd = -1
	};
	struct btmmu_space_args sa = {
		.size = sizeof(sa), .va_bits = 32, .page_shift = 12, .nviews = 1
	};
	struct btmmu_open_args oa = { .size = sizeof(oa) };
	struct btmmu_ram *ram = NULL;
	struct btmmu_space *sp = NULL;
	struct btmmu *ctx = NULL;
	int ret;

	if ((ret = btmmu_ram_create(f->ctx, &ra, &ram)) != -EDEADLK)
		cb_fail(t, FUZZ_ERRNO, "btmmu_ram_create from a callback", (unsigned long long)ret,
			0, 0, 0);
	if ((ret = btmmu_space_create(f->ctx, &sa, &sp)) != -EDEADLK)
		cb_fail(t, FUZZ_ERRNO, "btmmu_space_create from a callback",
			(unsigned long long)ret, 0, 0, 0);
	if ((ret = btmmu_open(&oa, &ctx)) != -EDEADLK)
		cb_fail(t, FUZZ_ERRNO, "btmmu_open from a callback", (unsigned long long)ret, 0, 0,
			0);
	if ((ret = btmmu_close(f->ctx)) != -EDEADLK)
		cb_fail(t, FUZZ_ERRNO, "btmmu_close from a callback", (unsigned long long)ret, 0, 0,
			0);
	if ((ret = btmmu_space_destroy(f->space)) != -EDEADLK)
		cb_fail(t, FUZZ_ERRNO, "btmmu_space_destroy from a callback",
			(unsigned long long)ret, 0, 0, 0);
	if (t->w.ram[0].live && (ret = btmmu_ram_destroy(t->w.ram[0].h)) != -EDEADLK)
		cb_fail(t, FUZZ_ERRNO, "btmmu_ram_destroy from a callback", (unsigned long long)ret,
			0, 0, 0);
}

/*
 * Check the fault against the access in progress (btmmu_fault_fn(3)):
 * space, view, access kind, addresses, generation, and the flags against
 * the model of the region the access hit.
 */
static void check_fault(struct fz_thread *t, struct btmmu_fault *f, struct fz_access *a)
{
	struct fz_space *s = a->sp;
	uint64_t rel = f->host_addr - a->base, off = rel - s->window_gva;
	int guard = off >= s->wsize, mapped = !!(f->flags & BTMMU_FAULT_MAPPED);
	uint32_t need = a->kind == BTMMU_ACCESS_WRITE ? 2 : 1;

	if (f->size != sizeof(*f) || f->ctx != t->run->ctx || f->space != s->h ||
	    f->space_opaque != s->opaque || f->view != a->view)
		cb_fail(t, FUZZ_FAULT, "size/ctx/space/opaque/view", f->size, f->view, a->view,
			(uintptr_t)f->space_opaque);
	if (f->access != a->kind)
		cb_fail(t, FUZZ_FAULT, "access kind", f->access, a->kind, f->gva, 0);
	if (f->host_addr < a->host || f->host_addr >= a->host + a->size)
		cb_fail(t, FUZZ_FAULT, "host_addr outside the access", f->host_addr, a->host,
			a->size, 0);
	if (f->gva != fz_wrap(s, rel))
		cb_fail(t, FUZZ_FAULT, "gva", f->gva, fz_wrap(s, rel), f->host_addr, a->base);
	if (f->gen != a->v->gen && !(host_lossy(t->run) && f->gen > a->v->gen))
		cb_fail(t, FUZZ_GEN, "fault gen differs from the view's", f->gen, a->v->gen, f->gva,
			0);
	if (f->resume_pc)
		cb_fail(t, FUZZ_FAULT, "resume_pc not cleared", f->resume_pc, 0, 0, 0);
	if (!!(f->flags & BTMMU_FAULT_GUARD) != guard)
		cb_fail(t, FUZZ_FLAGS, "GUARD flag", f->flags, guard, f->gva, off);
	if (!!(f->flags & BTMMU_FAULT_STALE) != (a->mode == FZ_ACC_STALE))
		cb_fail(t, FUZZ_FLAGS, "STALE flag", f->flags, a->mode, f->gva, 0);
	if (f->flags & BTMMU_FAULT_NESTED)
		cb_fail(t, FUZZ_FLAGS, "NESTED, but the thread was in no libbtmmu call", f->flags,
			f->gva, 0, 0);
	if (f->flags & ~(unsigned)(BTMMU_FAULT_MAPPED | BTMMU_FAULT_PROTECTED | BTMMU_FAULT_STALE |
				   BTMMU_FAULT_GUARD | BTMMU_FAULT_NESTED | BTMMU_FAULT_REPEATED))
		cb_fail(t, FUZZ_FLAGS, "unknown flag", f->flags, 0, 0, 0);
	a->saw_guard |= !!(f->flags & BTMMU_FAULT_GUARD);
	a->saw_stale |= !!(f->flags & BTMMU_FAULT_STALE);
	t->fl[0] += !!(f->flags & BTMMU_FAULT_MAPPED);
	t->fl[1] += !!(f->flags & BTMMU_FAULT_PROTECTED);
	t->fl[2] += !!(f->flags & BTMMU_FAULT_STALE);
	t->fl[3] += !!(f->flags & BTMMU_FAULT_GUARD);
	if (guard) {
		if (f->flags & (BTMMU_FAULT_MAPPED | BTMMU_FAULT_PROTECTED))
			cb_fail(t, FUZZ_FLAGS, "MAPPED/PROTECTED in the guard", f->flags, f->gva, 0,
				0);
		return;
	}
	if (a->mode == FZ_ACC_STALE && a->snap->gone && mapped)
		cb_fail(t, FUZZ_STALE, "MAPPED in a region btmmu_reclaim() tore down", f->flags,
			f->gva, 0, 0);
	if (mapped) {
		uint64_t ug = f->gva & ~(s->unit - 1);
		struct fz_unit u;
		uint32_t host = fz_host_prot(&t->w, s, a->tab, f->gva);

		fz_unit_state(&t->w, s, a->tab, ug, &u);
		if (!u.complete)
			cb_fail(t, FUZZ_STALE, "MAPPED on a unit the model does not hold complete",
				f->gva, u.present, u.gpa, f->flags);
		else if ((host & need) == need && a->mode != FZ_ACC_STALE)
			/*
			 * (A retired region being torn down without the lock still
			 * has its entries on the books while its mappings go.)
			 */
			cb_fail(t, FUZZ_FLAGS, "MAPPED fault though the entry's rights allow it",
				f->gva, host, need, u.rights);
		if (u.complete) {
			/* The ceiling of the faulting KiB (btmmu_fault_fn(3), btmmu_protect(3)). */
			uint64_t gpa = u.gpa + (f->gva - ug);
			uint32_t c = fz_ceiling(u.ram, gpa & ~(FZ_GRANULE - 1), FZ_GRANULE);
			int denied = need == 2 ? !(c & BTMMU_PROT_WRITE) :
						 !(c & (BTMMU_PROT_READ | BTMMU_PROT_EXEC));

			if ((t->run->cfg->quirks & FUZZ_Q_PROTFLAG) && !denied &&
			    (f->flags & BTMMU_FAULT_PROTECTED) && (gpa & (FZ_GRANULE - 1))) {
				/* The library looks at [gpa, gpa + 1 KiB): the next KiB too. */
				if (gpa + FZ_GRANULE > u.ram->gpa + u.ram->len)
					denied = 1;
				else
					c = fz_ceiling(u.ram, gpa, FZ_GRANULE);
				denied |= need == 2 ? !(c & BTMMU_PROT_WRITE) :
						      !(c & (BTMMU_PROT_READ | BTMMU_PROT_EXEC));
			}
			if (!!(f->flags & BTMMU_FAULT_PROTECTED) != denied)
				cb_fail(t, FUZZ_FLAGS, "PROTECTED flag vs the granule's ceiling",
					f->gva, f->flags, c, gpa);
		}
	} else if (f->flags & BTMMU_FAULT_PROTECTED) {
		cb_fail(t, FUZZ_FLAGS, "PROTECTED without MAPPED", f->flags, f->gva, 0, 0);
	}
}

static int fz_callback(struct btmmu_fault *f, void *opaque)
{
	struct fz_thread *t = fz_self;
	struct fz_access *a;
	int r;

	if (!t || !t->in_access || opaque != t->run) {
		/* Not during one of our accesses: take the slow path, report it later. */
		if (t)
			cb_fail(t, FUZZ_FAULT, "fault outside an access", f->host_addr, f->gva, 0,
				0);
		return BTMMU_FAULT_SLOW;
	}
	a = &t->acc;
	t->faults++;
	if (++t->nfaults > 64) {
		/*
		 * Each RETRY made progress, yet the access never completes: two
		 * units it spans evict each other (FUZZ_Q_LIVELOCK: known).
		 */
		if (t->run->cfg->quirks & FUZZ_Q_LIVELOCK)
			t->livelocks += t->nfaults == 65;
		else
			cb_fail(t, FUZZ_FAULT,
				"more than 64 faults for one access, each RETRY making progress",
				f->gva, f->flags, 0, 0);
		return BTMMU_FAULT_SLOW;
	}
	check_fault(t, f, a);
	if (f->flags & BTMMU_FAULT_REPEATED) {
		/* Going round in circles (btmmu_fault_fn(3)): the slow path. */
		t->livelocks++;
		return BTMMU_FAULT_SLOW;
	}
	r = btmmu_fault_resolved(f);
	if (r != 0)
		cb_fail(t, FUZZ_FAULT, "btmmu_fault_resolved() before any change", f->gva,
			(unsigned long long)r, f->flags, 0);
	if (a->deadlk) {
		a->deadlk = 0;
		deadlock_calls(t, f);
	}
	if (a->leave_copy) {
		/* btmmu_fault_leave(3): only the innermost callback's own struct. */
		struct btmmu_fault copy = *f;

		a->leave_copy = 0;
		r = btmmu_fault_leave(&copy);
		if (r != -EINVAL)
			cb_fail(t, FUZZ_ERRNO, "btmmu_fault_leave(copy of the fault)",
				(unsigned long long)r, 0, 0, 0);
	}
	if (a->reclaim) {
		a->reclaim = 0;
		r = btmmu_reclaim(f->ctx);
		if (r < 0)
			cb_fail(t, FUZZ_ERRNO, "btmmu_reclaim from a callback",
				(unsigned long long)r, 0, 0, 0);
		for (r = 0; r < FZ_NSPACE * FZ_NVIEWS * FZ_NSNAP; r++)
			t->w.sp[r / (FZ_NVIEWS * FZ_NSNAP)]
				.v[r / FZ_NSNAP % FZ_NVIEWS]
				.snap[r % FZ_NSNAP]
				.gone = 1;
	}
	if (f->flags & (BTMMU_FAULT_GUARD | BTMMU_FAULT_STALE) || a->mode != FZ_ACC_NORMAL)
		return BTMMU_FAULT_SLOW;
	return refill(t, f, a);
}

/* ------------------------------------------------------------------ */
/* Accesses                                                            */
/* ------------------------------------------------------------------ */

static int probe(uintptr_t host, unsigned size, unsigned kind, uint64_t *val)
{
	int ret = 0;

	if (kind == BTMMU_ACCESS_WRITE) {
		switch (size) {
		case 1:
			return btmmu_store8(host, (uint8_t)*val);
		case 2:
			return btmmu_store16(host, (uint16_t)*val);
		case 4:
			return btmmu_store32(host, (uint32_t)*val);
		default:
			return btmmu_store64(host, *val);
		}
	}
	switch (size) {
	case 1: {
		uint8_t v = (uint8_t)SENTINEL;

		ret = btmmu_load8(host, &v);
		*val = v;
		if (ret && v != (uint8_t)SENTINEL)
			ret = -1;
		break;
	}
	case 2: {
		uint16_t v = (uint16_t)SENTINEL;

		ret = btmmu_load16(host, &v);
		*val = v;
		if (ret && v != (uint16_t)SENTINEL)
			ret = -1;
		break;
	}
	case 4: {
		uint32_t v = (uint32_t)SENTINEL;

		ret = btmmu_load32(host, &v);
		*val = v;
		if (ret && v != (uint32_t)SENTINEL)
			ret = -1;
		break;
	}
	default: {
		uint64_t v = SENTINEL;

		ret = btmmu_load64(host, &v);
		*val = v;
		if (ret && v != SENTINEL)
			ret = -1;
		break;
	}
	}
	return ret;
}

/* Run one probe with the callback armed. Returns 0, 1, or -1 (slow but *val written). */
static int do_access(struct fz_thread *t, uint64_t *val)
{
	volatile int ret;

	t->nfaults = 0;
	t->cb_kind = 0;
	t->accesses++;
	atomic_signal_fence(memory_order_seq_cst);
	t->in_access = 1;
	atomic_signal_fence(memory_order_seq_cst);
	/* The callback may leave by siglongjmp() (a guest exception): nothing accessed. */
	if (sigsetjmp(t->jb, 0)) {
		ret = 1;
		t->exceptions++;
	} else {
		ret = probe(t->acc.host, t->acc.size, t->acc.kind, val);
	}
	atomic_signal_fence(memory_order_seq_cst);
	t->in_access = 0;
	atomic_signal_fence(memory_order_seq_cst);
	if (ret)
		t->slow++;
	else
		t->direct++;
	cb_report(t);
	return ret;
}

/* The model byte of gva through tab, or NULL when the page is not present. */
static uint8_t *model_byte(struct fz_thread *t, const struct fz_space *s, const struct fz_pte *tab,
			   uint64_t gva)
{
	int i = fz_hot_find(s, gva & ~(s->page - 1));

	if (i < 0 || !tab[i].prot)
		return NULL;
	return fz_ram_byte(&t->w, tab[i].gpa + (gva & (s->page - 1)));
}

static uint8_t *host_byte(struct fz_thread *t, const struct fz_space *s, const struct fz_pte *tab,
			  uint64_t gva)
{
	int i = fz_hot_find(s, gva & ~(s->page - 1));
	struct fz_ram *r;
	uint64_t gpa;

	if (i < 0 || !tab[i].prot)
		return NULL;
	gpa = tab[i].gpa + (gva & (s->page - 1));
	r = fz_ram_find(&t->w, gpa, 1);
	return r ? &r->host[gpa - r->gpa] : NULL;
}

/* The guest's own rights allow the access on every byte (the slow path would do it). */
static int guest_allows(struct fz_thread *t, const struct fz_space *s, const struct fz_pte *tab,
			uint64_t gva, unsigned size, unsigned kind)
{
	uint32_t need = kind == BTMMU_ACCESS_WRITE ? BTMMU_PROT_WRITE : BTMMU_PROT_READ;
	unsigned i;

	for (i = 0; i < size; i++) {
		int h = fz_hot_find(s, (gva + i) & ~(s->page - 1));

		if (h < 0 || !(tab[h].prot & need) || !model_byte(t, s, tab, gva + i))
			return 0;
	}
	return 1;
}

/*
 * Every host page the access touches is directly accessible in the model
 * (quirks: and the library is not known to leave it uninstalled).
 */
static int host_allows_q(struct fz_thread *t, const struct fz_space *s, const struct fz_pte *tab,
			 uint64_t gva, unsigned size, unsigned kind, int quirks)
{
	uint32_t need = kind == BTMMU_ACCESS_WRITE ? 2 : 1;
	uint64_t last = gva + size - 1;

	if ((fz_host_prot_q(&t->w, s, tab, gva, quirks) & need) != need)
		return 0;
	if ((last & ~(s->hp - 1)) != (gva & ~(s->hp - 1)) &&
	    (fz_host_prot_q(&t->w, s, tab, last, quirks) & need) != need)
		return 0;
	return 1;
}

static int host_allows(struct fz_thread *t, const struct fz_space *s, const struct fz_pte *tab,
		       uint64_t gva, unsigned size, unsigned kind)
{
	return host_allows_q(t, s, tab, gva, size, kind, 0);
}

/*
 * After the access: a direct one must have been allowed and read or
 * written the model's bytes; a slow one must have touched nothing. Then
 * the translator's slow path emulates what the guest may do.
 */
static void access_outcome(struct fz_thread *t, int ret, uint64_t val, int may, int must)
{
	struct fz_access *a = &t->acc;
	struct fz_space *s = a->sp;
	unsigned i;

	if (ret < 0) {
		fail(t, FUZZ_PARTIAL, "slow-path load wrote *val (%#llx)", (unsigned long long)val);
		return;
	}
	if (ret == 0) {
		if (!may) {
			fail(t, FUZZ_STALE,
			     "expected the slow path (no entry with these rights in the model), "
			     "the access was done directly (value %#llx)",
			     (unsigned long long)val);
			return;
		}
		if (a->mode == FZ_ACC_STALE)
			t->stale_ok++;
		for (i = 0; i < a->size; i++) {
			uint8_t *m = model_byte(t, s, a->tab, a->gva + i);
			uint8_t *h = host_byte(t, s, a->tab, a->gva + i);
			uint8_t b = (uint8_t)(val >> (8 * i));

			if (!m || !h) {
				fail(t, FUZZ_STALE, "direct access to byte %u without a model page",
				     i);
				return;
			}
			if (a->kind == BTMMU_ACCESS_WRITE) {
				*m = b;
				if (*h != b) {
					fail(t, FUZZ_DATA,
					     "store: guest RAM byte %u holds %#x, stored %#x (wrong frame?)",
					     i, *h, b);
					return;
				}
			} else if (*m != b) {
				fail(t, FUZZ_DATA, "load: byte %u expected %#x (model), loaded %#x",
				     i, *m, b);
				return;
			}
		}
		return;
	}
	if (must) {
		fail(t, FUZZ_MISSED,
		     "expected a direct access (entry with the rights in the model, callback "
		     "refilled it), got the slow path (%u faults)",
		     t->nfaults);
		return;
	}
	/* Slow: nothing may have been written. */
	for (i = 0; i < a->size; i++) {
		uint8_t *m = model_byte(t, s, a->tab, a->gva + i);
		uint8_t *h = host_byte(t, s, a->tab, a->gva + i);

		if (m && h && *m != *h) {
			fail(t, FUZZ_PARTIAL,
			     "slow-path access changed guest RAM byte %u: %#x -> %#x", i, *m, *h);
			return;
		}
	}
	if (a->mode != FZ_ACC_NORMAL || !guest_allows(t, s, a->tab, a->gva, a->size, a->kind))
		return;
	/* The translator's slow path, through btmmu_ram_host(). */
	for (i = 0; i < a->size; i++) {
		uint8_t *m = model_byte(t, s, a->tab, a->gva + i);
		uint8_t *h = host_byte(t, s, a->tab, a->gva + i);

		if (a->kind == BTMMU_ACCESS_WRITE)
			*m = *h = (uint8_t)(val >> (8 * i));
		else if (*m != *h)
			fail(t, FUZZ_DATA, "slow-path load: RAM byte %u %#x, model %#x", i, *h, *m);
	}
}

static struct fz_space *live_space(struct fz_thread *t, struct fz_op *o);
static struct fz_ram *live_ram(struct fz_thread *t, struct fz_op *o);

static void arm(struct fz_thread *t, struct fz_op *o, struct fz_space *s, unsigned view,
		enum fz_mode mode)
{
	struct fz_access *a = &t->acc;
	unsigned f = get8(o);

	memset(a, 0, sizeof(*a));
	a->sp = s;
	a->view = view;
	a->v = &s->v[view];
	a->mode = mode;
	a->tab = a->v->tlb;
	a->base = a->v->base;
	a->around = f & 1;
	a->use_gen = !!(f & 2);
	a->populate = !!(f & 4);
	a->unprotect = (f & 0x18) == 0x18;
	a->deadlk = (f & 0xe0) == 0xe0;
	a->reclaim = (f & 0xe0) == 0x20 && (f & 0x18) == 0;
	f = get8(o);
	a->longjmp = (f & 7) == 0;
	a->leave_copy = (f & 0x38) == 0;
	t->rng ^= o->rng;
}

static void access_size(struct fz_op *o, unsigned *size, unsigned *kind)
{
	unsigned b = get8(o);

	*size = 1u << (b & 3);
	*kind = (b & 4) ? BTMMU_ACCESS_WRITE : BTMMU_ACCESS_READ;
}

/* A guest load or store through the view's current base (the translated code's path). */
static void op_access(struct fz_thread *t, struct fz_op *o)
{
	struct fz_space *s = live_space(t, o);
	unsigned view, z, idx, size, kind, mode;
	struct fz_access *a = &t->acc;
	uint64_t gva, off, val, ev0;
	int may, must, ret, exact;

	if (!s)
		return;
	view = pick(o, s->nviews);
	z = pick(o, FZ_NZONE);
	idx = get16(o) % s->zone_n;
	access_size(o, &size, &kind);
	mode = get8(o) % 8;
	if (mode == 5 && size > 1)
		off = s->page - size / 2; /* crossing into the next page */
	else if (mode == 6)
		off = get64(o) % (s->page - size + 1);
	else if (mode == 7)
		off = s->page - size;
	else
		off = (get64(o) % (s->page / size)) * size;
	gva = s->zone[z] + (uint64_t)idx * s->page + off;
	if (s->nhot && get8(o) < 192) {
		/* Mostly where the translator has entries, with their rights: the direct path. */
		unsigned k, start = get16(o) % s->nhot;

		for (k = 0; k < s->nhot; k++) {
			unsigned h = (start + k) % s->nhot;
			uint8_t p = s->v[view].tlb[h].prot;

			if (p) {
				gva = s->hot[h] + off;
				if (!(p & BTMMU_PROT_WRITE) && (o->rng & 3))
					kind = BTMMU_ACCESS_READ;
				break;
			}
		}
	}
	val = get64(o);
	arm(t, o, s, view, FZ_ACC_NORMAL);
	a->gva = gva;
	a->size = size;
	a->kind = kind;
	a->host = a->base + gva;
	if (kind == BTMMU_ACCESS_WRITE)
		DESC(t, "store%llu space %llu view %llu gva %#llx (offset mode %llu) value %#llx",
		     size * 8ull, (unsigned long long)(s - t->w.sp), view, gva, mode, val);
	else
		DESC(t, "load%llu space %llu view %llu gva %#llx (offset mode %llu)", size * 8ull,
		     (unsigned long long)(s - t->w.sp), view, gva, mode);

	if (btmmu_in_window(&s->vi, gva, size) != fz_in_window(s, gva, size)) {
		fail(t, FUZZ_INFO, "btmmu_in_window() says %d", btmmu_in_window(&s->vi, gva, size));
		return;
	}
	if (!fz_in_window(s, gva, size)) {
		if (s->vi.flags & BTMMU_VIEW_CHECK)
			return; /* the translated code's window check takes the slow path */
		if (!fz_in_window(s, gva, 1))
			return; /* not an address the guest can produce */
		/* Running past the end of the guest VA: into the guard, slow path. */
		ret = do_access(t, &val);
		if (ret == 0)
			fail(t, FUZZ_STALE, "access running into the guard was done directly");
		else
			access_outcome(t, ret, val, 0, 0);
		return;
	}
	ev0 = evictions(t->run);
	exact = view_exact(t, a->v, ev0);
	a->exact = exact;
	ret = do_access(t, &val);
	may = host_allows(t, s, a->tab, gva, size, kind);
	must = may && exact && guest_allows(t, s, a->tab, gva, size, kind) &&
	       host_allows_q(t, s, a->tab, gva, size, kind, QUIRKS(t)) &&
	       evictions(t->run) == ev0 && view_exact(t, a->v, ev0);
	t->dret = ret * 100 + may * 10 + must;
	t->musts += must;
	t->mays += may;
	access_outcome(t, ret, val, may, must);
}

/* A guest access through the base from before the view's last full flush. */
static void op_stale(struct fz_thread *t, struct fz_op *o)
{
	struct fz_space *s = live_space(t, o);
	struct fz_access *a = &t->acc;
	unsigned view, size, kind;
	struct fz_snap *sn;
	uint64_t gva, val;
	int ret, may;

	if (!s || !s->nhot)
		return;
	view = pick(o, s->nviews);
	sn = &s->v[view].snap[pick(o, FZ_NSNAP)];
	if (!sn->live)
		return;
	gva = s->hot[get16(o) % s->nhot];
	access_size(o, &size, &kind);
	gva += (get64(o) % (s->page / size)) * size;
	val = get64(o);
	arm(t, o, s, view, FZ_ACC_STALE);
	a->snap = sn;
	a->tab = sn->t;
	a->base = sn->base;
	a->gva = gva;
	a->size = size;
	a->kind = kind;
	a->host = a->base + gva;
	DESC(t, "stale access (old base %#llx) kind %llu size %llu space %llu view %llu gva %#llx",
	     a->base, kind, size, (unsigned long long)(s - t->w.sp), view, gva);
	may = !sn->gone && host_allows(t, s, a->tab, gva, size, kind);
	ret = do_access(t, &val);
	if (ret > 0 && !a->saw_stale)
		fail(t, FUZZ_FLAGS, "stale access went slow without a STALE fault");
	access_outcome(t, ret, val, may, 0);
}

/* An access into the guard past the window's end: GUARD fault, slow path. */
static void op_guard(struct fz_thread *t, struct fz_op *o)
{
	struct fz_space *s = live_space(t, o);
	struct fz_access *a = &t->acc;
	unsigned view, size, kind;
	uint64_t x, val = 0;
	int ret;

	if (!s)
		return;
	view = pick(o, s->nviews);
	access_size(o, &size, &kind);
	x = (get64(o) % (s->guard / size)) * size;
	arm(t, o, s, view, FZ_ACC_GUARD);
	a->gva = s->window_gva + s->wsize + x;
	a->size = size;
	a->kind = kind;
	a->host = a->base + a->gva;
	DESC(t, "guard access kind %llu size %llu space %llu view %llu window end + %#llx", kind,
	     size, (unsigned long long)(s - t->w.sp), view, x);
	ret = do_access(t, &val);
	if (ret == 0)
		fail(t, FUZZ_STALE, "guard access done directly");
	else if (ret > 0 && !a->saw_guard)
		fail(t, FUZZ_FLAGS, "guard access: no GUARD fault");
	else if (ret < 0)
		fail(t, FUZZ_PARTIAL, "guard load wrote *val");
}

/* ------------------------------------------------------------------ */
/* Guest RAM                                                           */
/* ------------------------------------------------------------------ */

static const uint64_t ram_lens[] = { UINT64_C(64) << 10,  UINT64_C(128) << 10,
				     UINT64_C(256) << 10, UINT64_C(256) << 10,
				     UINT64_C(1) << 20,	  UINT64_C(1) << 20,
				     UINT64_C(2) << 20,	  FZ_SLOT };

/* The translator drops its TLB entries for RAM that goes away. */
static void forget_gpa(struct fz_thread *t, uint64_t gpa, uint64_t len, unsigned slot)
{
	unsigned i, v, k, n;

	for (i = 0; i < FZ_NSPACE; i++) {
		struct fz_space *s = &t->w.sp[i];

		if (!s->live)
			continue;
		for (v = 0; v < s->nviews; v++) {
			for (k = 0; k < s->nhot; k++) {
				if (s->v[v].tlb[k].prot && s->v[v].tlb[k].gpa - gpa < len) {
					s->v[v].tlb[k].prot = 0;
					/*
					 * The library drops whole units: a unit mixing
					 * frames of two ranges loses its other pages too,
					 * or keeps these (FUZZ_Q_STICKY: the entry is
					 * the first range's).
					 */
					s->v[v].sync_ev = UINT64_MAX;
					if (s->ppu > 1)
						s->v[v].ghost = 1;
				}
				/*
				 * An entry whose pages first came from this range is
				 * dropped whatever its pages map now: the library
				 * then holds fewer pages than the model.
				 */
				if (s->ppu > 1 && s->v[v].tlb[k].eram == slot + 1 &&
				    !(s->hot[k] & (s->unit - 1)))
					s->v[v].sync_ev = UINT64_MAX;
				for (n = 0; n < FZ_NSNAP; n++) {
					if (s->v[v].snap[n].t[k].gpa - gpa < len)
						s->v[v].snap[n].t[k].prot = 0;
				}
			}
		}
	}
}

static void ram_destroy(struct fz_thread *t, struct fz_ram *r)
{
	int ret = btmmu_ram_destroy(r->h);

	expect_ret(t, "btmmu_ram_destroy", 0, ret);
	r->live = 0;
	forget_gpa(t, r->gpa, r->len, (unsigned)(r - t->w.ram));
}

/* A bad btmmu_ram_create(): one defect at a time (btmmu_ram_create(3)). */
static void ram_create_bad(struct fz_thread *t, struct fz_op *o, struct fz_ram *r, uint64_t gpa)
{
	struct btmmu *ctx = t->run->ctx;
	uint64_t hp = UINT64_C(1) << t->run->hps;
	struct {
		struct btmmu_ram_args a;
		uint64_t pad[2];
	} big;
	struct btmmu_ram_args a = { .size = sizeof(a), .gpa = gpa, .len = hp, .fd = -1 };
	struct btmmu_ram *h = NULL, *h0;
	unsigned d = pick(o, 22);
	int want = -EINVAL, ret, i;
	void *out = &h;

	switch (d) {
	case 0:
		a.flags = 1u << pick(o, 32);
		break;
	case 21: /* a size above a page */
		want = -E2BIG;
		ret = btmmu_ram_create(ctx, huge_args(&a, sizeof(a), get16(o)), &h);
		goto check;
	case 1:
		a.len = 0;
		break;
	case 2:
		a.gpa += hp / 2;
		break;
	case 3:
		a.len += 512;
		break;
	case 4:
		a.fd = r->fd;
		a.offset = hp / 4;
		break;
	case 5:
		a.gpa = (uint64_t)0 - hp;
		a.len = 2 * hp;
		break;
	case 6:
		a.fd = r->fd;
		a.offset = (uint64_t)0 - hp;
		a.len = 2 * hp;
		break;
	case 7:
		a.offset = hp;
		break;
	case 8:
		a.fd = t->pipefd[0];
		break;
	case 9:
		a.fd = r->fd;
		a.offset = FZ_FILE - hp;
		a.len = 2 * hp;
		break;
	case 10:
		a.fd = -2 - (int)pick(o, 100);
		want = -EBADF;
		break;
	case 11:
		a.fd = 1 << 20; /* above RLIMIT_NOFILE: never open */
		want = -EBADF;
		break;
	case 12:
		a.fd = t->rofd;
		want = -EACCES;
		break;
	case 13:
		a.fd = t->sealfd;
		want = -EPERM;
		break;
	case 14:
		want = -EFAULT;
		ret = btmmu_ram_create(ctx, NULL, &h);
		goto check;
	case 15:
		want = -EFAULT;
		out = NULL;
		break;
	case 16:
		ret = btmmu_ram_create(NULL, &a, &h);
		goto check;
	case 17:
		a.size = pick(o, sizeof(size_t));
		break;
	case 18:
		memset(&big, 0, sizeof(big));
		big.a = a;
		big.a.size = sizeof(big);
		((uint8_t *)&big)[sizeof(a) + pick(o, sizeof(big.pad))] = 1;
		want = -E2BIG;
		ret = btmmu_ram_create(ctx, &big.a, &h);
		goto check;
	default:
		/* Overlap with a live range of this thread. */
		for (i = 0; i < FZ_NRAM; i++) {
			if (t->w.ram[i].live)
				break;
		}
		if (i == FZ_NRAM)
			return;
		a.gpa = t->w.ram[i].gpa + t->w.ram[i].len - hp;
		a.len = 2 * hp;
		want = -EEXIST;
		break;
	}
	ret = btmmu_ram_create(ctx, &a, out);
check:
	DESC(t, "bad btmmu_ram_create defect %llu gpa %#llx len %#llx fd %lld off %#llx", d, a.gpa,
	     a.len, (long long)a.fd, a.offset);
	if (ret == -ENOMEM && host_lossy(t->run) &&
	    (want == -EEXIST || want == -EACCES || want == -EPERM)) {
		t->enomem++;
		return;
	}
	h0 = h;
	if (!expect_ret(t, "btmmu_ram_create (bad input)", want, ret) && ret == 0 && h0)
		btmmu_ram_destroy(h0);
	if (h)
		fail(t, FUZZ_ERRNO, "failed btmmu_ram_create wrote *ramp");
}

static void ram_create(struct fz_thread *t, struct fz_op *o, struct fz_ram *r, unsigned slot)
{
	uint64_t hp = UINT64_C(1) << t->run->hps, len = ram_lens[pick(o, 8)];
	uint64_t gpa = FZ_ZONE(t->id) + slot * FZ_SLOT;
	struct {
		struct btmmu_ram_args a;
		uint64_t pad[2];
	} big;
	struct btmmu_ram_args a = { .size = sizeof(a), .gpa = gpa, .fd = -1 };
	unsigned variant = get8(o), i;
	void *host = NULL;
	int own, ret;

	if (len < hp)
		len = hp;
	if ((variant & 3) == 0) /* at a gpa no range uses: the defect is the only one */
		ram_create_bad(t, o, r, FZ_ZONE(t->id) + FZ_NRAM * FZ_SLOT);
	own = (variant >> 2) & 1;
	a.len = len;
	if (own) {
		a.fd = r->fd;
		a.offset = (get64(o) % ((FZ_FILE - len) / (UINT64_C(64) << 10) + 1)) *
			   (UINT64_C(64) << 10);
	}
	DESC(t, "btmmu_ram_create slot %llu gpa %#llx len %#llx own fd %llu offset %#llx size %llu",
	     slot, gpa, len, own, a.offset, (variant >> 3) & 3);
	switch ((variant >> 3) & 3) {
	case 1: /* an older, smaller struct: no offset field */
		if (a.offset)
			goto normal;
		a.size = offsetof(struct btmmu_ram_args, offset);
		ret = btmmu_ram_create(t->run->ctx, &a, &r->h);
		break;
	case 2: /* a newer, larger one with zeroes past ours */
		memset(&big, 0, sizeof(big));
		big.a = a;
		big.a.size = sizeof(big);
		ret = btmmu_ram_create(t->run->ctx, &big.a, &r->h);
		break;
	default:
normal:
		ret = btmmu_ram_create(t->run->ctx, &a, &r->h);
		break;
	}
	t->dret = ret;
	if (ret == -ENOMEM && host_lossy(t->run)) {
		t->enomem++;
		return;
	}
	if (!expect_ret(t, "btmmu_ram_create", 0, ret))
		return;
	if (btmmu_ram_host(r->h, &host) || !host) {
		fail(t, FUZZ_ERRNO, "btmmu_ram_host");
		return;
	}
	expect_ret(t, "btmmu_ram_host(NULL)", -EINVAL, btmmu_ram_host(NULL, &host));
	expect_ret(t, "btmmu_ram_host(ram, NULL)", -EFAULT, btmmu_ram_host(r->h, NULL));
	r->live = 1;
	r->gpa = gpa;
	r->len = len;
	r->off = a.offset;
	r->own = own;
	r->host = host;
	if (own) {
		r->bytes = r->file + a.offset;
	} else {
		r->bytes = r->anon;
		/* Fresh zero pages (the model of a new memfd) without touching them. */
		madvise(r->anon, FZ_SLOT, MADV_DONTNEED);
	}
	memset(r->ceil, BTMMU_PROT_RWX, len / FZ_GRANULE);
	/* The range shows the file's bytes (or a new memfd's zeroes): sampled. */
	for (i = 0; i < 4; i++) {
		uint64_t off = i == 0 ? 0 : i == 1 ? len - 4096 : get64(o) % (len - 4095);

		if (memcmp(r->host + off, r->bytes + off, 4096)) {
			fail(t, FUZZ_DATA,
			     "new RAM range does not show its file's content at %#llx",
			     (unsigned long long)off);
			break;
		}
	}
}

static void op_ram(struct fz_thread *t, struct fz_op *o)
{
	unsigned slot = pick(o, FZ_NRAM);
	struct fz_ram *r = &t->w.ram[slot];

	if (r->live) {
		DESC(t, "btmmu_ram_destroy slot %llu gpa %#llx len %#llx", slot, r->gpa, r->len);
		ram_destroy(t, r);
	} else {
		ram_create(t, o, r, slot);
	}
}

static struct fz_ram *live_ram(struct fz_thread *t, struct fz_op *o)
{
	unsigned i, k = pick(o, FZ_NRAM);

	for (i = 0; i < FZ_NRAM; i++) {
		struct fz_ram *r = &t->w.ram[(k + i) % FZ_NRAM];

		if (r->live)
			return r;
	}
	ram_create(t, o, &t->w.ram[k], k);
	return t->w.ram[k].live ? &t->w.ram[k] : NULL;
}

/* Writes through other mappings of the RAM (DMA): visible through every alias. */
static void op_dma(struct fz_thread *t, struct fz_op *o)
{
	struct fz_ram *r = live_ram(t, o);
	uint64_t off, n, i;
	uint8_t buf[64];

	if (!r)
		return;
	n = 1 + pick(o, 64);
	off = get64(o) % (r->len - n + 1);
	for (i = 0; i < n; i++)
		buf[i] = (uint8_t)get8(o);
	DESC(t, "dma write gpa %#llx len %llu (pwrite %llu)", r->gpa + off, n, r->own);
	if (r->own && (o->rng & 1)) {
		if (pwrite(r->fd, buf, n, (off_t)(r->off + off)) != (ssize_t)n) {
			fail(t, FUZZ_ERRNO, "pwrite to the RAM's memfd failed");
			return;
		}
	} else {
		memcpy(r->host + off, buf, n);
	}
	memcpy(r->bytes + off, buf, n);
	if (memcmp(r->host + off, buf, n))
		fail(t, FUZZ_DATA, "RAM host view does not show a write to its file");
}

/* ------------------------------------------------------------------ */
/* Spaces                                                              */
/* ------------------------------------------------------------------ */

static const uint32_t va_choices[] = { 32, 32, 36, 39, 40, 44, 47, 48, 57, 64 };
static const uint32_t ps_choices[] = { 10, 12, 12, 12, 13, 14, 16, 21 };

static void check_view_info(struct fz_thread *t, struct fz_space *s, unsigned v, int exact);

/* A geometry from the record; returns the args to create with. */
static void space_geometry(struct fz_thread *t, struct fz_op *o, struct btmmu_space_args *a)
{
	uint32_t hps = t->run->hps, us, wb, maxwb;
	uint64_t regions;

	memset(a, 0, sizeof(*a));
	a->size = sizeof(*a);
	a->va_bits = va_choices[pick(o, 10)];
	a->page_shift = ps_choices[pick(o, 8)];
	a->nviews = 1 + pick(o, FZ_NVIEWS);
	a->ring = pick(o, 5);
	a->flags = get8(o) & 1 ? BTMMU_SPACE_SIGN_EXTEND : 0;
	us = a->page_shift > hps ? a->page_shift : hps;
	maxwb = a->va_bits < 46 ? a->va_bits : 46;
	switch (pick(o, 8)) {
	case 0:
		wb = 0; /* the default: min(va_bits, 40) */
		break;
	case 1:
		wb = us;
		break;
	case 2:
		wb = us + 2;
		break;
	case 3:
		wb = 24;
		break;
	case 4:
		wb = 30;
		break;
	case 5:
		wb = 36;
		break;
	default:
		wb = a->va_bits;
		break;
	}
	if (wb) {
		if (wb > maxwb)
			wb = maxwb;
		if (wb < us)
			wb = us;
	}
	/* Keep a space within 4 TiB of host address space. */
	regions = (uint64_t)a->nviews * (a->ring ? a->ring : 4);
	if (!wb && regions << (a->va_bits < 40 ? a->va_bits : 40) > (UINT64_C(1) << 42))
		wb = a->va_bits < 40 ? a->va_bits : 40;
	while (wb && wb > us && regions << wb > (UINT64_C(1) << 42))
		wb--;
	a->window_bits = wb;
	if (wb && wb < a->va_bits) {
		uint64_t ws = UINT64_C(1) << wb;
		uint64_t top = a->va_bits == 64 ? 0 : UINT64_C(1) << a->va_bits;
		uint64_t h = UINT64_C(1) << (a->va_bits - 1);

		switch (pick(o, 4)) {
		case 0:
			a->window_gva = 0;
			break;
		case 1: /* the second window: canonical unless it is the upper half */
			a->window_gva =
				(a->flags & BTMMU_SPACE_SIGN_EXTEND) && wb + 1 == a->va_bits ? 0 :
											       ws;
			break;
		case 2:
			a->window_gva = (a->flags & BTMMU_SPACE_SIGN_EXTEND) ? (uint64_t)0 - ws :
									       top - ws;
			break;
		default:
			a->window_gva = (a->flags & BTMMU_SPACE_SIGN_EXTEND) ? (uint64_t)0 - h : h;
			break;
		}
	}
}

/* A bad btmmu_space_create(): one defect at a time (btmmu_space_create(3)). */
static void space_create_bad(struct fz_thread *t, struct fz_op *o,
			     const struct btmmu_space_args *good)
{
	struct btmmu *ctx = t->run->ctx;
	struct btmmu_space_args a = *good;
	struct {
		struct btmmu_space_args a;
		uint64_t pad[2];
	} big;
	struct btmmu_space *h = NULL;
	uint32_t hps = t->run->hps, us;
	unsigned d = pick(o, 20);
	int want = -EINVAL, ret;
	void *out = &h;
	uintptr_t slots[BTMMU_MAX_VIEWS + 1];

	a.base_slots = NULL;
	a.window_bits = 0;
	a.window_gva = 0;
	us = a.page_shift > hps ? a.page_shift : hps;
	switch (d) {
	case 0:
		ret = btmmu_space_create(NULL, &a, &h);
		goto check;
	case 1:
		want = -EFAULT;
		ret = btmmu_space_create(ctx, NULL, &h);
		goto check;
	case 2:
		want = -EFAULT;
		out = NULL;
		break;
	case 3:
		a.size = pick(o, sizeof(size_t));
		break;
	case 4:
		memset(&big, 0, sizeof(big));
		big.a = a;
		big.a.size = sizeof(big);
		((uint8_t *)&big)[sizeof(a) + pick(o, sizeof(big.pad))] = 0x10;
		want = -E2BIG;
		ret = btmmu_space_create(ctx, &big.a, &h);
		goto check;
	case 5:
		a.flags = 2u << pick(o, 31);
		break;
	case 6:
		a.va_bits = pick(o, 2) ? 31 : 65 + pick(o, 100);
		break;
	case 7:
		a.page_shift = pick(o, 2) ? 9 : 31;
		break;
	case 8:
		a.nviews = pick(o, 2) ? 0 : BTMMU_MAX_VIEWS + 1 + pick(o, 10);
		break;
	case 9:
		a.ring = BTMMU_MAX_RING + 1 + pick(o, 10);
		break;
	case 10:
		a.window_bits = a.va_bits + 1 > 46 ? 47 : a.va_bits + 1;
		break;
	case 11:
		if (us <= 10)
			return;
		a.window_bits = us - 1;
		break;
	case 12: /* window_gva for a window covering the VA */
		if (a.va_bits > 46)
			return;
		a.window_bits = a.va_bits;
		a.window_gva = UINT64_C(1) << a.page_shift;
		break;
	case 13: /* window_gva not a multiple of the window */
		if (a.va_bits <= 33)
			return;
		a.window_bits = 32 > us ? 32 : us;
		if (a.window_bits >= a.va_bits)
			return;
		a.window_gva = UINT64_C(1) << (a.window_bits - 1);
		break;
	case 14: /* a window that is not canonical */
		if (a.va_bits >= 64 || a.va_bits <= 33)
			return;
		a.window_bits = 32 > us ? 32 : us;
		if (a.window_bits >= a.va_bits)
			return;
		a.window_gva = (a.flags & BTMMU_SPACE_SIGN_EXTEND) ?
				       UINT64_C(1) << (a.va_bits - 1) :
				       UINT64_C(1) << a.va_bits;
		want = -ERANGE;
		break;
	case 15: /* a window larger than 2^46 */
		if (a.va_bits < 47)
			return;
		a.window_bits = 47;
		break;
	case 16: /* base slots not aligned to a word */
		a.base_slots = (uintptr_t *)((char *)slots + 1 + pick(o, sizeof(uintptr_t) - 1));
		break;
	case 17: /* a size above a page */
		want = -E2BIG;
		ret = btmmu_space_create(ctx, huge_args(&a, sizeof(a), get16(o)), &h);
		goto check;
	default:
		a.window_bits = a.va_bits + 1 + pick(o, 3);
		if (a.va_bits >= 46)
			a.window_bits = 47 + pick(o, 10);
		break;
	}
	ret = btmmu_space_create(ctx, &a, out);
check:
	DESC(t,
	     "bad btmmu_space_create defect %llu va %llu ps %llu views %llu ring %llu wb %llu "
	     "wgva %#llx flags %#llx",
	     d, a.va_bits, a.page_shift, a.nviews, a.ring, a.window_bits, a.window_gva, a.flags);
	if (!expect_ret(t, "btmmu_space_create (bad input)", want, ret) && ret == 0 && h)
		btmmu_space_destroy(h);
	else if (h)
		fail(t, FUZZ_ERRNO, "failed btmmu_space_create wrote *spacep");
}

static void space_create(struct fz_thread *t, struct fz_op *o, struct fz_space *s, unsigned slot)
{
	struct btmmu_space_args a;
	struct {
		struct btmmu_space_args a;
		uint64_t pad[2];
	} big;
	unsigned variant = get8(o), v, k;
	struct fz_pte *tlb[FZ_NVIEWS], *snapt[FZ_NVIEWS][FZ_NSNAP];
	uint64_t ev;
	int ret;

	space_geometry(t, o, &a);
	if ((variant & 3) == 0)
		space_create_bad(t, o, &a);
	for (v = 0; v < FZ_NVIEWS; v++) {
		tlb[v] = s->v[v].tlb;
		for (k = 0; k < FZ_NSNAP; k++)
			snapt[v][k] = s->v[v].snap[k].t;
	}
	memset(s, 0, offsetof(struct fz_space, v));
	memset(s->v, 0, sizeof(s->v));
	for (v = 0; v < FZ_NVIEWS; v++) {
		s->v[v].tlb = tlb[v];
		for (k = 0; k < FZ_NSNAP; k++)
			s->v[v].snap[k].t = snapt[v][k];
	}
	s->slots_on = (variant >> 2) & 1;
	a.base_slots = s->slots_on ? s->slots : NULL;
	a.opaque = s;
	s->opaque = s;
	DESC(t,
	     "btmmu_space_create slot %llu va %llu ps %llu views %llu ring %llu wb %llu wgva "
	     "%#llx flags %#llx",
	     slot, a.va_bits, a.page_shift, a.nviews, a.ring, a.window_bits, a.window_gva,
	     a.flags | (unsigned long long)((variant >> 3) & 3) << 8);
	switch ((variant >> 3) & 3) {
	case 1: /* an older struct without base_slots and opaque */
		a.size = offsetof(struct btmmu_space_args, base_slots);
		s->slots_on = 0;
		s->opaque = NULL;
		ret = btmmu_space_create(t->run->ctx, &a, &s->h);
		break;
	case 2:
		memset(&big, 0, sizeof(big));
		big.a = a;
		big.a.size = sizeof(big);
		ret = btmmu_space_create(t->run->ctx, &big.a, &s->h);
		break;
	default:
		ret = btmmu_space_create(t->run->ctx, &a, &s->h);
		break;
	}
	t->dret = ret;
	if (ret == -ENOMEM) { /* no host address space left, or no mapping (enomem) */
		t->enomem++;
		return;
	}
	if (!expect_ret(t, "btmmu_space_create", 0, ret))
		return;
	s->live = 1;
	s->va_bits = a.va_bits;
	s->page_shift = a.page_shift;
	s->flags = a.flags;
	s->nviews = a.nviews;
	s->ring = a.ring ? a.ring : 4;
	s->hps = t->run->hps;
	s->unit_shift = a.page_shift > s->hps ? a.page_shift : s->hps;
	s->window_bits = a.window_bits ? a.window_bits : (a.va_bits < 40 ? a.va_bits : 40);
	s->window_gva = a.window_gva;
	if (s->window_bits == s->va_bits && (s->flags & BTMMU_SPACE_SIGN_EXTEND))
		s->window_gva = (uint64_t)0 - (UINT64_C(1) << (s->va_bits - 1));
	fz_space_layout(s);
	ev = evictions(t->run);
	for (v = 0; v < s->nviews; v++) {
		struct fz_view *fv = &s->v[v];

		memset(fv->tlb, 0, FZ_MAX_HOT * sizeof(*fv->tlb));
		fv->sync_ev = ev;
		if (btmmu_view_base(s->h, v, &fv->base))
			fail(t, FUZZ_ERRNO, "btmmu_view_base of a new space");
		fv->gen = 1; /* btmmu_view_info(3): it starts at 1 */
		check_view_info(t, s, v, 1);
	}
	s->vi.size = sizeof(s->vi);
	btmmu_view_info(s->h, 0, &s->vi);
}

static void op_space(struct fz_thread *t, struct fz_op *o)
{
	unsigned slot = pick(o, FZ_NSPACE);
	struct fz_space *s = &t->w.sp[slot];

	if (s->live) {
		DESC(t, "btmmu_space_destroy slot %llu", slot);
		expect_ret(t, "btmmu_space_destroy", 0, btmmu_space_destroy(s->h));
		s->live = 0;
	} else {
		space_create(t, o, s, slot);
	}
}

static struct fz_space *live_space(struct fz_thread *t, struct fz_op *o)
{
	unsigned i, k = pick(o, FZ_NSPACE);

	for (i = 0; i < FZ_NSPACE; i++) {
		struct fz_space *s = &t->w.sp[(k + i) % FZ_NSPACE];

		if (s->live)
			return s;
	}
	space_create(t, o, &t->w.sp[k], k);
	return t->w.sp[k].live ? &t->w.sp[k] : NULL;
}

/*
 * btmmu_view_info(3) and btmmu_view_base(3) against the model: fixed
 * geometry, the base as last seen (only flushes change it), the base slot,
 * the generation, and live entries (equal to the model's complete units
 * when the view is exact, at most that otherwise).
 */
static void check_view_info(struct fz_thread *t, struct fz_space *s, unsigned v, int exact)
{
	struct fz_view *fv = &s->v[v];
	struct btmmu_view_info vi = { .size = sizeof(vi) };
	uintptr_t base = 0;
	unsigned units;
	int ret;

	ret = btmmu_view_base(s->h, v, &base);
	if (ret || base != fv->base) {
		fail(t, FUZZ_BASE, "btmmu_view_base %d: %#lx, expected %#lx", ret,
		     (unsigned long)base, (unsigned long)fv->base);
		return;
	}
	if (s->slots_on && s->slots[v] != base) {
		fail(t, FUZZ_BASE, "base slot %#lx, base %#lx", (unsigned long)s->slots[v],
		     (unsigned long)base);
		return;
	}
	ret = btmmu_view_info(s->h, v, &vi);
	if (ret || vi.size != sizeof(vi) || vi.base != base || vi.window_gva != s->window_gva ||
	    vi.window_bits != s->window_bits || vi.va_bits != s->va_bits ||
	    vi.page_shift != s->page_shift || vi.unit_shift != s->unit_shift ||
	    vi.host_page_shift != s->hps ||
	    vi.flags != (s->window_bits < s->va_bits ? BTMMU_VIEW_CHECK : 0u)) {
		fail(t, FUZZ_INFO,
		     "btmmu_view_info %d: base %#lx wgva %#llx wb %u va %u ps %u us %u hps %u "
		     "flags %#x; model wgva %#llx wb %u us %u hps %u",
		     ret, (unsigned long)vi.base, (unsigned long long)vi.window_gva, vi.window_bits,
		     vi.va_bits, vi.page_shift, vi.unit_shift, vi.host_page_shift, vi.flags,
		     (unsigned long long)s->window_gva, s->window_bits, s->unit_shift, s->hps);
		return;
	}
	if (vi.gen > fv->gen && host_lossy(t->run))
		fv->gen = vi.gen; /* a window emptied whole (clear_fallbacks) */
	if (vi.gen != fv->gen) {
		fail(t, FUZZ_GEN, "view gen %llu, expected %llu", (unsigned long long)vi.gen,
		     (unsigned long long)fv->gen);
		return;
	}
	if (vi.fills < fv->fills)
		fail(t, FUZZ_INFO, "fills went down: %llu -> %llu", (unsigned long long)fv->fills,
		     (unsigned long long)vi.fills);
	fv->fills = vi.fills;
	units = fz_count_units(&t->w, s, fv->tlb, 0);
	if (vi.live_entries > units ||
	    (exact && vi.live_entries != fz_count_units(&t->w, s, fv->tlb, QUIRKS(t))))
		fail(t, FUZZ_INFO, "live_entries %llu, model has %u complete units (exact %d)",
		     (unsigned long long)vi.live_entries, units, exact);
}

static void op_view(struct fz_thread *t, struct fz_op *o)
{
	struct fz_space *s = live_space(t, o);
	struct btmmu_view_info vi;
	unsigned char *p = (unsigned char *)&vi;
	struct {
		struct btmmu_view_info vi;
		uint8_t pad[24];
	} big;
	unsigned v, i;
	uint64_t ev;
	size_t small = offsetof(struct btmmu_view_info, live_entries);

	if (!s)
		return;
	v = pick(o, s->nviews);
	DESC(t, "view info/base space %llu view %llu", (unsigned long long)(s - t->w.sp), v);
	ev = evictions(t->run);
	check_view_info(t, s, v, view_exact(t, &s->v[v], ev) && evictions(t->run) == ev);
	/* An older, smaller struct: filled up to its size, the rest untouched. */
	memset(&vi, 0x5a, sizeof(vi));
	vi.size = small;
	if (btmmu_view_info(s->h, v, &vi) || vi.size != small || vi.base != s->v[v].base)
		fail(t, FUZZ_INFO, "btmmu_view_info with an older struct size");
	for (i = (unsigned)small; i < sizeof(vi); i++) {
		if (p[i] != 0x5a) {
			fail(t, FUZZ_INFO, "btmmu_view_info wrote past the caller's size");
			break;
		}
	}
	/* A newer, larger one: our size reported, the bytes past it zeroed. */
	memset(&big, 0x77, sizeof(big));
	big.vi.size = sizeof(big);
	if (btmmu_view_info(s->h, v, &big.vi) || big.vi.size != sizeof(vi))
		fail(t, FUZZ_INFO, "btmmu_view_info with a newer struct size: size %zu",
		     big.vi.size);
	for (i = 0; i < sizeof(big.pad); i++) {
		if (big.pad[i]) {
			fail(t, FUZZ_INFO, "btmmu_view_info left bytes past its struct non-zero");
			break;
		}
	}
}

/* ------------------------------------------------------------------ */
/* Map, unmap, flush, protect                                          */
/* ------------------------------------------------------------------ */

/* A request from the record: pages of a zone, frames of a RAM range. */
static void make_req(struct fz_thread *t, struct fz_op *o, struct fz_space *s,
		     struct btmmu_map_req *q, unsigned maxpages)
{
	unsigned z = pick(o, 8), idx = get16(o) % s->zone_n, n, mode = get8(o), lsel;
	struct fz_ram *r = live_ram(t, o);
	uint64_t frames;

	/* Zones 0 and 2 (inside the window) more often than the edges. */
	z = z < 4 ? z : (z & 1) * 2;
	n = 1 + (mode & 0x80 ? get8(o) % maxpages : get8(o) % 16);
	if ((mode & 0x50) && s->ppu > 1)
		n = s->ppu * (1 + pick(o, 2)); /* whole units */
	q->gva = s->zone[z] + (uint64_t)idx * s->page;
	if ((mode & 0x30) && s->ppu > 1)
		q->gva &= ~(s->unit - 1);
	/* Within the zone: the model tracks the zones' pages only. */
	idx = (unsigned)((q->gva - s->zone[z]) >> s->page_shift);
	if (n > s->zone_n - idx)
		n = s->zone_n - idx;
	q->len = (uint64_t)n * s->page;
	q->prot = 1 + pick(o, 7);
	q->flags = (mode & 1 ? BTMMU_MAP_GLOBAL : 0) | (mode & 2 ? BTMMU_MAP_POPULATE : 0);
	lsel = get8(o);
	if (lsel < 64) {
		/* From a guest large page of 2 to 16 pages, which holds the request. */
		unsigned ls = s->page_shift + 1 + lsel % 4;
		uint64_t end = (q->gva | ((UINT64_C(1) << ls) - 1)) + 1;

		q->flags |= BTMMU_MAP_PAGE_SHIFT(ls);
		if (end - q->gva < q->len)
			q->len = end - q->gva;
	}
	if (!r) {
		q->gpa = UINT64_C(1) << 62;
		return;
	}
	frames = r->len >> s->page_shift;
	if (!frames) {
		q->gpa = r->gpa;
		return;
	}
	if ((mode & 0x0c) != 0x0c && r->len >= s->unit) {
		/* Host-page-uniform: the frame's offset in the unit is the page's. */
		uint64_t units = r->len / s->unit, need = (q->len + s->unit - 1) / s->unit;

		if ((mode & 0x0c) != 0x08 && units > need)
			units -= need; /* mostly inside the range */
		q->gpa = r->gpa + (get64(o) % units) * s->unit + (q->gva & (s->unit - 1));
	} else {
		if ((mode & 0x03) && frames > n)
			frames -= n;
		q->gpa = r->gpa + (get64(o) % frames) * s->page;
	}
}

/*
 * The error a valid-looking request gets: per btmmu_map_batch(3) every
 * request is checked (canonical, no wrap: -ERANGE), then the generation,
 * then that its guest-physical range lies in one RAM range (-ENXIO).
 */
static int req_error(struct fz_thread *t, struct fz_space *s, const struct btmmu_map_req *q)
{
	if (!fz_va_valid(s, q->gva, q->len))
		return -ERANGE;
	if (!fz_req_shift_ok(s, q))
		return -EINVAL;
	return 0;
}

static int req_ram_error(struct fz_thread *t, const struct btmmu_map_req *q)
{
	if (q->gpa + q->len < q->gpa || !fz_ram_find(&t->w, q->gpa, q->len))
		return -ENXIO;
	return 0;
}

static void check_map_count_range(struct fz_thread *t, struct fz_view *v, int ret, uint64_t ev0,
				  uint64_t lo, uint64_t hi)
{
	uint64_t ev = evictions(t->run);
	int exact = view_exact(t, v, ev0) && ev == ev0;

	if (ret < 0) {
		if (ret == -ENOMEM && host_lossy(t->run)) {
			t->enomem++;
			return;
		}
		fail(t, FUZZ_ERRNO, "map of valid requests failed: %d (%s)", ret, strerror(-ret));
		return;
	}
	if ((uint64_t)ret > hi || (exact && (uint64_t)ret < lo))
		fail(t, FUZZ_COUNT,
		     "map returned %d pages; the model has %llu..%llu directly accessible "
		     "(exact %d)",
		     ret, (unsigned long long)lo, (unsigned long long)hi, exact);
}

/* After a map: the pages of the requests that are directly accessible. */
static void check_map_count(struct fz_thread *t, struct fz_space *s, struct fz_view *v,
			    const struct btmmu_map_req *q, unsigned n, int ret, uint64_t ev0)
{
	uint64_t lo, hi;

	fz_count_map(&t->w, s, v->tlb, q, n, QUIRKS(t), &lo, &hi);
	check_map_count_range(t, v, ret, ev0, lo, hi);
}

static void check_gen_same(struct fz_thread *t, struct fz_space *s, uint32_t views,
			   const char *what)
{
	unsigned v;

	for (v = 0; v < s->nviews; v++) {
		struct btmmu_view_info vi = { .size = offsetof(struct btmmu_view_info,
							       live_entries) };

		if (!(views & (1u << v)))
			continue;
		btmmu_view_info(s->h, v, &vi);
		if (vi.gen > s->v[v].gen && host_lossy(t->run)) {
			/* A window emptied whole (clear_fallbacks) invalidates the view too. */
			s->v[v].gen = vi.gen;
			continue;
		}
		if (vi.gen != s->v[v].gen) {
			fail(t, FUZZ_GEN, "%s changed view %u's gen %llu -> %llu", what, v,
			     (unsigned long long)s->v[v].gen, (unsigned long long)vi.gen);
			return;
		}
	}
}

/* btmmu_unmap(3), btmmu_flush(3): the generation of every view in the mask grows. */
static void check_gen_grew(struct fz_thread *t, struct fz_space *s, uint32_t views,
			   const char *what)
{
	unsigned v;

	for (v = 0; v < s->nviews; v++) {
		struct btmmu_view_info vi = { .size = offsetof(struct btmmu_view_info,
							       live_entries) };

		btmmu_view_info(s->h, v, &vi);
		if (views & (1u << v)) {
			if (vi.gen <= s->v[v].gen)
				fail(t, FUZZ_GEN, "%s did not grow view %u's gen (%llu -> %llu)",
				     what, v, (unsigned long long)s->v[v].gen,
				     (unsigned long long)vi.gen);
			s->v[v].gen = vi.gen;
		} else if (vi.gen > s->v[v].gen && host_lossy(t->run)) {
			s->v[v].gen = vi.gen; /* a window emptied whole */
		} else if (vi.gen != s->v[v].gen) {
			fail(t, FUZZ_GEN, "%s changed view %u's gen outside the mask", what, v);
		}
	}
}

static void op_map(struct fz_thread *t, struct fz_op *o)
{
	struct fz_space *s = live_space(t, o);
	struct btmmu_map_req q;
	unsigned view;
	uint64_t ev0;
	int want, ret;

	if (!s)
		return;
	view = pick(o, s->nviews);
	make_req(t, o, s, &q, 64);
	want = req_error(t, s, &q);
	if (!want)
		want = req_ram_error(t, &q);
	DESC(t, "btmmu_map space %llu view %llu gva %#llx gpa %#llx len %#llx prot %llu flags %llu",
	     (unsigned long long)(s - t->w.sp), view, q.gva, q.gpa, q.len, q.prot, q.flags);
	ev0 = evictions(t->run);
	ret = btmmu_map(s->h, view, &q);
	t->dret = ret;
	if (want) {
		expect_ret(t, "btmmu_map", want, ret);
	} else {
		/* The translator's TLB holds the new entry whatever the host did. */
		fz_large_note(s, view, &q);
		fz_apply_map(&t->w, s, s->v[view].tlb, &q);
		check_map_count(t, s, &s->v[view], &q, 1, ret, ev0);
	}
	check_gen_same(t, s, 1u << view, "btmmu_map");
}

static void op_map_batch(struct fz_thread *t, struct fz_op *o)
{
	struct fz_space *s = live_space(t, o);
	struct btmmu_map_req q[8];
	unsigned view, n, i, g;
	uint64_t gen = 0, ev0;
	int want = 0, ret;

	if (!s)
		return;
	view = pick(o, s->nviews);
	n = 1 + pick(o, 8);
	if (host_lossy(t->run)) {
		/* Windows emptied whole grow the generation: start from the current one. */
		struct btmmu_view_info vi = { .size = offsetof(struct btmmu_view_info,
							       live_entries) };

		if (!btmmu_view_info(s->h, view, &vi) && vi.gen > s->v[view].gen)
			s->v[view].gen = vi.gen;
	}
	for (i = 0; i < n; i++)
		make_req(t, o, s, &q[i], 32);
	n = ramcache_trim(t, q, n);
	if (!n)
		return;
	g = pick(o, 8);
	if (g >= 4)
		g = g & 1; /* 0 or the current generation, mostly */
	if (g == 1)
		gen = s->v[view].gen;
	else if (g == 2)
		gen = s->v[view].gen > 1 ?
			      s->v[view].gen - 1 - pick(o, (unsigned)s->v[view].gen - 1) :
			      2;
	else if (g == 3)
		gen = s->v[view].gen + 1 + pick(o, 4);
	for (i = 0; i < n && !want; i++)
		want = req_error(t, s, &q[i]);
	if (!want && gen && gen != s->v[view].gen)
		want = -ESTALE;
	for (i = 0; i < n && !want; i++)
		want = req_ram_error(t, &q[i]);
	DESC(t,
	     "btmmu_map_batch space %llu view %llu nreq %llu gen %llu (view gen %llu) first "
	     "gva %#llx gpa %#llx len %#llx",
	     (unsigned long long)(s - t->w.sp), view, n, gen, s->v[view].gen, q[0].gva, q[0].gpa,
	     q[0].len);
	if (t->run->cfg->trace) {
		for (i = 0; i < n; i++)
			fprintf(stderr,
				"  #%zu t%u   req %u: gva %#llx gpa %#llx len %#llx prot %u "
				"flags %u\n",
				t->opidx, t->id, i, (unsigned long long)q[i].gva,
				(unsigned long long)q[i].gpa, (unsigned long long)q[i].len,
				q[i].prot, q[i].flags);
	}
	ev0 = evictions(t->run);
	ret = btmmu_map_batch(s->h, view, q, n, gen);
	t->dret = ret;
	if (!want && gen && ret == -ESTALE && host_lossy(t->run)) {
		/* Another call's window emptied whole meanwhile: the batch is refused. */
		t->enomem++;
		check_gen_same(t, s, 1u << view, "btmmu_map_batch");
		return;
	}
	if (want) {
		expect_ret(t, "btmmu_map_batch", want, ret);
	} else {
		uint64_t slo = 0, shi = 0, lo, hi;

		/*
		 * Requests are installed in order: a later one can undo a unit an
		 * earlier one completed. The library counts each request's pages
		 * as they stand after it; the page says "accessible on return".
		 */
		memcpy(t->scratch, s->v[view].tlb, s->nhot * sizeof(*t->scratch));
		for (i = 0; i < n; i++) {
			fz_apply_map(&t->w, s, t->scratch, &q[i]);
			fz_count_map(&t->w, s, t->scratch, &q[i], 1, QUIRKS(t), &lo, &hi);
			slo += lo;
			shi += hi;
			if (t->run->cfg->trace)
				fprintf(stderr,
					"  #%zu t%u   req %u: %llu..%llu pages as it stands\n",
					t->opidx, t->id, i, (unsigned long long)lo,
					(unsigned long long)hi);
		}
		for (i = 0; i < n; i++) {
			fz_large_note(s, view, &q[i]);
			fz_apply_map(&t->w, s, s->v[view].tlb, &q[i]);
		}
		fz_count_map(&t->w, s, s->v[view].tlb, q, n, QUIRKS(t), &lo, &hi);
		/* Either reading of the count is accepted; "in order" ones are noted. */
		if (ret >= 0 && ((uint64_t)ret > hi || (uint64_t)ret < lo) &&
		    (uint64_t)ret >= (slo < lo ? slo : lo) &&
		    (uint64_t)ret <= (shi > hi ? shi : hi))
			t->overcount++;
		check_map_count_range(t, &s->v[view], ret, ev0, slo < lo ? slo : lo,
				      shi > hi ? shi : hi);
	}
	check_gen_same(t, s, 1u << view, "btmmu_map_batch");
}

static uint32_t views_mask(struct fz_op *o, const struct fz_space *s)
{
	uint32_t all = (1u << s->nviews) - 1;

	return 1 + pick(o, all);
}

static void op_unmap(struct fz_thread *t, struct fz_op *o)
{
	struct fz_space *s = live_space(t, o);
	uint32_t views;
	uint64_t gva, len, ev0, ev;
	unsigned v, n = 0, nb = 0, b, mode;
	int want = 0, ret, exact = 1, ghost = 0;

	if (!s)
		return;
	views = views_mask(o, s);
	mode = pick(o, 16);
	if (mode == 0) { /* the whole window */
		gva = s->window_gva;
		len = s->wsize;
	} else if (mode == 1) { /* the whole address space */
		if (s->va_bits == 64) {
			gva = 0;
			len = UINT64_C(1) << 63;
		} else if (s->flags & BTMMU_SPACE_SIGN_EXTEND) {
			gva = (uint64_t)0 - (UINT64_C(1) << (s->va_bits - 1));
			len = UINT64_C(1) << s->va_bits;
		} else {
			gva = 0;
			len = UINT64_C(1) << s->va_bits;
		}
	} else {
		gva = s->zone[pick(o, FZ_NZONE)] + (uint64_t)(get16(o) % s->zone_n) * s->page;
		len = (uint64_t)(1 + pick(o, mode == 2 ? s->zone_n : 16)) * s->page;
		if (mode == 3)
			gva &= ~(s->unit - 1);
	}
	if (!fz_va_valid(s, gva, len))
		want = -ERANGE;
	DESC(t, "btmmu_unmap space %llu views %#llx gva %#llx len %#llx",
	     (unsigned long long)(s - t->w.sp), views, gva, len);
	ev0 = evictions(t->run);
	ret = btmmu_unmap(s->h, views, gva, len);
	t->dret = ret;
	ev = evictions(t->run);
	if (want) {
		expect_ret(t, "btmmu_unmap", want, ret);
		check_gen_same(t, s, views, "a failed btmmu_unmap");
		return;
	}
	for (v = 0; v < s->nviews; v++) {
		if (!(views & (1u << v)))
			continue;
		uint64_t wgva = gva, wlen = len;

		exact &= view_exact(t, &s->v[v], ev0);
		/* Widened to the large pages it touches, or everything (records overflowed). */
		if (!fz_large_widen(s, v, &wgva, &wlen)) {
			wgva = 0;
			wlen = UINT64_MAX;
			fz_large_drop(s, v, false);
		}
		n += fz_apply_unmap(s, s->v[v].tlb, wgva, wlen, &b);
		nb += b;
		ghost |= s->v[v].ghost && (QUIRKS(t) & FUZZ_Q_STICKY);
	}
	exact &= ev == ev0;
	if (ret < 0)
		fail(t, FUZZ_ERRNO, "btmmu_unmap of a valid range: %d", ret);
	else if (((unsigned)ret > (exact ? n : nb) && !ghost) || (exact && (unsigned)ret != n))
		fail(t, FUZZ_COUNT,
		     "btmmu_unmap removed %d units, the model %u (at most %u, exact %d)", ret, n,
		     nb, exact);
	check_gen_grew(t, s, views, "btmmu_unmap");
}

/*
 * A full flush of view v happened: the base may change only when the view
 * had entries (btmmu_flush(3): a view with no entry is left as it is; with
 * a ring of 1 it is cleared in place) and must when it had and the library
 * holds what the model holds. The old region then still serves the old
 * entries until it is torn down.
 */
static void after_full_flush(struct fz_thread *t, struct fz_space *s, unsigned v, unsigned before,
			     int exact, uint64_t ev)
{
	struct fz_view *fv = &s->v[v];
	uintptr_t base = 0;

	btmmu_view_base(s->h, v, &base);
	if (base != fv->base) {
		/* FUZZ_Q_STICKY: records of a destroyed range may remain (ghost). */
		int ghost = fv->ghost && (QUIRKS(t) & FUZZ_Q_STICKY);

		if (s->ring == 1 || (!before && !ghost))
			fail(t, FUZZ_BASE, "view %u's base changed (%#lx -> %#lx) with %s", v,
			     (unsigned long)fv->base, (unsigned long)base,
			     s->ring == 1 ? "a ring of 1" : "no entry in the model");
		struct fz_snap *sn = NULL;
		unsigned k;

		/* The new base's region was clean: a retired one there was torn down. */
		for (k = 0; k < FZ_NSNAP; k++) {
			if (fv->snap[k].live && fv->snap[k].base == base)
				fv->snap[k].live = 0;
			if (!fv->snap[k].live && !sn)
				sn = &fv->snap[k];
		}
		if (!sn) { /* cannot happen with a ring of at most 4: drop slot 0 */
			struct fz_pte *t0 = fv->snap[0].t;

			for (k = 1; k < FZ_NSNAP; k++)
				fv->snap[k - 1] = fv->snap[k];
			sn = &fv->snap[FZ_NSNAP - 1];
			sn->t = t0;
		}
		memcpy(sn->t, fv->tlb, s->nhot * sizeof(*fv->tlb));
		sn->live = 1;
		sn->gone = 0;
		sn->base = fv->base;
		fv->base = base;
	} else if (exact && before && s->ring > 1) {
		fail(t, FUZZ_BASE, "view %u had %u entries, full flush kept its base", v, before);
	}
	if (s->slots_on && s->slots[v] != base)
		fail(t, FUZZ_BASE, "base slot %u not updated", v);
	memset(fv->tlb, 0, s->nhot * sizeof(*fv->tlb));
	fv->sync_ev = ev; /* the region is clean: the library holds what the model holds */
	fv->ghost = 0;
}

static void op_flush(struct fz_thread *t, struct fz_op *o)
{
	struct fz_space *s = live_space(t, o);
	uint32_t views, flags;
	unsigned v, before[FZ_NVIEWS];
	int exact[FZ_NVIEWS], ret;
	uint64_t ev0, ev;

	if (!s)
		return;
	views = views_mask(o, s);
	flags = pick(o, 3) == 0 ? BTMMU_FLUSH_NONGLOBAL : 0;
	DESC(t, "btmmu_flush space %llu views %#llx flags %#llx", (unsigned long long)(s - t->w.sp),
	     views, flags);
	ev0 = evictions(t->run);
	for (v = 0; v < s->nviews; v++) {
		before[v] = fz_count_present(s, s->v[v].tlb);
		exact[v] = view_exact(t, &s->v[v], ev0);
	}
	ret = btmmu_flush(s->h, views, flags);
	t->dret = ret;
	ev = evictions(t->run);
	if (!expect_ret(t, "btmmu_flush", 0, ret))
		return;
	for (v = 0; v < s->nviews; v++) {
		uintptr_t base = 0;

		btmmu_view_base(s->h, v, &base);
		if (!(views & (1u << v)) || flags) {
			if (base != s->v[v].base)
				fail(t, FUZZ_BASE, "view %u's base changed by %s", v,
				     flags ? "a non-global flush" : "a flush of other views");
			if (views & (1u << v)) {
				fz_apply_nonglobal(s, s->v[v].tlb);
				fz_large_drop(s, v, true);
			}
			continue;
		}
		fz_large_drop(s, v, false);
		after_full_flush(t, s, v, before[v], exact[v] && ev == ev0, ev);
	}
	check_gen_grew(t, s, views, "btmmu_flush");
}

static void op_protect(struct fz_thread *t, struct fz_op *o)
{
	struct fz_ram *r = live_ram(t, o);
	uint64_t gpa, len, ngran, g, bound = 0;
	unsigned mode, i, v, k;
	uint32_t prot;
	int unprot, ret, unchanged = 1;

	if (!r)
		return;
	ngran = r->len / FZ_GRANULE;
	mode = pick(o, 6);
	if (mode == 0) {
		gpa = r->gpa;
		len = r->len;
	} else if (mode == 1) { /* a 4 KiB or host page */
		uint64_t sz = get8(o) & 1 ? 4096 : UINT64_C(1) << t->run->hps;

		gpa = r->gpa + (get64(o) % (r->len / sz)) * sz;
		len = sz;
	} else {
		g = get64(o) % ngran;
		gpa = r->gpa + g * FZ_GRANULE;
		len = (1 + get64(o) % (mode == 2 ? 64 : 8)) * FZ_GRANULE;
		if (gpa + len > r->gpa + r->len)
			len = r->gpa + r->len - gpa;
	}
	unprot = pick(o, 3) == 0;
	prot = unprot ? BTMMU_PROT_RWX : get8(o) & 7;
	for (g = 0; g < len / FZ_GRANULE; g++)
		unchanged &= r->ceil[(gpa - r->gpa) / FZ_GRANULE + g] == prot;
	for (i = 0; i < FZ_NSPACE; i++) {
		struct fz_space *s = &t->w.sp[i];

		if (!s->live)
			continue;
		for (v = 0; v < s->nviews; v++) {
			bound += fz_count_units_gpa(&t->w, s, s->v[v].tlb, gpa, len);
			for (k = 0; k < FZ_NSNAP; k++) {
				struct fz_snap *sn = &s->v[v].snap[k];

				if (sn->live && !sn->gone)
					bound += fz_count_units_gpa(&t->w, s, sn->t, gpa, len);
			}
		}
	}
	if (unprot)
		DESC(t, "btmmu_unprotect gpa %#llx len %#llx", gpa, len);
	else
		DESC(t, "btmmu_protect gpa %#llx len %#llx prot %llu", gpa, len, prot);
	ret = unprot ? btmmu_unprotect(t->run->ctx, gpa, len) :
		       btmmu_protect(t->run->ctx, gpa, len, prot);
	t->dret = ret;
	if (ret < 0) {
		fail(t, FUZZ_ERRNO, "protect of a valid range: %d (%s)", ret, strerror(-ret));
		return;
	}
	for (g = 0; g < len / FZ_GRANULE; g++)
		r->ceil[(gpa - r->gpa) / FZ_GRANULE + g] = (uint8_t)prot;
	if ((unchanged && ret) || (uint64_t)ret > bound)
		fail(t, FUZZ_COUNT,
		     "protect changed %d entries; ceiling unchanged %d, complete units mapping "
		     "the range %llu",
		     ret, unchanged, (unsigned long long)bound);
}

static void op_reclaim(struct fz_thread *t)
{
	unsigned i, v;
	int ret;

	DESC(t, "btmmu_reclaim");
	ret = btmmu_reclaim(t->run->ctx);
	t->dret = ret;
	if (ret < 0)
		fail(t, FUZZ_ERRNO, "btmmu_reclaim: %d", ret);
	/* Every region retired before the call is torn down: old bases fault. */
	for (i = 0; i < FZ_NSPACE; i++) {
		for (v = 0; v < FZ_NVIEWS * FZ_NSNAP; v++)
			t->w.sp[i].v[v / FZ_NSNAP].snap[v % FZ_NSNAP].gone = 1;
	}
}

/* Keep vm.max_map_count nearly used up as the library's own use varies. */
static void op_squeeze(struct fz_thread *t, struct fz_op *o)
{
	struct fz_run *run = t->run;
	long left = (long)pick(o, 128);
	int ret;

	DESC(t, "leave %llu VMAs of vm.max_map_count free", (unsigned long long)left);
	pthread_mutex_lock(&run->hog_lock);
	ret = fz_hog_adjust(&run->hog, left);
	pthread_mutex_unlock(&run->hog_lock);
	t->dret = ret;
}

static void op_stats(struct fz_thread *t)
{
	struct btmmu_stats st = { .size = sizeof(st) };
	const uint64_t *c = &st.faults;
	const struct fuzz_config *cfg = t->run->cfg;
	unsigned i;

	DESC(t, "btmmu_stats_get");
	if (btmmu_stats_get(t->run->ctx, &st) || st.size != sizeof(st)) {
		fail(t, FUZZ_INFO, "btmmu_stats_get");
		return;
	}
	/* Counters only grow (the last three fields are current values). */
	for (i = 0; i < 14; i++) { /* the counters before the current values */
		if (c[i] < t->last_stats[i])
			fail(t, FUZZ_INFO, "stats counter %u went down: %llu -> %llu", i,
			     (unsigned long long)t->last_stats[i], (unsigned long long)c[i]);
		t->last_stats[i] = c[i];
	}
	if (st.clear_fallbacks < t->last_stats[14])
		fail(t, FUZZ_INFO, "clear_fallbacks went down");
	t->last_stats[14] = st.clear_fallbacks;
	if (st.clear_fallbacks && !host_lossy(t->run))
		fail(t, FUZZ_INFO,
		     "%llu windows emptied whole (host refused a split) without "
		     "vm.max_map_count pressure",
		     (unsigned long long)st.clear_fallbacks);
	if (st.live_entries > t->run->pool)
		fail(t, FUZZ_INFO, "live_entries %llu above the pool %llu",
		     (unsigned long long)st.live_entries, (unsigned long long)t->run->pool);
	if (cfg->max_mappings && st.max_mappings != cfg->max_mappings)
		fail(t, FUZZ_INFO, "max_mappings %llu, asked %llu",
		     (unsigned long long)st.max_mappings, (unsigned long long)cfg->max_mappings);
	{
		/* btmmu_backend_info(3): what the model assumes of the user backend. */
		struct btmmu_backend_info bi = { .size = sizeof(bi) };
		uint32_t from = (cfg->max_mappings ? BTMMU_CAPACITY_ASKED_MAPPINGS :
						     BTMMU_CAPACITY_MAP_COUNT) |
				(cfg->max_entries ? BTMMU_CAPACITY_ASKED_ENTRIES : 0);

		if (btmmu_backend_info(t->run->ctx, &bi) || bi.size != sizeof(bi) ||
		    strcmp(bi.name, "user") || (bi.flags & BTMMU_INFO_EXEC_ONLY) ||
		    !(bi.flags & BTMMU_INFO_MAPPINGS) || bi.max_entries != t->run->pool ||
		    bi.max_mappings != st.max_mappings || bi.capacity_from != from ||
		    bi.max_window_bits != BTMMU_MAX_WINDOW_BITS ||
		    bi.host_page_shift != t->run->hps)
			fail(t, FUZZ_INFO,
			     "btmmu_backend_info: %s flags %#x from %#x (expected %#x) entries %llu "
			     "(pool %llu) mappings %llu window %u hps %u",
			     bi.name, bi.flags, bi.capacity_from, from,
			     (unsigned long long)bi.max_entries, (unsigned long long)t->run->pool,
			     (unsigned long long)bi.max_mappings, bi.max_window_bits,
			     bi.host_page_shift);
	}
	/* Every callback has an outcome, except those left by siglongjmp(). */
	if (st.faults != st.faults_retry + st.faults_slow + st.faults_not_mine + t->exceptions -
				 t->exceptions0 &&
	    t->run->nthreads == 1)
		fail(t, FUZZ_INFO,
		     "faults %llu != retry %llu + slow %llu + not mine %llu + left by siglongjmp "
		     "%llu",
		     (unsigned long long)st.faults, (unsigned long long)st.faults_retry,
		     (unsigned long long)st.faults_slow, (unsigned long long)st.faults_not_mine,
		     (unsigned long long)(t->exceptions - t->exceptions0));
}

/* ------------------------------------------------------------------ */
/* Bad input: one defect at a time, exact errno, nothing changes       */
/* ------------------------------------------------------------------ */

static int some_ram_gap(struct fz_thread *t, uint64_t len, uint64_t *gpa)
{
	unsigned i;

	for (i = 0; i < FZ_NRAM; i++) {
		uint64_t g = FZ_ZONE(t->id) + i * FZ_SLOT;

		if (!fz_ram_find(&t->w, g, len)) {
			*gpa = g;
			return 1;
		}
	}
	*gpa = UINT64_C(1) << 62;
	return 1;
}

static void bad_map(struct fz_thread *t, struct fz_op *o, struct fz_space *s, unsigned d)
{
	struct btmmu_map_req q, q2[3];
	unsigned view = pick(o, s->nviews), k;
	struct fz_ram *r;
	int want = -EINVAL, ret;
	uint64_t gen;

	make_req(t, o, s, &q, 16);
	q.flags &= ~BTMMU_MAP_PAGE_SHIFT_MASK; /* the defects below change the range */
	r = fz_ram_find(&t->w, q.gpa, q.len);
	if (!r || !fz_va_valid(s, q.gva, q.len))
		return; /* start from a valid request */
	switch (d) {
	case 0:
		ret = btmmu_map(NULL, view, &q);
		goto check;
	case 1:
		view = s->nviews + pick(o, 4) * (pick(o, 2) ? 1 : BTMMU_MAX_VIEWS);
		break;
	case 2:
		want = -EFAULT;
		ret = btmmu_map(s->h, view, NULL);
		goto check;
	case 3: /* an unknown bit: 2..7 or 14..31 (8..13 are the large page's shift) */
		k = pick(o, 24);
		q.flags |= 1u << (k < 6 ? 2 + k : 8 + k);
		break;
	case 4:
		q.prot = 0;
		break;
	case 5:
		q.prot |= 8u << pick(o, 29);
		break;
	case 6:
		q.len = 0;
		break;
	case 7:
		q.gva += 512 << pick(o, s->page_shift - 9);
		if (!(q.gva & (s->page - 1)))
			q.gva += 512;
		break;
	case 8:
		q.gpa += 512;
		break;
	case 9:
		if (!fz_va_valid(s, q.gva, q.len + 512))
			return;
		q.len += 512;
		break;
	case 10: /* runs past the top of the guest VA */
		want = -ERANGE;
		q.len = 2 * s->page;
		if (!fz_ram_find(&t->w, q.gpa, q.len))
			q.gpa = r->gpa; /* keep the physical side valid */
		if (!fz_ram_find(&t->w, q.gpa, q.len))
			return;
		if (s->va_bits == 64)
			q.gva = (s->flags & BTMMU_SPACE_SIGN_EXTEND) ?
					(UINT64_C(1) << 63) - s->page :
					(uint64_t)0 - s->page;
		else if (s->flags & BTMMU_SPACE_SIGN_EXTEND)
			q.gva = (UINT64_C(1) << (s->va_bits - 1)) - s->page;
		else
			q.gva = (UINT64_C(1) << s->va_bits) - s->page;
		break;
	case 11: /* not canonical at all */
		if (s->va_bits == 64)
			return;
		want = -ERANGE;
		q.gva = (s->flags & BTMMU_SPACE_SIGN_EXTEND) ? UINT64_C(1) << (s->va_bits - 1) :
							       UINT64_C(1) << s->va_bits;
		q.len = s->page;
		break;
	case 12: /* no RAM there */
		want = -ENXIO;
		some_ram_gap(t, q.len, &q.gpa);
		if (fz_ram_find(&t->w, q.gpa, q.len))
			return;
		break;
	case 13: /* straddles the RAM's end */
		want = -ENXIO;
		q.gpa = r->gpa + r->len - s->page;
		q.len = 2 * s->page;
		if (!fz_va_valid(s, q.gva, q.len))
			return;
		break;
	case 14: /* guest-physical range wraps around */
		want = -ENXIO;
		q.gpa = (uint64_t)0 - s->page;
		q.len = 2 * s->page;
		if (!fz_va_valid(s, q.gva, q.len))
			return;
		break;
	case 15: /* huge: checked as a request (VA) before its RAM */
		q.len = (UINT64_C(1) << 62) & ~(s->page - 1);
		q.gpa = r->gpa;
		want = fz_va_valid(s, q.gva, q.len) ? -ENXIO : -ERANGE;
		break;
	case 16: /* batch: reqs NULL */
		want = -EFAULT;
		ret = btmmu_map_batch(s->h, view, NULL, 1 + pick(o, 4), 0);
		goto check;
	case 17: /* batch: nreq 0 is a no-op, even with reqs NULL or a stale gen */
		want = 0;
		ret = btmmu_map_batch(s->h, view, pick(o, 2) ? NULL : &q, 0, pick(o, 2) ? 1 : 0);
		goto check;
	case 18: /* batch: a stale or future generation */
		want = -ESTALE;
		/*
		 * Far in the future: where the host refuses splits, a region
		 * replaced by the fallback moved the generation past the model's.
		 */
		gen = s->v[view].gen + (UINT64_C(1) << 20) + pick(o, 3);
		if (s->v[view].gen > 1 && !host_lossy(t->run) && pick(o, 2))
			gen = s->v[view].gen - 1;
		ret = btmmu_map_batch(s->h, view, &q, 1, gen);
		goto check;
	case 19: /* batch: a bad request after good ones: its error, nothing installed */
	case 20: /* batch: a request without RAM and a stale gen: the generation first */
	case 21: /* batch: a request without RAM, then a misaligned one: checks first */
		for (k = 0; k < 3; k++)
			q2[k] = q;
		gen = 0;
		if (d == 19) {
			q2[2].prot = 0;
		} else if (d == 20) {
			want = -ESTALE;
			some_ram_gap(t, q.len, &q2[1].gpa);
			if (fz_ram_find(&t->w, q2[1].gpa, q2[1].len))
				return;
			gen = s->v[view].gen + (UINT64_C(1) << 20); /* see case 18 */
		} else {
			some_ram_gap(t, q.len, &q2[0].gpa);
			if (fz_ram_find(&t->w, q2[0].gpa, q2[0].len))
				return;
			q2[2].gva += 512;
		}
		ret = btmmu_map_batch(s->h, view, q2, 3, gen);
		goto check;
	case 22: /* a large page smaller than the page, not smaller than the VA, or not holding the request */
		k = pick(o, 3);
		if (k == 0 && s->page_shift > BTMMU_MIN_PAGE_SHIFT) {
			q.flags |= BTMMU_MAP_PAGE_SHIFT(s->page_shift - 1 -
							pick(o, s->page_shift - BTMMU_MIN_PAGE_SHIFT));
		} else if (k == 1 && s->va_bits < 64) {
			q.flags |= BTMMU_MAP_PAGE_SHIFT(s->va_bits + pick(o, 64 - s->va_bits));
		} else {
			unsigned ls = s->page_shift + 1 + pick(o, 3);

			q.gva = (q.gva | ((UINT64_C(1) << ls) - 1)) + 1 - s->page;
			q.len = 2 * s->page;
			q.flags |= BTMMU_MAP_PAGE_SHIFT(ls);
			if (!fz_va_valid(s, q.gva, q.len) || !fz_ram_find(&t->w, q.gpa, q.len))
				return;
		}
		break;
	default: /* view past BTMMU_MAX_VIEWS */
		view = BTMMU_MAX_VIEWS + pick(o, 200);
		ret = btmmu_map_batch(s->h, view, &q, 1, 0);
		goto check;
	}
	ret = btmmu_map(s->h, view, &q);
check:
	DESC(t,
	     "bad btmmu_map defect %llu space %llu view %llu gva %#llx gpa %#llx len %#llx "
	     "prot %#llx flags %#llx",
	     d, (unsigned long long)(s - t->w.sp), view, q.gva, q.gpa, q.len, q.prot, q.flags);
	expect_ret(t, "btmmu_map (bad input)", want, ret);
	if (view < s->nviews)
		check_gen_same(t, s, 1u << view, "a failed map");
}

static void bad_unmap_flush(struct fz_thread *t, struct fz_op *o, struct fz_space *s, unsigned d)
{
	uint32_t views = views_mask(o, s), flags = 0;
	uint64_t gva = s->zone[pick(o, FZ_NZONE)], len = s->page;
	int want = -EINVAL, ret;

	if (!fz_va_valid(s, gva, len))
		gva = s->window_gva;
	switch (d) {
	case 0:
		ret = btmmu_unmap(NULL, views, gva, len);
		break;
	case 1:
		ret = btmmu_unmap(s->h, 0, gva, len);
		break;
	case 2:
		ret = btmmu_unmap(s->h, views | 1u << (s->nviews + pick(o, 32 - s->nviews)), gva,
				  len);
		break;
	case 3:
		ret = btmmu_unmap(s->h, views, gva, 0);
		break;
	case 4:
		ret = btmmu_unmap(s->h, views, gva + 512, len);
		break;
	case 5:
		if (!fz_va_valid(s, gva, len + 512))
			return;
		ret = btmmu_unmap(s->h, views, gva, len + 512);
		break;
	case 6:
		want = -ERANGE;
		if (s->va_bits == 64) {
			gva = (s->flags & BTMMU_SPACE_SIGN_EXTEND) ? (UINT64_C(1) << 63) - s->page :
								     (uint64_t)0 - s->page;
		} else {
			gva = (s->flags & BTMMU_SPACE_SIGN_EXTEND) ?
				      (UINT64_C(1) << (s->va_bits - 1)) - s->page :
				      (UINT64_C(1) << s->va_bits) - s->page;
		}
		ret = btmmu_unmap(s->h, views, gva, 2 * s->page);
		break;
	case 7:
		ret = btmmu_flush(NULL, views, 0);
		break;
	case 8:
		ret = btmmu_flush(s->h, 0, pick(o, 2));
		break;
	case 9:
		ret = btmmu_flush(s->h, views | 1u << (s->nviews + pick(o, 32 - s->nviews)),
				  pick(o, 2));
		break;
	case 10:
		flags = 2u << pick(o, 31);
		ret = btmmu_flush(s->h, views, flags | pick(o, 2));
		break;
	default:
		ret = btmmu_flush_all(NULL);
		break;
	}
	DESC(t,
	     "bad unmap/flush defect %llu space %llu views %#llx gva %#llx len %#llx flags %#llx",
	     d, (unsigned long long)(s - t->w.sp), views, gva, len, flags);
	expect_ret(t, "btmmu_unmap/btmmu_flush (bad input)", want, ret);
	check_gen_same(t, s, (1u << s->nviews) - 1, "a failed unmap/flush");
}

static void bad_protect(struct fz_thread *t, struct fz_op *o, unsigned d)
{
	struct fz_ram *r = live_ram(t, o);
	struct btmmu *ctx = t->run->ctx;
	uint64_t gpa, len = FZ_GRANULE;
	uint32_t prot = get8(o) & 7;
	int want = -EINVAL, ret, unprot = get8(o) & 1;

	if (!r)
		return;
	/* Not the last granule: a misaligned start or length stays inside the range. */
	gpa = r->gpa + (get64(o) % (r->len / FZ_GRANULE - 1)) * FZ_GRANULE;
	switch (d) {
	case 0:
		ctx = NULL;
		break;
	case 1:
		if (unprot)
			return;
		prot |= 8u << pick(o, 29);
		break;
	case 2:
		len = 0;
		break;
	case 3:
		gpa += 1 + pick(o, 1023);
		break;
	case 4:
		len += 1 + pick(o, 1023);
		break;
	case 5:
		gpa = (uint64_t)0 - FZ_GRANULE;
		len = 2 * FZ_GRANULE;
		break;
	case 6:
		want = -ENXIO;
		gpa = r->gpa + r->len - FZ_GRANULE;
		len = 2 * FZ_GRANULE;
		break;
	default:
		want = -ENXIO;
		some_ram_gap(t, len, &gpa);
		if (fz_ram_find(&t->w, gpa, len))
			return;
		break;
	}
	DESC(t, "bad protect defect %llu unprotect %llu gpa %#llx len %#llx prot %#llx", d, unprot,
	     gpa, len, prot);
	ret = unprot ? btmmu_unprotect(ctx, gpa, len) : btmmu_protect(ctx, gpa, len, prot);
	expect_ret(t, "btmmu_protect/unprotect (bad input)", want, ret);
}

static void bad_info(struct fz_thread *t, struct fz_op *o, struct fz_space *s, unsigned d)
{
	struct btmmu_view_info vi = { .size = sizeof(vi) };
	struct btmmu_stats st = { .size = sizeof(st) };
	unsigned view = pick(o, s->nviews);
	uintptr_t base = 0;
	int want = -EINVAL, ret;

	switch (d) {
	case 0:
		ret = btmmu_view_base(NULL, view, &base);
		break;
	case 1:
		ret = btmmu_view_base(s->h, s->nviews + pick(o, 40), &base);
		break;
	case 2:
		want = -EFAULT;
		ret = btmmu_view_base(s->h, view, NULL);
		break;
	case 3:
		ret = btmmu_view_info(NULL, view, &vi);
		break;
	case 4:
		ret = btmmu_view_info(s->h, s->nviews + pick(o, 40), &vi);
		break;
	case 5:
		want = -EFAULT;
		ret = btmmu_view_info(s->h, view, NULL);
		break;
	case 6:
		vi.size = pick(o, sizeof(size_t));
		ret = btmmu_view_info(s->h, view, &vi);
		break;
	case 7:
		ret = btmmu_stats_get(NULL, &st);
		break;
	case 8:
		want = -EFAULT;
		ret = btmmu_stats_get(t->run->ctx, NULL);
		break;
	case 9:
		st.size = pick(o, sizeof(size_t));
		ret = btmmu_stats_get(t->run->ctx, &st);
		break;
	case 10: { /* sizes above a page: -E2BIG, nothing written */
		uint8_t *p = huge_args(&vi, sizeof(size_t), get16(o));
		size_t k, n = *(size_t *)p;

		want = -E2BIG;
		memset(p + sizeof(size_t), 0x66, n - sizeof(size_t));
		ret = pick(o, 2) ? btmmu_view_info(s->h, view, (struct btmmu_view_info *)p) :
				   btmmu_stats_get(t->run->ctx, (struct btmmu_stats *)p);
		for (k = sizeof(size_t); k < n && p[k] == 0x66; k++)
			;
		if (k < n || *(size_t *)p != n)
			fail(t, FUZZ_INFO, "view_info/stats_get with size %zu wrote byte %zu", n,
			     k);
		break;
	}
	case 11:
		ret = btmmu_backend_info(NULL, &(struct btmmu_backend_info){ .size = 8 });
		break;
	case 12:
		want = -EFAULT;
		ret = btmmu_backend_info(t->run->ctx, NULL);
		break;
	case 13: {
		struct btmmu_backend_info bi = { .size = pick(o, sizeof(size_t)) };

		ret = btmmu_backend_info(t->run->ctx, &bi);
		break;
	}
	default:
		want = -E2BIG;
		ret = btmmu_backend_info(t->run->ctx, huge_args(&st, sizeof(size_t), get16(o)));
		break;
	}
	DESC(t, "bad view_base/view_info/stats defect %llu view %llu", d, view);
	expect_ret(t, "view_base/view_info/stats_get (bad input)", want, ret);
}

/* btmmu_open(3) refusing bad arguments: nothing allocated, *ctxp untouched. */
static void bad_open(struct fz_thread *t, struct fz_op *o, unsigned d)
{
	struct btmmu_open_args a = { .size = sizeof(a), .flags = BTMMU_OPEN_NO_THREAD };
	struct {
		struct btmmu_open_args a;
		uint64_t pad[2];
	} big;
	struct btmmu *ctx = (struct btmmu *)&a, **out = &ctx;
	const struct btmmu_open_args *ap = &a;
	int want = -EINVAL, ret;

	switch (d) {
	case 0:
		want = -EFAULT;
		out = NULL;
		break;
	case 1:
		want = pick(o, 2) ? -EFAULT : -E2BIG;
		ap = want == -EFAULT ? NULL : huge_args(&a, sizeof(a), get16(o));
		break;
	case 2:
		a.size = pick(o, sizeof(size_t));
		break;
	case 3:
		a.flags = 4u << pick(o, 30);
		break;
	case 4: /* smaller than the real host page */
		a.host_page_shift = (uint32_t)__builtin_ctzl((unsigned long)sysconf(_SC_PAGESIZE)) -
				    1 - pick(o, 2);
		break;
	case 5:
		a.host_page_shift = 17 + pick(o, 20);
		break;
	case 6:
		a.max_entries = (UINT64_C(1) << 24) + 1 + pick(o, 100);
		break;
	case 7:
		want = -ENOENT;
		a.backend = pick(o, 2) ? "kmod-nope" : "x";
		break;
	default:
		memset(&big, 0, sizeof(big));
		big.a = a;
		big.a.size = sizeof(big);
		((uint8_t *)&big)[sizeof(a) + pick(o, sizeof(big.pad))] = 3;
		want = -E2BIG;
		ap = &big.a;
		break;
	}
	DESC(t, "bad btmmu_open defect %llu", d);
	ret = btmmu_open(ap, out);
	if (!expect_ret(t, "btmmu_open (bad input)", want, ret) && ret == 0 && out && ctx)
		btmmu_close(ctx);
	else if (ctx != (struct btmmu *)&a)
		fail(t, FUZZ_ERRNO, "failed btmmu_open changed *ctxp");
}

static void bad_misc(struct fz_thread *t, struct fz_op *o, unsigned d)
{
	struct btmmu_fault f = { .size = sizeof(f) };
	siginfo_t si;
	ucontext_t uc;
	const char *name;

	DESC(t, "misc api check %llu", d);
	switch (d) {
	case 0:
		expect_ret(t, "btmmu_ram_destroy(NULL)", -EINVAL, btmmu_ram_destroy(NULL));
		break;
	case 1:
		expect_ret(t, "btmmu_space_destroy(NULL)", -EINVAL, btmmu_space_destroy(NULL));
		break;
	case 2:
		expect_ret(t, "btmmu_close(NULL)", -EINVAL, btmmu_close(NULL));
		break;
	case 3:
		expect_ret(t, "btmmu_reclaim(NULL)", -EINVAL, btmmu_reclaim(NULL));
		break;
	case 4:
		expect_ret(t, "btmmu_fault_resolved(NULL)", -EINVAL, btmmu_fault_resolved(NULL));
		expect_ret(t, "btmmu_fault_resolved(no ctx)", -EINVAL, btmmu_fault_resolved(&f));
		break;
	case 5:
		expect_ret(t, "btmmu_fault_leave(NULL)", -EINVAL, btmmu_fault_leave(NULL));
		expect_ret(t, "btmmu_fault_leave outside a callback", -EALREADY,
			   btmmu_fault_leave(&f));
		break;
	case 6:
		memset(&si, 0, sizeof(si));
		memset(&uc, 0, sizeof(uc));
		si.si_code = SEGV_MAPERR;
		expect_ret(t, "btmmu_fault_dispatch(SIGBUS)", 0,
			   btmmu_fault_dispatch(SIGBUS, &si, &uc));
		expect_ret(t, "btmmu_fault_dispatch(NULL info)", 0,
			   btmmu_fault_dispatch(SIGSEGV, NULL, &uc));
		si.si_code = SI_USER;
		expect_ret(t, "btmmu_fault_dispatch(sent signal)", 0,
			   btmmu_fault_dispatch(SIGSEGV, &si, &uc));
		break;
	case 7:
		name = btmmu_backend_name(t->run->ctx);
		if (!name || strcmp(name, "user") || btmmu_backend_name(NULL))
			fail(t, FUZZ_INFO, "btmmu_backend_name: %s", name ? name : "NULL");
		break;
	default:
		if (btmmu_version() != BTMMU_VERSION_NUMBER || !btmmu_version_string() ||
		    strcmp(btmmu_version_string(), BTMMU_VERSION_STRING))
			fail(t, FUZZ_INFO, "btmmu_version");
		break;
	}
	(void)o;
}

static void op_bad(struct fz_thread *t, struct fz_op *o)
{
	unsigned d = pick(o, 64);
	struct fz_space *s;
	struct fz_ram *r;

	if (d < 8) {
		bad_protect(t, o, d);
		return;
	}
	if (d < 17) {
		bad_open(t, o, d - 8);
		return;
	}
	if (d < 26) {
		bad_misc(t, o, d - 17);
		return;
	}
	if (d < 30) {
		r = live_ram(t, o);
		if (r)
			ram_create_bad(t, o, r, FZ_ZONE(t->id) + FZ_NRAM * FZ_SLOT);
		return;
	}
	s = live_space(t, o);
	if (!s)
		return;
	if (d < 34) {
		space_create_bad(
			t, o,
			&(struct btmmu_space_args){ .size = sizeof(struct btmmu_space_args),
						    .va_bits = s->va_bits,
						    .page_shift = s->page_shift,
						    .nviews = s->nviews,
						    .flags = s->flags });
		return;
	}
	if (d < 44) {
		bad_info(t, o, s, pick(o, 15));
		return;
	}
	if (d < 52) {
		bad_unmap_flush(t, o, s, pick(o, 12));
		return;
	}
	bad_map(t, o, s, pick(o, 24));
}

/* ------------------------------------------------------------------ */
/* Whole-run operations (barriers)                                     */
/* ------------------------------------------------------------------ */

/*
 * Compare [off, off + len) of a RAM range with its model, page by page,
 * skipping pages neither side has touched (both read as zero): mincore()
 * on the memfd's mapping and on the model's anonymous pages. Returns the
 * first differing offset, or len.
 */
static uint64_t ram_compare(struct fz_ram *r, uint64_t off, uint64_t len)
{
	static const uint64_t pg = 4096;
	unsigned char vh[256], vm[256];
	uint64_t p, i;

	for (p = off; p < off + len; p += 256 * pg) {
		uint64_t n = (off + len - p + pg - 1) / pg;

		if (n > 256)
			n = 256;
		if (mincore(r->host + p, n * pg, vh) || mincore(r->bytes + p, n * pg, vm)) {
			memset(vh, 1, sizeof(vh)); /* compare them all */
			memset(vm, 1, sizeof(vm));
		}
		for (i = 0; i < n; i++) {
			uint64_t a = p + i * pg, b;

			if (!(vh[i] & 1) && !(vm[i] & 1))
				continue;
			if (!memcmp(r->host + a, r->bytes + a, pg))
				continue;
			for (b = a; r->host[b] == r->bytes[b]; b++)
				;
			return b - off;
		}
	}
	return len;
}

/*
 * Guest RAM against the model: all of it (full), or 16 random 4 KiB pages
 * of each range (a store to a wrong frame is caught at once by the access
 * check; this catches what lands elsewhere).
 */
static void check_all(struct fz_thread *t0, int full)
{
	struct fz_run *run = t0->run;
	unsigned i, k, v, j;

	for (i = 0; i < run->nthreads; i++) {
		struct fz_thread *t = run->t[i];

		for (k = 0; k < FZ_NRAM; k++) {
			struct fz_ram *r = &t->w.ram[k];
			uint64_t lo = 0, n = r->len;

			for (j = 0; r->live && j < (full ? 1 : 16); j++) {
				if (!full) {
					lo = (xorshift(&t0->rng) % (r->len / 4096)) * 4096;
					n = 4096;
				}
				if (ram_compare(r, lo, n) == n)
					continue;
				break;
			}
			if (r->live && j < (full ? 1 : 16)) {
				uint64_t off = lo + ram_compare(r, lo, n);

				fail(t0, FUZZ_DATA,
				     "thread %u RAM gpa %#llx differs from the model at %#llx: %#x, "
				     "model %#x",
				     i, (unsigned long long)r->gpa,
				     (unsigned long long)(r->gpa + off), r->host[off],
				     r->bytes[off]);
				return;
			}
		}
		for (k = 0; k < FZ_NSPACE; k++) {
			struct fz_space *s = &t->w.sp[k];

			if (!s->live)
				continue;
			for (v = 0; v < s->nviews; v++) {
				uintptr_t base = 0;

				btmmu_view_base(s->h, v, &base);
				if (base != s->v[v].base)
					fail(t0, FUZZ_BASE, "thread %u space %u view %u base moved",
					     i, k, v);
			}
		}
	}
}

static void op_flush_all(struct fz_thread *t0)
{
	struct fz_run *run = t0->run;
	unsigned i, k, v, before[FUZZ_MAX_THREADS][FZ_NSPACE][FZ_NVIEWS];
	int exact[FUZZ_MAX_THREADS][FZ_NSPACE][FZ_NVIEWS], ret;
	uint64_t ev0 = evictions(run), ev;

	DESC(t0, "btmmu_flush_all");
	for (i = 0; i < run->nthreads; i++) {
		for (k = 0; k < FZ_NSPACE; k++) {
			struct fz_space *s = &run->t[i]->w.sp[k];

			for (v = 0; s->live && v < s->nviews; v++) {
				before[i][k][v] = fz_count_present(s, s->v[v].tlb);
				exact[i][k][v] = view_exact(run->t[i], &s->v[v], ev0);
			}
		}
	}
	ret = btmmu_flush_all(run->ctx);
	ev = evictions(run);
	if (!expect_ret(t0, "btmmu_flush_all", 0, ret))
		return;
	for (i = 0; i < run->nthreads; i++) {
		for (k = 0; k < FZ_NSPACE; k++) {
			struct fz_space *s = &run->t[i]->w.sp[k];

			if (!s->live)
				continue;
			for (v = 0; v < s->nviews; v++) {
				fz_large_drop(s, v, false);
				after_full_flush(t0, s, v, before[i][k][v],
						 exact[i][k][v] && ev == ev0, ev);
			}
			check_gen_grew(t0, s, (1u << s->nviews) - 1, "btmmu_flush_all");
		}
	}
}

/*
 * BTMMU_OPEN_NO_HANDLER: the translator's own SIGSEGV handler passes faults
 * to btmmu_fault_dispatch(3), and the others on, as the kernel would.
 */
static struct sigaction fz_old_segv;

static void fz_segv(int sig, siginfo_t *si, void *uc)
{
	if (btmmu_fault_dispatch(sig, si, uc))
		return;
	if ((fz_old_segv.sa_flags & SA_SIGINFO) && fz_old_segv.sa_sigaction) {
		fz_old_segv.sa_sigaction(sig, si, uc);
		return;
	}
	if (!(fz_old_segv.sa_flags & SA_SIGINFO) && fz_old_segv.sa_handler != SIG_DFL &&
	    fz_old_segv.sa_handler != SIG_IGN) {
		fz_old_segv.sa_handler(sig);
		return;
	}
	signal(sig, SIG_DFL); /* the access faults again: a real crash */
}

static int ctx_open(struct fz_run *run, unsigned choice)
{
	static const uint32_t hps_choices[] = { 0, 0, 13, 14, 16 };
	const struct fuzz_config *cfg = run->cfg;
	struct btmmu_open_args oa = {
		.size = sizeof(oa),
		.flags = cfg->open_flags,
		.host_page_shift = cfg->host_page_shift,
		.fault_fn = fz_callback,
		.fault_opaque = run,
		.max_mappings = cfg->max_mappings,
		.max_entries = cfg->max_entries,
	};
	int ret;

	if (cfg->host_page_shift == FUZZ_HPS_ANY)
		oa.host_page_shift = hps_choices[choice % 5];
	if (cfg->stream_flags && (choice & 8))
		oa.flags |= BTMMU_OPEN_NO_THREAD;
	ret = btmmu_open(&oa, &run->ctx);
	if (ret)
		return ret;
	run->open_flags = oa.flags;
	run->hps = oa.host_page_shift ?
			   oa.host_page_shift :
			   (uint32_t)__builtin_ctzl((unsigned long)sysconf(_SC_PAGESIZE));
	/* btmmu_open(3): 0 means min(4 x budget, 2^18); at least 16. */
	run->pool = cfg->max_entries;
	if (!run->pool) {
		uint64_t b = stats(run).max_mappings;

		run->pool = b >= (UINT64_C(1) << 16) ? UINT64_C(1) << 18 : 4 * b;
	}
	if (run->pool < 16)
		run->pool = 16;
	atomic_store(&run->lossy, host_lossy(run));
	return 0;
}

/* Destroy everything every thread owns (the translator shutting down its guest). */
static void destroy_all(struct fz_thread *t0)
{
	struct fz_run *run = t0->run;
	unsigned i, k;

	for (i = 0; i < run->nthreads; i++) {
		struct fz_thread *t = run->t[i];

		for (k = 0; k < FZ_NSPACE; k++) {
			if (t->w.sp[k].live) {
				expect_ret(t0, "btmmu_space_destroy", 0,
					   btmmu_space_destroy(t->w.sp[k].h));
				t->w.sp[k].live = 0;
			}
		}
		for (k = 0; k < FZ_NRAM; k++) {
			if (t->w.ram[k].live) {
				expect_ret(t0, "btmmu_ram_destroy", 0,
					   btmmu_ram_destroy(t->w.ram[k].h));
				t->w.ram[k].live = 0;
			}
		}
	}
}

static int anything_live(struct fz_run *run)
{
	unsigned i, k;

	for (i = 0; i < run->nthreads; i++) {
		for (k = 0; k < FZ_NSPACE; k++)
			if (run->t[i]->w.sp[k].live)
				return 1;
		for (k = 0; k < FZ_NRAM; k++)
			if (run->t[i]->w.ram[k].live)
				return 1;
	}
	return 0;
}

static void op_reopen(struct fz_thread *t0, struct fz_op *o)
{
	struct fz_run *run = t0->run;
	unsigned i, choice = get8(o);
	int ret;

	DESC(t0, "close and reopen (choice %llu)", choice);
	if (anything_live(run))
		expect_ret(t0, "btmmu_close with objects live", -EBUSY, btmmu_close(run->ctx));
	check_all(t0, 1);
	destroy_all(t0);
	if (run->cfg->vma_free) /* room for the next context's pool and thread */
		fz_hog_adjust(&run->hog, run->cfg->vma_free);
	ret = btmmu_close(run->ctx);
	if (!expect_ret(t0, "btmmu_close", 0, ret))
		return;
	run->ctx = NULL;
	ret = ctx_open(run, choice);
	if (ret) {
		fail(t0, FUZZ_ERRNO, "btmmu_open: %d (%s)", ret, strerror(-ret));
		return;
	}
	for (i = 0; i < run->nthreads; i++) {
		memset(run->t[i]->last_stats, 0, sizeof(run->t[i]->last_stats));
		run->t[i]->exceptions0 = run->t[i]->exceptions;
	}
}

static void op_busy(struct fz_thread *t0)
{
	DESC(t0, "btmmu_close while objects are live");
	if (!anything_live(t0->run))
		return;
	/* -EBUSY leaves the context unchanged and usable. */
	expect_ret(t0, "btmmu_close (busy)", -EBUSY, btmmu_close(t0->run->ctx));
}

/* ------------------------------------------------------------------ */
/* Dispatch                                                            */
/* ------------------------------------------------------------------ */

enum fz_opcode {
	OP_ACCESS,
	OP_MAP,
	OP_MAP_BATCH,
	OP_UNMAP,
	OP_PROTECT,
	OP_FLUSH,
	OP_VIEW,
	OP_STALE,
	OP_GUARD,
	OP_RECLAIM,
	OP_RAM,
	OP_SPACE,
	OP_BAD,
	OP_DMA,
	OP_STATS,
	OP_SQUEEZE,
	OP_BARRIER, /* the ones below run with every thread paused */
	OP_FLUSH_ALL = OP_BARRIER,
	OP_REOPEN,
	OP_CHECK,
	OP_BUSY,
	OP_N,
};

static const uint8_t op_weights[OP_N] = {
	[OP_ACCESS] = 110,  [OP_MAP] = 32,    [OP_MAP_BATCH] = 14, [OP_UNMAP] = 10,
	[OP_PROTECT] = 12,  [OP_FLUSH] = 8,   [OP_VIEW] = 4,	   [OP_STALE] = 6,
	[OP_GUARD] = 4,	    [OP_RECLAIM] = 2, [OP_RAM] = 5,	   [OP_SPACE] = 5,
	[OP_BAD] = 24,	    [OP_DMA] = 5,     [OP_STATS] = 2,	   [OP_SQUEEZE] = 4,
	[OP_FLUSH_ALL] = 2, [OP_REOPEN] = 1,  [OP_CHECK] = 2,	   [OP_BUSY] = 2,
};

static uint8_t optable[256];

static void optable_init(void)
{
	unsigned op, k, n = 0;

	for (op = 0; op < OP_N; op++) {
		for (k = 0; k < op_weights[op] && n < 256; k++)
			optable[n++] = (uint8_t)op;
	}
	while (n < 256)
		optable[n++] = OP_ACCESS;
}

static unsigned rec_op(const uint8_t *rec)
{
	return optable[rec[0]];
}

static void op_begin(struct fz_thread *t, struct fz_op *o, const uint8_t *rec, size_t idx)
{
	unsigned i;

	o->rec = rec;
	o->pos = 2;
	o->rng = UINT64_C(0x6a09e667f3bcc909);
	for (i = 0; i < FUZZ_RECORD; i++)
		o->rng = (o->rng ^ rec[i]) * UINT64_C(0x100000001b3);
	t->opidx = idx;
	t->dfmt = NULL;
	t->dret = 0;
	fuzz_current_op = idx;
}

static void op_end(struct fz_thread *t)
{
	char buf[256];

	t->ops++;
	if (!t->run->cfg->trace)
		return;
	desc_format(t, buf, sizeof(buf));
	fprintf(stderr, "  #%zu t%u %s -> %lld\n", t->opidx, t->id, buf, t->dret);
}

static void exec_op(struct fz_thread *t, const uint8_t *rec, size_t idx)
{
	struct fz_op o;

	op_begin(t, &o, rec, idx);
	if (t->run->cfg->selftest && idx == 0) {
		/* A real bug in the translator: must crash, not be swallowed. */
		*(volatile int *)selftest_addr = 1;
	}
	switch (rec_op(rec)) {
	case OP_ACCESS:
		op_access(t, &o);
		break;
	case OP_MAP:
		op_map(t, &o);
		break;
	case OP_MAP_BATCH:
		op_map_batch(t, &o);
		break;
	case OP_UNMAP:
		op_unmap(t, &o);
		break;
	case OP_PROTECT:
		op_protect(t, &o);
		break;
	case OP_FLUSH:
		op_flush(t, &o);
		break;
	case OP_VIEW:
		op_view(t, &o);
		break;
	case OP_STALE:
		op_stale(t, &o);
		break;
	case OP_GUARD:
		op_guard(t, &o);
		break;
	case OP_RECLAIM:
		op_reclaim(t);
		break;
	case OP_RAM:
		op_ram(t, &o);
		break;
	case OP_SPACE:
		op_space(t, &o);
		break;
	case OP_BAD:
		op_bad(t, &o);
		break;
	case OP_DMA:
		op_dma(t, &o);
		break;
	case OP_STATS:
		op_stats(t);
		break;
	case OP_SQUEEZE:
		if (t->run->cfg->vma_free)
			op_squeeze(t, &o);
		else
			op_access(t, &o);
		break;
	}
	op_end(t);
}

static void exec_barrier(struct fz_thread *t0, const uint8_t *rec, size_t idx)
{
	struct fz_op o;

	op_begin(t0, &o, rec, idx);
	switch (rec_op(rec)) {
	case OP_FLUSH_ALL:
		op_flush_all(t0);
		break;
	case OP_REOPEN:
		if (rec[2] & 3) { /* a reopen costs a pool: do it for a quarter of them */
			DESC(t0, "check every RAM range and base");
			check_all(t0, 0);
		} else {
			op_reopen(t0, &o);
		}
		break;
	case OP_CHECK:
		DESC(t0, "check every RAM range and base");
		check_all(t0, (rec[2] & 7) == 0);
		break;
	default:
		op_busy(t0);
		break;
	}
	op_end(t0);
}

static unsigned rec_thread(const struct fz_run *run, const uint8_t *rec)
{
	return rec[1] % run->nthreads;
}

/* Run this thread's records of the current phase. */
static void run_phase(struct fz_thread *t)
{
	struct fz_run *run = t->run;
	size_t i;

	for (i = run->lo; i < run->hi && !atomic_load(&run->stop); i++) {
		const uint8_t *rec = run->data + i * FUZZ_RECORD;

		if (rec_thread(run, rec) == t->id)
			exec_op(t, rec, i);
	}
}

static void *worker(void *arg)
{
	struct fz_thread *t = arg;

	fz_self = t;
	for (;;) {
		pthread_barrier_wait(&t->run->bar);
		if (t->run->done)
			break;
		run_phase(t);
		pthread_barrier_wait(&t->run->bar);
	}
	return NULL;
}

/* ------------------------------------------------------------------ */
/* Set up and tear down                                                */
/* ------------------------------------------------------------------ */

static void thread_free(struct fz_thread *t)
{
	unsigned k, n;

	if (!t)
		return;
	for (k = 0; k < FZ_NRAM; k++) {
		if (t->w.ram[k].fd >= 0)
			close(t->w.ram[k].fd);
		free(t->w.ram[k].ceil);
	}
	for (k = 0; k < FZ_NSPACE; k++) {
		unsigned v;

		for (v = 0; v < FZ_NVIEWS; v++) {
			free(t->w.sp[k].v[v].tlb);
			for (n = 0; n < FZ_NSNAP; n++)
				free(t->w.sp[k].v[v].snap[n].t);
		}
	}
	free(t->scratch);
	if (t->models)
		munmap(t->models, FZ_NRAM * (FZ_FILE + FZ_SLOT));
	if (t->pipefd[0] >= 0)
		close(t->pipefd[0]);
	if (t->pipefd[1] >= 0)
		close(t->pipefd[1]);
	if (t->rofd >= 0)
		close(t->rofd);
	if (t->sealfd >= 0)
		close(t->sealfd);
	free(t);
}

/* Everything a thread needs is allocated now: no allocation once VMAs run out. */
static struct fz_thread *thread_alloc(struct fz_run *run, unsigned id)
{
	struct fz_thread *t = calloc(1, sizeof(*t));
	char path[64];
	unsigned k, v, n;

	if (!t)
		return NULL;
	t->run = run;
	t->id = id;
	t->w.id = id;
	t->pipefd[0] = t->pipefd[1] = t->rofd = t->sealfd = -1;
	/*
	 * The RAM models: anonymous zero pages, touched only where guest RAM
	 * is, so that comparing untouched parts costs nothing (check_all()).
	 */
	t->models = mmap(NULL, FZ_NRAM * (FZ_FILE + FZ_SLOT), PROT_READ | PROT_WRITE,
			 MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
	if (t->models == MAP_FAILED) {
		t->models = NULL;
		goto err;
	}
	for (k = 0; k < FZ_NRAM; k++) {
		struct fz_ram *r = &t->w.ram[k];

		r->fd = memfd_create("fuzz-ram", MFD_CLOEXEC);
		r->file = t->models + k * (FZ_FILE + FZ_SLOT);
		r->anon = r->file + FZ_FILE;
		r->ceil = malloc(FZ_NGRAN);
		if (r->fd < 0 || !r->ceil || ftruncate(r->fd, (off_t)FZ_FILE))
			goto err;
	}
	for (k = 0; k < FZ_NSPACE; k++) {
		for (v = 0; v < FZ_NVIEWS; v++) {
			t->w.sp[k].v[v].tlb = calloc(FZ_MAX_HOT, sizeof(struct fz_pte));
			if (!t->w.sp[k].v[v].tlb)
				goto err;
			for (n = 0; n < FZ_NSNAP; n++) {
				t->w.sp[k].v[v].snap[n].t =
					calloc(FZ_MAX_HOT, sizeof(struct fz_pte));
				if (!t->w.sp[k].v[v].snap[n].t)
					goto err;
			}
		}
	}
	t->scratch = calloc(FZ_MAX_HOT, sizeof(*t->scratch));
	if (!t->scratch || pipe2(t->pipefd, O_CLOEXEC))
		goto err;
	snprintf(path, sizeof(path), "/proc/self/fd/%d", t->w.ram[0].fd);
	t->rofd = open(path, O_RDONLY | O_CLOEXEC);
	t->sealfd = memfd_create("fuzz-sealed", MFD_CLOEXEC | MFD_ALLOW_SEALING);
	if (t->rofd < 0 || t->sealfd < 0 || ftruncate(t->sealfd, (off_t)FZ_FILE) ||
	    fcntl(t->sealfd, F_ADD_SEALS, F_SEAL_WRITE))
		goto err;
	t->rng = UINT64_C(0x243f6a8885a308d3) ^ id;
	return t;
err:
	thread_free(t);
	return NULL;
}

static void add_counts(struct fz_run *run)
{
	struct fuzz_result *res = run->res;
	unsigned i, k;

	for (i = 0; i < run->nthreads; i++) {
		struct fz_thread *t = run->t[i];

		res->ops += t->ops;
		res->accesses += t->accesses;
		res->faults += t->faults;
		res->slow += t->slow;
		res->direct += t->direct;
		res->errors_checked += t->errs;
		res->enomem += t->enomem;
		res->stale_ok += t->stale_ok;
		res->exceptions += t->exceptions;
		res->livelocks += t->livelocks;
		res->overcount += t->overcount;
		res->musts += t->musts;
		for (k = 0; k < 4; k++)
			res->flags[k] += t->fl[k];
	}
}

int fuzz_one_ex(const uint8_t *data, size_t len, const struct fuzz_config *cfg,
		struct fuzz_result *res)
{
	struct fz_run run;
	unsigned i, nstarted = 0;
	size_t pos = 0;
	int ret = 0, err;

	memset(res, 0, sizeof(*res));
	if (cfg->vma_free && FZ_ASAN)
		return 77;
	if (!optable[255])
		optable_init();
	if (len < FUZZ_RECORD)
		return 0;
	memset(&run, 0, sizeof(run));
	run.cfg = cfg;
	run.res = res;
	run.data = data + FUZZ_RECORD; /* the first record is the header */
	run.nrec = len / FUZZ_RECORD - 1;
	run.nthreads = cfg->nthreads < 1		? 1 :
		       cfg->nthreads > FUZZ_MAX_THREADS ? FUZZ_MAX_THREADS :
							  cfg->nthreads;
	pthread_mutex_init(&run.lock, NULL);
	pthread_mutex_init(&run.hog_lock, NULL);
	for (i = 0; i < run.nthreads; i++) {
		run.t[i] = thread_alloc(&run, i);
		if (!run.t[i]) {
			ret = 77;
			goto out_threads;
		}
	}
	pthread_barrier_init(&run.bar, NULL, run.nthreads);
	for (i = 1; i < run.nthreads; i++) {
		if (pthread_create(&run.tid[i], NULL, worker, run.t[i])) {
			ret = 77;
			goto out_join;
		}
		nstarted++;
	}
	if (cfg->vma_free) {
		err = fz_hog_fill(&run.hog, cfg->vma_free);
		if (err) {
			fprintf(stderr, "fuzz: cannot use up vm.max_map_count: %s\n",
				strerror(-err));
			ret = 77;
			goto out_join;
		}
	}
	if (cfg->open_flags & BTMMU_OPEN_NO_HANDLER) {
		struct sigaction sa;

		memset(&sa, 0, sizeof(sa));
		sa.sa_sigaction = fz_segv;
		sa.sa_flags = SA_SIGINFO | SA_NODEFER;
		sigaction(SIGSEGV, &sa, &fz_old_segv);
	}
	fz_self = run.t[0];
	err = ctx_open(&run, data[0]);
	if (err) {
		fprintf(stderr, "fuzz: btmmu_open: %s\n", strerror(-err));
		ret = 1;
		res->divergences = 1;
		res->first_kind = FUZZ_ERRNO;
		snprintf(res->first_msg, sizeof(res->first_msg), "btmmu_open failed: %s",
			 strerror(-err));
		goto out_join;
	}
	while (pos < run.nrec && !atomic_load(&run.stop)) {
		size_t end = pos;

		while (end < run.nrec && rec_op(run.data + end * FUZZ_RECORD) < OP_BARRIER)
			end++;
		run.lo = pos;
		run.hi = end;
		if (run.nthreads > 1) {
			pthread_barrier_wait(&run.bar);
			run_phase(run.t[0]);
			pthread_barrier_wait(&run.bar);
		} else {
			run_phase(run.t[0]);
		}
		if (end < run.nrec && !atomic_load(&run.stop))
			exec_barrier(run.t[0], run.data + end * FUZZ_RECORD, end);
		pos = end + 1;
	}
	if (!atomic_load(&run.stop) && run.ctx) {
		fz_self->opidx = run.nrec;
		DESC(run.t[0], "final check and teardown");
		check_all(run.t[0], 1);
	}
	if (run.ctx) {
		res->evictions = stats(&run).evictions;
		destroy_all(run.t[0]);
		expect_ret(run.t[0], "btmmu_close", 0, btmmu_close(run.ctx));
	}
out_join:
	run.done = 1;
	if (nstarted)
		pthread_barrier_wait(&run.bar);
	for (i = 1; i <= nstarted; i++)
		pthread_join(run.tid[i], NULL);
	pthread_barrier_destroy(&run.bar);
	fz_hog_release(&run.hog);
	if (cfg->open_flags & BTMMU_OPEN_NO_HANDLER)
		sigaction(SIGSEGV, &fz_old_segv, NULL);
	add_counts(&run);
out_threads:
	for (i = 0; i < run.nthreads; i++)
		thread_free(run.t[i]);
	fz_self = NULL;
	pthread_mutex_destroy(&run.lock);
	pthread_mutex_destroy(&run.hog_lock);
	if (!ret && res->divergences)
		ret = 1;
	return ret;
}

int fuzz_one(const uint8_t *data, size_t len, const struct fuzz_config *cfg)
{
	struct fuzz_result res;

	return fuzz_one_ex(data, len, cfg, &res);
}
