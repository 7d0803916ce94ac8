/* SPDX-License-Identifier: MIT */
/*
 * btmmu-bench: micro-benchmarks of libbtmmu next to their raw floors.
 *
 * Every benchmark runs its candidates (libbtmmu call paths) and its floors
 * (the bare host operations a candidate cannot avoid) in the same process,
 * interleaved: each round runs every variant once, in an order rotated from
 * round to round (A B C, B C A, ...), after one warm-up round that is
 * discarded. A row reports the median of each side and the median of the
 * per-round ratios candidate / floor, time over time (lower is better): the
 * two sides of a ratio ran milliseconds apart, so the drift of a shared VM
 * between rounds cancels out. Absolute figures are for orientation only.
 *
 *   fault  first-touch latency: a one-byte load from an empty page of a
 *          view's region, served by the fault callback (btmmu_map() and
 *          BTMMU_FAULT_RETRY), against the same load served by a bare
 *          SIGSEGV handler doing mmap(MAP_FIXED | MAP_SHARED) of the memfd
 *          page, and against the bare SIGSEGV round trip (the handler skips
 *          the load). Fault-around: btmmu_map_batch() of the 16 pages of
 *          the aligned group per fault, against one 16-page mmap per fault.
 *   map    btmmu_map() and btmmu_map_batch() (16, 64 requests) throughput,
 *          guest-physical frames scattered (nothing coalesces) or
 *          contiguous (runs coalesce into one host call, neighbours merge
 *          into one VMA), against single-page mmap(MAP_FIXED | MAP_SHARED)
 *          of the same frames into a PROT_NONE reservation.
 *   flush  btmmu_flush() with 1k, 10k, 30k live (touched) entries: full (a
 *          switch to a clean region of the ring, teardown in the library's
 *          thread) and BTMMU_FLUSH_NONGLOBAL (in place), and the teardown
 *          itself (btmmu_reclaim() on a context without the thread),
 *          against mmap(PROT_NONE, MAP_FIXED) over a reservation holding
 *          as many live mappings (what a flush without the ring costs).
 *
 * Only the caller's path is timed (CLOCK_MONOTONIC); set-up and clean-up
 * (filling entries, flush + btmmu_reclaim() between rounds, waiting for the
 * background reclaimer) are outside the timed part.
 *
 * Usage: btmmu-bench [-o FILE] [-r ROUNDS] [-b fault,map,flush] [-q]
 * The figures go to stdout as a table and to FILE as JSON
 * (default bench/results.json). Exit status 0 whether targets are met or
 * not: a benchmark measures, it does not assert.
 */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/utsname.h>
#include <time.h>
#include <ucontext.h>
#include <unistd.h>

#include <btmmu/btmmu.h>

#define MAX_ROUNDS 64
#define MAX_RESULTS 48
#define MAX_EXTRAS 32
#define AROUND 16		/* pages per fault with fault-around */
#define BATCH_MAX 64
#define RESERVE_FLAGS (MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE)
#define FLUSH_TARGET_US 5.0
#define FAULT_TARGET_RATIO 1.3
#define RECLAIM_TIMEOUT_NS (UINT64_C(10) * 1000000000)

/* ------------------------------------------------------------------ */
/* The faulting access                                                 */
/* ------------------------------------------------------------------ */

/*
 * One load of one byte, in assembly so that the floors' handler knows the
 * faulting instruction and where to resume past it (the bare SIGSEGV round
 * trip). The library's dispatcher simply re-executes it after RETRY.
 */
uint8_t bench_load(const void *p);
extern const char bench_load_insn[], bench_load_done[];

#if defined(__x86_64__)
__asm__(".text\n"
	".p2align 4\n"
	".globl bench_load\n"
	".type bench_load, @function\n"
	"bench_load:\n"
	".globl bench_load_insn\n"
	"bench_load_insn:\n"
	"	movzbl (%rdi), %eax\n"
	".globl bench_load_done\n"
	"bench_load_done:\n"
	"	ret\n"
	".size bench_load, . - bench_load\n");

static uintptr_t uc_pc(const ucontext_t *uc)
{
	return (uintptr_t)uc->uc_mcontext.gregs[REG_RIP];
}

static void uc_set_pc(ucontext_t *uc, uintptr_t pc)
{
	uc->uc_mcontext.gregs[REG_RIP] = (greg_t)pc;
}
#elif defined(__aarch64__)
__asm__(".text\n"
	".p2align 4\n"
	".globl bench_load\n"
	".type bench_load, %function\n"
	"bench_load:\n"
	".globl bench_load_insn\n"
	"bench_load_insn:\n"
	"	ldrb w0, [x0]\n"
	".globl bench_load_done\n"
	"bench_load_done:\n"
	"	ret\n"
	".size bench_load, . - bench_load\n");

static uintptr_t uc_pc(const ucontext_t *uc)
{
	return (uintptr_t)uc->uc_mcontext.pc;
}

static void uc_set_pc(ucontext_t *uc, uintptr_t pc)
{
	uc->uc_mcontext.pc = pc;
}
#else
#error "btmmu-bench: unsupported host architecture"
#endif

/* ------------------------------------------------------------------ */
/* Helpers                                                             */
/* ------------------------------------------------------------------ */

static size_t pg;		/* host page size */
static unsigned pg_shift;
static unsigned nrounds = 11;
static bool quick;

static uint64_t now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static void sleep_us(unsigned us)
{
	struct timespec ts = { 0, (long)us * 1000 };

	nanosleep(&ts, NULL);
}

static __attribute__((noreturn)) void die(const char *what, int err)
{
	fprintf(stderr, "btmmu-bench: %s: %s\n", what, strerror(err < 0 ? -err : err));
	exit(1);
}

