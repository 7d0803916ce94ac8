/* SPDX-License-Identifier: MIT */
/*
 * btmmu-demo: run every workload under both memory flavours, alternately
 * (softmmu, btmmu, btmmu, softmmu, ...), check that the guest-visible
 * results are identical, and print a table of times and ratios.
 *
 * Exit status: 0 iff every run of every workload matched, 1 on a mismatch,
 * 2 on a setup error or bad usage.
 */
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "demo.h"
#include "workloads.h"

#define MAX_ROUNDS 15

struct options {
	bool quick;
	bool verbose;
	bool prefault;
	unsigned rounds;
	unsigned tlb_bits;
	unsigned fault_around;
	unsigned scale;
	int32_t timeslice;
	uint64_t max_mappings;
	const char *only;
};

/* The guest-visible outcome of one process. */
struct proc_summary {
	int32_t exit_code;
	const char *killed;
	uint32_t kill_va, kill_pc;
	uint64_t insns, page_faults, out_hash, nout, reg_hash, mem_hash, mem_pages;
};

struct run_result {
	uint64_t ns;
	uint64_t insns, page_faults;
	uint64_t blocks, chains;
	uint64_t digest;		/* hash of every process's summary */
	struct btmmu_stats st;		/* libbtmmu counters during the run */
	unsigned killed;
};

static void usage(FILE *f, const char *argv0)
{
	const struct workload *w;
	unsigned i, n = workloads_get(false, &w);

	fprintf(f,
		"Usage: %s [options]\n"
		"A tiny full-system DBT (G32 guest, x86-64 template JIT, guest kernel with\n"
		"demand paging) runs each workload with a QEMU-style software TLB (softmmu)\n"
		"and with libbtmmu (guest VA = view base + VA, host MMU), checks that the\n"
		"guest-visible results are identical, and compares the times.\n\n"
		"  --quick             small inputs, one round (the smoke test)\n"
		"  --rounds N          rounds per workload, median reported (default 3)\n"
		"  --only A[,B...]     run only these workloads\n"
		"  --scale N           multiply each workload's iteration count by N\n"
		"                      (the time difference between two scales is the\n"
		"                      steady-state cost, without the page fault-in)\n"
		"  --tlb-bits N        softmmu TLB entries = 2^N, 6..%d (default 10)\n"
		"  --timeslice N       guest instructions per timeslice (default 50000)\n"
		"  --fault-around N    btmmu: pages installed per fault, power of 2, 1..64\n"
		"                      (default 16)\n"
		"  --no-prefault       btmmu: don't install the entry right after a guest\n"
		"                      page fault (the retried access faults again instead)\n"
		"  --max-mappings N    btmmu: host mapping budget (default: the library's)\n"
		"  --wall              time with the wall clock (default: CPU time of the\n"
		"                      vCPU thread, user + system, steadier on a busy host)\n"
		"  --verbose           print guest output and kills\n"
		"  --help              this text\n\n"
		"Workloads:\n",
		argv0, TLB_MAX_BITS);
	for (i = 0; i < n; i++)
		fprintf(f, "  %-8s %s\n", w[i].name, w[i].what);
	fprintf(f, "\nExit status 0 iff all results matched.\n");
}

static bool parse_uint(const char *s, uint64_t min, uint64_t max, uint64_t *out)
{
	char *end;
	unsigned long long v;

	errno = 0;
	v = strtoull(s, &end, 0);
	if (errno || end == s || *end || v < min || v > max)
		return false;
	*out = v;
	return true;
}

