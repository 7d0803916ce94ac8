/* SPDX-License-Identifier: MIT */
/*
 * tests/fuzz/fuzz: generate operation streams from a PRNG and run them
 * through fuzz_one(), one child process per episode (a crash or a hang of
 * the library is reported, not fatal to the driver).
 *
 *   fuzz [--config NAME] [--threads N] [--seed N] [--ops N] [--seconds N]
 *        [--episode N] [--tolerate KIND,...] [--quirks LIST|all] [--no-shrink]
 *        [--out DIR]
 *   fuzz --replay FILE [--config NAME] [--threads N] [--trace]
 *
 * Prints "fuzz: N ops, N accesses, N faults, N divergences" and exits 0,
 * 1 on a divergence (after printing the seed, the episode, the operation,
 * what was expected and what was seen, and a shrunk reproducer), or 77
 * when the configuration cannot run on this host.
 */
#include <errno.h>
#include <getopt.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "fuzz.h"

extern volatile size_t fuzz_current_op;

#define EPISODE_TIMEOUT_MS 120000
#define SHRINK_SECONDS 120

struct opts {
	struct fuzz_config cfg;
	uint64_t seed, ops, episode;
	double seconds;
	int shrink;
	const char *out;
	const char *replay;
	const char *dump;
};

static uint64_t splitmix(uint64_t *s)
{
	uint64_t z = (*s += UINT64_C(0x9e3779b97f4a7c15));

	z = (z ^ (z >> 30)) * UINT64_C(0xbf58476d1ce4e5b9);
	z = (z ^ (z >> 27)) * UINT64_C(0x94d049bb133111eb);
	return z ^ (z >> 31);
}

/* Episode ep of seed: a header record and n operation records. */
static uint8_t *generate(uint64_t seed, uint64_t ep, size_t n, size_t *len)
{
	uint64_t s = seed * UINT64_C(0x100000001b3) ^ (ep << 20) ^ ep;
	size_t i, total = (n + 1) * FUZZ_RECORD;
	uint8_t *d = malloc(total);

	if (!d)
		return NULL;
	for (i = 0; i < total; i += 8) {
		uint64_t x = splitmix(&s);

		memcpy(d + i, &x, 8);
	}
	*len = total;
	return d;
}

static double now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* In the child: say where a fatal signal hit, then die of it. */
static void on_fatal(int sig)
{
	char buf[96];
	int n = snprintf(buf, sizeof(buf), "fuzz: fatal signal %d at op #%zu\n", sig,
			 fuzz_current_op);

	if (write(STDERR_FILENO, buf, (size_t)n) < 0)
		n = 0;
	signal(sig, SIG_DFL);
	if (sig == SIGUSR1)
		_exit(3);
	/* SIGSEGV/SIGBUS: returning faults again, now with the default action. */
}

/*
 * Run one stream in a child. Returns the child's fuzz_one() status, or
 * 2 for a crash or a hang (res->first_kind FUZZ_CRASH), 77 for skip.
 */
static int run_child(const uint8_t *data, size_t len, const struct fuzz_config *cfg,
		     struct fuzz_result *res, int timeout_ms)
{
	int fds[2], status = 0, ret;
	pid_t pid;
	struct pollfd pfd;
	ssize_t got = 0;