/* Library calls return -errno. */
#define CHECK(call)                                      \
	do {                                             \
		int ret_ = (call);                       \
		if (ret_ < 0)                            \
			die(#call, ret_);                \
	} while (0)

static void *reserve(size_t len, size_t align)
{
	uintptr_t p, a;
	void *m = mmap(NULL, len + align, PROT_NONE, RESERVE_FLAGS, -1, 0);

	if (m == MAP_FAILED)
		die("mmap(reserve)", errno);
	p = (uintptr_t)m;
	a = (p + align - 1) & ~(uintptr_t)(align - 1);
	if (a > p)
		munmap((void *)p, a - p);
	if (p + len + align > a + len)
		munmap((void *)(a + len), p + len + align - (a + len));
	return (void *)a;
}

/* Back to PROT_NONE, no mapping (what the library's user backend does). */
static void clear_range(uintptr_t start, size_t len)
{
	if (mmap((void *)start, len, PROT_NONE, RESERVE_FLAGS | MAP_FIXED, -1, 0) == MAP_FAILED)
		die("mmap(PROT_NONE)", errno);
}

static void map_page(uintptr_t addr, size_t len, int fd, uint64_t off)
{
	if (mmap((void *)addr, len, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_FIXED, fd,
		 (off_t)off) == MAP_FAILED)
		die("mmap(MAP_FIXED)", errno);
}

/* A memfd of npages pages; populated (page cache filled) if asked. */
static int ram_fd(size_t npages, bool populate)
{
	size_t len = npages * pg;
	int fd = memfd_create("btmmu-bench", MFD_CLOEXEC);
	void *m;

	if (fd < 0)
		die("memfd_create", errno);
	if (ftruncate(fd, (off_t)len))
		die("ftruncate", errno);
	if (populate) {
		m = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
		if (m == MAP_FAILED)
			die("mmap(memfd)", errno);
		memset(m, 0x5a, len);
		munmap(m, len);
	}
	return fd;
}

static struct btmmu *ctx_open(uint32_t flags, btmmu_fault_fn fn, uint64_t max_mappings)
{
	struct btmmu_open_args oa = {
		.size = sizeof(oa),
		.backend = "user",
		.flags = flags,
		.fault_fn = fn,
		.max_mappings = max_mappings,
	};
	struct btmmu *ctx;

	CHECK(btmmu_open(&oa, &ctx));
	return ctx;
}

/* A 32-bit guest with host-sized pages and one view: a 4 GiB window. */
static struct btmmu_space *space_new(struct btmmu *ctx)
{
	struct btmmu_space_args sa = {
		.size = sizeof(sa),
		.va_bits = 32,
		.page_shift = pg_shift,
		.nviews = 1,
	};
	struct btmmu_space *sp;

	CHECK(btmmu_space_create(ctx, &sa, &sp));
	return sp;
}

static struct btmmu_ram *ram_new(struct btmmu *ctx, int fd, size_t npages)
{
	struct btmmu_ram_args ra = {
		.size = sizeof(ra),
		.gpa = 0,
		.len = npages * pg,
		.fd = fd,
	};
	struct btmmu_ram *ram;

	CHECK(btmmu_ram_create(ctx, &ra, &ram));
	return ram;
}

static uintptr_t view_base(struct btmmu_space *sp)
{
	uintptr_t base;

	CHECK(btmmu_view_base(sp, 0, &base));
	return base;
}

static struct btmmu_stats stats_of(struct btmmu *ctx)
{
	struct btmmu_stats st = { .size = sizeof(st) };

	CHECK(btmmu_stats_get(ctx, &st));
	return st;
}

/* Drop every entry of the view and tear the retired region down (untimed). */
static void lib_reset(struct btmmu *ctx, struct btmmu_space *sp)
{
	CHECK(btmmu_flush(sp, 1, 0));
	CHECK(btmmu_reclaim(ctx));
}

/* Rotate the order of nvar variants from round to round. */
static unsigned variant_at(int round, unsigned slot, unsigned nvar)
{
	unsigned r = round < 0 ? 0 : (unsigned)round;

	return (slot + r) % nvar;
}

/* ------------------------------------------------------------------ */
/* Samples and results                                                 */
/* ------------------------------------------------------------------ */

struct series {
	unsigned n;
	double v[MAX_ROUNDS];
};

static void series_add(struct series *s, double v)
{
	if (s->n < MAX_ROUNDS)
		s->v[s->n++] = v;
}

static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return x < y ? -1 : x > y;
}

static double median(const struct series *s)
{
	double v[MAX_ROUNDS];

	if (!s->n)
		return 0;
	memcpy(v, s->v, s->n * sizeof(v[0]));
	qsort(v, s->n, sizeof(v[0]), cmp_double);
	return s->n & 1 ? v[s->n / 2] : (v[s->n / 2 - 1] + v[s->n / 2]) / 2;
}

enum target_kind {
	TARGET_NONE,
	TARGET_RATIO,	/* candidate / floor at most target */
	TARGET_ABS,	/* candidate median at most target (its unit) */
};

/* How a row shows its per-unit times. */
enum display {
	SHOW_US,	/* microseconds per unit */
	SHOW_PER_US,	/* units per microsecond */
	SHOW_K_PER_S,	/* thousands of units per second */
};

/* One row: a candidate and its floor, one sample of each per round. */
struct result {
	char bench[8];
	char name[48];
	char cand[40];
	char floor[40];
	const char *unit;	/* of the samples: time per what */
	enum display show;
	enum target_kind tk;
	double target;
	struct series c, f, ratio;
};

/* A figure without a floor (decomposition, background work). */
struct extra {
	char bench[8];
	char name[64];
	const char *unit;
	struct series s;
};

