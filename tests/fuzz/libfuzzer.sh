#!/bin/sh
# SPDX-License-Identifier: MIT
# The libFuzzer build of the differential fuzzer: the harness and the
# library's sources (so that coverage reaches lib/) compiled with
#   clang -fsanitize=fuzzer,address
# On Debian 12 that needs the packages clang and libclang-rt-14-dev (which
# provides libclang_rt.fuzzer-x86_64.a); without them this exits 77 (SKIP).
#
#   libfuzzer.sh build            build tests/fuzz/fuzz-libfuzzer (if stale)
#   libfuzzer.sh run SECONDS      fuzz that long (corpus tests/fuzz/corpus,
#                                 crashes in tests/fuzz/artifacts)
#   libfuzzer.sh check            what make check runs: the library's faults
#                                 are not eaten by libFuzzer's SIGSEGV
#                                 handling (-handle_segv=1 and 0), and a real
#                                 crash still crashes under libFuzzer
#
# Environment: CLANG (default clang), FUZZ_CONFIG (default libfuzzer),
# FUZZ_THREADS, FUZZ_QUIRKS (default: sticky, README.md),
# FUZZ_TOLERATE.
set -u
top=${abs_top_builddir:-$(pwd)}
src=${srcdir:-.}
CLANG=${CLANG:-clang}
bin=$top/tests/fuzz/fuzz-libfuzzer
FUZZ_QUIRKS=${FUZZ_QUIRKS-sticky}
export FUZZ_QUIRKS

skip() {
	echo "libfuzzer.sh: SKIP: $*"
	exit 77
}

probe() {
	t=$(mktemp -d "${TMPDIR:-/tmp}/btmmu-lf.XXXXXX") || exit 99
	printf 'int LLVMFuzzerTestOneInput(const unsigned char *d, unsigned long n)\n{ return (int)(d && n) * 0; }\n' >"$t/t.c"
	if ! "$CLANG" -fsanitize=fuzzer,address "$t/t.c" -o "$t/t" >/dev/null 2>&1; then
		rm -rf "$t"
		skip "$CLANG cannot build a libFuzzer target (Debian 12: apt-get install clang libclang-rt-14-dev)"
	fi
	rm -rf "$t"
}

# The library's sources as Makefile.am lists them, and the host's probes.
lib_sources() {
	sed -n '/^lib_libbtmmu_la_SOURCES = /,/^$/p' "$src/Makefile.am" |
		grep -o 'lib/[A-Za-z0-9_/.-]*\.c' | sed "s|^|$src/|"
	case $(uname -m) in
	x86_64) echo "$src/lib/arch/probe-x86_64.S" ;;
	aarch64) echo "$src/lib/arch/probe-aarch64.S" ;;
	*) skip "host $(uname -m) not supported by libbtmmu" ;;
	esac
}