	memset(res, 0, sizeof(*res));
	if (pipe(fds))
		return 77;
	fflush(NULL);
	pid = fork();
	if (pid < 0) {
		close(fds[0]);
		close(fds[1]);
		return 77;
	}
	if (pid == 0) {
		struct sigaction sa;

		close(fds[0]);
		memset(&sa, 0, sizeof(sa));
		sa.sa_handler = on_fatal;
		sa.sa_flags = SA_NODEFER;
		sigaction(SIGSEGV, &sa, NULL);
		sigaction(SIGBUS, &sa, NULL);
		sigaction(SIGUSR1, &sa, NULL);
		ret = fuzz_one_ex(data, len, cfg, res);
		if (write(fds[1], res, sizeof(*res)) != (ssize_t)sizeof(*res))
			ret = 2;
		_exit(ret);
	}
	close(fds[1]);
	pfd.fd = fds[0];
	pfd.events = POLLIN;
	while (got < (ssize_t)sizeof(*res)) {
		ssize_t r;

		ret = poll(&pfd, 1, timeout_ms);
		if (ret == 0) {
			/* A hang: the threads' stacks if gdb is there, then where it was. */
			char cmd[256];

			snprintf(
				cmd, sizeof(cmd),
				"command -v gdb >/dev/null && gdb -p %d -batch -ex 'thread apply all "
				"bt' 2>/dev/null | grep -E '^(Thread|#)' >&2",
				(int)pid);
			if (system(cmd) < 0)
				perror("system");
			kill(pid, SIGUSR1);
			sleep(2);
			kill(pid, SIGKILL);
			waitpid(pid, &status, 0);
			close(fds[0]);
			res->first_kind = FUZZ_CRASH;
			res->divergences = 1;
			snprintf(res->first_msg, sizeof(res->first_msg),
				 "hang: no result after %d s (see the op above)",
				 timeout_ms / 1000);
			return 2;
		}
		if (ret < 0 && errno == EINTR)
			continue;
		r = read(fds[0], (char *)res + got, sizeof(*res) - (size_t)got);
		if (r <= 0)
			break;
		got += r;
	}
	close(fds[0]);
	waitpid(pid, &status, 0);
	if (got == (ssize_t)sizeof(*res) && WIFEXITED(status))
		return WEXITSTATUS(status);
	memset(res, 0, sizeof(*res));
	res->first_kind = FUZZ_CRASH;
	res->divergences = 1;
	if (WIFSIGNALED(status))
		snprintf(res->first_msg, sizeof(res->first_msg), "crash: killed by signal %d (%s)",
			 WTERMSIG(status), strsignal(WTERMSIG(status)));
	else
		snprintf(res->first_msg, sizeof(res->first_msg), "crash: exit status %d",
			 WIFEXITED(status) ? WEXITSTATUS(status) : -1);
	return 2;
}

static int same_failure(int ret, const struct fuzz_result *r, int kind)
{
	return (ret == 1 || ret == 2) && r->first_kind == kind;
}

/*
 * Shrink a failing stream: cut it after the failing record, then remove
 * chunks of records (halves, quarters, ... single ones) as long as the
 * same kind of divergence remains.
 */
static size_t shrink(uint8_t *d, size_t nrec, const struct fuzz_config *cfg, int kind)
{
	struct fuzz_config q = *cfg;
	struct fuzz_result r;
	uint8_t *tmp = malloc((nrec + 1) * FUZZ_RECORD);
	size_t chunk;
	double t0 = now();

	if (!tmp)
		return nrec;
	q.quiet = 1;
	for (chunk = nrec / 2; chunk >= 1 && now() - t0 < SHRINK_SECONDS; chunk /= 2) {
		size_t i = 0;

		while (i < nrec && now() - t0 < SHRINK_SECONDS) {
			size_t n = chunk < nrec - i ? chunk : nrec - i, m;
			int ret;

			/* Header, records [0, i), records [i + n, nrec). */
			memcpy(tmp, d, FUZZ_RECORD * (1 + i));
			memcpy(tmp + FUZZ_RECORD * (1 + i), d + FUZZ_RECORD * (1 + i + n),
			       FUZZ_RECORD * (nrec - i - n));
			m = nrec - n;
			ret = run_child(tmp, (m + 1) * FUZZ_RECORD, &q, &r, 30000);
			if (same_failure(ret, &r, kind)) {
				memcpy(d, tmp, (m + 1) * FUZZ_RECORD);
				nrec = m;
				/* Cut after the record that now fails. */
				if (r.first_op + 1 < nrec && r.first_kind != FUZZ_CRASH)
					nrec = r.first_op + 1;
			} else {
				i += n;
			}
		}
		if (chunk == 1)
			break;
	}
	free(tmp);
	return nrec;
}