static struct result results[MAX_RESULTS];
static unsigned nresults;
static struct extra extras[MAX_EXTRAS];
static unsigned nextras;

static struct result *result_new(const char *bench, const char *name, const char *cand,
				 const char *floor, const char *unit, enum display show,
				 enum target_kind tk, double target)
{
	struct result *r = &results[nresults++];

	if (nresults > MAX_RESULTS)
		die("too many results", ENOSPC);
	snprintf(r->bench, sizeof(r->bench), "%s", bench);
	snprintf(r->name, sizeof(r->name), "%s", name);
	snprintf(r->cand, sizeof(r->cand), "%s", cand);
	snprintf(r->floor, sizeof(r->floor), "%s", floor);
	r->unit = unit;
	r->show = show;
	r->tk = tk;
	r->target = target;
	return r;
}

static struct extra *extra_new(const char *bench, const char *name, const char *unit)
{
	struct extra *x = &extras[nextras++];

	if (nextras > MAX_EXTRAS)
		die("too many extras", ENOSPC);
	snprintf(x->bench, sizeof(x->bench), "%s", bench);
	snprintf(x->name, sizeof(x->name), "%s", name);
	x->unit = unit;
	return x;
}

/* Record one round's pair (warm-up rounds are passed round < 0). */
static void result_add(struct result *r, int round, double cand, double floor)
{
	if (round < 0)
		return;
	series_add(&r->c, cand);
	series_add(&r->f, floor);
	series_add(&r->ratio, cand / floor);
}

static void extra_add(struct extra *x, int round, double v)
{
	if (round >= 0)
		series_add(&x->s, v);
}

static double result_ratio(const struct result *r)
{
	return median(&r->ratio);
}

/* How far past its target a row is, in percent; <= 0 means met. */
static double result_miss(const struct result *r)
{
	switch (r->tk) {
	case TARGET_RATIO:
		return (result_ratio(r) / r->target - 1) * 100;
	case TARGET_ABS:
		return (median(&r->c) / r->target - 1) * 100;
	default:
		return 0;
	}
}

/* Rounds whose candidate alone missed an absolute target. */
static unsigned rounds_over(const struct result *r)
{
	unsigned i, n = 0;

	for (i = 0; i < r->c.n; i++)
		n += r->c.v[i] > r->target;
	return n;
}

static void format_value(char *buf, size_t len, const struct result *r, double us)
{
	switch (r->show) {
	case SHOW_US:
		snprintf(buf, len, "%.2f us", us);
		break;
	case SHOW_PER_US:
		snprintf(buf, len, "%.3f /us", 1 / us);
		break;
	case SHOW_K_PER_S:
		snprintf(buf, len, "%.0f k/s", 1e3 / us);
		break;
	}
}

static void format_verdict(char *tbuf, size_t tlen, char *vbuf, size_t vlen,
			   const struct result *r)
{
	double miss = result_miss(r);

	switch (r->tk) {
	case TARGET_RATIO:
		snprintf(tbuf, tlen, "<= %.2fx", r->target);
		break;
	case TARGET_ABS:
		snprintf(tbuf, tlen, "< %.0f us", r->target);
		break;
	default:
		snprintf(tbuf, tlen, "-");
		snprintf(vbuf, vlen, "(info)");
		return;
	}
	if (miss <= 0)
		snprintf(vbuf, vlen, "met");
	else
		snprintf(vbuf, vlen, "missed by %.0f%%", miss);
	if (r->tk == TARGET_ABS) {
		size_t l = strlen(vbuf);

		snprintf(vbuf + l, vlen - l, " (%u/%u over)", rounds_over(r), r->c.n);
	}
}

/* ------------------------------------------------------------------ */
/* 1. Fault-to-resume latency                                          */
/* ------------------------------------------------------------------ */

enum floor_mode {
	FLOOR_SKIP,	/* resume past the load: the bare signal round trip */
	FLOOR_MMAP,	/* map the page (or the group) and re-execute */
};

static struct {
	unsigned npages;
	int fd;				/* guest RAM, populated */
	uintptr_t floor_start;		/* the floors' PROT_NONE reservation */
	size_t floor_len;
	enum floor_mode mode;
	unsigned group;			/* pages per fault: 1 or AROUND */
	struct sigaction lib_sa, floor_sa;
	struct btmmu *ctx;
	struct btmmu_space *sp;
	struct btmmu_ram *ram;
} fb;

/* The floors' SIGSEGV handler: as little as the job allows. */
static void floor_sigsegv(int sig, siginfo_t *si, void *ucv)
{
	uintptr_t a = (uintptr_t)si->si_addr, page;
	int saved = errno;

	(void)sig;
	if (a - fb.floor_start >= fb.floor_len) {
		signal(SIGSEGV, SIG_DFL); /* not ours: let it crash */
		return;
	}
	if (fb.mode == FLOOR_SKIP) {
		if (uc_pc(ucv) != (uintptr_t)bench_load_insn) {
			signal(SIGSEGV, SIG_DFL);
			return;
		}
		uc_set_pc(ucv, (uintptr_t)bench_load_done);
	} else {
		page = a & ~((uintptr_t)fb.group * pg - 1);
		if (mmap((void *)page, fb.group * pg, PROT_READ | PROT_WRITE,
			 MAP_SHARED | MAP_FIXED, fb.fd, (off_t)(page - fb.floor_start)) == MAP_FAILED)
			signal(SIGSEGV, SIG_DFL);
	}
	errno = saved;
}

/*
 * The translator's callback: install the faulting page (or its aligned
 * group of AROUND pages, one request each, as a guest page-table leaf would
 * give them) at gpa == gva, and retry. Runs in signal context.
 */
