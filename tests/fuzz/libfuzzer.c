/* SPDX-License-Identifier: MIT */
/*
 * The libFuzzer target: each input is an operation stream for fuzz_one().
 * Built by tests/fuzz/libfuzzer.sh with clang -fsanitize=fuzzer,address,
 * the library's sources compiled in (so that libFuzzer's coverage reaches
 * them).
 *
 * Environment: FUZZ_CONFIG (default "libfuzzer"), FUZZ_THREADS,
 * FUZZ_TOLERATE (kinds, comma-separated), FUZZ_QUIRKS, FUZZ_SELFTEST=1 (dereference a
 * bad pointer in the first operation: the library must pass that fault on,
 * so libFuzzer reports it), FUZZ_REPORT=1 (print totals at exit).
 *
 * A divergence aborts, so libFuzzer saves the input as a crash.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz.h"

static struct fuzz_config cfg;
static unsigned long long inputs, ops, faults, accesses;

static void totals(void)
{
	fprintf(stderr,
		"libfuzzer-btmmu: %llu inputs, %llu ops, %llu accesses, %llu faults "
		"dispatched to the callback\n",
		inputs, ops, accesses, faults);
}

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	const char *name = getenv("FUZZ_CONFIG"), *s;
	const struct fuzz_config *c = fuzz_config_find(name && *name ? name : "libfuzzer");

	(void)argc;
	(void)argv;
	if (!c || c->vma_free) {
		/* Using up vm.max_map_count would starve the sanitizer's allocator. */
		fprintf(stderr, "libfuzzer-btmmu: FUZZ_CONFIG %s not usable here\n",
			name ? name : "");
		exit(2);
	}
	cfg = *c;
	s = getenv("FUZZ_THREADS");
	if (s && *s)
		cfg.nthreads = (unsigned)strtoul(s, NULL, 0);
	s = getenv("FUZZ_TOLERATE");
	if (s && *s && fuzz_kind_mask(s, &cfg.tolerate)) {
		fprintf(stderr, "libfuzzer-btmmu: bad FUZZ_TOLERATE %s\n", s);
		exit(2);
	}
	s = getenv("FUZZ_QUIRKS");
	if (s && *s && fuzz_quirk_mask(s, &cfg.quirks)) {
		fprintf(stderr, "libfuzzer-btmmu: bad FUZZ_QUIRKS %s\n", s);
		exit(2);
	}
	s = getenv("FUZZ_SELFTEST");
	cfg.selftest = s && *s == '1';
	s = getenv("FUZZ_REPORT");
	if (s && *s == '1')
		atexit(totals);
	return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static struct fuzz_result res;
	int ret = fuzz_one_ex(data, size, &cfg, &res);

	inputs++;
	ops += res.ops;
	faults += res.faults;
	accesses += res.accesses;
	if (ret == 1) {
		fprintf(stderr, "libfuzzer-btmmu: %s\n", res.first_msg);
		abort();
	}
	return 0;
}