static void report(const struct opts *o, const uint8_t *data, size_t len, uint64_t ep,
		   const struct fuzz_result *res)
{
	struct fuzz_config tr = o->cfg;
	struct fuzz_result r2;
	size_t nrec = len / FUZZ_RECORD - 1;
	uint8_t *d = malloc(len);
	char path[512];
	FILE *f;

	printf("fuzz: DIVERGENCE config %s threads %u seed %llu episode %llu\n", o->cfg.name,
	       o->cfg.nthreads, (unsigned long long)o->seed, (unsigned long long)ep);
	printf("fuzz: %s\n", res->first_msg);
	if (!d)
		return;
	memcpy(d, data, len);
	if (res->first_kind != FUZZ_CRASH && res->first_op + 1 < nrec)
		nrec = res->first_op + 1;
	if (o->shrink) {
		nrec = shrink(d, nrec, &o->cfg, res->first_kind);
		printf("fuzz: shrunk to %zu operations\n", nrec);
	}
	snprintf(path, sizeof(path), "%s/fuzz-repro-%s-t%u-s%llu-e%llu.bin", o->out ? o->out : ".",
		 o->cfg.name, o->cfg.nthreads, (unsigned long long)o->seed, (unsigned long long)ep);
	f = fopen(path, "wb");
	if (f) {
		fwrite(d, 1, (nrec + 1) * FUZZ_RECORD, f);
		fclose(f);
		printf("fuzz: reproducer %s: tests/fuzz/fuzz --replay %s --config %s --threads %u "
		       "--trace\n",
		       path, path, o->cfg.name, o->cfg.nthreads);
	}
	/* The shrunk stream, as interpreted, and its divergence. */
	tr.trace = 1;
	printf("fuzz: trace of the reproducer:\n");
	fflush(stdout);
	run_child(d, (nrec + 1) * FUZZ_RECORD, &tr, &r2, EPISODE_TIMEOUT_MS);
	printf("fuzz: reproducer result: %s\n",
	       r2.divergences ? r2.first_msg : "(no divergence on replay: timing-dependent)");
	free(d);
}

static void usage(void)
{
	fprintf(stderr,
		"usage: fuzz [--config NAME] [--threads N] [--seed N] [--ops N] [--seconds N]\n"
		"            [--episode N] [--tolerate KIND,...] [--quirks LIST|all] [--no-shrink]\n"
		"            [--start EPISODE] [--out DIR]\n"
		"       fuzz --replay FILE [--config NAME] [--threads N] [--trace]\n"
		"       fuzz --dump DIR [--seed N] [--ops N] [--episode N]\n"
		"configs: %s\n"
		"--quirks defaults to sticky (the documented one-frame rule); --quirks '' for none\n",
		fuzz_config_names());
}

static int replay(struct opts *o)
{
	struct fuzz_result r;
	FILE *f = fopen(o->replay, "rb");
	uint8_t *d;
	long len;
	int ret;

	if (!f) {
		perror(o->replay);
		return 2;
	}
	fseek(f, 0, SEEK_END);
	len = ftell(f);
	fseek(f, 0, SEEK_SET);
	d = malloc((size_t)len + 1);
	if (!d || fread(d, 1, (size_t)len, f) != (size_t)len) {
		fclose(f);
		return 2;
	}
	fclose(f);
	ret = run_child(d, (size_t)len, &o->cfg, &r, EPISODE_TIMEOUT_MS);
	printf("fuzz: %llu ops, %llu accesses, %llu faults, %llu divergences\n",
	       (unsigned long long)r.ops, (unsigned long long)r.accesses,
	       (unsigned long long)r.faults, (unsigned long long)r.divergences);
	if (r.divergences)
		printf("fuzz: %s\n", r.first_msg);
	free(d);
	return ret == 77 ? 77 : r.divergences ? 1 : 0;
}