static int lib_fault(struct btmmu_fault *f, void *opaque)
{
	struct btmmu_map_req reqs[AROUND];
	uint64_t first = f->gva & ~((uint64_t)fb.group * pg - 1);
	unsigned i;
	int ret;

	(void)opaque;
	for (i = 0; i < fb.group; i++) {
		reqs[i].gva = first + i * pg;
		reqs[i].gpa = first + i * pg;
		reqs[i].len = pg;
		reqs[i].prot = BTMMU_PROT_READ | BTMMU_PROT_WRITE;
		reqs[i].flags = 0;
	}
	if (fb.group == 1)
		ret = btmmu_map(f->space, f->view, reqs);
	else
		ret = btmmu_map_batch(f->space, f->view, reqs, fb.group, f->gen);
	return ret > 0 ? BTMMU_FAULT_RETRY : BTMMU_FAULT_NOT_MINE;
}

/* Load one byte of each page: every load faults once. Returns ns. */
static uint64_t touch_pages(uintptr_t start, unsigned npages)
{
	uint64_t t0 = now_ns();
	unsigned i;

	for (i = 0; i < npages; i++)
		bench_load((const void *)(start + (uintptr_t)i * pg));
	return now_ns() - t0;
}

static double fault_floor(enum floor_mode mode, unsigned group)
{
	uint64_t ns;

	fb.mode = mode;
	fb.group = group;
	sigaction(SIGSEGV, &fb.floor_sa, NULL);
	ns = touch_pages(fb.floor_start, fb.npages);
	sigaction(SIGSEGV, &fb.lib_sa, NULL);
	clear_range(fb.floor_start, fb.floor_len);
	return (double)ns / 1e3 / fb.npages;
}

static double fault_lib(unsigned group)
{
	struct btmmu_stats before = stats_of(fb.ctx), after;
	uint64_t ns;

	fb.group = group;
	ns = touch_pages(view_base(fb.sp), fb.npages);
	after = stats_of(fb.ctx);
	if (after.faults_retry - before.faults_retry != fb.npages / group ||
	    after.faults != after.faults_retry)
		fprintf(stderr, "btmmu-bench: fault: %" PRIu64 " faults, %" PRIu64
			" retried, expected %u\n", after.faults - before.faults,
			after.faults_retry - before.faults_retry, fb.npages / group);
	lib_reset(fb.ctx, fb.sp);
	return (double)ns / 1e3 / fb.npages;
}

static void bench_fault(void)
{
	enum { V_SKIP, V_MMAP1, V_LIB1, V_MMAP16, V_LIB16, NVAR };
	struct result *r1, *r1s, *r16, *r16v1;
	struct extra *xs, *xm, *xl, *xm16, *xl16;
	double v[NVAR] = { 0 };
	unsigned s;
	int round;

	fb.npages = quick ? 1024 : 4096;
	fb.fd = ram_fd(fb.npages, true);
	fb.floor_len = fb.npages * pg;
	fb.floor_start = (uintptr_t)reserve(fb.floor_len, 2u << 20);
	fb.ctx = ctx_open(BTMMU_OPEN_NO_THREAD, lib_fault, 0);
	fb.sp = space_new(fb.ctx);
	fb.ram = ram_new(fb.ctx, fb.fd, fb.npages);
	sigaction(SIGSEGV, NULL, &fb.lib_sa); /* the library's dispatcher */
	memset(&fb.floor_sa, 0, sizeof(fb.floor_sa));
	fb.floor_sa.sa_sigaction = floor_sigsegv;
	fb.floor_sa.sa_flags = fb.lib_sa.sa_flags; /* same delivery: SA_SIGINFO | SA_NODEFER */
	sigemptyset(&fb.floor_sa.sa_mask);

	r1 = result_new("fault", "first touch, 1 page/fault", "btmmu_map+RETRY",
			"SIGSEGV+mmap", "us/fault", SHOW_US, TARGET_RATIO, FAULT_TARGET_RATIO);
	r1s = result_new("fault", "first touch vs bare signal", "btmmu_map+RETRY",
			 "bare SIGSEGV", "us/fault", SHOW_US, TARGET_NONE, 0);
	r16 = result_new("fault", "fault-around 16 (fills)", "btmmu_map_batch(16)",
			 "SIGSEGV+mmap(16p)", "us/fill", SHOW_PER_US, TARGET_NONE, 0);
	r16v1 = result_new("fault", "fault-around 16 vs 1/fault", "btmmu_map_batch(16)",
			   "SIGSEGV+mmap", "us/fill", SHOW_PER_US, TARGET_NONE, 0);
	xs = extra_new("fault", "bare SIGSEGV round trip", "us/fault");
	xm = extra_new("fault", "SIGSEGV + mmap(1 page)", "us/fault");
	xl = extra_new("fault", "library, 1 page/fault", "us/fault");
	xm16 = extra_new("fault", "SIGSEGV + mmap(16 pages), per fill", "us/fill");
	xl16 = extra_new("fault", "library, fault-around 16, per fill", "us/fill");

	for (round = -1; round < (int)nrounds; round++) {
		for (s = 0; s < NVAR; s++) {
			unsigned k = variant_at(round, s, NVAR);

			switch (k) {
			case V_SKIP:
				v[k] = fault_floor(FLOOR_SKIP, 1);
				break;
			case V_MMAP1:
				v[k] = fault_floor(FLOOR_MMAP, 1);
				break;
			case V_LIB1:
				v[k] = fault_lib(1);
				break;
			case V_MMAP16:
				v[k] = fault_floor(FLOOR_MMAP, AROUND);
				break;
			case V_LIB16:
				v[k] = fault_lib(AROUND);
				break;
			}
		}
		result_add(r1, round, v[V_LIB1], v[V_MMAP1]);
		result_add(r1s, round, v[V_LIB1], v[V_SKIP]);
		result_add(r16, round, v[V_LIB16], v[V_MMAP16]);
		result_add(r16v1, round, v[V_LIB16], v[V_MMAP1]);
		extra_add(xs, round, v[V_SKIP]);
		extra_add(xm, round, v[V_MMAP1]);
		extra_add(xl, round, v[V_LIB1]);
		extra_add(xm16, round, v[V_MMAP16]);
		extra_add(xl16, round, v[V_LIB16]);
	}

	CHECK(btmmu_space_destroy(fb.sp));
	CHECK(btmmu_ram_destroy(fb.ram));
	CHECK(btmmu_close(fb.ctx));
	munmap((void *)fb.floor_start, fb.floor_len);
	close(fb.fd);
}