static int parse_options(int argc, char **argv, struct options *o)
{
	static const struct option longopts[] = {
		{ "quick", no_argument, NULL, 'q' },
		{ "rounds", required_argument, NULL, 'r' },
		{ "only", required_argument, NULL, 'o' },
		{ "scale", required_argument, NULL, 'S' },
		{ "tlb-bits", required_argument, NULL, 't' },
		{ "timeslice", required_argument, NULL, 's' },
		{ "fault-around", required_argument, NULL, 'f' },
		{ "no-prefault", no_argument, NULL, 'P' },
		{ "max-mappings", required_argument, NULL, 'm' },
		{ "wall", no_argument, NULL, 'w' },
		{ "verbose", no_argument, NULL, 'v' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	bool rounds_set = false;
	uint64_t v;
	int c;

	memset(o, 0, sizeof(*o));
	o->prefault = true;
	o->rounds = 3;
	o->scale = 1;
	o->tlb_bits = 10;
	o->fault_around = 16;
	o->timeslice = 50000;
	while ((c = getopt_long(argc, argv, "", longopts, NULL)) != -1) {
		switch (c) {
		case 'q':
			o->quick = true;
			break;
		case 'r':
			if (!parse_uint(optarg, 1, MAX_ROUNDS, &v))
				goto bad;
			o->rounds = (unsigned)v;
			rounds_set = true;
			break;
		case 'o':
			o->only = optarg;
			break;
		case 'S':
			if (!parse_uint(optarg, 1, 1000, &v))
				goto bad;
			o->scale = (unsigned)v;
			break;
		case 't':
			if (!parse_uint(optarg, 6, TLB_MAX_BITS, &v))
				goto bad;
			o->tlb_bits = (unsigned)v;
			break;
		case 's':
			if (!parse_uint(optarg, 64, INT32_MAX / 2, &v))
				goto bad;
			o->timeslice = (int32_t)v;
			break;
		case 'f':
			if (!parse_uint(optarg, 1, 64, &v) || (v & (v - 1)))
				goto bad;
			o->fault_around = (unsigned)v;
			break;
		case 'P':
			o->prefault = false;
			break;
		case 'm':
			if (!parse_uint(optarg, 64, UINT32_MAX, &v))
				goto bad;
			o->max_mappings = v;
			break;
		case 'w':
			demo_wall_clock = true;
			break;
		case 'v':
			o->verbose = true;
			break;
		case 'h':
			usage(stdout, argv[0]);
			exit(0);
		default:
			usage(stderr, argv[0]);
			return -EINVAL;
		}
	}
	if (optind != argc)
		goto bad_arg;
	if (o->quick && !rounds_set)
		o->rounds = 1;
	return 0;
bad:
	fprintf(stderr, "%s: bad value '%s' (see --help)\n", argv[0], optarg);
	return -EINVAL;
bad_arg:
	fprintf(stderr, "%s: unexpected argument %s (see --help)\n", argv[0], argv[optind]);
	return -EINVAL;
}

/* Is workload name selected by --only (a comma-separated list)? */
static bool selected(const struct options *o, const char *name)
{
	size_t n = strlen(name);
	const char *s = o->only;

	if (!s)
		return true;
	while (*s) {
		const char *end = strchr(s, ',');
		size_t len = end ? (size_t)(end - s) : strlen(s);

		if (len == n && !strncmp(s, name, n))
			return true;
		s += len + (end != NULL);
	}
	return false;
}

/* Guest RAM enough for every selected workload's processes at once. */
static uint64_t ram_needed(const struct options *o, const struct workload *w, unsigned n)
{
	uint64_t need = 0;
	unsigned i;

	for (i = 0; i < n; i++) {
		uint64_t per = w[i].data_size + w[i].data_size / 1024 + 4 * GPAGE_SIZE;
		uint64_t total = per * w[i].nprocs + (1u << 20);

		if (selected(o, w[i].name) && total > need)
			need = total;
	}
	return (need + (1u << 20) - 1) & ~(uint64_t)((1u << 20) - 1);
}

static void stats_diff(struct btmmu_stats *d, const struct btmmu_stats *a,
		       const struct btmmu_stats *b)
{
	d->faults = b->faults - a->faults;
	d->faults_retry = b->faults_retry - a->faults_retry;
	d->faults_slow = b->faults_slow - a->faults_slow;
	d->fills = b->fills - a->fills;
	d->install_calls = b->install_calls - a->install_calls;
	d->unmaps = b->unmaps - a->unmaps;
	d->evictions = b->evictions - a->evictions;
}

/*
 * Run workload w once under flavour fl; fill r and the per-process
 * summaries. Returns 0 or -errno (setup failures).
 */
static int run_once(struct machine *m, const struct workload *w, const uint32_t *args,
		    const struct gasm *prog, enum flavour fl, struct run_result *r,
		    struct proc_summary *sum)
{
	struct btmmu_stats before, after;
	size_t code_bytes;
	uint64_t t0;
	unsigned i;
	int ret;

	memset(r, 0, sizeof(*r));
	m->flavour = fl;
	m->mmu = fl == FLAVOUR_SOFTMMU ? &softmmu_ops : &btmmu_ops;
	m->nprocs = w->nprocs;
	kernel_reset(m);
	jit_reset(m->jit, fl, m->tlb_bits);
	softmmu_flush(m);
	m->env->mem_base = 0;
	ret = kernel_load_program(m, prog->code, prog->len);
	if (ret)
		return ret;
	bt_stats(m, &before);

	t0 = now_ns();
	for (i = 0; i < w->nprocs; i++) {
		ret = kernel_spawn(m, i, w->data_size, args, 4);
		if (ret) {
			kernel_teardown(m);
			return ret;
		}
	}
	kernel_start(m);
	cpu_run(m);
	r->ns = now_ns() - t0 - m->excluded_ns;
	kernel_teardown(m);

	bt_stats(m, &after);
	stats_diff(&r->st, &before, &after);
	jit_stats(m->jit, &r->blocks, &r->chains, &code_bytes);
	for (i = 0; i < w->nprocs; i++) {
		const struct process *p = &m->procs[i];
		struct proc_summary *s = &sum[i];

		memset(s, 0, sizeof(*s));
		s->exit_code = p->exit_code;
		s->killed = p->killed;
		s->kill_va = p->kill_va;
		s->kill_pc = p->kill_pc;
		s->insns = p->insns;
		s->page_faults = p->page_faults;
		s->out_hash = p->out_hash;
		s->nout = p->nout;
		s->reg_hash = p->reg_hash;
		s->mem_hash = p->mem_hash;
		s->mem_pages = p->mem_pages;
		r->digest = hash64(r->digest, s->exit_code);
		r->digest = hash64(r->digest, s->kill_va);
		r->digest = hash64(r->digest, s->kill_pc);
		r->digest = hash64(r->digest, s->insns);
		r->digest = hash64(r->digest, s->page_faults);
		r->digest = hash64(r->digest, s->out_hash);
		r->digest = hash64(r->digest, s->reg_hash);
		r->digest = hash64(r->digest, s->mem_hash);
		r->insns += p->insns;
		r->page_faults += p->page_faults;
		r->killed += p->killed != NULL;
	}
	return 0;
}

static bool summary_equal(const struct proc_summary *a, const struct proc_summary *b)
{
	bool kill_eq = a->killed == b->killed ||
		       (a->killed && b->killed && !strcmp(a->killed, b->killed));

	return kill_eq && a->exit_code == b->exit_code && a->kill_va == b->kill_va &&
	       a->kill_pc == b->kill_pc && a->insns == b->insns &&
	       a->page_faults == b->page_faults && a->out_hash == b->out_hash &&
	       a->nout == b->nout && a->reg_hash == b->reg_hash && a->mem_hash == b->mem_hash &&
	       a->mem_pages == b->mem_pages;
}

static void print_summary(const char *tag, unsigned pid, const struct proc_summary *s)
{
	fprintf(stderr,
		"    %-8s pid %u: exit %d killed %s va %#x pc %#x insns %llu pf %llu out %016llx/%llu "
		"regs %016llx mem %016llx/%llu\n",
		tag, pid, s->exit_code, s->killed ? s->killed : "-", s->kill_va, s->kill_pc,
		(unsigned long long)s->insns, (unsigned long long)s->page_faults,
		(unsigned long long)s->out_hash, (unsigned long long)s->nout,
		(unsigned long long)s->reg_hash, (unsigned long long)s->mem_hash,
		(unsigned long long)s->mem_pages);
}

static int cmp_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;

	return x < y ? -1 : x > y;
}

static uint64_t median(uint64_t *v, unsigned n)
{
	qsort(v, n, sizeof(*v), cmp_u64);
	return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

int main(int argc, char **argv)
{
	static struct machine machine;
	struct machine *m = &machine;
	const struct workload *wl;
	struct options o;
	unsigned nw, wi, maxprocs = 0;
	uint64_t ram_size;
	size_t env_size;
	bool all_ok = true;
	int ret;

	if (parse_options(argc, argv, &o))
		return 2;
	nw = workloads_get(o.quick, &wl);
	for (wi = 0; wi < nw; wi++) {
		if (selected(&o, wl[wi].name) && wl[wi].nprocs > maxprocs)
			maxprocs = wl[wi].nprocs;
	}
	if (!maxprocs) {
		fprintf(stderr, "%s: no workload selected by --only %s\n", argv[0], o.only);
		return 2;
	}

	/* The machine: vCPU env (with the largest TLB), RAM, processes, translator. */
	m->tlb_bits = o.tlb_bits;
	m->timeslice = o.timeslice;
	m->fault_around = o.fault_around;
	m->prefault = o.prefault;
	m->verbose = o.verbose;
	env_size = sizeof(struct cpu_env) + (sizeof(struct tlb_entry) << TLB_MAX_BITS);
	m->env = aligned_alloc(64, (env_size + 63) & ~(size_t)63);
	m->procs = calloc(maxprocs, sizeof(*m->procs));
	m->runq = calloc(maxprocs, sizeof(*m->runq));
	ram_size = ram_needed(&o, wl, nw);
	m->free_frames = calloc(ram_size / GPAGE_SIZE, sizeof(*m->free_frames));
	if (!m->env || !m->procs || !m->runq || !m->free_frames) {
		fprintf(stderr, "%s: out of memory\n", argv[0]);
		return 2;
	}
	memset(m->env, 0, env_size);
	m->env->m = m;
	ret = bt_setup(m, ram_size, o.max_mappings);
	if (ret) {
		fprintf(stderr, "%s: libbtmmu setup: %s\n", argv[0], strerror(-ret));
		return 2;
	}
	memset(m->ram, 0, ram_size);	/* allocate the host pages before timing anything */
	ret = jit_create(m, &m->jit);
	if (ret) {
		fprintf(stderr, "%s: translator: %s\n", argv[0], strerror(-ret));
		bt_teardown(m);
		return 2;
	}

	printf("libbtmmu %s, backend %s; guest RAM %llu MiB; softmmu TLB %u entries; "
	       "timeslice %d; fault-around %u%s; %u round%s%s; scale %u; %s time\n",
	       btmmu_version_string(), btmmu_backend_name(m->bt),
	       (unsigned long long)(ram_size >> 20), 1u << o.tlb_bits, o.timeslice,
	       o.fault_around, o.prefault ? ", prefault" : "", o.rounds,
	       o.rounds > 1 ? "s (median)" : "", o.quick ? ", quick" : "", o.scale,
	       demo_wall_clock ? "wall-clock" : "CPU");
	printf("\n%-8s %5s %13s %9s %10s %10s %8s %9s %9s %7s  %s\n", "workload", "procs",
	       "guest insns", "guest PF", "softmmu s", "btmmu s", "soft/bt", "bt faults",
	       "bt fills", "evict", "result");
	fflush(stdout);

	for (wi = 0; wi < nw; wi++) {
		const struct workload *w = &wl[wi];
		uint64_t ns[2][MAX_ROUNDS];
		struct proc_summary *ref, *cur;
		struct run_result r, last_bt, first;
		struct gasm a;
		uint32_t args[4];
		bool have_ref = false, ok = true;
		unsigned round, k, i;
		double ts, tb;

		if (!selected(&o, w->name))
			continue;
		memcpy(args, w->args, sizeof(args));
		if (w->iters_arg >= 0) {
			uint64_t n = (uint64_t)args[w->iters_arg] * o.scale;

			args[w->iters_arg] = n > UINT32_MAX ? UINT32_MAX : (uint32_t)n;
		}
		gasm_init(&a, GUEST_CODE_VA);
		w->build(&a);
		ret = gasm_finish(&a);
		ref = calloc(w->nprocs, sizeof(*ref));
		cur = calloc(w->nprocs, sizeof(*cur));
		if (ret || !ref || !cur) {
			fprintf(stderr, "%s: building %s: %s\n", argv[0], w->name,
				strerror(ret ? -ret : ENOMEM));
			return 2;
		}
		memset(&last_bt, 0, sizeof(last_bt));
		memset(&first, 0, sizeof(first));
		for (round = 0; round < o.rounds; round++) {
			for (k = 0; k < 2; k++) {
				/* A B B A A B ...: neither flavour always goes first. */
				enum flavour fl = (enum flavour)(k ^ (round & 1));

				ret = run_once(m, w, args, &a, fl, &r, cur);
				if (ret) {
					fprintf(stderr, "%s: %s under %s: %s\n", argv[0], w->name,
						fl == FLAVOUR_SOFTMMU ? "softmmu" : "btmmu",
						strerror(-ret));
					return 2;
				}
				ns[fl][round] = r.ns;
				if (fl == FLAVOUR_BTMMU)
					last_bt = r;
				if (!have_ref) {
					memcpy(ref, cur, w->nprocs * sizeof(*ref));
					first = r;
					have_ref = true;
					continue;
				}
				for (i = 0; i < w->nprocs; i++) {
					if (summary_equal(&ref[i], &cur[i]))
						continue;
					fprintf(stderr, "MISMATCH in %s, round %u, %s vs the first run:\n",
						w->name, round,
						fl == FLAVOUR_SOFTMMU ? "softmmu" : "btmmu");
					print_summary("first", i, &ref[i]);
					print_summary(fl == FLAVOUR_SOFTMMU ? "softmmu" : "btmmu", i,
						      &cur[i]);
					ok = false;
					break;
				}
			}
		}
		ts = (double)median(ns[FLAVOUR_SOFTMMU], o.rounds) / 1e9;
		tb = (double)median(ns[FLAVOUR_BTMMU], o.rounds) / 1e9;
		printf("%-8s %5u %13llu %9llu %10.3f %10.3f %7.2fx %9llu %9llu %7llu  %s\n",
		       w->name, w->nprocs, (unsigned long long)first.insns,
		       (unsigned long long)first.page_faults, ts, tb, tb > 0 ? ts / tb : 0.0,
		       (unsigned long long)last_bt.st.faults,
		       (unsigned long long)last_bt.st.fills,
		       (unsigned long long)last_bt.st.evictions, ok ? "match" : "MISMATCH");
		if (o.verbose)
			printf("         digest %016llx; %llu blocks, %llu chains; bt: %llu retry, "
			       "%llu slow, %llu map calls, %llu unmapped; %u killed\n",
			       (unsigned long long)first.digest,
			       (unsigned long long)last_bt.blocks,
			       (unsigned long long)last_bt.chains,
			       (unsigned long long)last_bt.st.faults_retry,
			       (unsigned long long)last_bt.st.faults_slow,
			       (unsigned long long)last_bt.st.install_calls,
			       (unsigned long long)last_bt.st.unmaps, first.killed);
		fflush(stdout);
		all_ok &= ok;
		free(ref);
		free(cur);
		gasm_free(&a);
	}

	printf("\nsoft/bt: softmmu time / btmmu time (>1: btmmu faster). bt faults: host faults\n"
	       "the libbtmmu callback handled (shadow fills and guest page faults); bt fills:\n"
	       "guest pages installed. Times exclude the result checksums.\n");
	printf("%s\n", all_ok ? "All results identical under both flavours." :
				"RESULTS DIFFER between flavours.");
	jit_destroy(m->jit);
	bt_teardown(m);
	free(m->free_frames);
	free(m->runq);
	free(m->procs);
	free(m->env);
	return all_ok ? 0 : 1;
}