int main(int argc, char **argv)
{
	static const struct option lo[] = {
		{ "config", required_argument, NULL, 'c' },
		{ "threads", required_argument, NULL, 't' },
		{ "seed", required_argument, NULL, 's' },
		{ "ops", required_argument, NULL, 'n' },
		{ "seconds", required_argument, NULL, 'S' },
		{ "episode", required_argument, NULL, 'e' },
		{ "tolerate", required_argument, NULL, 'T' },
		{ "no-shrink", no_argument, NULL, 'N' },
		{ "out", required_argument, NULL, 'o' },
		{ "replay", required_argument, NULL, 'r' },
		{ "trace", no_argument, NULL, 'x' },
		{ "dump", required_argument, NULL, 'd' },
		{ "quirks", required_argument, NULL, 'Q' },
		{ "start", required_argument, NULL, 'E' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	const struct fuzz_config *base = fuzz_config_find("default");
	struct opts o = { .seed = 1, .episode = 10000, .shrink = 1 };
	unsigned threads = 0, tolerate = 0, quirks = FUZZ_Q_STICKY; /* the documented rule (check.sh) */
	uint64_t ep, tot_ops = 0, tot_acc = 0, tot_faults = 0, tot_div = 0, tot_tol = 0;
	uint64_t tot_slow = 0, tot_ev = 0, tot_enomem = 0, tot_stale = 0, tot_err = 0, tot_oc = 0;
	uint64_t tot_must = 0, tot_fl[4] = { 0 }, tot_exc = 0, tot_ll = 0;
	int c, trace = 0, status = 0, ret;
	uint64_t first_ep = 0, fail_ep = 0;
	struct fuzz_result first;
	double t0;

	while ((c = getopt_long(argc, argv, "c:t:s:n:S:e:T:No:r:xd:Q:E:h", lo, NULL)) != -1) {
		switch (c) {
		case 'c':
			base = fuzz_config_find(optarg);
			if (!base) {
				usage();
				return 2;
			}
			break;
		case 't':
			threads = (unsigned)strtoul(optarg, NULL, 0);
			break;
		case 's':
			o.seed = strtoull(optarg, NULL, 0);
			break;
		case 'n':
			o.ops = strtoull(optarg, NULL, 0);
			break;
		case 'S':
			o.seconds = strtod(optarg, NULL);
			break;
		case 'e':
			o.episode = strtoull(optarg, NULL, 0);
			break;
		case 'T':
			if (fuzz_kind_mask(optarg, &tolerate)) {
				fprintf(stderr, "fuzz: unknown kind in --tolerate %s\n", optarg);
				return 2;
			}
			break;
		case 'N':
			o.shrink = 0;
			break;
		case 'o':
			o.out = optarg;
			break;
		case 'r':
			o.replay = optarg;
			break;
		case 'x':
			trace = 1;
			break;
		case 'd':
			o.dump = optarg;
			break;
		case 'E':
			first_ep = strtoull(optarg, NULL, 0);
			break;
		case 'Q':
			if (fuzz_quirk_mask(optarg, &quirks)) {
				fprintf(stderr, "fuzz: unknown quirk in --quirks %s\n", optarg);
				return 2;
			}
			break;
		default:
			usage();
			return c == 'h' ? 0 : 2;
		}
	}
	o.cfg = *base;
	if (threads)
		o.cfg.nthreads = threads > FUZZ_MAX_THREADS ? FUZZ_MAX_THREADS : threads;
	o.cfg.tolerate = tolerate;
	o.cfg.quirks = quirks;
	o.cfg.trace = trace;
	if (o.replay)
		return replay(&o);
	if (o.dump && !o.ops)
		o.ops = 10 * o.episode;
	if (!o.ops && !o.seconds)
		o.ops = 20000;
	if (o.episode < 1)
		o.episode = 1;
	t0 = now();
	for (ep = first_ep;; ep++) {
		struct fuzz_result r;
		size_t len, n;
		uint8_t *d;

		if (o.ops && tot_ops >= o.ops)
			break;
		if (o.seconds && now() - t0 >= o.seconds)
			break;
		n = o.episode;
		if (o.ops && o.ops - tot_ops < n)
			n = (size_t)(o.ops - tot_ops);
		d = generate(o.seed, ep, n, &len);
		if (!d)
			return 2;
		if (o.dump) {
			/* Seed a libFuzzer corpus instead of running. */
			char path[512];
			FILE *f;

			snprintf(path, sizeof(path), "%s/seed-%llu-%llu", o.dump,
				 (unsigned long long)o.seed, (unsigned long long)ep);
			f = fopen(path, "wb");
			if (f) {
				fwrite(d, 1, len, f);
				fclose(f);
			}
			tot_ops += n;
			free(d);
			continue;
		}
		ret = run_child(d, len, &o.cfg, &r, EPISODE_TIMEOUT_MS);
		if (ret == 77) {
			free(d);
			printf("fuzz: SKIP config %s: cannot run here\n", o.cfg.name);
			return 77;
		}
		tot_ops += r.ops ? r.ops : o.episode;
		tot_acc += r.accesses;
		tot_faults += r.faults;
		tot_slow += r.slow;
		tot_ev += r.evictions;
		tot_enomem += r.enomem;
		tot_stale += r.stale_ok;
		tot_err += r.errors_checked;
		tot_tol += r.tolerated;
		tot_oc += r.overcount;
		tot_must += r.musts;
		tot_exc += r.exceptions;
		tot_ll += r.livelocks;
		for (c = 0; c < 4; c++)
			tot_fl[c] += r.flags[c];
		if (ret || r.divergences) {
			tot_div += r.divergences ? r.divergences : 1;
			first = r;
			fail_ep = ep;
			report(&o, d, len, ep, &r);
			free(d);
			status = 1;
			break;
		}
		free(d);
	}
	t0 = now() - t0;
	printf("fuzz: %llu ops, %llu accesses, %llu faults, %llu divergences\n",
	       (unsigned long long)tot_ops, (unsigned long long)tot_acc,
	       (unsigned long long)tot_faults, (unsigned long long)tot_div);
	printf("fuzz: config %s, %u threads, seed %llu, %llu episodes, %.1f s, %.0f ops/s; "
	       "%llu slow, %llu return values checked, %llu evictions, %llu ENOMEM, %llu stale "
	       "hits, %llu tolerated, %llu batch overcounts\n",
	       o.cfg.name, o.cfg.nthreads, (unsigned long long)o.seed,
	       (unsigned long long)(ep - first_ep), t0, t0 > 0 ? (double)tot_ops / t0 : 0.0,
	       (unsigned long long)tot_slow, (unsigned long long)tot_err,
	       (unsigned long long)tot_ev, (unsigned long long)tot_enomem,
	       (unsigned long long)tot_stale, (unsigned long long)tot_tol,
	       (unsigned long long)tot_oc);
	printf("fuzz: checks: %llu accesses had to be direct, %llu left by siglongjmp, %llu cut "
	       "at 64 faults; faults with MAPPED %llu, PROTECTED %llu, STALE %llu, GUARD %llu\n",
	       (unsigned long long)tot_must, (unsigned long long)tot_exc,
	       (unsigned long long)tot_ll, (unsigned long long)tot_fl[0],
	       (unsigned long long)tot_fl[1], (unsigned long long)tot_fl[2],
	       (unsigned long long)tot_fl[3]);
	if (status) /* last, where a log's tail shows it */
		printf("fuzz: FAILED: seed %llu episode %llu: %s\n", (unsigned long long)o.seed,
		       (unsigned long long)fail_ep, first.first_msg);
	return status;
}