/* ------------------------------------------------------------------ */
/* 2. Map throughput                                                   */
/* ------------------------------------------------------------------ */

static struct {
	unsigned n;			/* entries per round */
	int fd;				/* 2n pages: room for scattered frames */
	uintptr_t floor_start;
	size_t floor_len;
	struct btmmu *ctx;
	struct btmmu_space *sp;
	struct btmmu_ram *ram;
	struct btmmu_map_req *scat, *cont;
} mb;

/* Entry i: gva page i; gpa page 2i (scattered) or i (contiguous). */
static struct btmmu_map_req *map_reqs(unsigned n, unsigned stride)
{
	struct btmmu_map_req *q = calloc(n, sizeof(*q));
	unsigned i;

	if (!q)
		die("calloc", ENOMEM);
	for (i = 0; i < n; i++) {
		q[i].gva = (uint64_t)i * pg;
		q[i].gpa = (uint64_t)i * stride * pg;
		q[i].len = pg;
		q[i].prot = BTMMU_PROT_READ | BTMMU_PROT_WRITE;
	}
	return q;
}

static double map_floor(unsigned stride)
{
	uint64_t t0, ns;
	unsigned i;

	t0 = now_ns();
	for (i = 0; i < mb.n; i++)
		map_page(mb.floor_start + (uintptr_t)i * pg, pg, mb.fd, (uint64_t)i * stride * pg);
	ns = now_ns() - t0;
	clear_range(mb.floor_start, mb.floor_len);
	return (double)ns / 1e3 / mb.n;
}

static double map_lib(const struct btmmu_map_req *q, unsigned batch)
{
	uint64_t t0, ns;
	unsigned i;
	int ret;

	t0 = now_ns();
	for (i = 0; i < mb.n; i += batch) {
		if (batch == 1)
			ret = btmmu_map(mb.sp, 0, &q[i]);
		else
			ret = btmmu_map_batch(mb.sp, 0, &q[i], batch, 0);
		if (ret != (int)batch)
			die("btmmu_map", ret < 0 ? ret : EIO);
	}
	ns = now_ns() - t0;
	lib_reset(mb.ctx, mb.sp);
	return (double)ns / 1e3 / mb.n;
}

static void bench_map(void)
{
	enum {
		V_FSCAT, V_FCONT, V_1SCAT, V_1CONT, V_16SCAT, V_16CONT, V_64SCAT, V_64CONT, NVAR
	};
	struct result *rows[NVAR];
	struct btmmu_stats st;
	double v[NVAR] = { 0 };
	unsigned s;
	int round;

	mb.n = quick ? 1024 : 4096;
	mb.fd = ram_fd(2 * (size_t)mb.n, false);
	mb.floor_len = (size_t)1 << 32; /* as large as the library's window */
	mb.floor_start = (uintptr_t)reserve(mb.floor_len, 2u << 20);
	mb.ctx = ctx_open(BTMMU_OPEN_NO_THREAD, NULL, 0);
	mb.sp = space_new(mb.ctx);
	mb.ram = ram_new(mb.ctx, mb.fd, 2 * (size_t)mb.n);
	mb.scat = map_reqs(mb.n, 2);
	mb.cont = map_reqs(mb.n, 1);

	rows[V_1SCAT] = result_new("map", "map 1 page, scattered gpa", "btmmu_map",
				   "mmap 1 page", "us/entry", SHOW_K_PER_S, TARGET_NONE, 0);
	rows[V_1CONT] = result_new("map", "map 1 page, contiguous", "btmmu_map",
				   "mmap 1 page", "us/entry", SHOW_K_PER_S, TARGET_NONE, 0);
	rows[V_16SCAT] = result_new("map", "batch 16, scattered gpa", "btmmu_map_batch(16)",
				    "mmap 1 page", "us/entry", SHOW_K_PER_S, TARGET_NONE, 0);
	rows[V_16CONT] = result_new("map", "batch 16, contiguous", "btmmu_map_batch(16)",
				    "mmap 1 page", "us/entry", SHOW_K_PER_S, TARGET_NONE, 0);
	rows[V_64SCAT] = result_new("map", "batch 64, scattered gpa", "btmmu_map_batch(64)",
				    "mmap 1 page", "us/entry", SHOW_K_PER_S, TARGET_NONE, 0);
	rows[V_64CONT] = result_new("map", "batch 64, contiguous", "btmmu_map_batch(64)",
				    "mmap 1 page", "us/entry", SHOW_K_PER_S, TARGET_NONE, 0);

	for (round = -1; round < (int)nrounds; round++) {
		for (s = 0; s < NVAR; s++) {
			unsigned k = variant_at(round, s, NVAR);

			switch (k) {
			case V_FSCAT:
				v[k] = map_floor(2);
				break;
			case V_FCONT:
				v[k] = map_floor(1);
				break;
			case V_1SCAT:
				v[k] = map_lib(mb.scat, 1);
				break;
			case V_1CONT:
				v[k] = map_lib(mb.cont, 1);
				break;
			case V_16SCAT:
				v[k] = map_lib(mb.scat, 16);
				break;
			case V_16CONT:
				v[k] = map_lib(mb.cont, 16);
				break;
			case V_64SCAT:
				v[k] = map_lib(mb.scat, 64);
				break;
			case V_64CONT:
				v[k] = map_lib(mb.cont, 64);
				break;
			}
		}
		/* Scattered rows against the scattered floor, contiguous against contiguous. */
		for (s = V_1SCAT; s < NVAR; s++)
			result_add(rows[s], round, v[s], v[(s - V_1SCAT) % 2 ? V_FCONT : V_FSCAT]);
	}
	st = stats_of(mb.ctx);
	if (st.evictions || st.sync_reclaims)
		fprintf(stderr, "btmmu-bench: map: %" PRIu64 " evictions, %" PRIu64
			" sync reclaims\n", st.evictions, st.sync_reclaims);

	free(mb.scat);
	free(mb.cont);
	CHECK(btmmu_space_destroy(mb.sp));
	CHECK(btmmu_ram_destroy(mb.ram));
	CHECK(btmmu_close(mb.ctx));
	munmap((void *)mb.floor_start, mb.floor_len);
	close(mb.fd);
}

