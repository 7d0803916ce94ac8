# SPDX-License-Identifier: MIT
# Differential fuzzing of the public API against a model of its contract
# (tests/fuzz/README.md). Included at the end of Makefile.am:
#   include $(srcdir)/tests/fuzz/local.mk
#
# make check: tests/fuzz/check.sh, fixed seeds x configurations (< 60 s);
# tests/fuzz/libfuzzer.sh --check, the libFuzzer build's crash chaining
# (SKIP without clang's libFuzzer); tests/fuzz/maxmap.sh, a run under a
# lowered vm.max_map_count (SKIP unless root).
# make fuzz FUZZ_SECONDS=600 FUZZ_THREADS=2: the driver over every
# configuration, and the libFuzzer target when it builds, that long.
FUZZ_SOURCES = \
	tests/fuzz/fuzz.h \
	tests/fuzz/harness.h \
	tests/fuzz/model.h \
	tests/fuzz/harness.c \
	tests/fuzz/model.c \
	tests/fuzz/vma.c
check_PROGRAMS += tests/fuzz/fuzz
tests_fuzz_fuzz_SOURCES = tests/fuzz/driver.c $(FUZZ_SOURCES)
tests_fuzz_fuzz_LDADD = lib/libbtmmu.la $(PTHREAD_LIBS)
FUZZ_TESTS = tests/fuzz/check.sh tests/fuzz/libfuzzer-check.sh tests/fuzz/maxmap.sh
TESTS += $(FUZZ_TESTS)
EXTRA_DIST += $(FUZZ_TESTS) tests/fuzz/libfuzzer.sh tests/fuzz/run.sh \
	tests/fuzz/libfuzzer.c tests/fuzz/README.md
CLEANFILES += tests/fuzz/fuzz-libfuzzer
.PHONY: fuzz

FUZZ_SECONDS = 600
FUZZ_THREADS = 2
fuzz: tests/fuzz/fuzz$(EXEEXT)
	FUZZ_SECONDS='$(FUZZ_SECONDS)' FUZZ_THREADS='$(FUZZ_THREADS)' \
	abs_top_builddir='$(abs_top_builddir)' srcdir='$(srcdir)' \
	$(srcdir)/tests/fuzz/run.sh

# maxmap.sh lowers the system-wide vm.max_map_count for a few seconds: under
# make -j it runs after every other test of the suite, never beside one
# (test-capacity and the enomem fuzz run use up the limit as it is).
FUZZ_MAXMAP_LOG = tests/fuzz/maxmap.sh.log
$(FUZZ_MAXMAP_LOG): $(UNIT_TESTS:=.log) tests/stress/stress.log \
	tests/fuzz/check.sh.log tests/fuzz/libfuzzer-check.sh.log tests/demo-quick.sh.log \
	tests/pkgconfig.sh.log