build() {
	command -v "$CLANG" >/dev/null 2>&1 || skip "$CLANG not found"
	[ -f "$top/include/btmmu/version.h" ] || { echo "libfuzzer.sh: run configure first" >&2; exit 99; }
	sources="$(lib_sources) $src/tests/fuzz/harness.c $src/tests/fuzz/model.c \
		$src/tests/fuzz/vma.c $src/tests/fuzz/libfuzzer.c"
	stale=1
	if [ -x "$bin" ]; then
		stale=0
		for f in $sources "$src"/lib/*.h "$src"/lib/arch/*.h "$src"/tests/fuzz/*.h \
			"$src/include/btmmu/btmmu.h"; do
			[ "$f" -nt "$bin" ] && stale=1
		done
	fi
	[ $stale = 0 ] && return 0
	probe
	echo "libfuzzer.sh: building $bin"
	# shellcheck disable=SC2086 # the source list is meant to split
	"$CLANG" -g -O1 -fno-omit-frame-pointer -fsanitize=fuzzer,address -D_GNU_SOURCE \
		-I"$src/include" -I"$top/include" -I"$src/lib" $sources -lpthread \
		-o "$bin.tmp" || { echo "libfuzzer.sh: build failed" >&2; exit 1; }
	mv "$bin.tmp" "$bin"
}

# Seed the corpus with the driver's streams (a few hundred operations each).
seed_corpus() {
	mkdir -p "$top/tests/fuzz/corpus" "$top/tests/fuzz/artifacts"
	if [ -z "$(ls -A "$top/tests/fuzz/corpus")" ]; then
		"$top/tests/fuzz/fuzz" --dump "$top/tests/fuzz/corpus" --episode 500 --ops 20000 \
			>/dev/null 2>&1 || true
	fi
}

run() {
	secs=$1
	build
	seed_corpus
	echo "libfuzzer.sh: fuzzing for $secs s (config ${FUZZ_CONFIG:-libfuzzer})"
	ASAN_OPTIONS=${ASAN_OPTIONS:-allocator_may_return_null=1} FUZZ_REPORT=1 \
		"$bin" -max_total_time="$secs" -max_len=16384 -timeout=120 -rss_limit_mb=4096 \
		-print_final_stats=1 -artifact_prefix="$top/tests/fuzz/artifacts/" \
		"$top/tests/fuzz/corpus"
	rc=$?
	if [ $rc -ne 0 ]; then
		for a in "$top"/tests/fuzz/artifacts/*; do
			[ -f "$a" ] && echo "libfuzzer.sh: crash input $a: tests/fuzz/fuzz --replay $a --config ${FUZZ_CONFIG:-libfuzzer} --trace"
		done
	fi
	return $rc
}

check() {
	build
	t=$(mktemp -d "${TMPDIR:-/tmp}/btmmu-lf.XXXXXX") || exit 99
	trap 'rm -rf "$t"' EXIT
	"$top/tests/fuzz/fuzz" --dump "$t" --episode 400 --ops 4000 >/dev/null 2>&1 ||
		{ echo "libfuzzer.sh: cannot dump inputs" >&2; exit 99; }
	status=0
	for segv in 1 0; do
		# The library's faults are dispatched (callback called, inputs run clean).
		FUZZ_REPORT=1 env -u ASAN_OPTIONS "$bin" -handle_segv=$segv -runs=40 "$t" \
			>"$t/log" 2>&1
		rc=$?
		n=$(sed -n 's/.* \([0-9][0-9]*\) faults dispatched.*/\1/p' "$t/log" | tail -n 1)
		if [ $rc -ne 0 ] || [ "${n:-0}" -eq 0 ]; then
			echo "libfuzzer.sh: FAIL: -handle_segv=$segv: exit $rc, ${n:-no} faults dispatched"
			tail -n 30 "$t/log"
			status=1
		else
			echo "libfuzzer.sh: -handle_segv=$segv: inputs ran, $n faults dispatched to the callback"
		fi
		# A real crash (a bad pointer in the harness) still crashes.
		FUZZ_SELFTEST=1 env -u ASAN_OPTIONS "$bin" -handle_segv=$segv -runs=1 \
			"$(ls "$t"/seed-* | sed -n 1p)" \
			>"$t/log" 2>&1
		rc=$?
		if [ $rc -eq 0 ] || ! grep -q -E 'SEGV|deadly signal' "$t/log"; then
			echo "libfuzzer.sh: FAIL: -handle_segv=$segv: a real crash was not reported (exit $rc)"
			tail -n 30 "$t/log"
			status=1
		else
			echo "libfuzzer.sh: -handle_segv=$segv: a real crash is reported ($(grep -o -m1 -E 'SEGV on unknown address[^(]*|deadly signal' "$t/log"))"
		fi
	done
	return $status
}

case ${1:-} in
build) build ;;
run) run "${2:-60}" ;;
check) check ;;
*)
	echo "usage: libfuzzer.sh build | run SECONDS | check" >&2
	exit 2
	;;
esac