/* ------------------------------------------------------------------ */
/* 3. Flush against live entries                                       */
/* ------------------------------------------------------------------ */

static struct {
	unsigned n;			/* live entries this round */
	int fd;				/* 2 * max n pages, populated lazily by touches */
	size_t npages;
	uintptr_t floor_start;
	size_t floor_len;
	struct btmmu_map_req *reqs;	/* scattered: one host mapping each */
	struct btmmu *bg, *sync;	/* with / without the reclaim thread */
	struct btmmu_space *bg_sp, *sync_sp;
	struct btmmu_ram *bg_ram, *sync_ram;
} xb;

/* Read one byte of each of the first n pages (entries are live and used). */
static void touch_live(uintptr_t start, unsigned n)
{
	volatile const uint8_t *p = (const uint8_t *)start;
	unsigned i;

	for (i = 0; i < n; i++)
		(void)p[(size_t)i * pg];
}

static void fill_floor(unsigned n)
{
	unsigned i;

	for (i = 0; i < n; i++)
		map_page(xb.floor_start + (uintptr_t)i * pg, pg, xb.fd, xb.reqs[i].gpa);
	touch_live(xb.floor_start, n);
}

static void fill_lib(struct btmmu *ctx, struct btmmu_space *sp, unsigned n)
{
	struct btmmu_stats st;
	unsigned i, k;
	int ret;

	for (i = 0; i < n; i += k) {
		k = n - i < BATCH_MAX ? n - i : BATCH_MAX;
		ret = btmmu_map_batch(sp, 0, &xb.reqs[i], k, 0);
		if (ret != (int)k)
			die("btmmu_map_batch(fill)", ret < 0 ? ret : EIO);
	}
	st = stats_of(ctx);
	if (st.live_entries != n)
		fprintf(stderr, "btmmu-bench: flush: %" PRIu64 " live entries, wanted %u\n",
			st.live_entries, n);
	touch_live(view_base(sp), n);
}

static double flush_floor(void)
{
	uint64_t t0;

	fill_floor(xb.n);
	t0 = now_ns();
	clear_range(xb.floor_start, xb.floor_len);
	return (double)(now_ns() - t0) / 1e3;
}

/*
 * Full flush with the reclaim thread: time the call, then (untimed) wait
 * until the thread has torn the retired region down. *bg_us gets the time
 * from the flush's return to the teardown seen done (wake-up included).
 */
static double flush_full_bg(double *bg_us)
{
	struct btmmu_stats st0, st;
	uint64_t t0, t1, ns;

	fill_lib(xb.bg, xb.bg_sp, xb.n);
	st0 = stats_of(xb.bg);
	t0 = now_ns();
	CHECK(btmmu_flush(xb.bg_sp, 1, 0));
	t1 = now_ns();
	ns = t1 - t0;
	for (;;) {
		st = stats_of(xb.bg);
		if (st.reclaims > st0.reclaims)
			break;
		if (now_ns() - t1 > RECLAIM_TIMEOUT_NS) {
			fprintf(stderr, "btmmu-bench: flush: reclaim thread idle, reclaiming\n");
			CHECK(btmmu_reclaim(xb.bg));
			break;
		}
		sleep_us(20);
	}
	*bg_us = (double)(now_ns() - t1) / 1e3;
	if (st.sync_reclaims != st0.sync_reclaims)
		fprintf(stderr, "btmmu-bench: flush: the ring ran out (%" PRIu64
			" sync reclaims)\n", st.sync_reclaims - st0.sync_reclaims);
	return (double)ns / 1e3;
}

static double flush_nonglobal(void)
{
	uint64_t t0, ns;

	fill_lib(xb.bg, xb.bg_sp, xb.n);
	t0 = now_ns();
	CHECK(btmmu_flush(xb.bg_sp, 1, BTMMU_FLUSH_NONGLOBAL));
	ns = now_ns() - t0;
	if (stats_of(xb.bg).live_entries)
		fprintf(stderr, "btmmu-bench: flush: entries left after NONGLOBAL\n");
	return (double)ns / 1e3;
}

/* Without the thread: the full flush alone, then btmmu_reclaim() (teardown). */
static double flush_teardown(double *flush_us)
{
	uint64_t t0, t1, t2;
	int n;

	fill_lib(xb.sync, xb.sync_sp, xb.n);
	t0 = now_ns();
	CHECK(btmmu_flush(xb.sync_sp, 1, 0));
	t1 = now_ns();
	n = btmmu_reclaim(xb.sync);
	t2 = now_ns();
	if (n != 1)
		fprintf(stderr, "btmmu-bench: flush: btmmu_reclaim() = %d\n", n);
	*flush_us = (double)(t1 - t0) / 1e3;
	return (double)(t2 - t1) / 1e3;
}

static void bench_flush(void)
{
	static const unsigned counts_full[] = { 1000, 10000, 30000 };
	static const unsigned counts_quick[] = { 1000, 3000 };
	const unsigned *counts = quick ? counts_quick : counts_full;
	unsigned ncounts = quick ? 2 : 3, maxn = counts[ncounts - 1], c, s, i;
	enum { V_FLOOR, V_FULL, V_NG, V_TEAR, NVAR };
	struct btmmu_stats st;
	int round;

	xb.npages = 2 * (size_t)maxn;
	xb.fd = ram_fd(xb.npages, false);
	xb.floor_len = (size_t)1 << 32;
	xb.floor_start = (uintptr_t)reserve(xb.floor_len, 2u << 20);
	xb.reqs = map_reqs(maxn, 2);
	/*
	 * Two contexts each budgeted for the largest count: only one of them
	 * (or the floor) holds live mappings at any time.
	 */
	xb.bg = ctx_open(0, NULL, maxn + 4096);
	xb.bg_sp = space_new(xb.bg);
	xb.bg_ram = ram_new(xb.bg, xb.fd, xb.npages);
	xb.sync = ctx_open(BTMMU_OPEN_NO_THREAD, NULL, maxn + 4096);
	xb.sync_sp = space_new(xb.sync);
	xb.sync_ram = ram_new(xb.sync, xb.fd, xb.npages);

	for (c = 0; c < ncounts; c++) {
		struct result *rfull, *rng, *rtear;
		struct extra *xbg, *xnt;
		char name[48];
		double v[NVAR] = { 0 }, bg_us = 0, nt_us = 0;

		xb.n = counts[c];
		snprintf(name, sizeof(name), "flush full, %uk live", xb.n / 1000);
		rfull = result_new("flush", name, "btmmu_flush", "mmap(PROT_NONE)", "us",
				   SHOW_US, TARGET_ABS, FLUSH_TARGET_US);
		snprintf(name, sizeof(name), "flush nonglobal, %uk live", xb.n / 1000);
		rng = result_new("flush", name, "btmmu_flush(NONGLOBAL)", "mmap(PROT_NONE)", "us",
				 SHOW_US, TARGET_NONE, 0);
		snprintf(name, sizeof(name), "teardown, %uk live", xb.n / 1000);
		rtear = result_new("flush", name, "btmmu_reclaim", "mmap(PROT_NONE)", "us",
				   SHOW_US, TARGET_NONE, 0);
		snprintf(name, sizeof(name), "background teardown (wall), %uk live", xb.n / 1000);
		xbg = extra_new("flush", name, "us");
		snprintf(name, sizeof(name), "flush full without thread, %uk live", xb.n / 1000);
		xnt = extra_new("flush", name, "us");

		for (round = -1; round < (int)nrounds; round++) {
			for (s = 0; s < NVAR; s++) {
				i = variant_at(round, s, NVAR);
				switch (i) {
				case V_FLOOR:
					v[i] = flush_floor();
					break;
				case V_FULL:
					v[i] = flush_full_bg(&bg_us);
					break;
				case V_NG:
					v[i] = flush_nonglobal();
					break;
				case V_TEAR:
					v[i] = flush_teardown(&nt_us);
					break;
				}
			}
			result_add(rfull, round, v[V_FULL], v[V_FLOOR]);
			result_add(rng, round, v[V_NG], v[V_FLOOR]);
			result_add(rtear, round, v[V_TEAR], v[V_FLOOR]);
			extra_add(xbg, round, bg_us);
			extra_add(xnt, round, nt_us);
		}
	}
	st = stats_of(xb.bg);
	if (st.evictions || st.sync_reclaims)
		fprintf(stderr, "btmmu-bench: flush: %" PRIu64 " evictions, %" PRIu64
			" sync reclaims\n", st.evictions, st.sync_reclaims);

	CHECK(btmmu_space_destroy(xb.bg_sp));
	CHECK(btmmu_ram_destroy(xb.bg_ram));
	CHECK(btmmu_close(xb.bg));
	CHECK(btmmu_space_destroy(xb.sync_sp));
	CHECK(btmmu_ram_destroy(xb.sync_ram));
	CHECK(btmmu_close(xb.sync));
	free(xb.reqs);
	munmap((void *)xb.floor_start, xb.floor_len);
	close(xb.fd);
}

/* ------------------------------------------------------------------ */
/* Report                                                              */
/* ------------------------------------------------------------------ */

static void print_table(void)
{
	char cv[24], fv[24], tv[16], vv[40];
	const char *bench = "";
	unsigned i;

	printf("\nratio = median over rounds of candidate time / floor time (lower is better)\n");
	printf("%-32s %-22s %-12s %-18s %-12s %7s  %-9s %s\n", "benchmark", "candidate", "",
	       "floor", "", "ratio", "target", "verdict");
	for (i = 0; i < nresults; i++) {
		const struct result *r = &results[i];

		if (strcmp(bench, r->bench)) {
			bench = r->bench;
			printf("-- %s\n", bench);
		}
		format_value(cv, sizeof(cv), r, median(&r->c));
		format_value(fv, sizeof(fv), r, median(&r->f));
		format_verdict(tv, sizeof(tv), vv, sizeof(vv), r);
		printf("%-32s %-22s %-12s %-18s %-12s %6.2fx  %-9s %s\n", r->name, r->cand, cv,
		       r->floor, fv, result_ratio(r), tv, vv);
	}
	if (nextras) {
		printf("\nother figures (median)\n");
		for (i = 0; i < nextras; i++)
			printf("  %-5s %-44s %10.2f %s\n", extras[i].bench, extras[i].name,
			       median(&extras[i].s), extras[i].unit);
	}
}

static void json_series(FILE *f, const struct series *s)
{
	unsigned i;

	fputc('[', f);
	for (i = 0; i < s->n; i++)
		fprintf(f, "%s%.4f", i ? ", " : "", s->v[i]);
	fputc(']', f);
}

static const char *target_kind_name(enum target_kind tk)
{
	return tk == TARGET_RATIO ? "max_ratio" : tk == TARGET_ABS ? "max_candidate" : "none";
}

static int write_json(const char *path, double total_s)
{
	FILE *f = fopen(path, "we");
	struct utsname u;
	char tv[16], vv[40];
	unsigned i;

	if (!f)
		return -errno;
	uname(&u);
	fprintf(f, "{\n  \"program\": \"btmmu-bench\",\n");
	fprintf(f, "  \"library_version\": \"%s\",\n", btmmu_version_string());
	fprintf(f, "  \"backend\": \"user\",\n");
	fprintf(f, "  \"host\": {\"kernel\": \"%s\", \"machine\": \"%s\", \"cpus\": %ld, "
		   "\"page_size\": %zu},\n", u.release, u.machine, sysconf(_SC_NPROCESSORS_ONLN),
		pg);
	fprintf(f, "  \"time\": %lld,\n  \"rounds\": %u,\n  \"quick\": %s,\n",
		(long long)time(NULL), nrounds, quick ? "true" : "false");
	fprintf(f, "  \"runtime_s\": %.1f,\n", total_s);
	fprintf(f, "  \"ratio\": \"median over rounds of candidate time / floor time\",\n");
	fprintf(f, "  \"results\": [\n");
	for (i = 0; i < nresults; i++) {
		const struct result *r = &results[i];

		format_verdict(tv, sizeof(tv), vv, sizeof(vv), r);
		fprintf(f, "    {\"bench\": \"%s\", \"name\": \"%s\", \"candidate\": \"%s\", "
			   "\"floor\": \"%s\", \"unit\": \"%s\",\n", r->bench, r->name, r->cand,
			r->floor, r->unit);
		fprintf(f, "     \"candidate_median\": %.4f, \"floor_median\": %.4f, "
			   "\"ratio\": %.4f, \"ratio_of_medians\": %.4f,\n", median(&r->c),
			median(&r->f), result_ratio(r), median(&r->c) / median(&r->f));
		fprintf(f, "     \"target_kind\": \"%s\", \"target\": %.4f, \"verdict\": \"%s\",\n",
			target_kind_name(r->tk), r->target, vv);
		fprintf(f, "     \"candidate_samples\": ");
		json_series(f, &r->c);
		fprintf(f, ",\n     \"floor_samples\": ");
		json_series(f, &r->f);
		fprintf(f, ",\n     \"ratio_samples\": ");
		json_series(f, &r->ratio);
		fprintf(f, "}%s\n", i + 1 < nresults ? "," : "");
	}
	fprintf(f, "  ],\n  \"other\": [\n");
	for (i = 0; i < nextras; i++) {
		const struct extra *x = &extras[i];

		fprintf(f, "    {\"bench\": \"%s\", \"name\": \"%s\", \"unit\": \"%s\", "
			   "\"median\": %.4f, \"samples\": ", x->bench, x->name, x->unit,
			median(&x->s));
		json_series(f, &x->s);
		fprintf(f, "}%s\n", i + 1 < nextras ? "," : "");
	}
	fprintf(f, "  ]\n}\n");
	return fclose(f) ? -errno : 0;
}

static void usage(FILE *f)
{
	fprintf(f, "usage: btmmu-bench [-o FILE] [-r ROUNDS] [-b fault,map,flush] [-q]\n"
		   "  -o FILE    JSON output (default bench/results.json)\n"
		   "  -r ROUNDS  measured rounds per benchmark, 1..%d (default 11)\n"
		   "  -b LIST    benchmarks to run (default all)\n"
		   "  -q         quick: fewer pages and entries (smoke test)\n",
		MAX_ROUNDS);
}

int main(int argc, char **argv)
{
	const char *out = "bench/results.json", *which = "fault,map,flush";
	uint64_t t0;
	int opt, ret;

	while ((opt = getopt(argc, argv, "o:r:b:qh")) != -1) {
		switch (opt) {
		case 'o':
			out = optarg;
			break;
		case 'r':
			nrounds = (unsigned)strtoul(optarg, NULL, 10);
			if (!nrounds || nrounds > MAX_ROUNDS) {
				usage(stderr);
				return 2;
			}
			break;
		case 'b':
			which = optarg;
			break;
		case 'q':
			quick = true;
			break;
		case 'h':
			usage(stdout);
			return 0;
		default:
			usage(stderr);
			return 2;
		}
	}
	pg = (size_t)sysconf(_SC_PAGESIZE);
	pg_shift = (unsigned)__builtin_ctzl(pg);
	setvbuf(stdout, NULL, _IOLBF, 0);
	printf("btmmu-bench: libbtmmu %s, %u rounds (+1 warm-up), page %zu\n",
	       btmmu_version_string(), nrounds, pg);

	t0 = now_ns();
	if (strstr(which, "fault")) {
		printf("fault...\n");
		bench_fault();
	}
	if (strstr(which, "map")) {
		printf("map...\n");
		bench_map();
	}
	if (strstr(which, "flush")) {
		printf("flush...\n");
		bench_flush();
	}
	print_table();
	ret = write_json(out, (double)(now_ns() - t0) / 1e9);
	if (ret)
		die(out, ret);
	printf("\nwrote %s (%.1f s)\n", out, (double)(now_ns() - t0) / 1e9);
	return 0;
}
